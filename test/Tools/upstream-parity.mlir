// moe-opt accepts what mlir-opt-22 accepts: the same upstream input through
// the same upstream pipeline prints the same IR from both tools.
// RUN: moe-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition),canonicalize)' > %t.moe
// RUN: mlir-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition),canonicalize)' > %t.upstream
// RUN: diff %t.moe %t.upstream
// RUN: moe-opt %s --linalg-generalize-named-ops --cse --canonicalize > %t.moe2
// RUN: mlir-opt %s --linalg-generalize-named-ops --cse --canonicalize > %t.upstream2
// RUN: diff %t.moe2 %t.upstream2
// RUN: FileCheck %s --input-file=%t.moe

// CHECK: shard.grid @grid(shape = 2)
shard.grid @grid(shape = 2)

// CHECK-LABEL: func @matmul_split_rows
func.func @matmul_split_rows(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>) -> tensor<8x4xf32> {
  %sharding = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %a_sharded = shard.shard %a to %sharding : tensor<8x16xf32>
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<8x4xf32>
  %init = linalg.fill ins(%zero : f32) outs(%empty : tensor<8x4xf32>) -> tensor<8x4xf32>
  %c = linalg.matmul ins(%a_sharded, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%init : tensor<8x4xf32>) -> tensor<8x4xf32>
  // CHECK: linalg.matmul {{.*}} tensor<4x16xf32>
  return %c : tensor<8x4xf32>
}
