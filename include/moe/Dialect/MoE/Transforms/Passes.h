//===- Passes.h - moe dialect transformation passes -------------*- C++ -*-===//
//
// Declarations generated from Passes.td, plus pipeline builders.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_H
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir {
namespace moe {

#define GEN_PASS_DECL
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

/// Attaches upstream's ShardingInterface to the moe ops that carry their own
/// partition rules (moe.layer); moe-partition requests it itself.
void registerShardingInterfaceExternalModels(DialectRegistry &registry);

/// Checks moe-overlap's options: `collectives` names only all-to-all,
/// all-reduce, all-gather and reduce-scatter; chunks >= 1, and > 1 only with
/// all-to-all. The error names the option as the caller calls it (moe-overlap:
/// collectives, chunks; moe-to-spmd and moe-compile: overlap,
/// overlap-chunks).
LogicalResult verifyOverlapOptions(ArrayRef<std::string> collectives,
                                   int64_t chunks, std::string &error,
                                   StringRef collectivesName = "collectives",
                                   StringRef chunksName = "chunks");

/// Registers `moe-example-pipeline`: moe-decompose, then canonicalize, to
/// read what a module's moe.layer ops stand for.
void registerMoEPipelines();

#define GEN_PASS_REGISTRATION
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_H
