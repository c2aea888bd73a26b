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

/// The manifest kind of a weight of rank `rank` (stacked: dim 0 is the
/// expert) split as `sharding`; an error at `func` naming `name` otherwise.
FailureOr<std::string> manifestKind(func::FuncOp func, StringRef name,
                                    Attribute attr, bool stacked) {
  if (!attr)
    return std::string("tensor");
  FailureOr<ArgSharding> s = readShardingAttr(attr);
  auto unloadable = [&](const Twine &why) -> FailureOr<std::string> {
    return func.emitOpError() << "weight '" << name << "' is split so that no "
                              << "rank can load its part: " << why;
  };
  if (failed(s))
    return unloadable("malformed moe.sharding");
  bool experts = false;
  std::optional<int64_t> sliceDim;
  StringRef group;
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
      group = "etp";
    } else if (s->grid == kDenseGridName && axis == kTpAxis && !sliceDim &&
               !stacked) {
      sliceDim = dim;
      group = "tp";
    } else {
      return unloadable(llvm::formatv("dimension {0} over axis {1} of @{2}",
                                      dim, axis, s->grid)
                            .str());
    }
  }
  if (experts && sliceDim)
    return llvm::formatv("tensor-ep-slice etp {0}", *sliceDim).str();
  if (experts)
    return std::string("tensor-ep");
  if (sliceDim)
    return llvm::formatv("tensor-slice {0} {1}", group, *sliceDim).str();
  return std::string("tensor");
}

struct MoEPackWeightsPass
    : public moe::impl::MoEPackWeightsPassBase<MoEPackWeightsPass> {
  void runOnOperation() override;
  LogicalResult pack(func::FuncOp func, std::string &lines);
};

LogicalResult MoEPackWeightsPass::pack(func::FuncOp func, std::string &lines) {
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
    FailureOr<std::string> kind =
        manifestKind(func, name.getValue(),
                     func.getArgAttr(i, kArgShardingAttrName), stacked);
    if (failed(kind))
      return failure();
    ArrayRef<int64_t> shape = type.getShape();
    int64_t count = stacked ? shape.front() : 1;
    ArrayRef<int64_t> each = stacked ? shape.drop_front() : shape;
    // A weight only one pipeline stage needs is loaded by that stage only.
    if (auto stage = func.getArgAttrOfType<IntegerAttr>(i, kStageAttrName))
      lines += llvm::formatv("stage {0} ", stage.getInt());
    lines +=
        llvm::formatv("{0} {1} {2} {3}", *kind, offset, count, each.size());
    for (int64_t d : each)
      lines += " " + std::to_string(d);
    lines += " " + name.getValue().str() + "\n";

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
  lines = llvm::formatv("blob {0}\n", offset).str() + lines;
  return success();
}

void MoEPackWeightsPass::runOnOperation() {
  ModuleOp module = getOperation();
  // The functions of one model (prefill and decode) read the same weights
  // from one buffer: each lists them, and the lists must agree.
  std::optional<std::string> packed;
  func::FuncOp first;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal() ||
        llvm::none_of(func.getArguments(), [&](BlockArgument arg) {
          return func.getArgAttr(arg.getArgNumber(), kWeightNameAttrName);
        }))
      continue;
    auto manifest =
        module->getAttrOfType<StringAttr>(MoEDialect::getManifestAttrName());
    if (!manifest) {
      func.emitOpError() << "has weight arguments but its module has no '"
                         << MoEDialect::getManifestAttrName()
                         << "' to list them in";
      return signalPassFailure();
    }
    std::string lines;
    if (failed(pack(func, lines)))
      return signalPassFailure();
    if (packed) {
      if (lines != *packed) {
        func.emitOpError()
            << "reads other weights, or the same in another layout, than @"
            << first.getSymName()
            << "; the functions of a module share one weight buffer";
        return signalPassFailure();
      }
      continue;
    }
    packed = lines;
    first = func;
    module->setAttr(
        MoEDialect::getManifestAttrName(),
        StringAttr::get(&getContext(), manifest.getValue().str() + lines));
  }
}

} // namespace
