//===- ShardingInterfaceImpl.cpp - moe ops' partition rules ---------------===//
//
// moe.layer implements upstream's ShardingInterface through an external
// model whose `partition` builds the rank's part of the layer
// (LayerPartition.h). The shardings it accepts are the ones moe-shard gives
// (getLayerShardings); any other is diagnosed, not guessed at.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::moe;

namespace {
struct LayerShardingModel
    : public shard::ShardingInterface::ExternalModel<LayerShardingModel,
                                                     LayerOp> {
  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<shard::Sharding> operandShardings,
                          ArrayRef<shard::Sharding> resultShardings,
                          IRMapping &partitionMap,
                          SymbolTableCollection &symbolTable,
                          OpBuilder &builder) const {
    auto layer = cast<LayerOp>(op);
    auto module = op->getParentOfType<ModuleOp>();
    PlanAttr plan =
        module ? module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName())
               : PlanAttr();
    if (!plan)
      return op->emitOpError()
             << "cannot be partitioned without a #moe.plan on its module";
    if (!layer.getTokens().getType().getElementType().isF32())
      return op->emitOpError() << "is partitioned for f32 tokens and weights "
                                  "only, got "
                               << layer.getTokens().getType();
    LayerShardings expected = getLayerShardings(layer, plan);
    auto differs = [](const shard::Sharding &given,
                      const shard::Sharding &wanted) {
      return describeSharding(given) != describeSharding(wanted);
    };
    for (auto [i, given] : llvm::enumerate(operandShardings)) {
      if (differs(given, expected.operands[i]))
        return op->emitOpError()
               << "operand #" << i << " is sharded " << describeSharding(given)
               << ", but under " << plan << " the layer's rule needs "
               << describeSharding(expected.operands[i])
               << " (the layout moe-shard annotates)";
    }
    if (!resultShardings.empty() &&
        differs(resultShardings[0], expected.result))
      return op->emitOpError()
             << "result is sharded " << describeSharding(resultShardings[0])
             << ", but under " << plan << " the layer's rule gives "
             << describeSharding(expected.result);

    // Operand segments in ODS order; absent optional operands stay null.
    auto local = [&](unsigned segment) -> Value {
      auto [start, length] = layer.getODSOperandIndexAndLength(segment);
      return length ? partitionedOperands[start] : Value();
    };
    LocalLayerOperands operands;
    operands.tokens = local(0);
    operands.router = local(1);
    operands.routerBias = local(2);
    operands.up = local(3);
    operands.down = local(4);
    operands.gate = local(5);
    operands.sharedUp = local(6);
    operands.sharedDown = local(7);
    operands.sharedGateProj = local(8);
    operands.sharedGate = local(9);
    Value result = buildLayerOnRank(builder, op->getLoc(),
                                    getLayerSpec(layer, plan), operands, plan);
    partitionMap.map(layer.getResult(), result);
    return success();
  }
};
} // namespace

void mlir::moe::registerShardingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, MoEDialect *) {
    LayerOp::attachInterface<LayerShardingModel>(*ctx);
  });
}
