//===- ModelBuilder.h - the importer's model builder ------------*- C++ -*-===//
//
// Internal to lib/Import: the class that builds a model's functions from its
// config (ModelImport.cpp: weights, norms, the MoE and MLP blocks, decoder
// layers, functions; Attention.cpp: rotary embedding, attention over the
// prompt and a decode step's attention over the key/value cache).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_IMPORT_MODELBUILDER_H
#define MOE_LIB_IMPORT_MODELBUILDER_H

#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Import/ModelImport.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {
namespace detail {

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
  Value attention(Value q, Value k, Value v, int64_t window);
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
  /// Decoder layer `layer` on x; attentionEnd is then its attention's last
  /// op (the feed-forward block follows).
  Value decoderLayer(Value x, int64_t layer);
  Operation *attentionEnd = nullptr;

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

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_IMPORT_MODELBUILDER_H
