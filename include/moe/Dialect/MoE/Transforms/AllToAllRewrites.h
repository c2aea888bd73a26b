//===- AllToAllRewrites.h - the a2a layer form and its rewrites -*- C++ -*-===//
//
// The all-to-all form of a partitioned dropless layer, and the driver that
// moe-slice-allreduce and moe-dedup-tokens share
// (lib/Dialect/MoE/Transforms/AllToAllRewrites.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_ALLTOALLREWRITES_H
#define MOE_DIALECT_MOE_TRANSFORMS_ALLTOALLREWRITES_H

#include "moe/Dialect/MoE/Transforms/LayerPartition.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace moe {

/// The a2a form of a dropless layer on one rank, as buildLayerOnRank builds
/// it: dispatch -> all_to_all (@moe_experts ep axis, split 0, concat 1) ->
/// experts -> all_to_all back -> combine, each step the only user of the
/// previous one, and the router's results feeding dispatch and combine. The
/// experts' counts, when present, come from the dispatch counts through
/// their own all_to_all (buildExchangedCounts).
struct AllToAllLayer {
  RouterOp router;
  DispatchOp dispatch;
  shard::AllToAllOp toExperts;
  /// The ops exchanging the counts (empty without counts), in order.
  SmallVector<Operation *> countsExchange;
  ExpertsOp experts;
  shard::AllToAllOp back;
  CombineOp combine;
  /// The @moe_dense axes the dispatched tokens were split over (its
  /// `moe.tokens_split`; set by rewriteAllToAllLayers).
  ArrayRef<int16_t> tokensSplit;
};
/// Matches the form starting at `dispatch`; failure when `dispatch` does not
/// start one (the reason, for a remark, in `why`).
FailureOr<AllToAllLayer> matchAllToAllLayer(DispatchOp dispatch,
                                            std::string &why);

/// The driver of moe-slice-allreduce and moe-dedup-tokens. The module's
/// plan is required. Every all-to-all layer whose `moe.layer_index` is in
/// `layers` (every layer when empty) is rewritten by `rewrite` unless
/// `whyNot` gives a reason, which becomes a remark naming `pass` (an error
/// when `strict`); a dispatch feeding an all_to_all that does not match the
/// form, or does not record its token sharding, is reported the same way, and
/// with `strict` a listed layer without an all-to-all form is an error.
/// Failure: an error was emitted.
LogicalResult rewriteAllToAllLayers(
    ModuleOp module, ArrayRef<int64_t> layers, bool strict, StringRef pass,
    function_ref<std::string(const AllToAllLayer &, PlanAttr)> whyNot,
    function_ref<void(AllToAllLayer, PlanAttr)> rewrite);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_ALLTOALLREWRITES_H
