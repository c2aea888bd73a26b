//===- Decompose.cpp - Expand moe.layer into its four steps ---------------===//
//
// Implements `moe-decompose`: moe.layer -> moe.router, moe.dispatch,
// moe.experts, moe.combine (+ shared experts and their gate).
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/LayerExpansion.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-decompose"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEDECOMPOSEPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// [a, b] -> [1, a, b]: views a dense MLP weight (or the tokens) as a stack
/// of one expert.
Value expandToOneExpert(OpBuilder &b, Location loc, Value value) {
  auto type = cast<RankedTensorType>(value.getType());
  auto expanded = RankedTensorType::get(
      {1, type.getDimSize(0), type.getDimSize(1)}, type.getElementType());
  return tensor::ExpandShapeOp::create(
      b, loc, expanded, value, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
}

/// out[t, h] = routed[t, h] + sigmoid(logit[t, 0]) * shared[t, h].
Value buildGatedSum(OpBuilder &b, Location loc, Value routed, Value logits,
                    Value shared) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, h;
  bindDims(ctx, t, h);
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
  SmallVector<AffineMap> maps = {
      identity, AffineMap::get(2, 0, {t, getAffineConstantExpr(0, ctx)}, ctx),
      identity, identity};
  SmallVector<utils::IteratorType> iterators(2, utils::IteratorType::parallel);
  Type elementType = cast<RankedTensorType>(routed.getType()).getElementType();
  Value init =
      buildEmpty(b, loc, tensor::getMixedSizes(b, loc, routed), elementType);
  return buildGeneric(
      b, loc, init, ValueRange{routed, logits, shared}, maps, iterators,
      [](OpBuilder &nb, Location nloc, ValueRange args) {
        Value scaled = arith::MulFOp::create(
            nb, nloc, buildSigmoid(nb, nloc, args[1]), args[2]);
        return arith::AddFOp::create(nb, nloc, args[0], scaled).getResult();
      });
}

} // namespace

Value mlir::moe::buildSharedExpertsSum(OpBuilder &b, Location loc, Value tokens,
                                       Value routed, Value up, Value down,
                                       Value gate, Value sharedGate,
                                       ActivationAttr activation) {
  Value x = expandToOneExpert(b, loc, tokens);
  auto shared = ExpertsOp::create(b, loc, x.getType(), x, /*counts=*/Value(),
                                  expandToOneExpert(b, loc, gate),
                                  expandToOneExpert(b, loc, up),
                                  expandToOneExpert(b, loc, down), activation);
  Value sharedOut = tensor::CollapseShapeOp::create(
      b, loc, shared.getOutput(), ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  if (!sharedGate)
    return arith::AddFOp::create(b, loc, routed, sharedOut);
  // x · shared_gateᵀ : [T, 1]
  Value logits = buildMatmulTransposedB(b, loc, tokens, sharedGate);
  return buildGatedSum(b, loc, routed, logits, sharedOut);
}

namespace {

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    RankedTensorType tokensType = op.getTokens().getType();
    int64_t numTokens = tokensType.getDimSize(0);
    int64_t hidden = tokensType.getDimSize(1);
    std::optional<int64_t> capacity = op.getCapacity();
    if (!capacity && ShapedType::isDynamic(numTokens))
      return rewriter.notifyMatchFailure(op, "dropless needs a static T");
    int64_t slotsPerExpert = capacity ? *capacity : numTokens;

    Location loc = op.getLoc();
    Type elementType = tokensType.getElementType();
    int64_t k = op.getK();
    auto weightsType = RankedTensorType::get({numTokens, k}, elementType);
    auto idsType = RankedTensorType::get({numTokens, k}, rewriter.getI32Type());
    auto bufferType = RankedTensorType::get(
        {op.getNumExperts(), slotsPerExpert, hidden}, elementType);

    auto router = RouterOp::create(rewriter, loc, weightsType, idsType,
                                   op.getTokens(), op.getRouterWeight(),
                                   op.getRouterBias(), op.getKAttr(),
                                   op.getScoreAttr(), op.getRenormalizeAttr());
    auto countsType =
        RankedTensorType::get({op.getNumExperts()}, rewriter.getI32Type());
    auto dispatch = DispatchOp::create(
        rewriter, loc, bufferType, idsType, countsType, op.getTokens(),
        router.getIds(), capacity ? UnitAttr() : rewriter.getUnitAttr());
    auto experts = ExpertsOp::create(
        rewriter, loc, bufferType, dispatch.getBuffer(), dispatch.getCounts(),
        op.getExpertGate(), op.getExpertUp(), op.getExpertDown(),
        op.getActivationAttr());
    Value result = CombineOp::create(rewriter, loc, tokensType,
                                     experts.getOutput(), dispatch.getSlots(),
                                     router.getIds(), router.getWeights());

    if (op.hasSharedExperts())
      result = buildSharedExpertsSum(
          rewriter, loc, op.getTokens(), result, op.getSharedUpProj(),
          op.getSharedDownProj(), op.getSharedGateProj(), op.getSharedGate(),
          op.getActivationAttr());
    LLVM_DEBUG(llvm::dbgs() << "decomposed " << op << "\n");
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct MoEDecomposePass : moe::impl::MoEDecomposePassBase<MoEDecomposePass> {
  using Base::Base;

  void runOnOperation() override {
    // A dropless layer sizes its buffers by the token count; say so instead
    // of leaving the layer behind silently.
    WalkResult walk = getOperation()->walk([](LayerOp op) {
      if (!op.getCapacity() &&
          ShapedType::isDynamic(op.getTokens().getType().getDimSize(0))) {
        op.emitOpError() << "is dropless (no capacity) but its token count is "
                         << "dynamic; moe-decompose needs a static token "
                         << "count or an explicit capacity";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();

    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeLayer>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
