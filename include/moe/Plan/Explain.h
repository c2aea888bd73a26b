//===- Explain.h - a plan's ranks and groups --------------------*- C++ -*-===//
//
// What `moe-compile --explain-plan` prints, and what the compiled program
// hands the runtime: the layout of PlanFacts.h written out.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PLAN_EXPLAIN_H
#define MOE_PLAN_EXPLAIN_H

#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir {
namespace moe {

/// The rank table for people (docs/Parallelism.md).
void explainPlan(PlanAttr plan, llvm::raw_ostream &os);

/// The same as JSON, for programs (utils/run-block.py, utils/run-model.py):
/// {"plan": "#moe.plan<...>", "option": "dp=2,...", "degrees": {...},
///  "world": N, "dispatch": [...], "dedup": [...], "grids": {...},
///  "ranks": [{"rank": r, "pp": .., "dp": .., "tp": .., "ep_group": ..,
///             "ep": .., "etp_group": .., "etp": .., "colors": [...]}]}.
void writePlanJson(PlanAttr plan, llvm::raw_ostream &os);

/// The manifest lines the runtime reads the layout from
/// (moert_layout_parse): "plan DP TP EP ETP PP" and one "rank" line per
/// rank.
std::string getLayoutManifestLines(PlanAttr plan);

/// The plan in --plan syntax ("dp=2,tp=2,ep=4,dispatch=[a2a,slice_allreduce]").
std::string getPlanOptionText(PlanAttr plan);

} // namespace moe
} // namespace mlir

#endif // MOE_PLAN_EXPLAIN_H
