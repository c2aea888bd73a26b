/*===- blas_layout.h - strided memrefs as BLAS operands ------------*- C -*-===*
 *
 * Shared by the OpenBLAS (blas.c) and cuBLAS (cuda/cuda_blas.c) entry points
 * of moert_sgemm.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_BLAS_LAYOUT_H
#define MOERT_BLAS_LAYOUT_H

#include "moert/memref.h"

/* The last argument of moert_sgemm (what moe-linalg-to-blas passes). */
enum {
  MOERT_GEMM_ACCUMULATE = 1, /* C += op(A) op(B) (else C = ...) */
  MOERT_GEMM_EXACT = 2,      /* f32 whatever moert_set_gemm_mode chose */
};

/* How a 2-D memref maps onto BLAS: row- or column-major with a leading
 * dimension. Returns 0 when neither dimension has unit stride. */
static inline int moertBlasLayout(const moert_memref2d_f32_t *m,
                                  int *columnMajor, int64_t *ld) {
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

static inline float moertLoad2d(const moert_memref2d_f32_t *m, int64_t i,
                                int64_t j) {
  return m->aligned[m->offset + i * m->strides[0] + j * m->strides[1]];
}

/* C (+)= op(A) * op(B) by a plain loop: operands BLAS cannot take. */
static inline void moertGemmLoop(const moert_memref2d_f32_t *a,
                                 const moert_memref2d_f32_t *b,
                                 moert_memref2d_f32_t *c, int transposeA,
                                 int transposeB, int accumulate) {
  int64_t m = c->sizes[0], n = c->sizes[1];
  int64_t k = transposeA ? a->sizes[0] : a->sizes[1];
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float *out =
          c->aligned + c->offset + i * c->strides[0] + j * c->strides[1];
      float acc = accumulate ? *out : 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        float x = transposeA ? moertLoad2d(a, p, i) : moertLoad2d(a, i, p);
        float y = transposeB ? moertLoad2d(b, j, p) : moertLoad2d(b, p, j);
        acc += x * y;
      }
      *out = acc;
    }
}

/* A product C (+)= op(A) * op(B) as BLAS sees it. */
typedef struct moertGemm {
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  int transposeA, transposeB; /* of the row-major operands */
} moertGemm;

/* What moert_sgemm does: 0 nothing (C is empty), 1 a BLAS call with `g`
 * (C row-major, A and B row- or column-major: a column-major operand is the
 * row-major transpose of itself), 2 the loop (k = 0, or strides BLAS cannot
 * take). */
static inline int moertPlanGemm(const moert_memref2d_f32_t *a,
                                const moert_memref2d_f32_t *b,
                                const moert_memref2d_f32_t *c, int transposeA,
                                int transposeB, moertGemm *g) {
  g->m = c->sizes[0];
  g->n = c->sizes[1];
  g->k = transposeA ? a->sizes[0] : a->sizes[1];
  if (g->m == 0 || g->n == 0)
    return 0;
  int aCol, bCol, cCol;
  if (g->k == 0 || !moertBlasLayout(a, &aCol, &g->lda) ||
      !moertBlasLayout(b, &bCol, &g->ldb) ||
      !moertBlasLayout(c, &cCol, &g->ldc) || cCol)
    return 2;
  g->transposeA = (transposeA != 0) != (aCol != 0);
  g->transposeB = (transposeB != 0) != (bCol != 0);
  return 1;
}

#endif /* MOERT_BLAS_LAYOUT_H */
