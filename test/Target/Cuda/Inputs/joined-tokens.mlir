module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @store(%m: memref<16xf32>) kernel {
      %v = arith.constant 1.0 : f32
      %c0 = arith.constant 0 : index
      memref.store %v, %m[%c0] : memref<16xf32>
      gpu.return
    }
  }
  func.func @events(%m: memref<16xf32>) attributes {llvm.emit_c_interface} {
    %c1 = arith.constant 1 : index
    %t0 = gpu.wait async
    %t1 = gpu.wait async
    %t2 = gpu.wait async [%t0, %t1]
    %t3 = gpu.launch_func async [%t2] @kernels::@store blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    gpu.wait [%t3]
    return
  }
}
