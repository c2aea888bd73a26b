//===- ModelImport.cpp - Hugging Face-style config -> MLIR ----------------===//
//
// The decoder skeleton shared by the four architectures:
//
//   x = embed(ids)
//   per layer:  x = x + o_proj(attention(rope(q), rope(k), v))  over rmsnorm(x)
//               x = x + moe.layer(rmsnorm(x))
//   return rmsnorm(x)
//
// ScMoE (shortcut-connected MoE) replaces the second line by pairs: layer
// 2i adds a dense SwiGLU MLP of u = rmsnorm(x), and layer 2i+1 adds its
// shared expert of its own rmsnorm(x) and then the routed experts of u.
//
// built as one function, `forward` over [B, S], or for generation as two
// (docs/Generation.md): `prefill` over the prompt [B, S], which also returns
// every layer's keys and values, and `decode`, one token per sequence at its
// own position, attending to a cache of capacity M that the runtime keeps:
//
//   prefill(ids [B, S], weights...)
//       -> (hidden [B, S, H], k [L, B, S, kvh, d], v [L, B, S, kvh, d])
//   decode(ids [B, 1], pos [B], kcache [L, B, M, kvh, d], vcache, weights...)
//       -> (hidden [B, 1, H], k [L, B, 1, kvh, d], v [L, B, 1, kvh, d])
//
// Both are pure: the runtime writes the returned keys and values into its
// cache (decode's at `pos`), so no pass needs in-place updates.
//
// The model is built whole, with single-rank semantics: nothing here depends
// on a plan or a rank. Each checkpoint tensor is a function argument named by
// `moe.weight` and marked with its parallel role (`moe.parallel`); each
// decoder layer's ops carry `moe.decoder_layer`. The passes (moe-to-spmd)
// make the rank's program and pack the weights (docs/Parallelism.md).
//
//===----------------------------------------------------------------------===//

#include "moe/Import/ModelImport.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using IT = utils::IteratorType;

//===----------------------------------------------------------------------===//
// Model building
//===----------------------------------------------------------------------===//

namespace {

class ModelBuilder {
public:
  /// The model over token ids [batch, seqLen]; with `microbatches` > 1 (a
  /// pipeline), the model of one microbatch of batch / microbatches
  /// sequences, which moe-pipeline runs once per microbatch.
  ModelBuilder(MLIRContext *ctx, const ModelConfig &config, int64_t batch,
               int64_t seqLen, int64_t microbatches, int64_t maxSeqLen)
      : ctx(ctx), b(ctx), loc(UnknownLoc::get(ctx)), config(config),
        microbatches(microbatches), maxSeqLen(maxSeqLen),
        batch(batch / microbatches), promptLen(seqLen) {}

  OwningOpRef<ModuleOp> build();

private:
  /// What a function computes.
  enum class Mode { Forward, Prefill, Decode };
  /// Adds the function of `mode` to `module`.
  void buildFunction(ModuleOp module, Mode mode);
  /// The weight `name` of shape `shape` ([count, ...] when stacked: a name
  /// with "{}", the expert index): a new function argument, named after its
  /// checkpoint tensor and marked with its parallel `role` if it has one
  /// ("column", "row"; moe-shard splits it by the role).
  Value weight(llvm::StringRef name, ArrayRef<int64_t> shape, int64_t count = 1,
               StringRef role = {});
  /// The MoE weights of a layer.
  LocalLayerOperands moeWeights(const std::string &prefix);
  IntegerAttr capacityFor(int64_t numTokens);

  Value f32(double v) { return buildConstant(b, loc, b.getF32Type(), v); }
  Value add(Value x, Value y);
  Value rmsNorm(Value x, Value w);
  Value linear(Value x, Value w, Value bias = {});
  /// Rotary embedding of x [T, heads * head_dim] (any number of heads), at
  /// each token's position in its sequence (decode: `positions`).
  Value rope(Value x);
  Value attention(Value q, Value k, Value v);
  /// Decode attention of one token per sequence (q, k, v [B, heads * d])
  /// over the cached keys and values of `layer` and its own.
  Value decodeAttention(Value q, Value k, Value v, int64_t layer);
  /// Layer `layer`'s slice [B, M, kvh, d] of a cache argument.
  Value cacheSlice(Value cache, int64_t layer);
  /// Inserts x [B, S, kvh, d] as layer `layer` of `stack` [L, B, S, kvh, d].
  Value stackLayer(Value stack, Value x, int64_t layer);
  /// The MoE block of a layer on the tokens x.
  Value moeBlock(Value x, const std::string &prefix);
  /// A dense SwiGLU MLP `prefix`{gate,up,down}_proj of width F on x [T, H]:
  /// Megatron column-parallel gate and up, row-parallel down.
  Value denseMlp(Value x, const std::string &prefix, int64_t f);
  /// The second half of decoder layer `layer`, on x after attention.
  Value feedForward(Value x, int64_t layer, const std::string &prefix);
  Value embed(Value ids);
  /// Decoder layer `layer` on x.
  Value decoderLayer(Value x, int64_t layer);

  MLIRContext *ctx;
  OpBuilder b;
  Location loc;
  const ModelConfig &config;
  int64_t microbatches;
  // The capacity M of the decode step's cache (0: forward only).
  int64_t maxSeqLen;
  // The model's sequences (one microbatch's in a pipeline), the prompt's
  // length, and the function being built's sequence length and tokens.
  int64_t batch, promptLen, seqLen = 0, tokens = 0;
  Mode mode = Mode::Forward;
  Block *entry = nullptr;
  // Decode: the tokens' positions [B] and the caches [L, B, M, kvh, d].
  Value positions, kCache, vCache;
  // Prefill and decode: every layer's keys and values [L, B, S, kvh, d].
  Value kStack, vStack;
  // ScMoE: the even layer's MLP input, which the next layer's experts route.
  Value shortcut;
  // The weight arguments, their names and roles.
  struct WeightArg {
    BlockArgument arg;
    std::string name, role;
  };
  SmallVector<WeightArg> weightArgs;
};

Value ModelBuilder::weight(llvm::StringRef name, ArrayRef<int64_t> shape,
                           int64_t count, StringRef role) {
  SmallVector<int64_t> full;
  if (count > 1 || name.contains("{}"))
    full.push_back(count);
  full.append(shape.begin(), shape.end());
  BlockArgument arg =
      entry->addArgument(RankedTensorType::get(full, b.getF32Type()), loc);
  weightArgs.push_back({arg, name.str(), role.str()});
  return arg;
}

Value ModelBuilder::add(Value x, Value y) {
  return buildMap(b, loc, ValueRange{x, y},
                  [](OpBuilder &nb, Location l, ValueRange a) {
                    return arith::AddFOp::create(nb, l, a[0], a[1]).getResult();
                  });
}

Value ModelBuilder::rmsNorm(Value x, Value w) {
  // x * rsqrt(mean(x^2) + eps) * w, in the order Hugging Face computes it.
  AffineExpr t, h;
  bindDims(ctx, t, h);
  Value sumSq = buildGeneric(
      b, loc, buildZeros(b, loc, {b.getIndexAttr(tokens)}, b.getF32Type()),
      ValueRange{x},
      {AffineMap::get(2, 0, {t, h}, ctx), AffineMap::get(2, 0, {t}, ctx)},
      {IT::parallel, IT::reduction},
      [](OpBuilder &nb, Location l, ValueRange a) {
        Value sq = arith::MulFOp::create(nb, l, a[0], a[0]);
        return arith::AddFOp::create(nb, l, a[1], sq).getResult();
      });
  double hidden = static_cast<double>(config.hiddenSize);
  double eps = config.rmsNormEps;
  return buildGeneric(
      b, loc,
      buildEmpty(b, loc, tensor::getMixedSizes(b, loc, x), b.getF32Type()),
      ValueRange{x, sumSq, w},
      {AffineMap::get(2, 0, {t, h}, ctx), AffineMap::get(2, 0, {t}, ctx),
       AffineMap::get(2, 0, {h}, ctx), AffineMap::get(2, 0, {t, h}, ctx)},
      {IT::parallel, IT::parallel},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Type f = nb.getF32Type();
        Value mean =
            arith::DivFOp::create(nb, l, a[1], buildConstant(nb, l, f, hidden));
        Value inv = math::RsqrtOp::create(
            nb, l,
            arith::AddFOp::create(nb, l, mean, buildConstant(nb, l, f, eps)));
        Value normed = arith::MulFOp::create(nb, l, a[0], inv);
        return arith::MulFOp::create(nb, l, a[2], normed).getResult();
      });
}

Value ModelBuilder::linear(Value x, Value w, Value bias) {
  Value y = buildMatmulTransposedB(b, loc, x, w);
  if (!bias)
    return y;
  AffineExpr t, c;
  bindDims(ctx, t, c);
  return buildGeneric(
      b, loc,
      buildEmpty(b, loc, tensor::getMixedSizes(b, loc, y), b.getF32Type()),
      ValueRange{y, bias},
      {AffineMap::get(2, 0, {t, c}, ctx), AffineMap::get(2, 0, {c}, ctx),
       AffineMap::get(2, 0, {t, c}, ctx)},
      {IT::parallel, IT::parallel},
      [](OpBuilder &nb, Location l, ValueRange a) {
        return arith::AddFOp::create(nb, l, a[0], a[1]).getResult();
      });
}

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

Value ModelBuilder::attention(Value q, Value k, Value v) {
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
  // Scale, then mask the future (j > i) with -inf.
  double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Value masked = buildMap(
      b, loc, ValueRange{scores}, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value ii = linalg::IndexOp::create(nb, l, 2);
        Value jj = linalg::IndexOp::create(nb, l, 3);
        Value future =
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ugt, jj, ii);
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
        Value unwritten =
            arith::CmpIOp::create(nb, l, arith::CmpIPredicate::sge, jj, a[1]);
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

LocalLayerOperands ModelBuilder::moeWeights(const std::string &prefix) {
  int64_t e = config.numExperts, h = config.hiddenSize, f = config.expertFfn;
  LocalLayerOperands w;
  switch (config.arch) {
  case ModelArch::Mixtral:
    w.router = weight(prefix + "block_sparse_moe.gate.weight", {e, h});
    w.gate =
        weight(prefix + "block_sparse_moe.experts.{}.w1.weight", {f, h}, e);
    w.up = weight(prefix + "block_sparse_moe.experts.{}.w3.weight", {f, h}, e);
    w.down =
        weight(prefix + "block_sparse_moe.experts.{}.w2.weight", {h, f}, e);
    break;
  case ModelArch::Qwen2Moe: {
    int64_t fs = config.sharedFfn;
    w.router = weight(prefix + "mlp.gate.weight", {e, h});
    w.gate = weight(prefix + "mlp.experts.{}.gate_proj.weight", {f, h}, e);
    w.up = weight(prefix + "mlp.experts.{}.up_proj.weight", {f, h}, e);
    w.down = weight(prefix + "mlp.experts.{}.down_proj.weight", {h, f}, e);
    w.sharedGateProj =
        weight(prefix + "mlp.shared_expert.gate_proj.weight", {fs, h});
    w.sharedUp = weight(prefix + "mlp.shared_expert.up_proj.weight", {fs, h});
    w.sharedDown =
        weight(prefix + "mlp.shared_expert.down_proj.weight", {h, fs});
    w.sharedGate = weight(prefix + "mlp.shared_expert_gate.weight", {1, h});
    break;
  }
  case ModelArch::ScMoe:
    w.router = weight(prefix + "mlp.gate.weight", {e, h});
    w.gate = weight(prefix + "mlp.experts.{}.gate_proj.weight", {f, h}, e);
    w.up = weight(prefix + "mlp.experts.{}.up_proj.weight", {f, h}, e);
    w.down = weight(prefix + "mlp.experts.{}.down_proj.weight", {h, f}, e);
    break;
  case ModelArch::Switch:
    w.router = weight(prefix + "mlp.router.weight", {e, h});
    w.up = weight(prefix + "mlp.experts.{}.wi.weight", {f, h}, e);
    w.down = weight(prefix + "mlp.experts.{}.wo.weight", {h, f}, e);
    break;
  }
  return w;
}

IntegerAttr ModelBuilder::capacityFor(int64_t numTokens) {
  if (!config.capacityFactor)
    return {};
  double c = std::ceil(*config.capacityFactor * static_cast<double>(numTokens) *
                       static_cast<double>(config.topK) /
                       static_cast<double>(config.numExperts));
  return b.getI64IntegerAttr(std::max<int64_t>(1, (int64_t)c));
}

Value ModelBuilder::moeBlock(Value x, const std::string &prefix) {
  LocalLayerOperands w = moeWeights(prefix);
  // Its index is its position in the program (moe-partition numbers the
  // layers in order). A capacity counts the tokens of the whole batch.
  return LayerOp::create(b, loc, x.getType(), x, w.router, w.routerBias, w.up,
                         w.down, w.gate, w.sharedUp, w.sharedDown,
                         w.sharedGateProj, w.sharedGate,
                         b.getI64IntegerAttr(config.topK),
                         ScoreFunctionAttr::get(ctx, ScoreFunction::softmax),
                         config.renormalize ? b.getUnitAttr() : UnitAttr(),
                         ActivationAttr::get(ctx, config.activation),
                         capacityFor(tokens * microbatches))
      .getResult();
}

Value ModelBuilder::denseMlp(Value x, const std::string &prefix, int64_t f) {
  int64_t h = config.hiddenSize;
  Value gate =
      linear(x, weight(prefix + "gate_proj.weight", {f, h}, 1, "column"));
  Value up = linear(x, weight(prefix + "up_proj.weight", {f, h}, 1, "column"));
  Value down = weight(prefix + "down_proj.weight", {h, f}, 1, "row");
  auto type = cast<RankedTensorType>(gate.getType());
  AffineMap id = b.getMultiDimIdentityMap(2);
  Value act = buildGeneric(
      b, loc,
      buildEmpty(b, loc,
                 {b.getIndexAttr(type.getDimSize(0)),
                  b.getIndexAttr(type.getDimSize(1))},
                 b.getF32Type()),
      ValueRange{gate, up}, {id, id, id}, {IT::parallel, IT::parallel},
      [](OpBuilder &nb, Location l, ValueRange a) {
        return arith::MulFOp::create(nb, l, buildSilu(nb, l, a[0]), a[1])
            .getResult();
      });
  return linear(act, down);
}

Value ModelBuilder::feedForward(Value x, int64_t layer,
                                const std::string &prefix) {
  Value normed = rmsNorm(x, weight(prefix + "post_attention_layernorm.weight",
                                   {config.hiddenSize}));
  if (config.arch != ModelArch::ScMoe)
    return add(x, moeBlock(normed, prefix));
  if (layer % 2 == 0) {
    shortcut = normed;
    return add(x, denseMlp(normed, prefix + "mlp.", config.sharedFfn));
  }
  x = add(x, denseMlp(normed, prefix + "mlp.shared_expert.", config.sharedFfn));
  return add(x, moeBlock(shortcut, prefix));
}

Value ModelBuilder::embed(Value ids) {
  Value table = weight("model.embed_tokens.weight",
                       {config.vocabSize, config.hiddenSize});
  Value flatIds = tensor::CollapseShapeOp::create(
      b, loc, ids, ArrayRef<ReassociationIndices>{{0, 1}});
  AffineExpr t, h;
  bindDims(ctx, t, h);
  int64_t vocab = config.vocabSize;
  return buildGeneric(
      b, loc,
      buildEmpty(b, loc,
                 {b.getIndexAttr(tokens), b.getIndexAttr(config.hiddenSize)},
                 b.getF32Type()),
      ValueRange{flatIds},
      {AffineMap::get(2, 0, {t}, ctx), AffineMap::get(2, 0, {t, h}, ctx)},
      {IT::parallel, IT::parallel},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        // The runtime rejects out-of-range ids before the call; the clamp
        // only keeps a bad id from reading outside the table.
        Value id = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[0]);
        Value zero = arith::ConstantIndexOp::create(nb, l, 0);
        Value last = arith::ConstantIndexOp::create(nb, l, vocab - 1);
        id = arith::MinSIOp::create(
            nb, l, arith::MaxSIOp::create(nb, l, id, zero), last);
        Value hh = linalg::IndexOp::create(nb, l, 1);
        return tensor::ExtractOp::create(nb, l, table, {id, hh}).getResult();
      });
}

Value ModelBuilder::decoderLayer(Value x, int64_t layer) {
  std::string p = "model.layers." + std::to_string(layer) + ".";
  int64_t h = config.hiddenSize;
  int64_t nh = config.numHeads, nkv = config.numKvHeads, d = config.headDim;
  Value normed = rmsNorm(x, weight(p + "input_layernorm.weight", {h}));
  // Megatron roles: q/k/v are column-parallel (split by heads, their rows),
  // o_proj row-parallel (split by its input columns; moe-partition sums the
  // partial outputs over tp).
  auto column = [&](const std::string &name, ArrayRef<int64_t> shape) {
    return weight(p + name, shape, 1, "column");
  };
  Value qW = column("self_attn.q_proj.weight", {nh * d, h});
  Value qB =
      config.qkvBias ? column("self_attn.q_proj.bias", {nh * d}) : Value();
  Value kW = column("self_attn.k_proj.weight", {nkv * d, h});
  Value kB =
      config.qkvBias ? column("self_attn.k_proj.bias", {nkv * d}) : Value();
  Value vW = column("self_attn.v_proj.weight", {nkv * d, h});
  Value vB =
      config.qkvBias ? column("self_attn.v_proj.bias", {nkv * d}) : Value();
  Value oW = weight(p + "self_attn.o_proj.weight", {h, nh * d}, 1, "row");
  Value q = rope(linear(normed, qW, qB));
  Value k = rope(linear(normed, kW, kB));
  Value v = linear(normed, vW, vB);
  if (mode != Mode::Forward) {
    // This layer's keys and values, returned for the cache.
    auto kvType =
        RankedTensorType::get({batch, seqLen, nkv, d}, b.getF32Type());
    auto split = [&](Value x) {
      return tensor::ExpandShapeOp::create(
                 b, loc, kvType, x,
                 ArrayRef<ReassociationIndices>{{0, 1}, {2, 3}})
          .getResult();
    };
    kStack = stackLayer(kStack, split(k), layer);
    vStack = stackLayer(vStack, split(v), layer);
  }
  Value attended = mode == Mode::Decode ? decodeAttention(q, k, v, layer)
                                        : attention(q, k, v);
  x = add(x, linear(attended, oW));
  return feedForward(x, layer, p);
}

OwningOpRef<ModuleOp> ModelBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  if (maxSeqLen == 0) {
    buildFunction(*module, Mode::Forward);
  } else {
    buildFunction(*module, Mode::Prefill);
    buildFunction(*module, Mode::Decode);
  }
  std::string header = llvm::formatv(
      "moe-model 1\narch {0}\nbatch {1}\nseq {2}\nhidden {3}\nvocab {4}\n"
      "tied {5}\n",
      config.archName, batch * microbatches, promptLen, config.hiddenSize,
      config.vocabSize, config.tieWordEmbeddings ? 1 : 0);
  if (maxSeqLen > 0)
    header += llvm::formatv("max-seq {0}\n", maxSeqLen).str();
  if (microbatches > 1)
    (*module)->setAttr(MoEDialect::getMicrobatchesAttrName(),
                       b.getI64IntegerAttr(microbatches));
  (*module)->setAttr(kManifestAttrName, b.getStringAttr(header));
  return module;
}

void ModelBuilder::buildFunction(ModuleOp module, Mode mode) {
  this->mode = mode;
  seqLen = mode == Mode::Decode ? 1 : promptLen;
  tokens = batch * seqLen;
  weightArgs.clear();
  b.setInsertionPointToEnd(module.getBody());
  int64_t h = config.hiddenSize, layers = config.numLayers;
  int64_t nkv = config.numKvHeads, d = config.headDim;
  Type f = b.getF32Type();
  auto idsType = RankedTensorType::get({batch, seqLen}, b.getI64Type());
  auto outType = RankedTensorType::get({batch, seqLen, h}, f);
  auto kvType = RankedTensorType::get({layers, batch, seqLen, nkv, d}, f);
  auto cacheType = RankedTensorType::get({layers, batch, maxSeqLen, nkv, d}, f);
  StringRef name = mode == Mode::Forward   ? kForwardFunctionName
                   : mode == Mode::Prefill ? kPrefillFunctionName
                                           : kDecodeFunctionName;
  auto func = func::FuncOp::create(b, loc, name,
                                   b.getFunctionType({idsType}, {outType}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  entry = func.addEntryBlock();
  if (mode == Mode::Decode) {
    positions =
        entry->addArgument(RankedTensorType::get({batch}, b.getI64Type()), loc);
    kCache = entry->addArgument(cacheType, loc);
    vCache = entry->addArgument(cacheType, loc);
  }
  b.setInsertionPointToStart(entry);
  if (mode != Mode::Forward) {
    SmallVector<OpFoldResult> sizes;
    for (int64_t s : kvType.getShape())
      sizes.push_back(b.getIndexAttr(s));
    kStack = buildEmpty(b, loc, sizes, f);
    vStack = buildEmpty(b, loc, sizes, f);
  }

  Value x = embed(entry->getArgument(0));
  int64_t moeLayers = 0;
  for (int64_t layer = 0; layer < layers; ++layer) {
    Operation *before = &entry->back();
    x = decoderLayer(x, layer);
    // The layer's ops carry its index (moe-pipeline places layers on
    // pipeline stages by it). The moe.layer ops are numbered in program
    // order (moe-partition and the plan's per-layer lists count them, the
    // same in prefill and decode; ScMoE's dense layers have none).
    for (Operation *op = before->getNextNode(); op; op = op->getNextNode()) {
      op->setAttr(MoEDialect::getDecoderLayerAttrName(),
                  b.getI64IntegerAttr(layer));
      if (isa<LayerOp>(op))
        op->setAttr(MoEDialect::getLayerIndexAttrName(),
                    b.getI64IntegerAttr(moeLayers++));
    }
  }
  x = rmsNorm(x, weight("model.norm.weight", {h}));
  SmallVector<Value> results = {
      tensor::ExpandShapeOp::create(b, loc, outType, x,
                                    ArrayRef<ReassociationIndices>{{0, 1}, {2}})
          .getResult()};
  if (mode != Mode::Forward)
    results.append({kStack, vStack});
  func::ReturnOp::create(b, loc, results);

  // The weights are arguments named after their tensors (moe-pack-weights
  // lists them in the manifest).
  func.setFunctionType(b.getFunctionType(entry->getArgumentTypes(),
                                         ValueRange(results).getTypes()));
  func.setArgAttr(0, kParallelRoleAttrName, b.getStringAttr("batch"));
  if (mode == Mode::Decode) {
    func.setArgAttr(1, kParallelRoleAttrName, b.getStringAttr("batch"));
    func.setArgAttr(2, kParallelRoleAttrName, b.getStringAttr("kv-cache"));
    func.setArgAttr(3, kParallelRoleAttrName, b.getStringAttr("kv-cache"));
  }
  for (const WeightArg &w : weightArgs) {
    func.setArgAttr(w.arg.getArgNumber(), kWeightNameAttrName,
                    b.getStringAttr(w.name));
    if (!w.role.empty())
      func.setArgAttr(w.arg.getArgNumber(), kParallelRoleAttrName,
                      b.getStringAttr(w.role));
  }
}

} // namespace

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importModel(MLIRContext *context, const ModelConfig &config,
                       int64_t batch, int64_t seqLen, int64_t microbatches,
                       int64_t maxSeqLen) {
  auto error = [](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
  };
  if (batch < 1 || seqLen < 1)
    return error(llvm::formatv(
        "batch ({0}) and sequence length ({1}) must be >= 1", batch, seqLen));
  if (microbatches < 1 || batch % microbatches != 0)
    return error(llvm::formatv("{0} microbatches do not divide the batch of "
                               "{1} sequences",
                               microbatches, batch));
  if (maxSeqLen != 0 && maxSeqLen <= seqLen)
    return error(llvm::formatv("--max-seq-len ({0}) must exceed the prompt "
                               "length ({1}): the cache holds the prompt and "
                               "the generated tokens",
                               maxSeqLen, seqLen));
  context
      ->loadDialect<MoEDialect, func::FuncDialect, linalg::LinalgDialect,
                    tensor::TensorDialect, arith::ArithDialect,
                    math::MathDialect, scf::SCFDialect, shard::ShardDialect>();
  ModelBuilder builder(context, config, batch, seqLen, microbatches, maxSeqLen);
  OwningOpRef<ModuleOp> module = builder.build();
  if (failed(mlir::verify(*module)))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "internal error: the imported module does "
                                   "not verify");
  return module;
}
