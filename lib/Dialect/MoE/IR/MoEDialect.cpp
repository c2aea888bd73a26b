//===- MoEDialect.cpp - moe dialect, enums and attributes -----------------===//
//
// Registers the moe dialect and implements the #moe.plan attribute: its
// syntax, its verifier, and its checks against the ops it is attached over.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"

#include "moe/Dialect/MoE/IR/MoEEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoETypes.cpp.inc"

void MoEDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/Dialect/MoE/IR/MoEAttrs.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "moe/Dialect/MoE/IR/MoETypes.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// PlanAttr
//===----------------------------------------------------------------------===//

namespace {
/// The integer keys of #moe.plan, in printing order.
constexpr llvm::StringLiteral kDegreeKeys[] = {"dp", "tp", "ep", "etp", "pp"};
} // namespace

Attribute PlanAttr::parse(AsmParser &parser, Type) {
  MLIRContext *ctx = parser.getContext();
  SMLoc startLoc = parser.getCurrentLocation();
  int64_t degrees[5] = {1, 1, 1, 1, 1};
  std::optional<int64_t> world;
  SmallVector<DispatchStrategy> dispatch;
  SmallVector<int64_t> dedup;
  bool sawDispatch = false, sawDedup = false;
  llvm::StringSet<> seen;

  auto parseStrategy = [&]() -> ParseResult {
    SMLoc loc = parser.getCurrentLocation();
    StringRef name;
    if (parser.parseKeyword(&name))
      return failure();
    std::optional<DispatchStrategy> strategy = symbolizeDispatchStrategy(name);
    if (!strategy)
      return parser.emitError(loc)
             << "unknown dispatch strategy '" << name
             << "' in #moe.plan; expected 'a2a' or 'slice_allreduce'";
    dispatch.push_back(*strategy);
    return success();
  };

  auto parseEntry = [&]() -> ParseResult {
    SMLoc loc = parser.getCurrentLocation();
    StringRef key;
    if (parser.parseKeyword(&key) || parser.parseEqual())
      return failure();
    if (!seen.insert(key).second)
      return parser.emitError(loc)
             << "duplicate key '" << key << "' in #moe.plan";
    for (auto [i, degreeKey] : llvm::enumerate(kDegreeKeys))
      if (key == degreeKey)
        return parser.parseInteger(degrees[i]);
    if (key == "world") {
      int64_t value;
      if (parser.parseInteger(value))
        return failure();
      world = value;
      return success();
    }
    if (key == "dispatch") {
      sawDispatch = true;
      if (succeeded(parser.parseOptionalLSquare())) {
        if (succeeded(parser.parseOptionalRSquare()))
          return success();
        return failure(parser.parseCommaSeparatedList(parseStrategy) ||
                       parser.parseRSquare());
      }
      return parseStrategy();
    }
    if (key == "dedup") {
      sawDedup = true;
      auto parseFlag = [&]() -> ParseResult {
        return parser.parseInteger(dedup.emplace_back());
      };
      if (succeeded(parser.parseOptionalLSquare())) {
        if (succeeded(parser.parseOptionalRSquare()))
          return success();
        return failure(parser.parseCommaSeparatedList(parseFlag) ||
                       parser.parseRSquare());
      }
      return parseFlag();
    }
    return parser.emitError(loc)
           << "unknown key '" << key
           << "' in #moe.plan; expected one of dp, tp, ep, etp, pp, world, "
              "dispatch, dedup";
  };

  if (parser.parseLess())
    return {};
  if (failed(parser.parseOptionalGreater())) {
    if (parser.parseCommaSeparatedList(parseEntry) || parser.parseGreater())
      return {};
  }
  if (!sawDispatch)
    dispatch.push_back(DispatchStrategy::a2a);
  if (!sawDedup)
    dedup.push_back(0);

  auto emitError = [&] { return parser.emitError(startLoc); };
  // moe_plan_c2: a stated world size must match the degrees.
  if (world) {
    int64_t product = degrees[0] * degrees[1] * degrees[4];
    if (*world != product) {
      emitError() << "#moe.plan world = " << *world
                  << " does not equal dp * tp * pp = " << degrees[0] << " * "
                  << degrees[1] << " * " << degrees[4] << " = " << product;
      return {};
    }
  }
  return PlanAttr::getChecked(emitError, ctx, degrees[0], degrees[1],
                              degrees[2], degrees[3], degrees[4], dispatch,
                              dedup);
}

void PlanAttr::print(AsmPrinter &printer) const {
  int64_t degrees[5] = {getDp(), getTp(), getEp(), getEtp(), getPp()};
  SmallVector<std::string> parts;
  for (auto [key, value] : llvm::zip(kDegreeKeys, degrees))
    if (value != 1)
      parts.push_back((Twine(key) + " = " + Twine(value)).str());
  ArrayRef<DispatchStrategy> dispatch = getDispatch();
  if (dispatch.size() > 1) {
    std::string list = "dispatch = [";
    llvm::raw_string_ostream os(list);
    llvm::interleaveComma(dispatch, os, [&](DispatchStrategy s) {
      os << stringifyDispatchStrategy(s);
    });
    os << "]";
    parts.push_back(list);
  } else if (dispatch.size() == 1 && dispatch[0] != DispatchStrategy::a2a) {
    parts.push_back(
        ("dispatch = " + stringifyDispatchStrategy(dispatch[0])).str());
  }
  ArrayRef<int64_t> dedup = getDedup();
  if (dedup.size() > 1) {
    std::string list = "dedup = [";
    llvm::raw_string_ostream os(list);
    llvm::interleaveComma(dedup, os);
    os << "]";
    parts.push_back(list);
  } else if (dedup.size() == 1 && dedup[0] != 0) {
    parts.push_back("dedup = " + std::to_string(dedup[0]));
  }
  printer << "<";
  llvm::interleaveComma(parts, printer);
  printer << ">";
}

LogicalResult PlanAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t dp, int64_t tp, int64_t ep, int64_t etp,
                               int64_t pp, ArrayRef<DispatchStrategy> dispatch,
                               ArrayRef<int64_t> dedup) {
  // moe_plan_c1, c3, c4, c8 (PlanFacts.h)
  if (std::optional<std::string> why = checkPlanDegrees({dp, tp, ep, etp, pp}))
    return emitError() << *why;
  // moe_plan_c5
  if (dispatch.empty())
    return emitError() << "#moe.plan dispatch list must not be empty";
  // moe_plan_c9
  if (dedup.empty())
    return emitError() << "#moe.plan dedup list must not be empty";
  for (int64_t flag : dedup)
    if (flag != 0 && flag != 1)
      return emitError() << "#moe.plan dedup = " << flag << " must be 0 or 1";
  // moe_plan_c10: dedup rewrites the all-to-all slice_allreduce removes.
  size_t layers = std::max(dispatch.size(), dedup.size());
  for (size_t i = 0; i < layers; ++i) {
    DispatchStrategy d = dispatch[dispatch.size() == 1 ? 0 : i];
    int64_t flag = dedup[dedup.size() == 1 ? 0 : i];
    if (d == DispatchStrategy::slice_allreduce && flag)
      return emitError() << "#moe.plan asks for both dispatch = "
                            "slice_allreduce and dedup = 1"
                         << (layers > 1 ? " on layer " + std::to_string(i)
                                        : std::string())
                         << "; dedup rewrites the all-to-all that "
                            "slice_allreduce removes";
  }
  return success();
}

bool PlanAttr::getDedupForLayer(unsigned layer) const {
  ArrayRef<int64_t> dedup = getDedup();
  return (dedup.size() == 1 ? dedup.front() : dedup[layer]) != 0;
}

PlanAttr PlanAttr::getDegrees(MLIRContext *ctx, int64_t dp, int64_t tp,
                              int64_t ep, int64_t etp, int64_t pp) {
  return get(ctx, dp, tp, ep, etp, pp, {DispatchStrategy::a2a}, {0});
}

PlanAttr PlanAttr::parseOption(MLIRContext *ctx, StringRef text,
                               std::string &error) {
  std::string attr = "#moe.plan<";
  // Entries are split at commas outside brackets, so per-layer lists
  // ("dispatch=[a2a,slice_allreduce]") stay whole.
  SmallVector<StringRef> entries;
  size_t start = 0, depth = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] == '[')
      ++depth;
    else if (i < text.size() && text[i] == ']' && depth)
      --depth;
    else if (i == text.size() || (text[i] == ',' && depth == 0)) {
      if (!text.slice(start, i).trim().empty())
        entries.push_back(text.slice(start, i));
      start = i + 1;
    }
  }
  for (auto [i, entry] : llvm::enumerate(entries)) {
    auto [key, value] = entry.split('=');
    if (!entry.contains('=')) {
      error = ("entry '" + entry.trim() + "' is not key=value").str();
      return {};
    }
    attr += (i ? ", " : "") + key.trim().str() + " = " + value.trim().str();
  }
  attr += ">";
  std::string diagnostics;
  ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &diag) {
    diagnostics += diag.str();
    return success();
  });
  auto plan = dyn_cast_or_null<PlanAttr>(parseAttribute(attr, ctx));
  if (!plan)
    error = diagnostics.empty() ? "invalid plan" : diagnostics;
  return plan;
}

DispatchStrategy PlanAttr::getDispatchForLayer(unsigned layer) const {
  ArrayRef<DispatchStrategy> dispatch = getDispatch();
  return dispatch.size() == 1 ? dispatch.front() : dispatch[layer];
}

//===----------------------------------------------------------------------===//
// WeightAttr, ManifestAttr
//===----------------------------------------------------------------------===//

LogicalResult WeightAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 StringRef name, int64_t offset,
                                 ArrayRef<int64_t> shape, int64_t count,
                                 WeightSplit split, std::optional<int64_t> dim,
                                 std::optional<int64_t> stage) {
  auto fail = [&]() { return emitError() << "weight '" << name << "': "; };
  if (offset < 0)
    return fail() << "offset " << offset << " is negative";
  if (count < 1)
    return fail() << "count " << count << " is not positive";
  if (shape.empty() || llvm::any_of(shape, [](int64_t d) { return d < 1; }))
    return fail() << "shape [" << shape
                  << "] is not a non-empty list of positive sizes";
  bool sliced = split == WeightSplit::tp || split == WeightSplit::etp ||
                split == WeightSplit::experts_etp;
  if (sliced != dim.has_value())
    return fail() << "split = " << stringifyWeightSplit(split)
                  << (sliced ? " needs" : " takes no") << " dim";
  if (dim && (*dim < 0 || *dim >= static_cast<int64_t>(shape.size())))
    return fail() << "dim " << *dim << " is not a dimension of shape [" << shape
                  << "]";
  if (stage && *stage < 0)
    return fail() << "stage " << *stage << " is negative";
  return success();
}

LogicalResult ManifestAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   StringRef arch, int64_t batch, int64_t seq,
                                   int64_t hidden, int64_t vocab, bool tied,
                                   int64_t maxSeq, int64_t microbatches,
                                   int64_t blob, ArrayAttr weights) {
  for (auto [key, value] : {std::pair<StringRef, int64_t>{"batch", batch},
                            {"seq", seq},
                            {"hidden", hidden},
                            {"vocab", vocab},
                            {"microbatches", microbatches}})
    if (value < 1)
      return emitError() << "manifest: " << key << " = " << value
                         << " is not positive";
  if (maxSeq != 0 && maxSeq <= seq)
    return emitError() << "manifest: max_seq = " << maxSeq
                       << " must be 0 (no generation) or greater than seq = "
                       << seq;
  if (blob < 0)
    return emitError() << "manifest: blob = " << blob << " is negative";
  if (!weights)
    return success();
  for (Attribute entry : weights) {
    auto weight = dyn_cast<WeightAttr>(entry);
    if (!weight)
      return emitError() << "manifest: " << entry
                         << " in weights is not a #moe.weight";
    int64_t elements = weight.getCount();
    for (int64_t d : weight.getShape())
      elements *= d;
    if (weight.getOffset() + elements > blob)
      return emitError() << "manifest: weight '" << weight.getName()
                         << "' ends at element "
                         << weight.getOffset() + elements
                         << ", past the blob of " << blob;
  }
  return success();
}

SmallVector<WeightAttr> ManifestAttr::getWeightList() const {
  if (!getWeights())
    return {};
  return llvm::to_vector(getWeights().getAsRange<WeightAttr>());
}

ManifestAttr ManifestAttr::withMicrobatches(int64_t microbatches) const {
  return get(getContext(), getArch(), getBatch(), getSeq(), getHidden(),
             getVocab(), getTied(), getMaxSeq(), microbatches, getBlob(),
             getWeights());
}

ManifestAttr ManifestAttr::withWeights(int64_t blob, ArrayAttr weights) const {
  return get(getContext(), getArch(), getBatch(), getSeq(), getHidden(),
             getVocab(), getTied(), getMaxSeq(), getMicrobatches(), blob,
             weights);
}

//===----------------------------------------------------------------------===//
// Discardable attributes
//===----------------------------------------------------------------------===//

LogicalResult MoEDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attr) {
  if (attr.getName() == getManifestAttrName()) {
    if (!isa<ManifestAttr>(attr.getValue()))
      return op->emitError()
             << "'" << getManifestAttrName()
             << "' must be a #moe.manifest, got " << attr.getValue();
    return success();
  }
  if (attr.getName() == getLayerIndexAttrName() ||
      attr.getName() == getDecoderLayerAttrName() ||
      attr.getName() == getOpGroupAttrName() ||
      attr.getName() == getMicrobatchesAttrName()) {
    auto index = dyn_cast<IntegerAttr>(attr.getValue());
    if (!index || index.getInt() < 0)
      return op->emitError()
             << "'" << attr.getName().getValue()
             << "' must be a non-negative integer, got " << attr.getValue();
    return success();
  }
  if (attr.getName() == getTokensSplitAttrName()) {
    if (!isa<DenseI16ArrayAttr>(attr.getValue()))
      return op->emitError()
             << "'" << getTokensSplitAttrName()
             << "' must be an array<i16> of grid axes, got " << attr.getValue();
    return success();
  }
  if (attr.getName() == getExactProductAttrName()) {
    if (!isa<UnitAttr>(attr.getValue()))
      return op->emitError()
             << "'" << getExactProductAttrName()
             << "' must be a unit attribute, got " << attr.getValue();
    return success();
  }
  if (attr.getName() != getPlanAttrName())
    return op->emitError() << "unknown moe dialect attribute '"
                           << attr.getName().getValue() << "'";
  auto plan = dyn_cast<PlanAttr>(attr.getValue());
  if (!plan)
    return op->emitError() << "'" << getPlanAttrName()
                           << "' must be a #moe.plan attribute, got "
                           << attr.getValue();

  // moe_plan_c6: every expert set divides evenly over the EP group. The
  // router sees all experts before and after partitioning, so it is the op
  // that names the model's expert count.
  WalkResult walk = op->walk([&](Operation *nested) -> WalkResult {
    if (!isa<LayerOp, RouterOp>(nested))
      return WalkResult::advance();
    // Both ops take the router weight [E, H] as operand 1. Nested ops may not
    // be verified yet, so nothing about their types is assumed.
    auto weightType =
        nested->getNumOperands() > 1
            ? dyn_cast<RankedTensorType>(nested->getOperand(1).getType())
            : RankedTensorType();
    if (!weightType || weightType.getRank() < 1)
      return WalkResult::advance();
    int64_t numExperts = weightType.getDimSize(0);
    if (ShapedType::isDynamic(numExperts))
      return WalkResult::advance();
    PlanModelFacts facts;
    facts.experts = numExperts;
    if (std::optional<std::string> why =
            checkPlanFitsModel(facts, plan.getPlanDegrees())) {
      InFlightDiagnostic diag = op->emitError() << "#moe.plan: " << *why;
      diag.attachNote(nested->getLoc())
          << "expert set of this '" << nested->getName() << "'";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  // moe_plan_c7: only while the layers are visible (lowered code has none).
  int64_t numLayers = countPlanLayers(op);
  if (numLayers == 0)
    return success();
  size_t numStrategies = plan.getDispatch().size();
  if (numStrategies > 1 && numStrategies != static_cast<size_t>(numLayers))
    return op->emitError() << "#moe.plan lists " << numStrategies
                           << " dispatch strategies but the operation holds "
                           << numLayers << " moe.layer ops";
  size_t numDedup = plan.getDedup().size();
  if (numDedup > 1 && numDedup != static_cast<size_t>(numLayers))
    return op->emitError() << "#moe.plan lists " << numDedup
                           << " dedup flags but the operation holds "
                           << numLayers << " moe.layer ops";
  return success();
}

int64_t mlir::moe::countPlanLayers(Operation *root) {
  int64_t unindexed = 0;
  llvm::SmallDenseSet<int64_t> indices;
  root->walk([&](Operation *op) {
    if (auto index =
            op->getAttrOfType<IntegerAttr>(MoEDialect::getLayerIndexAttrName()))
      indices.insert(index.getInt());
    else if (isa<LayerOp>(op))
      ++unindexed;
  });
  return unindexed + static_cast<int64_t>(indices.size());
}
