//===- LinalgToBlas.cpp - f32 matrix products to runtime BLAS calls -------===//
//
// Implements `moe-linalg-to-blas`: 2-D f32 contractions on memrefs become
// calls to `moert_sgemm` (OpenBLAS in the runtime).
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Matchers.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-linalg-to-blas"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOELINALGTOBLASPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The last argument of moert_sgemm (runtime/src/blas_layout.h): bit 0 adds
/// the product to C (beta = 1), bit 1 asks for exact f32 whatever mode the
/// runtime's products are in (`moe.exact_product`).
constexpr int64_t kGemmAccumulate = 1;
constexpr int64_t kGemmExact = 2;

/// How a matched contraction maps onto C = op(A) · op(B).
struct GemmMatch {
  bool transposeA = false;
  bool transposeB = false;
};

bool isF32Matrix(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  return memref && memref.getRank() == 2 && memref.getElementType().isF32();
}

/// The dims of `map` as loop positions, or nothing if any result is not a
/// plain loop dimension.
std::optional<SmallVector<unsigned>> dimPositions(AffineMap map) {
  SmallVector<unsigned> positions;
  for (AffineExpr expr : map.getResults()) {
    auto dim = dyn_cast<AffineDimExpr>(expr);
    if (!dim)
      return std::nullopt;
    positions.push_back(dim.getPosition());
  }
  return positions;
}

std::optional<GemmMatch> matchGemm(linalg::LinalgOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumLoops() != 3)
    return std::nullopt;
  for (OpOperand &operand : op->getOpOperands())
    if (!isF32Matrix(operand.get().getType()))
      return std::nullopt;
  if (!linalg::isaContractionOpInterface(op))
    return std::nullopt;
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims) || !dims->batch.empty() || dims->m.size() != 1 ||
      dims->n.size() != 1 || dims->k.size() != 1)
    return std::nullopt;
  unsigned m = dims->m[0], n = dims->n[0], k = dims->k[0];

  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  auto a = dimPositions(maps[0]), b = dimPositions(maps[1]),
       c = dimPositions(maps[2]);
  if (!a || !b || !c)
    return std::nullopt;
  using Pair = SmallVector<unsigned>;
  if (*c != Pair{m, n})
    return std::nullopt;
  GemmMatch match;
  if (*a == Pair{k, m})
    match.transposeA = true;
  else if (*a != Pair{m, k})
    return std::nullopt;
  if (*b == Pair{n, k})
    match.transposeB = true;
  else if (*b != Pair{k, n})
    return std::nullopt;
  return match;
}

struct MoELinalgToBlasPass
    : moe::impl::MoELinalgToBlasPassBase<MoELinalgToBlasPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<std::pair<linalg::LinalgOp, GemmMatch>> gemms;
    module.walk([&](linalg::LinalgOp op) {
      if (std::optional<GemmMatch> match = matchGemm(op))
        gemms.push_back({op, *match});
    });
    LLVM_DEBUG(llvm::dbgs() << "matched " << gemms.size() << " GEMMs\n");
    if (gemms.empty())
      return;

    MLIRContext *ctx = &getContext();
    int64_t dyn = ShapedType::kDynamic;
    auto anyMatrix =
        MemRefType::get({dyn, dyn}, Float32Type::get(ctx),
                        StridedLayoutAttr::get(ctx, dyn, {dyn, dyn}));
    IntegerType i32 = IntegerType::get(ctx, 32);
    auto calleeType = FunctionType::get(
        ctx, {anyMatrix, anyMatrix, anyMatrix, i32, i32, i32}, {});

    auto callee = module.lookupSymbol<func::FuncOp>(kSgemmFunctionName);
    if (callee && callee.getFunctionType() != calleeType) {
      callee.emitOpError() << "conflicts with the runtime's "
                           << kSgemmFunctionName << " of type " << calleeType;
      return signalPassFailure();
    }
    if (!callee) {
      OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
      callee = func::FuncOp::create(b, module.getLoc(), kSgemmFunctionName,
                                    calleeType);
      callee.setPrivate();
      callee->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    }

    for (auto [op, match] : gemms) {
      OpBuilder b(op);
      Location loc = op.getLoc();
      // C zero-filled right before: let BLAS overwrite it (beta = 0) instead
      // of writing zeros and reading them back.
      bool accumulate = true;
      Value c = op.getDpsInitOperand(0)->get();
      if (auto fill = dyn_cast_or_null<linalg::FillOp>(op->getPrevNode());
          fill && fill.hasPureBufferSemantics() &&
          fill.getDpsInitOperand(0)->get() == c &&
          matchPattern(fill.getDpsInputOperand(0)->get(), m_AnyZeroFloat())) {
        fill->erase();
        accumulate = false;
      }
      SmallVector<Value> args;
      for (OpOperand &operand : op->getOpOperands())
        args.push_back(
            memref::CastOp::create(b, loc, anyMatrix, operand.get()));
      args.push_back(
          arith::ConstantIntOp::create(b, loc, match.transposeA, 32));
      args.push_back(
          arith::ConstantIntOp::create(b, loc, match.transposeB, 32));
      // Flags: bit 0 accumulate into C, bit 1 exact f32 (moe.exact_product).
      int64_t flags =
          (accumulate ? kGemmAccumulate : 0) |
          (op->hasAttr(MoEDialect::getExactProductAttrName()) ? kGemmExact : 0);
      args.push_back(arith::ConstantIntOp::create(b, loc, flags, 32));
      func::CallOp::create(b, loc, callee, args);
      op->erase();
    }
  }
};

} // namespace
