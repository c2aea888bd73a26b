//===- MoEOps.h - moe dialect operations ------------------------*- C++ -*-===//
//
// Declares the operations of the moe dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_H
#define MOE_DIALECT_MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"

namespace mlir {
namespace moe {
/// The network, as a side-effect resource: what moe.async_start and
/// moe.async_wait read and write (their data is in SSA values).
struct CommunicationResource
    : public SideEffects::Resource::Base<CommunicationResource> {
  llvm::StringRef getName() override { return "moe.communication"; }
};
} // namespace moe
} // namespace mlir

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

#endif // MOE_DIALECT_MOE_IR_MOEOPS_H
