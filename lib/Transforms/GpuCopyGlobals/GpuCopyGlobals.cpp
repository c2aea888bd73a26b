//===- GpuCopyGlobals.cpp - constant globals into allocated buffers -------===//
//
// Implements `moe-gpu-copy-globals` for the CUDA pipeline: a kernel cannot
// read the host's static globals, so every use of a `memref.get_global` in a
// function reads a buffer allocated (and, through the runtime, placed in
// memory the device can reach) and filled from the global instead.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/MapVector.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUCOPYGLOBALSPASS
#include "moe/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

struct MoEGpuCopyGlobalsPass
    : moe::impl::MoEGpuCopyGlobalsPassBase<MoEGpuCopyGlobalsPass> {
  void runOnOperation() override {
    SymbolTableCollection symbols;
    WalkResult result = getOperation().walk([&](FunctionOpInterface func) {
      if (func.isExternal())
        return WalkResult::advance();
      // One copy per global and function, at its entry: the globals are
      // constant, so every read in the function can share it.
      llvm::MapVector<StringAttr, SmallVector<memref::GetGlobalOp>> uses;
      bool ok = true;
      func.walk([&](memref::GetGlobalOp op) {
        auto global = symbols.lookupNearestSymbolFrom<memref::GlobalOp>(
            op, op.getNameAttr());
        if (!op.getType().getLayout().isIdentity()) {
          op.emitOpError() << "moe-gpu-copy-globals copies globals with the "
                              "identity layout only";
          ok = false;
        } else if (!global || !global.getConstant()) {
          op.emitOpError() << "reads a global that is not constant: a kernel "
                              "cannot see the host's copy, and writes to a "
                              "device copy would be lost";
          ok = false;
        } else {
          uses[op.getNameAttr().getAttr()].push_back(op);
        }
      });
      if (!ok)
        return WalkResult::interrupt();
      OpBuilder b(func.getFunctionBody());
      for (auto &[name, ops] : uses) {
        memref::GetGlobalOp first = ops.front();
        MemRefType type = first.getType();
        Location loc = first.getLoc();
        Value global =
            memref::GetGlobalOp::create(b, loc, type, name.getValue());
        Value copy = memref::AllocOp::create(
            b, loc, MemRefType::get(type.getShape(), type.getElementType()));
        memref::CopyOp::create(b, loc, global, copy);
        for (memref::GetGlobalOp op : ops) {
          op.getResult().replaceAllUsesWith(copy);
          op.erase();
        }
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
