// RUN: moe-opt %s --moe-gpu-device-copies | FileCheck %s

// Copies between buffers (views included) become linalg.copy, which the
// CUDA pipeline turns into kernels; a copy out of a host global, or a view
// of one, stays a memref.copy for the host.
// CHECK-LABEL: func.func @copies
// CHECK:      linalg.copy ins(%{{.*}} : memref<4x16xf32>) outs(%{{.*}} : memref<4x16xf32, strided<[16, 1], offset: ?>>)
// CHECK:      memref.copy %[[G:.*]], %{{.*}} : memref<8x16xf32> to memref<8x16xf32>
// CHECK:      memref.copy %{{.*}}, %{{.*}} : memref<2x16xf32, strided<[16, 1], offset: 32>> to memref<2x16xf32>
// CHECK-NOT:  memref.copy
memref.global "private" constant @table : memref<8x16xf32> = dense<1.0>
func.func @copies(%y: memref<4x16xf32>, %buf: memref<8x16xf32>, %i: index) -> (memref<8x16xf32>, memref<2x16xf32>) {
  %slot = memref.subview %buf[%i, 0] [4, 16] [1, 1] : memref<8x16xf32> to memref<4x16xf32, strided<[16, 1], offset: ?>>
  memref.copy %y, %slot : memref<4x16xf32> to memref<4x16xf32, strided<[16, 1], offset: ?>>
  %g = memref.get_global @table : memref<8x16xf32>
  %c = memref.alloc() : memref<8x16xf32>
  memref.copy %g, %c : memref<8x16xf32> to memref<8x16xf32>
  %rows = memref.subview %g[2, 0] [2, 16] [1, 1] : memref<8x16xf32> to memref<2x16xf32, strided<[16, 1], offset: 32>>
  %d = memref.alloc() : memref<2x16xf32>
  memref.copy %rows, %d : memref<2x16xf32, strided<[16, 1], offset: 32>> to memref<2x16xf32>
  return %c, %d : memref<8x16xf32>, memref<2x16xf32>
}
