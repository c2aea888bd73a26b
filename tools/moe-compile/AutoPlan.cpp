//===- AutoPlan.cpp - moe-compile's use of the planner --------------------===//

#include "AutoPlan.h"

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

/// A --plan text as a planner candidate (uniform dispatch and dedup).
llvm::Expected<plan::Candidate> parseCandidate(llvm::StringRef text) {
  plan::Candidate c;
  llvm::SmallVector<llvm::StringRef> items;
  text.split(items, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    auto [key, value] = item.split('=');
    key = key.trim();
    value = value.trim();
    int64_t n = 0;
    bool number = !value.getAsInteger(10, n);
    if (number && n < 1 && key != "dedup")
      return error("'" + item + "': degrees are >= 1");
    if (key == "dp" && number)
      c.dp = n;
    else if (key == "tp" && number)
      c.tp = n;
    else if (key == "ep" && number)
      c.ep = n;
    else if (key == "etp" && number)
      c.etp = n;
    else if (key == "pp" && number)
      c.pp = n;
    else if (key == "dispatch" &&
             (value == "a2a" || value == "slice_allreduce"))
      c.sliceAllReduce = value == "slice_allreduce";
    else if (key == "dedup" && number && (n == 0 || n == 1))
      c.dedup = n == 1;
    else
      return error("the planner cannot estimate '" + item +
                   "' (it takes dp, tp, ep, etp, pp, and one dispatch "
                   "and dedup for all layers)");
  }
  return c;
}
} // namespace

llvm::Expected<plan::Candidate>
mlir::moe::runPlanner(const ModelConfig &config, int64_t batch, int64_t seqLen,
                      const AutoPlanOptions &options,
                      llvm::raw_ostream *report) {
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
  plan::ModelSummary model = summarizeModel(config, batch, seqLen);
  int64_t ranks = options.ranks ? options.ranks : cluster->devices();
  if (ranks < 1)
    return error(llvm::formatv("--ranks {0} must be >= 1", ranks));
  if (ranks > cluster->devices())
    return error(llvm::formatv("--ranks {0} exceeds the {1} devices of "
                               "cluster '{2}'",
                               ranks, cluster->devices(), cluster->name));

  std::vector<plan::PlanCost> ranked;
  if (options.plan == "auto") {
    ranked = plan::searchPlans(model, ranks, *cluster, *skew);
  } else {
    auto candidate = parseCandidate(options.plan);
    if (!candidate)
      return candidate.takeError();
    candidate->microbatches =
        options.microbatches
            ? options.microbatches
            : plan::defaultMicrobatches(batch / candidate->dp, candidate->pp,
                                        !config.capacityFactor);
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
