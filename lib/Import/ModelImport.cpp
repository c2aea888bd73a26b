//===- ModelImport.cpp - Hugging Face-style config -> MLIR ----------------===//
//
// The decoder skeleton shared by the three architectures, prefill only:
//
//   x = embed(ids)
//   per layer:  x = x + o_proj(attention(rope(q), rope(k), v))  over rmsnorm(x)
//               x = x + moe.layer(rmsnorm(x))
//   return rmsnorm(x)
//
// Weights are slices of one flat f32 buffer (the function's second argument);
// the manifest records, per Hugging Face tensor name, where each one starts.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/ModelImport.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Plan/Planner.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
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

/// How a rank's copy of a weight relates to the checkpoint's tensor.
struct Slice {
  enum Kind { None, Experts, Tp, Etp, ExpertsEtp };
  Kind kind;
  int64_t dim; // Tp, Etp: the (per-expert) dimension split
};
constexpr Slice kWhole = {Slice::None, 0};

class ModelBuilder {
public:
  /// Without a pipeline the model is built whole (`global`): single-rank
  /// semantics, the plan only attached, each weight a function argument;
  /// moe-shard and moe-partition make the per-rank program. A pipeline
  /// (pp > 1) is still built per rank here.
  ModelBuilder(MLIRContext *ctx, const ModelConfig &config, int64_t batch,
               int64_t seqLen, PlanAttr plan, int64_t microbatches)
      : ctx(ctx), b(ctx), loc(UnknownLoc::get(ctx)), config(config), plan(plan),
        global(!plan || plan.getPp() == 1),
        dp(global ? 1 : plan.getDp()), tp(global ? 1 : plan.getTp()),
        ep(global ? 1 : plan.getEp()), etp(global ? 1 : plan.getEtp()),
        pp(global ? 1 : plan.getPp()), microbatches(microbatches),
        globalBatch(batch), batch(batch / dp), seqLen(seqLen),
        tokens(this->batch * seqLen), globalTokens(batch * seqLen) {}

  OwningOpRef<ModuleOp> build();

private:
  /// Reserves `count` tensors of `shape` named `name` (with "{}" replaced by
  /// the expert index when count > 1) in the weight buffer.
  int64_t reserve(llvm::StringRef name, ArrayRef<int64_t> shape,
                  int64_t count = 1, Slice part = kWhole);
  /// The weight `name`: a view of the buffer of shape `shape` ([count, ...]
  /// when stacked); `shape` is this rank's part (the manifest tells the
  /// runtime which part: its `count` experts of the EP group, or its block
  /// of dimension `slice.dim` in the TP or ETP group).
  Value weight(llvm::StringRef name, ArrayRef<int64_t> shape, int64_t count = 1,
               Slice part = kWhole, StringRef role = {});
  Slice tpSlice(int64_t dim) const {
    return tp > 1 ? Slice{Slice::Tp, dim} : kWhole;
  }
  Slice etpSlice(int64_t dim) const {
    return etp > 1 ? Slice{Slice::Etp, dim} : kWhole;
  }
  /// Sum of x over `axis` of `grid`.
  Value allReduce(Value x, StringRef grid, int16_t axis);

  bool isPartitioned() const { return dp * tp * ep * etp * pp > 1; }
  /// The MoE weights of a layer, experts possibly sliced over ep.
  LocalLayerOperands moeWeights(const std::string &prefix,
                                int64_t localExperts);
  IntegerAttr capacityFor(int64_t numTokens);

  Value f32(double v) { return buildConstant(b, loc, b.getF32Type(), v); }
  Value add(Value x, Value y);
  Value rmsNorm(Value x, Value w);
  Value linear(Value x, Value w, Value bias = {});
  /// Rotary embedding of x [T, heads * head_dim] (any number of heads).
  Value rope(Value x);
  Value attention(Value q, Value k, Value v);
  /// The MoE block of layer `layer` on this rank's tokens x (split over dp,
  /// replicated over tp).
  Value moeBlock(Value x, const std::string &prefix, int64_t layer);
  Value embed(Value ids);
  /// One decoder layer on x; `name` is its weights' prefix.
  Value decoderLayer(Value x, const std::string &name, int64_t layer);
  /// The pipelined body (pp > 1): each stage runs its layers on every
  /// microbatch, receiving from the previous stage and sending to the next;
  /// stage 0 embeds, the last stage normalizes. Returns [batch, seq, hidden],
  /// meaningful on the last stage.
  Value pipeline(Value ids, RankedTensorType outType);

  MLIRContext *ctx;
  OpBuilder b;
  Location loc;
  const ModelConfig &config;
  PlanAttr plan;
  bool global;
  int64_t dp, tp, ep, etp, pp, microbatches;
  // batch and tokens are this rank's (one microbatch's inside a pipeline);
  // the global ones are dp times larger.
  int64_t globalBatch, batch, seqLen, tokens, globalTokens;
  Value blob;
  int64_t blobSize = 0;
  // Deferred: the blob's size is known only after every weight is reserved,
  // so views are created against a placeholder and retyped at the end.
  std::string manifest;
  SmallVector<tensor::ExtractSliceOp> slices;
  // The pipeline stage that alone loads the weights being reserved (-1: all).
  int64_t onlyStage = -1;
  // A global model's weight arguments, their names and roles.
  struct WeightArg {
    BlockArgument arg;
    std::string name, role;
  };
  SmallVector<WeightArg> weightArgs;
};

int64_t ModelBuilder::reserve(llvm::StringRef name, ArrayRef<int64_t> shape,
                              int64_t count, Slice part) {
  int64_t offset = blobSize;
  int64_t elements = 1;
  for (int64_t d : shape)
    elements *= d;
  blobSize += elements * count;
  if (onlyStage >= 0)
    manifest += llvm::formatv("stage {0} ", onlyStage);
  switch (part.kind) {
  case Slice::None:
    manifest += "tensor";
    break;
  case Slice::Experts:
    manifest += "tensor-ep";
    break;
  case Slice::ExpertsEtp:
    manifest += llvm::formatv("tensor-ep-slice etp {0}", part.dim);
    break;
  case Slice::Tp:
  case Slice::Etp:
    manifest += llvm::formatv("tensor-slice {0} {1}",
                              part.kind == Slice::Tp ? "tp" : "etp", part.dim);
    break;
  }
  manifest += llvm::formatv(" {0} {1} {2}", offset, count, shape.size());
  for (int64_t d : shape)
    manifest += " " + std::to_string(d);
  manifest += " " + name.str() + "\n";
  return offset;
}

Value ModelBuilder::weight(llvm::StringRef name, ArrayRef<int64_t> shape,
                           int64_t count, Slice part, StringRef role) {
  SmallVector<int64_t> full;
  if (count > 1 || name.contains("{}"))
    full.push_back(count);
  full.append(shape.begin(), shape.end());
  if (global) {
    // A function argument named after its checkpoint tensor; moe-shard
    // splits it by its role, moe-pack-weights puts it in the buffer.
    BlockArgument arg = cast<BlockArgument>(blob).getOwner()->addArgument(
        RankedTensorType::get(full, b.getF32Type()), loc);
    weightArgs.push_back({arg, name.str(), role.str()});
    return arg;
  }
  int64_t offset = reserve(name, shape, count, part);
  int64_t elements = 1;
  for (int64_t d : full)
    elements *= d;
  auto flatType = RankedTensorType::get({elements}, b.getF32Type());
  auto slice = tensor::ExtractSliceOp::create(
      b, loc, flatType, blob, ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(elements)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  slices.push_back(slice);
  if (full.size() == 1)
    return slice;
  ReassociationIndices all;
  for (size_t i = 0; i < full.size(); ++i)
    all.push_back(i);
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(full, b.getF32Type()), slice,
      ArrayRef<ReassociationIndices>{all});
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
  // cos/sin tables [S, head_dim / 2] computed in f32 the way Hugging Face
  // does: inv_freq[i] = 1 / theta^(2i / d), angle = pos * inv_freq (the
  // second half of each head uses the same angles).
  int64_t d = config.headDim, half = d / 2;
  int64_t heads = cast<RankedTensorType>(x.getType()).getDimSize(1) / d;
  SmallVector<float> cosTable(seqLen * half), sinTable(seqLen * half);
  for (int64_t i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(d);
    float invFreq =
        1.0f / std::pow(static_cast<float>(config.ropeTheta), exponent);
    for (int64_t pos = 0; pos < seqLen; ++pos) {
      float angle = static_cast<float>(pos) * invFreq;
      cosTable[pos * half + i] = std::cos(angle);
      sinTable[pos * half + i] = std::sin(angle);
    }
  }
  Type f = b.getF32Type();
  auto tableType = RankedTensorType::get({seqLen, half}, f);
  Value cosT = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(tableType, ArrayRef<float>(cosTable)));
  Value sinT = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(tableType, ArrayRef<float>(sinTable)));
  // Each head's halves as [T, heads, 2, half]; out[.., s, i] rotates the
  // pair (x[.., 0, i], x[.., 1, i]) by the angle of the token's position.
  // The body reads only its operands and its own indices, so the op
  // partitions over tokens and heads (moe-partition).
  int64_t rows = cast<RankedTensorType>(x.getType()).getDimSize(0);
  auto pairsType = RankedTensorType::get({rows, heads, 2, half}, f);
  Value pairs = tensor::ExpandShapeOp::create(
      b, loc, pairsType, x, ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}});
  AffineExpr t, hh, sd, i;
  bindDims(ctx, t, hh, sd, i);
  AffineExpr zero = b.getAffineConstantExpr(0), one = b.getAffineConstantExpr(1);
  int64_t seq = seqLen;
  Value rotated = buildGeneric(
      b, loc, buildEmpty(b, loc, tensor::getMixedSizes(b, loc, pairs), f),
      ValueRange{pairs, pairs},
      {AffineMap::get(4, 0, {t, hh, zero, i}, ctx),
       AffineMap::get(4, 0, {t, hh, one, i}, ctx),
       AffineMap::getMultiDimIdentityMap(4, ctx)},
      SmallVector<IT>(4, IT::parallel),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        auto idx = [&](int64_t v) {
          return arith::ConstantIndexOp::create(nb, l, v).getResult();
        };
        Value pos =
            arith::RemUIOp::create(nb, l, linalg::IndexOp::create(nb, l, 0),
                                   idx(seq));
        Value col = linalg::IndexOp::create(nb, l, 3);
        Value firstHalf = arith::CmpIOp::create(
            nb, l, arith::CmpIPredicate::eq, linalg::IndexOp::create(nb, l, 2),
            idx(0));
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
  // This rank's heads: whole query and key/value heads split over tp.
  int64_t nh = config.numHeads / tp, nkv = config.numKvHeads / tp,
          d = config.headDim;
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

LocalLayerOperands ModelBuilder::moeWeights(const std::string &prefix,
                                            int64_t localExperts) {
  // Expert FFN widths are this rank's part when experts are sliced over etp:
  // gate/up by rows (dim 0), down by columns (dim 1).
  int64_t e = config.numExperts, h = config.hiddenSize,
          f = config.expertFfn / etp;
  int64_t n = localExperts;
  auto expertSlice = [&](int64_t dim) {
    if (n == e)
      return etpSlice(dim);
    return etp > 1 ? Slice{Slice::ExpertsEtp, dim} : Slice{Slice::Experts, 0};
  };
  Slice byRows = expertSlice(0), byCols = expertSlice(1);
  LocalLayerOperands w;
  switch (config.arch) {
  case ModelArch::Mixtral:
    w.router = weight(prefix + "block_sparse_moe.gate.weight", {e, h});
    w.gate = weight(prefix + "block_sparse_moe.experts.{}.w1.weight", {f, h}, n,
                    byRows);
    w.up = weight(prefix + "block_sparse_moe.experts.{}.w3.weight", {f, h}, n,
                  byRows);
    w.down = weight(prefix + "block_sparse_moe.experts.{}.w2.weight", {h, f}, n,
                    byCols);
    break;
  case ModelArch::Qwen2Moe: {
    // The shared expert is sliced over etp like the routed ones, so that the
    // whole block's output is one partial sum.
    int64_t fs = config.sharedFfn / etp;
    w.router = weight(prefix + "mlp.gate.weight", {e, h});
    w.gate =
        weight(prefix + "mlp.experts.{}.gate_proj.weight", {f, h}, n, byRows);
    w.up = weight(prefix + "mlp.experts.{}.up_proj.weight", {f, h}, n, byRows);
    w.down =
        weight(prefix + "mlp.experts.{}.down_proj.weight", {h, f}, n, byCols);
    w.sharedGateProj = weight(prefix + "mlp.shared_expert.gate_proj.weight",
                              {fs, h}, 1, etpSlice(0));
    w.sharedUp = weight(prefix + "mlp.shared_expert.up_proj.weight", {fs, h}, 1,
                        etpSlice(0));
    w.sharedDown = weight(prefix + "mlp.shared_expert.down_proj.weight",
                          {h, fs}, 1, etpSlice(1));
    w.sharedGate = weight(prefix + "mlp.shared_expert_gate.weight", {1, h});
    break;
  }
  case ModelArch::Switch:
    w.router = weight(prefix + "mlp.router.weight", {e, h});
    w.up = weight(prefix + "mlp.experts.{}.wi.weight", {f, h}, n, byRows);
    w.down = weight(prefix + "mlp.experts.{}.wo.weight", {h, f}, n, byCols);
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

Value ModelBuilder::allReduce(Value x, StringRef grid, int16_t axis) {
  return shard::AllReduceOp::create(b, loc, x.getType(), grid,
                                    ArrayRef<int16_t>{axis}, x);
}

Value ModelBuilder::moeBlock(Value x, const std::string &prefix,
                             int64_t layer) {
  LocalLayerOperands w = moeWeights(prefix, config.numExperts / ep);
  if (global) {
    auto layerOp = LayerOp::create(
        b, loc, x.getType(), x, w.router, w.routerBias, w.up, w.down, w.gate,
        w.sharedUp, w.sharedDown, w.sharedGateProj, w.sharedGate,
        b.getI64IntegerAttr(config.topK),
        ScoreFunctionAttr::get(ctx, ScoreFunction::softmax),
        config.renormalize ? b.getUnitAttr() : UnitAttr(),
        ActivationAttr::get(ctx, config.activation),
        capacityFor(globalTokens));
    // Its index is its position in the program (moe-partition numbers the
    // layers in order).
    return layerOp.getResult();
  }
  w.tokens = x;
  LayerSpec spec{config.numExperts,
                 config.topK,
                 ScoreFunctionAttr::get(ctx, ScoreFunction::softmax),
                 config.renormalize,
                 ActivationAttr::get(ctx, config.activation),
                 capacityFor(globalTokens),
                 layer,
                 {}};
  if (dp > 1)
    spec.tokensSplit.push_back(kDpAxis);
  PlanAttr onePerRank = plan ? plan : PlanAttr::getDegrees(ctx, 1, 1, 1, 1, 1);
  return buildLayerOnRank(b, loc, spec, w, onePerRank);
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

Value ModelBuilder::decoderLayer(Value x, const std::string &p, int64_t layer) {
  int64_t h = config.hiddenSize;
  // This rank's heads (tp splits whole heads).
  int64_t nh = config.numHeads / tp, nkv = config.numKvHeads / tp,
          d = config.headDim;
  Value normed = rmsNorm(x, weight(p + "input_layernorm.weight", {h}));
  // Megatron: q/k/v split by heads (rows), o_proj by its input columns;
  // the partial outputs of o_proj are summed over the tp group.
  auto column = [&](const std::string &name, ArrayRef<int64_t> shape) {
    return weight(p + name, shape, 1, tpSlice(0), "column");
  };
  Value qW = column("self_attn.q_proj.weight", {nh * d, h});
  Value qB = config.qkvBias ? column("self_attn.q_proj.bias", {nh * d}) : Value();
  Value kW = column("self_attn.k_proj.weight", {nkv * d, h});
  Value kB =
      config.qkvBias ? column("self_attn.k_proj.bias", {nkv * d}) : Value();
  Value vW = column("self_attn.v_proj.weight", {nkv * d, h});
  Value vB =
      config.qkvBias ? column("self_attn.v_proj.bias", {nkv * d}) : Value();
  Value oW =
      weight(p + "self_attn.o_proj.weight", {h, nh * d}, 1, tpSlice(1), "row");
  Value q = rope(linear(normed, qW, qB));
  Value k = rope(linear(normed, kW, kB));
  Value v = linear(normed, vW, vB);
  Value attn = linear(attention(q, k, v), oW);
  if (tp > 1)
    attn = allReduce(attn, kDenseGridName, kTpAxis);
  x = add(x, attn);
  Value normed2 =
      rmsNorm(x, weight(p + "post_attention_layernorm.weight", {h}));
  x = add(x, moeBlock(normed2, p, layer));
  return x;
}

Value ModelBuilder::pipeline(Value ids, RankedTensorType outType) {
  int64_t h = config.hiddenSize, perStage = config.numLayers / pp;
  int64_t mbBatch = batch / microbatches;
  Type f = b.getF32Type();
  // From here on, batch and tokens are one microbatch's.
  batch = mbBatch;
  tokens = mbBatch * seqLen;
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  Value stage = shard::ProcessMultiIndexOp::create(
                    b, loc, kDenseGridName, ArrayRef<shard::GridAxis>{kPpAxis})
                    .getResult()[0];
  auto isStage = [&](int64_t s) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, stage,
                                 index(s))
        .getResult();
  };
  auto grid = FlatSymbolRefAttr::get(ctx, kDenseGridName);
  auto ppAxis = b.getDenseI16ArrayAttr({kPpAxis});
  auto dynamicPeer = b.getDenseI64ArrayAttr({ShapedType::kDynamic});
  auto hiddenType = RankedTensorType::get({tokens, h}, f);
  auto mbOutType = RankedTensorType::get({mbBatch, seqLen, h}, f);

  auto loop = scf::ForOp::create(
      b, loc, index(0), index(microbatches), index(1),
      ValueRange{buildZeros(b, loc,
                            {b.getIndexAttr(globalBatch / dp),
                             b.getIndexAttr(seqLen), b.getIndexAttr(h)},
                            f)});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  Value first =
      arith::MulIOp::create(b, loc, loop.getInductionVar(), index(mbBatch));
  Value mbIds = tensor::ExtractSliceOp::create(
      b, loc, RankedTensorType::get({mbBatch, seqLen}, b.getI64Type()), ids,
      ArrayRef<OpFoldResult>{first, b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(mbBatch), b.getIndexAttr(seqLen)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});

  // Stage 0 embeds; the others receive the previous stage's hidden states.
  auto input = scf::IfOp::create(b, loc, TypeRange{hiddenType}, isStage(0),
                                 /*withElseRegion=*/true);
  b.setInsertionPointToStart(input.thenBlock());
  onlyStage = 0;
  scf::YieldOp::create(b, loc, embed(mbIds));
  onlyStage = -1;
  b.setInsertionPointToStart(input.elseBlock());
  Value previous = arith::SubIOp::create(b, loc, stage, index(1));
  Value received = shard::RecvOp::create(
      b, loc, hiddenType, grid, ppAxis,
      buildEmpty(b, loc, {b.getIndexAttr(tokens), b.getIndexAttr(h)}, f),
      dynamicPeer, ValueRange{previous});
  scf::YieldOp::create(b, loc, received);
  b.setInsertionPointAfter(input);

  // This stage's layers: local layer j is checkpoint layer
  // stage * perStage + j (the runtime substitutes the stage).
  Value x = input.getResult(0);
  for (int64_t j = 0; j < perStage; ++j)
    x = decoderLayer(
        x, llvm::formatv("model.layers.{{stage*{0}+{1}}.", perStage, j).str(),
        j);

  // The last stage normalizes; the others send to the next stage.
  auto output = scf::IfOp::create(b, loc, TypeRange{mbOutType}, isStage(pp - 1),
                                  /*withElseRegion=*/true);
  b.setInsertionPointToStart(output.thenBlock());
  onlyStage = pp - 1;
  Value normed = rmsNorm(x, weight("model.norm.weight", {h}));
  onlyStage = -1;
  scf::YieldOp::create(b, loc,
                       ValueRange{tensor::ExpandShapeOp::create(
                           b, loc, mbOutType, normed,
                           ArrayRef<ReassociationIndices>{{0, 1}, {2}})});
  b.setInsertionPointToStart(output.elseBlock());
  Value next = arith::AddIOp::create(b, loc, stage, index(1));
  shard::SendOp::create(b, loc, hiddenType, grid, ppAxis, x, dynamicPeer,
                        ValueRange{next});
  scf::YieldOp::create(b, loc,
                       buildZeros(b, loc,
                                  {b.getIndexAttr(mbBatch),
                                   b.getIndexAttr(seqLen), b.getIndexAttr(h)},
                                  f));
  b.setInsertionPointAfter(output);
  Value acc = tensor::InsertSliceOp::create(
      b, loc, output.getResult(0), loop.getRegionIterArgs()[0],
      ArrayRef<OpFoldResult>{first, b.getIndexAttr(0), b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(mbBatch), b.getIndexAttr(seqLen),
                             b.getIndexAttr(h)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                             b.getIndexAttr(1)});
  scf::YieldOp::create(b, loc, acc);
  return loop.getResult(0);
}

OwningOpRef<ModuleOp> ModelBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  if (global && plan) {
    // The plan travels with the whole model; moe-shard makes its grids.
    (*module)->setAttr(MoEDialect::getPlanAttrName(), plan);
  } else if (isPartitioned()) {
    createPlanGrids(b, loc, plan);
    (*module)->setAttr(MoEDialect::getPlanAttrName(), plan);
  }
  int64_t h = config.hiddenSize;
  Type f = b.getF32Type();
  auto idsType = RankedTensorType::get({batch, seqLen}, b.getI64Type());
  // Placeholder blob type; fixed once the total size is known.
  auto placeholder = RankedTensorType::get({ShapedType::kDynamic}, f);
  auto outType = RankedTensorType::get({batch, seqLen, h}, f);
  auto func = func::FuncOp::create(
      b, loc, kForwardFunctionName,
      b.getFunctionType({idsType, placeholder}, {outType}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  blob = entry->getArgument(1);

  Value out;
  if (pp == 1) {
    Value x = embed(entry->getArgument(0));
    for (int64_t layer = 0; layer < config.numLayers; ++layer)
      x = decoderLayer(x, "model.layers." + std::to_string(layer) + ".", layer);
    x = rmsNorm(x, weight("model.norm.weight", {h}));
    out = tensor::ExpandShapeOp::create(
        b, loc, outType, x, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  } else {
    out = pipeline(entry->getArgument(0), outType);
  }
  func::ReturnOp::create(b, loc, out);

  std::string header = llvm::formatv(
      "moe-model 1\narch {0}\nbatch {1}\nseq {2}\nhidden {3}\nvocab {4}\n"
      "tied {5}\n",
      config.archName, globalBatch, seqLen, h, config.vocabSize,
      config.tieWordEmbeddings ? 1 : 0);
  if (global) {
    // forward(ids, weights...): the weights are arguments named after their
    // tensors (moe-pack-weights lists them in the manifest).
    entry->eraseArgument(1);
    func.setFunctionType(
        b.getFunctionType(entry->getArgumentTypes(), {outType}));
    func.setArgAttr(0, kParallelRoleAttrName, b.getStringAttr("batch"));
    for (const WeightArg &w : weightArgs) {
      func.setArgAttr(w.arg.getArgNumber(), kWeightNameAttrName,
                      b.getStringAttr(w.name));
      if (!w.role.empty())
        func.setArgAttr(w.arg.getArgNumber(), kParallelRoleAttrName,
                        b.getStringAttr(w.role));
    }
    (*module)->setAttr(kManifestAttrName, b.getStringAttr(header));
    return module;
  }

  // Now the buffer's size is known: give the argument its static type.
  auto blobType = RankedTensorType::get({blobSize}, f);
  blob.setType(blobType);
  func.setFunctionType(b.getFunctionType({idsType, blobType}, {outType}));
  header += llvm::formatv("blob {0}\n", blobSize);
  if (pp > 1)
    header += llvm::formatv("microbatches {0}\n", microbatches);
  (*module)->setAttr(kManifestAttrName, b.getStringAttr(header + manifest));
  return module;
}

} // namespace

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importModel(MLIRContext *context, const ModelConfig &config,
                       int64_t batch, int64_t seqLen, PlanAttr plan,
                       int64_t microbatches) {
  auto error = [](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
  };
  if (batch < 1 || seqLen < 1)
    return error(llvm::formatv(
        "batch ({0}) and sequence length ({1}) must be >= 1", batch, seqLen));
  if (microbatches < 0)
    return error(
        llvm::formatv("--microbatches must be >= 1, got {0}", microbatches));
  int64_t pp = plan ? plan.getPp() : 1;
  if (plan) {
    if (std::optional<std::string> why = checkPlanFitsModel(
            plan::getPlanModelFacts(summarizeModel(config, batch, seqLen)), plan.getPlanDegrees(),
            /*microbatches=*/0, plan.getDispatch().size(),
            plan.getDedup().size()))
      return error(*why);
  }
  int64_t localBatch = batch / (plan ? plan.getDp() : 1);
  if (microbatches == 0)
    microbatches = plan::defaultMicrobatches(
        localBatch, pp, /*dropless=*/!config.capacityFactor);
  if (std::optional<std::string> why = checkPlanFitsModel(
          plan::getPlanModelFacts(summarizeModel(config, batch, seqLen)),
          plan ? plan.getPlanDegrees() : PlanDegrees(), microbatches))
    return error(*why);
  context
      ->loadDialect<MoEDialect, func::FuncDialect, linalg::LinalgDialect,
                    tensor::TensorDialect, arith::ArithDialect,
                    math::MathDialect, scf::SCFDialect, shard::ShardDialect>();
  ModelBuilder builder(context, config, batch, seqLen, plan, microbatches);
  OwningOpRef<ModuleOp> module = builder.build();
  if (failed(mlir::verify(*module)))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "internal error: the imported module does "
                                   "not verify");
  return module;
}
