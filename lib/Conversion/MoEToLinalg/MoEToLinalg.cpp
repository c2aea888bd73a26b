//===- MoEToLinalg.cpp - moe ops to linalg, tensor and scf ----------------===//
//
// Implements `moe-lower-to-linalg`: the reference semantics of moe.router,
// moe.dispatch, moe.experts and moe.combine (docs/Routing.md) on tensors.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
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

#define DEBUG_TYPE "moe-lower-to-linalg"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOELOWERTOLINALGPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

using IT = utils::IteratorType;

Value indexCast(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isIndex())
    return v;
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

Value intCast(OpBuilder &b, Location loc, Value index, Type type) {
  return arith::IndexCastOp::create(b, loc, type, index);
}

Value cIndex(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

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

/// What the dispatch's slot assignment computes: `slots[t, j]` (the slot of
/// each (token, choice) pair, -1 when dropped), `fill[e]` (the valid pairs
/// routed to each expert, kept or not) and `src[e, c]` (the token in slot c
/// of expert e, -1 for an unused slot).
struct SlotAssignment {
  Value slots, fill, src;
};

/// Shared by both slot assignments.
struct DispatchShape {
  Value ids;
  Type idType;
  int64_t numExperts, capacity, k;
  OpFoldResult numTokens;
};

Value isValidExpert(OpBuilder &b, Location l, Value expert, Type idType,
                    int64_t numExperts) {
  return arith::AndIOp::create(
      b, l,
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, expert,
                            buildConstant(b, l, idType, 0)),
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, expert,
                            buildConstant(b, l, idType, numExperts)));
}

/// One sequential loop over the pairs in drop order (p = j * T + t).
SlotAssignment assignSlotsSequentially(OpBuilder &rewriter, Location loc,
                                       const DispatchShape &d) {
  Type idType = d.idType;
  int64_t capacity = d.capacity, numExperts = d.numExperts;
  Value ids = d.ids;
  Value numTokensV =
      getValueOrCreateConstantIndexOp(rewriter, loc, d.numTokens);
  Value fill0 =
      buildZeros(rewriter, loc, {rewriter.getIndexAttr(numExperts)}, idType);
  Value slots0 = buildEmpty(rewriter, loc,
                            {d.numTokens, rewriter.getIndexAttr(d.k)}, idType);
  Value src0 = buildFilled(
      rewriter, loc,
      {rewriter.getIndexAttr(numExperts), rewriter.getIndexAttr(capacity)},
      buildConstant(rewriter, loc, idType, -1));

  Value zero = cIndex(rewriter, loc, 0), one = cIndex(rewriter, loc, 1);
  Value numPairs = arith::MulIOp::create(rewriter, loc, numTokensV,
                                         cIndex(rewriter, loc, d.k));
  auto loop = scf::ForOp::create(
      rewriter, loc, zero, numPairs, one, ValueRange{fill0, slots0, src0},
      [&](OpBuilder &b, Location l, Value p, ValueRange iter) {
        Value fill = iter[0], slots = iter[1], src = iter[2];
        Value jIdx = arith::DivUIOp::create(b, l, p, numTokensV);
        Value tIdx = arith::RemUIOp::create(b, l, p, numTokensV);
        Value expert = tensor::ExtractOp::create(b, l, ids, {tIdx, jIdx});
        Value zeroId = buildConstant(b, l, idType, 0);
        Value valid = isValidExpert(b, l, expert, idType, numExperts);
        Value eIdx = indexCast(
            b, l, arith::SelectOp::create(b, l, valid, expert, zeroId));
        Value current = tensor::ExtractOp::create(b, l, fill, eIdx);
        Value accept = arith::AndIOp::create(
            b, l, valid,
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, current,
                                  buildConstant(b, l, idType, capacity)));
        Value slot = arith::SelectOp::create(b, l, accept, current,
                                             buildConstant(b, l, idType, -1));
        slots = tensor::InsertOp::create(b, l, slot, slots, {tIdx, jIdx});
        Value bumped = arith::AddIOp::create(b, l, current,
                                             buildConstant(b, l, idType, 1));
        fill = tensor::InsertOp::create(
            b, l, arith::SelectOp::create(b, l, valid, bumped, current), fill,
            eIdx);
        // Record the source token of the slot (a no-op write when dropped).
        Value sIdx = indexCast(
            b, l, arith::SelectOp::create(b, l, accept, current, zeroId));
        Value old = tensor::ExtractOp::create(b, l, src, {eIdx, sIdx});
        Value token = intCast(b, l, tIdx, idType);
        src = tensor::InsertOp::create(
            b, l, arith::SelectOp::create(b, l, accept, token, old), src,
            {eIdx, sIdx});
        scf::YieldOp::create(b, l, ValueRange{fill, slots, src});
      });
  return {loop.getResult(1), loop.getResult(0), loop.getResult(2)};
}

/// Pairs per chunk of the parallel slot assignment: its work is about
/// P·(S + E) + E·C·(P/S + S) for P pairs, E experts and capacity C.
constexpr int64_t kDispatchChunk = 64;

/// The same slots as the sequential loop, from data-parallel steps only (so
/// that every step becomes a GPU kernel). Pair p = j * T + t sits at
/// [p / S, p % S] of a [chunks, S] grid padded with invalid pairs. The slot
/// of a valid pair is the number of earlier valid pairs with its expert: the
/// pairs of that expert in earlier chunks (an exclusive prefix of per-chunk
/// histograms) plus those before it in its own chunk.
/// assignSlotsInParallel's steps, each one or two data-parallel linalg ops,
/// over the values they share (the pair grid's shape, the id type).
class ParallelSlots {
public:
  ParallelSlots(OpBuilder &rewriter, Location loc, const DispatchShape &d);
  SlotAssignment build();

private:
  Value expertsOfPairs();
  Value histograms(Value expertOf);
  Value pairsBefore(Value hist);
  Value fills(Value hist);
  Value earlierInChunk(Value expertOf);
  Value rawSlots(Value expertOf, Value within, Value before);
  Value keptSlots(Value rawSlot);
  Value chunksOfSlots(Value before, Value hist);
  Value sources(Value expertOf, Value rawSlot, Value chunkOf);

  Value constId(OpBuilder &b, Location l, int64_t v) const {
    return buildConstant(b, l, idType, v);
  }
  Value countIf(OpBuilder &b, Location l, Value acc, Value cond) const {
    return arith::AddIOp::create(b, l, acc,
                                 arith::ExtUIOp::create(b, l, idType, cond))
        .getResult();
  }
  AffineMap map3(ArrayRef<AffineExpr> exprs) const {
    return AffineMap::get(3, 0, exprs, ctx);
  }

  OpBuilder &rewriter;
  Location loc;
  const DispatchShape &d;
  MLIRContext *ctx;
  Type idType;
  int64_t numExperts, capacity, k;
  static constexpr int64_t chunk = kDispatchChunk;
  Value ids, numTokensV, tokensAtLeast1, numPairs, numChunksV;
  OpFoldResult numChunks, chunkSize, experts, capacityAttr;
  // Up to S pairs (a decode step): no earlier chunks to count or search.
  bool oneChunk;
  AffineExpr d0, d1, d2;
  AffineMap id2;
  SmallVector<IT> parParRed = {IT::parallel, IT::parallel, IT::reduction};
};

ParallelSlots::ParallelSlots(OpBuilder &rewriter, Location loc,
                             const DispatchShape &d)
    : rewriter(rewriter), loc(loc), d(d), ctx(rewriter.getContext()),
      idType(d.idType), numExperts(d.numExperts), capacity(d.capacity),
      k(d.k), ids(d.ids) {
  numTokensV = getValueOrCreateConstantIndexOp(rewriter, loc, d.numTokens);
  // T and the chunk count, both at least 1: no division by zero and no empty
  // grid to search when there are no tokens.
  Value one = cIndex(rewriter, loc, 1);
  tokensAtLeast1 = rewriter.createOrFold<arith::MaxUIOp>(loc, numTokensV, one);
  numPairs = rewriter.createOrFold<arith::MulIOp>(loc, numTokensV,
                                                  cIndex(rewriter, loc, k));
  numChunksV = rewriter.createOrFold<arith::MaxUIOp>(
      loc,
      rewriter.createOrFold<arith::CeilDivUIOp>(loc, numPairs,
                                                cIndex(rewriter, loc, chunk)),
      one);
  numChunks = getAsOpFoldResult(numChunksV);
  oneChunk = isConstantIntValue(numChunks, 1);
  chunkSize = rewriter.getIndexAttr(chunk);
  experts = rewriter.getIndexAttr(numExperts);
  capacityAttr = rewriter.getIndexAttr(capacity);
  bindDims(ctx, d0, d1, d2);
  id2 = AffineMap::getMultiDimIdentityMap(2, ctx);
}

Value ParallelSlots::expertsOfPairs() {
  // expertOf[c, i]: the expert of pair c * S + i, -1 when it is invalid or
  // past the last pair.
  Value expertOf = buildGeneric(
      rewriter, loc, buildEmpty(rewriter, loc, {numChunks, chunkSize}, idType),
      ValueRange{}, {id2}, {IT::parallel, IT::parallel},
      [&](OpBuilder &b, Location l, ValueRange) {
        Value p = arith::AddIOp::create(
            b, l,
            arith::MulIOp::create(b, l, linalg::IndexOp::create(b, l, 0),
                                  cIndex(b, l, chunk)),
            linalg::IndexOp::create(b, l, 1));
        Value inRange =
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, p, numPairs);
        // The padding past the last pair reads nothing (with no tokens,
        // `ids` has no element to read).
        auto read = scf::IfOp::create(
            b, l, inRange,
            [&](OpBuilder &tb, Location tl) {
              Value t = arith::RemUIOp::create(tb, tl, p, tokensAtLeast1);
              Value j = arith::DivUIOp::create(tb, tl, p, tokensAtLeast1);
              Value expert = tensor::ExtractOp::create(tb, tl, ids, {t, j});
              Value valid = isValidExpert(tb, tl, expert, idType, numExperts);
              scf::YieldOp::create(
                  tb, tl,
                  ValueRange{arith::SelectOp::create(tb, tl, valid, expert,
                                                     constId(tb, tl, -1))});
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, ValueRange{constId(eb, el, -1)});
            });
        return read.getResult(0);
      });
  return expertOf;
}

Value ParallelSlots::histograms(Value expertOf) {
  // hist[c, e]: the pairs of chunk c routed to expert e.
  Value hist = buildGeneric(
      rewriter, loc, buildZeros(rewriter, loc, {numChunks, experts}, idType),
      ValueRange{expertOf}, {map3({d0, d2}), map3({d0, d1})}, parParRed,
      [&](OpBuilder &b, Location l, ValueRange a) {
        Value e = intCast(b, l, linalg::IndexOp::create(b, l, 1), idType);
        return countIf(
            b, l, a[1],
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, a[0], e));
      });
  return hist;
}

Value ParallelSlots::pairsBefore(Value hist) {
  // before[c, e]: the pairs of chunks before c routed to expert e.
  Value before;
  if (!oneChunk)
    before = buildGeneric(
        rewriter, loc, buildZeros(rewriter, loc, {numChunks, experts}, idType),
        ValueRange{hist}, {map3({d2, d1}), map3({d0, d1})}, parParRed,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value earlier = arith::CmpIOp::create(
              b, l, arith::CmpIPredicate::ult, linalg::IndexOp::create(b, l, 2),
              linalg::IndexOp::create(b, l, 0));
          return arith::AddIOp::create(
                     b, l, a[1],
                     arith::SelectOp::create(b, l, earlier, a[0],
                                             constId(b, l, 0)))
              .getResult();
        });
  return before;
}

Value ParallelSlots::fills(Value hist) {
  // fill[e] = sum over chunks of hist[c, e] (hist itself for one chunk).
  AffineExpr e0, c0;
  bindDims(ctx, e0, c0);
  Value fill =
      oneChunk
          ? tensor::CollapseShapeOp::create(
                rewriter, loc, hist, ArrayRef<ReassociationIndices>{{0, 1}})
                .getResult()
          : buildGeneric(
                rewriter, loc, buildZeros(rewriter, loc, {experts}, idType),
                ValueRange{hist},
                {AffineMap::get(2, 0, {c0, e0}, ctx),
                 AffineMap::get(2, 0, {e0}, ctx)},
                {IT::parallel, IT::reduction},
                [&](OpBuilder &b, Location l, ValueRange a) {
                  return arith::AddIOp::create(b, l, a[1], a[0]).getResult();
                });
  return fill;
}

Value ParallelSlots::earlierInChunk(Value expertOf) {
  // within[c, i]: the earlier pairs of chunk c with the expert of pair i.
  Value within = buildGeneric(
      rewriter, loc, buildZeros(rewriter, loc, {numChunks, chunkSize}, idType),
      ValueRange{expertOf, expertOf},
      {map3({d0, d2}), map3({d0, d1}), map3({d0, d1})}, parParRed,
      [&](OpBuilder &b, Location l, ValueRange a) {
        Value earlier = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult,
                                              linalg::IndexOp::create(b, l, 2),
                                              linalg::IndexOp::create(b, l, 1));
        Value same =
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, a[0], a[1]);
        return countIf(b, l, a[2], arith::AndIOp::create(b, l, earlier, same));
      });
  return within;
}

Value ParallelSlots::rawSlots(Value expertOf, Value within,
                               Value before) {
  // rawSlot[c, i]: the slot pair c * S + i would take with unlimited
  // capacity, -1 for an invalid pair.
  Value rawSlot = buildGeneric(
      rewriter, loc, buildEmpty(rewriter, loc, {numChunks, chunkSize}, idType),
      ValueRange{expertOf, within}, {id2, id2, id2},
      {IT::parallel, IT::parallel},
      [&](OpBuilder &b, Location l, ValueRange a) {
        Value valid = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge,
                                            a[0], constId(b, l, 0));
        Value base = a[1];
        if (!oneChunk) {
          Value e = indexCast(
              b, l,
              arith::SelectOp::create(b, l, valid, a[0], constId(b, l, 0)));
          Value earlier = tensor::ExtractOp::create(
              b, l, before, {linalg::IndexOp::create(b, l, 0), e});
          base = arith::AddIOp::create(b, l, earlier, a[1]);
        }
        return arith::SelectOp::create(b, l, valid, base, constId(b, l, -1))
            .getResult();
      });
  return rawSlot;
}

Value ParallelSlots::keptSlots(Value rawSlot) {
  // slots[t, j]: the raw slot if it is under the capacity, else -1.
  Value slots = buildGeneric(
      rewriter, loc,
      buildEmpty(rewriter, loc, {d.numTokens, rewriter.getIndexAttr(k)},
                 idType),
      ValueRange{}, {id2}, {IT::parallel, IT::parallel},
      [&](OpBuilder &b, Location l, ValueRange) {
        Value p = arith::AddIOp::create(
            b, l,
            arith::MulIOp::create(b, l, linalg::IndexOp::create(b, l, 1),
                                  numTokensV),
            linalg::IndexOp::create(b, l, 0));
        Value c = arith::DivUIOp::create(b, l, p, cIndex(b, l, chunk));
        Value i = arith::RemUIOp::create(b, l, p, cIndex(b, l, chunk));
        Value raw = tensor::ExtractOp::create(b, l, rawSlot, {c, i});
        Value kept = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, raw,
                                           constId(b, l, capacity));
        // raw is -1 for an invalid pair, which is also the dropped value.
        return arith::SelectOp::create(b, l, kept, raw, constId(b, l, -1))
            .getResult();
      });
  return slots;
}

Value ParallelSlots::chunksOfSlots(Value before, Value hist) {
  // chunkOf[e, s]: the chunk holding slot s of expert e, i.e. the number of
  // chunks whose pairs of e all come before it (the chunk count when s is
  // past the expert's pairs).
  Value chunkOf;
  if (!oneChunk)
    chunkOf = buildGeneric(
        rewriter, loc,
        buildZeros(rewriter, loc, {experts, capacityAttr}, idType),
        ValueRange{before, hist},
        {map3({d2, d0}), map3({d2, d0}), map3({d0, d1})}, parParRed,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value end = arith::AddIOp::create(b, l, a[0], a[1]);
          Value s = intCast(b, l, linalg::IndexOp::create(b, l, 1), idType);
          return countIf(
              b, l, a[2],
              arith::CmpIOp::create(b, l, arith::CmpIPredicate::sle, end, s));
        });
  return chunkOf;
}

Value ParallelSlots::sources(Value expertOf, Value rawSlot,
                              Value chunkOf) {
  // src[e, s]: the token of the pair of that chunk with expert e and raw
  // slot s; none matches for an unused slot, which keeps -1.
  Value src = buildGeneric(
      rewriter, loc,
      buildFilled(rewriter, loc, {experts, capacityAttr},
                  constId(rewriter, loc, -1)),
      // expertOf's first row is read only for the extent of the reduction
      // over a chunk's pairs (the searched chunk is data-dependent).
      // With one chunk it is the only one searched: an unused slot (past
      // the expert's pairs) matches no pair there either.
      oneChunk ? ValueRange{expertOf} : ValueRange{chunkOf, expertOf},
      oneChunk
          ? SmallVector<AffineMap>{map3({getAffineConstantExpr(0, ctx), d2}),
                                   map3({d0, d1})}
          : SmallVector<AffineMap>{map3({d0, d1}),
                                   map3({getAffineConstantExpr(0, ctx), d2}),
                                   map3({d0, d1})},
      parParRed, [&](OpBuilder &b, Location l, ValueRange a) {
        Value c = cIndex(b, l, 0);
        Value inGrid = arith::ConstantIntOp::create(b, l, 1, 1);
        if (!oneChunk) {
          c = indexCast(b, l, a[0]);
          inGrid = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, c,
                                         numChunksV);
          c = arith::SelectOp::create(b, l, inGrid, c, cIndex(b, l, 0));
        }
        Value i = linalg::IndexOp::create(b, l, 2);
        Value expert = tensor::ExtractOp::create(b, l, expertOf, {c, i});
        Value raw = tensor::ExtractOp::create(b, l, rawSlot, {c, i});
        Value e = intCast(b, l, linalg::IndexOp::create(b, l, 0), idType);
        Value s = intCast(b, l, linalg::IndexOp::create(b, l, 1), idType);
        Value match = arith::AndIOp::create(
            b, l, inGrid,
            arith::AndIOp::create(
                b, l,
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, expert,
                                      e),
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, raw, s)));
        Value p = arith::AddIOp::create(
            b, l, arith::MulIOp::create(b, l, c, cIndex(b, l, chunk)), i);
        Value t = intCast(b, l, arith::RemUIOp::create(b, l, p, tokensAtLeast1),
                          idType);
        return arith::SelectOp::create(b, l, match, t, a.back()).getResult();
      });
  return src;
}

SlotAssignment ParallelSlots::build() {
  Value expertOf = expertsOfPairs();
  Value hist = histograms(expertOf);
  Value before = pairsBefore(hist);
  Value fill = fills(hist);
  Value within = earlierInChunk(expertOf);
  Value rawSlot = rawSlots(expertOf, within, before);
  Value slots = keptSlots(rawSlot);
  Value chunkOf = chunksOfSlots(before, hist);
  return {slots, fill, sources(expertOf, rawSlot, chunkOf)};
}

SlotAssignment assignSlotsInParallel(OpBuilder &rewriter, Location loc,
                                     const DispatchShape &d) {
  return ParallelSlots(rewriter, loc, d).build();
}

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

struct MoELowerToLinalgPass
    : moe::impl::MoELowerToLinalgPassBase<MoELowerToLinalgPass> {
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
