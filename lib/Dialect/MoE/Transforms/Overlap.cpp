//===- Overlap.cpp - start collectives early, wait for them late ----------===//
//
// Implements `moe-overlap`: each chosen blocking collective of a per-rank
// program becomes a moe.async_start / moe.async_wait pair; the start moves up
// to just after its input is computed, the wait down to just before the
// result's first use, and the compute that does not depend on the result
// moves from after the wait to before it, so that it runs while the data
// travels. Legality comes from SSA dependences and memory effects only.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEOVERLAPPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr llvm::StringLiteral kPass = "moe-overlap";
constexpr llvm::StringLiteral kKinds[] = {"all-to-all", "all-reduce",
                                          "all-gather", "reduce-scatter"};

/// The option name of a collective moe.async_start can hold; empty for
/// other ops.
StringRef kindOf(Operation *op) {
  return TypeSwitch<Operation *, StringRef>(op)
      .Case([](shard::AllToAllOp) { return kKinds[0]; })
      .Case([](shard::AllReduceOp) { return kKinds[1]; })
      .Case([](shard::AllGatherOp) { return kKinds[2]; })
      .Case([](shard::ReduceScatterOp) { return kKinds[3]; })
      .Default([](Operation *) { return StringRef(); });
}

/// Communication whose order every rank must agree on: upstream declares
/// the shard collectives pure, so they are named here.
bool isCommunication(Operation *op) {
  return isa<AsyncStartOp, AsyncWaitOp, shard::AllToAllOp, shard::AllReduceOp,
             shard::AllGatherOp, shard::ReduceScatterOp, shard::BroadcastOp,
             shard::GatherOp, shard::ReduceOp, shard::ScatterOp, shard::SendOp,
             shard::RecvOp, shard::ShiftOp>(op);
}

/// An op that starts and waits keep their order with: communication, and
/// any op with memory effects (a call, a write).
bool isBarrier(Operation *op) {
  return isCommunication(op) || !isMemoryEffectFree(op) ||
         op->hasTrait<OpTrait::IsTerminator>();
}

/// Work worth hiding a transfer behind: a linalg op or an moe compute op,
/// at `op` or nested in it.
bool isCompute(Operation *op) {
  return op
      ->walk([](Operation *nested) {
        return isa<linalg::LinalgOp, RouterOp, DispatchOp, ExpertsOp, CombineOp,
                   LayerOp>(nested)
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      })
      .wasInterrupted();
}

/// Whether `op` or an op nested in it uses `value`.
bool uses(Operation *op, Value value) {
  return llvm::any_of(value.getUsers(),
                      [&](Operation *user) { return op->isAncestor(user); });
}

/// `op` (a collective on its one tensor input) as a start right before it and
/// a wait right after the start; `op` moves into the start's body.
AsyncWaitOp wrap(Operation *op) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  Value input = op->getOperand(0);
  auto resultType = cast<RankedTensorType>(op->getResult(0).getType());
  auto start = AsyncStartOp::create(
      b, loc, FutureType::get(b.getContext(), resultType), input);
  auto wait = AsyncWaitOp::create(b, loc, resultType, start.getFuture());
  op->getResult(0).replaceAllUsesWith(wait.getResult());
  Block *body = b.createBlock(&start.getBody(), {}, {input.getType()}, {loc});
  op->moveBefore(body, body->end());
  op->setOperand(0, body->getArgument(0));
  b.setInsertionPointToEnd(body);
  YieldOp::create(b, loc, op->getResult(0));
  return wait;
}

/// Undoes `wrap`: the blocking collective again, at the wait.
void unwrap(AsyncWaitOp wait) {
  AsyncStartOp start = wait.getStart();
  Operation *op = start.getCollective();
  op->moveBefore(wait);
  op->setOperand(0, start.getInput());
  wait.getResult().replaceAllUsesWith(op->getResult(0));
  wait.erase();
  start.erase();
}

/// Moves pure `op` up to just after the last op it reads from, or to the
/// first communication op above it: compute stays on its side of a start,
/// so that a later start's producers do not delay an earlier one.
void hoistPure(Operation *op) {
  Block *block = op->getBlock();
  llvm::SmallPtrSet<Operation *, 8> defs;
  op->walk([&](Operation *nested) {
    for (Value operand : nested->getOperands())
      if (Operation *def = operand.getDefiningOp())
        if (Operation *inBlock = block->findAncestorOpInBlock(*def))
          defs.insert(inBlock);
  });
  for (Operation *prev = op->getPrevNode(); prev; prev = prev->getPrevNode())
    if (defs.contains(prev) || isCommunication(prev)) {
      if (prev != op->getPrevNode())
        op->moveAfter(prev);
      return;
    }
  op->moveBefore(&block->front());
}

/// Starts as early as the input allows: first the pure ops that compute the
/// input (a dispatch, its router) move up to just after what they read,
/// then the start moves up to just after its input, or to the first
/// barrier above it.
void hoistStart(AsyncStartOp start) {
  Block *block = start->getBlock();
  SetVector<Operation *> slice;
  SmallVector<Operation *> worklist;
  auto visit = [&](Operation *op) {
    op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands()) {
        Operation *def = operand.getDefiningOp();
        Operation *inBlock = def ? block->findAncestorOpInBlock(*def) : nullptr;
        if (inBlock && inBlock != op && !isBarrier(inBlock) &&
            slice.insert(inBlock))
          worklist.push_back(inBlock);
      }
    });
  };
  visit(start);
  while (!worklist.empty())
    visit(worklist.pop_back_val());
  SmallVector<Operation *> ordered(slice.begin(), slice.end());
  llvm::sort(ordered,
             [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  for (Operation *op : ordered)
    hoistPure(op);
  while (Operation *prev = start->getPrevNode()) {
    if (isBarrier(prev) ||
        llvm::is_contained(prev->getResults(), start.getInput()))
      break;
    start->moveBefore(prev);
  }
}

/// Waits as late as the first use allows, and no later than an op with
/// memory effects. A wait may pass other communication: completing a
/// request in any order is legal, and every rank keeps the same order.
void sinkWait(AsyncWaitOp wait) {
  while (Operation *next = wait->getNextNode()) {
    if ((isBarrier(next) && !isCommunication(next)) ||
        uses(next, wait.getResult()))
      break;
    wait->moveAfter(next);
  }
}

/// Moves the pure ops after `wait` that do not depend on its result (nor on
/// a barrier that stays after it) to just before it, in order.
void pullIndependentWork(AsyncWaitOp wait) {
  Block *block = wait->getBlock();
  llvm::SmallPtrSet<Operation *, 32> staying;
  SmallVector<Operation *> moving;
  auto dependsOnStaying = [&](Operation *op) {
    return op
        ->walk([&](Operation *nested) {
          for (Value operand : nested->getOperands()) {
            if (operand == wait.getResult())
              return WalkResult::interrupt();
            Operation *def = operand.getDefiningOp();
            Operation *inBlock =
                def ? block->findAncestorOpInBlock(*def) : nullptr;
            if (inBlock && staying.contains(inBlock))
              return WalkResult::interrupt();
          }
          return WalkResult::advance();
        })
        .wasInterrupted();
  };
  for (Operation *op = wait->getNextNode(); op; op = op->getNextNode()) {
    if (isBarrier(op) || dependsOnStaying(op))
      staying.insert(op);
    else
      moving.push_back(op);
  }
  for (Operation *op : moving)
    op->moveBefore(wait);
}

/// Whether compute runs between the start and the wait.
bool hidesCompute(AsyncWaitOp wait) {
  for (Operation *op = wait.getStart()->getNextNode(); op != wait;
       op = op->getNextNode())
    if (isCompute(op))
      return true;
  return false;
}

/// The work of `op` as the iterations of its loops (linalg ops with static
/// ranges; moe compute ops by their largest operand), summed over nested
/// ops: what the balancing below compares.
double workOf(Operation *op) {
  double work = 0;
  op->walk([&](Operation *nested) {
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(nested)) {
      double iterations = 1;
      for (int64_t range : linalgOp.getStaticLoopRanges())
        iterations *= ShapedType::isDynamic(range) ? 1 : double(range);
      work += iterations;
    } else if (isa<RouterOp, DispatchOp, ExpertsOp, CombineOp, LayerOp>(
                   nested)) {
      double largest = 0;
      for (Value operand : nested->getOperands())
        if (auto type = dyn_cast<RankedTensorType>(operand.getType());
            type && type.hasStaticShape())
          largest = std::max(largest, double(type.getNumElements()));
      work += largest;
    }
  });
  return work;
}

/// The size of what a started collective moves (its input's elements: the
/// balancing compares pairs of one element type).
double sizeOf(AsyncWaitOp wait) {
  auto type = cast<RankedTensorType>(wait.getStart().getInput().getType());
  return type.hasStaticShape() ? double(type.getNumElements()) : 0;
}

/// The work between a pair's start and wait.
double gapWork(AsyncWaitOp wait) {
  double work = 0;
  for (Operation *op = wait.getStart()->getNextNode(); op != wait;
       op = op->getNextNode())
    work += workOf(op);
  return work;
}

/// A pair with nothing to hide behind (a combine right after its experts)
/// takes its share of the work of an earlier pair's gap (the dispatch's):
/// the share of the bytes it moves among the two, taken from the end of
/// that gap, op by op (an op that would overshoot the share by more than
/// half its own work stays), as long as every use of what moves lies after
/// this wait. Both transfers are then hidden in part instead of one fully.
void balance(AsyncWaitOp wait, AsyncWaitOp donor) {
  double total = gapWork(donor), bytes = sizeOf(wait),
         donorBytes = sizeOf(donor);
  if (total == 0 || bytes + donorBytes == 0)
    return;
  double want = total * bytes / (bytes + donorBytes), taken = 0;
  llvm::SmallPtrSet<Operation *, 32> moving;
  SmallVector<Operation *> order;
  Operation *stop = donor.getStart();
  for (Operation *op = donor->getPrevNode(); op && op != stop && taken < want;
       op = op->getPrevNode()) {
    // Only pure ops move (the scan goes on above a wait that stays).
    if (isBarrier(op))
      continue;
    bool usedAfter = llvm::all_of(op->getUsers(), [&](Operation *user) {
      Operation *top = wait->getBlock()->findAncestorOpInBlock(*user);
      return top && (moving.contains(top) || wait->isBeforeInBlock(top));
    });
    double work = workOf(op);
    if (!usedAfter || taken + work / 2 > want)
      continue;
    moving.insert(op);
    order.push_back(op);
    taken += work;
  }
  for (Operation *op : llvm::reverse(order))
    op->moveBefore(wait);
}

/// An expert-parallel layer's exchange: dispatch buffer [E, C, H] ->
/// all_to_all -> moe.experts (with counts [E/ep, ep]) -> all_to_all back ->
/// [E, C, H].
struct Exchange {
  shard::AllToAllOp there, back;
  ExpertsOp experts;
};

/// The exchange `there` starts, or failure with the reason.
FailureOr<Exchange> matchExchange(shard::AllToAllOp there, std::string &why) {
  Exchange x;
  x.there = there;
  if (!there.getInput().getDefiningOp<DispatchOp>() ||
      there.getSplitAxis().getSExtValue() != 0 ||
      there.getConcatAxis().getSExtValue() != 1) {
    why = "it is not a dispatch buffer's all-to-all";
    return failure();
  }
  if (!there.getResult().hasOneUse() ||
      !(x.experts = dyn_cast<ExpertsOp>(*there.getResult().user_begin())) ||
      x.experts.getInput() != there.getResult() || !x.experts.getCounts()) {
    why = "its result does not go to one moe.experts with counts";
    return failure();
  }
  auto counts = cast<RankedTensorType>(x.experts.getCounts().getType());
  if (counts.getRank() != 2 || !counts.hasStaticShape()) {
    why = "the experts' counts are not per source rank";
    return failure();
  }
  if (!x.experts.getOutput().hasOneUse() ||
      !(x.back =
            dyn_cast<shard::AllToAllOp>(*x.experts.getOutput().user_begin())) ||
      x.back.getSplitAxis().getSExtValue() != 1 ||
      x.back.getConcatAxis().getSExtValue() != 0) {
    why = "the experts' output does not go back through one all-to-all";
    return failure();
  }
  return x;
}

/// Splits the exchange into `n` chunks of the buffer's C rows, so that chunk
/// i travels while chunk i - 1's experts compute (Tutel's overlap degree):
/// chunk i is rows [i·C/n, (i+1)·C/n) of every expert's buffer, its counts
/// min(max(counts - i·C/n, 0), C/n), and the chunks' results are put back
/// in place. Experts are row by row, so the result is the same.
void splitExchange(Exchange x, int64_t n) {
  OpBuilder b(x.back);
  b.setInsertionPointAfter(x.back);
  Location loc = x.there.getLoc();
  auto bufType = cast<RankedTensorType>(x.there.getInput().getType());
  auto recvType = cast<RankedTensorType>(x.there.getResult().getType());
  int64_t e = bufType.getDimSize(0), c = bufType.getDimSize(1) / n,
          h = bufType.getDimSize(2), local = recvType.getDimSize(0),
          sources = recvType.getDimSize(1) / bufType.getDimSize(1);
  Type f = bufType.getElementType();
  Value counts = x.experts.getCounts();
  auto countsType = cast<RankedTensorType>(counts.getType());
  Type countType = countsType.getElementType();
  auto index = [&](int64_t v) { return b.getIndexAttr(v); };
  Value result = tensor::EmptyOp::create(b, loc, bufType.getShape(), f);
  AffineMap id = b.getMultiDimIdentityMap(2);
  SmallVector<utils::IteratorType> parallel(2, utils::IteratorType::parallel);
  // All chunks leave first, then each chunk's experts and way back, then
  // the results go in place: the order moe-overlap's scheduling keeps.
  auto offsetsOf = [&](int64_t i) {
    return SmallVector<OpFoldResult>{index(0), index(i * c), index(0)};
  };
  SmallVector<OpFoldResult> sizes = {index(e), index(c), index(h)},
                            strides = {index(1), index(1), index(1)};
  auto chunkType = RankedTensorType::get({e, c, h}, f);
  SmallVector<Value> received, returned;
  for (int64_t i = 0; i < n; ++i) {
    Value chunk = tensor::ExtractSliceOp::create(
        b, loc, chunkType, x.there.getInput(), offsetsOf(i), sizes, strides);
    received.push_back(
        shard::AllToAllOp::create(
            b, loc, RankedTensorType::get({local, sources * c, h}, f),
            x.there.getGridAttr(), x.there.getGridAxesAttr(), chunk,
            x.there.getSplitAxisAttr(), x.there.getConcatAxisAttr())
            .getResult());
  }
  for (int64_t i = 0; i < n; ++i) {
    Value chunkCounts = buildGeneric(
        b, loc,
        buildEmpty(b, loc, tensor::getMixedSizes(b, loc, counts), countType),
        ValueRange{counts}, {id, id}, parallel,
        [&](OpBuilder &nb, Location l, ValueRange a) {
          auto constant = [&](int64_t v) {
            return arith::ConstantIntOp::create(nb, l, countType, v)
                .getResult();
          };
          Value left = arith::SubIOp::create(nb, l, a[0], constant(i * c));
          left = arith::MaxSIOp::create(nb, l, left, constant(0));
          return arith::MinSIOp::create(nb, l, left, constant(c)).getResult();
        });
    IRMapping map;
    map.map(x.experts.getInput(), received[i]);
    map.map(counts, chunkCounts);
    Operation *experts = b.clone(*x.experts, map);
    experts->getResult(0).setType(received[i].getType());
    returned.push_back(shard::AllToAllOp::create(
                           b, loc, chunkType, x.back.getGridAttr(),
                           x.back.getGridAxesAttr(), experts->getResult(0),
                           x.back.getSplitAxisAttr(),
                           x.back.getConcatAxisAttr())
                           .getResult());
  }
  for (int64_t i = 0; i < n; ++i)
    result = tensor::InsertSliceOp::create(b, loc, returned[i], result,
                                           offsetsOf(i), sizes, strides);
  x.back.getResult().replaceAllUsesWith(result);
  x.back.erase();
  x.experts.erase();
  x.there.erase();
}

} // namespace

LogicalResult mlir::moe::verifyOverlapOptions(ArrayRef<std::string> collectives,
                                              int64_t chunks,
                                              std::string &error,
                                              StringRef collectivesName,
                                              StringRef chunksName) {
  for (const std::string &kind : collectives)
    if (!llvm::is_contained(kKinds, kind)) {
      error = llvm::formatv("unknown collective '{0}' in '{1}'; expected "
                            "all-to-all, all-reduce, all-gather or "
                            "reduce-scatter",
                            kind, collectivesName);
      return failure();
    }
  if (chunks < 1) {
    error = llvm::formatv("'{0}' must be >= 1, got {1}", chunksName, chunks);
    return failure();
  }
  if (chunks > 1 && !llvm::is_contained(collectives, "all-to-all")) {
    error = llvm::formatv("'{0}' splits the all-to-alls that '{1}' "
                          "overlaps; add all-to-all to '{1}'",
                          chunksName, collectivesName);
    return failure();
  }
  return success();
}

namespace {

struct MoEOverlapPass : public moe::impl::MoEOverlapPassBase<MoEOverlapPass> {
  using Base::Base;

  void runOnOperation() override {
    std::string error;
    if (failed(verifyOverlapOptions(collectives, chunks, error))) {
      getOperation().emitError() << kPass << ": " << error;
      return signalPassFailure();
    }
    llvm::SmallDenseSet<StringRef> chosen(llvm::from_range, collectives);
    if (chunks > 1) {
      SmallVector<shard::AllToAllOp> exchanges;
      getOperation().walk([&](shard::AllToAllOp op) {
        if (op.getInput().getDefiningOp<DispatchOp>())
          exchanges.push_back(op);
      });
      for (shard::AllToAllOp op : exchanges) {
        std::string why;
        FailureOr<Exchange> x = matchExchange(op, why);
        int64_t rows =
            cast<RankedTensorType>(op.getInput().getType()).getDimSize(1);
        if (succeeded(x) && rows % chunks != 0)
          why = llvm::formatv("chunks = {0} does not divide its {1} rows per "
                              "expert",
                              static_cast<int64_t>(chunks), rows)
                    .str();
        if (!why.empty()) {
          if (remarks)
            op.emitRemark()
                << kPass << ": the exchange is not split into "
                << static_cast<int64_t>(chunks) << " chunks: " << why;
          continue;
        }
        splitExchange(*x, chunks);
      }
    }
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      StringRef kind = kindOf(op);
      if (!kind.empty() && chosen.contains(kind) &&
          !isa<AsyncStartOp>(op->getParentOp()))
        ops.push_back(op);
    });
    // In program order: a layer's dispatch gets the work ahead of its
    // combine.
    SmallVector<AsyncWaitOp> waits;
    for (Operation *op : ops) {
      AsyncWaitOp wait = wrap(op);
      hoistStart(wait.getStart());
      sinkWait(wait);
      waits.push_back(wait);
    }
    for (AsyncWaitOp wait : waits)
      pullIndependentWork(wait);
    // Pairs left with nothing in between share the work of the nearest pair
    // before them in the block that moves comparable bytes (a dispatch for
    // its combine; not the few bytes of the dispatch counts), the pairs that
    // move the most bytes first.
    SmallVector<size_t> empty;
    for (auto [i, wait] : llvm::enumerate(waits))
      if (!hidesCompute(wait))
        empty.push_back(i);
    llvm::stable_sort(empty, [&](size_t a, size_t b) {
      return sizeOf(waits[a]) > sizeOf(waits[b]);
    });
    for (size_t i : empty) {
      AsyncWaitOp wait = waits[i];
      for (AsyncWaitOp earlier : llvm::reverse(ArrayRef(waits).take_front(i))) {
        if (earlier->getBlock() != wait->getBlock() ||
            !earlier->isBeforeInBlock(wait.getStart()) ||
            4 * sizeOf(earlier) < sizeOf(wait) || gapWork(earlier) == 0)
          continue;
        balance(wait, earlier);
        break;
      }
    }
    for (AsyncWaitOp wait : waits) {
      if (hidesCompute(wait))
        continue;
      Operation *op = wait.getStart().getCollective();
      StringRef kind = kindOf(op);
      Location loc = op->getLoc();
      unwrap(wait);
      if (remarks)
        emitRemark(loc) << kPass << ": the " << kind
                        << " stays blocking: no compute that does not need "
                           "its result lies between its input and its first "
                           "use";
    }
  }
};

} // namespace
