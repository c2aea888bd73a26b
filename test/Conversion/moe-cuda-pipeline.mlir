// RUN: moe-opt %s --moe-cuda-pipeline | FileCheck %s
// RUN: moe-opt %s --moe-cuda-pipeline="chip=sm_80 block-size=128" | FileCheck %s --check-prefix=SM80
// RUN: not moe-opt %s --moe-cuda-pipeline="chip=sm_12" 2>&1 | FileCheck %s --check-prefix=BADCHIP
// RUN: not moe-opt %s --moe-cuda-pipeline="block-size=2048" 2>&1 | FileCheck %s --check-prefix=BADBLOCK
// RUN: moe-opt %s --moe-cuda-pipeline --mlir-print-ir-after=gpu-kernel-outlining -o /dev/null 2>&1 | FileCheck %s --check-prefix=HOST
// BADCHIP: moe-cuda-pipeline: 'sm_12' is not a GPU architecture LLVM's NVPTX backend knows
// BADBLOCK: moe-cuda-pipeline: the block size must be in [1, 1024], got 2048
//
// The CUDA pipeline: the parallel loops become kernels in gpu.binary modules
// for the NVVM target (PTX by default here: format isa needs no ptxas), the
// matrix products call the runtime's moert_sgemm (cuBLAS), and buffers come
// from the runtime's allocator (_mlir_memref_to_llvm_alloc: managed memory).
// The host is the LLVM dialect; what is left of gpu is launch_func on
// compiled binaries.

// CHECK-NOT: moe.
// CHECK-NOT: linalg.
// CHECK-NOT: scf.
// CHECK-NOT: gpu.module
// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_alloc(i64) -> !llvm.ptr
// CHECK-DAG: llvm.func @moert_gpu_sync()
// CHECK-DAG: llvm.func @_mlir_ciface_moert_sgemm(!llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i32, i32)
// CHECK: llvm.func @moe_block(
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
// Launches are asynchronous, on the stream of a token (moe-gpu-async-launches);
// the host waits (moert_gpu_sync) before it reads a buffer and at return.
// CHECK: gpu.launch_func <%{{.*}} : !llvm.ptr> @moe_block_kernel{{[_0-9]*}}::@moe_block_kernel{{[_0-9]*}} blocks in ({{.*}}) threads in ({{.*}}) : i64 args(
// CHECK: llvm.call @moert_sgemm
// CHECK: llvm.call @moert_gpu_sync()
// CHECK: llvm.return
// CHECK: gpu.binary @moe_block_kernel{{[_0-9]*}}  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90">, properties = {{.*}}, assembly = "
// CHECK-SAME: .target sm_90
// CHECK-SAME: .entry moe_block_kernel

// Routing, dispatch (the parallel slot assignment) and combine are kernels:
// the host's only loop is the one over the 4 experts that calls cuBLAS.
// HOST-LABEL: IR Dump After GpuKernelOutliningPass
// HOST: func.func @moe_block(
// HOST-NOT: scf.for
// HOST: gpu.launch_func
// HOST-NOT: scf.for
// HOST: scf.for %{{.*}} = %c0 to %c4 step %c1 {
// HOST: func.call @moert_sgemm
// HOST-NOT: scf.for
// HOST: gpu.module
// HOST: func.func @moe_block_one_token(
//
// Also with one token, where a parallel loop over the tokens has a single
// iteration: it stays a (one-thread) kernel instead of being folded into a
// host loop over managed memory.
// HOST-NOT: scf.for
// HOST: gpu.launch_func
// HOST-NOT: scf.for
// HOST: scf.for %{{.*}} = %c0 to %c4 step %c1 {
// HOST: func.call @moert_sgemm
// HOST-NOT: scf.for
// HOST: gpu.module

// SM80: gpu.binary @moe_block_kernel{{[_0-9]*}}  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80">
// SM80-SAME: .target sm_80
// SM80-SAME: .maxntid 128, 1, 1
func.func @moe_block(%x: tensor<16x32xf32>, %router: tensor<4x32xf32>,
                     %wi: tensor<4x64x32xf32>, %wo: tensor<4x32x64xf32>)
    -> tensor<16x32xf32> attributes {llvm.emit_c_interface} {
  %y = moe.layer %x router %router experts(up %wi down %wo)
      k = 1 score = softmax activation = relu capacity = 5
      : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
         tensor<4x32x64xf32>) -> tensor<16x32xf32>
  return %y : tensor<16x32xf32>
}

func.func @moe_block_one_token(%x: tensor<1x32xf32>, %router: tensor<4x32xf32>,
                               %wi: tensor<4x64x32xf32>, %wo: tensor<4x32x64xf32>)
    -> tensor<1x32xf32> attributes {llvm.emit_c_interface} {
  %y = moe.layer %x router %router experts(up %wi down %wo)
      k = 2 score = softmax renormalize activation = relu
      : (tensor<1x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
         tensor<4x32x64xf32>) -> tensor<1x32xf32>
  return %y : tensor<1x32xf32>
}
