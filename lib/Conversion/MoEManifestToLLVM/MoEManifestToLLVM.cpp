//===- MoEManifestToLLVM.cpp - the manifest as the runtime's global ------===//
//
// Implements `convert-moe-manifest-to-llvm`: the module's #moe.manifest, with
// the plan's rank layout and the products' compute mode, is written as the
// text the runtime parses (runtime/include/moert/model.h) into the constant
// `moe_model_manifest` that the executable's main reads.
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

constexpr llvm::StringLiteral kGlobalName = "moe_model_manifest";

/// The runtime's line for one weight (runtime/include/moert/model.h).
std::string weightLine(WeightAttr w) {
  std::string line;
  llvm::raw_string_ostream os(line);
  if (w.getStage())
    os << "stage " << *w.getStage() << " ";
  switch (w.getSplit()) {
  case WeightSplit::whole:
    os << "tensor";
    break;
  case WeightSplit::experts:
    os << "tensor-ep";
    break;
  case WeightSplit::tp:
  case WeightSplit::etp:
    os << "tensor-slice " << stringifyWeightSplit(w.getSplit()) << " "
       << *w.getDim();
    break;
  case WeightSplit::experts_etp:
    os << "tensor-ep-slice etp " << *w.getDim();
    break;
  }
  os << " " << w.getOffset() << " " << w.getCount() << " "
     << w.getShape().size();
  for (int64_t d : w.getShape())
    os << " " << d;
  os << " " << w.getName() << "\n";
  return line;
}

/// The text the runtime reads: the version, the header (the products' mode,
/// the rank layout, the model), the weight buffer and its tensors.
std::string manifestText(ManifestAttr m, PlanAttr plan, StringRef gemm) {
  std::string text = "moe-model 1\n";
  llvm::raw_string_ostream os(text);
  if (gemm != "f32")
    os << "gemm " << gemm << "\n";
  if (plan && plan.getWorldSize() > 1)
    os << getLayoutManifestLines(plan);
  os << "arch " << m.getArch() << "\nbatch " << m.getBatch() << "\nseq "
     << m.getSeq() << "\nhidden " << m.getHidden() << "\nvocab " << m.getVocab()
     << "\ntied " << (m.getTied() ? 1 : 0) << "\n";
  if (m.getMaxSeq() > 0)
    os << "max-seq " << m.getMaxSeq() << "\n";
  if (m.getMicrobatches() > 1)
    os << "microbatches " << m.getMicrobatches() << "\n";
  os << "blob " << m.getBlob() << "\n";
  for (WeightAttr w : m.getWeightList())
    os << weightLine(w);
  return text;
}

struct ConvertMoEManifestToLLVMPass
    : moe::impl::ConvertMoEManifestToLLVMPassBase<
          ConvertMoEManifestToLLVMPass> {
  using ConvertMoEManifestToLLVMPassBase::ConvertMoEManifestToLLVMPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::string error;
    if (failed(verifyGemmMode(gemm, error))) {
      module.emitError() << "convert-moe-manifest-to-llvm: " << error;
      return signalPassFailure();
    }
    auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
    auto manifest =
        module->getAttrOfType<ManifestAttr>(MoEDialect::getManifestAttrName());
    module->removeAttr(MoEDialect::getPlanAttrName());
    if (!manifest)
      return;
    if (module.lookupSymbol(kGlobalName)) {
      module.emitError() << "the module already defines @" << kGlobalName;
      return signalPassFailure();
    }
    std::string full = manifestText(manifest, plan, gemm);
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
