/*===- blas.c - matrix products for compiled code -------------------------===*
 *
 * `moert_sgemm` is what `moe-linalg-to-blas` calls: C (+)= op(A) * op(B) on
 * strided f32 memrefs, through OpenBLAS when every operand has a unit-stride
 * dimension, and through a plain loop otherwise.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/memref.h"
#include "moert/moert.h"

#include <cblas.h>

/* How a 2-D memref maps onto BLAS: row- or column-major with a leading
 * dimension. Returns 0 when neither dimension has unit stride. */
static int blasLayout(const moert_memref2d_f32_t *m, int *columnMajor,
                      int64_t *ld) {
  int64_t rows = m->sizes[0], cols = m->sizes[1];
  int64_t s0 = m->strides[0], s1 = m->strides[1];
  int64_t minRow = cols > 1 ? cols : 1, minCol = rows > 1 ? rows : 1;
  if ((s1 == 1 || cols <= 1) && (rows <= 1 || s0 >= minRow)) {
    *columnMajor = 0;
    *ld = rows <= 1 ? minRow : s0;
    return 1;
  }
  if ((s0 == 1 || rows <= 1) && (cols <= 1 || s1 >= minCol)) {
    *columnMajor = 1;
    *ld = cols <= 1 ? minCol : s1;
    return 1;
  }
  return 0;
}

static float load(const moert_memref2d_f32_t *m, int64_t i, int64_t j) {
  return m->aligned[m->offset + i * m->strides[0] + j * m->strides[1]];
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
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          c->aligned[c->offset + i * c->strides[0] + j * c->strides[1]] = 0.0f;
    return;
  }
  float beta = accumulate ? 1.0f : 0.0f;

  int aCol, bCol, cCol;
  int64_t lda, ldb, ldc;
  if (blasLayout(a, &aCol, &lda) && blasLayout(b, &bCol, &ldb) &&
      blasLayout(c, &cCol, &ldc) && !cCol) {
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
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc =
          accumulate
              ? c->aligned[c->offset + i * c->strides[0] + j * c->strides[1]]
              : 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        float x = transposeA ? load(a, p, i) : load(a, i, p);
        float y = transposeB ? load(b, j, p) : load(b, p, j);
        acc += x * y;
      }
      c->aligned[c->offset + i * c->strides[0] + j * c->strides[1]] = acc;
    }
}
