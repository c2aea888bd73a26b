//===- MoEToLinalg.cpp - moe ops to linalg, tensor and scf ----------------===//
//
// Implements `convert-moe-to-linalg`: the reference semantics of moe.router,
// moe.dispatch, moe.experts and moe.combine (docs/Routing.md) on tensors.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "DispatchSlots.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "convert-moe-to-linalg"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALGPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

using IT = utils::IteratorType;

//===----------------------------------------------------------------------===//
// moe.router
//===----------------------------------------------------------------------===//

LogicalResult lowerRouter(RewriterBase &rewriter, RouterOp op) {
  Location loc = op.getLoc();
  MLIRContext *ctx = rewriter.getContext();
  Type f = op.getTokens().getType().getElementType();
  Type idType = op.getIds().getType().getElementType();
  int64_t k = op.getK();

  // The logits stay exact f32 under the runtime's fast product modes
  // (moe-linalg-to-blas): rounded inputs would flip routing decisions.
  Value logits =
      buildMatmulTransposedB(rewriter, loc, op.getTokens(), op.getWeight());
  logits.getDefiningOp()->setAttr(MoEDialect::getExactProductAttrName(),
                                  rewriter.getUnitAttr());
  Value scores;
  if (op.getScore() == ScoreFunction::softmax)
    scores = buildSoftmaxRows(rewriter, loc, logits);
  else
    scores = buildMap(rewriter, loc, logits,
                      [](OpBuilder &b, Location l, ValueRange a) {
                        return buildSigmoid(b, l, a[0]);
                      });

  // Selection keys: scores, plus the per-expert bias when there is one.
  Value keys = scores;
  if (Value bias = op.getBias())
    keys = buildGeneric(
        rewriter, loc,
        buildEmpty(rewriter, loc, tensor::getMixedSizes(rewriter, loc, scores),
                   f),
        ValueRange{scores, bias},
        {AffineMap::getMultiDimIdentityMap(2, ctx),
         AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx),
         AffineMap::getMultiDimIdentityMap(2, ctx)},
        {IT::parallel, IT::parallel},
        [](OpBuilder &b, Location l, ValueRange a) {
          return arith::AddFOp::create(b, l, a[0], a[1]).getResult();
        });

  // rank[t, e] = #{e2 : key[t,e2] > key[t,e] or (== and e2 < e)}.
  AffineExpr t, e, e2, j;
  bindDims(ctx, t, e, e2);
  Type i32 = rewriter.getI32Type();
  SmallVector<OpFoldResult> te = tensor::getMixedSizes(rewriter, loc, scores);
  Value rank = buildGeneric(
      rewriter, loc, buildZeros(rewriter, loc, te, i32), ValueRange{keys, keys},
      {AffineMap::get(3, 0, {t, e2}, ctx), AffineMap::get(3, 0, {t, e}, ctx),
       AffineMap::get(3, 0, {t, e}, ctx)},
      {IT::parallel, IT::parallel, IT::reduction},
      [](OpBuilder &b, Location l, ValueRange a) {
        Value other = a[0], mine = a[1], acc = a[2];
        Value e = linalg::IndexOp::create(b, l, 1);
        Value e2 = linalg::IndexOp::create(b, l, 2);
        Value greater =
            arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, other, mine);
        Value equal =
            arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, other, mine);
        Value lower =
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, e2, e);
        Value before = arith::OrIOp::create(
            b, l, greater, arith::AndIOp::create(b, l, equal, lower));
        Value one = arith::ExtUIOp::create(b, l, b.getI32Type(), before);
        return arith::AddIOp::create(b, l, acc, one).getResult();
      });

  // ids[t, j] = the e with rank[t, e] = j; weights[t, j] = scores[t, e].
  bindDims(ctx, t, j, e);
  SmallVector<OpFoldResult> tk = {te[0], rewriter.getIndexAttr(k)};
  auto select = linalg::GenericOp::create(
      rewriter, loc,
      TypeRange{RankedTensorType::get(op.getIds().getType().getShape(), idType),
                RankedTensorType::get(op.getWeights().getType().getShape(), f)},
      ValueRange{rank, scores},
      ValueRange{buildZeros(rewriter, loc, tk, idType),
                 buildZeros(rewriter, loc, tk, f)},
      ArrayRef<AffineMap>{
          AffineMap::get(3, 0, {t, e}, ctx), AffineMap::get(3, 0, {t, e}, ctx),
          AffineMap::get(3, 0, {t, j}, ctx), AffineMap::get(3, 0, {t, j}, ctx)},
      ArrayRef<IT>{IT::parallel, IT::parallel, IT::reduction},
      [&](OpBuilder &b, Location l, ValueRange a) {
        Value r = a[0], score = a[1], idAcc = a[2], wAcc = a[3];
        Value jIdx = linalg::IndexOp::create(b, l, 1);
        Value eIdx = linalg::IndexOp::create(b, l, 2);
        Value isJ = arith::CmpIOp::create(
            b, l, arith::CmpIPredicate::eq, r,
            arith::IndexCastOp::create(b, l, b.getI32Type(), jIdx));
        Value eVal = arith::IndexCastOp::create(b, l, idType, eIdx);
        Value zeroId = buildConstant(b, l, idType, 0);
        Value zeroF = buildConstant(b, l, f, 0);
        Value newId = arith::AddIOp::create(
            b, l, idAcc, arith::SelectOp::create(b, l, isJ, eVal, zeroId));
        Value newW = arith::AddFOp::create(
            b, l, wAcc, arith::SelectOp::create(b, l, isJ, score, zeroF));
        linalg::YieldOp::create(b, l, ValueRange{newId, newW});
      });
  Value ids = select.getResult(0);
  Value weights = select.getResult(1);

  if (op.getRenormalize()) {
    Value sum = buildRowReduce(
        rewriter, loc, weights, buildConstant(rewriter, loc, f, 0),
        [](OpBuilder &b, Location l, Value acc, Value v) {
          return arith::AddFOp::create(b, l, acc, v).getResult();
        });
    weights = buildRowBroadcast(
        rewriter, loc, weights, sum,
        [](OpBuilder &b, Location l, Value w, Value s) {
          return arith::DivFOp::create(b, l, w, s).getResult();
        });
  }
  rewriter.replaceOp(op, ValueRange{weights, ids});
  return success();
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

LogicalResult lowerDispatch(RewriterBase &rewriter, DispatchOp op,
                            bool inParallel) {
  Location loc = op.getLoc();
  MLIRContext *ctx = rewriter.getContext();
  Value tokens = op.getTokens();
  Type f = op.getTokens().getType().getElementType();
  Type idType = op.getIds().getType().getElementType();
  int64_t capacity = op.getCapacity();
  DispatchShape shape{op.getIds(),
                      idType,
                      op.getNumExperts(),
                      capacity,
                      op.getIds().getType().getDimSize(1),
                      tensor::getMixedSize(rewriter, loc, tokens, 0)};
  SlotAssignment assigned = inParallel
                                ? assignSlotsInParallel(rewriter, loc, shape)
                                : assignSlotsSequentially(rewriter, loc, shape);
  Value fill = assigned.fill, slots = assigned.slots, src = assigned.src;
  int64_t numExperts = shape.numExperts;

  Value counts = buildMap(
      rewriter, loc, fill, [&](OpBuilder &b, Location l, ValueRange a) {
        return arith::MinSIOp::create(b, l, a[0],
                                      buildConstant(b, l, idType, capacity))
            .getResult();
      });

  // buffer[e, c, h] = tokens[src[e, c], h], or 0 for an unused slot.
  SmallVector<OpFoldResult> bufferSizes = {
      rewriter.getIndexAttr(numExperts), rewriter.getIndexAttr(capacity),
      tensor::getMixedSize(rewriter, loc, tokens, 1)};
  AffineExpr e, c, h;
  bindDims(ctx, e, c, h);
  Value buffer = buildGeneric(
      rewriter, loc, buildEmpty(rewriter, loc, bufferSizes, f), ValueRange{src},
      {AffineMap::get(3, 0, {e, c}, ctx), AffineMap::get(3, 0, {e, c, h}, ctx)},
      {IT::parallel, IT::parallel, IT::parallel},
      [&](OpBuilder &b, Location l, ValueRange a) {
        Value token = a[0];
        Value zeroId = buildConstant(b, l, idType, 0);
        Value used = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge,
                                           token, zeroId);
        // An unused slot reads nothing (with no tokens there is no row 0).
        Value hIdx = linalg::IndexOp::create(b, l, 2);
        auto read = scf::IfOp::create(
            b, l, used,
            [&](OpBuilder &tb, Location tl) {
              Value v = tensor::ExtractOp::create(
                  tb, tl, tokens, {indexCast(tb, tl, token), hIdx});
              scf::YieldOp::create(tb, tl, v);
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, buildConstant(eb, el, f, 0));
            });
        return read.getResult(0);
      });
  rewriter.replaceOp(op, ValueRange{buffer, slots, counts});
  return success();
}

//===----------------------------------------------------------------------===//
// moe.experts
//===----------------------------------------------------------------------===//

/// Rows [first, first + rows) of expert `e` of a stacked [E, R, cols] tensor,
/// as [rows, cols].
Value expertSlice(OpBuilder &b, Location loc, Value stacked, Value e,
                  OpFoldResult rows, OpFoldResult first = {}) {
  auto type = cast<RankedTensorType>(stacked.getType());
  SmallVector<OpFoldResult> offsets = {e, first ? first : b.getIndexAttr(0),
                                       b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), rows,
                                     tensor::getMixedSize(b, loc, stacked, 2)};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  SmallVector<int64_t> shape = {ShapedType::kDynamic, type.getDimSize(2)};
  if (auto r = getConstantIntValue(rows))
    shape[0] = *r;
  auto resultType = RankedTensorType::get(shape, type.getElementType());
  return tensor::ExtractSliceOp::create(b, loc, resultType, stacked, offsets,
                                        sizes, strides);
}

LogicalResult lowerExperts(RewriterBase &rewriter, ExpertsOp op) {
  Location loc = op.getLoc();
  RankedTensorType inputType = op.getInput().getType();
  Type f = inputType.getElementType();
  int64_t numExperts = inputType.getDimSize(0);
  if (ShapedType::isDynamic(numExperts))
    return op.emitOpError() << "needs a static number of experts to lower";

  Value out0 = buildZeros(
      rewriter, loc, tensor::getMixedSizes(rewriter, loc, op.getInput()), f);
  // Each expert's rows come in `segments` equal parts (one without counts or
  // with [E] counts), each filled from its start; one iteration per part.
  Value counts = op.getCounts();
  int64_t segments =
      counts && cast<RankedTensorType>(counts.getType()).getRank() == 2
          ? cast<RankedTensorType>(counts.getType()).getDimSize(1)
          : 1;
  if (ShapedType::isDynamic(segments))
    return op.emitOpError() << "needs a static number of count segments";
  OpFoldResult capacity = tensor::getMixedSize(rewriter, loc, op.getInput(), 1);
  Value capacityV = getValueOrCreateConstantIndexOp(rewriter, loc, capacity);
  Value segmentRows =
      segments == 1 ? capacityV
                    : arith::DivUIOp::create(rewriter, loc, capacityV,
                                             cIndex(rewriter, loc, segments))
                          .getResult();
  Activation activation = op.getActivation();
  auto loop = scf::ForOp::create(
      rewriter, loc, cIndex(rewriter, loc, 0),
      cIndex(rewriter, loc, numExperts * segments), cIndex(rewriter, loc, 1),
      ValueRange{out0},
      [&](OpBuilder &b, Location l, Value i, ValueRange iter) {
        Value e = i, s;
        OpFoldResult first = b.getIndexAttr(0);
        OpFoldResult rows = segments == 1 ? capacity : segmentRows;
        if (segments > 1) {
          e = arith::DivUIOp::create(b, l, i, cIndex(b, l, segments));
          s = arith::RemUIOp::create(b, l, i, cIndex(b, l, segments));
          first = arith::MulIOp::create(b, l, s, segmentRows).getResult();
        }
        if (counts) {
          SmallVector<Value> at = {e};
          if (cast<RankedTensorType>(counts.getType()).getRank() == 2)
            at.push_back(s ? s : cIndex(b, l, 0));
          Value n =
              indexCast(b, l, tensor::ExtractOp::create(b, l, counts, at));
          n = arith::MaxSIOp::create(b, l, n, cIndex(b, l, 0));
          rows = arith::MinSIOp::create(b, l, n, segmentRows).getResult();
        }
        Value x = expertSlice(b, l, op.getInput(), e, rows, first);
        OpFoldResult ffn = tensor::getMixedSize(b, l, op.getUp(), 1);
        Value up = buildMatmulTransposedB(
            b, l, x, expertSlice(b, l, op.getUp(), e, ffn));
        Value hidden;
        if (Value gateW = op.getGate()) {
          Value gate =
              buildMatmulTransposedB(b, l, x, expertSlice(b, l, gateW, e, ffn));
          hidden = buildMap(b, l, ValueRange{gate, up},
                            [](OpBuilder &nb, Location nl, ValueRange a) {
                              return arith::MulFOp::create(
                                         nb, nl, buildSilu(nb, nl, a[0]), a[1])
                                  .getResult();
                            });
        } else {
          hidden = buildMap(b, l, ValueRange{up},
                            [&](OpBuilder &nb, Location nl, ValueRange a) {
                              return activation == Activation::gelu
                                         ? buildGelu(nb, nl, a[0])
                                         : buildRelu(nb, nl, a[0]);
                            });
        }
        OpFoldResult hiddenSize = tensor::getMixedSize(b, l, op.getDown(), 1);
        Value y = buildMatmulTransposedB(
            b, l, hidden, expertSlice(b, l, op.getDown(), e, hiddenSize));
        SmallVector<OpFoldResult> offsets = {e, first, b.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), rows,
                                           tensor::getMixedSize(b, l, y, 1)};
        SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
        Value out = tensor::InsertSliceOp::create(b, l, y, iter[0], offsets,
                                                  sizes, strides);
        scf::YieldOp::create(b, l, out);
      });
  rewriter.replaceOp(op, loop.getResult(0));
  return success();
}

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

LogicalResult lowerCombine(RewriterBase &rewriter, CombineOp op) {
  Location loc = op.getLoc();
  RankedTensorType outType = op.getOutput().getType();
  Type f = outType.getElementType();
  Type idType = op.getIds().getType().getElementType();
  int64_t k = op.getSlots().getType().getDimSize(1);
  int64_t numExperts = op.getInput().getType().getDimSize(0);
  int64_t capacity = op.getInput().getType().getDimSize(1);
  Value input = op.getInput(), slots = op.getSlots(), ids = op.getIds(),
        weights = op.getWeights();

  SmallVector<OpFoldResult> sizes = {
      tensor::getMixedSize(rewriter, loc, slots, 0),
      tensor::getMixedSize(rewriter, loc, input, 2)};
  Value init = buildEmpty(rewriter, loc, sizes, f);
  AffineMap identity =
      AffineMap::getMultiDimIdentityMap(2, rewriter.getContext());
  Value result = buildGeneric(
      rewriter, loc, init, ValueRange{}, {identity},
      {IT::parallel, IT::parallel}, [&](OpBuilder &b, Location l, ValueRange) {
        Value t = linalg::IndexOp::create(b, l, 0);
        Value h = linalg::IndexOp::create(b, l, 1);
        Value zeroId = buildConstant(b, l, idType, 0);
        Value acc = buildConstant(b, l, f, 0);
        for (int64_t j = 0; j < k; ++j) {
          Value jIdx = cIndex(b, l, j);
          Value slot = tensor::ExtractOp::create(b, l, slots, {t, jIdx});
          Value expert = tensor::ExtractOp::create(b, l, ids, {t, jIdx});
          Value w = tensor::ExtractOp::create(b, l, weights, {t, jIdx});
          auto inRange = [&](Value v, int64_t bound) {
            return arith::AndIOp::create(
                b, l,
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, v,
                                      zeroId),
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, v,
                                      buildConstant(b, l, idType, bound)));
          };
          Value valid = arith::AndIOp::create(b, l, inRange(slot, capacity),
                                              inRange(expert, numExperts));
          Value sIdx = indexCast(
              b, l, arith::SelectOp::create(b, l, valid, slot, zeroId));
          Value eIdx = indexCast(
              b, l, arith::SelectOp::create(b, l, valid, expert, zeroId));
          Value v = tensor::ExtractOp::create(b, l, input, {eIdx, sIdx, h});
          Value term = arith::MulFOp::create(b, l, w, v);
          Value sum = arith::AddFOp::create(b, l, acc, term);
          acc = arith::SelectOp::create(b, l, valid, sum, acc);
        }
        return acc;
      });
  rewriter.replaceOp(op, result);
  return success();
}

struct ConvertMoEToLinalgPass
    : moe::impl::ConvertMoEToLinalgPassBase<ConvertMoEToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    bool unsupported = false;
    getOperation()->walk([&](Operation *op) {
      if (!isa<RouterOp, DispatchOp, ExpertsOp, CombineOp, LayerOp>(op))
        return;
      if (isa<LayerOp>(op)) {
        op->emitOpError() << "must be decomposed first (run moe-decompose)";
        unsupported = true;
        return;
      }
      for (Type type :
           llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes())) {
        Type element = cast<ShapedType>(type).getElementType();
        if (isa<FloatType>(element) && !element.isF32()) {
          op->emitOpError() << "lowering supports f32 activations and weights "
                            << "only, got " << element;
          unsupported = true;
          return;
        }
      }
      ops.push_back(op);
    });
    if (unsupported)
      return signalPassFailure();

    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      LogicalResult result =
          TypeSwitch<Operation *, LogicalResult>(op)
              .Case([&](RouterOp o) { return lowerRouter(rewriter, o); })
              .Case([&](DispatchOp o) {
                return lowerDispatch(rewriter, o, parallelDispatch);
              })
              .Case([&](ExpertsOp o) { return lowerExperts(rewriter, o); })
              .Case([&](CombineOp o) { return lowerCombine(rewriter, o); });
      if (failed(result))
        return signalPassFailure();
    }
  }
};

} // namespace
