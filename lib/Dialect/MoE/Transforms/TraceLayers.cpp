//===- TraceLayers.cpp - decoder layer marks for the runtime's trace ------===//
//
// Implements `moe-trace-layers`: a call to moert_trace_layer(L, G) wherever
// the `moe.decoder_layer` tag or its `moe.op_group` changes in program order
// (untagged ops belong to the span running), so that `EXE --trace` shows
// each layer's attention and feed-forward spans.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOETRACELAYERSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kMarkName = "moert_trace_layer";

/// The layer of `op`: its tag, or -1.
int64_t layerOf(Operation *op) {
  auto tag =
      op->getAttrOfType<IntegerAttr>(MoEDialect::getDecoderLayerAttrName());
  return tag ? tag.getInt() : -1;
}

/// The part of its layer `op` belongs to (moe.op_group), or -1.
int64_t groupOf(Operation *op) {
  auto tag = op->getAttrOfType<IntegerAttr>(MoEDialect::getOpGroupAttrName());
  return tag && layerOf(op) >= 0 ? tag.getInt() : -1;
}

struct MoETraceLayersPass
    : public moe::impl::MoETraceLayersPassBase<MoETraceLayersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    bool tagged = false;
    module.walk([&](Operation *op) {
      tagged |= layerOf(op) >= 0;
      return tagged ? WalkResult::interrupt() : WalkResult::advance();
    });
    if (!tagged)
      return;
    OpBuilder b(&getContext());
    auto type = b.getFunctionType({b.getI32Type(), b.getI32Type()}, {});
    auto mark = module.lookupSymbol<func::FuncOp>(kMarkName);
    if (mark && mark.getFunctionType() != type) {
      mark.emitOpError() << "has type " << mark.getFunctionType()
                         << "; moe-trace-layers calls @" << kMarkName << " as "
                         << type;
      return signalPassFailure();
    }
    if (!mark) {
      b.setInsertionPointToStart(module.getBody());
      mark = func::FuncOp::create(b, module.getLoc(), kMarkName, type);
      mark.setPrivate();
    }
    // Each block of a function or of its control flow (not the payload of
    // a linalg op or an async_start) on its own: a mark where the layer
    // changes, and one that leaves the layers before the terminator of a
    // block that entered one.
    auto controlFlow = [](Operation *op) {
      return isa<scf::ForOp, scf::IfOp, scf::WhileOp, scf::ExecuteRegionOp,
                 scf::IndexSwitchOp>(op);
    };
    SmallVector<Block *> blocks;
    module.walk([&](Block *block) {
      if (isa<func::FuncOp>(block->getParentOp()) ||
          controlFlow(block->getParentOp()))
        blocks.push_back(block);
    });
    // A loop or branch whose blocks get marks leaves the layers when it ends
    // (its blocks end with -1): the op after it marks its layer again.
    auto marksInside = [&](Operation &op) {
      return controlFlow(&op) && op.walk([&](Operation *nested) {
                                     return nested != &op &&
                                                    layerOf(nested) >= 0
                                                ? WalkResult::interrupt()
                                                : WalkResult::advance();
                                   }).wasInterrupted();
    };
    for (Block *block : blocks) {
      // Ops without a tag (constants, what moe-overlap built, the final
      // norm) belong to the layer running; those after the block's last
      // tagged op leave it.
      Operation *lastTagged = nullptr;
      for (Operation &op : *block)
        if (layerOf(&op) >= 0)
          lastTagged = &op;
      if (!lastTagged)
        continue;
      std::pair<int64_t, int64_t> current = {-1, -1};
      bool after = false;
      for (Operation &op : llvm::make_early_inc_range(*block)) {
        std::pair<int64_t, int64_t> span = {-1, -1};
        if (!after)
          span = {layerOf(&op), groupOf(&op)};
        after |= &op == lastTagged;
        bool leaves = marksInside(op);
        if (!isa<arith::ConstantOp>(op) && (span.first >= 0 || after) &&
            span != current) {
          b.setInsertionPoint(&op);
          Value layer =
              arith::ConstantIntOp::create(b, op.getLoc(), span.first, 32);
          Value group =
              arith::ConstantIntOp::create(b, op.getLoc(), span.second, 32);
          func::CallOp::create(b, op.getLoc(), mark, ValueRange{layer, group});
          current = span;
        }
        if (leaves)
          current = {-1, -1};
      }
    }
  }
};

} // namespace
