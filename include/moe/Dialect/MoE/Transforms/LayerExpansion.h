//===- LayerExpansion.h - the pieces moe.layer expands into ----*- C++ -*-===//
//
// moe-decompose and the partitioning importer both expand MoE blocks; the
// shared-expert part of that expansion lives here so they build the same IR.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_LAYEREXPANSION_H
#define MOE_DIALECT_MOE_TRANSFORMS_LAYEREXPANSION_H

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/Builders.h"

namespace mlir {
namespace moe {

/// routed + [sigmoid(tokens · sharedGateᵀ) *] shared(tokens), where shared is
/// the dense gated MLP (up, down, gate: [Fs, H], [H, Fs], [Fs, H]) computed as
/// a moe.experts over all tokens seen as one expert. `sharedGate` ([1, H]) may
/// be null.
Value buildSharedExpertsSum(OpBuilder &b, Location loc, Value tokens,
                            Value routed, Value up, Value down, Value gate,
                            Value sharedGate, ActivationAttr activation);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_LAYEREXPANSION_H
