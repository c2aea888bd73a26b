//===- ImportForPlan.cpp - a config imported under a plan -----------------===//
//
// The step between the planner and the importer: a plan is checked against
// the model's summary (lib/Plan) before the model is built, and attached to
// it after. The importer proper (ModelImport.cpp, Attention.cpp) builds the
// model for one rank and knows no plan.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/ModelImport.h"
#include "moe/Plan/AutoPlan.h"

#include "mlir/IR/Verifier.h"

using namespace mlir;
using namespace mlir::moe;

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::moe::importModelForPlan(MLIRContext *context, const ModelConfig &config,
                              int64_t batch, int64_t seqLen, int64_t maxSeqLen,
                              PlanAttr plan, int64_t microbatches) {
  llvm::Expected<int64_t> chosen = checkPlanForModel(
      summarizeModel(config, batch, seqLen), plan, microbatches);
  if (!chosen)
    return chosen.takeError();
  // The decode step runs the model on one token per sequence.
  if (maxSeqLen) {
    llvm::Expected<int64_t> decode =
        checkPlanForModel(summarizeModel(config, batch, 1), plan, *chosen);
    if (!decode)
      return llvm::createStringError("the decode step ([" +
                                     std::to_string(batch) +
                                     ", 1] tokens) cannot take the plan: " +
                                     llvm::toString(decode.takeError()));
  }
  // moe-pipeline runs one program per stage, the first stage's layers: a
  // layer must have the sliding window of the layer it stands for there.
  if (plan && plan.getPp() > 1 && config.numLayers % plan.getPp() == 0) {
    int64_t perStage = config.numLayers / plan.getPp();
    for (int64_t l = perStage; l < config.numLayers; ++l)
      if (config.windowOf(l) != config.windowOf(l % perStage))
        return llvm::createStringError(
            "pp = " + std::to_string(plan.getPp()) +
            " runs one program on every stage, but layer " + std::to_string(l) +
            " has a sliding window of " + std::to_string(config.windowOf(l)) +
            " and layer " + std::to_string(l % perStage) +
            " of the first stage " +
            std::to_string(config.windowOf(l % perStage)) +
            " (0: none); use a pp whose stages have the same windows");
  }
  auto module = importModel(context, config, batch, seqLen, *chosen, maxSeqLen);
  if (!module)
    return module.takeError();
  if (plan && failed(attachPlan(**module, plan)))
    return llvm::createStringError("the plan does not fit the model");
  return module;
}

LogicalResult mlir::moe::attachPlan(ModuleOp module, PlanAttr plan) {
  module->setAttr(MoEDialect::getPlanAttrName(), plan);
  return verify(module);
}
