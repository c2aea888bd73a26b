//===- Explain.cpp - a plan's ranks and groups, for people and programs ---===//

#include "moe/Plan/Explain.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::explainPlan(PlanAttr plan, llvm::raw_ostream &os) {
  PlanDegrees d = plan.getPlanDegrees();
  int64_t world = d.world();
  os << "plan " << plan << ": " << world << " rank" << (world == 1 ? "" : "s")
     << " (dp " << d.dp << " x tp " << d.tp << " x pp " << d.pp << ")\n"
     << "  tp is innermost, then dp, then pp; experts: etp groups are "
     << d.etp << " consecutive ranks (inside a tp group), ep groups are "
     << d.ep << " ranks " << d.etp << " apart.\n"
     << "  rank   pp  dp  tp   ep-group:ep   etp-group:etp\n";
  for (int64_t r = 0; r < world; ++r) {
    RankCoords c = getRankCoords(d, r);
    os << llvm::formatv("  {0,4}  {1,3} {2,3} {3,3}   {4,8}:{5,-4} {6,8}:{7}\n",
                        r, c.pp, c.dp, c.tp, c.epGroup, c.ep,
                        c.dp * (d.tp / d.etp) + c.etpGroup, c.etp);
  }
  int64_t replicas = d.dp * d.tp / (d.ep * d.etp);
  os << "  each rank holds 1/" << d.ep << " of the experts";
  if (d.etp > 1)
    os << ", 1/" << d.etp << " of the FFN width of each";
  os << "; the expert weights are replicated " << replicas << " time"
     << (replicas == 1 ? "" : "s") << " per stage.\n";
  if (d.pp > 1)
    os << "  pipeline: stage s runs layers [s * L/" << d.pp
       << ", (s + 1) * L/" << d.pp << "); stage 0 embeds, stage " << d.pp - 1
       << " normalizes; hidden states go from stage s to s + 1 over the pp "
          "group (the ranks with the same dp and tp).\n";
}

std::string mlir::moe::getPlanOptionText(PlanAttr plan) {
  std::string text = llvm::formatv("dp={0},tp={1},ep={2},etp={3},pp={4}",
                                   plan.getDp(), plan.getTp(), plan.getEp(),
                                   plan.getEtp(), plan.getPp());
  auto list = [](auto values, auto name) {
    std::string s = values.size() == 1 ? "" : "[";
    for (auto [i, v] : llvm::enumerate(values))
      s += (i ? "," : "") + name(v);
    return s + (values.size() == 1 ? "" : "]");
  };
  text += ",dispatch=" + list(plan.getDispatch(), [](DispatchStrategy s) {
            return stringifyDispatchStrategy(s).str();
          });
  text += ",dedup=" +
          list(plan.getDedup(), [](int64_t v) { return std::to_string(v); });
  return text;
}

void mlir::moe::writePlanJson(PlanAttr plan, llvm::raw_ostream &os) {
  PlanDegrees d = plan.getPlanDegrees();
  llvm::json::Array dispatch, dedup, ranks;
  for (DispatchStrategy s : plan.getDispatch())
    dispatch.push_back(stringifyDispatchStrategy(s).str());
  for (int64_t v : plan.getDedup())
    dedup.push_back(v);
  for (int64_t r = 0; r < d.world(); ++r) {
    RankCoords c = getRankCoords(d, r);
    llvm::json::Array colors;
    for (int64_t color : getGroupColors(d, r))
      colors.push_back(color);
    ranks.push_back(llvm::json::Object{{"rank", r},
                                       {"pp", c.pp},
                                       {"dp", c.dp},
                                       {"tp", c.tp},
                                       {"ep_group", c.epGroup},
                                       {"ep", c.ep},
                                       {"etp_group", c.etpGroup},
                                       {"etp", c.etp},
                                       {"colors", std::move(colors)}});
  }
  auto shape = [](llvm::ArrayRef<int64_t> s) {
    return llvm::json::Array(s);
  };
  std::string attr;
  llvm::raw_string_ostream(attr) << plan;
  llvm::json::Object root{
      {"plan", attr},
      {"option", getPlanOptionText(plan)},
      {"degrees", llvm::json::Object{{"dp", d.dp},
                                     {"tp", d.tp},
                                     {"ep", d.ep},
                                     {"etp", d.etp},
                                     {"pp", d.pp}}},
      {"world", d.world()},
      {"dispatch", std::move(dispatch)},
      {"dedup", std::move(dedup)},
      {"grids", llvm::json::Object{{"moe_dense", shape(getDenseGridShape(d))},
                                   {"moe_experts",
                                    shape(getExpertGridShape(d))}}},
      {"ranks", std::move(ranks)}};
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
}

std::string mlir::moe::getLayoutManifestLines(PlanAttr plan) {
  PlanDegrees d = plan.getPlanDegrees();
  std::string text = llvm::formatv("plan {0} {1} {2} {3} {4}\n", d.dp, d.tp,
                                   d.ep, d.etp, d.pp);
  for (int64_t r = 0; r < d.world(); ++r) {
    RankCoords c = getRankCoords(d, r);
    text += llvm::formatv("rank {0} coords {1} {2} {3} {4} {5} {6} {7} colors",
                          r, c.pp, c.dp, c.tp, c.epGroup, c.ep, c.etpGroup,
                          c.etp);
    for (int64_t color : getGroupColors(d, r))
      text += " " + std::to_string(color);
    text += "\n";
  }
  return text;
}
