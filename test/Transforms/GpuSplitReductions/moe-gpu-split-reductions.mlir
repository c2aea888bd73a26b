// RUN: moe-opt %s --moe-gpu-split-reductions --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-gpu-split-reductions=min-size=8192 --split-input-file | FileCheck %s --check-prefix=BIG

// A sum of squares over 4096 columns (an RMSNorm's): 64 partial sums of 64
// elements in parallel, then a sum over the 64 partials.
// CHECK-LABEL: func.func @sum_squares
// CHECK:      %[[E:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2]] output_shape [2, 64, 64] : tensor<2x4096xf32> into tensor<2x64x64xf32>
// CHECK:      %[[P:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[E]] : tensor<2x64x64xf32>) outs(%{{.*}} : tensor<2x64xf32>)
// CHECK:        arith.mulf
// CHECK:        arith.addf
// CHECK:      linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]} ins(%[[P]] : tensor<2x64xf32>) outs(%{{.*}} : tensor<2xf32>)
// CHECK-NEXT:   ^bb0
// CHECK-NEXT:   arith.addf
// Below min-size: left alone.
// BIG-LABEL: func.func @sum_squares
// BIG-NOT: expand_shape
func.func @sum_squares(%x: tensor<2x4096xf32>) -> tensor<2xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<2xf32>) -> tensor<2xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<2x4096xf32>) outs(%init : tensor<2xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %sq = arith.mulf %a, %a : f32
    %r = arith.addf %acc, %sq : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  return %s : tensor<2xf32>
}

// -----

// A softmax's maximum over 1000 keys: 8 partials (the largest power of two
// at most sqrt(1000) that divides 1000) of 125.
// CHECK-LABEL: func.func @row_max
// CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2]] output_shape [4, 8, 125]
// CHECK: arith.maximumf
// CHECK: arith.maximumf
func.func @row_max(%x: tensor<4x1000xf32>, %init: tensor<4xf32>) -> tensor<4xf32> {
  %m = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x1000xf32>) outs(%init : tensor<4xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<4xf32>
  return %m : tensor<4xf32>
}

// -----

// Left alone: a short row, a dynamic row, a product of two operands (cuBLAS's
// or attention's), a body that reads linalg.index, and a size with no
// power-of-two divisor (257).
// CHECK-LABEL: func.func @untouched
// CHECK-NOT: expand_shape
// CHECK: return
func.func @untouched(%short: tensor<2x64xf32>, %dyn: tensor<2x?xf32>, %a: tensor<2x512xf32>, %b: tensor<3x512xf32>, %odd: tensor<2x257xf32>, %o2: tensor<2xf32>, %o23: tensor<2x3xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2x3xf32>, tensor<2xf32>, tensor<2xf32>) {
  %0 = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%short : tensor<2x64xf32>) outs(%o2 : tensor<2xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %r = arith.addf %acc, %x : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  %1 = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%dyn : tensor<2x?xf32>) outs(%o2 : tensor<2xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %r = arith.addf %acc, %x : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  %2 = linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%a, %b : tensor<2x512xf32>, tensor<3x512xf32>) outs(%o23 : tensor<2x3xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<2x3xf32>
  %3 = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%a : tensor<2x512xf32>) outs(%o2 : tensor<2xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %h = linalg.index 1 : index
    %hi = arith.index_cast %h : index to i32
    %hf = arith.sitofp %hi : i32 to f32
    %p = arith.mulf %x, %hf : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  %4 = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>, affine_map<(t, h) -> (t)>], iterator_types = ["parallel", "reduction"]} ins(%odd : tensor<2x257xf32>) outs(%o2 : tensor<2xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %r = arith.addf %acc, %x : f32
    linalg.yield %r : f32
  } -> tensor<2xf32>
  return %0, %1, %2, %3, %4 : tensor<2xf32>, tensor<2xf32>, tensor<2x3xf32>, tensor<2xf32>, tensor<2xf32>
}
