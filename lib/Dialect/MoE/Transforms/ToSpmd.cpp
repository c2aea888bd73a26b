//===- ToSpmd.cpp - a model -> the per-rank program of its plan -----------===//
//
// Implements `moe-to-spmd`: which partitioning passes a module needs, decided
// from the module itself (its plan, whether it has grids and annotations),
// in one place that moe-compile and moe-opt share.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOETOSPMDPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The plan's rewrites of its layers (docs/Parallelism.md), strict: a layer
/// the plan asks a rewrite for must get it.
void addCommunicationRewrites(OpPassManager &pm, PlanAttr plan,
                              int64_t numLayers) {
  MoESliceAllReducePassOptions slice;
  MoEDedupTokensPassOptions dedup;
  slice.strict = dedup.strict = true;
  for (int64_t layer = 0; layer < numLayers; ++layer) {
    if (plan.getDispatchForLayer(layer) == DispatchStrategy::slice_allreduce)
      slice.layers.push_back(layer);
    if (plan.getDedupForLayer(layer))
      dedup.layers.push_back(layer);
  }
  if (!slice.layers.empty())
    pm.addPass(createMoESliceAllReducePass(slice));
  if (!dedup.layers.empty())
    pm.addPass(createMoEDedupTokensPass(dedup));
}

struct MoEToSpmdPass : public moe::impl::MoEToSpmdPassBase<MoEToSpmdPass> {
  using Base::Base;

  void getDependentDialects(DialectRegistry &registry) const override {
    MoEToSpmdPassBase::getDependentDialects(registry);
    registerShardingInterfaceExternalModels(registry);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
    bool hasGrids = !module.getOps<shard::GridOp>().empty();
    bool hasAnnotations = false;
    module.walk([&](shard::ShardOp) { hasAnnotations = true; });
    bool partitionedBefore = hasGrids && !hasAnnotations;
    int64_t numLayers = countPlanLayers(module);

    OpPassManager pm(ModuleOp::getOperationName());
    if (plan && plan.getWorldSize() > 1 && !partitionedBefore) {
      if (!hasGrids)
        pm.addPass(createMoEShardPass());
      pm.addPass(createMoEPartitionPass());
    }
    if (plan && !partitionedBefore)
      addCommunicationRewrites(pm, plan, numLayers);
    if (plan && plan.getPp() > 1 && !partitionedBefore)
      pm.addPass(createMoEPipelinePass());
    pm.addPass(createMoEPackWeightsPass());
    if (!overlap.empty()) {
      MoEOverlapPassOptions options;
      options.collectives = llvm::to_vector(overlap);
      options.chunks = overlapChunks;
      options.remarks = false;
      pm.addPass(createMoEOverlapPass(options));
    }
    if (traceLayers)
      pm.addPass(createMoETraceLayersPass());
    if (failed(runPipeline(pm, module)))
      return signalPassFailure();
    // The decoder layer tags served moe-pipeline; the rank's program does
    // not need them.
    module.walk([](Operation *op) {
      op->removeAttr(MoEDialect::getDecoderLayerAttrName());
      op->removeAttr(MoEDialect::getOpGroupAttrName());
    });
  }
};

} // namespace
