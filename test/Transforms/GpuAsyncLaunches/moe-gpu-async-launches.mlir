// RUN: moe-opt %s --moe-gpu-async-launches --split-input-file | FileCheck %s

// Launches become asynchronous; the host waits once before its first read of
// a buffer (not again before the second: nothing was issued in between),
// not before moert_sgemm (issued on the same stream), again before a call
// that may read buffers, and not before returning when nothing was issued
// since (the call waits for its own work).
// CHECK-LABEL: func.func private @moert_gpu_sync()
// CHECK-LABEL: func.func @host
// CHECK:      %[[T0:.*]] = gpu.wait async
// CHECK-NEXT: %{{.*}} = gpu.launch_func async [%[[T0]]] @kernels::@fill
// CHECK-NEXT: %[[T1:.*]] = gpu.wait async
// CHECK-NEXT: %{{.*}} = gpu.launch_func async [%[[T1]]] @kernels::@fill
// CHECK-NEXT: memref.alloc
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: memref.load
// CHECK-NEXT: memref.store
// CHECK-NEXT: call @moert_sgemm
// CHECK-NEXT: %[[T2:.*]] = gpu.wait async
// CHECK-NEXT: gpu.launch_func async [%[[T2]]]
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: call @moert_all_reduce_f32
// CHECK-NEXT: memref.dealloc
// CHECK-NEXT: return
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func private @moert_sgemm(memref<16xf32>)
  func.func private @moert_all_reduce_f32(memref<16xf32>)
  func.func @host(%m: memref<16xf32>) -> f32 {
    %c1 = arith.constant 1 : index
    %c0 = arith.constant 0 : index
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    %a = memref.alloc() : memref<16xf32>
    %v = memref.load %m[%c0] : memref<16xf32>
    memref.store %v, %a[%c0] : memref<16xf32>
    call @moert_sgemm(%a) : (memref<16xf32>) -> ()
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<16xf32>)
    call @moert_all_reduce_f32(%a) : (memref<16xf32>) -> ()
    memref.dealloc %a : memref<16xf32>
    return %v : f32
  }
}

// -----

// A loop body is entered with work pending (its previous iteration's): the
// read at its top waits; after the loop, the read waits again. Code before
// the first launch does not wait.
// CHECK-LABEL: func.func @loop
// CHECK:      memref.load
// CHECK:      scf.for
// CHECK-NEXT:   call @moert_gpu_sync() : () -> ()
// CHECK-NEXT:   memref.load
// CHECK-NEXT:   gpu.wait async
// CHECK-NEXT:   gpu.launch_func async
// CHECK:      }
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: memref.load
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func @loop(%m: memref<16xf32>, %n: index) -> f32 {
    %c1 = arith.constant 1 : index
    %c0 = arith.constant 0 : index
    %first = memref.load %m[%c0] : memref<16xf32>
    scf.for %i = %c0 to %n step %c1 {
      %v = memref.load %m[%i] : memref<16xf32>
      gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    }
    %v = memref.load %m[%c0] : memref<16xf32>
    %s = arith.addf %first, %v : f32
    return %s : f32
  }
}

// -----

// A function without kernels is left alone (no waits, no declaration).
// CHECK-LABEL: func.func @no_kernels
// CHECK-NOT: moert_gpu_sync
// CHECK: // -----
module {
  func.func @no_kernels(%m: memref<16xf32>) -> f32 {
    %c0 = arith.constant 0 : index
    %v = memref.load %m[%c0] : memref<16xf32>
    return %v : f32
  }
}

// -----

// The caller reads what the kernels wrote: a wait before returning.
// CHECK-LABEL: func.func @launch_then_return
// CHECK:      gpu.launch_func async
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: return
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func @launch_then_return(%m: memref<16xf32>) -> memref<16xf32> {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    return %m : memref<16xf32>
  }
}

// -----

// Products alone are device work too: the host waits before it reads the
// product and before returning.
// CHECK-LABEL: func.func @products_only
// CHECK:      call @moert_sgemm
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: memref.load
// CHECK-NEXT: call @moert_sgemm
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: return
module {
  func.func private @moert_sgemm(memref<16xf32>)
  func.func @products_only(%m: memref<16xf32>) -> f32 {
    %c0 = arith.constant 0 : index
    call @moert_sgemm(%m) : (memref<16xf32>) -> ()
    %v = memref.load %m[%c0] : memref<16xf32>
    call @moert_sgemm(%m) : (memref<16xf32>) -> ()
    return %v : f32
  }
}

// -----

// An op with regions that reports its own memory effects (a linalg op left
// on the host) waits; an scf.for, whose effects are its body's, does not.
// CHECK-LABEL: func.func @host_linalg
// CHECK:      gpu.launch_func async
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: linalg.fill
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func @host_linalg(%m: memref<16xf32>) {
    %c1 = arith.constant 1 : index
    %zero = arith.constant 0.0 : f32
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    linalg.fill ins(%zero : f32) outs(%m : memref<16xf32>)
    return
  }
}

// -----

// The expert loop's shape: a loop reads an allocation that no device work
// inside the loop touches (the row counts), so one wait before the loop
// covers every iteration; the work inside touches only other buffers.
// CHECK-LABEL: func.func @untouched_in_loop
// CHECK:      gpu.launch_func async
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: scf.for
// CHECK-NEXT:   memref.load
// CHECK-NEXT:   gpu.wait async
// CHECK-NEXT:   gpu.launch_func async
// CHECK-NEXT: }
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: return
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
    gpu.func @count(%m: memref<8xi32>) kernel {
      gpu.return
    }
  }
  func.func @untouched_in_loop(%m: memref<16xf32>, %n: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %counts = memref.alloc() : memref<8xi32>
    gpu.launch_func @kernels::@count blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%counts : memref<8xi32>)
    scf.for %i = %c0 to %n step %c1 {
      %c = memref.load %counts[%i] : memref<8xi32>
      gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    }
    return
  }
}

// -----

// The same loop when the work inside touches the counts: a wait in every
// iteration.
// CHECK-LABEL: func.func @touched_in_loop
// CHECK:      scf.for
// CHECK-NEXT:   call @moert_gpu_sync() : () -> ()
// CHECK-NEXT:   memref.load
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @count(%m: memref<8xi32>) kernel {
      gpu.return
    }
  }
  func.func @touched_in_loop(%n: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %counts = memref.alloc() : memref<8xi32>
    %view = memref.subview %counts[0] [8] [1] : memref<8xi32> to memref<8xi32, strided<[1]>>
    %cast = memref.cast %view : memref<8xi32, strided<[1]>> to memref<8xi32>
    gpu.launch_func @kernels::@count blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%counts : memref<8xi32>)
    scf.for %i = %c0 to %n step %c1 {
      %c = memref.load %cast[%i] : memref<8xi32>
      gpu.launch_func @kernels::@count blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%counts : memref<8xi32>)
    }
    return
  }
}

// -----

// An allocation made inside the loop may reuse (through the runtime's cache
// of freed buffers) a block the previous iteration's kernel still uses: the
// host's write to it waits, although the loop's kernels never see it.
// CHECK-LABEL: func.func @allocated_in_loop
// CHECK:      scf.for
// CHECK-NEXT:   memref.alloc
// CHECK-NEXT:   call @moert_gpu_sync() : () -> ()
// CHECK-NEXT:   memref.store
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func @allocated_in_loop(%n: index, %x: f32) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    scf.for %i = %c0 to %n step %c1 {
      %h = memref.alloc() : memref<16xf32>
      memref.store %x, %h[%c0] : memref<16xf32>
      %d = memref.alloc() : memref<16xf32>
      gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%d : memref<16xf32>)
      memref.dealloc %d : memref<16xf32>
      memref.dealloc %h : memref<16xf32>
    }
    return
  }
}

// -----

// A started collective is ordered behind the kernels by the runtime (an
// event), and its wait and the trace's layer marks read no device data: no
// host wait before any of them. The wait leaves no work behind, so the read
// after it waits only for the launch and the start issued before.
// CHECK-LABEL: func.func @collectives
// CHECK:      gpu.launch_func async
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: call @moert_start_all_to_all_f32
// CHECK-NEXT: call @moert_wait_f32
// CHECK-NEXT: call @moert_gpu_sync() : () -> ()
// CHECK-NEXT: memref.load
// CHECK-NEXT: return
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @fill(%m: memref<16xf32>) kernel {
      gpu.return
    }
  }
  func.func private @moert_trace_layer(i32, i32)
  func.func private @moert_start_all_to_all_f32(memref<16xf32>, memref<16xf32>, i32) -> i64
  func.func private @moert_wait_f32(i64, memref<16xf32>, memref<16xf32>)
  func.func @collectives(%m: memref<16xf32>, %out: memref<16xf32>, %layer: i32) -> f32 {
    %c1 = arith.constant 1 : index
    %c0 = arith.constant 0 : index
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<16xf32>)
    call @moert_trace_layer(%layer, %layer) : (i32, i32) -> ()
    %h = call @moert_start_all_to_all_f32(%m, %out, %layer) : (memref<16xf32>, memref<16xf32>, i32) -> i64
    call @moert_wait_f32(%h, %m, %out) : (i64, memref<16xf32>, memref<16xf32>) -> ()
    %v = memref.load %out[%c0] : memref<16xf32>
    return %v : f32
  }
}
