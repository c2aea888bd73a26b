//===- Search.cpp - every plan for a world size, ranked -------------------===//
//
// Enumerates pp x dp x tp = world, ep and etp with ep * etp | dp * tp and
// etp | tp, and for each the a2a baseline, slice_allreduce and dedup; each
// candidate is one estimatePlan, which costs one layer and multiplies (the
// layers of a model are alike). Infeasible candidates keep their reason.
//
//===----------------------------------------------------------------------===//

#include "moe/Plan/Planner.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <algorithm>

using namespace mlir::moe::plan;

namespace {
llvm::SmallVector<int64_t> divisors(int64_t n) {
  llvm::SmallVector<int64_t> d;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0)
      d.push_back(i);
  return d;
}

/// Times in the report's unit: ms, or us when the best plan takes < 1 ms.
struct Unit {
  double scale;
  llvm::StringRef name;
  std::string operator()(double seconds) const {
    return llvm::formatv("{0:F3}", seconds * scale).str();
  }
};
} // namespace

std::vector<PlanCost> mlir::moe::plan::searchPlans(
    const ModelSummary &model, int64_t world, const ClusterSpec &cluster,
    const RoutingSkew &skew, bool pipelines, bool overlap) {
  std::vector<PlanCost> all;
  for (int64_t pp : divisors(world)) {
    if (model.layers % pp != 0 || (pp > 1 && !pipelines))
      continue; // stages of unequal depth are not built
    int64_t stage = world / pp;
    for (int64_t tp : divisors(stage)) {
      int64_t dp = stage / tp;
      // Microbatches: 1 without a pipeline; for a pipeline every divisor
      // of a rank's sequences up to 4 * pp (1 for capacity-limited experts).
      llvm::SmallVector<int64_t> counts = {1};
      if (pp > 1 && !model.capacityFactor && model.batch % dp == 0) {
        counts.clear();
        for (int64_t m : divisors(model.batch / dp))
          if (m <= 4 * pp)
            counts.push_back(m);
      }
      for (int64_t etp : divisors(tp))
        for (int64_t ep : divisors(stage)) {
          if (stage % (ep * etp) != 0)
            continue;
          for (int variant = 0; variant < 3; ++variant) {
            if (variant && ep == 1)
              continue; // no all-to-all to rewrite: not a different plan
            for (int64_t mbs : counts) {
              Candidate c{dp, tp, ep, etp, variant == 1, variant == 2, pp, mbs};
              all.push_back(estimatePlan(model, c, cluster, skew));
              // Overlapped all-to-all plans, whole and in chunks.
              bool exchanges =
                  overlap && ep > 1 && variant != 1 && !model.capacityFactor;
              for (int64_t chunks : {1, 2, 4}) {
                if (!exchanges)
                  break;
                Candidate o = c;
                o.overlap = true;
                o.chunks = chunks;
                PlanCost cost = estimatePlan(model, o, cluster, skew);
                if (cost.feasible)
                  all.push_back(cost);
              }
            }
          }
        }
    }
  }
  // Feasible first, by predicted time; ties and the infeasible keep the
  // enumeration order.
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const PlanCost &x = all[a], &y = all[b];
    if (x.feasible != y.feasible)
      return x.feasible;
    if (x.feasible && x.totalSeconds() != y.totalSeconds())
      return x.totalSeconds() < y.totalSeconds();
    // Equal predictions: less memory per rank, then the simpler plan (the
    // enumeration order: fewer tp, etp, ep; a2a before the rewrites).
    if (x.feasible && x.memoryBytes != y.memoryBytes)
      return x.memoryBytes < y.memoryBytes;
    return a < b;
  });
  std::vector<PlanCost> ranked;
  ranked.reserve(all.size());
  for (size_t i : order)
    ranked.push_back(std::move(all[i]));
  return ranked;
}

void mlir::moe::plan::printReport(const ModelSummary &model,
                                  const ClusterSpec &cluster,
                                  llvm::ArrayRef<PlanCost> ranked, int64_t top,
                                  llvm::raw_ostream &os) {
  int64_t feasible =
      llvm::count_if(ranked, [](const PlanCost &p) { return p.feasible; });
  int64_t world = ranked.empty() ? 0 : ranked.front().plan.world();
  os << llvm::formatv("moe-plan: {0} ({1} layers, {2} experts, top-{3}, "
                      "{4} tokens) on {5} ({6} nodes x {7} devices), {8} "
                      "ranks\n",
                      model.name, model.layers, model.experts, model.topK,
                      model.batch * model.seqLen, cluster.name, cluster.nodes,
                      cluster.devicesPerNode, world);
  Unit ms{1e3, "ms"};
  if (feasible && ranked.front().totalSeconds() < 1e-3)
    ms = Unit{1e6, "us"};
  os << llvm::formatv("{0} plans considered, {1} feasible; predicted time of "
                      "one forward pass per rank, in {2}:\n\n",
                      ranked.size(), feasible, ms.name);
  os << llvm::formatv("{0,4}  {1,-58} {2,9} {3,9} {4,11} {5,11} {6,11} "
                      "{7,9} {8,10}\n",
                      "#", "plan", "total", "compute", "all_to_all",
                      "all_reduce", "all_gather", "other", "GiB/rank");
  auto kindSeconds = [](const PlanCost &p, llvm::StringRef kind) {
    double t = 0;
    for (const CollectiveCost &c : p.collectives)
      if (c.kind == kind)
        t += c.seconds;
    return t;
  };
  for (int64_t i = 0; i < std::min<int64_t>(top, feasible); ++i) {
    const PlanCost &p = ranked[i];
    // An overlapped plan's all-to-all column is the time not hidden.
    double a2a = kindSeconds(p, "all_to_all") - p.hiddenSeconds,
           reduce = kindSeconds(p, "all_reduce"),
           gather = kindSeconds(p, "all_gather");
    double other = p.totalSeconds() - p.computeSeconds - a2a - reduce - gather;
    os << llvm::formatv("{0,4}  {1,-58} {2,9} {3,9} {4,11} {5,11} {6,11} "
                        "{7,9} {8,10:F2}\n",
                        i + 1, p.plan.label(), ms(p.totalSeconds()),
                        ms(p.computeSeconds), ms(a2a), ms(reduce), ms(gather),
                        ms(other), p.memoryBytes / (1 << 30));
  }
  if (feasible == 0) {
    os << "\nno feasible plan\n";
  } else {
    const PlanCost &win = ranked[0];
    os << "\nchosen: " << win.plan.label() << "\n";
    if (feasible > 1) {
      const PlanCost &next = ranked[1];
      // The term that differs most between the winner and the runner-up.
      llvm::SmallVector<std::pair<std::string, double>> terms = {
          {"compute", next.computeSeconds - win.computeSeconds},
          {"the pipeline bubble", next.bubbleSeconds - win.bubbleSeconds},
          {"overlap", win.hiddenSeconds - next.hiddenSeconds}};
      for (llvm::StringRef kind : {"all_to_all", "all_reduce", "all_gather",
                                   "reduce_scatter", "gather", "send", "recv"})
        terms.push_back(
            {kind.str(), kindSeconds(next, kind) - kindSeconds(win, kind)});
      auto best =
          std::max_element(terms.begin(), terms.end(), [](auto &a, auto &b) {
            return a.second < b.second;
          });
      if (next.totalSeconds() == win.totalSeconds())
        os << llvm::formatv(
            "why: ties with the runner-up {0} in predicted time; chosen for "
            "{1}\n",
            next.plan.label(),
            next.memoryBytes > win.memoryBytes
                ? "less memory per rank"
                : "being the simpler plan (fewer tp, etp, ep; a2a first)");
      else
        os << llvm::formatv(
            "why: {0:F1}% faster than the runner-up {1}; the largest "
            "difference is {2} ({3} {4} less)\n",
            100.0 * (next.totalSeconds() - win.totalSeconds()) /
                next.totalSeconds(),
            next.plan.label(), best->first, ms(best->second), ms.name);
    }
    os << "bytes per rank and forward pass:";
    for (const CollectiveCost &c : win.collectives)
      os << llvm::formatv(" {0} {1} {2}x {3};", c.kind, c.group, c.calls,
                          c.bytes);
    if (!win.collectives.empty()) {
      os << "\nalgorithms (fastest predicted):";
      for (const CollectiveCost &c : win.collectives)
        os << llvm::formatv(" {0} {1} {2};", c.kind, c.group, c.algorithm);
    }
    if (win.collectives.empty())
      os << " none";
    os << "\n";
  }
  // Pruned plans, grouped by reason.
  llvm::StringMap<int64_t> reasons;
  std::vector<std::string> order;
  for (const PlanCost &p : ranked)
    if (!p.feasible && reasons[p.whyNot]++ == 0)
      order.push_back(p.whyNot);
  if (!order.empty()) {
    os << "\npruned:\n";
    for (const std::string &why : order)
      os << llvm::formatv("  {0,3} x {1}\n", reasons[why], why);
  }
}

void mlir::moe::plan::writeReportJson(const ModelSummary &model,
                                      const ClusterSpec &cluster,
                                      llvm::ArrayRef<PlanCost> ranked,
                                      llvm::raw_ostream &os) {
  llvm::json::Array plans;
  for (const PlanCost &p : ranked) {
    llvm::json::Array collectives;
    for (const CollectiveCost &c : p.collectives)
      collectives.push_back(llvm::json::Object{{"kind", c.kind},
                                               {"group", c.group},
                                               {"algorithm", c.algorithm},
                                               {"calls", c.calls},
                                               {"bytes", c.bytes},
                                               {"seconds", c.seconds}});
    llvm::json::Object entry{{"plan", p.plan.str()}, {"feasible", p.feasible}};
    if (p.feasible) {
      entry["total_seconds"] = p.totalSeconds();
      if (p.plan.pp > 1) {
        entry["microbatches"] = p.plan.microbatches;
        entry["bubble_seconds"] = p.bubbleSeconds;
      }
      if (p.plan.overlap) {
        entry["overlap_chunks"] = p.plan.chunks;
        entry["hidden_seconds"] = p.hiddenSeconds;
      }
      entry["compute_seconds"] = p.computeSeconds;
      entry["memory_bytes"] = p.memoryBytes;
      entry["collectives"] = std::move(collectives);
    } else {
      entry["why_not"] = p.whyNot;
    }
    plans.push_back(std::move(entry));
  }
  llvm::json::Object root{{"model", model.name},
                          {"cluster", cluster.name},
                          {"plans", std::move(plans)}};
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
}
