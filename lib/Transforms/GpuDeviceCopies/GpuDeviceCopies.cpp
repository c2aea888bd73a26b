//===- GpuDeviceCopies.cpp - buffer copies as linalg.copy -----------------===//
//
// Implements `moe-gpu-device-copies` for the CUDA pipeline: memref.copy
// between buffers becomes linalg.copy, hence a parallel loop and a kernel,
// so that device data does not move through the host. Copies out of host
// globals stay on the host.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUDEVICECOPIESPASS
#include "moe/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Whether `value` is (a view of) a host global.
bool readsHostGlobal(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (isa<memref::GetGlobalOp>(def))
      return true;
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view)
      return false;
    value = view.getViewSource();
  }
  return false;
}

struct MoEGpuDeviceCopiesPass
    : moe::impl::MoEGpuDeviceCopiesPassBase<MoEGpuDeviceCopiesPass> {
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation()->walk([&](memref::CopyOp copy) {
      if (!readsHostGlobal(copy.getSource()))
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies) {
      OpBuilder b(copy);
      linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(),
                             copy.getTarget());
      copy.erase();
    }
  }
};

} // namespace
