//===- Shard.cpp - annotate MoE layers with the plan's shardings ----------===//
//
// Implements `moe-shard`: the plan's grids, the shardings of function
// arguments by their `moe.parallel` role (tokens over dp, Megatron column-
// and row-parallel weights over tp), and a `shard.shard` annotation on every
// operand and the result of each `moe.layer` (getLayerShardings).
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOESHARDPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Creates the plan's grids, or checks the ones already there.
LogicalResult ensureGrids(ModuleOp module, PlanAttr plan) {
  auto dense = module.lookupSymbol(kDenseGridName);
  auto experts = module.lookupSymbol(kExpertGridName);
  if (!dense && !experts) {
    OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
    createPlanGrids(b, module.getLoc(), plan);
    return success();
  }
  for (auto [name, symbol, shape] :
       {std::make_tuple(kDenseGridName, dense, getDenseGridShape(plan)),
        std::make_tuple(kExpertGridName, experts, getExpertGridShape(plan))}) {
    auto grid = dyn_cast_or_null<shard::GridOp>(symbol);
    if (!grid)
      return module.emitError() << "moe-shard: the module defines one of @"
                                << kDenseGridName << " and @" << kExpertGridName
                                << " but not the other as a shard.grid";
    if (grid.getShape() != ArrayRef<int64_t>(shape)) {
      InFlightDiagnostic diag = grid.emitOpError() << "has shape ";
      llvm::interleave(grid.getShape(), diag, "x");
      diag << " but the module's plan " << plan << " needs ";
      llvm::interleave(shape, diag, "x");
      return diag;
    }
  }
  return success();
}

/// Whether `v` is a layer operand moe-shard (or someone) annotated for its
/// users; an argument's own annotation does not count.
bool isAnnotated(Value v) {
  auto annotation = v.getDefiningOp<shard::ShardOp>();
  return annotation && annotation.getAnnotateForUsers();
}

struct MoEShardPass : public moe::impl::MoEShardPassBase<MoEShardPass> {
  using MoEShardPassBase::MoEShardPassBase;

  void runOnOperation() override;

private:
  Value shardingValue(OpBuilder &b, Location loc, const shard::Sharding &s) {
    return shard::ShardingOp::create(b, loc, s.getGridAttr(), s.getSplitAxes())
        .getResult();
  }
  /// The argument's own annotation (created if missing): what the function
  /// receives on each rank.
  Value annotateArgument(BlockArgument arg, const shard::Sharding &s);
  void annotateLayer(LayerOp layer, const LayerShardings &shardings);
  /// The arguments' shardings from their roles; an error names a bad role.
  LogicalResult annotateRoles(func::FuncOp func, PlanAttr plan);
};

LogicalResult MoEShardPass::annotateRoles(func::FuncOp func, PlanAttr plan) {
  MLIRContext *ctx = &getContext();
  for (BlockArgument arg : func.getArguments()) {
    auto role = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  kParallelRoleAttrName);
    if (!role)
      continue;
    // The dimensions the role splits, and the grid axis of each.
    SmallVector<std::pair<int64_t, int16_t>> splits;
    if (role.getValue() == "batch") {
      if (plan.getDp() > 1)
        splits.push_back({0, kDpAxis});
    } else if (role.getValue() == "column" || role.getValue() == "row") {
      if (plan.getTp() > 1)
        splits.push_back({role.getValue() == "row" ? 1 : 0, kTpAxis});
    } else if (role.getValue() == "kv-cache") {
      // [layers, sequences, positions, kv heads, head dim]: each rank
      // caches its sequences' keys of its kv heads.
      if (plan.getDp() > 1)
        splits.push_back({1, kDpAxis});
      if (plan.getTp() > 1)
        splits.push_back({3, kTpAxis});
    } else {
      return func.emitOpError()
             << "argument #" << arg.getArgNumber() << " has "
             << kParallelRoleAttrName << " = " << role
             << "; expected \"batch\", \"column\", \"row\" or \"kv-cache\"";
    }
    int64_t needed = role.getValue() == "kv-cache" ? 5
                     : role.getValue() == "row"    ? 2
                                                   : 1;
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || type.getRank() < needed)
      return func.emitOpError()
             << "argument #" << arg.getArgNumber() << " of type "
             << arg.getType() << " cannot be " << role << "-parallel (it has "
             << "fewer than " << needed << " dimensions)";
    if (splits.empty() || keepSignature)
      continue;
    SmallVector<shard::GridAxesAttr> axes(splits.back().first + 1,
                                          DenseI16ArrayAttr::get(ctx, {}));
    for (auto [dim, axis] : splits)
      axes[dim] = DenseI16ArrayAttr::get(ctx, {axis});
    annotateArgument(
        arg, shard::Sharding::get(FlatSymbolRefAttr::get(ctx, kDenseGridName),
                                  axes));
  }
  return success();
}

Value MoEShardPass::annotateArgument(BlockArgument arg,
                                     const shard::Sharding &s) {
  for (Operation *user : arg.getUsers())
    if (auto existing = dyn_cast<shard::ShardOp>(user))
      if (!existing.getAnnotateForUsers())
        return existing.getResult();
  OpBuilder b = OpBuilder::atBlockBegin(arg.getOwner());
  Location loc = arg.getLoc();
  auto annotated =
      shard::ShardOp::create(b, loc, arg, shardingValue(b, loc, s), UnitAttr());
  arg.replaceAllUsesExcept(annotated.getResult(), annotated);
  return annotated.getResult();
}

void MoEShardPass::annotateLayer(LayerOp layer,
                                 const LayerShardings &shardings) {
  Block *entry = &layer->getParentRegion()->front();
  for (auto [operand, sharding] :
       llvm::zip_equal(layer->getOpOperands(), shardings.operands)) {
    Value v = operand.get();
    auto arg = dyn_cast<BlockArgument>(v);
    if (!keepSignature && arg && arg.getOwner() == entry)
      v = annotateArgument(arg, sharding);
    OpBuilder b(layer);
    Location loc = layer.getLoc();
    operand.set(shard::ShardOp::create(
        b, loc, v, shardingValue(b, loc, sharding), b.getUnitAttr()));
  }
  OpBuilder b = OpBuilder(layer->getContext());
  b.setInsertionPointAfter(layer);
  Location loc = layer.getLoc();
  auto result = shard::ShardOp::create(b, loc, layer.getResult(),
                                       shardingValue(b, loc, shardings.result),
                                       UnitAttr());
  layer.getResult().replaceAllUsesExcept(result.getResult(), result);
}

void MoEShardPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
  if (!plan) {
    module.emitError() << "moe-shard needs the module's plan: a '"
                       << MoEDialect::getPlanAttrName()
                       << "' attribute such as #moe.plan<dp = 2, ep = 2>";
    return signalPassFailure();
  }
  if (failed(ensureGrids(module, plan)))
    return signalPassFailure();

  bool failedAny = false;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (failed(annotateRoles(func, plan))) {
      failedAny = true;
      continue;
    }
    SmallVector<LayerOp> layers;
    func.walk([&](LayerOp layer) { layers.push_back(layer); });
    for (LayerOp layer : layers) {
      if (layer->getParentOp() != func ||
          func.getBody().getBlocks().size() != 1) {
        layer.emitOpError() << "is not in the single block of its function's "
                               "body; moe-shard annotates only such layers";
        failedAny = true;
        continue;
      }
      if (llvm::any_of(layer->getOperands(), isAnnotated))
        continue;
      annotateLayer(layer, getLayerShardings(layer, plan));
    }
    if (!keepSignature || layers.empty())
      continue;
    // Whole results: every returned tensor gathered to replicated.
    func.walk([&](func::ReturnOp ret) {
      OpBuilder b(ret);
      shard::Sharding replicated = shard::Sharding::get(
          FlatSymbolRefAttr::get(&getContext(), kDenseGridName),
          {DenseI16ArrayAttr::get(&getContext(), {})});
      for (OpOperand &operand : ret->getOpOperands()) {
        if (!isa<RankedTensorType>(operand.get().getType()))
          continue;
        operand.set(shard::ShardOp::create(
            b, ret.getLoc(), operand.get(),
            shardingValue(b, ret.getLoc(), replicated), b.getUnitAttr()));
      }
    });
  }
  if (failedAny)
    signalPassFailure();
}

} // namespace
