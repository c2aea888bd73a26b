//===- AutoPlan.cpp - the planner as the drivers use it -------------------===//

#include "moe/Plan/AutoPlan.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

} // namespace

llvm::Expected<int64_t>
mlir::moe::checkPlanForModel(const plan::ModelSummary &model, PlanAttr plan,
                             int64_t requested) {
  PlanDegrees degrees = plan ? plan.getPlanDegrees() : PlanDegrees();
  PlanModelFacts facts = plan::getPlanModelFacts(model);
  if (std::optional<std::string> why =
          checkPlanFitsModel(facts, degrees, /*microbatches=*/0,
                             plan ? plan.getDispatch().size() : 1,
                             plan ? plan.getDedup().size() : 1))
    return error(*why);
  if (requested < 0)
    return error(
        llvm::formatv("--microbatches must be >= 1, got {0}", requested));
  int64_t microbatches =
      requested ? requested
                : plan::defaultMicrobatches(model.batch / degrees.dp,
                                            degrees.pp, !model.capacityFactor);
  if (std::optional<std::string> why =
          checkPlanFitsModel(facts, degrees, microbatches))
    return error(*why);
  return microbatches;
}

llvm::Expected<plan::Candidate> mlir::moe::getPlanCandidate(PlanAttr plan) {
  if (plan.getDispatch().size() > 1 || plan.getDedup().size() > 1)
    return error(llvm::formatv("the planner estimates one dispatch and dedup "
                               "for all layers, not the per-layer lists of {0}",
                               plan));
  plan::Candidate c;
  c.dp = plan.getDp();
  c.tp = plan.getTp();
  c.ep = plan.getEp();
  c.etp = plan.getEtp();
  c.pp = plan.getPp();
  c.sliceAllReduce =
      plan.getDispatchForLayer(0) == DispatchStrategy::slice_allreduce;
  c.dedup = plan.getDedupForLayer(0);
  return c;
}

llvm::Expected<plan::Candidate>
mlir::moe::runPlanner(MLIRContext *ctx, const plan::ModelSummary &model,
                      const AutoPlanOptions &options,
                      llvm::raw_ostream *report) {
  if (options.plan.empty())
    return error("--cluster needs --plan (auto, or a plan to estimate)");
  if (options.plan == "auto" && options.microbatches)
    return error("--microbatches with --plan auto: the planner chooses the "
                 "microbatches of the pipelines it considers");
  if (options.cluster.empty())
    return error("the planner needs --cluster (a preset: " +
                 llvm::join(plan::getClusterPresetNames(), ", ") +
                 ", or a JSON file)");
  auto cluster = plan::loadCluster(options.cluster);
  if (!cluster)
    return cluster.takeError();
  auto skew = plan::parseRoutingSkew(options.skew);
  if (!skew)
    return skew.takeError();
  int64_t ranks = options.ranks ? options.ranks : cluster->devices();
  if (ranks < 1)
    return error(llvm::formatv("--ranks {0} must be >= 1", ranks));
  if (ranks > cluster->devices())
    return error(llvm::formatv("--ranks {0} exceeds the {1} devices of "
                               "cluster '{2}'",
                               ranks, cluster->devices(), cluster->name));

  std::vector<plan::PlanCost> ranked;
  if (options.plan == "auto") {
    ranked = plan::searchPlans(model, ranks, *cluster, *skew,
                               /*pipelines=*/true, options.overlap);
    if (options.chunks)
      llvm::erase_if(ranked, [&](const plan::PlanCost &p) {
        return p.plan.overlap && p.plan.chunks != options.chunks;
      });
  } else {
    std::string why;
    PlanAttr plan = PlanAttr::parseOption(ctx, options.plan, why);
    if (!plan)
      return error("--plan \"" + options.plan + "\": " + why);
    auto candidate = getPlanCandidate(plan);
    if (!candidate)
      return candidate.takeError();
    candidate->microbatches =
        options.microbatches
            ? options.microbatches
            : plan::defaultMicrobatches(model.batch / candidate->dp,
                                        candidate->pp, !model.capacityFactor);
    candidate->overlap = options.overlap && candidate->ep > 1;
    candidate->chunks =
        candidate->overlap && options.chunks ? options.chunks : 1;
    ranked.push_back(plan::estimatePlan(model, *candidate, *cluster, *skew));
  }
  if (!options.reportPath.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(options.reportPath, ec);
    if (ec)
      return error("cannot write '" + options.reportPath +
                   "': " + ec.message());
    plan::writeReportJson(model, *cluster, ranked, os);
  }
  if (report)
    plan::printReport(model, *cluster, ranked, options.top, *report);
  if (ranked.empty() || !ranked.front().feasible) {
    // Every distinct reason, in enumeration order.
    std::vector<std::string> reasons;
    for (const plan::PlanCost &p : ranked)
      if (!llvm::is_contained(reasons, p.whyNot))
        reasons.push_back(p.whyNot);
    return error(llvm::formatv("no feasible plan for {0} ranks: {1}", ranks,
                               llvm::join(reasons, "; ")));
  }
  return ranked.front().plan;
}

std::string mlir::moe::describeChoice(const plan::Candidate &chosen,
                                      StringRef cluster) {
  std::string text = "--plan auto chose " + chosen.str();
  if (chosen.pp > 1)
    text += " with --microbatches " + std::to_string(chosen.microbatches);
  if (chosen.chunks > 1)
    text += " with --overlap-chunks " + std::to_string(chosen.chunks);
  return text + " for " + cluster.str() + " (--explain-plan shows why)";
}
