//===- DispatchSlots.cpp - the dispatch's slot assignment -----------------===//
//
// The two forms of moe.dispatch's slot assignment (DispatchSlots.h): they
// give the same slots, the sequential one in one scf.for, the parallel one
// in linalg ops that each become a kernel on the CUDA target.
//
//===----------------------------------------------------------------------===//

#include "DispatchSlots.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
using IT = utils::IteratorType;
} // namespace

/// One sequential loop over the pairs in drop order (p = j * T + t).
SlotAssignment mlir::moe::assignSlotsSequentially(OpBuilder &rewriter,
                                                  Location loc,
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

namespace {

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
      idType(d.idType), numExperts(d.numExperts), capacity(d.capacity), k(d.k),
      ids(d.ids) {
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

Value ParallelSlots::rawSlots(Value expertOf, Value within, Value before) {
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

Value ParallelSlots::sources(Value expertOf, Value rawSlot, Value chunkOf) {
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

} // namespace

SlotAssignment mlir::moe::assignSlotsInParallel(OpBuilder &rewriter,
                                                Location loc,
                                                const DispatchShape &d) {
  return ParallelSlots(rewriter, loc, d).build();
}
