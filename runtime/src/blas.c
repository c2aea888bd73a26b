/*===- blas.c - matrix products for compiled code -------------------------===*
 *
 * `moert_sgemm` is what `moe-linalg-to-blas` calls: C (+)= op(A) * op(B) on
 * strided f32 memrefs, through OpenBLAS when every operand has a unit-stride
 * dimension, and through a plain loop otherwise.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/memref.h"
#include "moert/moert.h"

#include "blas_layout.h"

#include <cblas.h>

MOERT_API void _mlir_ciface_moert_sgemm(moert_memref2d_f32_t *a,
                                        moert_memref2d_f32_t *b,
                                        moert_memref2d_f32_t *c,
                                        int32_t transposeA, int32_t transposeB,
                                        int32_t accumulate) {
  int64_t m = c->sizes[0], n = c->sizes[1];
  int64_t k = transposeA ? a->sizes[0] : a->sizes[1];
  if (m == 0 || n == 0)
    return;
  if (k == 0) { /* C = 0, or unchanged */
    moertGemmLoop(a, b, c, transposeA, transposeB, accumulate);
    return;
  }
  float beta = accumulate ? 1.0f : 0.0f;

  int aCol, bCol, cCol;
  int64_t lda, ldb, ldc;
  if (moertBlasLayout(a, &aCol, &lda) && moertBlasLayout(b, &bCol, &ldb) &&
      moertBlasLayout(c, &cCol, &ldc) && !cCol) {
    /* A column-major operand is the row-major transpose of itself. */
    enum CBLAS_TRANSPOSE ta =
        (transposeA != 0) != (aCol != 0) ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb =
        (transposeB != 0) != (bCol != 0) ? CblasTrans : CblasNoTrans;
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, 1.0f,
                a->aligned + a->offset, (blasint)lda, b->aligned + b->offset,
                (blasint)ldb, beta, c->aligned + c->offset, (blasint)ldc);
    return;
  }
  moertGemmLoop(a, b, c, transposeA, transposeB, accumulate);
}
