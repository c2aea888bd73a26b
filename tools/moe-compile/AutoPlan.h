//===- AutoPlan.h - moe-compile's use of the planner ------------*- C++ -*-===//
//
// `--plan auto --cluster C`: search the plans of a model config and pick the
// fastest predicted; `--plan P --cluster C`: predict P; with
// `--explain-plan` print the report, with `--plan-report FILE` write it as
// JSON (docs/Planner.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_MOE_COMPILE_AUTOPLAN_H
#define MOE_TOOLS_MOE_COMPILE_AUTOPLAN_H

#include "moe/Import/ModelImport.h"

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
};

/// Runs the planner for `config`. Returns the plan to compile (str() is its
/// --plan text; a pipeline's microbatches come with it); the report goes to
/// `report` when it is non-null. Errors are returned as text.
llvm::Expected<plan::Candidate> runPlanner(const ModelConfig &config,
                                           int64_t batch, int64_t seqLen,
                                           const AutoPlanOptions &options,
                                           llvm::raw_ostream *report);

} // namespace moe
} // namespace mlir

#endif // MOE_TOOLS_MOE_COMPILE_AUTOPLAN_H
