//===- ApproximateMath.cpp - vectorizable exp and erf ---------------------===//
//
// Implements `moe-approximate-math` with upstream's polynomial
// approximations, restricted to the functions the MoE lowering emits.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEAPPROXIMATEMATHPASS
#include "moe/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

namespace {

bool isApproximated(StringRef name) {
  name.consume_front("math.");
  return name == "exp" || name == "erf";
}

struct MoEApproximateMathPass
    : moe::impl::MoEApproximateMathPassBase<MoEApproximateMathPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, isApproximated);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
