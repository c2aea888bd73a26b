//===- Planner.h - cluster spec, cost model and plan search -----*- C++ -*-===//
//
// The planner behind `moe-compile --plan auto` and the `moe-plan` pass
// (docs/Planner.md):
//
// - ClusterSpec: the machine (JSON schema and presets in docs/Planner.md);
// - ModelSummary: what the cost model needs of a model (from a config or
//   from a module's moe.layer ops);
// - estimatePlan: predicted time of one forward pass of the compiled program
//   on one rank, broken down into compute and each collective, plus memory
//   per rank, for one plan; the collective bytes are those the runtime's
//   `--stats` counts (docs/Parallelism.md);
// - searchPlans: every plan for a world size, the infeasible pruned with the
//   reason, the rest ranked by predicted time.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PLAN_PLANNER_H
#define MOE_PLAN_PLANNER_H

#include "moe/Dialect/MoE/IR/PlanFacts.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir {
namespace moe {
namespace plan {

/// A link class (inside a node, or between nodes).
struct Link {
  double bandwidth = 0; // bytes/s per direction, per device
  double latency = 0;   // s per message
};

/// The machine the plan is for.
struct ClusterSpec {
  std::string name;
  int64_t nodes = 1;
  int64_t devicesPerNode = 1;
  double deviceMemory = 0;    // bytes
  double flopsF32 = 0;        // peak FLOP/s
  double flopsBf16 = 0;       // peak FLOP/s (also f16)
  double memoryBandwidth = 0; // bytes/s
  Link intraNode, interNode;
  double hostDeviceBandwidth = 0; // bytes/s
  int64_t devices() const { return nodes * devicesPerNode; }
};

/// Parses a cluster spec; errors name the field (docs/Planner.md).
llvm::Expected<ClusterSpec> parseClusterSpec(llvm::StringRef json);
/// The built-in presets by name ("h100x8", "a30x8", "v100x128"), or an error
/// listing them.
llvm::Expected<ClusterSpec> getClusterPreset(llvm::StringRef name);
/// A preset name, or a path to a JSON file.
llvm::Expected<ClusterSpec> loadCluster(llvm::StringRef presetOrPath);
/// The names of the presets.
llvm::ArrayRef<llvm::StringRef> getClusterPresetNames();
/// The spec as JSON (the schema parseClusterSpec reads).
void printClusterSpec(const ClusterSpec &spec, llvm::raw_ostream &os);

/// What the cost model needs of a model.
struct ModelSummary {
  std::string name;
  int64_t layers = 1;
  int64_t hidden = 0;
  int64_t heads = 0; // 0: no attention (a bare MoE stack)
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  int64_t vocab = 0;
  int64_t experts = 0;
  int64_t topK = 1;
  int64_t expertFfn = 0;
  int64_t sharedFfn = 0;
  int64_t moeEvery = 1; // an MoE block every moeEvery layers (ScMoE: 2)
  int64_t denseFfn = 0; // a Megatron SwiGLU MLP in every layer (ScMoE: the
                        // dense layers' MLP and the shared expert), 0: none
  bool gated = true;    // SwiGLU experts (3 matrices) or not (2)
  std::optional<double> capacityFactor; // dropless when absent
  int64_t batch = 1, seqLen = 1;        // the compiled input [batch, seq]
  int64_t bytesPerElement = 4;          // the runtime computes in f32
};

/// The facts the plan checks read (PlanFacts.h: checkPlanFitsModel).
PlanModelFacts getPlanModelFacts(const ModelSummary &model);

/// How tokens spread over experts.
struct RoutingSkew {
  enum Kind { Uniform, Zipf, Histogram } kind = Uniform;
  double zipfExponent = 0;
  std::vector<double> histogram; // tokens per expert (any scale)
  /// Share of the routed tokens each expert receives (sums to 1).
  std::vector<double> shares(int64_t experts) const;
};
/// "uniform", "zipf:S" or "hist:FILE" (one count per expert, whitespace or
/// comma separated).
llvm::Expected<RoutingSkew> parseRoutingSkew(llvm::StringRef text);

/// Microbatches of a pipeline when neither the user nor the planner chose:
/// 1 without a pipeline or when experts have a capacity (routing
/// microbatches apart would change which tokens are dropped); otherwise the
/// smallest divisor of the data-parallel rank's sequences that is >= pp
/// (every stage busy in the steady state; more microbatches shrink the
/// bubble but each re-reads the stage's weights), or all of them.
int64_t defaultMicrobatches(int64_t localBatch, int64_t pp, bool dropless);

/// One plan's degrees and strategies.
struct Candidate {
  int64_t dp = 1, tp = 1, ep = 1, etp = 1;
  bool sliceAllReduce = false, dedup = false;
  int64_t pp = 1;
  int64_t microbatches = 1; // of a pipeline (pp > 1)
  /// moe-compile --overlap=all-to-all (moe-overlap) and --overlap-chunks.
  bool overlap = false;
  int64_t chunks = 1;
  int64_t world() const { return dp * tp * pp; }
  PlanDegrees degrees() const { return {dp, tp, ep, etp, pp}; }
  /// "dp=2,tp=2,ep=4[,pp=2][,dispatch=slice_allreduce][,dedup=1]": what
  /// --plan takes (the microbatches are moe-compile's --microbatches).
  std::string str() const;
  /// str() plus " (M mb)" for a pipeline and ", overlapped[, N chunks]":
  /// the report's name of the plan.
  std::string label() const;
};

/// One collective kind on one group, per forward pass and rank.
struct CollectiveCost {
  std::string kind;      // all_to_all, all_reduce, all_gather, reduce_scatter,
                         // gather, send, recv
  std::string group;     // dp, tp, ep, etp, pp, world
  std::string algorithm; // the fastest the model knows for it: ring, tree,
                         // recursive-doubling, pairwise, hierarchical, direct
  int64_t calls = 0;
  int64_t bytes = 0; // what the runtime's --stats counts, summed over calls
  double seconds = 0;
};

/// The prediction for one plan.
struct PlanCost {
  Candidate plan;
  bool feasible = true;
  std::string whyNot; // when not feasible
  double computeSeconds = 0;
  std::vector<CollectiveCost> collectives;
  double memoryBytes = 0; // weights + activations per rank
  /// A pipeline's idle time: (pp - 1) microbatch steps of a stage.
  double bubbleSeconds = 0;
  /// Communication that runs behind compute (moe-overlap): the time the
  /// expert all-to-alls and the compute that does not need them take side
  /// by side is their maximum, not their sum.
  double hiddenSeconds = 0;
  double totalSeconds() const;
  double communicationSeconds() const;
};

/// Predicts one forward pass of `plan`.
PlanCost estimatePlan(const ModelSummary &model, const Candidate &plan,
                      const ClusterSpec &cluster, const RoutingSkew &skew);

/// Every plan for `world` ranks, ranked (feasible first, by predicted time);
/// the infeasible carry their reason. Pipelines (pp > 1, each with every
/// number of microbatches that divides a rank's sequences, up to 4 * pp; one
/// for capacity-limited experts) are considered when `pipelines` is set.
/// With `overlap`, every all-to-all plan is estimated overlapped, with 1, 2
/// and 4 chunks where they divide a rank's tokens.
std::vector<PlanCost> searchPlans(const ModelSummary &model, int64_t world,
                                  const ClusterSpec &cluster,
                                  const RoutingSkew &skew,
                                  bool pipelines = true, bool overlap = false);

/// The readable report: the model, the machine, the top `top` plans with
/// their breakdown, why the winner won, and the pruned plans by reason.
void printReport(const ModelSummary &model, const ClusterSpec &cluster,
                 llvm::ArrayRef<PlanCost> ranked, int64_t top,
                 llvm::raw_ostream &os);
/// The same as JSON (every plan).
void writeReportJson(const ModelSummary &model, const ClusterSpec &cluster,
                     llvm::ArrayRef<PlanCost> ranked, llvm::raw_ostream &os);

} // namespace plan
} // namespace moe
} // namespace mlir

#endif // MOE_PLAN_PLANNER_H
