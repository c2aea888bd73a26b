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
// The global ops are erased at the end.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

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

namespace {

bool isReplicated(const shard::Sharding &s) {
  return !s || llvm::all_of(s.getSplitAxes(),
                            [](shard::GridAxesAttr a) { return a.empty(); });
}

/// Split axes of tensor dim `d` (empty past the listed dims).
ArrayRef<int16_t> axesOf(const shard::Sharding &s, int64_t d) {
  if (!s || d >= static_cast<int64_t>(s.getSplitAxes().size()))
    return {};
  return s.getSplitAxes()[d].asArrayRef();
}

/// The sharding of an annotation, read only from a shard.sharding op
/// (shard::Sharding(Value) assumes one); an error at `op` otherwise.
FailureOr<shard::Sharding> readSharding(shard::ShardOp op) {
  if (!op.getSharding().getDefiningOp<shard::ShardingOp>())
    return op.emitOpError() << "has a sharding moe-partition cannot read (it "
                               "must come from a shard.sharding op)";
  return shard::Sharding(op.getSharding());
}

class FunctionPartitioner {
public:
  FunctionPartitioner(func::FuncOp func, SymbolTableCollection &symbols)
      : func(func), symbols(symbols) {}

  LogicalResult run();

private:
  Value local(Value global) { return mapping.lookupOrDefault(global); }
  shard::Sharding shardingOf(Value global) {
    auto it = shardings.find(global);
    return it == shardings.end() ? shard::Sharding() : it->second;
  }
  /// The local type of `type` under `s`, or an error at `op`.
  FailureOr<Type> localType(Operation *op, Type type, const shard::Sharding &s);
  /// `v` (local, sharded `from`) re-sharded to `to`, built at `op`.
  FailureOr<Value> reshard(Operation *op, Value v, const shard::Sharding &from,
                           const shard::Sharding &to, Type globalType);
  LogicalResult partitionArguments();
  LogicalResult partitionShard(shard::ShardOp op);
  LogicalResult partitionWithInterface(Operation *op,
                                       shard::ShardingInterface iface);
  LogicalResult partitionOther(Operation *op);
  LogicalResult partitionLinalg(linalg::LinalgOp op);
  LogicalResult partitionReshape(Operation *op);
  /// tensor.extract_slice / tensor.insert_slice that take split dimensions
  /// whole (the slice's other dimensions stay as they are).
  LogicalResult partitionSlice(Operation *op);
  /// The local value of `global` (an init of a linalg op) with local type
  /// `type`: a tensor.empty, or a fill of one, is built again at the local
  /// size instead of being sliced.
  FailureOr<Value> localInit(Operation *user, Value global,
                             const shard::Sharding &to);
  /// This rank's index along `axes` of `grid` (row-major over the axes).
  Value processIndex(Location loc, FlatSymbolRefAttr grid,
                     ArrayRef<int16_t> axes);

  func::FuncOp func;
  SymbolTableCollection &symbols;
  IRMapping mapping;
  DenseMap<Value, shard::Sharding> shardings;
  OpBuilder builder{func.getContext()};
};

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

namespace {
/// The loop a map result indexes: `d` or `d floordiv c` (c > 0), with c
/// (1 for a plain dim); failure for anything else.
FailureOr<std::pair<unsigned, int64_t>> matchLoop(AffineExpr e) {
  if (auto dim = dyn_cast<AffineDimExpr>(e))
    return std::make_pair(dim.getPosition(), int64_t(1));
  auto bin = dyn_cast<AffineBinaryOpExpr>(e);
  if (bin && bin.getKind() == AffineExprKind::FloorDiv)
    if (auto dim = dyn_cast<AffineDimExpr>(bin.getLHS()))
      if (auto c = dyn_cast<AffineConstantExpr>(bin.getRHS()))
        if (c.getValue() > 0)
          return std::make_pair(dim.getPosition(), c.getValue());
  return failure();
}

/// A sharding of `axes` on `grid`, without trailing unsplit dimensions (the
/// form shard.sharding ops and moe-shard use, so equal splits compare equal).
shard::Sharding makeSharding(FlatSymbolRefAttr grid,
                             SmallVector<shard::GridAxesAttr> axes) {
  while (axes.size() > 1 && axes.back().empty())
    axes.pop_back();
  if (axes.empty())
    axes.push_back(DenseI16ArrayAttr::get(grid.getContext(), {}));
  return shard::Sharding::get(grid, axes);
}

std::string str(AffineExpr e) {
  std::string text;
  llvm::raw_string_ostream os(text);
  e.print(os);
  return text;
}

/// Whether `v` is a zero float splat filled by a linalg.fill.
bool isZeroFill(Value v) {
  auto fill = v.getDefiningOp<linalg::FillOp>();
  if (!fill)
    return false;
  auto cst = fill.getInputs()[0].getDefiningOp<arith::ConstantOp>();
  auto value = cst ? dyn_cast<FloatAttr>(cst.getValue()) : FloatAttr();
  return value && value.getValue().isZero();
}

/// Whether the op's body accumulates its (single) result by addition.
bool isSumReduction(linalg::LinalgOp op) {
  if (op.getNumDpsInits() != 1)
    return false;
  Block *body = op.getBlock();
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield.getValues()[0].getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  // The accumulator is read once, by the addition: out = out + f(ins).
  Value acc = body->getArguments().back();
  return (add.getLhs() == acc || add.getRhs() == acc) && acc.hasOneUse();
}
} // namespace

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

LogicalResult FunctionPartitioner::partitionLinalg(linalg::LinalgOp op) {
  unsigned numLoops = op.getNumLoops();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  SmallVector<SmallVector<int16_t>> loopAxes(numLoops);
  SmallVector<bool> loopSplit(numLoops, false);
  FlatSymbolRefAttr grid;
  // The loops' splits, from the operands that are split.
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isa<RankedTensorType>(operand.get().getType()))
      continue;
    shard::Sharding s = shardingOf(operand.get());
    if (isReplicated(s))
      continue;
    if (grid && grid != s.getGridAttr())
      return op->emitOpError()
             << "has operands split over two grids (@" << grid.getValue()
             << " and @" << s.getGrid() << ")";
    grid = s.getGridAttr();
    AffineMap map = op.getMatchingIndexingMap(&operand);
    for (unsigned d = 0; d < map.getNumResults(); ++d) {
      ArrayRef<int16_t> axes = axesOf(s, d);
      if (axes.empty())
        continue;
      FailureOr<std::pair<unsigned, int64_t>> loop =
          matchLoop(map.getResult(d));
      if (failed(loop))
        return op->emitOpError()
               << "operand #" << operand.getOperandNumber()
               << " is split along dimension " << d << ", indexed by "
               << str(map.getResult(d))
               << "; moe-partition splits dimensions indexed by one loop "
                  "(or its floordiv by a constant)";
      unsigned l = loop->first;
      if (loopSplit[l] && ArrayRef<int16_t>(loopAxes[l]) != axes)
        return op->emitOpError()
               << "has loop " << l << " split two ways by its operands";
      loopSplit[l] = true;
      loopAxes[l].assign(axes.begin(), axes.end());
    }
  }
  if (!grid) // nothing split: the op is replicated
    return partitionOther(op);
  // One axis splits one loop: two loops over the same axis would leave each
  // rank only its diagonal block.
  for (unsigned l = 0; l < numLoops; ++l)
    for (unsigned m = l + 1; m < numLoops; ++m)
      for (int16_t axis : loopAxes[l])
        if (llvm::is_contained(loopAxes[m], axis))
          return op->emitOpError()
                 << "has loops " << l << " and " << m
                 << " split over the same grid axis " << axis
                 << " by its operands; moe-partition splits a loop per axis";
  auto gridOp = shard::getGridOrNull(op, grid, symbols);
  if (!gridOp)
    return op->emitOpError()
           << "refers to grid @" << grid.getValue() << ", which is not defined";
  SmallVector<int64_t> parts(numLoops, 1);
  for (unsigned l = 0; l < numLoops; ++l) {
    for (int16_t axis : loopAxes[l]) {
      if (axis < 0 || axis >= gridOp.getRank())
        return op->emitOpError()
               << "splits over axis " << axis << " of @" << grid.getValue()
               << ", which has " << gridOp.getRank() << " axes";
      parts[l] *= gridOp.getShape()[axis];
    }
    if (parts[l] > 1 &&
        (ShapedType::isDynamic(ranges[l]) || ranges[l] % parts[l] != 0))
      return op->emitOpError()
             << "splits loop " << l << " (size " << ranges[l] << ") into "
             << parts[l] << " parts, which does not divide it";
  }
  // What each operand must be: its dims split like the loops indexing them.
  auto required = [&](OpOperand &operand) -> FailureOr<shard::Sharding> {
    AffineMap map = op.getMatchingIndexingMap(&operand);
    SmallVector<shard::GridAxesAttr> axes;
    for (unsigned d = 0; d < map.getNumResults(); ++d) {
      FailureOr<std::pair<unsigned, int64_t>> loop =
          matchLoop(map.getResult(d));
      SmallVector<int16_t> these;
      if (succeeded(loop) && loopSplit[loop->first]) {
        int64_t local = ranges[loop->first] / parts[loop->first];
        if (local % loop->second != 0)
          return op->emitOpError()
                 << "indexes operand #" << operand.getOperandNumber() << " by "
                 << str(map.getResult(d))
                 << ", which does not map this rank's block of the loop to a "
                    "block of the operand";
        these = loopAxes[loop->first];
      } else if (failed(loop)) {
        // A constant or compound index reads the whole dimension.
        for (unsigned l = 0; l < numLoops; ++l)
          if (loopSplit[l] && map.getResult(d).isFunctionOfDim(l))
            return op->emitOpError()
                   << "indexes operand #" << operand.getOperandNumber()
                   << " by " << str(map.getResult(d))
                   << ", a function of split loop " << l;
      }
      axes.push_back(DenseI16ArrayAttr::get(op->getContext(), these));
    }
    return makeSharding(grid, axes);
  };
  // Split reductions leave partial sums, completed by an all_reduce.
  SmallVector<int16_t> reduced;
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  for (unsigned l = 0; l < numLoops; ++l)
    if (loopSplit[l] && iterators[l] == utils::IteratorType::reduction)
      reduced.append(loopAxes[l]);
  if (!reduced.empty()) {
    if (!isSumReduction(op) || !isZeroFill(op.getDpsInits()[0]))
      return op->emitOpError()
             << "reduces over a split loop; moe-partition completes such "
                "reductions with an all_reduce sum, so the op must add into "
                "one zero-filled result";
  }
  // Values the body reads from outside must be the same on every rank.
  WalkResult captured = op.getBlock()->walk([&](Operation *inner) {
    for (Value v : inner->getOperands()) {
      Operation *owner = v.getDefiningOp();
      if (!owner)
        owner = cast<BlockArgument>(v).getOwner()->getParentOp();
      if (op->isAncestor(owner) || isReplicated(shardingOf(v)))
        continue;
      inner->emitOpError() << "inside a partitioned " << op->getName()
                           << " reads a split value";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (captured.wasInterrupted())
    return failure();

  // The local operands.
  SmallVector<Value> operands;
  for (OpOperand &operand : op->getOpOperands()) {
    Value global = operand.get();
    if (!isa<RankedTensorType>(global.getType())) {
      operands.push_back(local(global));
      continue;
    }
    FailureOr<shard::Sharding> want = required(operand);
    if (failed(want))
      return failure();
    FailureOr<Value> v =
        op.isDpsInit(&operand) &&
                describeSharding(shardingOf(global)) != describeSharding(*want)
            ? localInit(op, global, *want)
            : reshard(op, local(global), shardingOf(global), *want,
                      global.getType());
    if (failed(v))
      return failure();
    operands.push_back(*v);
  }
  // Offsets of the split loops, for bodies that read their indices.
  DenseMap<unsigned, Value> offsets;
  op.getBlock()->walk([&](linalg::IndexOp index) {
    unsigned l = index.getDim();
    if (l >= numLoops || !loopSplit[l] || offsets.count(l))
      return;
    Value size = arith::ConstantIndexOp::create(builder, op->getLoc(),
                                                ranges[l] / parts[l]);
    offsets[l] = arith::MulIOp::create(
        builder, op->getLoc(), processIndex(op->getLoc(), grid, loopAxes[l]),
        size);
  });
  Operation *clone = builder.clone(*op, mapping);
  clone->setOperands(operands);
  clone->walk([&](linalg::IndexOp index) {
    auto it = offsets.find(index.getDim());
    if (it == offsets.end())
      return;
    OpBuilder b(index->getContext());
    b.setInsertionPointAfter(index);
    auto shifted = arith::AddIOp::create(b, index.getLoc(), index, it->second);
    index.getResult().replaceAllUsesExcept(shifted, shifted);
  });
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointAfter(clone);
  for (auto [i, global] : llvm::enumerate(op->getResults())) {
    OpOperand *init = op.getDpsInitOperand(i);
    FailureOr<shard::Sharding> resultSharding = required(*init);
    if (failed(resultSharding))
      return failure();
    FailureOr<Type> type = localType(op, global.getType(), *resultSharding);
    if (failed(type))
      return failure();
    Value result = clone->getResult(i);
    result.setType(*type);
    if (!reduced.empty())
      result = shard::AllReduceOp::create(builder, op->getLoc(), *type,
                                          grid.getValue(), reduced, result);
    mapping.map(global, result);
    shardings[global] = *resultSharding;
  }
  return success();
}

LogicalResult FunctionPartitioner::partitionReshape(Operation *op) {
  Value src = op->getOperand(0);
  shard::Sharding s = shardingOf(src);
  if (isReplicated(s))
    return partitionOther(op);
  auto dstType = cast<RankedTensorType>(op->getResult(0).getType());
  auto expand = dyn_cast<tensor::ExpandShapeOp>(op);
  auto collapse = dyn_cast<tensor::CollapseShapeOp>(op);
  SmallVector<ReassociationIndices> groups =
      expand ? expand.getReassociationIndices()
             : collapse.getReassociationIndices();
  // The split of a collapsed dim is the split of its group's outermost dim.
  SmallVector<shard::GridAxesAttr> axes;
  auto none = DenseI16ArrayAttr::get(op->getContext(), {});
  for (auto [g, group] : llvm::enumerate(groups)) {
    if (collapse) {
      for (size_t k = 1; k < group.size(); ++k)
        if (!axesOf(s, group[k]).empty())
          return op->emitOpError()
                 << "collapses dimension " << group[k]
                 << ", which is split, into an outer one; moe-partition "
                    "collapses only groups split on their outermost dimension";
      axes.push_back(
          DenseI16ArrayAttr::get(op->getContext(), axesOf(s, group[0])));
    } else {
      axes.push_back(DenseI16ArrayAttr::get(op->getContext(), axesOf(s, g)));
      for (size_t k = 1; k < group.size(); ++k)
        axes.push_back(none);
    }
  }
  shard::Sharding result = makeSharding(s.getGridAttr(), axes);
  FailureOr<Type> type = localType(op, dstType, result);
  if (failed(type))
    return failure();
  Value input = local(src);
  Value v;
  if (expand)
    v = tensor::ExpandShapeOp::create(builder, op->getLoc(), *type, input,
                                      groups);
  else
    v = tensor::CollapseShapeOp::create(builder, op->getLoc(), *type, input,
                                        groups);
  mapping.map(op->getResult(0), v);
  shardings[op->getResult(0)] = result;
  return success();
}

LogicalResult FunctionPartitioner::partitionSlice(Operation *op) {
  auto extract = dyn_cast<tensor::ExtractSliceOp>(op);
  auto insert = dyn_cast<tensor::InsertSliceOp>(op);
  // The large tensor (extract's source, insert's destination) and the slice.
  Value large = extract ? extract.getSource() : insert.getDest();
  Value slice = extract ? extract.getResult() : insert.getSource();
  auto largeType = cast<RankedTensorType>(large.getType());
  auto sliceType = cast<RankedTensorType>(slice.getType());
  auto sliceOp = cast<OffsetSizeAndStrideOpInterface>(op);
  if (!sliceOp.hasUnitStride() || !largeType.hasStaticShape() ||
      !sliceType.hasStaticShape() ||
      llvm::any_of(sliceOp.getMixedOffsets(),
                   [](OpFoldResult r) { return !getConstantIntValue(r); }) ||
      llvm::any_of(sliceOp.getMixedSizes(),
                   [](OpFoldResult r) { return !getConstantIntValue(r); }))
    return op->emitOpError() << "has dynamic offsets, sizes or strides, or "
                                "non-unit strides; moe-partition partitions "
                                "static unit-stride slices";
  SmallVector<int64_t> offsets, sizes;
  for (OpFoldResult r : sliceOp.getMixedOffsets())
    offsets.push_back(*getConstantIntValue(r));
  for (OpFoldResult r : sliceOp.getMixedSizes())
    sizes.push_back(*getConstantIntValue(r));
  // The slice's dimensions in the large tensor (rank-reducing slices drop
  // unit dimensions).
  llvm::SmallBitVector dropped =
      extract ? extract.getDroppedDims() : insert.getDroppedDims();
  SmallVector<int64_t> sliceDimOf(largeType.getRank(), -1);
  for (int64_t d = 0, k = 0; d < largeType.getRank(); ++d)
    if (!dropped.test(d))
      sliceDimOf[d] = k++;
  // The split of every large dimension: from the large tensor for an
  // extract, from the slice for an insert (a replicated destination, such as
  // a tensor.empty, takes the slice's splits).
  shard::Sharding from = shardingOf(extract ? large : slice);
  if (isReplicated(from) && (extract || isReplicated(shardingOf(large))))
    return partitionOther(op);
  FlatSymbolRefAttr grid = !isReplicated(from)
                               ? from.getGridAttr()
                               : shardingOf(large).getGridAttr();
  SmallVector<shard::GridAxesAttr> largeAxes, sliceAxes;
  for (int64_t d = 0; d < largeType.getRank(); ++d) {
    ArrayRef<int16_t> axes =
        extract ? axesOf(from, d)
                : (sliceDimOf[d] >= 0 ? axesOf(from, sliceDimOf[d])
                                      : ArrayRef<int16_t>());
    if (!axes.empty() &&
        (offsets[d] != 0 || sizes[d] != largeType.getDimSize(d) ||
         sliceDimOf[d] < 0))
      return op->emitOpError()
             << "takes part of dimension " << d << " of " << largeType
             << ", which is split (" << describeSharding(from)
             << "); moe-partition slices split dimensions only whole";
    largeAxes.push_back(DenseI16ArrayAttr::get(op->getContext(), axes));
    if (sliceDimOf[d] >= 0)
      sliceAxes.push_back(largeAxes.back());
  }
  shard::Sharding largeSharding = makeSharding(grid, largeAxes);
  shard::Sharding sliceSharding = makeSharding(grid, sliceAxes);
  FailureOr<Type> localLarge = localType(op, largeType, largeSharding);
  if (failed(localLarge))
    return failure();
  auto localLargeType = cast<RankedTensorType>(*localLarge);
  // Split dimensions are taken whole: their local size is the local extent.
  SmallVector<OpFoldResult> localOffsets, localSizes, strides;
  for (int64_t d = 0; d < largeType.getRank(); ++d) {
    localOffsets.push_back(builder.getIndexAttr(offsets[d]));
    bool split = !axesOf(largeSharding, d).empty();
    localSizes.push_back(
        builder.getIndexAttr(split ? localLargeType.getDimSize(d) : sizes[d]));
    strides.push_back(builder.getIndexAttr(1));
  }
  Location loc = op->getLoc();
  if (extract) {
    FailureOr<Type> localSlice = localType(op, sliceType, sliceSharding);
    if (failed(localSlice))
      return failure();
    Value v = tensor::ExtractSliceOp::create(
        builder, loc, cast<RankedTensorType>(*localSlice), local(large),
        localOffsets, localSizes, strides);
    mapping.map(extract.getResult(), v);
    shardings[extract.getResult()] = sliceSharding;
    return success();
  }
  // An insert: the destination re-sharded (a tensor.empty built again at the
  // local size), the slice inserted at the same offsets.
  FailureOr<Value> dest =
      describeSharding(shardingOf(large)) == describeSharding(largeSharding)
          ? FailureOr<Value>(local(large))
          : localInit(op, large, largeSharding);
  if (failed(dest))
    return failure();
  FailureOr<Value> source = reshard(op, local(slice), shardingOf(slice),
                                    sliceSharding, slice.getType());
  if (failed(source))
    return failure();
  Value v = tensor::InsertSliceOp::create(builder, loc, *source, *dest,
                                          localOffsets, localSizes, strides);
  mapping.map(insert.getResult(), v);
  shardings[insert.getResult()] = largeSharding;
  return success();
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
           built && built != op; built = built->getNextNode())
        built->setAttr(MoEDialect::getDecoderLayerAttrName(), decoderLayer);
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
