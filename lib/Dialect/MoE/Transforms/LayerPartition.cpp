//===- LayerPartition.cpp - one rank's part of an MoE layer ---------------===//
//
// The strategies (docs/Parallelism.md):
// - dropless, ep = 1: the layer on this rank's tokens and experts;
// - dropless, ep > 1: dispatch, all_to_all to the experts' ranks, experts,
//   all_to_all back, combine (the baseline a2a strategy);
// - capacity: which tokens drop depends on the whole batch, so the tokens of
//   the dp group are gathered and every rank makes the single-rank decision;
//   with ep > 1 each rank computes its experts' part of the buffer and the
//   expert outputs are all-gathered over ep;
// - etp > 1: every expert's width is sliced, the block's output is a partial
//   sum, completed by an all_reduce over the etp group.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/LayerExpansion.h"

#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::moe;

SmallVector<int64_t> mlir::moe::getDenseGridShape(PlanAttr plan) {
  return getDenseGridShape(plan.getPlanDegrees());
}

SmallVector<int64_t> mlir::moe::getExpertGridShape(PlanAttr plan) {
  return getExpertGridShape(plan.getPlanDegrees());
}

void mlir::moe::createPlanGrids(OpBuilder &b, Location loc, PlanAttr plan) {
  shard::GridOp::create(b, loc, kDenseGridName, getDenseGridShape(plan));
  shard::GridOp::create(b, loc, kExpertGridName, getExpertGridShape(plan));
}

//===----------------------------------------------------------------------===//
// Shardings
//===----------------------------------------------------------------------===//

namespace {
/// A sharding on `grid` splitting tensor dim i over the axes dims[i], where an
/// axis of size 1 (degree 1 in the plan) is left out.
struct SplitBuilder {
  MLIRContext *ctx;
  PlanAttr plan;

  int64_t degree(StringRef grid, int16_t axis) const {
    if (grid == kDenseGridName)
      return axis == kDpAxis ? plan.getDp() : plan.getTp();
    return axis == kEpAxis ? plan.getEp() : plan.getEtp();
  }
  shard::Sharding operator()(StringRef grid,
                             ArrayRef<std::optional<int16_t>> dims) const {
    SmallVector<shard::GridAxesAttr> axes;
    for (std::optional<int16_t> axis : dims) {
      SmallVector<int16_t> these;
      if (axis && degree(grid, *axis) > 1)
        these.push_back(*axis);
      axes.push_back(DenseI16ArrayAttr::get(ctx, these));
    }
    while (axes.size() > 1 && axes.back().empty())
      axes.pop_back();
    if (axes.empty())
      axes.push_back(DenseI16ArrayAttr::get(ctx, {}));
    return shard::Sharding::get(FlatSymbolRefAttr::get(ctx, grid), axes);
  }
};
} // namespace

LayerShardings mlir::moe::getLayerShardings(LayerOp layer, PlanAttr plan) {
  SplitBuilder split{layer.getContext(), plan};
  constexpr std::nullopt_t none = std::nullopt;
  shard::Sharding replicated = split(kDenseGridName, {});
  shard::Sharding tokens = split(kDenseGridName, {kDpAxis});
  // [E, F, H] by experts and rows; [E, H, F] by experts and columns.
  shard::Sharding byRows = split(kExpertGridName, {kEpAxis, kEtpAxis});
  shard::Sharding byCols = split(kExpertGridName, {kEpAxis, none, kEtpAxis});
  shard::Sharding sharedRows = split(kExpertGridName, {kEtpAxis});
  shard::Sharding sharedCols = split(kExpertGridName, {none, kEtpAxis});

  LayerShardings s;
  auto add = [&](Value operand, const shard::Sharding &sharding) {
    if (operand)
      s.operands.push_back(sharding);
  };
  add(layer.getTokens(), tokens);
  add(layer.getRouterWeight(), replicated);
  add(layer.getRouterBias(), replicated);
  add(layer.getExpertUp(), byRows);
  add(layer.getExpertDown(), byCols);
  add(layer.getExpertGate(), byRows);
  add(layer.getSharedUpProj(), sharedRows);
  add(layer.getSharedDownProj(), sharedCols);
  add(layer.getSharedGateProj(), sharedRows);
  add(layer.getSharedGate(), replicated);
  s.result = tokens;
  return s;
}

DictionaryAttr mlir::moe::getShardingAttr(const shard::Sharding &sharding) {
  MLIRContext *ctx = sharding.getGridAttr().getContext();
  SmallVector<Attribute> axes;
  for (shard::GridAxesAttr a : sharding.getSplitAxes())
    axes.push_back(a);
  Builder b(ctx);
  return b.getDictionaryAttr(
      {b.getNamedAttr("grid", sharding.getGridAttr()),
       b.getNamedAttr("split_axes", b.getArrayAttr(axes))});
}

FailureOr<ArgSharding> mlir::moe::readShardingAttr(Attribute attr) {
  auto dict = dyn_cast_or_null<DictionaryAttr>(attr);
  if (!dict)
    return failure();
  auto grid = dict.getAs<FlatSymbolRefAttr>("grid");
  auto axes = dict.getAs<ArrayAttr>("split_axes");
  if (!grid || !axes)
    return failure();
  ArgSharding s;
  s.grid = grid.getValue();
  for (Attribute a : axes) {
    auto dim = dyn_cast<DenseI16ArrayAttr>(a);
    if (!dim)
      return failure();
    s.splitAxes.emplace_back(dim.asArrayRef().begin(), dim.asArrayRef().end());
  }
  return s;
}

std::string mlir::moe::describeSharding(const shard::Sharding &sharding) {
  if (!sharding ||
      llvm::all_of(sharding.getSplitAxes(),
                   [](shard::GridAxesAttr a) { return a.empty(); }))
    return "replicated";
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "@" << sharding.getGrid() << " [";
  llvm::interleaveComma(sharding.getSplitAxes(), os,
                        [&](shard::GridAxesAttr axes) {
                          os << "[";
                          llvm::interleaveComma(axes.asArrayRef(), os);
                          os << "]";
                        });
  os << "]";
  return text;
}

LayerSpec mlir::moe::getLayerSpec(LayerOp layer, PlanAttr plan) {
  LayerSpec spec;
  spec.numExperts = layer.getNumExperts();
  spec.topK = layer.getK();
  spec.score = layer.getScoreAttr();
  spec.renormalize = layer.getRenormalize();
  spec.activation = layer.getActivationAttr();
  spec.capacity = layer.getCapacityAttr();
  if (auto index = layer->getAttrOfType<IntegerAttr>(
          MoEDialect::getLayerIndexAttrName()))
    spec.layerIndex = index.getInt();
  if (plan.getDp() > 1)
    spec.tokensSplit.push_back(kDpAxis);
  return spec;
}

//===----------------------------------------------------------------------===//
// The per-rank computation
//===----------------------------------------------------------------------===//

namespace {
class RankBuilder {
public:
  RankBuilder(OpBuilder &b, Location loc, const LayerSpec &spec,
              const LocalLayerOperands &w, PlanAttr plan)
      : b(b), loc(loc), spec(spec), w(w), dp(plan.getDp()), ep(plan.getEp()),
        etp(plan.getEtp()) {
    auto type = cast<RankedTensorType>(w.tokens.getType());
    tokens = type.getDimSize(0);
    hidden = type.getDimSize(1);
  }

  Value build();

private:
  RankedTensorType f32Tensor(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  }
  /// The layer on `x` with this rank's weights (ep = 1: all experts).
  Value layer(Value x, IntegerAttr capacity);
  /// routed + this rank's part of the shared expert.
  Value addShared(Value x, Value routed);
  /// Dropless, ep > 1.
  Value allToAllBlock(Value x);
  /// Capacity, ep > 1, on the gathered tokens xg.
  Value expertSlicedBlock(Value xg);
  Value allGather(Value x, StringRef grid, int16_t axis, int64_t n);
  Value gridIndex(StringRef grid, int16_t axis);
  RouterOp route(Value x);
  /// Records the layer's index on a dispatch that stands for it (a layer
  /// kept as a moe.layer needs none).
  void stamp(Operation *op);

  OpBuilder &b;
  Location loc;
  const LayerSpec &spec;
  const LocalLayerOperands &w;
  int64_t dp, ep, etp;
  int64_t tokens, hidden;
};

RouterOp RankBuilder::route(Value x) {
  int64_t t = cast<RankedTensorType>(x.getType()).getDimSize(0), k = spec.topK;
  return RouterOp::create(
      b, loc, f32Tensor({t, k}), RankedTensorType::get({t, k}, b.getI32Type()),
      x, w.router, w.routerBias, b.getI64IntegerAttr(k), spec.score,
      spec.renormalize ? b.getUnitAttr() : UnitAttr());
}

void RankBuilder::stamp(Operation *op) {
  op->setAttr(MoEDialect::getLayerIndexAttrName(),
              b.getI64IntegerAttr(spec.layerIndex));
}

Value RankBuilder::layer(Value x, IntegerAttr capacity) {
  return LayerOp::create(b, loc, x.getType(), x, w.router, w.routerBias, w.up,
                         w.down, w.gate, w.sharedUp, w.sharedDown,
                         w.sharedGateProj, w.sharedGate,
                         b.getI64IntegerAttr(spec.topK), spec.score,
                         spec.renormalize ? b.getUnitAttr() : UnitAttr(),
                         spec.activation, capacity);
}

Value RankBuilder::addShared(Value x, Value routed) {
  if (!w.sharedUp)
    return routed;
  return buildSharedExpertsSum(b, loc, x, routed, w.sharedUp, w.sharedDown,
                               w.sharedGateProj, w.sharedGate, spec.activation);
}

Value RankBuilder::allGather(Value x, StringRef grid, int16_t axis, int64_t n) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[0] *= n;
  return shard::AllGatherOp::create(b, loc, f32Tensor(shape), grid,
                                    ArrayRef<int16_t>{axis}, x, APInt(64, 0));
}

Value RankBuilder::gridIndex(StringRef grid, int16_t axis) {
  return shard::ProcessMultiIndexOp::create(b, loc, TypeRange{b.getIndexType()},
                                            grid, ArrayRef<int16_t>{axis})
      .getResult()[0];
}

Value RankBuilder::allToAllBlock(Value x) {
  int64_t e = spec.numExperts, k = spec.topK;
  Type i32 = b.getI32Type();
  RouterOp router = route(x);
  auto dispatch = DispatchOp::create(b, loc, f32Tensor({e, tokens, hidden}),
                                     RankedTensorType::get({tokens, k}, i32),
                                     RankedTensorType::get({e}, i32), x,
                                     router.getIds(), b.getUnitAttr());
  stamp(dispatch);
  dispatch->setAttr(MoEDialect::getTokensSplitAttrName(),
                    b.getDenseI16ArrayAttr(spec.tokensSplit));
  // [E, T, H] -> every rank gets its E/ep experts' rows from all ep ranks.
  RankedTensorType local = f32Tensor({e / ep, ep * tokens, hidden});
  Value sent = shard::AllToAllOp::create(
      b, loc, local, kExpertGridName, ArrayRef<int16_t>{kEpAxis},
      dispatch.getBuffer(), APInt(64, 0), APInt(64, 1));
  // Each rank then computes only the filled rows of every segment.
  Value counts = buildExchangedCounts(b, loc, dispatch.getCounts(), ep);
  Value computed = ExpertsOp::create(b, loc, local, sent, counts, w.gate, w.up,
                                     w.down, spec.activation);
  Value back = shard::AllToAllOp::create(
      b, loc, dispatch.getBuffer().getType(), kExpertGridName,
      ArrayRef<int16_t>{kEpAxis}, computed, APInt(64, 1), APInt(64, 0));
  return CombineOp::create(b, loc, x.getType(), back, dispatch.getSlots(),
                           router.getIds(), router.getWeights());
}

Value RankBuilder::expertSlicedBlock(Value xg) {
  int64_t e = spec.numExperts, k = spec.topK, c = spec.capacity.getInt();
  int64_t t = cast<RankedTensorType>(xg.getType()).getDimSize(0);
  Type i32 = b.getI32Type();
  RouterOp router = route(xg);
  auto dispatch = DispatchOp::create(
      b, loc, f32Tensor({e, c, hidden}), RankedTensorType::get({t, k}, i32),
      RankedTensorType::get({e}, i32), xg, router.getIds(), UnitAttr());
  stamp(dispatch);
  Value first =
      arith::MulIOp::create(b, loc, gridIndex(kExpertGridName, kEpAxis),
                            arith::ConstantIndexOp::create(b, loc, e / ep));
  RankedTensorType local = f32Tensor({e / ep, c, hidden});
  Value mine = tensor::ExtractSliceOp::create(
      b, loc, local, dispatch.getBuffer(),
      ArrayRef<OpFoldResult>{first, b.getIndexAttr(0), b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(e / ep), b.getIndexAttr(c),
                             b.getIndexAttr(hidden)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                             b.getIndexAttr(1)});
  Value computed = ExpertsOp::create(b, loc, local, mine, /*counts=*/Value(),
                                     w.gate, w.up, w.down, spec.activation);
  Value all = allGather(computed, kExpertGridName, kEpAxis, ep);
  return CombineOp::create(b, loc, xg.getType(), all, dispatch.getSlots(),
                           router.getIds(), router.getWeights());
}

Value RankBuilder::build() {
  Value x = w.tokens, y;
  if (!spec.capacity) {
    // Dropless: each rank routes its own tokens; nothing depends on others.
    y = ep == 1 ? layer(x, {}) : addShared(x, allToAllBlock(x));
  } else {
    // Capacity: the whole batch decides which tokens drop, so every rank
    // makes the single-rank decision on the tokens of its dp group.
    Value xg = dp > 1 ? allGather(x, kDenseGridName, kDpAxis, dp) : x;
    Value yg = ep == 1 ? layer(xg, spec.capacity)
                       : addShared(xg, expertSlicedBlock(xg));
    if (dp == 1) {
      y = yg;
    } else {
      Value offset =
          arith::MulIOp::create(b, loc, gridIndex(kDenseGridName, kDpAxis),
                                arith::ConstantIndexOp::create(b, loc, tokens));
      y = tensor::ExtractSliceOp::create(
          b, loc, f32Tensor({tokens, hidden}), yg,
          ArrayRef<OpFoldResult>{offset, b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(tokens),
                                 b.getIndexAttr(hidden)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    }
  }
  // With experts sliced over etp, every rank holds a partial sum.
  if (etp > 1)
    y = shard::AllReduceOp::create(b, loc, y.getType(), kExpertGridName,
                                   ArrayRef<int16_t>{kEtpAxis}, y);
  return y;
}
} // namespace

Value mlir::moe::buildExchangedCounts(OpBuilder &b, Location loc, Value counts,
                                      int64_t ep) {
  auto type = cast<RankedTensorType>(counts.getType());
  int64_t e = type.getDimSize(0);
  Type f32 = b.getF32Type(), intType = type.getElementType();
  Value asFloat = buildMap(
      b, loc, ValueRange{counts},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        return arith::SIToFPOp::create(nb, l, f32, a[0]).getResult();
      },
      f32);
  Value cube = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({e, 1, 1}, f32), asFloat,
      ArrayRef<ReassociationIndices>{{0, 1, 2}});
  Value received = shard::AllToAllOp::create(
      b, loc, RankedTensorType::get({e / ep, ep, 1}, f32), kExpertGridName,
      ArrayRef<int16_t>{kEpAxis}, cube, APInt(64, 0), APInt(64, 1));
  Value table = tensor::CollapseShapeOp::create(
      b, loc, received, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
  return buildMap(
      b, loc, ValueRange{table},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        return arith::FPToSIOp::create(nb, l, intType, a[0]).getResult();
      },
      intType);
}

Value mlir::moe::buildLayerOnRank(OpBuilder &b, Location loc,
                                  const LayerSpec &spec,
                                  const LocalLayerOperands &local,
                                  PlanAttr plan) {
  return RankBuilder(b, loc, spec, local, plan).build();
}
