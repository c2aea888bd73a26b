//===- Passes.td - moe code-generation transforms ----------*- tablegen -*-===//
//
// Transforms that shape generated code without converting between dialects:
// math approximations for the CPU target, and the CUDA target's kernel
// shaping and launch scheduling. In pipeline order, each with a before/after
// example. Defs end in `Pass` and set no constructor.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// math functions -> polynomials (any level)
//===----------------------------------------------------------------------===//

def MoEApproximateMathPass : Pass<"moe-approximate-math"> {
  let summary = "Replace f32 exp and erf by MLIR's polynomial approximations";
  let description = [{
    `math.exp` and `math.erf` otherwise become calls to libm's `expf` and
    `erff`, which LLVM cannot vectorize; softmax, SiLU and GELU then run one
    scalar call per element. This pass applies upstream's polynomial
    approximations (`populateMathPolynomialApproximationPatterns`, restricted
    to `exp` and `erf`), which are plain arithmetic that the loop vectorizer
    handles. Their error is within a few ulp of f32, far below the 1e-5
    tolerance of the end-to-end checks against PyTorch. Measured on the MoE
    block benchmark (docs/Performance.md).

    Before:

    ```mlir
    %e = math.exp %x : f32
    ```

    After (abridged):

    ```mlir
    %k = math.floor ...        // range reduction x = k ln2 + r
    %p = math.fma %r, %c5, %c4 : f32
    ...                        // degree-6 polynomial in r
    %e = arith.mulf %p, %two_k : f32
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// CUDA: one grid dimension per kernel
//===----------------------------------------------------------------------===//

def MoEGpuCollapseParallelLoopsPass
    : Pass<"moe-gpu-collapse-parallel-loops", "ModuleOp"> {
  let summary = "Collapse every outermost scf.parallel into one dimension "
                "before it is mapped to a kernel grid";
  let description = [{
    Part of the CUDA pipeline (`moe-cuda-pipeline`, docs/Cuda.md), after
    `convert-linalg-to-parallel-loops` and before the loops are tiled by the
    block size and mapped to the grid. A parallel loop over `[T, H]` would
    otherwise map `T` to grid dimension y, which CUDA caps at 65535 blocks,
    and leave most threads of a block idle when its first dimension is
    small. Collapsing (upstream `collapseParallelLoops`) gives one loop over
    `T·H` whose body recovers the indices by division and remainder; tiled by
    256 it becomes a one-dimensional grid of full blocks. Nested parallel
    loops are left alone.

    Before:

    ```mlir
    scf.parallel (%i, %j) = (%c0, %c0) to (%c8, %c64) step (%c1, %c1) {
      ... %i, %j ...
    }
    ```

    After (abridged):

    ```mlir
    scf.parallel (%k) = (%c0) to (%c512) step (%c1) {
      %j = arith.remsi %k, %c64 : index
      %i = arith.divsi %k, %c64 : index
      ... %i, %j ...
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::scf::SCFDialect"
  ];
}

//===----------------------------------------------------------------------===//
// CUDA: constant globals -> buffers the device can read
//===----------------------------------------------------------------------===//

def MoEGpuCopyGlobalsPass : Pass<"moe-gpu-copy-globals", "ModuleOp"> {
  let summary = "Read constant globals through allocated copies, so that "
                "kernels never see host globals";
  let description = [{
    Part of the CUDA pipeline (`moe-cuda-pipeline`, docs/Cuda.md), after
    bufferization and before `buffer-deallocation-pipeline`. A constant
    tensor (the rotary tables of the imported models) bufferizes to a
    `memref.get_global` of a static host global; once a loop that reads it
    becomes a kernel, the device would dereference a host address. This pass
    gives each constant global a function reads one `memref.alloc` of the
    same shape at the function's entry, filled by `memref.copy`, and makes
    every `memref.get_global` of it in the function (loops included) read
    the copy. In the CUDA pipeline allocations come from the runtime's
    allocator (managed memory the device can reach), and
    `buffer-deallocation-pipeline` frees the copy.

    Before:

    ```mlir
    %t = memref.get_global @__constant_8x16xf32 : memref<8x16xf32>
    ... uses of %t ...
    ```

    After (at the function's entry):

    ```mlir
    %t = memref.get_global @__constant_8x16xf32 : memref<8x16xf32>
    %c = memref.alloc() : memref<8x16xf32>
    memref.copy %t, %c : memref<8x16xf32> to memref<8x16xf32>
    ... uses of %c ...
    ```

    Globals with a non-identity layout, and globals that are not constant
    (writes would go to the copy and be lost), are errors.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

//===----------------------------------------------------------------------===//
// CUDA: long row reductions split into parallel partial reductions
//===----------------------------------------------------------------------===//

def MoEGpuSplitReductionsPass : Pass<"moe-gpu-split-reductions"> {
  let summary = "Split long reductions into parallel partial reductions and "
                "a short final one, so that no GPU thread reduces a whole row";
  let description = [{
    Part of the CUDA pipeline (`moe-cuda-pipeline`, docs/Cuda.md), on
    tensors before bufferization. A kernel made from a `linalg.generic`
    runs one thread per point of its parallel dimensions and the reduction
    sequentially inside it, so an RMSNorm over H = 4096 at one token is one
    thread reading 4096 values. This pass applies upstream
    `linalg::splitReduction` to every `linalg.generic` with one reduction
    dimension of static size N >= `min-size` (default 256): the reduction
    becomes R parallel partial reductions of N / R elements (R, the largest
    power of two with R * R <= N that divides N) and a final reduction over
    R. Only row reductions are split: one input, one output, indexing maps
    that are projected permutations, no `linalg.index`; products of two
    operands (cuBLAS's, attention's) and ops whose combiner `splitReduction`
    does not recognize are left alone. The result is the same up to the
    order of the floating-point sums.

    Before (a sum of squares over 4096 columns):

    ```mlir
    %s = linalg.generic {indexing_maps = [affine_map<(t, h) -> (t, h)>,
                                          affine_map<(t, h) -> (t)>],
                         iterator_types = ["parallel", "reduction"]}
        ins(%x : tensor<1x4096xf32>) outs(%zero : tensor<1xf32>) {...}
    ```

    After:

    ```mlir
    %e = tensor.expand_shape %x [[0], [1, 2]] : tensor<1x4096xf32> into tensor<1x64x64xf32>
    %p = linalg.generic {..., iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%e : tensor<1x64x64xf32>) outs(%partial : tensor<1x64xf32>) {...}
    %s = linalg.generic {..., iterator_types = ["parallel", "reduction"]}
        ins(%p : tensor<1x64xf32>) outs(%zero : tensor<1xf32>) {...}
    ```
  }];
  let options = [
    Option<"minSize", "min-size", "int64_t", /*default=*/"256",
           "Split reductions over at least this many elements">,
  ];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// CUDA: buffer copies -> kernels
//===----------------------------------------------------------------------===//

def MoEGpuDeviceCopiesPass : Pass<"moe-gpu-device-copies"> {
  let summary = "Make copies between buffers linalg.copy, so that they "
                "become kernels instead of host loops";
  let description = [{
    Part of the CUDA pipeline (`moe-cuda-pipeline`, docs/Cuda.md), before
    `convert-linalg-to-parallel-loops`. Bufferization copies buffers with
    `memref.copy` (an expert's output into the stacked expert buffer, a
    buffer copied before an in-place write), which lowers to a `memcpy` or a
    loop on the host: on the GPU that would move device data through the
    host. This pass rewrites every `memref.copy` into `linalg.copy`, which
    becomes a parallel loop and then a kernel, except a copy whose source is
    a `memref.get_global`: a host global (see `moe-gpu-copy-globals`) must be
    read by the host.

    Before:

    ```mlir
    memref.copy %y, %slot : memref<?x16xf32> to memref<?x16xf32, strided<[16, 1], offset: ?>>
    ```

    After:

    ```mlir
    linalg.copy ins(%y : memref<?x16xf32>)
        outs(%slot : memref<?x16xf32, strided<[16, 1], offset: ?>>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

//===----------------------------------------------------------------------===//
// CUDA: asynchronous launches, host synchronized only where it reads memory
//===----------------------------------------------------------------------===//

def MoEGpuAsyncLaunchesPass : Pass<"moe-gpu-async-launches", "ModuleOp"> {
  let summary = "Launch kernels asynchronously and synchronize the host only "
                "before it touches memory";
  let description = [{
    Part of the CUDA pipeline (`moe-cuda-pipeline`, docs/Cuda.md), after
    `gpu-kernel-outlining`. A `gpu.launch_func` without an async token
    lowers to a launch followed by a wait for the device, so a layer of
    thirty small kernels waits thirty times. This pass makes every launch in
    a host function asynchronous (`gpu.launch_func async` on a fresh
    `gpu.wait async` token, which the runtime maps to its one in-order
    stream, where its cuBLAS products go too) and inserts a call to the
    runtime's `moert_gpu_sync` (wait for the stream; nothing to do when no
    work was issued since the last wait) where the host needs the device's
    results:

    - before a host operation that reads or writes memory (`memref.load`,
      `memref.store`, `memref.copy`, ...; allocation and deallocation do not
      count: a freed buffer is only reused by work issued after it on the
      same stream, or by the host after a wait);
    - before a call, except to `moert_sgemm` (enqueued on the stream) and
      `moert_gpu_sync` itself: collectives and other runtime functions read
      their buffers on the host or on their own streams;
    - before the function returns (its caller reads the results).

    A wait is not inserted when no launch or `moert_sgemm` call comes
    between it and the previous one in the same block. An op with regions
    (a loop) whose body touches memory waits first if work is pending;
    inside the body, work of earlier iterations counts as pending only for
    the buffers device work in the loop may touch (their allocations, or
    any function argument, or anything when a buffer's origin is unknown)
    and for allocations made inside the loop (the runtime may hand them a
    freed block an earlier iteration's work still uses),
    so a loop reading an allocation the loop's kernels do not touch (the
    expert loop reading the row counts) waits once, before the loop.

    Before:

    ```mlir
    gpu.launch_func @k0::@k0 blocks in (%g, %c1, %c1) threads in (%b, %c1, %c1) args(%x : memref<16xf32>)
    %v = memref.load %x[%c0] : memref<16xf32>
    ```

    After:

    ```mlir
    %t = gpu.wait async
    %t0 = gpu.launch_func async [%t] @k0::@k0 blocks in (%g, %c1, %c1) threads in (%b, %c1, %c1) args(%x : memref<16xf32>)
    call @moert_gpu_sync() : () -> ()
    %v = memref.load %x[%c0] : memref<16xf32>
    ```

    A function that issues no device work (no launch, no `moert_sgemm`) is
    left alone. Code without kernels (the `--cuda-emulate-on-cpu` path, the
    CPU pipeline) never runs this pass.
  }];
  let dependentDialects = [
    "::mlir::func::FuncDialect",
    "::mlir::gpu::GPUDialect"
  ];
}

#endif // MOE_TRANSFORMS_PASSES_TD
