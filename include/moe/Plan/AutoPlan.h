//===- AutoPlan.h - the planner as the drivers use it -----------*- C++ -*-===//
//
// `--plan auto --cluster C`: search the plans of a model config and pick the
// fastest predicted; `--plan P --cluster C`: predict P; with
// `--explain-plan` print the report, with `--plan-report FILE` write it as
// JSON (docs/Planner.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PLAN_AUTOPLAN_H
#define MOE_PLAN_AUTOPLAN_H

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Plan/Planner.h"

#include "mlir/IR/MLIRContext.h"

#include <string>

namespace mlir {
namespace moe {

struct AutoPlanOptions {
  std::string plan;    // "auto" or a plan in --plan syntax
  std::string cluster; // preset or JSON file
  int64_t ranks = 0;   // 0: every device of the cluster
  std::string skew = "uniform";
  std::string reportPath;
  int64_t top = 10;
  int64_t microbatches = 0; // of a given pipeline plan; 0: the default
  bool overlap = false;     // moe-compile --overlap=all-to-all
  int64_t chunks = 0;       // --overlap-chunks; 0: auto chooses (else 1)
};

/// Runs the planner for `model` (its compiled input included). Returns the
/// plan to compile (str() is its --plan text; a pipeline's microbatches come
/// with it); the report goes to `report` when it is non-null. A given plan
/// is read by the one plan parser (PlanAttr::parseOption). Errors are
/// returned as text.
llvm::Expected<plan::Candidate> runPlanner(MLIRContext *ctx,
                                           const plan::ModelSummary &model,
                                           const AutoPlanOptions &options,
                                           llvm::raw_ostream *report);

/// What a driver says of the planner's choice: the plan, its microbatches
/// and chunks, and the cluster it was chosen for.
std::string describeChoice(const plan::Candidate &chosen,
                           llvm::StringRef cluster);

/// Checks that `plan` (null: one rank) fits `model` (PlanFacts.h) and
/// returns the microbatches to compile it with: `requested`, or with 0 the
/// default (plan::defaultMicrobatches). The error names the reason.
llvm::Expected<int64_t> checkPlanForModel(const plan::ModelSummary &model,
                                          PlanAttr plan, int64_t requested);

/// A plan as a planner candidate: its degrees and one dispatch and dedup
/// for all layers (the planner estimates uniform plans; a per-layer list is
/// an error naming it).
llvm::Expected<plan::Candidate> getPlanCandidate(PlanAttr plan);

} // namespace moe
} // namespace mlir

#endif // MOE_PLAN_AUTOPLAN_H
