//===- ModelImport.cpp - Hugging Face-style config -> MLIR ----------------===//
//
// The decoder skeleton shared by the three architectures, prefill only:
//
//   x = embed(ids)
//   per layer:  x = x + o_proj(attention(rope(q), rope(k), v))  over rmsnorm(x)
//               x = x + moe.layer(rmsnorm(x))
//   return rmsnorm(x)
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
               int64_t seqLen, int64_t microbatches)
      : ctx(ctx), b(ctx), loc(UnknownLoc::get(ctx)), config(config),
        microbatches(microbatches), batch(batch / microbatches), seqLen(seqLen),
        tokens(this->batch * seqLen) {}

  OwningOpRef<ModuleOp> build();

private:
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
  /// Rotary embedding of x [T, heads * head_dim] (any number of heads).
  Value rope(Value x);
  Value attention(Value q, Value k, Value v);
  /// The MoE block of a layer on the tokens x.
  Value moeBlock(Value x, const std::string &prefix);
  Value embed(Value ids);
  /// One decoder layer on x; `name` is its weights' prefix.
  Value decoderLayer(Value x, const std::string &name);

  MLIRContext *ctx;
  OpBuilder b;
  Location loc;
  const ModelConfig &config;
  int64_t microbatches;
  // The model's sequences and tokens (one microbatch's in a pipeline).
  int64_t batch, seqLen, tokens;
  Block *entry = nullptr;
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
  AffineExpr zero = b.getAffineConstantExpr(0),
             one = b.getAffineConstantExpr(1);
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
        Value pos = arith::RemUIOp::create(
            nb, l, linalg::IndexOp::create(nb, l, 0), idx(seq));
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

Value ModelBuilder::decoderLayer(Value x, const std::string &p) {
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
  x = add(x, linear(attention(q, k, v), oW));
  Value normed2 =
      rmsNorm(x, weight(p + "post_attention_layernorm.weight", {h}));
  x = add(x, moeBlock(normed2, p));
  return x;
}

OwningOpRef<ModuleOp> ModelBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  int64_t h = config.hiddenSize;
  Type f = b.getF32Type();
  auto idsType = RankedTensorType::get({batch, seqLen}, b.getI64Type());
  auto outType = RankedTensorType::get({batch, seqLen, h}, f);
  auto func = func::FuncOp::create(b, loc, kForwardFunctionName,
                                   b.getFunctionType({idsType}, {outType}));
  func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);

  Value x = embed(entry->getArgument(0));
  for (int64_t layer = 0; layer < config.numLayers; ++layer) {
    Operation *before = &entry->back();
    x = decoderLayer(x, "model.layers." + std::to_string(layer) + ".");
    // The layer's ops carry its index (moe-pipeline places layers on
    // pipeline stages by it).
    for (Operation *op = before->getNextNode(); op; op = op->getNextNode())
      op->setAttr(MoEDialect::getDecoderLayerAttrName(),
                  b.getI64IntegerAttr(layer));
  }
  x = rmsNorm(x, weight("model.norm.weight", {h}));
  func::ReturnOp::create(
      b, loc,
      tensor::ExpandShapeOp::create(b, loc, outType, x,
                                    ArrayRef<ReassociationIndices>{{0, 1}, {2}})
          .getResult());

  // forward(ids, weights...): the weights are arguments named after their
  // tensors (moe-pack-weights lists them in the manifest).
  func.setFunctionType(b.getFunctionType(entry->getArgumentTypes(), {outType}));
  func.setArgAttr(0, kParallelRoleAttrName, b.getStringAttr("batch"));
  for (const WeightArg &w : weightArgs) {
    func.setArgAttr(w.arg.getArgNumber(), kWeightNameAttrName,
                    b.getStringAttr(w.name));
    if (!w.role.empty())
      func.setArgAttr(w.arg.getArgNumber(), kParallelRoleAttrName,
                      b.getStringAttr(w.role));
  }
  std::string header = llvm::formatv(
      "moe-model 1\narch {0}\nbatch {1}\nseq {2}\nhidden {3}\nvocab {4}\n"
      "tied {5}\n",
      config.archName, batch * microbatches, seqLen, h, config.vocabSize,
      config.tieWordEmbeddings ? 1 : 0);
  if (microbatches > 1)
    (*module)->setAttr(MoEDialect::getMicrobatchesAttrName(),
                       b.getI64IntegerAttr(microbatches));
  (*module)->setAttr(kManifestAttrName, b.getStringAttr(header));
  return module;
}

} // namespace

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importModel(MLIRContext *context, const ModelConfig &config,
                       int64_t batch, int64_t seqLen, int64_t microbatches) {
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
  context
      ->loadDialect<MoEDialect, func::FuncDialect, linalg::LinalgDialect,
                    tensor::TensorDialect, arith::ArithDialect,
                    math::MathDialect, scf::SCFDialect, shard::ShardDialect>();
  ModelBuilder builder(context, config, batch, seqLen, microbatches);
  OwningOpRef<ModuleOp> module = builder.build();
  if (failed(mlir::verify(*module)))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "internal error: the imported module does "
                                   "not verify");
  return module;
}
