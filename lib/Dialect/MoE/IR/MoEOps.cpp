//===- MoEOps.cpp - moe dialect operations and verifiers ------------------===//
//
// Shape rules of the moe ops. They are free functions over types so that the
// composite moe.layer checks exactly what the four ops it expands to check.
// Each rule carries the constraint id used in MoEOps.td and in invalid.mlir.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

namespace {
/// Prints a dimension the way a tensor type does: a number or `?`.
struct Dim {
  int64_t value;
};
llvm::raw_ostream &operator<<(llvm::raw_ostream &os, Dim d) {
  if (ShapedType::isDynamic(d.value))
    return os << "?";
  return os << d.value;
}
Diagnostic &operator<<(Diagnostic &diag, Dim d) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << d;
  return diag << s;
}
} // namespace

/// Two dimensions are compatible unless both are static and differ.
static bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Checks that `type` has `rank`; `layout` names the dimensions (e.g. "[T,
/// H]").
static LogicalResult checkRank(Operation *op, StringRef name,
                               RankedTensorType type, int64_t rank,
                               StringRef layout) {
  if (type.getRank() == rank)
    return success();
  return op->emitOpError() << "expects '" << name << "' to be a " << rank
                           << "-D tensor " << layout << ", got " << type;
}

/// Checks that dimension `aDim` of `a` matches dimension `bDim` of `b`.
static LogicalResult checkSameDim(Operation *op, StringRef what, StringRef a,
                                  RankedTensorType aType, unsigned aDim,
                                  StringRef b, RankedTensorType bType,
                                  unsigned bDim) {
  int64_t x = aType.getDimSize(aDim), y = bType.getDimSize(bDim);
  if (dimsCompatible(x, y))
    return success();
  return op->emitOpError() << "expects " << what << " of '" << a << "' (dim "
                           << aDim << ") to match '" << b << "' (dim " << bDim
                           << "): " << Dim{x} << " vs " << Dim{y};
}

static LogicalResult checkElementType(Operation *op, StringRef a,
                                      RankedTensorType aType, StringRef b,
                                      RankedTensorType bType) {
  if (aType.getElementType() == bType.getElementType())
    return success();
  return op->emitOpError() << "expects '" << a << "' to have the element type "
                           << "of '" << b << "': " << aType.getElementType()
                           << " vs " << bType.getElementType();
}

/// Checks a `[T, k]` routing tensor against the token count of `tokens` and k.
static LogicalResult checkRoutingTensor(Operation *op, StringRef name,
                                        RankedTensorType type,
                                        StringRef tokensName,
                                        RankedTensorType tokens, int64_t k) {
  if (failed(checkRank(op, name, type, 2, "[T, k]")) ||
      failed(checkSameDim(op, "the token count", name, type, 0, tokensName,
                          tokens, 0)))
    return failure();
  if (type.getDimSize(1) != k)
    return op->emitOpError() << "expects '" << name << "' to have k = " << k
                             << " columns, got " << Dim{type.getDimSize(1)};
  return success();
}

/// Router rules shared by moe.router and moe.layer.
static LogicalResult verifyRouting(Operation *op, RankedTensorType tokens,
                                   RankedTensorType weight,
                                   RankedTensorType bias, int64_t k) {
  // moe_router_c1
  if (failed(checkRank(op, "tokens", tokens, 2, "[T, H]")) ||
      failed(checkRank(op, "weight", weight, 2, "[E, H]")))
    return failure();
  // moe_router_c2
  if (failed(checkSameDim(op, "the hidden size", "weight", weight, 1, "tokens",
                          tokens, 1)))
    return failure();
  // moe_router_c3
  int64_t numExperts = weight.getDimSize(0);
  if (ShapedType::isDynamic(numExperts))
    return op->emitOpError()
           << "expects a static number of experts (dim 0 of 'weight'), got "
           << weight;
  // moe_router_c4
  if (k < 1)
    return op->emitOpError() << "expects k >= 1, got k = " << k;
  if (k > numExperts)
    return op->emitOpError()
           << "expects k <= the number of experts, got k = " << k
           << " vs E = " << numExperts;
  // moe_router_c5
  if (bias) {
    if (failed(checkRank(op, "bias", bias, 1, "[E]")) ||
        failed(checkSameDim(op, "the number of experts", "bias", bias, 0,
                            "weight", weight, 0)))
      return failure();
  }
  // moe_router_c7
  if (failed(checkElementType(op, "weight", weight, "tokens", tokens)) ||
      (bias && failed(checkElementType(op, "bias", bias, "tokens", tokens))))
    return failure();
  return success();
}

static bool isGated(Activation activation) {
  return activation == Activation::silu_glu;
}

/// Expert weight rules shared by moe.experts and moe.layer. `expected` is the
/// tensor whose dims 0 and last give E and H (the expert buffer or, for the
/// layer, the router weight).
static LogicalResult verifyExpertWeights(
    Operation *op, int64_t numExperts, RankedTensorType reference,
    StringRef referenceName, unsigned referenceHiddenDim, RankedTensorType gate,
    RankedTensorType up, RankedTensorType down, Activation activation) {
  // moe_experts_c2, moe_experts_c3
  if (failed(checkRank(op, "up", up, 3, "[E, F, H]")) ||
      failed(checkRank(op, "down", down, 3, "[E, H, F]")))
    return failure();
  // moe_experts_c4, moe_experts_c5
  if (isGated(activation) && !gate)
    return op->emitOpError()
           << "expects a 'gate' weight for the gated "
           << "activation '" << stringifyActivation(activation) << "'";
  if (!isGated(activation) && gate)
    return op->emitOpError() << "expects no 'gate' weight for the activation '"
                             << stringifyActivation(activation) << "'";
  if (gate && gate != up)
    return op->emitOpError()
           << "expects 'gate' to have the type of 'up': " << gate << " vs "
           << up;
  // moe_experts_c6
  for (auto [name, type] :
       {std::pair<StringRef, RankedTensorType>{"up", up}, {"down", down}}) {
    if (!dimsCompatible(type.getDimSize(0), numExperts))
      return op->emitOpError()
             << "expects '" << name << "' to hold " << Dim{numExperts}
             << " experts (dim 0), got " << Dim{type.getDimSize(0)};
  }
  if (failed(checkSameDim(op, "the hidden size", "up", up, 2, referenceName,
                          reference, referenceHiddenDim)) ||
      failed(checkSameDim(op, "the hidden size", "down", down, 1, referenceName,
                          reference, referenceHiddenDim)) ||
      failed(checkSameDim(op, "the intermediate size", "down", down, 2, "up",
                          up, 1)))
    return failure();
  // moe_experts_c7
  if (failed(checkElementType(op, "up", up, referenceName, reference)) ||
      failed(checkElementType(op, "down", down, referenceName, reference)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::verify() {
  RankedTensorType tokens = getTokens().getType();
  RankedTensorType bias = getBias() ? getBias().getType() : nullptr;
  if (failed(verifyRouting(*this, tokens, getWeight().getType(), bias, getK())))
    return failure();
  // moe_router_c6
  if (failed(checkRoutingTensor(*this, "weights", getWeights().getType(),
                                "tokens", tokens, getK())) ||
      failed(checkRoutingTensor(*this, "ids", getIds().getType(), "tokens",
                                tokens, getK())))
    return failure();
  // moe_router_c7
  return checkElementType(*this, "weights", getWeights().getType(), "tokens",
                          tokens);
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  RankedTensorType tokens = getTokens().getType();
  RankedTensorType ids = getIds().getType();
  RankedTensorType buffer = getBuffer().getType();
  // moe_dispatch_c1, moe_dispatch_c2
  if (failed(checkRank(*this, "tokens", tokens, 2, "[T, H]")) ||
      failed(checkRank(*this, "ids", ids, 2, "[T, k]")) ||
      failed(checkSameDim(*this, "the token count", "ids", ids, 0, "tokens",
                          tokens, 0)))
    return failure();
  int64_t k = ids.getDimSize(1);
  if (ShapedType::isDynamic(k))
    return emitOpError() << "expects a static k (dim 1 of 'ids'), got " << ids;
  // moe_dispatch_c3
  if (failed(checkRank(*this, "buffer", buffer, 3, "[E, C, H]")) ||
      failed(checkSameDim(*this, "the hidden size", "buffer", buffer, 2,
                          "tokens", tokens, 1)))
    return failure();
  int64_t numExperts = getNumExperts(), capacity = getCapacity();
  // moe_dispatch_c4
  if (ShapedType::isDynamic(numExperts) || ShapedType::isDynamic(capacity))
    return emitOpError() << "expects a static number of experts and capacity "
                         << "(dims 0 and 1 of 'buffer'), got " << buffer;
  if (numExperts < 1)
    return emitOpError() << "expects at least one expert, got E = "
                         << numExperts;
  if (capacity < 1)
    return emitOpError() << "expects capacity >= 1, got C = " << capacity;
  // moe_dispatch_c5
  if (k > numExperts)
    return emitOpError() << "expects k <= the number of experts, got k = " << k
                         << " vs E = " << numExperts;
  // moe_dispatch_c6
  if (failed(checkElementType(*this, "buffer", buffer, "tokens", tokens)))
    return failure();
  // moe_dispatch_c7
  if (getSlots().getType() != ids)
    return emitOpError() << "expects 'slots' to have the type of 'ids': "
                         << getSlots().getType() << " vs " << ids;
  // moe_dispatch_c9
  RankedTensorType counts = getCounts().getType();
  if (counts.getRank() != 1 || counts.getDimSize(0) != numExperts ||
      counts.getElementType() != ids.getElementType())
    return emitOpError() << "expects 'counts' to be a 1-D tensor of "
                         << numExperts << " elements of type "
                         << ids.getElementType() << ", got " << counts;
  // moe_dispatch_c8
  if (getDropless()) {
    int64_t numTokens = tokens.getDimSize(0);
    if (ShapedType::isDynamic(numTokens))
      return emitOpError() << "expects a static token count with 'dropless', "
                           << "got " << tokens;
    if (capacity < numTokens)
      return emitOpError() << "expects capacity >= the token count with "
                           << "'dropless', got C = " << capacity
                           << " vs T = " << numTokens;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertsOp::verify() {
  RankedTensorType input = getInput().getType();
  // moe_experts_c1
  if (failed(checkRank(*this, "input", input, 3, "[E, C, H]")))
    return failure();
  RankedTensorType gate = getGate() ? getGate().getType() : nullptr;
  if (failed(verifyExpertWeights(*this, input.getDimSize(0), input, "input", 2,
                                 gate, getUp().getType(), getDown().getType(),
                                 getActivation())))
    return failure();
  // moe_experts_c9
  if (Value counts = getCounts()) {
    auto type = cast<RankedTensorType>(counts.getType());
    if ((type.getRank() != 1 && type.getRank() != 2) ||
        !dimsCompatible(type.getDimSize(0), input.getDimSize(0)))
      return emitOpError() << "expects 'counts' to be a 1-D tensor of "
                           << Dim{input.getDimSize(0)}
                           << " elements (one per expert), or 2-D with one "
                              "row per expert, got "
                           << type;
    int64_t segments = type.getRank() == 2 ? type.getDimSize(1) : 1;
    int64_t capacity = input.getDimSize(1);
    if (!ShapedType::isDynamic(segments) && !ShapedType::isDynamic(capacity) &&
        (segments < 1 || capacity % segments != 0))
      return emitOpError() << "expects the " << segments
                           << " count segments to divide the " << capacity
                           << " rows of each expert";
  }
  // moe_experts_c8
  if (getOutput().getType() != input)
    return emitOpError() << "expects the result to have the type of 'input': "
                         << getOutput().getType() << " vs " << input;
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType slots = getSlots().getType();
  RankedTensorType output = getOutput().getType();
  // moe_combine_c1
  if (failed(checkRank(*this, "input", input, 3, "[E, C, H]")))
    return failure();
  // moe_combine_c4
  if (failed(checkRank(*this, "result", output, 2, "[T, H]")) ||
      failed(checkSameDim(*this, "the hidden size", "result", output, 1,
                          "input", input, 2)))
    return failure();
  // moe_combine_c2
  if (failed(checkRank(*this, "slots", slots, 2, "[T, k]")))
    return failure();
  int64_t k = slots.getDimSize(1);
  if (failed(checkRoutingTensor(*this, "slots", slots, "result", output, k)) ||
      failed(checkRoutingTensor(*this, "weights", getWeights().getType(),
                                "result", output, k)))
    return failure();
  // moe_combine_c3
  if (getIds().getType() != slots)
    return emitOpError() << "expects 'experts' to have the type of 'slots': "
                         << getIds().getType() << " vs " << slots;
  // moe_combine_c5
  if (failed(checkElementType(*this, "weights", getWeights().getType(), "input",
                              input)) ||
      failed(checkElementType(*this, "result", output, "input", input)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

LogicalResult LayerOp::verify() {
  RankedTensorType tokens = getTokens().getType();
  RankedTensorType routerWeight = getRouterWeight().getType();
  RankedTensorType bias = getRouterBias() ? getRouterBias().getType() : nullptr;
  if (failed(verifyRouting(*this, tokens, routerWeight, bias, getK())))
    return failure();
  RankedTensorType gate = getExpertGate() ? getExpertGate().getType() : nullptr;
  if (failed(verifyExpertWeights(*this, routerWeight.getDimSize(0), tokens,
                                 "tokens", 1, gate, getExpertUp().getType(),
                                 getExpertDown().getType(), getActivation())))
    return failure();
  // moe_layer_c1
  if (getOutput().getType() != tokens)
    return emitOpError() << "expects the result to have the type of 'tokens': "
                         << getOutput().getType() << " vs " << tokens;
  // moe_layer_c2
  if (std::optional<int64_t> capacity = getCapacity();
      capacity && *capacity < 1)
    return emitOpError() << "expects capacity >= 1, got " << *capacity;

  // moe_layer_c3, moe_layer_c4
  Value sharedGate = getSharedGateProj(), sharedUp = getSharedUpProj(),
        sharedDown = getSharedDownProj();
  int numShared =
      (sharedGate != nullptr) + (sharedUp != nullptr) + (sharedDown != nullptr);
  if (numShared != 0 && numShared != 3)
    return emitOpError() << "expects shared experts to have gate, up and down "
                         << "weights, got " << numShared << " of them";
  if (sharedUp) {
    if (!isGated(getActivation()))
      return emitOpError() << "expects a gated activation with shared experts, "
                           << "got '" << stringifyActivation(getActivation())
                           << "'";
    auto gateType = cast<RankedTensorType>(sharedGate.getType());
    auto upType = cast<RankedTensorType>(sharedUp.getType());
    auto downType = cast<RankedTensorType>(sharedDown.getType());
    if (failed(checkRank(*this, "shared up", upType, 2, "[Fs, H]")) ||
        failed(checkRank(*this, "shared down", downType, 2, "[H, Fs]")))
      return failure();
    if (gateType != upType)
      return emitOpError() << "expects 'shared gate' to have the type of "
                           << "'shared up': " << gateType << " vs " << upType;
    if (failed(checkSameDim(*this, "the hidden size", "shared up", upType, 1,
                            "tokens", tokens, 1)) ||
        failed(checkSameDim(*this, "the hidden size", "shared down", downType,
                            0, "tokens", tokens, 1)) ||
        failed(checkSameDim(*this, "the intermediate size", "shared down",
                            downType, 1, "shared up", upType, 0)) ||
        failed(
            checkElementType(*this, "shared up", upType, "tokens", tokens)) ||
        failed(
            checkElementType(*this, "shared down", downType, "tokens", tokens)))
      return failure();
  }
  // moe_layer_c5
  if (Value sharedExpertGate = getSharedGate()) {
    if (!sharedUp)
      return emitOpError() << "expects shared experts with 'shared_gate'";
    auto type = cast<RankedTensorType>(sharedExpertGate.getType());
    if (failed(checkRank(*this, "shared_gate", type, 2, "[1, H]")) ||
        failed(checkSameDim(*this, "the hidden size", "shared_gate", type, 1,
                            "tokens", tokens, 1)) ||
        failed(checkElementType(*this, "shared_gate", type, "tokens", tokens)))
      return failure();
    if (type.getDimSize(0) != 1)
      return emitOpError() << "expects 'shared_gate' to have one row, got "
                           << type;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// AsyncStartOp
//===----------------------------------------------------------------------===//

/// The shard collectives moe.async_start may hold.
static bool isStartableCollective(Operation *op) {
  return isa<shard::AllToAllOp, shard::AllReduceOp, shard::AllGatherOp,
             shard::ReduceScatterOp>(op);
}

LogicalResult AsyncStartOp::verify() {
  Block &body = getBody().front();
  // moe_async_start_c1
  if (body.getNumArguments() != 1 ||
      body.getArgument(0).getType() != getInput().getType())
    return emitOpError() << "expects its body to take one argument of the "
                            "input's type "
                         << getInput().getType();
  // moe_async_start_c2
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  Operation *collective = &body.front();
  if (!yield || body.getOperations().size() != 2 ||
      !isStartableCollective(collective) || collective->getNumOperands() != 1 ||
      collective->getOperand(0) != body.getArgument(0) ||
      yield.getValue() != collective->getResult(0))
    return emitOpError() << "expects its body to be one shard.all_to_all, "
                            "all_reduce, all_gather or reduce_scatter on the "
                            "block argument, and a moe.yield of its result";
  // moe_async_start_c3
  if (yield.getValue().getType() != getFuture().getType().getValueType())
    return emitOpError() << "yields " << yield.getValue().getType()
                         << " but its future holds "
                         << getFuture().getType().getValueType();
  // moe_async_start_c4
  if (!getFuture().hasOneUse() ||
      !isa<AsyncWaitOp>(*getFuture().user_begin()) ||
      getFuture().user_begin()->getBlock() != (*this)->getBlock())
    return emitOpError() << "expects its future to have exactly one use, a "
                            "moe.async_wait in the same block";
  return success();
}

AsyncWaitOp AsyncStartOp::getWait() {
  return cast<AsyncWaitOp>(*getFuture().user_begin());
}

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
