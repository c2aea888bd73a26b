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

def ConvertMoEToLinalgPass : Pass<"convert-moe-to-linalg"> {
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
    OpenBLAS's `cblas_sgemm` (or, for a few rows times a weight, its own
    kernel that reads the weight once). A batched contraction — attention's
    per-head products `scores[b, h, i, j] = q[b, i, h, :] · k[b, j, h floordiv
    g, :]`, where batch loops index an operand by themselves or by a floordiv
    (grouped-query heads) and one loop each is m, n and k — becomes an
    `scf.for` nest over the batch loops with one call per iteration on
    rank-reduced 2-D `memref.subview`s. Calls use beta = 1 (they accumulate into `C`, as the
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
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
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
    The last step before translation to LLVM IR. The module's
    `#moe.manifest` (the model's sizes from the importer, the weight buffer
    and its `#moe.weight` tensors from `moe-pack-weights`) is written as the
    text the runtime parses (`runtime/include/moert/model.h`: one item per
    line, a weight as `tensor`, `tensor-slice tp|etp D`, `tensor-ep` or
    `tensor-ep-slice etp D` with its offset, count and shape, and `stage S`
    before it when one stage loads it), with what the runtime must not
    derive itself in the header:

    - the plan's layout, from the module's `#moe.plan` (PlanFacts.h): a
      `plan DP TP EP ETP PP` line and, per rank, its coordinates and the
      colors of its groups (`rank R coords ... colors ...`), which the
      runtime's `moert_layout_parse` reads to build its communicators;
    - with `gemm` other than `f32`, a `gemm MODE` line: the compute mode of
      the CUDA runtime's matrix products (`moe-compile --cuda-gemm`).

    It becomes the NUL-terminated constant `@moe_model_manifest`, and the
    `moe.manifest` and `moe.plan` module attributes, which have no LLVM
    meaning, are removed. A module without a manifest only loses its
    `moe.plan`. A module that already defines the global is an error.

    Before:

    ```mlir
    module attributes {
        moe.manifest = #moe.manifest<arch = "X", batch = 2, seq = 8,
            hidden = 16, vocab = 32, blob = 512, weights = [
            #moe.weight<"emb", offset = 0, shape = [32, 16]>]>,
        moe.plan = #moe.plan<dp = 2>} { ... }
    ```

    After:

    ```mlir
    module {
      llvm.mlir.global external constant @moe_model_manifest(
          "moe-model 1\0Aplan 2 1 1 1 1\0Arank 0 coords 0 0 0 0 0 0 0 colors 0 0 0 0 0 0\0A...
           arch X\0Abatch 2\0A...blob 512\0Atensor 0 1 2 32 16 emb\0A\00")
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
