//===- GpuAsyncLaunches.cpp - asynchronous kernels, waits where needed ----===//
//
// Implements `moe-gpu-async-launches` for the CUDA pipeline: every kernel
// launch of a host function becomes asynchronous, and the host waits for the
// device (`moert_gpu_sync`) only before it touches memory, calls a function
// that may, or returns.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUASYNCLAUNCHESPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kSync = "moert_gpu_sync";
/// Runtime functions that enqueue their work on the runtime's stream, after
/// the kernels launched before them.
constexpr llvm::StringLiteral kStreamOrdered[] = {"moert_sgemm"};

bool isStreamOrderedCall(func::CallOp call) {
  return call.getCallee() == kSync ||
         llvm::is_contained(kStreamOrdered, call.getCallee());
}

/// Whether the host needs the device's results before `op` runs.
bool needsDeviceResults(Operation *op) {
  if (auto call = dyn_cast<func::CallOp>(op))
    return !isStreamOrderedCall(call);
  if (isa<func::ReturnOp>(op))
    return true;
  if (isa<gpu::GPUDialect>(op->getDialect()))
    return false;
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects) {
    // An op whose effects are those of its regions (a loop) is looked into.
    if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return false;
    return !isMemoryEffectFree(op);
  }
  SmallVector<MemoryEffects::EffectInstance> instances;
  effects.getEffects(instances);
  return llvm::any_of(instances, [](const MemoryEffects::EffectInstance &e) {
    return isa<MemoryEffects::Read, MemoryEffects::Write>(e.getEffect());
  });
}

/// Whether `op` leaves work on the device that the host has not waited for.
bool issuesDeviceWork(Operation *op) {
  if (isa<gpu::LaunchFuncOp>(op))
    return true;
  auto call = dyn_cast<func::CallOp>(op);
  return call && call.getCallee() != kSync && isStreamOrderedCall(call);
}

struct MoEGpuAsyncLaunchesPass
    : moe::impl::MoEGpuAsyncLaunchesPassBase<MoEGpuAsyncLaunchesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    Type tokenType = gpu::AsyncTokenType::get(&getContext());
    bool changed = false;

    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      // Device work: kernels, or only products (which return without
      // waiting either).
      bool hasDeviceWork = false;
      func.walk([&](Operation *op) { hasDeviceWork |= issuesDeviceWork(op); });
      func.walk([&](gpu::LaunchFuncOp launch) {
        if (launch.getAsyncToken())
          return;
        OpBuilder b(launch);
        Value token =
            gpu::WaitOp::create(b, launch.getLoc(), tokenType, ValueRange{})
                .getAsyncToken();
        auto async = gpu::LaunchFuncOp::create(
            b, launch.getLoc(), launch.getKernelAttr(),
            launch.getGridSizeOperandValues(),
            launch.getBlockSizeOperandValues(),
            launch.getDynamicSharedMemorySize(), launch.getKernelOperands(),
            tokenType, ValueRange{token},
            launch.hasClusterSize()
                ? std::optional(launch.getClusterSizeOperandValues())
                : std::nullopt);
        async->setDiscardableAttrs(launch->getDiscardableAttrDictionary());
        launch.erase();
      });
      if (!hasDeviceWork)
        continue;
      changed = true;
      func.walk([&](Block *block) {
        // A block is entered after work was issued (a loop body after its
        // previous iteration), unless it is the function's entry.
        bool pending = block != &func.getBody().front();
        for (Operation &op : *block) {
          if (pending && needsDeviceResults(&op)) {
            OpBuilder b(&op);
            func::CallOp::create(b, op.getLoc(), kSync, TypeRange{});
            pending = false;
          }
          if (issuesDeviceWork(&op) || op.getNumRegions() > 0)
            pending = true;
        }
      });
    }
    if (!changed)
      return;
    if (!module.lookupSymbol<func::FuncOp>(kSync)) {
      OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
      auto decl = func::FuncOp::create(b, module.getLoc(), kSync,
                                       b.getFunctionType({}, {}));
      decl.setPrivate();
    }
  }
};

} // namespace
