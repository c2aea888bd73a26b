//===- ModelImport.h - Hugging Face-style config -> MLIR --------*- C++ -*-===//
//
// Reads a Hugging Face-style `config.json` of an MoE decoder (Mixtral,
// Qwen2-MoE, or our Switch-style and ScMoE variants) and builds `func.func
// @forward`: token ids [B, S] and each weight (an argument named by its
// Hugging Face tensor name) in, final-normed hidden states [B, S, H] out.
// The module's `#moe.manifest` holds the model's sizes; moe-pack-weights adds
// the weight buffer the runtime fills from a safetensors file.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_MODELIMPORT_H
#define MOE_IMPORT_MODELIMPORT_H

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Plan/Planner.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir {
namespace moe {

/// The architectures the importer knows.
enum class ModelArch { Mixtral, Qwen2Moe, Switch, ScMoe };

/// What the importer needs of a config, validated.
struct ModelConfig {
  ModelArch arch;
  std::string archName;
  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  int64_t numExperts = 0;
  int64_t topK = 0;
  int64_t expertFfn = 0;         // F of each routed expert
  int64_t sharedFfn = 0;         // Fs of the shared expert, 0 if none;
                                 // ScMoE: also its even layers' dense MLP
  bool sharedExpertGate = false; // Qwen2-MoE's sigmoid shared-expert gate
  bool renormalize = false;
  bool qkvBias = false;
  bool tieWordEmbeddings = false; // logits use embed_tokens as lm_head
  Activation activation = Activation::silu_glu;
  std::optional<double> capacityFactor; // Switch; dropless when absent
  /// Sliding-window attention (current Hugging Face semantics): a query at
  /// position i attends to the keys i - slidingWindow < j <= i (0: to every
  /// j <= i), in the layers slidingLayers marks.
  int64_t slidingWindow = 0;
  std::vector<bool> slidingLayers;
  int64_t windowOf(int64_t layer) const {
    return layer < static_cast<int64_t>(slidingLayers.size()) &&
                   slidingLayers[layer]
               ? slidingWindow
               : 0;
  }
};

/// Parses and validates a config; the error names the offending field.
llvm::Expected<ModelConfig> parseModelConfig(llvm::StringRef json);

/// What the planner's cost model needs of the config, for token ids
/// [batch, seqLen].
plan::ModelSummary summarizeModel(const ModelConfig &config, int64_t batch,
                                  int64_t seqLen);

/// Builds the whole model for token ids of shape [batch, seqLen], with
/// single-rank semantics and nothing that depends on a plan or a rank:
/// `forward(ids, weights...)`, each weight an argument named by `moe.weight`
/// and marked with its `moe.parallel` role, each decoder layer's ops tagged
/// `moe.decoder_layer`; the module carries the model's sizes
/// (`#moe.manifest`). With `microbatches` > 1 it is the model of one
/// microbatch (batch / microbatches sequences) that moe-pipeline runs
/// `microbatches` times (`moe.microbatches`). With `maxSeqLen` M > 0 it is
/// the model for generation instead: `prefill` over the prompt and `decode`,
/// one token per sequence against a key/value cache of capacity M
/// (docs/Generation.md). The passes of moe-to-spmd make the per-rank program
/// (docs/Parallelism.md).
llvm::Expected<OwningOpRef<ModuleOp>>
importModel(MLIRContext *context, const ModelConfig &config, int64_t batch,
            int64_t seqLen, int64_t microbatches = 1, int64_t maxSeqLen = 0);

/// What moe-compile builds from a config under `plan` (null: one rank):
/// checks that the plan fits the model (checkPlanForModel; with maxSeqLen,
/// the decode step's [batch, 1] tokens too), imports it with the
/// microbatches the check returns (`microbatches` 0: the default) and
/// attaches the plan (attachPlan). ModelImport.cpp itself knows no plan.
llvm::Expected<OwningOpRef<ModuleOp>>
importModelForPlan(MLIRContext *context, const ModelConfig &config,
                   int64_t batch, int64_t seqLen, int64_t maxSeqLen,
                   PlanAttr plan, int64_t microbatches);

/// Attaches `plan` to `module` as `moe.plan` and verifies the module (the
/// dialect checks the plan against the MoE ops: expert counts, per-layer
/// lists); failure after the verifier's diagnostics.
LogicalResult attachPlan(ModuleOp module, PlanAttr plan);

/// Name of the module attribute that holds the weight manifest.
constexpr llvm::StringLiteral kManifestAttrName =
    MoEDialect::getManifestAttrName();
/// Name of the generated entry point.
constexpr llvm::StringLiteral kForwardFunctionName = "forward";
/// Names of the two entry points of a model built for generation
/// (`maxSeqLen` > 0): the prompt, and one decode step.
constexpr llvm::StringLiteral kPrefillFunctionName = "prefill";
constexpr llvm::StringLiteral kDecodeFunctionName = "decode";

} // namespace moe
} // namespace mlir

#endif // MOE_IMPORT_MODELIMPORT_H
