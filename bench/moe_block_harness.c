/*===- moe_block_harness.c - times a compiled moe.layer -------------------===*
 *
 * Linked with the object moe-compile emits for bench/moe_block_bench.py's
 * generated module (one `@moe_block` function with llvm.emit_c_interface).
 * Reads the inputs from .npy files, times the block, times cblas_sgemm on
 * the aggregate expert GEMM shape, writes the block's output.
 *
 * usage: harness DIR ITERS  (DIR holds x, router, w1, w3, w2 .npy files)
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moe_block_io.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void _mlir_ciface_moe_block(moert_memref2d_f32_t *out, moert_memref2d_f32_t *x,
                            moert_memref2d_f32_t *router,
                            moert_memref3d_f32_t *w3, moert_memref3d_f32_t *w2,
                            moert_memref3d_f32_t *w1);

static void fail(const char *message) {
  fprintf(stderr, "error: %s\n", message);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR ITERS TOPK\n", argv[0]);
    return 1;
  }
  const char *dir = argv[1];
  int iters = atoi(argv[2]), k = atoi(argv[3]);
  int64_t sx[2], sr[2], s1[3], s3[3], s2[3];
  float *x = load(dir, "x", 2, sx, fail), *r = load(dir, "router", 2, sr, fail);
  float *w1 = load(dir, "w1", 3, s1, fail), *w3 = load(dir, "w3", 3, s3, fail),
        *w2 = load(dir, "w2", 3, s2, fail);
  moert_memref2d_f32_t mx = m2(x, sx), mr = m2(r, sr);
  moert_memref3d_f32_t m1 = m3(w1, s1), mw3 = m3(w3, s3), mw2 = m3(w2, s2);
  moert_memref2d_f32_t out = {0};

  /* One untimed call, then the timed ones. */
  double best = 1e30, total = 0;
  for (int i = 0; i <= iters; ++i) {
    free(out.allocated);
    double t0 = now();
    _mlir_ciface_moe_block(&out, &mx, &mr, &mw3, &mw2, &m1);
    double dt = now() - t0;
    if (i > 0) {
      total += dt;
      if (dt < best)
        best = dt;
    }
  }

  /* OpenBLAS on the aggregate expert GEMM [T*k, H] x [H, F] (x Wᵀ). */
  int64_t rows = sx[0] * k, hidden = sx[1], ffn = s1[1];
  float *a = calloc((size_t)(rows * hidden), sizeof(float));
  float *c = calloc((size_t)(rows * ffn), sizeof(float));
  for (int64_t i = 0; i < rows * hidden; ++i)
    a[i] = x[i % (sx[0] * hidden)];
  double gemmBest = 1e30;
  for (int i = 0; i <= iters; ++i) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)ffn,
                (int)hidden, 1.0f, a, (int)hidden, w1, (int)hidden, 0.0f, c,
                (int)ffn);
    double dt = now() - t0;
    if (i > 0 && dt < gemmBest)
      gemmBest = dt;
  }
  double gemmFlops = 2.0 * (double)rows * (double)hidden * (double)ffn;

  char path[4096];
  snprintf(path, sizeof(path), "%s/out.npy", dir);
  moert_status_t status = writeOutput(path, &out);
  if (status) {
    fprintf(stderr, "error: %s\n", moert_status_message(status));
    return 1;
  }
  printf("compiled_best_s=%.9f compiled_mean_s=%.9f sgemm_gflops=%.3f\n", best,
         total / iters, gemmFlops / gemmBest * 1e-9);
  free(out.allocated);
  free(dense);
  free(a);
  free(c);
  free(x);
  free(r);
  free(w1);
  free(w2);
  free(w3);
  return 0;
}
