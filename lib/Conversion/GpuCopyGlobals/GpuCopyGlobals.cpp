//===- GpuCopyGlobals.cpp - constant globals into allocated buffers -------===//
//
// Implements `moe-gpu-copy-globals` for the CUDA pipeline: a kernel cannot
// read the host's static globals, so every use of a `memref.get_global` in a
// function reads a buffer allocated (and, through the runtime, placed in
// memory the device can reach) and filled from the global instead.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUCOPYGLOBALSPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

struct MoEGpuCopyGlobalsPass
    : moe::impl::MoEGpuCopyGlobalsPassBase<MoEGpuCopyGlobalsPass> {
  void runOnOperation() override {
    SmallVector<memref::GetGlobalOp> globals;
    getOperation().walk([&](memref::GetGlobalOp op) { globals.push_back(op); });
    for (memref::GetGlobalOp op : globals) {
      auto type = op.getType();
      if (!type.getLayout().isIdentity()) {
        op.emitOpError() << "moe-gpu-copy-globals copies globals with the "
                            "identity layout only";
        return signalPassFailure();
      }
      OpBuilder b(op->getContext());
      b.setInsertionPointAfter(op);
      Value copy = memref::AllocOp::create(
          b, op.getLoc(),
          MemRefType::get(type.getShape(), type.getElementType()));
      op.getResult().replaceAllUsesWith(copy);
      memref::CopyOp::create(b, op.getLoc(), op.getResult(), copy);
    }
  }
};

} // namespace
