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
// ModelBuilder (ModelBuilder.h) builds the functions; its attention is in
// Attention.cpp.
//
//===----------------------------------------------------------------------===//

#include "ModelBuilder.h"
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
using namespace mlir::moe::detail;
using IT = utils::IteratorType;

//===----------------------------------------------------------------------===//
// Model building
//===----------------------------------------------------------------------===//

namespace mlir {
namespace moe {
namespace detail {

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
  Value attended = mode == Mode::Decode
                       ? decodeAttention(q, k, v, layer)
                       : attention(q, k, v, config.windowOf(layer));
  x = add(x, linear(attended, oW));
  attentionEnd = &b.getInsertionBlock()->back();
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
  if (microbatches > 1)
    (*module)->setAttr(MoEDialect::getMicrobatchesAttrName(),
                       b.getI64IntegerAttr(microbatches));
  (*module)->setAttr(
      kManifestAttrName,
      ManifestAttr::get(b.getContext(), config.archName, batch * microbatches,
                        promptLen, config.hiddenSize, config.vocabSize,
                        config.tieWordEmbeddings, maxSeqLen,
                        /*microbatches=*/1, /*blob=*/0, ArrayAttr()));
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
    // pipeline stages by it) and their part of it (the trace's spans). The
    // moe.layer ops are numbered in program order (moe-partition and the
    // plan's per-layer lists count them, the same in prefill and decode;
    // ScMoE's dense layers have none).
    int64_t group = 0;
    for (Operation *op = before->getNextNode(); op; op = op->getNextNode()) {
      op->setAttr(MoEDialect::getDecoderLayerAttrName(),
                  b.getI64IntegerAttr(layer));
      op->setAttr(MoEDialect::getOpGroupAttrName(), b.getI64IntegerAttr(group));
      if (op == attentionEnd)
        group = 1;
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

} // namespace detail
} // namespace moe
} // namespace mlir

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
