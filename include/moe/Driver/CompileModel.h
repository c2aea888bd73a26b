//===- CompileModel.h - what moe-compile does, as a library -----*- C++ -*-===//
//
// moe-compile's work after its command line is read: the input (a config or
// an .mlir module), the plan (given, or the planner's for a cluster), the
// import, the registered pipelines (buildMoEPartitionPipeline,
// buildMoETargetPipeline) and the host code, stopping where `emit` says.
// tools/moe-compile reads the command line into CompileModelOptions.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DRIVER_COMPILEMODEL_H
#define MOE_DRIVER_COMPILEMODEL_H

#include "moe/Conversion/Passes.h"
#include "moe/Plan/AutoPlan.h"
#include "moe/Target/HostCode.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/Timing.h"

#include <string>

namespace mlir {
namespace moe {

/// What to produce (moe-compile --emit).
enum class EmitKind {
  Mlir,            // the imported model, plan attached
  PartitionedMlir, // the rank's program
  LoweredMlir,     // after the target pipeline
  Ptx,             // the kernels' PTX (--target cuda)
  LlvmIr,
  Object,
  Executable
};

struct CompileModelOptions {
  std::string input;  // config.json, or an .mlir module ("-": stdin)
  std::string output; // "-": stdout
  EmitKind emit = EmitKind::Executable;
  /// The pipelines' options, checked (verifyCompilePipelineOptions).
  CompilePipelineOptions pipeline;
  /// Token ids [batch, seqLen] and, > 0, a generation build's cache length.
  int64_t batch = 1, seqLen = 16, maxSeqLen = 0;
  /// The planner's options: `planner.plan` is --plan ("auto", a plan, or
  /// empty: one rank); with a cluster the planner runs; `microbatches` 0 is
  /// the default; `chunks` 0 lets --plan auto choose.
  AutoPlanOptions planner;
  /// --explain-plan in this format (text, json, manifest) instead of
  /// compiling.
  bool explainPlan = false;
  std::string explainFormat = "text";
  /// The host code; kind, outputPath and runtimeLib are set from the above.
  HostCodeOptions host;
};

/// Registers what compileModel's context needs: every upstream dialect and
/// extension, their LLVM IR translations, the moe dialect and its sharding
/// interface models.
void registerCompileModelDialects(DialectRegistry &registry);

/// Runs moe-compile's work in `context` (which has the dialects of every
/// pipeline loaded), timing its stages under `timing`. Errors are printed
/// as "moe-compile: error: ..."; returns the exit status.
int compileModel(MLIRContext &context, CompileModelOptions options,
                 TimingScope &timing);

} // namespace moe
} // namespace mlir

#endif // MOE_DRIVER_COMPILEMODEL_H
