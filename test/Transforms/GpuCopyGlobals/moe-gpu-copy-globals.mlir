// RUN: moe-opt %s --moe-gpu-copy-globals --split-input-file --verify-diagnostics | FileCheck %s

memref.global "private" constant @table : memref<2x4xf32> = dense<1.0>

// Every use of the global reads an allocated copy, made once at the entry
// of the function, even when the global is read in a loop.
// CHECK-LABEL: func @reads_table
func.func @reads_table(%out: memref<2x4xf32>, %n: index) -> f32 {
  // CHECK-NEXT: %[[G:.*]] = memref.get_global @table : memref<2x4xf32>
  // CHECK-NEXT: %[[C:.*]] = memref.alloc() : memref<2x4xf32>
  // CHECK-NEXT: memref.copy %[[G]], %[[C]] : memref<2x4xf32> to memref<2x4xf32>
  // CHECK-NOT: memref.get_global
  // CHECK-NOT: memref.alloc
  %g = memref.get_global @table : memref<2x4xf32>
  // CHECK: memref.copy %[[C]], %{{.*}}
  memref.copy %g, %out : memref<2x4xf32> to memref<2x4xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // CHECK: scf.for
  scf.for %i = %c0 to %n step %c1 {
    // CHECK: memref.copy %[[C]], %{{.*}}
    %again = memref.get_global @table : memref<2x4xf32>
    memref.copy %again, %out : memref<2x4xf32> to memref<2x4xf32>
  }
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

// -----

memref.global "private" @state : memref<4xf32> = dense<0.0>

func.func @mutable_global() {
  // expected-error @+1 {{'memref.get_global' op reads a global that is not constant: a kernel cannot see the host's copy, and writes to a device copy would be lost}}
  %g = memref.get_global @state : memref<4xf32>
  return
}
