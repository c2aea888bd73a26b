// RUN: moe-opt %s --moe-linalg-to-blas --split-input-file --verify-diagnostics | FileCheck %s

#mk = affine_map<(m, n, k) -> (m, k)>
#km = affine_map<(m, n, k) -> (k, m)>
#nk = affine_map<(m, n, k) -> (n, k)>
#kn = affine_map<(m, n, k) -> (k, n)>
#mn = affine_map<(m, n, k) -> (m, n)>
#nm = affine_map<(m, n, k) -> (n, m)>

// x · Wᵀ (the importer's linear layer): transB = 1; C is accumulated into.
// CHECK-LABEL: func.func private @moert_sgemm
// CHECK-SAME: (memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, i32, i32, i32)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @linear
// CHECK-SAME: (%[[A:.*]]: memref<8x16xf32>, %[[W:.*]]: memref<32x16xf32>, %[[C:.*]]: memref<8x32xf32>)
func.func @linear(%a: memref<8x16xf32>, %w: memref<32x16xf32>, %c: memref<8x32xf32>) {
  // CHECK-DAG: %[[CA:.*]] = memref.cast %[[A]] : memref<8x16xf32> to memref<?x?xf32, strided<[?, ?], offset: ?>>
  // CHECK-DAG: %[[CW:.*]] = memref.cast %[[W]]
  // CHECK-DAG: %[[CC:.*]] = memref.cast %[[C]]
  // CHECK: %[[NO:.*]] = arith.constant 0 : i32
  // CHECK-NEXT: %[[YES:.*]] = arith.constant 1 : i32
  // CHECK-NEXT: %[[ACC:.*]] = arith.constant 1 : i32
  // CHECK-NEXT: call @moert_sgemm(%[[CA]], %[[CW]], %[[CC]], %[[NO]], %[[YES]], %[[ACC]])
  // CHECK-NOT: linalg.generic
  linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %w : memref<8x16xf32>, memref<32x16xf32>) outs(%c : memref<8x32xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#mk = affine_map<(m, n, k) -> (m, k)>
#km = affine_map<(m, n, k) -> (k, m)>
#nk = affine_map<(m, n, k) -> (n, k)>
#kn = affine_map<(m, n, k) -> (k, n)>
#mn = affine_map<(m, n, k) -> (m, n)>
#nm = affine_map<(m, n, k) -> (n, m)>

// Aᵀ · B with a strided view of A, and the named linalg.matmul.
// CHECK-LABEL: func @transposed_a_and_named
func.func @transposed_a_and_named(%a: memref<16x8xf32, strided<[32, 1], offset: 4>>, %b: memref<16x4xf32>, %c: memref<8x4xf32>, %d: memref<4x16xf32>, %e: memref<8x16xf32>) {
  // CHECK: %[[ONE:.*]] = arith.constant 1 : i32
  // CHECK-NEXT: %[[ZERO:.*]] = arith.constant 0 : i32
  // CHECK-NEXT: %[[ACC:.*]] = arith.constant 1 : i32
  // CHECK-NEXT: call @moert_sgemm(%{{.*}}, %{{.*}}, %{{.*}}, %[[ONE]], %[[ZERO]], %[[ACC]])
  linalg.generic {indexing_maps = [#km, #kn, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : memref<16x8xf32, strided<[32, 1], offset: 4>>, memref<16x4xf32>) outs(%c : memref<8x4xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  // CHECK: call @moert_sgemm
  linalg.matmul ins(%c, %d : memref<8x4xf32>, memref<4x16xf32>) outs(%e : memref<8x16xf32>)
  return
}

// -----

// A zero fill of C just before the product is dropped and BLAS overwrites C
// (accumulate = 0); any other fill stays and the call accumulates.
// CHECK-LABEL: func @zero_filled_output
func.func @zero_filled_output(%a: memref<8x4xf32>, %b: memref<4x16xf32>, %c: memref<8x16xf32>, %d: memref<8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  // CHECK-NOT: linalg.fill
  // CHECK: arith.constant 0 : i32
  // CHECK-NEXT: arith.constant 0 : i32
  // CHECK-NEXT: %[[FALSE:.*]] = arith.constant 0 : i32
  // CHECK-NEXT: call @moert_sgemm(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[FALSE]])
  linalg.fill ins(%zero : f32) outs(%c : memref<8x16xf32>)
  linalg.matmul ins(%a, %b : memref<8x4xf32>, memref<4x16xf32>) outs(%c : memref<8x16xf32>)
  // CHECK: linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : memref<8x16xf32>)
  // CHECK: arith.constant 0 : i32
  // CHECK-NEXT: arith.constant 0 : i32
  // CHECK-NEXT: %[[TRUE:.*]] = arith.constant 1 : i32
  // CHECK-NEXT: call @moert_sgemm(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[TRUE]])
  linalg.fill ins(%one : f32) outs(%d : memref<8x16xf32>)
  linalg.matmul ins(%a, %b : memref<8x4xf32>, memref<4x16xf32>) outs(%d : memref<8x16xf32>)
  return
}

// -----

#mk = affine_map<(m, n, k) -> (m, k)>
#km = affine_map<(m, n, k) -> (k, m)>
#nk = affine_map<(m, n, k) -> (n, k)>
#kn = affine_map<(m, n, k) -> (k, n)>
#mn = affine_map<(m, n, k) -> (m, n)>
#nm = affine_map<(m, n, k) -> (n, m)>

// Left alone: tensors (not bufferized), f64, a transposed output, the named
// linalg.batch_matmul, and a body that is not a multiply-add.
// CHECK-LABEL: func @not_gemms
// CHECK-NOT: call @moert_sgemm
// CHECK-COUNT-5: linalg.
func.func @not_gemms(%ta: tensor<8x16xf32>, %tw: tensor<32x16xf32>, %tc: tensor<8x32xf32>,
                     %a64: memref<8x16xf64>, %w64: memref<32x16xf64>, %c64: memref<8x32xf64>,
                     %a: memref<8x16xf32>, %w: memref<32x16xf32>, %ct: memref<32x8xf32>,
                     %ba: memref<2x8x16xf32>, %bb: memref<2x16x4xf32>, %bc: memref<2x8x4xf32>,
                     %c: memref<8x32xf32>) -> tensor<8x32xf32> {
  %r = linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%ta, %tw : tensor<8x16xf32>, tensor<32x16xf32>) outs(%tc : tensor<8x32xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<8x32xf32>
  linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a64, %w64 : memref<8x16xf64>, memref<32x16xf64>) outs(%c64 : memref<8x32xf64>) {
  ^bb0(%x: f64, %y: f64, %acc: f64):
    %p = arith.mulf %x, %y : f64
    %s = arith.addf %acc, %p : f64
    linalg.yield %s : f64
  }
  linalg.generic {indexing_maps = [#mk, #nk, #nm], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %w : memref<8x16xf32>, memref<32x16xf32>) outs(%ct : memref<32x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  linalg.batch_matmul ins(%ba, %bb : memref<2x8x16xf32>, memref<2x16x4xf32>) outs(%bc : memref<2x8x4xf32>)
  linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %w : memref<8x16xf32>, memref<32x16xf32>) outs(%c : memref<8x32xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.maximumf %acc, %p : f32
    linalg.yield %s : f32
  }
  return %r : tensor<8x32xf32>
}

// -----

// The router's product (moe.exact_product) sets bit 1 of the flags: the
// runtime keeps it in f32 whatever --cuda-gemm says (3 = accumulate, exact).
// CHECK-LABEL: func @exact
#mk = affine_map<(m, n, k) -> (m, k)>
#nk = affine_map<(m, n, k) -> (n, k)>
#mn = affine_map<(m, n, k) -> (m, n)>
// CHECK: %[[FLAGS:.*]] = arith.constant 3 : i32
// CHECK-NEXT: call @moert_sgemm(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[FLAGS]])
func.func @exact(%a: memref<8x16xf32>, %w: memref<4x16xf32>, %c: memref<8x4xf32>) {
  linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %w : memref<8x16xf32>, memref<4x16xf32>) outs(%c : memref<8x4xf32>) attrs = {moe.exact_product} {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// A function of the runtime's name with another type is an error.
module {
  // expected-error @+1 {{'func.func' op conflicts with the runtime's moert_sgemm of type}}
  func.func private @moert_sgemm(%a: i32)
  func.func @product(%a: memref<4x8xf32>, %b: memref<8x2xf32>, %c: memref<4x2xf32>) {
    linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x2xf32>) outs(%c : memref<4x2xf32>)
    return
  }
}

// -----

// Batched contractions (attention's per-head products with grouped-query
// heads, kv head = h floordiv 2): a loop over each batch loop and one call
// per iteration on rank-reduced 2-D views. The scores' C was zero-filled:
// the fill goes, the calls overwrite (flags 0); probs · v accumulates into
// its init (flags 1) with v not transposed.
// CHECK-LABEL: func @attention
// CHECK-SAME: (%[[Q:[^:]*]]: memref<2x8x4x16xf32>, %[[K:[^:]*]]: memref<2x8x2x16xf32>, %[[S:[^:]*]]: memref<2x4x8x8xf32>, %[[V:[^:]*]]: memref<2x8x2x16xf32>, %[[O:[^:]*]]: memref<2x8x4x16xf32>)
// CHECK-NOT: linalg.fill
// CHECK: scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step
// CHECK: scf.for %[[H:.*]] = %{{.*}} to %{{.*}} step
// CHECK-DAG: %[[QV:.*]] = memref.subview %[[Q]][%[[B]], 0, %[[H]], 0] [1, 8, 1, 16] [1, 1, 1, 1] : memref<2x8x4x16xf32> to memref<8x16xf32, strided<[64, 1], offset: ?>>
// CHECK-DAG: %[[G:.*]] = arith.divui %[[H]], %{{.*}} : index
// CHECK-DAG: %[[KV:.*]] = memref.subview %[[K]][%[[B]], 0, %[[G]], 0] [1, 8, 1, 16] [1, 1, 1, 1] : memref<2x8x2x16xf32> to memref<8x16xf32, strided<[32, 1], offset: ?>>
// CHECK-DAG: %[[SV:.*]] = memref.subview %[[S]][%[[B]], %[[H]], 0, 0] [1, 1, 8, 8] [1, 1, 1, 1] : memref<2x4x8x8xf32> to memref<8x8xf32, strided<[8, 1], offset: ?>>
// CHECK: %[[NO:.*]] = arith.constant 0 : i32
// CHECK-NEXT: %[[YES:.*]] = arith.constant 1 : i32
// CHECK-NEXT: %[[OVERWRITE:.*]] = arith.constant 0 : i32
// CHECK-NEXT: call @moert_sgemm(%{{.*}}, %{{.*}}, %{{.*}}, %[[NO]], %[[YES]], %[[OVERWRITE]])
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[NO2:.*]] = arith.constant 0 : i32
// CHECK-NEXT: %[[NO3:.*]] = arith.constant 0 : i32
// CHECK-NEXT: %[[ACC:.*]] = arith.constant 1 : i32
// CHECK-NEXT: call @moert_sgemm(%{{.*}}, %{{.*}}, %{{.*}}, %[[NO2]], %[[NO3]], %[[ACC]])
// CHECK-NOT: linalg.generic
func.func @attention(%q: memref<2x8x4x16xf32>, %k: memref<2x8x2x16xf32>, %s: memref<2x4x8x8xf32>,
                     %v: memref<2x8x2x16xf32>, %o: memref<2x8x4x16xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%s : memref<2x4x8x8xf32>)
  linalg.generic {indexing_maps = [affine_map<(b, h, i, j, d) -> (b, i, h, d)>,
                                   affine_map<(b, h, i, j, d) -> (b, j, h floordiv 2, d)>,
                                   affine_map<(b, h, i, j, d) -> (b, h, i, j)>],
                  iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : memref<2x8x4x16xf32>, memref<2x8x2x16xf32>) outs(%s : memref<2x4x8x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  linalg.generic {indexing_maps = [affine_map<(b, i, h, d, j) -> (b, h, i, j)>,
                                   affine_map<(b, i, h, d, j) -> (b, j, h floordiv 2, d)>,
                                   affine_map<(b, i, h, d, j) -> (b, i, h, d)>],
                  iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%s, %v : memref<2x4x8x8xf32>, memref<2x8x2x16xf32>) outs(%o : memref<2x8x4x16xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// Not batched products: a batch loop C indexes by floordiv (the C blocks
// would overlap), and two reduction loops.
// CHECK-LABEL: func @not_batched
// CHECK-NOT: call @moert_sgemm
// CHECK-COUNT-2: linalg.generic
func.func @not_batched(%a: memref<4x8x16xf32>, %b: memref<4x16x8xf32>, %c: memref<2x8x8xf32>,
                       %a2: memref<4x8x16x2xf32>, %b2: memref<4x16x8x2xf32>, %c2: memref<4x8x8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(g, m, n, k) -> (g, m, k)>,
                                   affine_map<(g, m, n, k) -> (g, k, n)>,
                                   affine_map<(g, m, n, k) -> (g floordiv 2, m, n)>],
                  iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%a, %b : memref<4x8x16xf32>, memref<4x16x8xf32>) outs(%c : memref<2x8x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  linalg.generic {indexing_maps = [affine_map<(g, m, n, k, l) -> (g, m, k, l)>,
                                   affine_map<(g, m, n, k, l) -> (g, k, n, l)>,
                                   affine_map<(g, m, n, k, l) -> (g, m, n)>],
                  iterator_types = ["parallel", "parallel", "parallel", "reduction", "reduction"]}
      ins(%a2, %b2 : memref<4x8x16x2xf32>, memref<4x16x8x2xf32>) outs(%c2 : memref<4x8x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  return
}
