//===- GpuCollapseParallelLoops.cpp - one dimension per kernel grid -------===//
//
// Implements `moe-gpu-collapse-parallel-loops` for the CUDA pipeline: every
// outermost multi-dimensional scf.parallel becomes one-dimensional (upstream
// collapseParallelLoops: the indices are recovered by division and
// remainder), so that tiling by the block size yields a one-dimensional grid
// (up to 2^31 - 1 blocks) instead of grid y/z dimensions capped at 65535,
// and every block is full whatever the shape.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/PatternMatch.h"

#include <numeric>

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUCOLLAPSEPARALLELLOOPSPASS
#include "moe/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

struct MoEGpuCollapseParallelLoopsPass
    : moe::impl::MoEGpuCollapseParallelLoopsPassBase<
          MoEGpuCollapseParallelLoopsPass> {
  void runOnOperation() override {
    SmallVector<scf::ParallelOp> outermost;
    getOperation()->walk([&](scf::ParallelOp op) {
      // Loops that reduce (init values, scf.reduce with operands) are left
      // as they are: the upstream utility does not carry their results.
      if (op.getNumLoops() > 1 && op.getNumReductions() == 0 &&
          !op->getParentOfType<scf::ParallelOp>())
        outermost.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ParallelOp op : outermost) {
      std::vector<unsigned> all(op.getNumLoops());
      std::iota(all.begin(), all.end(), 0u);
      rewriter.setInsertionPoint(op);
      collapseParallelLoops(rewriter, op, {all});
    }
  }
};

} // namespace
