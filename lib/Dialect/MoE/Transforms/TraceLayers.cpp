//===- TraceLayers.cpp - decoder layer marks for the runtime's trace ------===//
//
// Implements `moe-trace-layers`: a call to moert_trace_layer(L) wherever the
// `moe.decoder_layer` tag changes in program order (untagged ops belong to
// the layer running), so that `EXE --trace` shows each layer's spans.
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
    auto type = b.getFunctionType({b.getI32Type()}, {});
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
      int64_t current = -1;
      bool after = false;
      for (Operation &op : llvm::make_early_inc_range(*block)) {
        int64_t layer = after ? -1 : layerOf(&op);
        after |= &op == lastTagged;
        bool leaves = marksInside(op);
        if (!isa<arith::ConstantOp>(op) && (layer >= 0 || after) &&
            layer != current) {
          b.setInsertionPoint(&op);
          Value index = arith::ConstantIntOp::create(b, op.getLoc(), layer, 32);
          func::CallOp::create(b, op.getLoc(), mark, ValueRange{index});
          current = layer;
        }
        if (leaves)
          current = -1;
      }
    }
  }
};

} // namespace
