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
  int64_t m = c->sizes[0], n = c->sizes[1];
  int64_t k = transposeA ? a->sizes[0] : a->sizes[1];
  if (m == 0 || n == 0)
    return;
  int aCol, bCol, cCol;
  int64_t lda, ldb, ldc;
  if (k == 0 || !moertBlasLayout(a, &aCol, &lda) ||
      !moertBlasLayout(b, &bCol, &ldb) || !moertBlasLayout(c, &cCol, &ldc) ||
      cCol) {
    /* Shapes BLAS cannot take: on the host, after the device is idle. */
    moertCudaSynchronize();
    moertGemmLoop(a, b, c, transposeA, transposeB, accumulate);
    return;
  }
  moertCudaInit();
  if (!gHandle)
    checkBlas(cublasCreate(&gHandle), "cublasCreate");
  cublasOperation_t ta =
      (transposeA != 0) != (aCol != 0) ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t tb =
      (transposeB != 0) != (bCol != 0) ? CUBLAS_OP_T : CUBLAS_OP_N;
  float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  checkBlas(cublasSgemm(gHandle, tb, ta, (int)n, (int)m, (int)k, &alpha,
                        b->aligned + b->offset, (int)ldb,
                        a->aligned + a->offset, (int)lda, &beta,
                        c->aligned + c->offset, (int)ldc),
            "cublasSgemm");
  moertCudaSynchronize();
}
