// RUN: moe-opt %s --moe-gpu-collapse-parallel-loops | FileCheck %s

// A two-dimensional loop becomes one loop over all 8 * 64 points; the body
// recovers (i, j) by division and remainder.
// CHECK-LABEL: func @two_dims
func.func @two_dims(%a: memref<8x64xf32>, %b: memref<8x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  // The trip count, 1 * 8 * 64:
  // CHECK: arith.muli
  // CHECK-NEXT: %[[N:.*]] = arith.muli %{{.*}}, %[[C64:.*]] : index
  // CHECK: scf.parallel (%[[K:.*]]) = (%{{.*}}) to (%[[N]]) step (%{{.*}}) {
  // CHECK-DAG: %[[J:.*]] = arith.remsi %[[K]], %[[C64]] : index
  // CHECK-DAG: %[[I:.*]] = arith.divsi %[[K]], %[[C64]] : index
  // CHECK: memref.load %{{.*}}[%[[I]], %[[J]]]
  scf.parallel (%i, %j) = (%c0, %c0) to (%c8, %c64) step (%c1, %c1) {
    %v = memref.load %a[%i, %j] : memref<8x64xf32>
    memref.store %v, %b[%i, %j] : memref<8x64xf32>
    scf.reduce
  }
  return
}

// Only the outermost loop is collapsed; the nested one keeps its two
// dimensions, and a one-dimensional loop is unchanged.
// CHECK-LABEL: func @nested
func.func @nested(%a: memref<4x8x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %f = arith.constant 0.0 : f32
  // CHECK: scf.parallel (%{{[^,]*}}) = (%{{.*}}) to (%{{.*}}) step (%{{.*}}) {
  // CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%{{.*}}, %{{.*}}) to
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    scf.parallel (%j, %k) = (%c0, %c0) to (%c8, %c16) step (%c1, %c1) {
      memref.store %f, %a[%i, %j, %k] : memref<4x8x16xf32>
      scf.reduce
    }
    scf.reduce
  }
  return
}

// A loop with a reduction keeps its dimensions (the upstream utility does
// not carry reduction results).
// CHECK-LABEL: func @reduction
func.func @reduction(%a: memref<8x64xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  // CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %{{.*}}) step (%{{.*}}, %{{.*}}) init (%{{.*}}) -> f32
  %sum = scf.parallel (%i, %j) = (%c0, %c0) to (%c8, %c64) step (%c1, %c1) init (%zero) -> f32 {
    %v = memref.load %a[%i, %j] : memref<8x64xf32>
    scf.reduce(%v : f32) {
    ^bb0(%x: f32, %y: f32):
      %s = arith.addf %x, %y : f32
      scf.reduce.return %s : f32
    }
  }
  return %sum : f32
}
