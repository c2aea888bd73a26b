/*===- blas.c - matrix products for compiled code -------------------------===*
 *
 * `moert_sgemm` is what `moe-linalg-to-blas` calls: C (+)= op(A) * op(B) on
 * strided f32 memrefs, through OpenBLAS when every operand has a unit-stride
 * dimension, and through a plain loop otherwise.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/memref.h"
#include "moert/model.h"
#include "moert/moert.h"

#include "blas_layout.h"

#include <string.h>

moert_status_t moert_set_gemm_mode(const char *mode) {
  if (!strcmp(mode, "f32"))
    return NULL;
  return moert_status_make(MOERT_INVALID_ARGUMENT,
                           "the CPU runtime computes matrix products in f32, "
                           "not '%s' (a --target cuda --cuda-gemm mode)",
                           mode);
}

#include <cblas.h>

MOERT_API void _mlir_ciface_moert_sgemm(moert_memref2d_f32_t *a,
                                        moert_memref2d_f32_t *b,
                                        moert_memref2d_f32_t *c,
                                        int32_t transposeA, int32_t transposeB,
                                        int32_t flags) {
  /* Every product is exact f32 here (MOERT_GEMM_EXACT changes nothing). */
  int accumulate = flags & MOERT_GEMM_ACCUMULATE;
  moertGemm g;
  switch (moertPlanGemm(a, b, c, transposeA, transposeB, &g)) {
  case 0:
    return;
  case 1:
    cblas_sgemm(CblasRowMajor, g.transposeA ? CblasTrans : CblasNoTrans,
                g.transposeB ? CblasTrans : CblasNoTrans, (blasint)g.m,
                (blasint)g.n, (blasint)g.k, 1.0f, a->aligned + a->offset,
                (blasint)g.lda, b->aligned + b->offset, (blasint)g.ldb,
                accumulate ? 1.0f : 0.0f, c->aligned + c->offset,
                (blasint)g.ldc);
    return;
  default:
    moertGemmLoop(a, b, c, transposeA, transposeB, accumulate);
  }
}
