//===- MoEManifestToLLVM.cpp - the manifest as the runtime's global ------===//
//
// Implements `convert-moe-manifest-to-llvm`: the module's moe.manifest, with
// the plan's rank layout and the products' compute mode added to its header,
// becomes the constant `moe_model_manifest` that the executable's main
// (runtime/src/model_main.c) reads.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Plan/Explain.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_CONVERTMOEMANIFESTTOLLVMPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kVersionLine = "moe-model 1\n";
constexpr llvm::StringLiteral kGlobalName = "moe_model_manifest";

struct ConvertMoEManifestToLLVMPass
    : moe::impl::ConvertMoEManifestToLLVMPassBase<
          ConvertMoEManifestToLLVMPass> {
  using ConvertMoEManifestToLLVMPassBase::ConvertMoEManifestToLLVMPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!llvm::is_contained({"f32", "tf32", "bf16", "f16"}, gemm)) {
      module.emitError() << "convert-moe-manifest-to-llvm: unknown gemm mode '"
                         << gemm << "'; expected f32, tf32, bf16 or f16";
      return signalPassFailure();
    }
    auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
    auto manifest =
        module->getAttrOfType<StringAttr>(MoEDialect::getManifestAttrName());
    module->removeAttr(MoEDialect::getPlanAttrName());
    if (!manifest)
      return;
    StringRef text = manifest.getValue();
    if (!text.starts_with(kVersionLine)) {
      module.emitError() << "'" << MoEDialect::getManifestAttrName()
                         << "' does not start with its version line ('"
                         << kVersionLine.drop_back() << "')";
      return signalPassFailure();
    }
    if (module.lookupSymbol(kGlobalName)) {
      module.emitError() << "the module already defines @" << kGlobalName;
      return signalPassFailure();
    }
    // Header lines go right after the version, before the weights.
    std::string header;
    if (gemm != "f32")
      header += "gemm " + gemm + "\n";
    if (plan && plan.getWorldSize() > 1)
      header += getLayoutManifestLines(plan);
    std::string full =
        (kVersionLine + header + text.drop_front(kVersionLine.size())).str();
    full.push_back('\0');
    OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
    auto type = LLVM::LLVMArrayType::get(b.getI8Type(), full.size());
    LLVM::GlobalOp::create(b, module.getLoc(), type, /*isConstant=*/true,
                           LLVM::Linkage::External, kGlobalName,
                           b.getStringAttr(full));
    module->removeAttr(MoEDialect::getManifestAttrName());
  }
};

} // namespace
