//===- PackWeights.cpp - weight arguments -> one buffer + manifest --------===//
//
// Implements `moe-pack-weights`: the weights a rank loads are derived from
// its function's arguments — their (local) types and the shardings
// moe-partition recorded — rather than stated by the importer.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEPACKWEIGHTSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Which part of a weight (stacked: dim 0 is the expert) a rank loads when
/// it is split as `sharding`, and the sliced dimension of one tensor; an
/// error at `func` naming `name` otherwise.
FailureOr<std::pair<WeightSplit, std::optional<int64_t>>>
loadedPart(func::FuncOp func, StringRef name, Attribute attr, bool stacked) {
  using Part = std::pair<WeightSplit, std::optional<int64_t>>;
  if (!attr)
    return Part{WeightSplit::whole, std::nullopt};
  FailureOr<ArgSharding> s = readShardingAttr(attr);
  auto unloadable = [&](const Twine &why) -> FailureOr<Part> {
    return func.emitOpError() << "weight '" << name << "' is split so that no "
                              << "rank can load its part: " << why;
  };
  if (failed(s))
    return unloadable("malformed moe.sharding");
  bool experts = false;
  std::optional<int64_t> sliceDim;
  WeightSplit group = WeightSplit::whole;
  for (auto [dim, axes] : llvm::enumerate(s->splitAxes)) {
    if (axes.empty())
      continue;
    if (axes.size() != 1)
      return unloadable("a dimension split over several axes");
    int16_t axis = axes[0];
    if (s->grid == kExpertGridName && stacked && dim == 0 && axis == kEpAxis) {
      experts = true;
    } else if (s->grid == kExpertGridName && axis == kEtpAxis && !sliceDim &&
               !(stacked && dim == 0)) {
      sliceDim = stacked ? dim - 1 : dim;
      group = WeightSplit::etp;
    } else if (s->grid == kDenseGridName && axis == kTpAxis && !sliceDim &&
               !stacked) {
      sliceDim = dim;
      group = WeightSplit::tp;
    } else {
      return unloadable(llvm::formatv("dimension {0} over axis {1} of @{2}",
                                      dim, axis, s->grid)
                            .str());
    }
  }
  if (experts)
    return Part{sliceDim ? WeightSplit::experts_etp : WeightSplit::experts,
                sliceDim};
  return Part{group, sliceDim};
}

struct MoEPackWeightsPass
    : public moe::impl::MoEPackWeightsPassBase<MoEPackWeightsPass> {
  void runOnOperation() override;
  /// Packs `func`'s weight arguments into one buffer argument; `weights`
  /// gets their #moe.weight entries, `size` the buffer's elements.
  LogicalResult pack(func::FuncOp func, SmallVectorImpl<Attribute> &weights,
                     int64_t &size);
};

LogicalResult MoEPackWeightsPass::pack(func::FuncOp func,
                                       SmallVectorImpl<Attribute> &weights,
                                       int64_t &size) {
  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  Block &entry = func.getBody().front();
  Type f32 = b.getF32Type();
  // Views are made against a placeholder buffer, retyped at the end.
  if (failed(func.insertArgument(
          func.getNumArguments(),
          RankedTensorType::get({ShapedType::kDynamic}, f32), {},
          func.getLoc())))
    return func.emitOpError() << "could not add the weight buffer argument";
  BlockArgument blob = entry.getArguments().back();
  int64_t offset = 0;
  llvm::BitVector erase(entry.getNumArguments());
  SmallVector<tensor::ExtractSliceOp> views;
  for (BlockArgument arg : entry.getArguments().drop_back()) {
    unsigned i = arg.getArgNumber();
    auto name = func.getArgAttrOfType<StringAttr>(i, kWeightNameAttrName);
    if (!name)
      continue;
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape() || !type.getElementType().isF32() ||
        type.getRank() < 1)
      return func.emitOpError()
             << "weight '" << name.getValue() << "' has type " << arg.getType()
             << "; the runtime loads static f32 tensors";
    bool stacked = name.getValue().contains("{}");
    auto part = loadedPart(func, name.getValue(),
                           func.getArgAttr(i, kArgShardingAttrName), stacked);
    if (failed(part))
      return failure();
    ArrayRef<int64_t> shape = type.getShape();
    int64_t count = stacked ? shape.front() : 1;
    ArrayRef<int64_t> each = stacked ? shape.drop_front() : shape;
    // A weight only one pipeline stage needs is loaded by that stage only.
    std::optional<int64_t> stage;
    if (auto attr = func.getArgAttrOfType<IntegerAttr>(i, kStageAttrName))
      stage = attr.getInt();
    weights.push_back(WeightAttr::get(&getContext(), name.getValue(), offset,
                                      each, count, part->first, part->second,
                                      stage));

    int64_t elements = type.getNumElements();
    auto flat = RankedTensorType::get({elements}, f32);
    auto view = tensor::ExtractSliceOp::create(
        b, arg.getLoc(), flat, blob,
        ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(elements)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    views.push_back(view);
    Value replacement = view;
    if (type.getRank() > 1) {
      ReassociationIndices all;
      for (int64_t d = 0; d < type.getRank(); ++d)
        all.push_back(d);
      replacement = tensor::ExpandShapeOp::create(
          b, arg.getLoc(), type, view, ArrayRef<ReassociationIndices>{all});
    }
    arg.replaceAllUsesWith(replacement);
    erase.set(i);
    offset += elements;
  }
  blob.setType(RankedTensorType::get({offset}, f32));
  for (tensor::ExtractSliceOp view : views)
    view.getSourceMutable().assign(blob);
  if (failed(func.eraseArguments(erase)))
    return func.emitOpError() << "could not remove its weight arguments";
  func.setFunctionType(FunctionType::get(
      &getContext(), entry.getArgumentTypes(), func.getResultTypes()));
  // The remaining arguments keep no moe.* attributes (they have no meaning
  // past partitioning).
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    for (NamedAttribute attr : llvm::to_vector(
             func.getArgAttrDict(i) ? func.getArgAttrDict(i).getValue()
                                    : ArrayRef<NamedAttribute>()))
      if (attr.getName().getValue().starts_with("moe."))
        func.removeArgAttr(i, attr.getName());
  size = offset;
  return success();
}

void MoEPackWeightsPass::runOnOperation() {
  ModuleOp module = getOperation();
  // The functions of one model (prefill and decode) read the same weights
  // from one buffer: each lists them, and the lists must agree.
  std::optional<ArrayAttr> packed;
  func::FuncOp first;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal() ||
        llvm::none_of(func.getArguments(), [&](BlockArgument arg) {
          return func.getArgAttr(arg.getArgNumber(), kWeightNameAttrName);
        }))
      continue;
    auto manifest =
        module->getAttrOfType<ManifestAttr>(MoEDialect::getManifestAttrName());
    if (!manifest) {
      func.emitOpError() << "has weight arguments but its module has no '"
                         << MoEDialect::getManifestAttrName()
                         << "' to list them in";
      return signalPassFailure();
    }
    SmallVector<Attribute> weights;
    int64_t size = 0;
    if (failed(pack(func, weights, size)))
      return signalPassFailure();
    ArrayAttr list = ArrayAttr::get(&getContext(), weights);
    if (packed) {
      if (list != *packed) {
        func.emitOpError()
            << "reads other weights, or the same in another layout, than @"
            << first.getSymName()
            << "; the functions of a module share one weight buffer";
        return signalPassFailure();
      }
      continue;
    }
    packed = list;
    first = func;
    module->setAttr(MoEDialect::getManifestAttrName(),
                    manifest.withWeights(size, list));
  }
}

} // namespace
