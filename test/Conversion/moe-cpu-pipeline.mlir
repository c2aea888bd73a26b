// RUN: moe-opt %s --moe-cpu-pipeline | FileCheck %s
//
// The whole CPU pipeline leaves only the LLVM dialect: matrix products call
// the runtime's moert_sgemm through its C interface, the rest is loops.

// The CHECK-NOTs cover the whole module, the body of @moe_block included:
// no op of another dialect is left anywhere.
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
// CHECK: llvm.func @_mlir_ciface_moert_sgemm(!llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i32, i32)
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
// CHECK-LABEL: llvm.func @moe_block(
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
// CHECK: llvm.call @moert_sgemm
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
// CHECK: llvm.call @moert_sgemm
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
// CHECK: llvm.return
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
// CHECK-LABEL: llvm.func @_mlir_ciface_moe_block(
// CHECK-NOT: {{(moe|linalg|tensor|memref|scf|arith|math|func|cf)\.[a-z_]+ }}
func.func @moe_block(%x: tensor<16x32xf32>, %router: tensor<4x32xf32>,
                     %wi: tensor<4x64x32xf32>, %wo: tensor<4x32x64xf32>)
    -> tensor<16x32xf32> attributes {llvm.emit_c_interface} {
  %y = moe.layer %x router %router experts(up %wi down %wo)
      k = 1 score = softmax activation = relu capacity = 5
      : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
         tensor<4x32x64xf32>) -> tensor<16x32xf32>
  return %y : tensor<16x32xf32>
}
