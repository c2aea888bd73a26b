//===- MoEDialect.h - moe dialect declaration -------------------*- C++ -*-===//
//
// Declares the moe dialect, its enums and its attributes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEDIALECT_H
#define MOE_DIALECT_MOE_IR_MOEDIALECT_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "moe/Dialect/MoE/IR/PlanFacts.h"

#include "moe/Dialect/MoE/IR/MoEOpsDialect.h.inc"

#include "moe/Dialect/MoE/IR/MoEEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoETypes.h.inc"

namespace mlir {
namespace moe {
/// The `shard.grid`s of a partitioned model (docs/Parallelism.md), written by
/// moe-shard and the importer and mapped onto runtime groups by
/// moe-lower-collectives: pp x dp x tp, and pp x dp*tp/(ep*etp) x ep x etp.
constexpr llvm::StringLiteral kDenseGridName = "moe_dense";
constexpr llvm::StringLiteral kExpertGridName = "moe_experts";

/// The MoE layers under `root` that a plan's per-layer lists count: each
/// moe.layer, or, once partitioned, each distinct `moe.layer_index` on the
/// ops standing for one.
int64_t countPlanLayers(Operation *root);
} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_MOEDIALECT_H
