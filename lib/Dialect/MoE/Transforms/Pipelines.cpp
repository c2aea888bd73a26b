//===- Pipelines.cpp - moe pass pipelines ---------------------------------===//
//
// Named pipelines that string the moe passes together.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::moe::registerMoEPipelines() {
  PassPipelineRegistration<>(
      "moe-example-pipeline",
      "The pipeline README command (a) runs: moe-decompose, then canonicalize",
      [](OpPassManager &pm) {
        pm.addPass(createMoEDecomposePass());
        pm.addPass(createCanonicalizerPass());
      });
}
