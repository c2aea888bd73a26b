//===- SliceAllReduce.cpp - PPMoE: index slicing and one all-reduce -------===//
//
// Implements `moe-slice-allreduce`: where the tokens of an all-to-all MoE
// layer are replicated over its expert-parallel group, every rank keeps the
// rows of its own experts from the dispatch buffer instead of exchanging
// them, and one all-reduce over the group sums the partial outputs.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/AllToAllRewrites.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOESLICEALLREDUCEPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kPass = "moe-slice-allreduce";

/// Why the layer's tokens are not known to be replicated over its
/// expert-parallel group; empty when they are.
std::string whyNotReplicated(const AllToAllLayer &m, PlanAttr plan) {
  if (llvm::is_contained(m.tokensSplit, kTpAxis))
    return "the tokens are split over the tensor-parallel axis";
  int64_t groupSpan = plan.getEp() * plan.getEtp();
  if (llvm::is_contained(m.tokensSplit, kDpAxis) &&
      plan.getTp() % groupSpan != 0)
    return llvm::formatv(
        "the tokens are split over dp = {0} and the expert-parallel group "
        "spans data-parallel ranks (ep * etp = {1} does not divide tp = {2})",
        plan.getDp(), groupSpan, plan.getTp());
  return "";
}

void rewrite(AllToAllLayer m, PlanAttr plan) {
  CombineOp combine = m.combine;
  OpBuilder b(combine);
  Location loc = combine.getLoc();
  auto bufferType = cast<RankedTensorType>(m.dispatch.getBuffer().getType());
  int64_t e = bufferType.getDimSize(0), rows = bufferType.getDimSize(1),
          h = bufferType.getDimSize(2), local = e / plan.getEp();
  auto localType =
      RankedTensorType::get({local, rows, h}, bufferType.getElementType());

  // This rank's experts' rows and counts, sliced out of the local dispatch.
  Value index = shard::ProcessMultiIndexOp::create(
                    b, loc, TypeRange{b.getIndexType()}, kExpertGridName,
                    ArrayRef<int16_t>{kEpAxis})
                    .getResult()[0];
  Value first = arith::MulIOp::create(
      b, loc, index, arith::ConstantIndexOp::create(b, loc, local));
  SmallVector<OpFoldResult> offsets = {first, b.getIndexAttr(0),
                                       b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(local),
                                     b.getIndexAttr(rows), b.getIndexAttr(h)};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  Value mine = tensor::ExtractSliceOp::create(
      b, loc, localType, m.dispatch.getBuffer(), offsets, sizes, strides);
  Value counts = tensor::ExtractSliceOp::create(
      b, loc,
      RankedTensorType::get(
          {local}, cast<RankedTensorType>(m.dispatch.getCounts().getType())
                       .getElementType()),
      m.dispatch.getCounts(), ArrayRef<OpFoldResult>{first},
      ArrayRef<OpFoldResult>{b.getIndexAttr(local)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  ExpertsOp experts = m.experts;
  Value computed = ExpertsOp::create(
      b, loc, localType, mine, counts, experts.getGate(), experts.getUp(),
      experts.getDown(), experts.getActivationAttr());
  // Other experts' rows are zero: the combine gives this rank's partial sum.
  Value zeros = buildZeros(
      b, loc, {b.getIndexAttr(e), b.getIndexAttr(rows), b.getIndexAttr(h)},
      bufferType.getElementType());
  Value full = tensor::InsertSliceOp::create(b, loc, computed, zeros, offsets,
                                             sizes, strides);
  Value partial =
      CombineOp::create(b, loc, combine.getType(), full, combine.getSlots(),
                        combine.getIds(), combine.getWeights());

  // One all-reduce: over the tp group when it also replaces the etp one.
  Value result = combine.getResult();
  auto etpSum = result.hasOneUse()
                    ? dyn_cast<shard::AllReduceOp>(*result.getUsers().begin())
                    : shard::AllReduceOp();
  bool merge = etpSum && etpSum.getGrid() == kExpertGridName &&
               etpSum.getGridAxes() == ArrayRef<int16_t>{kEtpAxis} &&
               plan.getEp() * plan.getEtp() == plan.getTp();
  if (merge) {
    b.setInsertionPoint(etpSum);
    Value sum =
        shard::AllReduceOp::create(b, loc, partial.getType(), kDenseGridName,
                                   ArrayRef<int16_t>{kTpAxis}, partial);
    etpSum.getResult().replaceAllUsesWith(sum);
    etpSum.erase();
  } else {
    Value sum =
        shard::AllReduceOp::create(b, loc, partial.getType(), kExpertGridName,
                                   ArrayRef<int16_t>{kEpAxis}, partial);
    result.replaceAllUsesWith(sum);
  }
  combine.erase();
  m.back.erase();
  experts.erase();
  for (Operation *op : llvm::reverse(m.countsExchange))
    op->erase();
  m.toExperts.erase();
}

struct MoESliceAllReducePass
    : public moe::impl::MoESliceAllReducePassBase<MoESliceAllReducePass> {
  using MoESliceAllReducePassBase::MoESliceAllReducePassBase;

  void runOnOperation() override {
    if (failed(rewriteAllToAllLayers(getOperation(), layers, strict, kPass,
                                     whyNotReplicated, rewrite)))
      signalPassFailure();
  }
};

} // namespace
