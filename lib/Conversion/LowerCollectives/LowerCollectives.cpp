//===- LowerCollectives.cpp - shard collectives to runtime MPI calls ------===//
//
// Implements `moe-lower-collectives` for the grids of partitioned models.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/DLTI/DLTI.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOELOWERCOLLECTIVESPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The runtime's group numbers (runtime/include/moert/comm.h), which are
/// PlanFacts.h's group kinds.
constexpr int32_t kDpGroup = static_cast<int32_t>(GroupKind::Dp);
constexpr int32_t kTpGroup = static_cast<int32_t>(GroupKind::Tp);
constexpr int32_t kEpGroup = static_cast<int32_t>(GroupKind::Ep);
constexpr int32_t kEtpGroup = static_cast<int32_t>(GroupKind::Etp);
constexpr int32_t kPpGroup = static_cast<int32_t>(GroupKind::Pp);

class Lowering {
public:
  explicit Lowering(ModuleOp module) : module(module) {}

  LogicalResult run();

private:
  FailureOr<int32_t> groupOf(Operation *op, StringRef grid,
                             ArrayRef<int16_t> axes);
  func::FuncOp callee(StringRef name, FunctionType type);
  /// Runs `name(in, out, group)` on `input` flattened; returns the result
  /// reshaped to `resultShape`. When `post` is another place than `b`
  /// (the moe.async_wait of a started collective), the call at `b` is the
  /// runtime's non-blocking `moert_start_...` and the result is built at
  /// `post` after `moert_wait_f32`.
  Value collective(OpBuilder &b, OpBuilder &post, Location loc, StringRef name,
                   Value input, ArrayRef<int64_t> resultShape, int32_t group);
  /// Where the result of collective `op` is built: at its moe.async_wait
  /// when it was started asynchronously, else at `op`.
  OpBuilder resultBuilder(Operation *op);
  /// Replaces `op`'s result (or that of its moe.async_wait) by `result` and
  /// erases `op` (and its moe.async_start and moe.async_wait).
  void replace(Operation *op, Value result);
  /// Takes each moe.async_start's collective out of its body, in front of
  /// it, remembering its wait.
  void unwrapAsyncStarts();
  /// Replaces the one-result collective `op` on `input` by runtime function
  /// `name` over `group`.
  LogicalResult replaceByCall(Operation *op, StringRef name, Value input,
                              int32_t group);
  LogicalResult lowerAllGather(shard::AllGatherOp op);
  LogicalResult lowerAllReduce(shard::AllReduceOp op);
  LogicalResult lowerAllToAll(shard::AllToAllOp op);
  LogicalResult lowerIndex(shard::ProcessMultiIndexOp op);
  LogicalResult lowerReduceScatter(shard::ReduceScatterOp op);
  LogicalResult lowerAllSlice(shard::AllSliceOp op);
  /// shard.send / shard.recv to one peer of a one-axis group.
  LogicalResult lowerPointToPoint(Operation *op, StringRef name, Value data,
                                  ArrayRef<int64_t> staticPeer,
                                  ValueRange dynamicPeer);
  /// This process's rank in `group`, as an index.
  Value groupRank(OpBuilder &b, Location loc, int32_t group);
  /// A world rank fixed by the module's `dlti.map` ("MPI:comm_world_rank",
  /// as upstream's shard-to-MPI tests do): group ranks become constants,
  /// computed with the plan's layout (docs/Parallelism.md).
  LogicalResult readFixedRank();

  ModuleOp module;
  /// The moe.async_wait of each collective taken out of a moe.async_start.
  llvm::DenseMap<Operation *, AsyncWaitOp> waits;
  std::optional<int64_t> fixedRank;
  PlanAttr plan;
};

LogicalResult Lowering::readFixedRank() {
  FailureOr<Attribute> rank = dlti::query(
      module, ArrayRef<StringRef>{"MPI:comm_world_rank"}, /*emitError=*/false);
  if (failed(rank))
    return success();
  auto value = dyn_cast<IntegerAttr>(*rank);
  plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
  if (!value || value.getInt() < 0)
    return module.emitError() << "\"MPI:comm_world_rank\" must be a "
                                 "non-negative integer, got "
                              << *rank;
  if (!plan)
    return module.emitError()
           << "a fixed \"MPI:comm_world_rank\" needs the module's #moe.plan "
              "to place the rank in its groups";
  if (value.getInt() >= plan.getWorldSize())
    return module.emitError()
           << "\"MPI:comm_world_rank\" = " << value.getInt()
           << " is outside the " << plan.getWorldSize() << " ranks of " << plan;
  fixedRank = value.getInt();
  return success();
}

FailureOr<int32_t> Lowering::groupOf(Operation *op, StringRef grid,
                                     ArrayRef<int16_t> axes) {
  if (axes.size() == 1) {
    if (grid == kDenseGridName && axes[0] == 0)
      return kPpGroup;
    if (grid == kDenseGridName && axes[0] == 1)
      return kDpGroup;
    if (grid == kDenseGridName && axes[0] == 2)
      return kTpGroup;
    if (grid == kExpertGridName && axes[0] == 2)
      return kEpGroup;
    if (grid == kExpertGridName && axes[0] == 3)
      return kEtpGroup;
  }
  return op->emitOpError() << "has no runtime group: expected @"
                           << kDenseGridName
                           << " axis 0 (pp), 1 (dp) or 2 (tp), or @"
                           << kExpertGridName << " axis 2 (ep) or 3 (etp)";
}

func::FuncOp Lowering::callee(StringRef name, FunctionType type) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  auto func = func::FuncOp::create(b, module.getLoc(), name, type);
  func.setPrivate();
  if (llvm::any_of(type.getInputs(), llvm::IsaPred<MemRefType>))
    func->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  return func;
}

void Lowering::unwrapAsyncStarts() {
  module.walk([&](AsyncStartOp start) {
    Operation *op = start.getCollective();
    op->moveBefore(start);
    op->setOperand(0, start.getInput());
    waits[op] = start.getWait();
  });
}

OpBuilder Lowering::resultBuilder(Operation *op) {
  auto it = waits.find(op);
  return OpBuilder(it == waits.end() ? op : it->second.getOperation());
}

void Lowering::replace(Operation *op, Value result) {
  auto it = waits.find(op);
  if (it == waits.end()) {
    op->getResult(0).replaceAllUsesWith(result);
    op->erase();
    return;
  }
  AsyncWaitOp wait = it->second;
  AsyncStartOp start = wait.getStart();
  wait.getResult().replaceAllUsesWith(result);
  wait.erase();
  start.erase(); // and its moe.yield, the last use of `op`
  waits.erase(it);
  op->erase();
}

Value Lowering::collective(OpBuilder &b, OpBuilder &post, Location loc,
                           StringRef name, Value input,
                           ArrayRef<int64_t> resultShape, int32_t group) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(input.getType());
  Type f32 = b.getF32Type();
  int64_t inSize = type.getNumElements(), outSize = 1;
  for (int64_t d : resultShape)
    outSize *= d;
  ReassociationIndices all;
  for (int64_t i = 0; i < type.getRank(); ++i)
    all.push_back(i);
  Value flat = type.getRank() == 1
                   ? input
                   : tensor::CollapseShapeOp::create(
                         b, loc, input, ArrayRef<ReassociationIndices>{all});
  int64_t dyn = ShapedType::kDynamic;
  auto anyVector =
      MemRefType::get({dyn}, f32, StridedLayoutAttr::get(ctx, dyn, {dyn}));
  Value in = bufferization::ToBufferOp::create(
      b, loc, MemRefType::get({inSize}, f32), flat, /*read_only=*/true);
  Value out = memref::AllocOp::create(b, loc, MemRefType::get({outSize}, f32));
  Value outVector = memref::CastOp::create(b, loc, anyVector, out);
  bool async = b.getInsertionPoint() != post.getInsertionPoint();
  Type i64 = b.getI64Type();
  func::FuncOp fn =
      callee(async ? ("moert_start_" + name.drop_front(6)).str() : name,
             FunctionType::get(ctx, {anyVector, anyVector, b.getI32Type()},
                               async ? TypeRange{i64} : TypeRange{}));
  auto call = func::CallOp::create(
      b, loc, fn,
      ValueRange{memref::CastOp::create(b, loc, anyVector, in), outVector,
                 arith::ConstantIntOp::create(b, loc, group, 32)});
  if (async) {
    // The wait reads the input again: that keeps its buffer alive and
    // unchanged (no in-place write, no deallocation) while it is in flight.
    Value inAgain = bufferization::ToBufferOp::create(
        post, loc, MemRefType::get({inSize}, f32), flat, /*read_only=*/true);
    func::FuncOp wait = callee(
        "moert_wait_f32",
        FunctionType::get(ctx, {i64, anyVector, anyVector}, TypeRange{}));
    func::CallOp::create(
        post, loc, wait,
        ValueRange{call.getResult(0),
                   memref::CastOp::create(post, loc, anyVector, inAgain),
                   outVector});
  }
  Value result = bufferization::ToTensorOp::create(
      post, loc, RankedTensorType::get({outSize}, f32), out, /*restrict=*/true,
      /*writable=*/true);
  if (resultShape.size() == 1)
    return result;
  ReassociationIndices allOut;
  for (size_t i = 0; i < resultShape.size(); ++i)
    allOut.push_back(i);
  return tensor::ExpandShapeOp::create(
      post, loc, RankedTensorType::get(resultShape, f32), result,
      ArrayRef<ReassociationIndices>{allOut});
}

bool isF32Tensor(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.hasStaticShape() && tensor.getElementType().isF32();
}

LogicalResult Lowering::replaceByCall(Operation *op, StringRef name,
                                      Value input, int32_t group) {
  OpBuilder b(op), post = resultBuilder(op);
  auto resultType = cast<RankedTensorType>(op->getResult(0).getType());
  replace(op, collective(b, post, op->getLoc(), name, input,
                         resultType.getShape(), group));
  return success();
}

LogicalResult Lowering::lowerAllGather(shard::AllGatherOp op) {
  FailureOr<int32_t> group = groupOf(op, op.getGrid(), op.getGridAxes());
  if (failed(group))
    return failure();
  if (op.getGatherAxis() != 0 || !isF32Tensor(op.getInput().getType()))
    return op.emitOpError() << "is lowered for f32 tensors gathered along "
                            << "axis 0 only";
  return replaceByCall(op, "moert_all_gather_f32", op.getInput(), *group);
}

LogicalResult Lowering::lowerAllReduce(shard::AllReduceOp op) {
  FailureOr<int32_t> group = groupOf(op, op.getGrid(), op.getGridAxes());
  if (failed(group))
    return failure();
  if (op.getReduction() != shard::ReductionKind::Sum ||
      !isF32Tensor(op.getInput().getType()) ||
      op.getInput().getType() != op.getResult().getType())
    return op.emitOpError() << "is lowered for sums of f32 tensors only";
  return replaceByCall(op, "moert_all_reduce_f32", op.getInput(), *group);
}

/// x permuted by `perm` (result dim i = x dim perm[i]).
Value transpose(OpBuilder &b, Location loc, Value x, ArrayRef<int64_t> perm) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(type.getDimSize(p));
  Value init = tensor::EmptyOp::create(b, loc, shape, type.getElementType());
  return linalg::TransposeOp::create(b, loc, x, init, perm).getResult()[0];
}

LogicalResult Lowering::lowerAllToAll(shard::AllToAllOp op) {
  FailureOr<int32_t> group = groupOf(op, op.getGrid(), op.getGridAxes());
  if (failed(group))
    return failure();
  auto inType = cast<RankedTensorType>(op.getInput().getType());
  auto outType = cast<RankedTensorType>(op.getResult().getType());
  int64_t split = op.getSplitAxis().getSExtValue();
  int64_t concat = op.getConcatAxis().getSExtValue();
  if (!isF32Tensor(inType) || inType.getRank() != 3 ||
      !((split == 0 && concat == 1) || (split == 1 && concat == 0)))
    return op.emitOpError() << "is lowered for rank-3 f32 tensors with "
                            << "(split, concat) axes (0, 1) or (1, 0) only";
  OpBuilder b(op), post = resultBuilder(op);
  Location loc = op.getLoc();
  Type f32 = b.getF32Type();
  // n = group size: the input's split dimension over the output's.
  int64_t n = inType.getDimSize(split) / outType.getDimSize(split);
  Value result;
  if (split == 0) {
    // in [n*a, c, h]: chunk r = experts [r*a, (r+1)*a) is contiguous. We
    // receive [n(src), a, c, h] and want [a, n*c, h] = transpose(1, 0, 2, 3).
    int64_t a = outType.getDimSize(0), c = inType.getDimSize(1),
            h = inType.getDimSize(2);
    Value received = collective(b, post, loc, "moert_all_to_all_f32",
                                op.getInput(), {n, a, c, h}, *group);
    Value moved = transpose(post, loc, received, {1, 0, 2, 3});
    result = tensor::CollapseShapeOp::create(
        post, loc, RankedTensorType::get({a, n * c, h}, f32), moved,
        ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}});
  } else {
    // in [a, n*c, h]: chunk r = rows [r*c, (r+1)*c) of every expert; make it
    // contiguous as [n, a, c, h], exchange, and the received [n(src), a, c, h]
    // is [n*a, c, h] in source order.
    int64_t a = inType.getDimSize(0), c = outType.getDimSize(1),
            h = inType.getDimSize(2);
    Value split4 = tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({a, n, c, h}, f32), op.getInput(),
        ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}});
    Value chunks = transpose(b, loc, split4, {1, 0, 2, 3});
    result = collective(b, post, loc, "moert_all_to_all_f32", chunks,
                        outType.getShape(), *group);
  }
  replace(op, result);
  return success();
}

Value Lowering::groupRank(OpBuilder &b, Location loc, int32_t group) {
  if (fixedRank) {
    // The runtime's group ranks come from the same layout (PlanFacts.h).
    int64_t index = getGroupRank(plan.getPlanDegrees(), *fixedRank,
                                 static_cast<GroupKind>(group));
    return arith::ConstantIndexOp::create(b, loc, index);
  }
  func::FuncOp fn = callee(
      "moert_group_rank",
      FunctionType::get(b.getContext(), {b.getI32Type()}, {b.getI64Type()}));
  Value rank = func::CallOp::create(
                   b, loc, fn,
                   ValueRange{arith::ConstantIntOp::create(b, loc, group, 32)})
                   .getResult(0);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), rank);
}

LogicalResult Lowering::lowerIndex(shard::ProcessMultiIndexOp op) {
  FailureOr<int32_t> group = groupOf(op, op.getGrid(), op.getAxes());
  if (failed(group))
    return failure();
  OpBuilder b(op);
  op.getResult()[0].replaceAllUsesWith(groupRank(b, op.getLoc(), *group));
  op.erase();
  return success();
}

LogicalResult Lowering::lowerReduceScatter(shard::ReduceScatterOp op) {
  FailureOr<int32_t> group = groupOf(op, op.getGrid(), op.getGridAxes());
  if (failed(group))
    return failure();
  if (op.getReduction() != shard::ReductionKind::Sum ||
      op.getScatterAxis() != 0 || !isF32Tensor(op.getInput().getType()))
    return op.emitOpError() << "is lowered for sums of f32 tensors scattered "
                            << "along axis 0 only";
  return replaceByCall(op, "moert_reduce_scatter_f32", op.getInput(), *group);
}

LogicalResult Lowering::lowerAllSlice(shard::AllSliceOp op) {
  FailureOr<int32_t> group = groupOf(op, op.getGrid(), op.getGridAxes());
  if (failed(group))
    return failure();
  auto inType = cast<RankedTensorType>(op.getInput().getType());
  auto outType = cast<RankedTensorType>(op.getResult().getType());
  int64_t axis = op.getSliceAxis().getSExtValue();
  if (!inType.hasStaticShape() || !outType.hasStaticShape())
    return op.emitOpError() << "is lowered for static shapes only";
  // No communication: every rank keeps its block of the replicated input.
  OpBuilder b(op);
  Location loc = op.getLoc();
  SmallVector<OpFoldResult> offsets(inType.getRank(), b.getIndexAttr(0));
  offsets[axis] = arith::MulIOp::create(b, loc, groupRank(b, loc, *group),
                                        arith::ConstantIndexOp::create(
                                            b, loc, outType.getDimSize(axis)))
                      .getResult();
  SmallVector<OpFoldResult> sizes, strides(inType.getRank(), b.getIndexAttr(1));
  for (int64_t d : outType.getShape())
    sizes.push_back(b.getIndexAttr(d));
  op.getResult().replaceAllUsesWith(tensor::ExtractSliceOp::create(
      b, loc, outType, op.getInput(), offsets, sizes, strides));
  op.erase();
  return success();
}

LogicalResult Lowering::lowerPointToPoint(Operation *op, StringRef name,
                                          Value data,
                                          ArrayRef<int64_t> staticPeer,
                                          ValueRange dynamicPeer) {
  auto grid = op->getAttrOfType<FlatSymbolRefAttr>("grid");
  auto axes = op->getAttrOfType<DenseI16ArrayAttr>("grid_axes");
  FailureOr<int32_t> group = groupOf(
      op, grid.getValue(), axes ? axes.asArrayRef() : ArrayRef<int16_t>{});
  if (failed(group))
    return failure();
  if (!isF32Tensor(data.getType()) || staticPeer.size() != 1)
    return op->emitOpError() << "is lowered for static f32 tensors and a "
                             << "peer given by one index";
  OpBuilder b(op);
  Location loc = op->getLoc();
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(data.getType());
  Type f32 = b.getF32Type();
  int64_t dyn = ShapedType::kDynamic;
  auto anyVector =
      MemRefType::get({dyn}, f32, StridedLayoutAttr::get(ctx, dyn, {dyn}));
  auto flatType = MemRefType::get({type.getNumElements()}, f32);
  Value peer = ShapedType::isDynamic(staticPeer[0])
                   ? dynamicPeer.front()
                   : arith::ConstantIndexOp::create(b, loc, staticPeer[0]);
  peer = arith::IndexCastOp::create(b, loc, b.getI64Type(), peer);
  func::FuncOp fn = callee(
      name,
      FunctionType::get(ctx, {anyVector, b.getI32Type(), b.getI64Type()}, {}));
  Value group32 = arith::ConstantIntOp::create(b, loc, *group, 32);
  ReassociationIndices all;
  for (int64_t i = 0; i < type.getRank(); ++i)
    all.push_back(i);
  if (isa<shard::SendOp>(op)) {
    Value flat = type.getRank() == 1
                     ? data
                     : tensor::CollapseShapeOp::create(
                           b, loc, data, ArrayRef<ReassociationIndices>{all});
    Value in = bufferization::ToBufferOp::create(b, loc, flatType, flat,
                                                 /*read_only=*/true);
    func::CallOp::create(
        b, loc, fn,
        ValueRange{memref::CastOp::create(b, loc, anyVector, in), group32,
                   peer});
    // The result of a send is its input (upstream leaves it unspecified).
    op->getResult(0).replaceAllUsesWith(data);
    op->erase();
    return success();
  }
  Value out = memref::AllocOp::create(b, loc, flatType);
  func::CallOp::create(
      b, loc, fn,
      ValueRange{memref::CastOp::create(b, loc, anyVector, out), group32,
                 peer});
  Value result = bufferization::ToTensorOp::create(
      b, loc, RankedTensorType::get({type.getNumElements()}, f32), out,
      /*restrict=*/true, /*writable=*/true);
  if (type.getRank() != 1)
    result = tensor::ExpandShapeOp::create(b, loc, type, result,
                                           ArrayRef<ReassociationIndices>{all});
  op->getResult(0).replaceAllUsesWith(result);
  op->erase();
  return success();
}

LogicalResult Lowering::run() {
  if (failed(readFixedRank()))
    return failure();
  unwrapAsyncStarts();
  SmallVector<Operation *> ops;
  module.walk([&](Operation *op) {
    if (isa<shard::AllGatherOp, shard::AllReduceOp, shard::AllToAllOp,
            shard::ReduceScatterOp, shard::AllSliceOp,
            shard::ProcessMultiIndexOp, shard::SendOp, shard::RecvOp>(op))
      ops.push_back(op);
  });
  for (Operation *op : ops) {
    LogicalResult result =
        TypeSwitch<Operation *, LogicalResult>(op)
            .Case([&](shard::AllGatherOp o) { return lowerAllGather(o); })
            .Case([&](shard::AllReduceOp o) { return lowerAllReduce(o); })
            .Case([&](shard::AllToAllOp o) { return lowerAllToAll(o); })
            .Case(
                [&](shard::ReduceScatterOp o) { return lowerReduceScatter(o); })
            .Case([&](shard::AllSliceOp o) { return lowerAllSlice(o); })
            .Case([&](shard::ProcessMultiIndexOp o) { return lowerIndex(o); })
            .Case([&](shard::SendOp o) {
              return lowerPointToPoint(o, "moert_send_f32", o.getInput(),
                                       o.getDestination(),
                                       o.getDestinationDynamic());
            })
            .Case([&](shard::RecvOp o) -> LogicalResult {
              if (!o.getSource())
                return o.emitOpError() << "needs a source to be lowered";
              return lowerPointToPoint(o, "moert_recv_f32", o.getInput(),
                                       *o.getSource(), o.getSourceDynamic());
            });
    if (failed(result))
      return failure();
  }
  for (auto grid : llvm::make_early_inc_range(module.getOps<shard::GridOp>()))
    grid.erase();
  return success();
}

struct MoELowerCollectivesPass
    : moe::impl::MoELowerCollectivesPassBase<MoELowerCollectivesPass> {
  using Base::Base;
  void runOnOperation() override {
    if (failed(Lowering(getOperation()).run()))
      signalPassFailure();
  }
};

} // namespace
