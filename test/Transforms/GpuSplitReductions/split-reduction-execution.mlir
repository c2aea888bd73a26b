// Runs a sum of squares over 4096 columns and a maximum over 1000 columns
// with and without moe-gpu-split-reductions and checks the same results.
// The values are small integers, so the sums are exact in any order.
//
// DEFINE: %{lower} = one-shot-bufferize{bufferize-function-boundaries}, \
// DEFINE:   convert-bufferization-to-memref,convert-linalg-to-loops, \
// DEFINE:   convert-scf-to-cf,expand-strided-metadata,lower-affine, \
// DEFINE:   finalize-memref-to-llvm,convert-arith-to-llvm, \
// DEFINE:   convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm, \
// DEFINE:   reconcile-unrealized-casts
// RUN: moe-opt %s --pass-pipeline="builtin.module(%{lower})" > %t.plain.mlir
// RUN: moe-opt %s --pass-pipeline="builtin.module(moe-gpu-split-reductions,%{lower})" > %t.split.mlir
// RUN: mlir-runner %t.plain.mlir -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so > %t.plain.txt
// RUN: mlir-runner %t.split.mlir -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so > %t.split.txt
// RUN: FileCheck %s < %t.split.txt
// RUN: sed 's/base@ = [0-9a-fx]*//' %t.plain.txt > %t.plain.data
// RUN: sed 's/base@ = [0-9a-fx]*//' %t.split.txt > %t.split.data
// RUN: diff %t.plain.data %t.split.data
// Both reductions are split (so the diff compares split with unsplit):
// RUN: moe-opt %s --moe-gpu-split-reductions | FileCheck %s --check-prefix=SPLIT
// SPLIT-COUNT-2: tensor.expand_shape

// x[t, h] = (h + t) mod 7 - 3: row 0 sums squares 9,4,1,0,1,4,9 (28 per 7
// columns), 585 full periods and h = 4095 (4095 mod 7 = 0: 9) -> 16389;
// row 1 is shifted by one column. max[t] = 3.
// CHECK: data =
// CHECK-NEXT: [16389,  16384]
// CHECK: data =
// CHECK-NEXT: [3,  3]

func.func private @printMemrefF32(memref<*xf32>)

func.func @main() {
  %zero = arith.constant 0.0 : f32
  %lowest = arith.constant -1.0e30 : f32
  %ex = tensor.empty() : tensor<2x4096xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>], iterator_types = ["parallel", "parallel"]} outs(%ex : tensor<2x4096xf32>) {
  ^bb0(%o: f32):
    %t = linalg.index 0 : index
    %h = linalg.index 1 : index
    %c7 = arith.constant 7 : index
    %s = arith.addi %h, %t : index
    %m = arith.remui %s, %c7 : index
    %mi = arith.index_cast %m : index to i32
    %c3 = arith.constant 3 : i32
    %v = arith.subi %mi, %c3 : i32
    %f = arith.sitofp %v : i32 to f32
    linalg.yield %f : f32
  } -> tensor<2x4096xf32>
  %e2 = tensor.empty() : tensor<2xf32>
  %i0 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<2xf32>) -> tensor<2xf32>
  %sum = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<2x4096xf32>) outs(%i0 : tensor<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %sq = arith.mulf %a, %a : f32
    %r = arith.addf %acc, %sq : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  %x1000 = tensor.extract_slice %x[0, 0] [2, 1000] [1, 1] : tensor<2x4096xf32> to tensor<2x1000xf32>
  %i1 = linalg.fill ins(%lowest : f32) outs(%e2 : tensor<2xf32>) -> tensor<2xf32>
  %max = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%x1000 : tensor<2x1000xf32>) outs(%i1 : tensor<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  %ms = bufferization.to_buffer %sum : tensor<2xf32> to memref<2xf32>
  %us = memref.cast %ms : memref<2xf32> to memref<*xf32>
  call @printMemrefF32(%us) : (memref<*xf32>) -> ()
  %mm = bufferization.to_buffer %max : tensor<2xf32> to memref<2xf32>
  %um = memref.cast %mm : memref<2xf32> to memref<*xf32>
  call @printMemrefF32(%um) : (memref<*xf32>) -> ()
  return
}
