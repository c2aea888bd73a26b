// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s
//
// The whole CPU pipeline leaves only the LLVM dialect: matrix products call
// the runtime's moert_sgemm through its C interface, the rest is loops.

// CHECK-NOT: moe.
// CHECK-NOT: linalg.
// CHECK-NOT: tensor.
// CHECK-NOT: memref.
// CHECK-NOT: scf.
// CHECK: llvm.func @_mlir_ciface_moert_sgemm(!llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i32, i32)
// CHECK: llvm.func @moe_block(
// CHECK: llvm.call @moert_sgemm
// CHECK: llvm.func @_mlir_ciface_moe_block(
func.func @moe_block(%x: tensor<16x32xf32>, %router: tensor<4x32xf32>,
                     %wi: tensor<4x64x32xf32>, %wo: tensor<4x32x64xf32>)
    -> tensor<16x32xf32> attributes {llvm.emit_c_interface} {
  %y = moe.layer %x router %router experts(up %wi down %wo)
      k = 1 score = softmax activation = relu capacity = 5
      : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
         tensor<4x32x64xf32>) -> tensor<16x32xf32>
  return %y : tensor<16x32xf32>
}
