//===- LinalgToBlas.cpp - f32 matrix products to runtime BLAS calls -------===//
//
// Implements `moe-linalg-to-blas`: 2-D f32 contractions on memrefs become
// calls to `moert_sgemm` (OpenBLAS in the runtime); batched ones (attention's
// per-head products, with grouped-query heads read by floordiv) a loop nest
// over the batch of calls on 2-D views.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Utils/AffineUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
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

/// A contraction with batch loops: C[.., m, .., n] += A[.., m, k] · B[.., k,
/// n] (each operand's dims in any order), where a batch loop indexes an
/// operand by itself or by its floordiv by a constant (grouped-query
/// attention reads one kv head for a group of query heads) and the m, n, k
/// loops index by themselves.
struct BatchedGemm {
  unsigned m, n, k;
  SmallVector<unsigned> batch;
  GemmMatch match;
};

std::optional<BatchedGemm> matchBatchedGemm(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumLoops() < 4)
    return std::nullopt;
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.getElementType().isF32() || !type.hasStaticShape())
      return std::nullopt;
  }
  if (!linalg::detail::isContractionBody(
          *op.getBlock(), [](Operation *first, Operation *second) {
            return isa<arith::MulFOp>(first) && isa<arith::AddFOp>(second);
          }))
    return std::nullopt;
  unsigned numLoops = op.getNumLoops();
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  // uses[o][l]: operand o indexes loop l (0: no, 1: plainly, 2: floordiv).
  SmallVector<SmallVector<int>> uses(3, SmallVector<int>(numLoops, 0));
  for (unsigned o = 0; o < 3; ++o)
    for (AffineExpr e : maps[o].getResults()) {
      auto loop = matchDimOrFloorDiv(e);
      if (!loop || uses[o][loop->first])
        return std::nullopt;
      uses[o][loop->first] = loop->second == 1 ? 1 : 2;
    }
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  std::optional<unsigned> m, n, k;
  SmallVector<unsigned> batch;
  for (unsigned l = 0; l < numLoops; ++l) {
    int a = uses[0][l], b = uses[1][l], c = uses[2][l];
    bool reduction = iterators[l] == utils::IteratorType::reduction;
    auto claim = [](std::optional<unsigned> &slot, unsigned l) {
      if (slot)
        return false;
      slot = l;
      return true;
    };
    if (reduction && a == 1 && b == 1 && c == 0) {
      if (!claim(k, l))
        return std::nullopt;
    } else if (!reduction && a == 1 && b == 0 && c == 1) {
      if (!claim(m, l))
        return std::nullopt;
    } else if (!reduction && a == 0 && b == 1 && c == 1) {
      if (!claim(n, l))
        return std::nullopt;
    } else if (!reduction && c == 1) {
      batch.push_back(l);
    } else {
      return std::nullopt;
    }
  }
  if (!m || !n || !k || batch.empty())
    return std::nullopt;
  auto position = [&](unsigned o, unsigned l) {
    for (auto [i, e] : llvm::enumerate(maps[o].getResults()))
      if (matchDimOrFloorDiv(e)->first == l)
        return static_cast<int64_t>(i);
    return int64_t(-1);
  };
  // C's 2-D view is [m, n]; A's [m, k] or [k, m]; B's [k, n] or [n, k].
  if (position(2, *m) > position(2, *n))
    return std::nullopt;
  BatchedGemm g{*m, *n, *k, batch, {}};
  g.match.transposeA = position(0, *k) < position(0, *m);
  g.match.transposeB = position(1, *n) < position(1, *k);
  return g;
}

/// The 2-D view of `operand` (indexed by `map`) at the batch loops' values
/// `ivs` (the other loops taken whole).
Value batchView(OpBuilder &b, Location loc, Value operand, AffineMap map,
                const DenseMap<unsigned, Value> &ivs) {
  auto type = cast<MemRefType>(operand.getType());
  SmallVector<OpFoldResult> offsets, sizes, strides;
  SmallVector<int64_t> kept;
  for (auto [d, e] : llvm::enumerate(map.getResults())) {
    auto [loop, divisor] = *matchDimOrFloorDiv(e);
    strides.push_back(b.getIndexAttr(1));
    auto iv = ivs.find(loop);
    if (iv == ivs.end()) {
      offsets.push_back(b.getIndexAttr(0));
      sizes.push_back(b.getIndexAttr(type.getDimSize(d)));
      kept.push_back(type.getDimSize(d));
      continue;
    }
    Value at = iv->second;
    if (divisor != 1)
      at = arith::DivUIOp::create(
          b, loc, at, arith::ConstantIndexOp::create(b, loc, divisor));
    offsets.push_back(at);
    sizes.push_back(b.getIndexAttr(1));
  }
  auto viewType =
      cast<MemRefType>(memref::SubViewOp::inferRankReducedResultType(
          kept, type, offsets, sizes, strides));
  return memref::SubViewOp::create(b, loc, viewType, operand, offsets, sizes,
                                   strides);
}

struct MoELinalgToBlasPass
    : moe::impl::MoELinalgToBlasPassBase<MoELinalgToBlasPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<std::pair<linalg::LinalgOp, GemmMatch>> gemms;
    SmallVector<std::pair<linalg::GenericOp, BatchedGemm>> batched;
    module.walk([&](linalg::LinalgOp op) {
      if (std::optional<GemmMatch> match = matchGemm(op))
        gemms.push_back({op, *match});
      else if (auto generic = dyn_cast<linalg::GenericOp>(*op))
        if (std::optional<BatchedGemm> match = matchBatchedGemm(generic))
          batched.push_back({generic, *match});
    });
    LLVM_DEBUG(llvm::dbgs() << "matched " << gemms.size() << " GEMMs and "
                            << batched.size() << " batched GEMMs\n");
    if (gemms.empty() && batched.empty())
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

    // C zero-filled right before: let BLAS overwrite it (beta = 0) instead
    // of writing zeros and reading them back.
    auto takeZeroFill = [](Operation *op, Value c) {
      auto fill = dyn_cast_or_null<linalg::FillOp>(op->getPrevNode());
      if (!fill || !fill.hasPureBufferSemantics() ||
          fill.getDpsInitOperand(0)->get() != c ||
          !matchPattern(fill.getDpsInputOperand(0)->get(), m_AnyZeroFloat()))
        return false;
      fill->erase();
      return true;
    };
    auto call = [&](OpBuilder &b, Location loc, Operation *op,
                    ArrayRef<Value> operands, GemmMatch match,
                    bool accumulate) {
      SmallVector<Value> args;
      for (Value v : operands)
        args.push_back(memref::CastOp::create(b, loc, anyMatrix, v));
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
    };
    for (auto [op, match] : gemms) {
      OpBuilder b(op);
      Value c = op.getDpsInitOperand(0)->get();
      bool accumulate = !takeZeroFill(op, c);
      SmallVector<Value> operands;
      for (OpOperand &operand : op->getOpOperands())
        operands.push_back(operand.get());
      call(b, op.getLoc(), op, operands, match, accumulate);
      op->erase();
    }
    // A batched product: one call per batch element, each on the 2-D views
    // of its operands (the C blocks are disjoint, so a zero fill of all of
    // C is still replaced by overwriting).
    for (auto [op, g] : batched) {
      OpBuilder b(op);
      Location loc = op.getLoc();
      bool accumulate = !takeZeroFill(op, op.getDpsInitOperand(0)->get());
      SmallVector<int64_t> ranges = op.getStaticLoopRanges();
      DenseMap<unsigned, Value> ivs;
      for (unsigned l : g.batch) {
        auto loop = scf::ForOp::create(
            b, loc, arith::ConstantIndexOp::create(b, loc, 0),
            arith::ConstantIndexOp::create(b, loc, ranges[l]),
            arith::ConstantIndexOp::create(b, loc, 1));
        ivs[l] = loop.getInductionVar();
        b.setInsertionPoint(loop.getBody()->getTerminator());
      }
      SmallVector<AffineMap> maps = op.getIndexingMapsArray();
      SmallVector<Value> views;
      for (auto [operand, map] : llvm::zip_equal(op->getOperands(), maps))
        views.push_back(batchView(b, loc, operand, map, ivs));
      call(b, loc, op, views, g.match, accumulate);
      op->erase();
    }
  }
};

} // namespace
