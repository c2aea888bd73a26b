//===- DedupTokens.cpp - DeepSpeed-TED duplicate-token dropping -----------===//
//
// Implements `moe-dedup-tokens`: where the tokens of an all-to-all MoE layer
// are replicated over the tensor-parallel group, each tp rank routes and
// sends only its 1/tp of them, and an all-gather over the group after the
// combine restores every row on every rank.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/AllToAllRewrites.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEDEDUPTOKENSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kPass = "moe-dedup-tokens";

/// The expert-tensor-parallel all-reduce the layer's output goes to
/// directly, if any.
shard::AllReduceOp etpSumOf(CombineOp combine) {
  Value y = combine.getResult();
  auto sum = y.hasOneUse() ? dyn_cast<shard::AllReduceOp>(*y.getUsers().begin())
                           : shard::AllReduceOp();
  return sum && sum.getGrid() == kExpertGridName &&
                 sum.getGridAxes() == ArrayRef<int16_t>{kEtpAxis}
             ? sum
             : shard::AllReduceOp();
}

/// Why the layer's tokens cannot be split over tp; empty when they can.
std::string whyNot(const AllToAllLayer &m, PlanAttr plan) {
  DispatchOp dispatch = m.dispatch;
  if (plan.getTp() == 1)
    return "tp = 1: the tokens have no tensor-parallel duplicates";
  if (llvm::is_contained(m.tokensSplit, kTpAxis))
    return "the tokens are already split over the tensor-parallel axis";
  int64_t tokens =
      cast<RankedTensorType>(dispatch.getTokens().getType()).getDimSize(0);
  if (tokens % plan.getTp() != 0)
    return llvm::formatv("tp = {0} does not divide the {1} tokens of a rank",
                         plan.getTp(), tokens);
  if (plan.getEtp() > 1 && !etpSumOf(m.combine))
    return "with etp > 1 the combined output must go straight to the "
           "expert-tensor-parallel all_reduce (a shared expert in between is "
           "not supported)";
  return "";
}

void rewrite(AllToAllLayer m, PlanAttr plan) {
  RouterOp router = m.router;
  OpBuilder b(router);
  Location loc = router.getLoc();
  Value x = m.dispatch.getTokens();
  auto xType = cast<RankedTensorType>(x.getType());
  int64_t tp = plan.getTp(), t = xType.getDimSize(0) / tp,
          h = xType.getDimSize(1);
  Type f = xType.getElementType();

  // This tp rank's 1/tp of the (replicated) tokens.
  Value index = shard::ProcessMultiIndexOp::create(
                    b, loc, TypeRange{b.getIndexType()}, kDenseGridName,
                    ArrayRef<int16_t>{kTpAxis})
                    .getResult()[0];
  Value offset = arith::MulIOp::create(
      b, loc, index, arith::ConstantIndexOp::create(b, loc, t));
  Value slice = tensor::ExtractSliceOp::create(
      b, loc, RankedTensorType::get({t, h}, f), x,
      ArrayRef<OpFoldResult>{offset, b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(t), b.getIndexAttr(h)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});

  // The same chain on the slice.
  auto retype = [&](Type type, int64_t dim, int64_t size) {
    auto tensor = cast<RankedTensorType>(type);
    SmallVector<int64_t> shape(tensor.getShape());
    shape[dim] = size;
    return RankedTensorType::get(shape, tensor.getElementType());
  };
  int64_t ep = plan.getEp();
  auto newRouter =
      RouterOp::create(b, loc, retype(router.getWeights().getType(), 0, t),
                       retype(router.getIds().getType(), 0, t), slice,
                       router.getWeight(), router.getBias(), router.getKAttr(),
                       router.getScoreAttr(), router.getRenormalizeAttr());
  auto dispatch =
      DispatchOp::create(b, loc, retype(m.dispatch.getBuffer().getType(), 1, t),
                         retype(m.dispatch.getSlots().getType(), 0, t),
                         m.dispatch.getCounts().getType(), slice,
                         newRouter.getIds(), m.dispatch.getDroplessAttr());
  // The dispatch's tokens are now split over tp as well.
  dispatch->setDiscardableAttrs(m.dispatch->getDiscardableAttrDictionary());
  SmallVector<int16_t> axes(m.tokensSplit);
  axes.push_back(kTpAxis);
  dispatch->setAttr(MoEDialect::getTokensSplitAttrName(),
                    b.getDenseI16ArrayAttr(axes));
  Type expertsType = retype(m.toExperts.getType(), 1, ep * t);
  Value sent = shard::AllToAllOp::create(
      b, loc, expertsType, m.toExperts.getGridAttr(),
      m.toExperts.getGridAxesAttr(), dispatch.getBuffer(),
      m.toExperts.getSplitAxisAttr(), m.toExperts.getConcatAxisAttr());
  ExpertsOp experts = m.experts;
  Value computed;
  int64_t etp = plan.getEtp();
  if (etp == 1) {
    // The new dispatch's counts travel with its rows, as before.
    Value counts = experts.getCounts()
                       ? buildExchangedCounts(b, loc, dispatch.getCounts(), ep)
                       : Value();
    computed = ExpertsOp::create(
        b, loc, expertsType, sent, counts, experts.getGate(), experts.getUp(),
        experts.getDown(), experts.getActivationAttr());
  } else {
    // TED with sliced experts: the members of an etp group hold the slices
    // of the same experts but received different tokens, so they gather
    // each other's rows, compute their slice on all of them, and sum the
    // slices back onto the rows' owner (reduce_scatter). Collectives work
    // along dim 0, hence the transposes around them.
    auto transposed = [&](Value v) {
      auto type = cast<RankedTensorType>(v.getType());
      SmallVector<int64_t> shape = {type.getDimSize(1), type.getDimSize(0),
                                    type.getDimSize(2)};
      Value init = tensor::EmptyOp::create(b, loc, shape, f);
      return linalg::TransposeOp::create(b, loc, v, init,
                                         ArrayRef<int64_t>{1, 0, 2})
          .getResult()[0];
    };
    Value rows = transposed(sent);
    auto rowsFirst = cast<RankedTensorType>(rows.getType());
    SmallVector<int64_t> gathered(rowsFirst.getShape());
    gathered[0] *= etp;
    Value all = shard::AllGatherOp::create(
        b, loc, RankedTensorType::get(gathered, f), kExpertGridName,
        ArrayRef<int16_t>{kEtpAxis}, rows, APInt(64, 0));
    Value input = transposed(all);
    Value partial = ExpertsOp::create(
        b, loc, input.getType(), input, Value(), experts.getGate(),
        experts.getUp(), experts.getDown(), experts.getActivationAttr());
    Value summed = shard::ReduceScatterOp::create(
        b, loc, rowsFirst, kExpertGridName, ArrayRef<int16_t>{kEtpAxis},
        transposed(partial), shard::ReductionKind::Sum, APInt(64, 0));
    computed = transposed(summed);
  }
  Value back = shard::AllToAllOp::create(
      b, loc, dispatch.getBuffer().getType(), m.back.getGridAttr(),
      m.back.getGridAxesAttr(), computed, m.back.getSplitAxisAttr(),
      m.back.getConcatAxisAttr());
  Value mine = CombineOp::create(b, loc, RankedTensorType::get({t, h}, f), back,
                                 dispatch.getSlots(), newRouter.getIds(),
                                 newRouter.getWeights());
  // The mirror on the way back: every rank gets all rows again.
  Value all = shard::AllGatherOp::create(b, loc, xType, kDenseGridName,
                                         ArrayRef<int16_t>{kTpAxis}, mine,
                                         APInt(64, 0));
  // With sliced experts the rows are complete already: the etp all-reduce
  // that ended the block goes.
  if (shard::AllReduceOp etpSum = etpSumOf(m.combine)) {
    etpSum.getResult().replaceAllUsesWith(all);
    etpSum.erase();
  }
  m.combine.getResult().replaceAllUsesWith(all);
  m.combine.erase();
  m.back.erase();
  experts.erase();
  for (Operation *op : llvm::reverse(m.countsExchange))
    op->erase();
  m.toExperts.erase();
  // Other users of the old routing keep it (and its work).
  if (m.dispatch->use_empty())
    m.dispatch.erase();
  if (router->use_empty())
    router.erase();
}

struct MoEDedupTokensPass
    : public moe::impl::MoEDedupTokensPassBase<MoEDedupTokensPass> {
  using MoEDedupTokensPassBase::MoEDedupTokensPassBase;

  void runOnOperation() override {
    if (failed(rewriteAllToAllLayers(getOperation(), layers, strict, kPass,
                                     whyNot, rewrite)))
      signalPassFailure();
  }
};

} // namespace
