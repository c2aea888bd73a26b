/*===- cuda_blas.c - moert_sgemm on the GPU through cuBLAS ----------------===*
 *
 * The CUDA backend's `moert_sgemm` (what moe-linalg-to-blas calls): the
 * operands are managed buffers; a row-major product is cuBLAS's
 * column-major product of the transposes, C^T = op(B)^T op(A)^T. The call
 * waits for the device, since host loops may read C next. f32 in and out,
 * f32 accumulation (CUBLAS_COMPUTE_32F: no TF32).
 *
 *===----------------------------------------------------------------------===*/

#include "../blas_layout.h"
#include "cuda_internal.h"

#include "moert/memref.h"

#include <cublas_v2.h>
#include <stdio.h>

static cublasHandle_t gHandle;

static void checkBlas(cublasStatus_t status, const char *what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    moertCudaFail(what, cublasGetStatusString(status));
}

MOERT_API void _mlir_ciface_moert_sgemm(moert_memref2d_f32_t *a,
                                        moert_memref2d_f32_t *b,
                                        moert_memref2d_f32_t *c,
                                        int32_t transposeA, int32_t transposeB,
                                        int32_t accumulate) {
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
  if (!gHandle)
    checkBlas(cublasCreate(&gHandle), "cublasCreate");
  float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  /* Column-major: C^T (n x m) = op(B)^T op(A)^T, the row-major operands
   * read as their transposes with the same transpose flags. */
  checkBlas(cublasSgemm(gHandle, g.transposeB ? CUBLAS_OP_T : CUBLAS_OP_N,
                        g.transposeA ? CUBLAS_OP_T : CUBLAS_OP_N, (int)g.n,
                        (int)g.m, (int)g.k, &alpha, b->aligned + b->offset,
                        (int)g.ldb, a->aligned + a->offset, (int)g.lda, &beta,
                        c->aligned + c->offset, (int)g.ldc),
            "cublasSgemm");
  moertCudaSynchronize();
}
