//===- GpuSplitReductions.cpp - long reductions as partial reductions -----===//
//
// Implements `moe-gpu-split-reductions` for the CUDA pipeline: a reduction
// over N elements becomes R parallel partial reductions of N / R and a final
// one over R (upstream linalg::splitReduction), so that a kernel thread never
// reduces a whole row of a norm or a softmax.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUSPLITREDUCTIONSPASS
#include "moe/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The number of partial reductions for `n` elements: the largest power of
/// two whose square is at most `n` and that divides `n` (1: do not split).
int64_t partialCount(int64_t n) {
  int64_t ratio = 1;
  while ((ratio * 2) * (ratio * 2) <= n)
    ratio *= 2;
  while (ratio > 1 && n % ratio != 0)
    ratio /= 2;
  return ratio;
}

struct MoEGpuSplitReductionsPass
    : moe::impl::MoEGpuSplitReductionsPassBase<MoEGpuSplitReductionsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<std::pair<linalg::GenericOp, int64_t>> candidates;
    getOperation()->walk([&](linalg::GenericOp op) {
      // Row reductions (norms, softmax): one input, one output, plain
      // indexing. Products of two operands are cuBLAS's or attention's.
      if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
          op.getNumDpsInits() != 1 || op.getNumReductionLoops() != 1 ||
          op.hasIndexSemantics() ||
          !llvm::all_of(op.getIndexingMapsArray(), [](AffineMap map) {
            return map.isProjectedPermutation();
          }))
        return;
      SmallVector<unsigned> dims;
      op.getReductionDims(dims);
      int64_t size = op.getStaticLoopRanges()[dims.front()];
      if (ShapedType::isDynamic(size) || size < minSize)
        return;
      if (int64_t ratio = partialCount(size); ratio > 1)
        candidates.push_back({op, ratio});
    });
    IRRewriter rewriter(&getContext());
    for (auto candidate : candidates) {
      linalg::GenericOp op = candidate.first;
      int64_t ratio = candidate.second;
      rewriter.setInsertionPoint(op);
      unsigned outputRank = op.getRank(op.getDpsInitOperand(0));
      auto control = [ratio, outputRank](linalg::LinalgOp) {
        linalg::SplitReductionOptions options;
        options.ratio = ratio;
        options.index = outputRank; // partial results: a trailing dimension
        options.innerParallel = false;
        return options;
      };
      // An op whose combiner is not recognized stays as it is.
      (void)linalg::splitReduction(rewriter, op, control);
    }
  }
};

} // namespace
