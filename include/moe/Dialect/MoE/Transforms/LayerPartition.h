//===- LayerPartition.h - one rank's part of an MoE layer -------*- C++ -*-===//
//
// The partition rule of `moe.layer` under a `#moe.plan`, in one place:
// which sharding each operand gets (what `moe-shard` annotates), and the
// per-rank computation with its collectives (what `moe-partition` and the
// partitioning importer build). The grids and the rank layout are those of
// docs/Parallelism.md.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_LAYERPARTITION_H
#define MOE_DIALECT_MOE_TRANSFORMS_LAYERPARTITION_H

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {

/// Axes of the grids (docs/Parallelism.md): @moe_dense is pp x dp x tp,
/// @moe_experts is pp x dp*tp/(ep*etp) x ep x etp.
enum GridAxis : int16_t {
  kPpAxis = 0,  // both grids
  kDpAxis = 1,  // @moe_dense
  kTpAxis = 2,  // @moe_dense
  kEpAxis = 2,  // @moe_experts
  kEtpAxis = 3, // @moe_experts
};

/// The shapes of the plan's grids.
SmallVector<int64_t> getDenseGridShape(PlanAttr plan);
SmallVector<int64_t> getExpertGridShape(PlanAttr plan);

/// Creates the plan's grids at the builder's insertion point (a module body).
void createPlanGrids(OpBuilder &b, Location loc, PlanAttr plan);

/// The sharding of every operand of a `moe.layer` under `plan` (operand
/// order), and of its result: tokens split over dp, experts over ep, each
/// expert's FFN width (and the shared expert's) over etp, the rest
/// replicated. Axes of size 1 are left out, so a plan of one rank gives
/// replicated shardings.
struct LayerShardings {
  std::vector<shard::Sharding> operands;
  shard::Sharding result;
};
LayerShardings getLayerShardings(LayerOp layer, PlanAttr plan);

/// The argument attribute moe-partition leaves on a split function
/// argument: how this rank's part is cut from the global tensor,
/// {grid = @g, split_axes = [array<i16: ...>, ...]} (one entry per dim).
/// moe-pack-weights derives the weight slices a rank loads from it.
constexpr llvm::StringLiteral kArgShardingAttrName = "moe.sharding";
/// The argument attribute naming an argument's role in a parallel plan
/// ("batch", "column", "row"; moe-shard).
constexpr llvm::StringLiteral kParallelRoleAttrName = "moe.parallel";
/// The argument attribute naming the checkpoint tensor an argument holds
/// (Hugging Face name; "{}" stands for the expert index of stacked experts).
constexpr llvm::StringLiteral kWeightNameAttrName = "moe.weight";
/// The argument attribute of a weight only one pipeline stage loads (the
/// embedding: 0; the final norm: the last; moe-pipeline).
constexpr llvm::StringLiteral kStageAttrName = "moe.stage";
DictionaryAttr getShardingAttr(const shard::Sharding &sharding);
/// The grid and split axes of such an attribute; failure when malformed.
struct ArgSharding {
  StringRef grid;
  SmallVector<SmallVector<int16_t>> splitAxes;
};
FailureOr<ArgSharding> readShardingAttr(Attribute attr);

/// "@grid [[axes of dim 0], ...]" for diagnostics; "replicated" for a null
/// or fully replicated sharding.
std::string describeSharding(const shard::Sharding &sharding);

/// What the rule needs of a layer besides its operands.
struct LayerSpec {
  int64_t numExperts = 0;
  int64_t topK = 1;
  ScoreFunctionAttr score;
  bool renormalize = false;
  ActivationAttr activation;
  /// The capacity for the global token count (null: dropless).
  IntegerAttr capacity;
  /// Position of the layer in program order, and the @moe_dense axes its
  /// tokens are split over; both are recorded on the dispatch of an
  /// all-to-all layer for the rewrites that follow (MoEBase.td).
  int64_t layerIndex = 0;
  SmallVector<int16_t> tokensSplit;
};
/// The spec of `layer`: attributes, its `moe.layer_index` (0 if absent) and
/// tokens split over dp when the plan has dp > 1.
LayerSpec getLayerSpec(LayerOp layer, PlanAttr plan);

/// This rank's operands of a layer (the shardings of getLayerShardings
/// applied): tokens [T/dp, H], the replicated router, experts [E/ep, ...]
/// with their width split over etp. Null values are absent operands.
struct LocalLayerOperands {
  Value tokens, router, routerBias, up, down, gate, sharedUp, sharedDown,
      sharedGateProj, sharedGate;
};

/// Builds this rank's part of the layer: its tokens' output [T/dp, H],
/// complete (partial sums over etp are all-reduced). Communication is through
/// `shard` collectives on the plan's grids, which must exist.
Value buildLayerOnRank(OpBuilder &b, Location loc, const LayerSpec &spec,
                       const LocalLayerOperands &local, PlanAttr plan);

/// The dispatch counts [E] exchanged like the buffer: [E/ep, ep] counts, one
/// per (local expert, source rank) segment of the exchanged buffer — what
/// moe.experts needs to compute only the filled rows. (Sent as f32 through
/// the all_to_all the buffer uses; counts are far below 2^24.)
Value buildExchangedCounts(OpBuilder &b, Location loc, Value counts,
                           int64_t ep);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_LAYERPARTITION_H
