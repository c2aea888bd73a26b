//===- Attention.cpp - the importer's attention ---------------------------===//
//
// ModelBuilder's attention (ModelBuilder.h): rotary embedding at each
// token's position, causal grouped-query attention over the prompt, and a
// decode step's attention of one token per sequence over the key/value
// cache, with the layer's slice of the cache and the stack of the keys and
// values a generation function returns.
//
//===----------------------------------------------------------------------===//

#include "ModelBuilder.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;
using IT = utils::IteratorType;

Value ModelBuilder::rope(Value x) {
  // cos/sin tables [positions, head_dim / 2] computed in f32 the way Hugging
  // Face does: inv_freq[i] = 1 / theta^(2i / d), angle = pos * inv_freq (the
  // second half of each head uses the same angles).
  int64_t d = config.headDim, half = d / 2;
  int64_t heads = cast<RankedTensorType>(x.getType()).getDimSize(1) / d;
  bool decode = mode == Mode::Decode;
  int64_t numPositions = decode ? maxSeqLen : seqLen;
  SmallVector<float> cosTable(numPositions * half),
      sinTable(numPositions * half);
  for (int64_t i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(d);
    float invFreq =
        1.0f / std::pow(static_cast<float>(config.ropeTheta), exponent);
    for (int64_t pos = 0; pos < numPositions; ++pos) {
      float angle = static_cast<float>(pos) * invFreq;
      cosTable[pos * half + i] = std::cos(angle);
      sinTable[pos * half + i] = std::sin(angle);
    }
  }
  Type f = b.getF32Type();
  auto tableType = RankedTensorType::get({numPositions, half}, f);
  Value cosT = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(tableType, ArrayRef<float>(cosTable)));
  Value sinT = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(tableType, ArrayRef<float>(sinTable)));
  // Each head's halves as [T, heads, 2, half]; out[.., s, i] rotates the
  // pair (x[.., 0, i], x[.., 1, i]) by the angle of the token's position:
  // t mod S over a prompt, positions[t] in a decode step. The body reads
  // only its operands and its own indices, so the op partitions over tokens
  // and heads (moe-partition).
  int64_t rows = cast<RankedTensorType>(x.getType()).getDimSize(0);
  auto pairsType = RankedTensorType::get({rows, heads, 2, half}, f);
  Value pairs = tensor::ExpandShapeOp::create(
      b, loc, pairsType, x, ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}});
  AffineExpr t, hh, sd, i;
  bindDims(ctx, t, hh, sd, i);
  AffineExpr zero = b.getAffineConstantExpr(0),
             one = b.getAffineConstantExpr(1);
  SmallVector<Value> inputs = {pairs, pairs};
  SmallVector<AffineMap> maps = {AffineMap::get(4, 0, {t, hh, zero, i}, ctx),
                                 AffineMap::get(4, 0, {t, hh, one, i}, ctx)};
  if (decode) {
    inputs.push_back(positions);
    maps.push_back(AffineMap::get(4, 0, {t}, ctx));
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(4, ctx));
  int64_t seq = seqLen;
  Value rotated = buildGeneric(
      b, loc, buildEmpty(b, loc, tensor::getMixedSizes(b, loc, pairs), f),
      inputs, maps, SmallVector<IT>(4, IT::parallel),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        auto idx = [&](int64_t v) {
          return arith::ConstantIndexOp::create(nb, l, v).getResult();
        };
        Value pos;
        if (decode) {
          // The runtime checks positions; the clamp only keeps a bad one
          // from reading outside the tables.
          pos = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[2]);
          pos = arith::MinSIOp::create(
              nb, l, arith::MaxSIOp::create(nb, l, pos, idx(0)),
              idx(numPositions - 1));
        } else {
          pos = arith::RemUIOp::create(nb, l, linalg::IndexOp::create(nb, l, 0),
                                       idx(seq));
        }
        Value col = linalg::IndexOp::create(nb, l, 3);
        Value firstHalf =
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq,
                                  linalg::IndexOp::create(nb, l, 2), idx(0));
        Value self = arith::SelectOp::create(nb, l, firstHalf, a[0], a[1]);
        Value other = arith::SelectOp::create(nb, l, firstHalf, a[1], a[0]);
        Value signed_ = arith::SelectOp::create(
            nb, l, firstHalf, arith::NegFOp::create(nb, l, other), other);
        Value cs = tensor::ExtractOp::create(nb, l, cosT, {pos, col});
        Value sn = tensor::ExtractOp::create(nb, l, sinT, {pos, col});
        return arith::AddFOp::create(nb, l,
                                     arith::MulFOp::create(nb, l, self, cs),
                                     arith::MulFOp::create(nb, l, signed_, sn))
            .getResult();
      });
  return tensor::CollapseShapeOp::create(
      b, loc, x.getType(), rotated,
      ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}});
}

/// `masked`, or'ed with whether key position `key` lies before the sliding
/// window of query position `query` (key + window <= query); `masked` as
/// it is without a window. `key` and `query` are both index or both i64.
static Value orBeforeWindow(OpBuilder &b, Location l, Value masked, Value key,
                            Value query, int64_t window) {
  if (window <= 0)
    return masked;
  Value reach = arith::AddIOp::create(
      b, l, key,
      arith::ConstantOp::create(b, l, b.getIntegerAttr(key.getType(), window)));
  return arith::OrIOp::create(
      b, l, masked,
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::sle, reach, query));
}

Value ModelBuilder::attention(Value q, Value k, Value v, int64_t window) {
  int64_t nh = config.numHeads, nkv = config.numKvHeads, d = config.headDim;
  int64_t group = nh / nkv;
  Type f = b.getF32Type();
  auto split = [&](Value x, int64_t heads) {
    return tensor::ExpandShapeOp::create(
               b, loc, RankedTensorType::get({batch, seqLen, heads, d}, f), x,
               ArrayRef<ReassociationIndices>{{0, 1}, {2, 3}})
        .getResult();
  };
  Value q4 = split(q, nh), k4 = split(k, nkv), v4 = split(v, nkv);

  // scores[b, h, i, j] = sum_d q[b, i, h, d] * k[b, j, h / group, d]
  AffineExpr bb, h, i, j, dd;
  bindDims(ctx, bb, h, i, j, dd);
  SmallVector<IT> headIterators = {IT::parallel, IT::parallel, IT::parallel,
                                   IT::parallel, IT::reduction};
  Value scores = buildContraction(
      b, loc, q4, k4,
      buildZeros(b, loc,
                 {b.getIndexAttr(batch), b.getIndexAttr(nh),
                  b.getIndexAttr(seqLen), b.getIndexAttr(seqLen)},
                 f),
      {AffineMap::get(5, 0, {bb, i, h, dd}, ctx),
       AffineMap::get(5, 0, {bb, j, h.floorDiv(group), dd}, ctx),
       AffineMap::get(5, 0, {bb, h, i, j}, ctx)},
      headIterators);
  // Scale, then mask the future (j > i) and, with a sliding window, the
  // past beyond it (j + window <= i) with -inf.
  double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Value masked = buildMap(
      b, loc, ValueRange{scores}, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value ii = linalg::IndexOp::create(nb, l, 2);
        Value jj = linalg::IndexOp::create(nb, l, 3);
        Value future = orBeforeWindow(
            nb, l,
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ugt, jj, ii), jj,
            ii, window);
        Value scaled =
            arith::MulFOp::create(nb, l, a[0], buildConstant(nb, l, f, scale));
        Value negInf = arith::ConstantOp::create(
            nb, l, nb.getF32FloatAttr(-std::numeric_limits<float>::infinity()));
        return arith::SelectOp::create(nb, l, future, negInf, scaled)
            .getResult();
      });
  // Softmax over the keys of each (sequence, head, query).
  Value probs = buildSoftmaxRows(b, loc, masked);

  // out[b, i, h, d] = sum_j probs[b, h, i, j] * v[b, j, h / group, d]
  AffineExpr ob, oi, oh, od, oj;
  bindDims(ctx, ob, oi, oh, od, oj);
  Value out = buildContraction(
      b, loc, probs, v4,
      buildZeros(b, loc,
                 {b.getIndexAttr(batch), b.getIndexAttr(seqLen),
                  b.getIndexAttr(nh), b.getIndexAttr(d)},
                 f),
      {AffineMap::get(5, 0, {ob, oh, oi, oj}, ctx),
       AffineMap::get(5, 0, {ob, oj, oh.floorDiv(group), od}, ctx),
       AffineMap::get(5, 0, {ob, oi, oh, od}, ctx)},
      headIterators);
  return tensor::CollapseShapeOp::create(
      b, loc, out, ArrayRef<ReassociationIndices>{{0, 1}, {2, 3}});
}

Value ModelBuilder::cacheSlice(Value cache, int64_t layer) {
  auto type = cast<RankedTensorType>(cache.getType());
  ArrayRef<int64_t> shape = type.getShape();
  auto sliceType = RankedTensorType::get(shape.drop_front(), b.getF32Type());
  SmallVector<OpFoldResult> offsets(shape.size(), b.getIndexAttr(0));
  offsets[0] = b.getIndexAttr(layer);
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)};
  for (int64_t d : shape.drop_front())
    sizes.push_back(b.getIndexAttr(d));
  SmallVector<OpFoldResult> strides(shape.size(), b.getIndexAttr(1));
  return tensor::ExtractSliceOp::create(b, loc, sliceType, cache, offsets,
                                        sizes, strides);
}

Value ModelBuilder::stackLayer(Value stack, Value x, int64_t layer) {
  ArrayRef<int64_t> shape = cast<RankedTensorType>(x.getType()).getShape();
  SmallVector<OpFoldResult> offsets(shape.size() + 1, b.getIndexAttr(0));
  offsets[0] = b.getIndexAttr(layer);
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)};
  for (int64_t d : shape)
    sizes.push_back(b.getIndexAttr(d));
  SmallVector<OpFoldResult> strides(shape.size() + 1, b.getIndexAttr(1));
  return tensor::InsertSliceOp::create(b, loc, x, stack, offsets, sizes,
                                       strides);
}

Value ModelBuilder::decodeAttention(Value q, Value k, Value v, int64_t layer) {
  int64_t window = config.windowOf(layer);
  int64_t nh = config.numHeads, nkv = config.numKvHeads, d = config.headDim;
  int64_t group = nh / nkv;
  Type f = b.getF32Type();
  // Queries as [B, heads, 1, d] (one query row per head: the products below
  // are batched matrix products moe-linalg-to-blas hands to BLAS).
  Value q4 = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({batch, nh, 1, d}, f), q,
      ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}});
  auto heads = [&](Value x) {
    return tensor::ExpandShapeOp::create(
               b, loc, RankedTensorType::get({batch, nkv, d}, f), x,
               ArrayRef<ReassociationIndices>{{0}, {1, 2}})
        .getResult();
  };
  Value k3 = heads(k), v3 = heads(v);
  Value keys = cacheSlice(kCache, layer), values = cacheSlice(vCache, layer);
  double scale = 1.0 / std::sqrt(static_cast<double>(d));
  auto scaled = [&](OpBuilder &nb, Location l, Value x) {
    return arith::MulFOp::create(nb, l, x, buildConstant(nb, l, f, scale))
        .getResult();
  };
  auto idx = [&](int64_t n) { return OpFoldResult(b.getIndexAttr(n)); };
  SmallVector<OpFoldResult> scoreSizes = {idx(batch), idx(nh), idx(1),
                                          idx(maxSeqLen)};

  // scores[b, h, 0, j] = q[b, h] . keys[b, j, h / group] over the cache,
  // the positions j >= pos[b] (not yet written) masked with -inf.
  AffineExpr bb, h, i, j, dd;
  bindDims(ctx, bb, h, i, j, dd);
  Value scores = buildContraction(
      b, loc, q4, keys, buildZeros(b, loc, scoreSizes, f),
      {AffineMap::get(5, 0, {bb, h, i, dd}, ctx),
       AffineMap::get(5, 0, {bb, j, h.floorDiv(group), dd}, ctx),
       AffineMap::get(5, 0, {bb, h, i, j}, ctx)},
      {IT::parallel, IT::parallel, IT::parallel, IT::parallel, IT::reduction});
  AffineExpr mb, mh, mi, mj;
  bindDims(ctx, mb, mh, mi, mj);
  Value negInf =
      buildConstant(b, loc, f, -std::numeric_limits<double>::infinity());
  Value masked = buildGeneric(
      b, loc, buildEmpty(b, loc, scoreSizes, f), ValueRange{scores, positions},
      {AffineMap::get(4, 0, {mb, mh, mi, mj}, ctx),
       AffineMap::get(4, 0, {mb}, ctx),
       AffineMap::get(4, 0, {mb, mh, mi, mj}, ctx)},
      SmallVector<IT>(4, IT::parallel),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value jj = arith::IndexCastOp::create(
            nb, l, nb.getI64Type(), linalg::IndexOp::create(nb, l, 3));
        // A sliding window keeps the keys pos - window < j (the token's own
        // position is the window's last).
        Value unwritten = orBeforeWindow(
            nb, l,
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sge, jj, a[1]),
            jj, a[1], window);
        return arith::SelectOp::create(nb, l, unwritten, negInf,
                                       scaled(nb, l, a[0]))
            .getResult();
      });
  // The token's own score, self[b, h, 0] = q[b, h] . k[b, h / group].
  AffineExpr sb, sh, si, sd;
  bindDims(ctx, sb, sh, si, sd);
  Value self = buildContraction(
      b, loc, q4, k3, buildZeros(b, loc, {idx(batch), idx(nh), idx(1)}, f),
      {AffineMap::get(4, 0, {sb, sh, si, sd}, ctx),
       AffineMap::get(4, 0, {sb, sh.floorDiv(group), sd}, ctx),
       AffineMap::get(4, 0, {sb, sh, si}, ctx)},
      {IT::parallel, IT::parallel, IT::parallel, IT::reduction});
  self = buildMap(b, loc, ValueRange{self},
                  [&](OpBuilder &nb, Location l, ValueRange a) {
                    return scaled(nb, l, a[0]);
                  });

  // Softmax over the cached positions and the token itself: exp(x - max)
  // over sum(exp(x - max)).
  Value cacheMax = buildRowReduce(
      b, loc, masked, negInf,
      [](OpBuilder &nb, Location l, Value acc, Value x) {
        return arith::MaximumFOp::create(nb, l, acc, x).getResult();
      });
  Value max = buildMap(
      b, loc, ValueRange{cacheMax, self},
      [](OpBuilder &nb, Location l, ValueRange a) {
        return arith::MaximumFOp::create(nb, l, a[0], a[1]).getResult();
      });
  Value weights = buildRowBroadcast(
      b, loc, masked, max, [](OpBuilder &nb, Location l, Value x, Value m) {
        return math::ExpOp::create(nb, l, arith::SubFOp::create(nb, l, x, m))
            .getResult();
      });
  Value selfWeight =
      buildMap(b, loc, ValueRange{self, max},
               [](OpBuilder &nb, Location l, ValueRange a) {
                 return math::ExpOp::create(
                            nb, l, arith::SubFOp::create(nb, l, a[0], a[1]))
                     .getResult();
               });
  Value cacheSum =
      buildRowReduce(b, loc, weights, buildConstant(b, loc, f, 0),
                     [](OpBuilder &nb, Location l, Value acc, Value x) {
                       return arith::AddFOp::create(nb, l, acc, x).getResult();
                     });
  Value sum =
      buildMap(b, loc, ValueRange{cacheSum, selfWeight},
               [](OpBuilder &nb, Location l, ValueRange a) {
                 return arith::AddFOp::create(nb, l, a[0], a[1]).getResult();
               });

  // out[b, h, 0, d] = (selfWeight[b, h, 0] v[b, h / group, d]
  //                    + sum_j weights[b, h, 0, j] values[b, j, h / group, d])
  //                   / sum[b, h, 0]
  SmallVector<OpFoldResult> outSizes = {idx(batch), idx(nh), idx(1), idx(d)};
  AffineExpr ob, oh, oi, od, oj;
  bindDims(ctx, ob, oh, oi, od, oj);
  Value own = buildGeneric(
      b, loc, buildEmpty(b, loc, outSizes, f), ValueRange{selfWeight, v3},
      {AffineMap::get(4, 0, {ob, oh, oi}, ctx),
       AffineMap::get(4, 0, {ob, oh.floorDiv(group), od}, ctx),
       AffineMap::get(4, 0, {ob, oh, oi, od}, ctx)},
      SmallVector<IT>(4, IT::parallel),
      [](OpBuilder &nb, Location l, ValueRange a) {
        return arith::MulFOp::create(nb, l, a[0], a[1]).getResult();
      });
  Value weighted = buildContraction(
      b, loc, weights, values, own,
      {AffineMap::get(5, 0, {ob, oh, oi, oj}, ctx),
       AffineMap::get(5, 0, {ob, oj, oh.floorDiv(group), od}, ctx),
       AffineMap::get(5, 0, {ob, oh, oi, od}, ctx)},
      {IT::parallel, IT::parallel, IT::parallel, IT::parallel, IT::reduction});
  Value out = buildGeneric(
      b, loc, buildEmpty(b, loc, outSizes, f), ValueRange{weighted, sum},
      {AffineMap::get(4, 0, {ob, oh, oi, od}, ctx),
       AffineMap::get(4, 0, {ob, oh, oi}, ctx),
       AffineMap::get(4, 0, {ob, oh, oi, od}, ctx)},
      SmallVector<IT>(4, IT::parallel),
      [](OpBuilder &nb, Location l, ValueRange a) {
        return arith::DivFOp::create(nb, l, a[0], a[1]).getResult();
      });
  return tensor::CollapseShapeOp::create(
      b, loc, out, ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}});
}
