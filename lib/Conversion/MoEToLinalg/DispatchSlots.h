//===- DispatchSlots.h - the dispatch's slot assignment ---------*- C++ -*-===//
//
// Internal to convert-moe-to-linalg: which slot of which expert each (token,
// choice) pair of a moe.dispatch takes, as one sequential loop (CPU) or as
// data-parallel steps (CUDA, `parallel-dispatch`), and the small builders
// the lowering shares.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLINALG_DISPATCHSLOTS_H
#define MOE_LIB_CONVERSION_MOETOLINALG_DISPATCHSLOTS_H

#include "moe/Utils/LinalgBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {

inline Value indexCast(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isIndex())
    return v;
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

inline Value intCast(OpBuilder &b, Location loc, Value index, Type type) {
  return arith::IndexCastOp::create(b, loc, type, index);
}

inline Value cIndex(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// What the dispatch's slot assignment computes: `slots[t, j]` (the slot of
/// each (token, choice) pair, -1 when dropped), `fill[e]` (the valid pairs
/// routed to each expert, kept or not) and `src[e, c]` (the token in slot c
/// of expert e, -1 for an unused slot).
struct SlotAssignment {
  Value slots, fill, src;
};

/// Shared by both slot assignments.
struct DispatchShape {
  Value ids;
  Type idType;
  int64_t numExperts, capacity, k;
  OpFoldResult numTokens;
};

inline Value isValidExpert(OpBuilder &b, Location l, Value expert, Type idType,
                           int64_t numExperts) {
  return arith::AndIOp::create(
      b, l,
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, expert,
                            buildConstant(b, l, idType, 0)),
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, expert,
                            buildConstant(b, l, idType, numExperts)));
}

/// One sequential loop over the pairs in drop order (p = j * T + t).
SlotAssignment assignSlotsSequentially(OpBuilder &rewriter, Location loc,
                                       const DispatchShape &d);
/// The same slots from data-parallel steps only (every step a GPU kernel).
SlotAssignment assignSlotsInParallel(OpBuilder &rewriter, Location loc,
                                     const DispatchShape &d);

} // namespace moe
} // namespace mlir

#endif // MOE_LIB_CONVERSION_MOETOLINALG_DISPATCHSLOTS_H
