//===- AllToAllRewrites.cpp - the a2a layer form and its rewrites' driver -===//
//
// What moe-slice-allreduce (PPMoE) and moe-dedup-tokens (DeepSpeed-TED)
// share: matching the all-to-all form buildLayerOnRank builds for a
// dropless layer, and the driver that finds every such layer of a module,
// checks each against its pass's legality, and rewrites or reports it.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/AllToAllRewrites.h"

#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Matching the a2a form
//===----------------------------------------------------------------------===//

namespace {
/// The only user of `v`, if it is an Op.
template <typename Op>
Op onlyUser(Value v) {
  return v.hasOneUse() ? dyn_cast<Op>(*v.getUsers().begin()) : Op();
}

bool isExpertAllToAll(shard::AllToAllOp op, int64_t split, int64_t concat) {
  return op && op.getGrid() == kExpertGridName &&
         op.getGridAxes() == ArrayRef<int16_t>{kEpAxis} &&
         op.getSplitAxis().getSExtValue() == split &&
         op.getConcatAxis().getSExtValue() == concat;
}
} // namespace

FailureOr<AllToAllLayer> mlir::moe::matchAllToAllLayer(DispatchOp dispatch,
                                                       std::string &why) {
  AllToAllLayer m;
  m.dispatch = dispatch;
  if (!dispatch.getDropless()) {
    why = "the dispatch has a capacity (only dropless layers use the "
          "all-to-all form)";
    return failure();
  }
  m.toExperts = onlyUser<shard::AllToAllOp>(dispatch.getBuffer());
  if (!isExpertAllToAll(m.toExperts, 0, 1)) {
    why = "the dispatch buffer does not go (only) to an all_to_all over the "
          "ep axis of @moe_experts";
    return failure();
  }
  m.experts = onlyUser<ExpertsOp>(m.toExperts.getResult());
  if (!m.experts || m.experts.getInput() != m.toExperts.getResult()) {
    why = "the all_to_all does not feed (only) a moe.experts";
    return failure();
  }
  if (Value counts = m.experts.getCounts()) {
    // Walk back to the dispatch counts through single-use ops.
    Value v = counts;
    while (v != dispatch.getCounts()) {
      Operation *def = v.getDefiningOp();
      if (!def || def->getNumResults() != 1 || !v.hasOneUse() ||
          def->getNumOperands() == 0) {
        why = "the experts' counts do not come from the dispatch counts "
              "through an exchange of their own";
        return failure();
      }
      m.countsExchange.insert(m.countsExchange.begin(), def);
      v = def->getOperand(0);
    }
  }
  m.back = onlyUser<shard::AllToAllOp>(m.experts.getResult());
  if (!isExpertAllToAll(m.back, 1, 0)) {
    why = "the experts' output does not go back through an all_to_all";
    return failure();
  }
  m.combine = onlyUser<CombineOp>(m.back.getResult());
  if (!m.combine || m.combine.getInput() != m.back.getResult() ||
      m.combine.getSlots() != dispatch.getSlots() ||
      m.combine.getIds() != dispatch.getIds()) {
    why = "the returned rows do not feed a moe.combine with the dispatch's "
          "slots and expert ids";
    return failure();
  }
  m.router = dispatch.getIds().getDefiningOp<RouterOp>();
  if (!m.router || m.router.getTokens() != dispatch.getTokens() ||
      m.combine.getWeights() != m.router.getWeights()) {
    why = "the expert ids and weights do not come from a moe.router on the "
          "dispatched tokens";
    return failure();
  }
  return m;
}

namespace {
/// Reports that `pass` leaves `op` unchanged: a remark, or an error (and
/// failure) when `strict`.
LogicalResult reportNotApplied(Operation *op, bool strict, StringRef pass,
                               const Twine &why) {
  if (strict)
    return op->emitError() << pass << " does not apply: " << why;
  op->emitRemark() << pass << " does not apply: " << why;
  return success();
}

FailureOr<SmallVector<AllToAllLayer>>
collectAllToAllLayers(ModuleOp module, ArrayRef<int64_t> layers, bool strict,
                      StringRef pass) {
  SmallVector<AllToAllLayer> found;
  llvm::SmallDenseSet<int64_t> seen;
  bool failedAny = false;
  module.walk([&](DispatchOp dispatch) {
    auto index = dispatch->getAttrOfType<IntegerAttr>(
        MoEDialect::getLayerIndexAttrName());
    if (!layers.empty() &&
        (!index || !llvm::is_contained(layers, index.getInt())))
      return;
    bool feedsAllToAll = llvm::any_of(dispatch.getBuffer().getUsers(),
                                      llvm::IsaPred<shard::AllToAllOp>);
    if (!feedsAllToAll)
      return;
    std::string why;
    FailureOr<AllToAllLayer> match = matchAllToAllLayer(dispatch, why);
    if (failed(match)) {
      failedAny |= failed(reportNotApplied(dispatch, strict, pass, why));
      return;
    }
    if (index)
      seen.insert(index.getInt());
    found.push_back(*match);
  });
  if (strict)
    for (int64_t layer : layers)
      if (!seen.contains(layer)) {
        module.emitError() << pass << " does not apply: layer " << layer
                           << " has no all-to-all dispatch (capacity layers "
                              "gather tokens instead, and ep = 1 has none)";
        failedAny = true;
      }
  if (failedAny)
    return failure();
  return found;
}
} // namespace

LogicalResult mlir::moe::rewriteAllToAllLayers(
    ModuleOp module, ArrayRef<int64_t> layers, bool strict, StringRef pass,
    function_ref<std::string(const AllToAllLayer &, PlanAttr)> whyNot,
    function_ref<void(AllToAllLayer, PlanAttr)> rewrite) {
  auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
  if (!plan)
    return module.emitError() << pass << " needs the module's #moe.plan";
  FailureOr<SmallVector<AllToAllLayer>> sites =
      collectAllToAllLayers(module, layers, strict, pass);
  if (failed(sites))
    return failure();
  bool failedAny = false;
  for (AllToAllLayer &m : *sites) {
    // Legality is proven from the token sharding the dispatch records.
    auto split = m.dispatch->getAttrOfType<DenseI16ArrayAttr>(
        MoEDialect::getTokensSplitAttrName());
    if (split)
      m.tokensSplit = split.asArrayRef();
    std::string why =
        split ? whyNot(m, plan)
              : "the dispatch does not record how its tokens are sharded "
                "(moe.tokens_split): it was not built by moe-partition or the "
                "importer";
    if (why.empty())
      rewrite(m, plan);
    else
      failedAny |= failed(reportNotApplied(m.dispatch, strict, pass, why));
  }
  return failure(failedAny);
}
