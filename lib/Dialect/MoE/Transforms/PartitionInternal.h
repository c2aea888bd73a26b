//===- PartitionInternal.h - moe-partition's partitioner --------*- C++ -*-===//
//
// Shared by the two files of `moe-partition`: Partition.cpp (the walk over a
// function, arguments, annotations, ops with the upstream interface or on
// replicated values) and PartitionLinalg.cpp (the rules of linalg ops,
// reshapes and slices).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_DIALECT_MOE_TRANSFORMS_PARTITIONINTERNAL_H
#define MOE_LIB_DIALECT_MOE_TRANSFORMS_PARTITIONINTERNAL_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/LayerPartition.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace mlir {
namespace moe {
namespace partition {

inline bool isReplicated(const shard::Sharding &s) {
  return !s || llvm::all_of(s.getSplitAxes(),
                            [](shard::GridAxesAttr a) { return a.empty(); });
}

/// Split axes of tensor dim `d` (empty past the listed dims).
inline ArrayRef<int16_t> axesOf(const shard::Sharding &s, int64_t d) {
  if (!s || d >= static_cast<int64_t>(s.getSplitAxes().size()))
    return {};
  return s.getSplitAxes()[d].asArrayRef();
}

/// A sharding of `axes` on `grid`, without trailing unsplit dimensions (the
/// form shard.sharding ops and moe-shard use, so equal splits compare equal).
shard::Sharding makeSharding(FlatSymbolRefAttr grid,
                             SmallVector<shard::GridAxesAttr> axes);

class FunctionPartitioner {
public:
  FunctionPartitioner(func::FuncOp func, SymbolTableCollection &symbols)
      : func(func), symbols(symbols) {}

  LogicalResult run();

private:
  Value local(Value global) { return mapping.lookupOrDefault(global); }
  shard::Sharding shardingOf(Value global) {
    auto it = shardings.find(global);
    return it == shardings.end() ? shard::Sharding() : it->second;
  }
  /// The local type of `type` under `s`, or an error at `op`.
  FailureOr<Type> localType(Operation *op, Type type, const shard::Sharding &s);
  /// `v` (local, sharded `from`) re-sharded to `to`, built at `op`.
  FailureOr<Value> reshard(Operation *op, Value v, const shard::Sharding &from,
                           const shard::Sharding &to, Type globalType);
  LogicalResult partitionArguments();
  LogicalResult partitionShard(shard::ShardOp op);
  LogicalResult partitionWithInterface(Operation *op,
                                       shard::ShardingInterface iface);
  LogicalResult partitionOther(Operation *op);
  LogicalResult partitionLinalg(linalg::LinalgOp op);
  LogicalResult partitionReshape(Operation *op);
  /// tensor.extract_slice / tensor.insert_slice that take split dimensions
  /// whole (the slice's other dimensions stay as they are).
  LogicalResult partitionSlice(Operation *op);
  /// The local value of `global` (an init of a linalg op) with local type
  /// `type`: a tensor.empty, or a fill of one, is built again at the local
  /// size instead of being sliced.
  FailureOr<Value> localInit(Operation *user, Value global,
                             const shard::Sharding &to);
  /// This rank's index along `axes` of `grid` (row-major over the axes).
  Value processIndex(Location loc, FlatSymbolRefAttr grid,
                     ArrayRef<int16_t> axes);

  func::FuncOp func;
  SymbolTableCollection &symbols;
  IRMapping mapping;
  DenseMap<Value, shard::Sharding> shardings;
  OpBuilder builder{func.getContext()};
};

} // namespace partition
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_DIALECT_MOE_TRANSFORMS_PARTITIONINTERNAL_H
