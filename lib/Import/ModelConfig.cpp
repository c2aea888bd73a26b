//===- ModelConfig.cpp - Hugging Face-style config.json -> ModelConfig ----===//
//
// Parses and validates the config of the architectures the importer knows;
// every error names the field (docs/Models.md lists the keys).
//
//===----------------------------------------------------------------------===//

#include "moe/Import/ModelImport.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;
using llvm::json::Object;

//===----------------------------------------------------------------------===//
// Config parsing
//===----------------------------------------------------------------------===//

namespace {

llvm::Error configError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "config: " + message);
}

/// Reads positive integer `key`; `fallback` is used when the key is absent.
llvm::Error readPositive(const Object &obj, llvm::StringRef key, int64_t &out,
                         std::optional<int64_t> fallback = std::nullopt) {
  const llvm::json::Value *value = obj.get(key);
  if (!value || value->kind() == llvm::json::Value::Null) {
    if (fallback) {
      out = *fallback;
      return llvm::Error::success();
    }
    return configError("missing key '" + key + "'");
  }
  std::optional<int64_t> integer = value->getAsInteger();
  if (!integer || *integer < 1)
    return configError("'" + key + "' must be a positive integer, got " +
                       llvm::formatv("{0}", *value).str());
  out = *integer;
  return llvm::Error::success();
}

llvm::Error readPositiveNumber(const Object &obj, llvm::StringRef key,
                               double &out) {
  const llvm::json::Value *value = obj.get(key);
  if (!value)
    return configError("missing key '" + key + "'");
  std::optional<double> number = value->getAsNumber();
  if (!number || !(*number > 0) || !std::isfinite(*number))
    return configError("'" + key + "' must be a positive number, got " +
                       llvm::formatv("{0}", *value).str());
  out = *number;
  return llvm::Error::success();
}

llvm::Error readBool(const Object &obj, llvm::StringRef key, bool &out,
                     bool fallback) {
  const llvm::json::Value *value = obj.get(key);
  if (!value || value->kind() == llvm::json::Value::Null) {
    out = fallback;
    return llvm::Error::success();
  }
  std::optional<bool> b = value->getAsBoolean();
  if (!b)
    return configError("'" + key + "' must be true or false, got " +
                       llvm::formatv("{0}", *value).str());
  out = *b;
  return llvm::Error::success();
}

/// Sliding-window attention as current Hugging Face defines it: Mixtral's
/// attention (also ours, Switch and ScMoE) windows every layer when
/// `sliding_window` is set; Qwen2-MoE only with `use_sliding_window`, and
/// only its layers from `max_window_layers` on (defaults 4096 and 28). A
/// `layer_types` list (what current transformers saves) names each layer's
/// kind instead: "sliding_attention" or "full_attention".
llvm::Error readSlidingWindow(const Object &obj, ModelConfig &config) {
  int64_t first = 0;
  if (config.arch != ModelArch::Qwen2Moe) {
    if (llvm::Error err =
            readPositive(obj, "sliding_window", config.slidingWindow, 0))
      return err;
  } else {
    bool use = false;
    if (llvm::Error err = readBool(obj, "use_sliding_window", use, false))
      return err;
    if (use) {
      if (llvm::Error err =
              readPositive(obj, "sliding_window", config.slidingWindow, 4096))
        return err;
      first = 28;
      if (const llvm::json::Value *v = obj.get("max_window_layers");
          v && v->kind() != llvm::json::Value::Null) {
        std::optional<int64_t> given = v->getAsInteger();
        if (!given || *given < 0)
          return configError(
              "'max_window_layers' must be an integer >= 0, got " +
              llvm::formatv("{0}", *v).str());
        first = *given;
      }
    }
  }
  config.slidingLayers.assign(config.numLayers, false);
  for (int64_t l = first; l < config.numLayers; ++l)
    config.slidingLayers[l] = config.slidingWindow > 0;
  const llvm::json::Value *types = obj.get("layer_types");
  if (!types || types->kind() == llvm::json::Value::Null)
    return llvm::Error::success();
  const llvm::json::Array *list = types->getAsArray();
  if (!list || static_cast<int64_t>(list->size()) != config.numLayers)
    return configError(llvm::formatv(
        "'layer_types' must be a list of {0} layer kinds (one per layer), "
        "got {1}",
        config.numLayers, *types));
  for (auto [l, kind] : llvm::enumerate(*list)) {
    std::optional<llvm::StringRef> name = kind.getAsString();
    if (!name || (*name != "sliding_attention" && *name != "full_attention"))
      return configError(
          llvm::formatv("'layer_types'[{0}] must be \"sliding_attention\" or "
                        "\"full_attention\", got {1}",
                        l, kind));
    config.slidingLayers[l] = *name == "sliding_attention";
    if (config.slidingLayers[l] && config.slidingWindow == 0)
      return configError(llvm::formatv(
          "'layer_types'[{0}] is \"sliding_attention\" but the config has "
          "no sliding window ('sliding_window'{1})",
          l,
          config.arch == ModelArch::Qwen2Moe ? " with 'use_sliding_window'"
                                             : ""));
  }
  return llvm::Error::success();
}

/// Keys whose non-default values change the math in ways not implemented.
llvm::Error rejectUnsupported(const Object &obj, const ModelConfig &config) {
  if (const llvm::json::Value *v = obj.get("rope_scaling");
      v && v->kind() != llvm::json::Value::Null)
    return configError("'rope_scaling' is not supported (got " +
                       llvm::formatv("{0}", *v).str() + "); expected null");
  if (const llvm::json::Value *v = obj.get("hidden_act")) {
    std::optional<llvm::StringRef> act = v->getAsString();
    llvm::StringRef expected = config.activation == Activation::silu_glu
                                   ? "silu"
                               : config.activation == Activation::gelu ? "gelu"
                                                                       : "relu";
    if (!act || *act != expected)
      return configError("'hidden_act' must be \"" + expected + "\" for " +
                         config.archName + ", got " +
                         llvm::formatv("{0}", *v).str());
  }
  bool attentionBias = false;
  if (llvm::Error err = readBool(obj, "attention_bias", attentionBias, false))
    return err;
  if (attentionBias && config.arch != ModelArch::Qwen2Moe)
    return configError("'attention_bias' = true is not supported for " +
                       config.archName);
  return llvm::Error::success();
}

} // namespace

llvm::Expected<ModelConfig> mlir::moe::parseModelConfig(llvm::StringRef json) {
  llvm::Expected<llvm::json::Value> parsed = llvm::json::parse(json);
  if (!parsed)
    return configError("not valid JSON: " + llvm::toString(parsed.takeError()));
  const Object *obj = parsed->getAsObject();
  if (!obj)
    return configError("the top level must be a JSON object");

  ModelConfig config;
  const llvm::json::Array *archs = obj->getArray("architectures");
  if (!archs || archs->empty() || !(*archs)[0].getAsString())
    return configError("missing key 'architectures' (a list with the model "
                       "class name, e.g. [\"MixtralForCausalLM\"])");
  config.archName = (*archs)[0].getAsString()->str();
  if (config.archName == "MixtralForCausalLM")
    config.arch = ModelArch::Mixtral;
  else if (config.archName == "Qwen2MoeForCausalLM")
    config.arch = ModelArch::Qwen2Moe;
  else if (config.archName == "SwitchMoeForCausalLM")
    config.arch = ModelArch::Switch;
  else if (config.archName == "ScMoeForCausalLM")
    config.arch = ModelArch::ScMoe;
  else
    return configError("unknown architecture '" + config.archName +
                       "' in 'architectures'; expected MixtralForCausalLM, "
                       "Qwen2MoeForCausalLM, SwitchMoeForCausalLM or "
                       "ScMoeForCausalLM");

#define READ(expr)                                                             \
  if (llvm::Error err = (expr))                                                \
    return std::move(err);

  READ(readPositive(*obj, "vocab_size", config.vocabSize));
  READ(readPositive(*obj, "hidden_size", config.hiddenSize));
  READ(readPositive(*obj, "num_hidden_layers", config.numLayers));
  READ(readPositive(*obj, "num_attention_heads", config.numHeads));
  READ(readPositive(*obj, "num_key_value_heads", config.numKvHeads,
                    config.numHeads));
  READ(readPositiveNumber(*obj, "rms_norm_eps", config.rmsNormEps));
  // transformers 5 keeps RoPE's settings in `rope_parameters`.
  if (const Object *rope = obj->getObject("rope_parameters")) {
    if (const llvm::json::Value *type = rope->get("rope_type");
        type && type->getAsString() != llvm::StringRef("default"))
      return configError("'rope_parameters' with rope_type " +
                         llvm::formatv("{0}", *type).str() +
                         " is not supported; only \"default\" (plain RoPE)");
    READ(readPositiveNumber(*rope, "rope_theta", config.ropeTheta));
  } else {
    READ(readPositiveNumber(*obj, "rope_theta", config.ropeTheta));
  }
  if (obj->get("head_dim") &&
      obj->get("head_dim")->kind() != llvm::json::Value::Null) {
    READ(readPositive(*obj, "head_dim", config.headDim));
  } else {
    if (config.hiddenSize % config.numHeads != 0)
      return configError(llvm::formatv(
          "'num_attention_heads' = {0} does not divide 'hidden_size' = {1} "
          "(and no 'head_dim' is given)",
          config.numHeads, config.hiddenSize));
    config.headDim = config.hiddenSize / config.numHeads;
  }
  if (config.numHeads % config.numKvHeads != 0)
    return configError(llvm::formatv(
        "'num_key_value_heads' = {0} does not divide 'num_attention_heads' = "
        "{1}",
        config.numKvHeads, config.numHeads));
  if (config.headDim % 2 != 0)
    return configError(llvm::formatv(
        "the head dimension ({0}) must be even for rotary embeddings",
        config.headDim));

  switch (config.arch) {
  case ModelArch::Mixtral:
    READ(readPositive(*obj, "num_local_experts", config.numExperts));
    READ(readPositive(*obj, "num_experts_per_tok", config.topK));
    READ(readPositive(*obj, "intermediate_size", config.expertFfn));
    config.renormalize = true;
    config.activation = Activation::silu_glu;
    break;
  case ModelArch::Qwen2Moe: {
    READ(readPositive(*obj, "num_experts", config.numExperts));
    READ(readPositive(*obj, "num_experts_per_tok", config.topK));
    READ(readPositive(*obj, "moe_intermediate_size", config.expertFfn));
    READ(readPositive(*obj, "shared_expert_intermediate_size",
                      config.sharedFfn));
    READ(readBool(*obj, "norm_topk_prob", config.renormalize, false));
    int64_t sparseStep = 1;
    READ(readPositive(*obj, "decoder_sparse_step", sparseStep, 1));
    if (sparseStep != 1)
      return configError(llvm::formatv(
          "'decoder_sparse_step' = {0} is not supported (only 1: every layer "
          "is an MoE layer)",
          sparseStep));
    if (const llvm::json::Array *dense = obj->getArray("mlp_only_layers");
        dense && !dense->empty())
      return configError("'mlp_only_layers' must be empty (dense layers are "
                         "not supported)");
    config.sharedExpertGate = true;
    config.qkvBias = true;
    config.activation = Activation::silu_glu;
    break;
  }
  case ModelArch::ScMoe:
    if (config.numLayers % 2 != 0)
      return configError(llvm::formatv(
          "'num_hidden_layers' must be even for ScMoeForCausalLM (its layers "
          "come in dense/MoE pairs), got {0}",
          config.numLayers));
    READ(readPositive(*obj, "num_experts", config.numExperts));
    READ(readPositive(*obj, "num_experts_per_tok", config.topK));
    READ(readPositive(*obj, "moe_intermediate_size", config.expertFfn));
    READ(readPositive(*obj, "intermediate_size", config.sharedFfn));
    READ(readBool(*obj, "norm_topk_prob", config.renormalize, false));
    config.activation = Activation::silu_glu;
    break;
  case ModelArch::Switch: {
    READ(readPositive(*obj, "num_experts", config.numExperts));
    READ(readPositive(*obj, "intermediate_size", config.expertFfn));
    READ(readPositive(*obj, "num_experts_per_tok", config.topK, 1));
    if (config.topK != 1)
      return configError(llvm::formatv(
          "'num_experts_per_tok' must be 1 for SwitchMoeForCausalLM, got {0}",
          config.topK));
    double factor = 0;
    READ(readPositiveNumber(*obj, "capacity_factor", factor));
    config.capacityFactor = factor;
    config.activation = Activation::relu;
    break;
  }
  }
  if (config.topK > config.numExperts)
    return configError(llvm::formatv(
        "'num_experts_per_tok' = {0} exceeds the number of experts ({1})",
        config.topK, config.numExperts));
  READ(readBool(*obj, "tie_word_embeddings", config.tieWordEmbeddings, false));
  READ(readSlidingWindow(*obj, config));
  READ(rejectUnsupported(*obj, config));
#undef READ
  return config;
}

mlir::moe::plan::ModelSummary
mlir::moe::summarizeModel(const ModelConfig &config, int64_t batch,
                          int64_t seqLen) {
  plan::ModelSummary m;
  m.name = config.archName;
  m.layers = config.numLayers;
  m.hidden = config.hiddenSize;
  m.heads = config.numHeads;
  m.kvHeads = config.numKvHeads;
  m.headDim = config.headDim;
  m.vocab = config.vocabSize;
  m.experts = config.numExperts;
  m.topK = config.topK;
  m.expertFfn = config.expertFfn;
  m.sharedFfn = config.sharedFfn;
  if (config.arch == ModelArch::ScMoe) {
    // The dense MLPs and shared experts are Megatron MLPs, not part of the
    // moe.layer; one MoE block per pair of layers.
    m.sharedFfn = 0;
    m.denseFfn = config.sharedFfn;
    m.moeEvery = 2;
  }
  m.gated = config.activation == Activation::silu_glu;
  m.capacityFactor = config.capacityFactor;
  m.batch = batch;
  m.seqLen = seqLen;
  return m;
}
