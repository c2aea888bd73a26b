//===- Partition.cpp - the per-rank SPMD program of a sharded module ------===//
//
// Implements `moe-partition`. One walk over each function's body, in order,
// keeps for every value of the global program its local value and sharding:
//
// - block arguments take the sharding of their own `shard.shard`;
// - `shard.shard` re-shards its source (all_slice / all_gather) when the
//   sharding changes;
// - ops implementing ShardingInterface (moe.layer) are partitioned by their
//   rule; linalg ops by their loops; reshapes and slices that take split
//   dimensions whole keep the splits; elementwise ops keep the one sharding
//   of their operands; ops on replicated values are cloned;
// - `func.return` returns the local values and fixes the function type.
//
// The global ops are erased at the end. The rules of linalg ops, reshapes
// and slices are in PartitionLinalg.cpp.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "PartitionInternal.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEPARTITIONPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

using namespace mlir::moe::partition;

namespace {

/// The sharding of an annotation, read only from a shard.sharding op
/// (shard::Sharding(Value) assumes one); an error at `op` otherwise.
FailureOr<shard::Sharding> readSharding(shard::ShardOp op) {
  if (!op.getSharding().getDefiningOp<shard::ShardingOp>())
    return op.emitOpError() << "has a sharding moe-partition cannot read (it "
                               "must come from a shard.sharding op)";
  return shard::Sharding(op.getSharding());
}

} // namespace

FailureOr<Type> FunctionPartitioner::localType(Operation *op, Type type,
                                               const shard::Sharding &s) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (isReplicated(s) || !tensor)
    return type;
  auto grid = shard::getGridOrNull(op, s.getGridAttr(), symbols);
  if (!grid)
    return op->emitOpError()
           << "refers to grid @" << s.getGrid() << ", which is not defined";
  for (int64_t d = 0; d < tensor.getRank(); ++d) {
    ArrayRef<int16_t> axes = axesOf(s, d);
    int64_t parts = 1;
    for (int16_t axis : axes) {
      if (axis < 0 || axis >= grid.getRank())
        return op->emitOpError()
               << "splits over axis " << axis << " of @" << s.getGrid()
               << ", which has " << grid.getRank() << " axes";
      parts *= grid.getShape()[axis];
    }
    if (tensor.isDynamicDim(d) || tensor.getDimSize(d) % parts != 0)
      return op->emitOpError()
             << "splits dimension " << d << " of " << type << " into " << parts
             << " parts (" << describeSharding(s)
             << "), which does not divide it";
  }
  return Type(shard::shardShapedType(tensor, grid, s));
}

FailureOr<Value> FunctionPartitioner::reshard(Operation *op, Value v,
                                              const shard::Sharding &from,
                                              const shard::Sharding &to,
                                              Type globalType) {
  if (describeSharding(from) == describeSharding(to))
    return v;
  auto tensor = cast<RankedTensorType>(globalType);
  auto unsupported = [&]() {
    return op->emitOpError()
           << "needs a re-sharding from " << describeSharding(from) << " to "
           << describeSharding(to)
           << "; moe-partition handles replicated <-> split along one axis "
              "per dimension only";
  };
  if (!isReplicated(from) && !isReplicated(to))
    return unsupported();
  // Split -> replicated gathers each split dimension; replicated -> split
  // keeps this rank's block of each.
  bool gather = isReplicated(to);
  const shard::Sharding &split = gather ? from : to;
  FailureOr<Type> splitType = localType(op, globalType, split);
  if (failed(splitType))
    return failure();
  SmallVector<int64_t> shape(
      cast<RankedTensorType>(gather ? *splitType : globalType).getShape());
  auto grid = shard::getGridOrNull(op, split.getGridAttr(), symbols);
  for (int64_t d = 0; d < tensor.getRank(); ++d) {
    ArrayRef<int16_t> axes = axesOf(split, d);
    if (axes.empty())
      continue;
    if (axes.size() != 1)
      return unsupported();
    int64_t parts = grid.getShape()[axes[0]];
    if (gather) {
      shape[d] *= parts;
      v = shard::AllGatherOp::create(
          builder, op->getLoc(),
          RankedTensorType::get(shape, tensor.getElementType()),
          split.getGrid(), axes, v, APInt(64, d));
    } else {
      shape[d] /= parts;
      v = shard::AllSliceOp::create(
          builder, op->getLoc(),
          RankedTensorType::get(shape, tensor.getElementType()), v,
          split.getGrid(), axes, d);
    }
  }
  return v;
}

LogicalResult FunctionPartitioner::partitionArguments() {
  Block &entry = func.getBody().front();
  for (BlockArgument arg : entry.getArguments()) {
    shard::Sharding sharding;
    for (Operation *user : arg.getUsers()) {
      auto annotation = dyn_cast<shard::ShardOp>(user);
      if (annotation && !annotation.getAnnotateForUsers()) {
        FailureOr<shard::Sharding> read = readSharding(annotation);
        if (failed(read))
          return failure();
        sharding = *read;
        break;
      }
    }
    FailureOr<Type> type = localType(func, arg.getType(), sharding);
    if (failed(type))
      return failure();
    arg.setType(*type);
    shardings[arg] = sharding;
    // What the rank receives, for the passes that decide what it loads
    // (moe-pack-weights).
    if (!isReplicated(sharding))
      func.setArgAttr(arg.getArgNumber(), kArgShardingAttrName,
                      getShardingAttr(sharding));
  }
  return success();
}

LogicalResult FunctionPartitioner::partitionShard(shard::ShardOp op) {
  FailureOr<shard::Sharding> read = readSharding(op);
  if (failed(read))
    return failure();
  shard::Sharding to = *read;
  if (!to.getStaticHaloSizes().empty() ||
      !to.getStaticShardedDimsOffsets().empty() ||
      !to.getDynamicHaloSizes().empty() ||
      !to.getDynamicShardedDimsOffsets().empty())
    return op.emitOpError() << "has halos or explicit shard sizes, which "
                               "moe-partition does not support";
  Value src = op.getSrc();
  FailureOr<Value> v =
      reshard(op, local(src), shardingOf(src), to, src.getType());
  if (failed(v))
    return failure();
  mapping.map(op.getResult(), *v);
  shardings[op.getResult()] = to;
  return success();
}

LogicalResult
FunctionPartitioner::partitionWithInterface(Operation *op,
                                            shard::ShardingInterface iface) {
  SmallVector<Value> operands;
  std::vector<shard::Sharding> operandShardings, resultShardings;
  for (Value operand : op->getOperands()) {
    operands.push_back(local(operand));
    operandShardings.push_back(shardingOf(operand));
  }
  for (Value result : op->getResults()) {
    shard::Sharding declared;
    for (Operation *user : result.getUsers())
      if (auto annotation = dyn_cast<shard::ShardOp>(user))
        if (!annotation.getAnnotateForUsers()) {
          FailureOr<shard::Sharding> read = readSharding(annotation);
          if (failed(read))
            return failure();
          declared = *read;
        }
    // Without an annotation the result has the sharding the layer's rule
    // gives it (its tokens'), never an assumed replication.
    auto layer = dyn_cast<LayerOp>(op);
    auto plan = func->getParentOfType<ModuleOp>()->getAttrOfType<PlanAttr>(
        MoEDialect::getPlanAttrName());
    if (!declared && layer && plan)
      declared = getLayerShardings(layer, plan).result;
    resultShardings.push_back(declared);
  }
  if (failed(iface.partition(operands, operandShardings, resultShardings,
                             mapping, symbols, builder)))
    return failure();
  for (auto [result, sharding] :
       llvm::zip_equal(op->getResults(), resultShardings)) {
    if (!mapping.contains(result))
      return op->emitOpError() << "partition rule left a result unmapped";
    shardings[result] = sharding;
  }
  return success();
}

LogicalResult FunctionPartitioner::partitionOther(Operation *op) {
  // The one sharding of the op's tensor operands, if any is sharded.
  shard::Sharding common;
  bool mixed = false;
  for (Value operand : op->getOperands()) {
    shard::Sharding s = shardingOf(operand);
    if (isReplicated(s))
      continue;
    if (!common)
      common = s;
    else if (describeSharding(common) != describeSharding(s))
      mixed = true;
  }
  bool replicated = !common;
  bool elementwise =
      op->hasTrait<OpTrait::Elementwise>() && op->getNumRegions() == 0 &&
      !mixed && llvm::all_of(op->getOperands(), [&](Value v) {
        return describeSharding(shardingOf(v)) == describeSharding(common);
      });
  if (!replicated && !elementwise)
    return op->emitOpError()
           << "has operands sharded " << describeSharding(common)
           << (mixed ? " and otherwise" : "")
           << "; moe-partition partitions moe ops, linalg ops, reshapes, "
              "slices, elementwise ops whose operands share one sharding, and "
              "ops on replicated values";
  Operation *clone = builder.clone(*op, mapping);
  for (auto [global, result] :
       llvm::zip_equal(op->getResults(), clone->getResults())) {
    FailureOr<Type> type = localType(op, global.getType(), common);
    if (failed(type))
      return failure();
    result.setType(*type);
    shardings[global] = common;
  }
  return success();
}

Value FunctionPartitioner::processIndex(Location loc, FlatSymbolRefAttr grid,
                                        ArrayRef<int16_t> axes) {
  auto gridOp = shard::getGridOrNull(func, grid, symbols);
  Value linear;
  for (int16_t axis : axes) {
    Value index =
        shard::ProcessMultiIndexOp::create(builder, loc, grid.getValue(),
                                           ArrayRef<shard::GridAxis>{axis})
            .getResult()[0];
    if (!linear) {
      linear = index;
      continue;
    }
    Value size =
        arith::ConstantIndexOp::create(builder, loc, gridOp.getShape()[axis]);
    linear = arith::AddIOp::create(
        builder, loc, arith::MulIOp::create(builder, loc, linear, size), index);
  }
  return linear;
}

FailureOr<Value> FunctionPartitioner::localInit(Operation *user, Value global,
                                                const shard::Sharding &to) {
  FailureOr<Type> type = localType(user, global.getType(), to);
  if (failed(type))
    return failure();
  Location loc = user->getLoc();
  auto empty = global.getDefiningOp<tensor::EmptyOp>();
  auto fill = global.getDefiningOp<linalg::FillOp>();
  if (fill)
    empty = fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>();
  auto tensor = dyn_cast<RankedTensorType>(*type);
  if (empty && tensor && tensor.hasStaticShape()) {
    Value fresh = tensor::EmptyOp::create(builder, loc, tensor.getShape(),
                                          tensor.getElementType());
    if (!fill)
      return fresh;
    return linalg::FillOp::create(builder, loc, local(fill.getInputs()[0]),
                                  fresh)
        .getResult(0);
  }
  return reshard(user, local(global), shardingOf(global), to, global.getType());
}

LogicalResult FunctionPartitioner::run() {
  if (!func.getBody().hasOneBlock())
    return func.emitOpError()
           << "has more than one block; moe-partition handles one-block "
              "function bodies";
  Block &entry = func.getBody().front();
  if (failed(partitionArguments()))
    return failure();
  SmallVector<Operation *> globalOps;
  for (Operation &op : entry)
    globalOps.push_back(&op);
  for (Operation *op : globalOps) {
    builder.setInsertionPoint(op);
    // The ops built for `op` are those that end up between its predecessor
    // and it; they inherit its decoder layer (moe-pipeline reads it).
    Operation *previous = op->getPrevNode();
    auto decoderLayer =
        op->getAttrOfType<IntegerAttr>(MoEDialect::getDecoderLayerAttrName());
    auto opGroup =
        op->getAttrOfType<IntegerAttr>(MoEDialect::getOpGroupAttrName());
    LogicalResult result = success();
    if (isa<shard::ShardingOp>(op)) {
      continue; // kept in place; erased with its users below
    } else if (auto annotation = dyn_cast<shard::ShardOp>(op)) {
      result = partitionShard(annotation);
    } else if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      SmallVector<Value> values;
      for (Value v : ret.getOperands())
        values.push_back(local(v));
      func::ReturnOp::create(builder, ret.getLoc(), values);
      func.setFunctionType(FunctionType::get(func.getContext(),
                                             entry.getArgumentTypes(),
                                             ValueRange(values).getTypes()));
    } else if (auto iface = dyn_cast<shard::ShardingInterface>(op);
               iface && op->getDialect() && isa<MoEDialect>(op->getDialect())) {
      result = partitionWithInterface(op, iface);
    } else if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
               linalgOp && linalgOp.hasPureTensorSemantics()) {
      result = partitionLinalg(linalgOp);
    } else if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(op)) {
      result = partitionReshape(op);
    } else if (isa<tensor::ExtractSliceOp, tensor::InsertSliceOp>(op)) {
      result = partitionSlice(op);
    } else {
      result = partitionOther(op);
    }
    if (failed(result))
      return failure();
    if (decoderLayer)
      for (Operation *built = previous ? previous->getNextNode()
                                       : &entry.front();
           built && built != op; built = built->getNextNode()) {
        built->setAttr(MoEDialect::getDecoderLayerAttrName(), decoderLayer);
        if (opGroup)
          built->setAttr(MoEDialect::getOpGroupAttrName(), opGroup);
      }
  }
  for (Operation *op : llvm::reverse(globalOps)) {
    op->dropAllUses();
    op->erase();
  }
  // Replicated copies of values no local op uses (the global-sized inits of
  // split ops, built again at the local size).
  SmallVector<Operation *> ops;
  for (Operation &op : entry)
    ops.push_back(&op);
  for (Operation *op : llvm::reverse(ops))
    if (isOpTriviallyDead(op))
      op->erase();
  return success();
}

namespace {

struct MoEPartitionPass
    : public moe::impl::MoEPartitionPassBase<MoEPartitionPass> {
  void getDependentDialects(DialectRegistry &registry) const override {
    MoEPartitionPassBase::getDependentDialects(registry);
    registerShardingInterfaceExternalModels(registry);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
    SymbolTableCollection symbols;
    // Which entry of the plan's per-layer lists applies: the layers' order in
    // the module, as the plan's verifier counts them.
    int64_t layerIndex = 0;
    module.walk([&](LayerOp layer) {
      if (!layer->hasAttr(MoEDialect::getLayerIndexAttrName()))
        layer->setAttr(
            MoEDialect::getLayerIndexAttrName(),
            IntegerAttr::get(IntegerType::get(&getContext(), 64), layerIndex));
      ++layerIndex;
    });
    for (auto func :
         llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
      if (func.isExternal())
        continue;
      bool sharded = false, unsharded = false;
      func.walk([&](Operation *op) {
        if (isa<shard::ShardOp>(op))
          sharded = true;
        if (auto layer = dyn_cast<LayerOp>(op))
          if (!llvm::any_of(layer->getOperands(), [](Value v) {
                return v.getDefiningOp<shard::ShardOp>();
              }))
            unsharded = true;
      });
      if (unsharded && plan && plan.getWorldSize() > 1) {
        func.emitOpError() << "has moe.layer ops without shardings under the "
                              "plan "
                           << plan << "; run moe-shard first";
        return signalPassFailure();
      }
      if (!sharded)
        continue;
      if (!plan) {
        func.emitOpError() << "is sharded but its module has no "
                              "#moe.plan ('moe.plan' attribute)";
        return signalPassFailure();
      }
      if (failed(FunctionPartitioner(func, symbols).run()))
        return signalPassFailure();
    }
  }
};

} // namespace
