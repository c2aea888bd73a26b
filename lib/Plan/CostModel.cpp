//===- CostModel.cpp - predicted time of one plan -------------------------===//
//
// Models the program moe-compile builds for a plan (docs/Parallelism.md),
// not an idealized one: the a2a baseline's experts run on the filled rows
// they receive (every tensor-parallel replica sends its copy of the tokens),
// slice_allreduce's only on the rows routed to them, and the collective bytes
// are those the runtime counts. Compute is a roofline
// (FLOPs at the f32 peak, or the weights read at memory bandwidth, whichever
// is slower); collectives are alpha-beta with ring all-reduce / all-gather /
// reduce-scatter and pairwise all-to-all, on the inter-node link when the
// group spans nodes. docs/Planner.md writes the formulas out.
//
//===----------------------------------------------------------------------===//

#include "moe/Plan/Planner.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace mlir::moe::plan;

std::string Candidate::str() const {
  std::string s;
  auto add = [&](llvm::StringRef key, int64_t v) {
    if (v != 1)
      s += (s.empty() ? "" : ",") + key.str() + "=" + std::to_string(v);
  };
  add("dp", dp);
  add("tp", tp);
  add("ep", ep);
  add("etp", etp);
  add("pp", pp);
  if (s.empty())
    s = "dp=1";
  if (sliceAllReduce)
    s += ",dispatch=slice_allreduce";
  if (dedup)
    s += ",dedup=1";
  return s;
}

std::string Candidate::label() const {
  std::string s = str();
  if (pp > 1)
    s += " (" + std::to_string(microbatches) + " mb)";
  if (overlap)
    s += chunks > 1 ? ", overlapped in " + std::to_string(chunks) + " chunks"
                    : ", overlapped";
  return s;
}

double PlanCost::communicationSeconds() const {
  double t = 0;
  for (const CollectiveCost &c : collectives)
    t += c.seconds;
  return t;
}

double PlanCost::totalSeconds() const {
  return computeSeconds + communicationSeconds() + bubbleSeconds -
         hiddenSeconds;
}

int64_t mlir::moe::plan::defaultMicrobatches(int64_t localBatch, int64_t pp,
                                             bool dropless) {
  if (pp <= 1 || !dropless || localBatch < 1)
    return 1;
  for (int64_t m = pp; m <= localBatch; ++m)
    if (localBatch % m == 0)
      return m;
  return localBatch;
}

std::vector<double> RoutingSkew::shares(int64_t experts) const {
  std::vector<double> p(experts, 1.0);
  if (kind == Zipf)
    for (int64_t e = 0; e < experts; ++e)
      p[e] = 1.0 / std::pow(static_cast<double>(e + 1), zipfExponent);
  if (kind == Histogram)
    for (int64_t e = 0; e < experts; ++e)
      p[e] = e < static_cast<int64_t>(histogram.size()) ? histogram[e] : 0.0;
  double sum = std::accumulate(p.begin(), p.end(), 0.0);
  for (double &x : p)
    x = sum > 0 ? x / sum : 1.0 / experts;
  return p;
}

llvm::Expected<RoutingSkew>
mlir::moe::plan::parseRoutingSkew(llvm::StringRef text) {
  RoutingSkew skew;
  const std::string whole = text.str();
  auto error = [&](const llvm::Twine &why) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "routing skew '" + whole + "': " + why);
  };
  if (text == "uniform")
    return skew;
  if (text.consume_front("zipf:")) {
    double s;
    if (text.getAsDouble(s) || s < 0)
      return error("expected zipf:S with S >= 0");
    skew.kind = RoutingSkew::Zipf;
    skew.zipfExponent = s;
    return skew;
  }
  if (text.consume_front("hist:")) {
    auto buffer = llvm::MemoryBuffer::getFile(text);
    if (!buffer)
      return error("cannot read: " + buffer.getError().message());
    llvm::SmallVector<llvm::StringRef> items;
    llvm::SplitString((*buffer)->getBuffer(), items, " \t\r\n,");
    skew.kind = RoutingSkew::Histogram;
    for (llvm::StringRef item : items) {
      double v;
      if (item.getAsDouble(v) || v < 0)
        return error("'" + item + "' is not a non-negative count");
      skew.histogram.push_back(v);
    }
    if (skew.histogram.empty())
      return error("the histogram is empty");
    return skew;
  }
  return error("expected uniform, zipf:S or hist:FILE");
}

namespace {

constexpr double kBytes = 4; // the runtime computes and communicates in f32

/// Alpha-beta times of one call, `bytes` as the runtime counts them (the
/// input of all-reduce, all-gather, reduce-scatter and gather; what leaves
/// the rank for all-to-all), for `n` ranks on one link.
double ring(llvm::StringRef kind, double n, double bytes, Link l) {
  double a = l.latency, b = l.bandwidth, steps = n - 1;
  if (kind == "all_reduce")
    return 2 * steps * a + 2 * steps / n * bytes / b;
  if (kind == "all_gather")
    return steps * a + steps * bytes / b;
  if (kind == "reduce_scatter")
    return steps * a + steps / n * bytes / b;
  if (kind == "all_to_all")
    return steps * a + bytes / b; // pairwise exchange
  return a + steps * bytes / b;   // gather: the root receives the rest
}

/// log2(n) rounds: a (double binary) tree for all-reduce, recursive doubling
/// / halving for all-gather and reduce-scatter; none for the others.
std::optional<double> logarithmic(llvm::StringRef kind, double n, double bytes,
                                  Link l) {
  double rounds = std::ceil(std::log2(n));
  double a = l.latency, b = l.bandwidth;
  if (kind == "all_reduce")
    return 2 * rounds * a + 2 * bytes / b;
  if (kind == "all_gather")
    return rounds * a + (n - 1) * bytes / b;
  if (kind == "reduce_scatter")
    return rounds * a + (n - 1) / n * bytes / b;
  return std::nullopt;
}

class Estimator {
public:
  Estimator(const ModelSummary &m, const Candidate &p, const ClusterSpec &c,
            const RoutingSkew &skew)
      : m(m), p(p), c(c), shares(skew.shares(m.experts)) {}

  PlanCost run();

private:
  /// Adds `calls` calls of `kind` on `group` moving `bytes` each (as the
  /// runtime counts them).
  void collective(llvm::StringRef kind, llvm::StringRef group, int64_t calls,
                  double bytes);
  /// Records `calls` calls of `seconds` each.
  void add(llvm::StringRef kind, llvm::StringRef group,
           llvm::StringRef algorithm, int64_t calls, double bytes,
           double seconds);
  /// Largest share of the routed tokens one ep rank's experts receive.
  double busiestEpShare() const;

  const ModelSummary &m;
  const Candidate &p;
  const ClusterSpec &c;
  std::vector<double> shares;
  PlanCost cost;
};

double Estimator::busiestEpShare() const {
  int64_t perRank = m.experts / p.ep;
  double best = 0;
  for (int64_t r = 0; r < p.ep; ++r) {
    double s = 0;
    for (int64_t e = r * perRank; e < (r + 1) * perRank; ++e)
      s += shares[e];
    best = std::max(best, s);
  }
  return best;
}

void Estimator::collective(llvm::StringRef kind, llvm::StringRef group,
                           int64_t calls, double bytes) {
  if (kind == "send" || kind == "recv") {
    // Point to point between rank 0 and the next stage (pp) or the last
    // stage's first rank (world): one message, inter-node when that rank is
    // on another node (ranks fill nodes in order).
    int64_t peer = group == "pp" ? p.dp * p.tp : (p.pp - 1) * p.dp * p.tp;
    Link link = peer < c.devicesPerNode ? c.intraNode : c.interNode;
    add(kind, group, "direct", calls, bytes,
        link.latency + bytes / link.bandwidth);
    return;
  }
  int64_t n = 1, stride = 1;
  if (group == "dp")
    n = p.dp, stride = p.tp;
  else if (group == "tp")
    n = p.tp;
  else if (group == "ep")
    n = p.ep, stride = p.etp;
  else if (group == "etp")
    n = p.etp;
  // Rank 0's group: `perNode` members on each of `nodes` nodes.
  int64_t perNode = stride >= c.devicesPerNode
                        ? 1
                        : std::min<int64_t>(n, c.devicesPerNode / stride);
  int64_t nodes = (n + perNode - 1) / perNode;
  double dn = n;

  // The fastest algorithm the model knows for this group.
  std::string algorithm;
  double t = 0;
  auto consider = [&](llvm::StringRef name, double seconds) {
    if (algorithm.empty() || seconds < t) {
      algorithm = name.str();
      t = seconds;
    }
  };
  // The flat algorithms over the group's slowest link.
  Link slowest = nodes == 1 ? c.intraNode : c.interNode;
  consider(kind == "all_to_all" ? "pairwise"
           : kind == "gather"   ? "direct"
                                : "ring",
           ring(kind, dn, bytes, slowest));
  if (auto logT = logarithmic(kind, dn, bytes, slowest))
    consider(kind == "all_reduce" ? "tree" : "recursive-doubling", *logT);
  if (nodes > 1) {
    double q = perNode, m = nodes;
    if (kind == "all_reduce") {
      // Reduce-scatter in the node, all-reduce of 1/q across nodes,
      // all-gather in the node.
      consider("hierarchical",
               ring("reduce_scatter", q, bytes, c.intraNode) +
                   ring("all_reduce", m, bytes / q, c.interNode) +
                   ring("all_gather", q, bytes / q, c.intraNode));
    } else if (kind == "all_to_all") {
      // Only the part bound for other nodes crosses the inter-node link.
      double intraShare = (q - 1) / (dn - 1), interShare = 1 - intraShare;
      consider("hierarchical", (q - 1) * c.intraNode.latency +
                                   (dn - q) * c.interNode.latency +
                                   intraShare * bytes / c.intraNode.bandwidth +
                                   interShare * bytes / c.interNode.bandwidth);
    }
  }
  add(kind, group, algorithm, calls, bytes, t);
}

void Estimator::add(llvm::StringRef kind, llvm::StringRef group,
                    llvm::StringRef algorithm, int64_t calls, double bytes,
                    double seconds) {
  for (CollectiveCost &existing : cost.collectives)
    if (existing.kind == kind && existing.group == group) {
      existing.calls += calls;
      existing.bytes += static_cast<int64_t>(bytes) * calls;
      existing.seconds += seconds * calls;
      return;
    }
  cost.collectives.push_back({kind.str(), group.str(), algorithm.str(), calls,
                              static_cast<int64_t>(bytes) * calls,
                              seconds * calls});
}

PlanCost Estimator::run() {
  cost.plan = p;
  auto infeasible = [&](const llvm::Twine &why) {
    cost.feasible = false;
    cost.whyNot = why.str();
    return cost;
  };
  // What the plan attribute and the compiler reject (PlanFacts.h).
  if (p.microbatches < 1)
    return infeasible("every degree must be >= 1");
  if (std::optional<std::string> why =
          checkPlanFitsModel(getPlanModelFacts(m), p.degrees(), p.microbatches))
    return infeasible(*why);
  if (p.sliceAllReduce && p.dedup)
    return infeasible("slice_allreduce and dedup exclude each other (dedup "
                      "rewrites the all-to-all slice_allreduce removes)");
  const int64_t mbs = p.microbatches;

  const double h = m.hidden, e = m.experts, k = m.topK;
  const double tokens = double(m.batch) * m.seqLen; // global
  // T_local: the tokens of one call of a layer (one microbatch's).
  const double local = tokens / p.dp / mbs;
  const bool dropless = !m.capacityFactor;
  const bool a2a = dropless && p.ep > 1 && !p.sliceAllReduce;
  const bool dedup = p.dedup;
  const bool merged =
      p.sliceAllReduce && p.etp > 1 && !m.sharedFfn && p.ep * p.etp == p.tp;
  // The rewrites' legality (moe-slice-allreduce, moe-dedup-tokens).
  if ((p.sliceAllReduce || dedup) && (!dropless || p.ep == 1))
    return infeasible("the rewrite needs an all-to-all layer (dropless, "
                      "ep > 1)");
  if (p.sliceAllReduce && p.dp > 1 && p.tp % (p.ep * p.etp) != 0)
    return infeasible("slice_allreduce: the ep group spans data-parallel "
                      "ranks, which hold other tokens");
  if (dedup && (p.tp == 1 || std::fmod(local, double(p.tp)) != 0))
    return infeasible("dedup: no tensor-parallel duplicates to drop (tp = 1 "
                      "or tp does not divide the tokens)");
  if (dedup && p.etp > 1 && m.sharedFfn)
    return infeasible("dedup with etp > 1 and a shared expert is not "
                      "supported");

  double capacity = 0;
  if (!dropless)
    capacity = std::max(1.0, std::ceil(*m.capacityFactor * tokens * k / e));
  const double ffn = double(m.expertFfn) / p.etp;
  const double shared = double(m.sharedFfn) / p.etp;
  const double perRow = (m.gated ? 6.0 : 4.0) * h * ffn;
  const double matrices = m.gated ? 3.0 : 2.0;

  // Layer calls of this rank: its stage's layers, once per microbatch; of
  // those, the calls of an MoE block (every moeEvery-th layer).
  const int64_t layers = m.layers / p.pp * mbs;
  const int64_t moeCalls = layers / m.moeEvery;
  // Per layer: FLOPs, weight bytes read, collectives; of the FLOPs, those
  // moe-overlap can run while the expert all-to-alls travel.
  double flops = 0, weights = 0, activations = 0, hideable = 0;
  const double dispatched = dedup ? local / p.tp : local;
  if (p.overlap &&
      (p.chunks < 1 || std::fmod(dispatched, double(p.chunks)) != 0))
    return infeasible(llvm::formatv("overlap chunks = {0} does not divide "
                                    "the {1} tokens a rank dispatches",
                                    p.chunks, dispatched));
  if (m.heads) {
    double nh = double(m.heads) / p.tp, nkv = double(m.kvHeads) / p.tp,
           d = m.headDim, b = double(m.batch) / p.dp / mbs, s = m.seqLen;
    double attention = 2 * local * h * (nh + 2 * nkv) * d +
                       2 * local * nh * d * h + 2 * 2 * b * nh * s * s * d;
    flops += attention;
    // ScMoE: the next layer's attention runs behind the dispatch.
    if (m.moeEvery > 1)
      hideable += attention / m.moeEvery;
    weights += (h * (nh + 2 * nkv) * d + nh * d * h) * kBytes;
    activations = std::max(activations, b * nh * s * s * kBytes);
    if (p.tp > 1)
      collective("all_reduce", "tp", layers, local * h * kBytes);
  }
  if (m.denseFfn) {
    // Column-parallel gate and up, row-parallel down, summed over tp.
    double f = double(m.denseFfn) / p.tp;
    flops += 6.0 * local * h * f;
    hideable += 6.0 * local * h * f; // the dense MLP and the shared expert
    weights += 3.0 * h * f * kBytes;
    if (p.tp > 1)
      collective("all_reduce", "tp", layers, local * h * kBytes);
  }
  // The MoE block's share of a layer's work.
  const double moeShare = 1.0 / m.moeEvery;
  // Tokens the rank routes, and expert rows it computes.
  double routed = local, rows = 0;
  if (dropless) {
    if (dedup)
      routed = local / p.tp;
    if (p.ep == 1)
      rows = k * routed; // counts: filled rows only
    else if (p.sliceAllReduce)
      rows = k * routed * busiestEpShare();
    else if (dedup && p.etp > 1)
      rows = e * routed * p.etp; // gathered over etp, every slot
    else
      rows = k * routed * p.ep * busiestEpShare(); // counts exchanged
  } else {
    routed = tokens; // capacity layers gather the dp group's tokens
    if (p.ep == 1) {
      for (double share : shares)
        rows += std::min(capacity, k * tokens * share);
    } else {
      rows = e / p.ep * capacity;
    }
  }
  flops += moeShare * (2 * routed * h * e + rows * perRow +
                       (m.sharedFfn ? 6.0 * routed * h * shared : 0.0));
  // Qwen2-MoE's shared expert; with chunks, all chunks' experts but one.
  hideable += moeShare * ((m.sharedFfn ? 6.0 * routed * h * shared : 0.0) +
                          rows * perRow * (p.chunks - 1.0) / p.chunks);
  weights += moeShare *
             (h * e + e / p.ep * matrices * h * ffn + 3 * h * shared) * kBytes;
  double buffer = dropless ? e * routed * h : e * capacity * h;
  activations =
      std::max(activations, (buffer * (dedup && p.etp > 1 ? p.etp : 1) +
                             rows * ffn * 2 + 4 * local * h) *
                                kBytes);

  double exchangeSeconds = 0;
  if (a2a) {
    double sent = (p.ep - 1.0) / p.ep * e * routed * h * kBytes;
    int64_t chunks = p.overlap ? p.chunks : 1;
    double before = cost.communicationSeconds();
    collective("all_to_all", "ep", 2 * moeCalls * chunks, sent / chunks);
    exchangeSeconds = cost.communicationSeconds() - before;
    // The dispatch counts travel too (f32), except where the etp group
    // gathers the rows after a dedup.
    if (!(dedup && p.etp > 1))
      collective("all_to_all", "ep", moeCalls,
                 (p.ep - 1.0) / p.ep * e * kBytes);
    if (dedup) {
      collective("all_gather", "tp", moeCalls, routed * h * kBytes);
      if (p.etp > 1) {
        double mine = e * routed * h * kBytes;
        collective("all_gather", "etp", moeCalls, mine);
        collective("reduce_scatter", "etp", moeCalls, p.etp * mine);
      }
    }
  }
  if (p.sliceAllReduce)
    collective("all_reduce", merged ? "tp" : "ep", moeCalls,
               local * h * kBytes);
  if (!dropless) {
    if (p.dp > 1)
      collective("all_gather", "dp", moeCalls, local * h * kBytes);
    if (p.ep > 1)
      collective("all_gather", "ep", moeCalls,
                 e / p.ep * capacity * h * kBytes);
  }
  bool etpSumRemoved = merged || (dedup && p.etp > 1);
  if (p.etp > 1 && !etpSumRemoved)
    collective("all_reduce", "etp", moeCalls, local * h * kBytes);

  double peak = c.flopsF32;
  cost.computeSeconds =
      layers * std::max(flops / peak, weights / c.memoryBandwidth);
  // Overlapped, the exchanges and the compute that does not need them take
  // the longer of the two: the shorter is hidden.
  if (p.overlap && flops > 0)
    cost.hiddenSeconds =
        std::min(exchangeSeconds, cost.computeSeconds * hideable / flops);
  // A pipeline of M microbatches takes M + pp - 1 steps of a stage; the
  // busy time above is M of them.
  cost.bubbleSeconds =
      (p.pp - 1.0) / mbs * (cost.computeSeconds + cost.communicationSeconds());
  if (p.pp > 1) {
    // Rank 0 (stage 0) sends each microbatch on; the last stage's output
    // comes back to it.
    collective("send", "pp", mbs, local * h * kBytes);
    collective("recv", "world", 1, tokens * h * kBytes);
  } else if (p.world() > 1) {
    collective("gather", "dp", 1, local * h * kBytes);
  }
  double embedding = double(m.vocab) * h * kBytes;
  cost.memoryBytes = m.layers / p.pp * weights + embedding + activations;
  if (cost.memoryBytes > c.deviceMemory)
    return infeasible(llvm::formatv("weights and activations exceed the "
                                    "{0:F1} GiB of a device",
                                    c.deviceMemory / (1 << 30)));
  return cost;
}

} // namespace

PlanCost mlir::moe::plan::estimatePlan(const ModelSummary &model,
                                       const Candidate &plan,
                                       const ClusterSpec &cluster,
                                       const RoutingSkew &skew) {
  return Estimator(model, plan, cluster, skew).run();
}

mlir::moe::PlanModelFacts
mlir::moe::plan::getPlanModelFacts(const ModelSummary &model) {
  PlanModelFacts facts;
  facts.layers = model.layers;
  facts.moeLayers = model.moeEvery > 1 ? model.layers / model.moeEvery : 0;
  facts.layerGroup = model.moeEvery;
  facts.denseFfn = model.denseFfn;
  facts.kvHeads = model.heads ? model.kvHeads : 0;
  facts.experts = model.experts;
  facts.expertFfn = model.expertFfn;
  facts.sharedFfn = model.sharedFfn;
  facts.batch = model.batch;
  facts.capacityLimited = model.capacityFactor.has_value();
  return facts;
}
