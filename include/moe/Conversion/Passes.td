//===- Passes.td - moe conversion passes -------------------*- tablegen -*-===//
//
// File organization: conversions in pipeline order, each with a before/after
// example. Defs end in `Pass` and set no constructor.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// moe -> linalg / tensor / scf (tensor level, before bufferization)
//===----------------------------------------------------------------------===//

def MoELowerToLinalgPass : Pass<"moe-lower-to-linalg"> {
  let summary = "Lower moe.router, dispatch, experts and combine to linalg, "
                "tensor and scf";
  let description = [{
    Gives each moe op its reference semantics (docs/Routing.md) in upstream
    dialects on tensors, ready for one-shot bufferization:

    - `moe.router`: `x · Wᵀ` as a `linalg.generic` contraction (marked
      `moe.exact_product`: kept in f32 by the runtime's faster modes); softmax or
      sigmoid; the top-k as a rank computation (`rank[t,e]` = number of
      experts with a larger key, or an equal key and a lower id) followed by
      a selection `ids[t,j] = e` where `rank[t,e] = j` — deterministic, with
      ties to the lower id, and no data-dependent control flow; optional
      renormalization.
    - `moe.dispatch`: an `scf.for` over the (token, choice) pairs in drop
      order keeping per-expert fill counts, the slot map and the source token
      of every slot, then one `linalg.generic` gathering the buffer. With
      `parallel-dispatch` (the CUDA target) the same slots come from a
      chunked scan of `linalg.generic`s instead, with no sequential loop:
      per-chunk expert histograms, their exclusive prefix over chunks, the
      rank of each pair among its chunk's pairs of the same expert, and the
      source token of each slot found by searching its chunk.
    - `moe.experts`: an `scf.for` over experts computing only the first
      `counts[e]` rows (all `C` without counts) with three contractions and
      the activation.
    - `moe.combine`: one `linalg.generic` over `[T, H]` summing the `k`
      weighted expert rows of each token, skipping dropped ones.

    Element types other than f32 are rejected with a diagnostic for now (the
    CPU path computes in f32; the importer converts weights at load time).

    Before:

    ```mlir
    %y = moe.combine %out slots %s experts %ids weights %w
        : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>,
           tensor<8x2xf32>) -> tensor<8x16xf32>
    ```

    After:

    ```mlir
    %y = linalg.generic {iterator_types = ["parallel", "parallel"], ...}
        outs(%init : tensor<8x16xf32>) {
    ^bb0(%acc: f32):
      %t = linalg.index 0 : index
      %e = tensor.extract %ids[%t, %c0] : tensor<8x2xi32>
      ...  // for each of the k choices: weight * out[e, slot, h] if slot >= 0
      linalg.yield %sum : f32
    } -> tensor<8x16xf32>
    ```
  }];
  let options = [
    Option<"parallelDispatch", "parallel-dispatch", "bool",
           /*default=*/"false",
           "Assign dispatch slots with a parallel chunked scan (for GPUs) "
           "instead of one sequential loop over the (token, choice) pairs">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// shard collectives -> runtime calls (tensor level, before bufferization)
//===----------------------------------------------------------------------===//

def MoELowerCollectivesPass : Pass<"moe-lower-collectives", "ModuleOp"> {
  let summary = "Lower the shard collectives of a partitioned model to calls "
                "into the runtime's MPI backend";
  let description = [{
    A partitioned model (`moe-compile --plan`) communicates with upstream
    `shard` ops on the grids `@moe_dense` (pp x dp x tp) and `@moe_experts`
    (pp x dp*tp/(ep*etp) x ep x etp). This pass maps (grid, axis) to the
    runtime's groups — `@moe_dense` axis 0 is the pipeline group (one rank
    per stage), axis 1 the data-parallel group, axis 2 the tensor-parallel
    group, `@moe_experts` axis 2 the expert-parallel group and axis 3 the
    expert-tensor-parallel group — and replaces, on f32 tensors:

    - `shard.all_gather` (gather axis 0) by `moert_all_gather_f32`;
    - `shard.all_reduce` (sum) by `moert_all_reduce_f32`;
    - `shard.reduce_scatter` (sum, scatter axis 0) by
      `moert_reduce_scatter_f32`;
    - `shard.all_slice` by a `tensor.extract_slice` at the process's block
      (no communication);
    - `shard.all_to_all` of a rank-3 tensor with (split, concat) axes (0, 1)
      or (1, 0) — the expert-parallel dispatch and combine — by a transpose
      that makes each destination's chunk contiguous, `moert_all_to_all_f32`,
      and the inverse transpose;
    - `shard.process_multi_index` of one axis by `moert_group_rank`;
    - `shard.send` / `shard.recv` with one (static or dynamic) peer index by
      `moert_send_f32` / `moert_recv_f32`, point to point inside the group
      (a pipeline passing hidden states to the next stage).

    ```mlir
    // before
    %r = shard.recv %e on @moe_dense grid_axes = [0] source = [%prev]
        : (tensor<4x64xf32>, index) -> tensor<4x64xf32>
    // after
    %buf = memref.alloc() : memref<256xf32>
    call @moert_recv_f32(%cast, %c5_i32, %prev_i64) : (...) -> ()
    %r = ... bufferization.to_tensor %buf ... tensor.expand_shape ...
    ```

    A module whose `dlti.map` fixes `"MPI:comm_world_rank"` (as upstream's
    shard-to-MPI tests do) gets constants instead of `moert_group_rank`
    calls, placed in the groups by the module's `#moe.plan`; that makes the
    lowering of one rank testable without MPI.

    Each call takes contiguous 1-D buffers: the tensor is collapsed, handed
    over with `bufferization.to_buffer`, and the result comes back through
    `bufferization.to_tensor restrict` of a fresh allocation, so one-shot
    bufferization can run afterwards. The grids are erased. Anything else
    (another grid or axis, another reduction or element type) is an error
    naming the op.

    Before:

    ```mlir
    %g = shard.all_gather %x on @moe_dense grid_axes = [1] gather_axis = 0
        : tensor<8x64xf32> -> tensor<16x64xf32>
    ```

    After:

    ```mlir
    %flat = tensor.collapse_shape %x [[0, 1]] : tensor<8x64xf32> into tensor<512xf32>
    %in = bufferization.to_buffer %flat read_only : tensor<512xf32> to memref<512xf32>
    %out = memref.alloc() : memref<1024xf32>
    call @moert_all_gather_f32(%in_cast, %out_cast, %c1_i32) : (...) -> ()
    %t = bufferization.to_tensor %out restrict writable : memref<1024xf32> to tensor<1024xf32>
    %g = tensor.expand_shape %t [[0, 1]] output_shape [16, 64] : tensor<1024xf32> into tensor<16x64xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

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

//===----------------------------------------------------------------------===//
// linalg contractions -> BLAS calls (buffer level, after bufferization)
//===----------------------------------------------------------------------===//

def MoELinalgToBlasPass : Pass<"moe-linalg-to-blas", "ModuleOp"> {
  let summary = "Replace f32 matrix-product linalg ops on memrefs by calls to "
                "the runtime's BLAS entry point";
  let description = [{
    Finds every `linalg` op on memrefs that is a plain 2-D contraction
    (`C[m,n] += A · B` with each operand's dimensions in either order, f32,
    and a multiply-add body, as `linalg::inferContractionDims` sees it) and
    replaces it by a call to `moert_sgemm`, which the runtime implements with
    OpenBLAS's `cblas_sgemm` (beta = 1: the call accumulates into `C`, as the
    linalg op does — except when `C` was zero-filled by the op just before,
    whose `linalg.fill` is then erased and the call told to overwrite, beta =
    0). The last argument holds flags: bit 0 accumulate (beta = 1), bit 1
    exact f32, set for an op marked `moe.exact_product` (the router's
    product, which the CUDA runtime then keeps in f32 under a faster
    `--cuda-gemm` mode). Operands are cast to fully dynamic strided memrefs; the
    runtime reads leading dimensions from the strides and falls back to a
    loop when an operand has no unit-stride dimension. Everything else is
    left for `convert-linalg-to-loops`.

    The callee is declared `func.func private @moert_sgemm(...)` with
    `llvm.emit_c_interface`, so the runtime receives memref descriptors.

    Before:

    ```mlir
    linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                                     affine_map<(m, n, k) -> (n, k)>,
                                     affine_map<(m, n, k) -> (m, n)>],
                    iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%a, %w : memref<8x16xf32>, memref<32x16xf32>)
        outs(%c : memref<8x32xf32>) { ... mulf, addf ... }
    ```

    After:

    ```mlir
    %transA = arith.constant 0 : i32
    %transB = arith.constant 1 : i32
    %flags = arith.constant 1 : i32  // accumulate
    call @moert_sgemm(%a_cast, %w_cast, %c_cast, %transA, %transB, %flags)
        : (memref<?x?xf32, strided<[?, ?], offset: ?>>, ..., i32, i32, i32) -> ()
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::memref::MemRefDialect"
  ];
}

//===----------------------------------------------------------------------===//
// The manifest -> the LLVM global the runtime reads
//===----------------------------------------------------------------------===//

def ConvertMoEManifestToLLVMPass
    : Pass<"convert-moe-manifest-to-llvm", "ModuleOp"> {
  let summary = "Put the module's weight manifest and rank layout into the "
                "LLVM global the runtime reads";
  let description = [{
    The last step before translation to LLVM IR. The module's `moe.manifest`
    (the weights the forward function takes, written by the importer) is
    completed with what the runtime must not derive itself:

    - the plan's layout, from the module's `#moe.plan` (PlanFacts.h): a
      `plan DP TP EP ETP PP` line and, per rank, its coordinates and the
      colors of its groups (`rank R coords ... colors ...`), which the
      runtime's `moert_layout_parse` reads to build its communicators;
    - with `gemm` other than `f32`, a `gemm MODE` line: the compute mode of
      the CUDA runtime's matrix products (`moe-compile --cuda-gemm`).

    It becomes the NUL-terminated constant `@moe_model_manifest`, and the
    `moe.manifest` and `moe.plan` module attributes, which have no LLVM
    meaning, are removed. A module without a manifest only loses its
    `moe.plan`. A manifest that does not start with its version line is an
    error.

    Before:

    ```mlir
    module attributes {moe.manifest = "moe-model 1\0Aarch ...\0A...",
                       moe.plan = #moe.plan<dp = 2>} { ... }
    ```

    After:

    ```mlir
    module {
      llvm.mlir.global external constant @moe_model_manifest(
          "moe-model 1\0Aplan 2 1 1 1 1\0Arank 0 coords 0 0 0 0 0 0 0 colors 0 0 0 0 0 0\0A...\00")
          : !llvm.array<N x i8>
      ...
    }
    ```
  }];
  let options = [
    Option<"gemm", "gemm", "std::string", /*default=*/"\"f32\"",
           "Compute mode of the CUDA runtime's matrix products: f32, tf32, "
           "bf16 or f16">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
