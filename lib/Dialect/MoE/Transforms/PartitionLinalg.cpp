//===- PartitionLinalg.cpp - moe-partition's rules for linalg and shapes --===//
//
// The rules of `moe-partition` (Partition.cpp) for linalg ops on tensors
// (their loops take the splits of the operand dimensions they index),
// tensor.expand_shape / collapse_shape and tensor.extract_slice /
// insert_slice.
//
//===----------------------------------------------------------------------===//

#include "PartitionInternal.h"

#include "moe/Utils/AffineUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::partition;

shard::Sharding
mlir::moe::partition::makeSharding(FlatSymbolRefAttr grid,
                                   SmallVector<shard::GridAxesAttr> axes) {
  while (axes.size() > 1 && axes.back().empty())
    axes.pop_back();
  if (axes.empty())
    axes.push_back(DenseI16ArrayAttr::get(grid.getContext(), {}));
  return shard::Sharding::get(grid, axes);
}

namespace {

/// The loop a map result indexes: `d` or `d floordiv c` (c > 0), with c
/// (1 for a plain dim); failure for anything else.
FailureOr<std::pair<unsigned, int64_t>> matchLoop(AffineExpr e) {
  if (std::optional<std::pair<unsigned, int64_t>> loop = matchDimOrFloorDiv(e))
    return *loop;
  return failure();
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
