//===- Plan.cpp - choose the module's plan with the cost model ------------===//
//
// Implements `moe-plan`: a ModelSummary from the module's moe.layer ops, the
// planner's search (moe/Plan/Planner.h), and the winner as `moe.plan`.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Plan/Planner.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEPLANPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The cost model's view of the module: its layers, assumed alike.
FailureOr<plan::ModelSummary> summarize(ModuleOp module) {
  SmallVector<LayerOp> layers;
  module.walk([&](LayerOp layer) { layers.push_back(layer); });
  if (layers.empty())
    return module.emitError()
           << "moe-plan: the module has no moe.layer to plan for";
  LayerOp first = layers.front();
  auto tokens = cast<RankedTensorType>(first.getTokens().getType());
  auto up = cast<RankedTensorType>(first.getExpertUp().getType());
  if (!tokens.hasStaticShape() || !up.hasStaticShape())
    return first.emitOpError() << "moe-plan needs static shapes";
  plan::ModelSummary m;
  m.name = "module";
  m.layers = layers.size();
  m.hidden = tokens.getDimSize(1);
  m.experts = first.getNumExperts();
  m.topK = first.getK();
  m.expertFfn = up.getDimSize(1);
  if (first.hasSharedExperts())
    m.sharedFfn =
        cast<RankedTensorType>(first.getSharedUpProj().getType()).getDimSize(0);
  m.gated = first.getExpertGate() != nullptr;
  m.batch = tokens.getDimSize(0); // one token per "sequence"
  m.seqLen = 1;
  if (std::optional<uint64_t> capacity = first.getCapacity())
    m.capacityFactor = double(*capacity) * double(m.experts) /
                       (double(m.batch) * double(m.topK));
  return m;
}

struct MoEPlanPass : public moe::impl::MoEPlanPassBase<MoEPlanPass> {
  using MoEPlanPassBase::MoEPlanPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const llvm::Twine &message) {
      module.emitError() << "moe-plan: " << message;
      signalPassFailure();
    };
    if (cluster.empty())
      return fail("needs cluster= (a preset or a JSON file)");
    auto spec = plan::loadCluster(cluster);
    if (!spec)
      return fail(llvm::toString(spec.takeError()));
    auto skew = plan::parseRoutingSkew(routingSkew);
    if (!skew)
      return fail(llvm::toString(skew.takeError()));
    int64_t world = ranks ? ranks : spec->devices();
    if (world < 1 || world > spec->devices())
      return fail("ranks = " + llvm::Twine(world) + " is not between 1 and " +
                  llvm::Twine(spec->devices()) + ", the devices of '" +
                  spec->name + "'");
    FailureOr<plan::ModelSummary> model = summarize(module);
    if (failed(model))
      return signalPassFailure();

    std::vector<plan::PlanCost> ranked =
        plan::searchPlans(*model, world, *spec, *skew,
                          /*pipelines=*/false); // moe-shard builds no stages
    if (!report.empty()) {
      std::error_code ec;
      llvm::raw_fd_ostream os(report, ec);
      if (ec)
        return fail("cannot write '" + report + "': " + ec.message());
      plan::writeReportJson(*model, *spec, ranked, os);
    }
    plan::printReport(*model, *spec, ranked, top, llvm::errs());
    if (ranked.empty() || !ranked.front().feasible)
      return fail("no feasible plan for " + llvm::Twine(world) + " ranks");
    const plan::Candidate &c = ranked.front().plan;
    auto chosen =
        PlanAttr::get(&getContext(), c.dp, c.tp, c.ep, c.etp, /*pp=*/1,
                      {c.sliceAllReduce ? DispatchStrategy::slice_allreduce
                                        : DispatchStrategy::a2a},
                      {c.dedup ? 1 : 0});
    module->setAttr(MoEDialect::getPlanAttrName(), chosen);
  }
};

} // namespace
