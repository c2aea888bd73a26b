/*===- cpu_gemm.h - matrix products over the runtime's threads -----*- C -*-===*
 *
 * Not installed and not part of the ABI. Every f32 product of the CPU
 * runtime goes through moertCpuGemm, which splits the columns of C over the
 * runtime's own threads:
 *
 * - a product of a few rows (a decode step's tokens) by a matrix runs the
 *   skinny kernels, which read the matrix once, straight from memory;
 *   OpenBLAS's GEMM would first pack (copy) the whole matrix, at a fraction
 *   of the memory bandwidth;
 * - any other product runs one single-threaded OpenBLAS call per block of
 *   columns.
 *
 * OpenBLAS itself is set to one thread: two thread pools on the same cores
 * would spin against each other.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_CPU_GEMM_H
#define MOERT_CPU_GEMM_H

#include <stdint.h>

/* The most rows of A (and C) the skinny kernels take. */
#define MOERT_SKINNY_MAX_M 16

/* C [m, n] (+)= op(A) · op(B), all row-major with the given leading
 * dimensions; op(A) is [m, k] (A [k, m] when `transposeA`), op(B) [k, n]
 * (B [n, k], a weight in nn.Linear layout, when `transposeB`). */
void moertCpuGemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                  int transposeA, const float *b, int64_t ldb, int transposeB,
                  float *c, int64_t ldc, int accumulate);

/* The threads the products use (>= 1). Takes effect only before the first
 * product; the default is the thread count OpenBLAS would have used
 * (OPENBLAS_NUM_THREADS, else the cores). */
void moertSetCpuThreads(int threads);

#endif /* MOERT_CPU_GEMM_H */
