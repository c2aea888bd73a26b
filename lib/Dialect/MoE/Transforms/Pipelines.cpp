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
      "Decompose the moe.layer ops of a module for reading: moe-decompose, "
      "then canonicalize",
      [](OpPassManager &pm) {
        pm.addPass(createMoEDecomposePass());
        pm.addPass(createCanonicalizerPass());
      });
}
