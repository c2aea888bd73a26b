// RUN: moe-opt %s --moe-approximate-math | FileCheck %s

// exp and erf become arithmetic (no libm call left to block vectorization);
// other math functions are untouched.
// CHECK-LABEL: func @approximated
func.func @approximated(%x: f32, %v: vector<8xf32>) -> (f32, f32, vector<8xf32>, f32) {
  // CHECK-NOT: math.exp
  // CHECK-NOT: math.erf
  // CHECK: math.fma
  // CHECK: math.sqrt
  %e = math.exp %x : f32
  %r = math.erf %x : f32
  %ev = math.exp %v : vector<8xf32>
  %s = math.sqrt %x : f32
  return %e, %r, %ev, %s : f32, f32, vector<8xf32>, f32
}
