//===- GpuAsyncLaunches.cpp - asynchronous kernels, waits where needed ----===//
//
// Implements `moe-gpu-async-launches` for the CUDA pipeline: every kernel
// launch of a host function becomes asynchronous, and the host waits for the
// device (`moert_gpu_sync`) only before it touches memory, calls a function
// that may, or returns.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUASYNCLAUNCHESPASS
#include "moe/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kSync = "moert_gpu_sync";
/// Runtime functions that enqueue their work after the kernels launched
/// before them: on the runtime's stream, or on the communication stream
/// behind an event recorded on it (a started collective).
constexpr llvm::StringLiteral kStreamOrdered[] = {
    "moert_sgemm", "moert_start_all_reduce_f32", "moert_start_all_gather_f32",
    "moert_start_all_to_all_f32", "moert_start_reduce_scatter_f32"};
/// Runtime functions that read no device data and leave no work behind: a
/// started collective's wait (it waits for the collective itself) and the
/// trace's layer marks.
constexpr llvm::StringLiteral kNoDeviceData[] = {"moert_wait_f32",
                                                 "moert_trace_layer"};

bool isStreamOrderedCall(func::CallOp call) {
  return llvm::is_contained(kStreamOrdered, call.getCallee());
}

/// Whether the host needs the device's results before `op` runs.
bool needsDeviceResults(Operation *op) {
  if (auto call = dyn_cast<func::CallOp>(op))
    return call.getCallee() != kSync && !isStreamOrderedCall(call) &&
           !llvm::is_contained(kNoDeviceData, call.getCallee());
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
  return call && isStreamOrderedCall(call);
}

/// What a buffer is a view of: an allocation of this function (which no
/// other buffer aliases unless it views the same allocation), an argument
/// of the function (arguments may alias each other, never an allocation),
/// or something else (anything may alias it).
struct BufferRoot {
  enum Kind { Allocation, Argument, Unknown } kind = Unknown;
  Value value;
};

BufferRoot rootOf(Value buffer, func::FuncOp func) {
  while (Operation *def = buffer.getDefiningOp()) {
    if (isa<memref::AllocOp, memref::AllocaOp>(def))
      return {BufferRoot::Allocation, buffer};
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view)
      return {};
    buffer = view.getViewSource();
  }
  auto argument = cast<BlockArgument>(buffer);
  if (argument.getOwner() == &func.getBody().front())
    return {BufferRoot::Argument, buffer};
  return {};
}

/// The buffers that device work inside `op`'s regions may touch.
struct TouchedBuffers {
  Operation *region;
  DenseSet<Value> allocations;
  bool arguments = false, unknown = false;

  TouchedBuffers(Operation *op, func::FuncOp func) : region(op) {
    op->walk([&](Operation *inner) {
      if (!issuesDeviceWork(inner))
        return;
      for (Value operand : inner->getOperands()) {
        if (!isa<MemRefType>(operand.getType()))
          continue;
        BufferRoot root = rootOf(operand, func);
        if (root.kind == BufferRoot::Allocation)
          allocations.insert(root.value);
        arguments |= root.kind == BufferRoot::Argument;
        unknown |= root.kind == BufferRoot::Unknown;
      }
    });
  }

  /// Whether `op` (which needs device results) may access one of them: a
  /// load or store of another allocation does not.
  bool mayBeAccessedBy(Operation *op, func::FuncOp func) const {
    Value buffer;
    if (auto load = dyn_cast<memref::LoadOp>(op))
      buffer = load.getMemRef();
    else if (auto store = dyn_cast<memref::StoreOp>(op))
      buffer = store.getMemRef();
    else
      return true;
    BufferRoot root = rootOf(buffer, func);
    switch (root.kind) {
    case BufferRoot::Allocation:
      // An allocation made inside the region may get, from the runtime's
      // cache, a block an earlier iteration's device work still uses.
      return unknown || allocations.contains(root.value) ||
             region->isProperAncestor(root.value.getDefiningOp());
    case BufferRoot::Argument:
      return unknown || arguments;
    case BufferRoot::Unknown:
      return true;
    }
    return true;
  }
};

/// Whether an op nested in `op` needs device results.
bool hasHostAccess(Operation *op) {
  bool found = false;
  op->walk([&](Operation *inner) {
    if (inner != op && needsDeviceResults(inner))
      found = true;
  });
  return found;
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
        // `pendingHere`: work issued in this block since the last wait.
        // `pendingBefore`: a nested block (a loop body) is entered with the
        // work before its op done (the op waits first, below) but with the
        // work of earlier iterations maybe pending, on the buffers device
        // work inside the op touches.
        bool entry = block == &func.getBody().front();
        bool pendingHere = false, pendingBefore = !entry;
        std::optional<TouchedBuffers> touched;
        if (!entry)
          touched.emplace(block->getParentOp(), func);
        for (Operation &op : *block) {
          bool wait = false;
          if (needsDeviceResults(&op))
            wait = pendingHere ||
                   (pendingBefore && touched->mayBeAccessedBy(&op, func));
          else if (op.getNumRegions() > 0)
            wait = (pendingHere || pendingBefore) && hasHostAccess(&op);
          if (wait) {
            OpBuilder b(&op);
            func::CallOp::create(b, op.getLoc(), kSync, TypeRange{});
            pendingHere = pendingBefore = false;
          }
          if (issuesDeviceWork(&op) || op.getNumRegions() > 0)
            pendingHere = true;
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
