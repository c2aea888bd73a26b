// RUN: moe-opt %s --moe-gpu-copy-globals --split-input-file --verify-diagnostics | FileCheck %s

memref.global "private" constant @table : memref<2x4xf32> = dense<1.0>

// Every use of the global reads an allocated copy, made right after it.
// CHECK-LABEL: func @reads_table
func.func @reads_table(%out: memref<2x4xf32>) -> f32 {
  // CHECK: %[[G:.*]] = memref.get_global @table : memref<2x4xf32>
  // CHECK-NEXT: %[[C:.*]] = memref.alloc() : memref<2x4xf32>
  // CHECK-NEXT: memref.copy %[[G]], %[[C]] : memref<2x4xf32> to memref<2x4xf32>
  %g = memref.get_global @table : memref<2x4xf32>
  // CHECK-NEXT: memref.copy %[[C]], %{{.*}}
  memref.copy %g, %out : memref<2x4xf32> to memref<2x4xf32>
  %c0 = arith.constant 0 : index
  // CHECK: memref.load %[[C]]
  %v = memref.load %g[%c0, %c0] : memref<2x4xf32>
  return %v : f32
}

// A function without globals is left alone.
// CHECK-LABEL: func @no_globals
// CHECK-NOT: memref.alloc
func.func @no_globals(%x: memref<4xf32>) {
  return
}

// -----

memref.global "private" constant @strided : memref<2x2xf32, strided<[4, 1]>> = dense<0.0>

func.func @strided_global() {
  // expected-error @+1 {{'memref.get_global' op moe-gpu-copy-globals copies globals with the identity layout only}}
  %g = memref.get_global @strided : memref<2x2xf32, strided<[4, 1]>>
  return
}
