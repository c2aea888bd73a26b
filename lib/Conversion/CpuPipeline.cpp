//===- CpuPipeline.cpp - moe -> LLVM dialect for the CPU target ----------===//
//
// The pass pipeline moe-compile runs for `--target cpu`, also registered as
// `moe-cpu-pipeline` so each step can be inspected with moe-opt.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/ErrorHandling.h"

using namespace mlir;

/// The textual form keeps the pipeline readable next to its documentation
/// (docs/Passes.md); every step is an upstream or moe pass.
static std::string getCpuPipeline() {
  return moe::frontPipeline(/*forGpu=*/false) +
         "buffer-deallocation-pipeline,"
         "convert-bufferization-to-memref,"
         "convert-linalg-to-loops,"
         "moe-approximate-math,"
         "lower-affine,"
         "convert-scf-to-cf,"
         "expand-strided-metadata,"
         "lower-affine,"
         "finalize-memref-to-llvm,"
         "convert-math-to-llvm,"
         "convert-math-to-libm,"
         "convert-arith-to-llvm,"
         "convert-index-to-llvm,"
         "convert-func-to-llvm,"
         "convert-cf-to-llvm,"
         "reconcile-unrealized-casts";
}

void mlir::moe::buildMoECpuPipeline(OpPassManager &pm) {
  if (failed(parsePassPipeline(getCpuPipeline(), pm)))
    llvm::report_fatal_error("moe-cpu-pipeline: a pass is not registered");
}

void mlir::moe::registerMoECpuPipeline() {
  PassPipelineRegistration<>(
      "moe-cpu-pipeline",
      "Lower a module with moe ops to the LLVM dialect for the CPU target "
      "(BLAS calls for matrix products)",
      buildMoECpuPipeline);
}
