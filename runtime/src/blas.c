/*===- blas.c - matrix products for compiled code -------------------------===*
 *
 * `moert_sgemm` is what `moe-linalg-to-blas` calls: C (+)= op(A) * op(B) on
 * strided f32 memrefs, through moertCpuGemm (cpu_gemm.h: the runtime's
 * threads, OpenBLAS or the skinny kernels) when every operand has a
 * unit-stride dimension, and through a plain loop otherwise. Each call first
 * lets the collectives in flight progress (moert_comm_progress).
 *
 *===----------------------------------------------------------------------===*/

#include "moert/comm.h"
#include "moert/memref.h"
#include "moert/model.h"
#include "moert/moert.h"
#include "moert/trace.h"

#include "blas_layout.h"
#include "cpu_gemm.h"

#include <string.h>

moert_status_t moert_set_gemm_mode(const char *mode) {
  if (!strcmp(mode, "f32"))
    return NULL;
  return moert_status_make(MOERT_INVALID_ARGUMENT,
                           "the CPU runtime computes matrix products in f32, "
                           "not '%s' (a --target cuda --cuda-gemm mode)",
                           mode);
}

MOERT_API void _mlir_ciface_moert_sgemm(moert_memref2d_f32_t *a,
                                        moert_memref2d_f32_t *b,
                                        moert_memref2d_f32_t *c,
                                        int32_t transposeA, int32_t transposeB,
                                        int32_t flags) {
  /* Every product is exact f32 here (MOERT_GEMM_EXACT changes nothing). */
  moert_comm_progress(); /* collectives in flight move while we compute */
  int accumulate = flags & MOERT_GEMM_ACCUMULATE;
  moertGemm g;
  switch (moertPlanGemm(a, b, c, transposeA, transposeB, &g)) {
  case 0:
    return;
  case 1: {
    double begin = moert_trace_enabled() ? moert_trace_now() : 0;
    moertCpuGemm(g.m, g.n, g.k, a->aligned + a->offset, g.lda, g.transposeA,
                 b->aligned + b->offset, g.ldb, g.transposeB,
                 c->aligned + c->offset, g.ldc, accumulate);
    if (begin)
      moert_trace_record(MOERT_TRACE_COMPUTE, begin, moert_trace_now(), g.m,
                         g.n, g.k);
    return;
  }
  default:
    moertGemmLoop(a, b, c, transposeA, transposeB, accumulate);
  }
}
