// RUN: moe-opt %s --moe-approximate-math | FileCheck %s

// exp and erf become arithmetic (no libm call left to block vectorization);
// other math functions are untouched.
// The scalar exp and erf, then the vector exp, each as polynomial
// arithmetic on its own type; no math.exp or math.erf anywhere in between;
// sqrt kept.
// CHECK-LABEL: func @approximated
func.func @approximated(%x: f32, %v: vector<8xf32>) -> (f32, f32, vector<8xf32>, f32) {
  // CHECK-NOT: math.{{exp|erf}}
  // CHECK: math.fma {{.*}} : f32
  // CHECK-NOT: math.{{exp|erf}}
  // CHECK: math.fma {{.*}} : vector<8xf32>
  // CHECK-NOT: math.{{exp|erf}}
  // CHECK: math.sqrt %{{.*}} : f32
  // CHECK-NOT: math.{{exp|erf}}
  // CHECK: return
  %e = math.exp %x : f32
  %r = math.erf %x : f32
  %ev = math.exp %v : vector<8xf32>
  %s = math.sqrt %x : f32
  return %e, %r, %ev, %s : f32, f32, vector<8xf32>, f32
}
