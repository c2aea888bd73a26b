//===- PlanFacts.h - what a parallel plan means, in one place ---*- C++ -*-===//
//
// The facts of a plan that every part of the compiler needs, written once and
// free of MLIR types so that the `#moe.plan` verifier, the planner's cost
// model, the importer and the drivers share them:
//
// - which degrees form a plan at all (checkPlanDegrees);
// - whether a plan fits a model and a batch (checkPlanFitsModel);
// - where each rank sits in each group (getRankCoords) and which ranks form
//   a group (getGroupColors): the layout of docs/Parallelism.md, which the
//   compiled program hands to the runtime (`rank` lines of the manifest);
// - the shapes of the plan's grids.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_PLANFACTS_H
#define MOE_DIALECT_MOE_IR_PLANFACTS_H

#include "llvm/ADT/SmallVector.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace mlir {
namespace moe {

/// A plan's degrees: data, tensor, expert, expert-tensor and pipeline
/// parallel. The world is dp * tp * pp ranks; ep and etp are carved out of
/// a stage's dp * tp ranks.
struct PlanDegrees {
  int64_t dp = 1, tp = 1, ep = 1, etp = 1, pp = 1;
  int64_t world() const { return dp * tp * pp; }
};

/// Why `d` is not a plan (a degree < 1, ep does not divide dp * tp, etp does
/// not divide tp, ep * etp does not divide dp * tp), phrased for
/// `#moe.plan`; std::nullopt when it is one.
std::optional<std::string> checkPlanDegrees(const PlanDegrees &d);

/// What a plan must fit in a model and its compiled input. A field left 0 is
/// not known to the caller and not checked.
struct PlanModelFacts {
  int64_t layers = 0;
  int64_t moeLayers = 0;  // the moe.layer ops (0: one per layer)
  int64_t layerGroup = 1; // layers a stage must keep together (ScMoE: 2)
  int64_t denseFfn = 0;   // a Megatron dense MLP's width (ScMoE), 0 if none
  int64_t kvHeads = 0;
  int64_t experts = 0;
  int64_t expertFfn = 0;
  int64_t sharedFfn = 0;
  int64_t batch = 0;            // sequences of the compiled input
  bool capacityLimited = false; // experts with a capacity (not dropless)
};

/// Why the plan with degrees `d`, `microbatches` per pipeline (0: not chosen
/// yet) and per-layer lists of `dispatchEntries` and `dedupEntries` entries
/// (1: one for all layers) cannot compile `model`; std::nullopt when it can.
/// The messages name the plan's degree and the model's number.
std::optional<std::string> checkPlanFitsModel(const PlanModelFacts &model,
                                              const PlanDegrees &d,
                                              int64_t microbatches = 0,
                                              size_t dispatchEntries = 1,
                                              size_t dedupEntries = 1);

/// Where world rank `rank` sits: its pipeline stage and its position in each
/// group (docs/Parallelism.md). Inside a stage's dp * tp ranks tp is
/// innermost, then dp; the experts are laid out etp innermost, then ep:
/// etp groups are `etp` consecutive ranks (inside one tp group), ep groups
/// are `ep` ranks `etp` apart.
struct RankCoords {
  int64_t pp, dp, tp;
  int64_t epGroup, ep;   // which ep group, and the position inside it
  int64_t etpGroup, etp; // which etp group of the tp group, and position
};
RankCoords getRankCoords(const PlanDegrees &d, int64_t rank);

/// The group kinds, in the runtime's order (moert_group_t).
enum class GroupKind { World = 0, Dp, Tp, Ep, Etp, Pp };
constexpr int kNumGroupKinds = 6;
/// For each group kind, a number shared exactly by the ranks of `rank`'s
/// group of that kind (the color of MPI_Comm_split); world: 0.
std::array<int64_t, kNumGroupKinds> getGroupColors(const PlanDegrees &d,
                                                   int64_t rank);
/// `rank`'s position inside its group of `kind`.
int64_t getGroupRank(const PlanDegrees &d, int64_t rank, GroupKind kind);

/// The grids: @moe_dense is pp x dp x tp, @moe_experts is
/// pp x dp*tp/(ep*etp) x ep x etp.
llvm::SmallVector<int64_t> getDenseGridShape(const PlanDegrees &d);
llvm::SmallVector<int64_t> getExpertGridShape(const PlanDegrees &d);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_PLANFACTS_H
