/*===- cuda_blas.c - moert_sgemm on the GPU through cuBLAS ----------------===*
 *
 * The CUDA backend's `moert_sgemm` (what moe-linalg-to-blas calls): the
 * operands are managed buffers; a row-major product is cuBLAS's
 * column-major product of the transposes, C^T = op(B)^T op(A)^T. The call
 * is issued on the runtime's stream and does not wait: compiled code waits
 * (moert_gpu_sync) before its host reads. f32 in and out, f32
 * accumulation by default (CUBLAS_COMPUTE_32F: no TF32).
 *
 *===----------------------------------------------------------------------===*/

#include "../blas_layout.h"
#include "cuda_internal.h"

#include "moert/memref.h"
#include "moert/model.h"

#include <cublas_v2.h>
#include <stdio.h>
#include <string.h>

static cublasHandle_t gHandle;
/* moert_set_gemm_mode: f32 inputs and output, f32 accumulation; the fast
 * modes round the inputs for the tensor cores. */
static cublasComputeType_t gCompute = CUBLAS_COMPUTE_32F;

moert_status_t moert_set_gemm_mode(const char *mode) {
  static const struct {
    const char *name;
    cublasComputeType_t compute;
  } kModes[] = {{"f32", CUBLAS_COMPUTE_32F},
                {"tf32", CUBLAS_COMPUTE_32F_FAST_TF32},
                {"bf16", CUBLAS_COMPUTE_32F_FAST_16BF},
                {"f16", CUBLAS_COMPUTE_32F_FAST_16F}};
  for (size_t i = 0; i < sizeof(kModes) / sizeof(kModes[0]); ++i)
    if (!strcmp(mode, kModes[i].name)) {
      gCompute = kModes[i].compute;
      return NULL;
    }
  return moert_status_make(MOERT_INVALID_ARGUMENT,
                           "unknown matrix product mode '%s' (f32, tf32, bf16 "
                           "or f16)",
                           mode);
}

static void checkBlas(cublasStatus_t status, const char *what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    moertCudaFail(what, cublasGetStatusString(status));
}

MOERT_API void _mlir_ciface_moert_sgemm(moert_memref2d_f32_t *a,
                                        moert_memref2d_f32_t *b,
                                        moert_memref2d_f32_t *c,
                                        int32_t transposeA, int32_t transposeB,
                                        int32_t flags) {
  int accumulate = flags & MOERT_GEMM_ACCUMULATE;
  /* The router's logits (MOERT_GEMM_EXACT) stay f32: rounded inputs would
   * flip routing decisions. */
  cublasComputeType_t compute =
      (flags & MOERT_GEMM_EXACT) ? CUBLAS_COMPUTE_32F : gCompute;
  moertGemm g;
  int plan = moertPlanGemm(a, b, c, transposeA, transposeB, &g);
  if (plan == 0)
    return;
  if (plan == 2) {
    /* Shapes BLAS cannot take: on the host, after the device is idle. */
    moertCudaSynchronize();
    moertGemmLoop(a, b, c, transposeA, transposeB, accumulate);
    return;
  }
  moertCudaInit();
  if (!gHandle) {
    checkBlas(cublasCreate(&gHandle), "cublasCreate");
    /* After the kernels launched before it, before those after it. */
    checkBlas(cublasSetStream(gHandle, moertCudaStream()), "cublasSetStream");
  }
  size_t capacity;
  char *what = moertCudaLastWork(&capacity);
  snprintf(what, capacity, "moert_sgemm (m=%ld n=%ld k=%ld)", (long)g.m,
           (long)g.n, (long)g.k);
  float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  /* Column-major: C^T (n x m) = op(B)^T op(A)^T, the row-major operands
   * read as their transposes with the same transpose flags. */
  checkBlas(cublasGemmEx(gHandle, g.transposeB ? CUBLAS_OP_T : CUBLAS_OP_N,
                         g.transposeA ? CUBLAS_OP_T : CUBLAS_OP_N, (int)g.n,
                         (int)g.m, (int)g.k, &alpha, b->aligned + b->offset,
                         CUDA_R_32F, (int)g.ldb, a->aligned + a->offset,
                         CUDA_R_32F, (int)g.lda, &beta, c->aligned + c->offset,
                         CUDA_R_32F, (int)g.ldc, compute, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
  moertCudaIssued();
}
