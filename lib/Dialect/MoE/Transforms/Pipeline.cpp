//===- Pipeline.cpp - layers on pipeline stages, microbatches through them ===//
//
// Implements `moe-pipeline`: the stage placement and the microbatch schedule
// of a plan with pp > 1, on the rank's program for one microbatch that
// moe-partition built (docs/Parallelism.md, "Pipelines").
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEPIPELINEPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The ops of the function body split into the part before the layers, each
/// layer, and the part after (the terminator excluded).
struct Structure {
  SmallVector<Operation *> prologue, epilogue;
  SmallVector<SmallVector<Operation *>> layers;
};

/// A per-layer stack a generation program returns (every layer's keys or
/// values): a tensor.empty [L, ...] (in the prologue, or in layer 0 when
/// moe-partition built it again at the local size) and one insert_slice per
/// layer at offset `layer`. Each stage returns the stack of its own layers.
struct Stack {
  tensor::EmptyOp empty;
  SmallVector<tensor::InsertSliceOp> inserts;
};

constexpr int64_t kPrologue = -1;

class StagePlacer {
public:
  StagePlacer(func::FuncOp func, int64_t pp, int64_t microbatches)
      : func(func), pp(pp), microbatches(microbatches), b(func.getContext()) {}
  LogicalResult run();

private:
  LogicalResult split(Structure &s);
  /// The one value defined by `from` and used by `users` (the hidden
  /// states between two parts); an error naming `what` otherwise.
  FailureOr<Value> handOver(ArrayRef<Operation *> from,
                            ArrayRef<Operation *> users, StringRef what);
  /// The stacks the function returns after its first result.
  LogicalResult findStacks(func::ReturnOp ret, int64_t numLayers,
                           const DenseMap<Operation *, size_t> &partOf,
                           SmallVector<Stack> &stacks);
  /// Weight arguments used by `ops` (in their regions too), in order.
  SetVector<BlockArgument> argumentsOf(ArrayRef<Operation *> ops);

  func::FuncOp func;
  int64_t pp, microbatches;
  OpBuilder b;
  /// The values of the stacks' chains (they cross from layer to layer).
  DenseSet<Value> stackValues;
};

LogicalResult StagePlacer::split(Structure &s) {
  Block &entry = func.getBody().front();
  DenseMap<Operation *, int64_t> layerOf;
  SmallVector<Operation *> ops;
  for (Operation &op : entry.without_terminator())
    ops.push_back(&op);
  int64_t numLayers = 0;
  for (Operation *op : ops)
    if (auto tag = op->getAttrOfType<IntegerAttr>(
            MoEDialect::getDecoderLayerAttrName())) {
      if (tag.getInt() < 0 || tag.getInt() >= 1 << 20)
        return op->emitOpError()
               << "has decoder layer " << tag.getInt() << ", outside [0, 2^20)";
      layerOf[op] = tag.getInt();
      numLayers = std::max(numLayers, tag.getInt() + 1);
    }
  if (numLayers == 0)
    return func.emitOpError()
           << "has no ops tagged '" << MoEDialect::getDecoderLayerAttrName()
           << "'; moe-pipeline places the layers of a model imported from a "
              "config";
  // Untagged ops between the layers used only by one layer belong to it
  // (built for it by a pass that did not tag them).
  Operation *firstTagged = nullptr, *lastTagged = nullptr;
  for (Operation *op : ops)
    if (layerOf.count(op)) {
      firstTagged = firstTagged ? firstTagged : op;
      lastTagged = op;
    }
  for (Operation *op : llvm::reverse(ops)) {
    if (layerOf.count(op) || op->use_empty() ||
        op->isBeforeInBlock(firstTagged) || lastTagged->isBeforeInBlock(op))
      continue;
    std::optional<int64_t> only;
    bool one = true;
    for (Operation *user : op->getUsers()) {
      Operation *top = entry.findAncestorOpInBlock(*user);
      auto it = top ? layerOf.find(top) : layerOf.end();
      if (it == layerOf.end() || (only && *only != it->second)) {
        one = false;
        break;
      }
      only = it->second;
    }
    if (one && only)
      layerOf[op] = *only;
  }
  s.layers.resize(numLayers);
  int64_t seen = kPrologue;
  for (Operation *op : ops) {
    auto it = layerOf.find(op);
    if (it != layerOf.end()) {
      if (it->second < seen)
        return op->emitOpError() << "belongs to decoder layer " << it->second
                                 << " but comes after layer " << seen;
      seen = it->second;
      s.layers[seen].push_back(op);
    } else if (seen == kPrologue) {
      s.prologue.push_back(op);
    } else if (seen == numLayers - 1 || op->use_empty()) {
      if (!op->use_empty())
        s.epilogue.push_back(op);
    } else {
      return op->emitOpError()
             << "lies between decoder layers but belongs to none";
    }
  }
  return success();
}

FailureOr<Value> StagePlacer::handOver(ArrayRef<Operation *> from,
                                       ArrayRef<Operation *> users,
                                       StringRef what) {
  llvm::SmallPtrSet<Operation *, 32> inFrom(from.begin(), from.end());
  SetVector<Value> values;
  for (Operation *user : users)
    user->walk([&](Operation *nested) {
      for (Value v : nested->getOperands())
        if (Operation *def = v.getDefiningOp();
            def && inFrom.count(def) && !stackValues.contains(v))
          values.insert(v);
    });
  if (values.size() != 1)
    return func.emitOpError()
           << "passes " << values.size() << " values " << what
           << "; moe-pipeline hands one (the hidden states) from stage to "
              "stage, so layers that share more (ScMoE's dense/MoE pairs) "
              "must be on one stage";
  return values.front();
}

SetVector<BlockArgument> StagePlacer::argumentsOf(ArrayRef<Operation *> ops) {
  SetVector<BlockArgument> args;
  Block *entry = &func.getBody().front();
  for (Operation *op : ops)
    op->walk([&](Operation *nested) {
      for (Value v : nested->getOperands())
        if (auto arg = dyn_cast<BlockArgument>(v);
            arg && arg.getOwner() == entry)
          args.insert(arg);
    });
  return args;
}

LogicalResult
StagePlacer::findStacks(func::ReturnOp ret, int64_t numLayers,
                        const DenseMap<Operation *, size_t> &partOf,
                        SmallVector<Stack> &stacks) {
  for (unsigned r = 1; r < ret.getNumOperands(); ++r) {
    Stack stack;
    Value v = ret.getOperand(r);
    while (auto insert = v.getDefiningOp<tensor::InsertSliceOp>()) {
      stack.inserts.push_back(insert);
      stackValues.insert(v);
      v = insert.getDest();
    }
    stackValues.insert(v);
    std::reverse(stack.inserts.begin(), stack.inserts.end());
    stack.empty = v.getDefiningOp<tensor::EmptyOp>();
    auto type = stack.empty ? dyn_cast<RankedTensorType>(stack.empty.getType())
                            : RankedTensorType();
    bool ok = type && type.hasStaticShape() && type.getRank() >= 2 &&
              type.getDimSize(0) == numLayers &&
              static_cast<int64_t>(stack.inserts.size()) == numLayers &&
              partOf.lookup(stack.empty) <= 1 &&
              llvm::all_of(stack.empty->getUsers(), [&](Operation *user) {
                return user == stack.inserts.front();
              });
    for (auto [layer, insert] : llvm::enumerate(stack.inserts)) {
      std::optional<int64_t> offset =
          getConstantIntValue(insert.getMixedOffsets()[0]);
      ok = ok && partOf.lookup(insert) == layer + 1 && offset &&
           *offset == static_cast<int64_t>(layer) &&
           insert.getResult().hasOneUse();
    }
    if (!ok)
      return func.emitOpError()
             << "returns #" << r << ", which is not a stack of its layers "
             << "(a tensor.empty [" << numLayers << ", ...] and one "
             << "tensor.insert_slice per layer at the layer's offset); "
             << "moe-pipeline returns the hidden states and such stacks";
    stacks.push_back(stack);
  }
  return success();
}

LogicalResult StagePlacer::run() {
  Structure s;
  if (failed(split(s)))
    return failure();
  int64_t numLayers = s.layers.size();
  if (numLayers % pp != 0)
    return func.emitOpError()
           << "has " << numLayers << " decoder layers, which pp = " << pp
           << " does not divide";
  int64_t perStage = numLayers / pp;
  Block &entry = func.getBody().front();
  auto ret = cast<func::ReturnOp>(entry.getTerminator());
  if (ret.getNumOperands() < 1 || entry.getNumArguments() < 1)
    return func.emitOpError() << "must take the token ids first and return "
                                 "the hidden states first to be placed on "
                                 "stages";

  auto staticTensor = [](Type t) {
    auto tensor = dyn_cast<RankedTensorType>(t);
    return tensor && tensor.hasStaticShape() && tensor.getRank() >= 1;
  };
  if (!staticTensor(entry.getArgument(0).getType()) ||
      !staticTensor(ret.getOperand(0).getType()) ||
      cast<RankedTensorType>(entry.getArgument(0).getType()).getDimSize(0) !=
          cast<RankedTensorType>(ret.getOperand(0).getType()).getDimSize(0))
    return func.emitOpError()
           << "must take the token ids and return the hidden states as static "
              "tensors with the sequences first, to be run by microbatches";

  // Across a stage boundary, a part uses only the one value the part before
  // it hands on; layers of one stage may share more (ScMoE's shortcut from
  // a dense layer to the next MoE layer).
  SmallVector<ArrayRef<Operation *>> ordered;
  ordered.push_back(s.prologue);
  for (auto &layer : s.layers)
    ordered.push_back(layer);
  Operation *retOp = ret.getOperation();
  ordered.push_back(s.epilogue.empty() ? ArrayRef<Operation *>(retOp)
                                       : ArrayRef<Operation *>(s.epilogue));
  DenseMap<Operation *, size_t> partOf;
  for (size_t i = 0; i < ordered.size(); ++i)
    for (Operation *op : ordered[i])
      partOf[op] = i;
  SmallVector<Stack> stacks;
  if (failed(findStacks(ret, numLayers, partOf, stacks)))
    return failure();
  // Parts: the prologue (0), layers 1..L, the final part (L + 1). A stage
  // boundary lies before part i when i - 1 is a multiple of perStage.
  auto atStageBoundary = [&](size_t i) { return (i - 1) % perStage == 0; };
  auto sameStage = [&](size_t i, size_t j) {
    return i >= 1 && j >= 1 && i <= (size_t)numLayers &&
           j <= (size_t)numLayers && (i - 1) / perStage == (j - 1) / perStage;
  };
  SmallVector<Value> handed(ordered.size());
  for (size_t i = 1; i < ordered.size(); ++i) {
    if (!atStageBoundary(i))
      continue;
    FailureOr<Value> v = handOver(ordered[i - 1], ordered[i],
                                  i == 1 ? "into layer 0" : "between parts");
    if (failed(v))
      return failure();
    handed[i] = *v;
  }
  for (size_t i = 0; i < ordered.size(); ++i)
    for (Operation *op : ordered[i]) {
      WalkResult walk = op->walk([&](Operation *nested) {
        for (Value v : nested->getOperands()) {
          Operation *def = v.getDefiningOp();
          auto it = def ? partOf.find(def) : partOf.end();
          if (it == partOf.end() || it->second == i ||
              sameStage(i, it->second) ||
              (it->second + 1 == i &&
               (v == handed[i] || stackValues.contains(v))))
            continue;
          nested->emitOpError()
              << "uses a value of another part of the model than the one "
                 "before it; moe-pipeline hands only the hidden states from "
                 "stage to stage";
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (walk.wasInterrupted())
        return failure();
    }

  // What each part hands to the next: into layer 0, out of a stage, into
  // the final part (parts: prologue, layers 1..L, final part).
  std::optional<Value> input = handed[1], output = handed[perStage + 1],
                       last = handed[numLayers + 1];
  if (input->getType() != output->getType() ||
      output->getType() != last->getType())
    return func.emitOpError()
           << "hands values of different types between its parts ("
           << input->getType() << ", " << output->getType() << ", "
           << last->getType() << "); a stage sends what the next receives";

  // Every stage runs layers 0 .. K-1's program on its own layers' weights.
  for (int64_t layer = perStage; layer < numLayers; ++layer) {
    SetVector<BlockArgument> mine = argumentsOf(s.layers[layer]);
    SetVector<BlockArgument> model = argumentsOf(s.layers[layer % perStage]);
    bool same = mine.size() == model.size();
    for (size_t i = 0; same && i < mine.size(); ++i)
      same = mine[i].getType() == model[i].getType();
    if (!same)
      return func.emitOpError()
             << "decoder layer " << layer << " differs from layer "
             << layer % perStage
             << " (its weights); the stages of a pipeline share one program";
  }
  for (int64_t j = 0; j < perStage; ++j)
    for (BlockArgument arg : argumentsOf(s.layers[j])) {
      auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                    kWeightNameAttrName);
      if (!name)
        continue;
      std::string key = llvm::formatv("layers.{0}.", j).str();
      size_t at = name.getValue().find(key);
      if (at == StringRef::npos)
        return func.emitOpError()
               << "weight '" << name.getValue() << "' of decoder layer " << j
               << " does not name its layer ('" << key << "')";
      std::string renamed = name.getValue().str();
      renamed.replace(
          at, key.size(),
          llvm::formatv("layers.{{stage*{0}+{1}}.", perStage, j).str());
      func.setArgAttr(arg.getArgNumber(), kWeightNameAttrName,
                      b.getStringAttr(renamed));
    }
  // A weight only the prologue or only the epilogue reads is loaded by that
  // stage alone.
  SetVector<BlockArgument> inLayers;
  for (auto &layer : s.layers)
    inLayers.insert_range(argumentsOf(layer));
  SetVector<BlockArgument> embedArgs = argumentsOf(s.prologue),
                           normArgs = argumentsOf(s.epilogue);
  for (auto [args, other, stage] :
       {std::make_tuple(&embedArgs, &normArgs, int64_t(0)),
        std::make_tuple(&normArgs, &embedArgs, pp - 1)})
    for (BlockArgument arg : *args)
      if (func.getArgAttr(arg.getArgNumber(), kWeightNameAttrName) &&
          !inLayers.contains(arg) && !other->contains(arg))
        func.setArgAttr(arg.getArgNumber(), kStageAttrName,
                        b.getI64IntegerAttr(stage));

  // The schedule.
  Location loc = func.getLoc();
  BlockArgument ids = entry.getArgument(0);
  auto idsType = cast<RankedTensorType>(ids.getType());
  auto outType = cast<RankedTensorType>(ret.getOperand(0).getType());
  auto hiddenType = cast<RankedTensorType>(output->getType());
  int64_t rows = idsType.getDimSize(0);
  // Arguments with a row per sequence (the ids, a decode step's positions:
  // role "batch", rows first; its caches: "kv-cache", rows second) take all
  // microbatches' rows; each microbatch reads its own.
  SmallVector<std::pair<BlockArgument, int64_t>> rowArgs;
  for (BlockArgument arg : entry.getArguments()) {
    auto role = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  kParallelRoleAttrName);
    int64_t dim = arg == ids                      ? 0
                  : !role                         ? -1
                  : role.getValue() == "batch"    ? 0
                  : role.getValue() == "kv-cache" ? 1
                                                  : -1;
    if (dim < 0)
      continue;
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!staticTensor(type) || type.getRank() <= dim ||
        type.getDimSize(dim) != rows)
      return func.emitOpError()
             << "argument #" << arg.getArgNumber() << " (" << arg.getType()
             << ") does not have the " << rows
             << " sequences of the token ids in dimension " << dim;
    if (role && role.getValue() == "kv-cache" &&
        type.getDimSize(0) != numLayers)
      return func.emitOpError()
             << "argument #" << arg.getArgNumber() << " is a cache of "
             << type.getDimSize(0) << " layers, not " << numLayers;
    rowArgs.push_back({arg, dim});
  }
  // Everything up to here is the old body.
  Operation *lastOld = ret->getPrevNode();
  b.setInsertionPoint(ret);
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  auto grid = FlatSymbolRefAttr::get(func.getContext(), kDenseGridName);
  auto ppAxis = b.getDenseI16ArrayAttr({kPpAxis});
  auto dynamicPeer = b.getDenseI64ArrayAttr({ShapedType::kDynamic});
  Value stage = shard::ProcessMultiIndexOp::create(
                    b, loc, kDenseGridName, ArrayRef<shard::GridAxis>{kPpAxis})
                    .getResult()[0];
  auto isStage = [&](int64_t v) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, stage,
                                 index(v))
        .getResult();
  };
  auto zerosLike = [&](ArrayRef<int64_t> shape, Type element) {
    SmallVector<OpFoldResult> sizes;
    for (int64_t d : shape)
      sizes.push_back(b.getIndexAttr(d));
    return buildZeros(b, loc, sizes, element);
  };
  // `shape` with `dim` scaled: all microbatches' rows; with `layers`, a
  // stack's first dimension is the stage's layers.
  auto allRows = [&](ArrayRef<int64_t> shape, int64_t dim, int64_t layers = 0) {
    SmallVector<int64_t> all(shape);
    all[dim] *= microbatches;
    if (layers)
      all[0] = layers;
    return all;
  };
  SmallVector<RankedTensorType> stackTypes; // one microbatch, one stage
  for (Stack &stack : stacks) {
    SmallVector<int64_t> shape(stack.empty.getType().getShape());
    shape[0] = perStage;
    stackTypes.push_back(
        RankedTensorType::get(shape, stack.empty.getType().getElementType()));
  }
  SmallVector<Value> inits = {
      zerosLike(allRows(outType.getShape(), 0), outType.getElementType())};
  for (RankedTensorType type : stackTypes)
    inits.push_back(
        zerosLike(allRows(type.getShape(), 1), type.getElementType()));
  auto loop = scf::ForOp::create(b, loc, index(0), index(microbatches),
                                 index(1), inits);
  b.setInsertionPointToStart(loop.getBody());
  Value first =
      arith::MulIOp::create(b, loc, loop.getInductionVar(), index(rows));
  // The microbatch's rows (dimension `dim`) of a tensor of all rows:
  // offsets, sizes and strides of a slice of shape `type`.
  struct Rows {
    SmallVector<OpFoldResult> offsets, sizes, strides;
  };
  auto rowsOf = [&](RankedTensorType type, int64_t dim) {
    Rows r;
    for (int64_t d : type.getShape()) {
      r.offsets.push_back(b.getIndexAttr(0));
      r.sizes.push_back(b.getIndexAttr(d));
      r.strides.push_back(b.getIndexAttr(1));
    }
    r.offsets[dim] = first;
    return r;
  };
  IRMapping map;
  for (auto [arg, dim] : rowArgs) {
    auto type = cast<RankedTensorType>(arg.getType());
    bool cache = dim == 1;
    SmallVector<int64_t> shape(type.getShape());
    if (cache)
      shape[0] = perStage;
    auto mbType = RankedTensorType::get(shape, type.getElementType());
    Rows r = rowsOf(mbType, dim);
    map.map(arg, tensor::ExtractSliceOp::create(b, loc, mbType, arg, r.offsets,
                                                r.sizes, r.strides));
  }
  // The stage's own stacks, and the prologue without their tensor.empty.
  llvm::SmallPtrSet<Operation *, 4> stackEmpties;
  for (auto [stack, type] : llvm::zip_equal(stacks, stackTypes)) {
    stackEmpties.insert(stack.empty);
    map.map(stack.empty.getResult(),
            tensor::EmptyOp::create(b, loc, type.getShape(),
                                    type.getElementType()));
  }
  // Stage 0 runs the prologue; the others receive.
  auto in = scf::IfOp::create(b, loc, TypeRange{input->getType()}, isStage(0),
                              /*withElseRegion=*/true);
  b.setInsertionPointToStart(in.thenBlock());
  for (Operation *op : s.prologue)
    if (!stackEmpties.contains(op))
      b.clone(*op, map);
  scf::YieldOp::create(b, loc, map.lookup(*input));
  b.setInsertionPointToStart(in.elseBlock());
  auto inType = cast<RankedTensorType>(input->getType());
  Value received = shard::RecvOp::create(
      b, loc, inType, grid, ppAxis,
      buildEmpty(b, loc, tensor::getMixedSizes(b, loc, map.lookup(*input)),
                 inType.getElementType()),
      dynamicPeer, ValueRange{arith::SubIOp::create(b, loc, stage, index(1))});
  scf::YieldOp::create(b, loc, received);
  b.setInsertionPointAfter(in);
  // The stage's layers; a stack's insert is built again on the stage's
  // stack (its type changes).
  map.map(*input, in.getResult(0));
  for (int64_t j = 0; j < perStage; ++j)
    for (Operation *op : s.layers[j]) {
      if (stackEmpties.contains(op))
        continue;
      auto insert = dyn_cast<tensor::InsertSliceOp>(op);
      if (!insert || !stackValues.contains(insert.getResult())) {
        b.clone(*op, map);
        continue;
      }
      map.map(insert.getResult(),
              tensor::InsertSliceOp::create(
                  b, insert.getLoc(), map.lookup(insert.getSource()),
                  map.lookup(insert.getDest()), insert.getMixedOffsets(),
                  insert.getMixedSizes(), insert.getMixedStrides()));
    }
  Value stageOut = map.lookup(*output);
  // The last stage runs the epilogue; the others send.
  auto mbOutType = outType;
  auto out = scf::IfOp::create(b, loc, TypeRange{mbOutType}, isStage(pp - 1),
                               /*withElseRegion=*/true);
  b.setInsertionPointToStart(out.thenBlock());
  map.map(*last, stageOut);
  for (Operation *op : s.epilogue)
    b.clone(*op, map);
  scf::YieldOp::create(b, loc, map.lookupOrDefault(ret.getOperand(0)));
  b.setInsertionPointToStart(out.elseBlock());
  shard::SendOp::create(
      b, loc, hiddenType, grid, ppAxis, stageOut, dynamicPeer,
      ValueRange{arith::AddIOp::create(b, loc, stage, index(1))});
  scf::YieldOp::create(
      b, loc, zerosLike(mbOutType.getShape(), mbOutType.getElementType()));
  b.setInsertionPointAfter(out);
  Rows outRows = rowsOf(outType, 0);
  SmallVector<Value> yields = {tensor::InsertSliceOp::create(
      b, loc, out.getResult(0), loop.getRegionIterArgs()[0], outRows.offsets,
      outRows.sizes, outRows.strides)};
  for (auto [i, stack] : llvm::enumerate(stacks)) {
    Rows r = rowsOf(stackTypes[i], 1);
    yields.push_back(tensor::InsertSliceOp::create(
        b, loc, map.lookup(stack.inserts[perStage - 1].getResult()),
        loop.getRegionIterArgs()[i + 1], r.offsets, r.sizes, r.strides));
  }
  scf::YieldOp::create(b, loc, yields);

  // The old body goes; the other stages' weights with it.
  b.setInsertionPoint(ret);
  func::ReturnOp::create(b, loc, loop.getResults());
  SmallVector<Operation *> old;
  for (Operation &op : entry) {
    old.push_back(&op);
    if (&op == lastOld)
      break;
  }
  old.push_back(ret);
  for (Operation *op : llvm::reverse(old)) {
    op->dropAllUses();
    op->erase();
  }
  llvm::BitVector unused(func.getNumArguments());
  for (BlockArgument arg : entry.getArguments())
    if (arg.use_empty() &&
        func.getArgAttr(arg.getArgNumber(), kWeightNameAttrName))
      unused.set(arg.getArgNumber());
  for (auto [arg, dim] : rowArgs) {
    auto type = cast<RankedTensorType>(arg.getType());
    arg.setType(RankedTensorType::get(
        allRows(type.getShape(), dim, dim == 1 ? perStage : 0),
        type.getElementType()));
  }
  if (failed(func.eraseArguments(unused)))
    return func.emitOpError() << "could not remove the other stages' weights";
  func.setFunctionType(FunctionType::get(
      func.getContext(), entry.getArgumentTypes(), loop.getResultTypes()));
  return success();
}

struct MoEPipelinePass
    : public moe::impl::MoEPipelinePassBase<MoEPipelinePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan = module->getAttrOfType<PlanAttr>(MoEDialect::getPlanAttrName());
    if (!plan || plan.getPp() == 1)
      return;
    int64_t microbatches = 1;
    if (auto attr = module->getAttrOfType<IntegerAttr>(
            MoEDialect::getMicrobatchesAttrName()))
      microbatches = attr.getInt();
    if (microbatches < 1) {
      module.emitError() << "moe-pipeline: " << microbatches << " microbatches";
      return signalPassFailure();
    }
    // For reading the program (--print-manifest); the runtime does not need
    // it.
    if (auto manifest = module->getAttrOfType<ManifestAttr>(
            MoEDialect::getManifestAttrName()))
      module->setAttr(MoEDialect::getManifestAttrName(),
                      manifest.withMicrobatches(microbatches));
    for (auto func : module.getOps<func::FuncOp>()) {
      bool tagged = false;
      func.walk([&](Operation *op) {
        tagged |= op->hasAttr(MoEDialect::getDecoderLayerAttrName());
      });
      if (!tagged)
        continue;
      if (failed(StagePlacer(func, plan.getPp(), microbatches).run()))
        return signalPassFailure();
    }
  }
};

} // namespace
