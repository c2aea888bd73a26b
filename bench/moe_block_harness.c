/*===- moe_block_harness.c - times a compiled moe.layer -------------------===*
 *
 * Linked with the object moe-compile emits for the module of
 * bench/moe_block_bench.py (CPU) or bench/cuda_moe_bench.py (--target cuda,
 * or --cuda-emulate-on-cpu): one `@moe_block` function with
 * llvm.emit_c_interface. Reads the inputs from .npy files into runtime
 * buffers (CUDA managed memory with libmoert_cuda), runs the block once
 * untimed (on a GPU the weights migrate there) and ITERS timed times, and
 * writes its output. The compiled block has finished its work, the GPU's
 * included, when it returns (moe-gpu-async-launches waits before
 * returning), so a wall clock around the call times it. Built with
 * -DMOE_BENCH_CBLAS (the CPU bench), it also times cblas_sgemm on the
 * aggregate expert GEMM shape [T*k, H] x [H, F].
 *
 * usage: harness DIR ITERS TOPK [GEMM]   (DIR holds x, router, w1, w3, w2
 *        .npy files; GEMM: the products' mode, f32 (default), tf32, bf16
 *        or f16, the last three on libmoert_cuda only)
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moe_block_io.h"
#include "moert/model.h"

#ifdef MOE_BENCH_CBLAS
#include <cblas.h>
#endif
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

/* DIR/NAME.npy copied into a runtime buffer (reachable from kernels). */
static float *loadBuffer(const char *dir, const char *name, int rank,
                         int64_t *shape) {
  float *host = load(dir, name, rank, shape, fail);
  size_t n = 1;
  for (int i = 0; i < rank; ++i)
    n *= (size_t)shape[i];
  float *buffer = moert_buffer_alloc(n * sizeof(float));
  if (!buffer)
    fail("cannot allocate a runtime buffer for the inputs");
  memcpy(buffer, host, n * sizeof(float));
  free(host);
  return buffer;
}

#ifdef MOE_BENCH_CBLAS
/* GFLOP/s of OpenBLAS on the aggregate expert GEMM [T*k, H] x [H, F] (x Wᵀ),
 * best of `iters` after one untimed call. */
static double sgemmRate(const float *x, const int64_t *sx, const float *w1,
                        int64_t ffn, int k, int iters) {
  int64_t rows = sx[0] * k, hidden = sx[1];
  float *a = calloc((size_t)(rows * hidden), sizeof(float));
  float *c = calloc((size_t)(rows * ffn), sizeof(float));
  for (int64_t i = 0; i < rows * hidden; ++i)
    a[i] = x[i % (sx[0] * hidden)];
  double best = 1e30;
  for (int i = 0; i <= iters; ++i) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)ffn,
                (int)hidden, 1.0f, a, (int)hidden, w1, (int)hidden, 0.0f, c,
                (int)ffn);
    double dt = now() - t0;
    if (i > 0 && dt < best)
      best = dt;
  }
  free(a);
  free(c);
  return 2.0 * (double)rows * (double)hidden * (double)ffn / best * 1e-9;
}
#endif

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s DIR ITERS TOPK [GEMM]\n", argv[0]);
    return 1;
  }
  const char *dir = argv[1];
  int iters = atoi(argv[2]), k = atoi(argv[3]);
  if (iters < 1 || k < 1)
    fail("ITERS and TOPK must be at least 1");
  if (argc == 5) {
    moert_status_t status = moert_set_gemm_mode(argv[4]);
    if (status)
      fail(moert_status_message(status));
  }

  int64_t sx[2], sr[2], s1[3], s3[3], s2[3];
  float *x = loadBuffer(dir, "x", 2, sx), *r = loadBuffer(dir, "router", 2, sr);
  float *w1 = loadBuffer(dir, "w1", 3, s1), *w3 = loadBuffer(dir, "w3", 3, s3),
        *w2 = loadBuffer(dir, "w2", 3, s2);
  moert_memref2d_f32_t mx = m2(x, sx), mr = m2(r, sr);
  moert_memref3d_f32_t m1 = m3(w1, s1), mw3 = m3(w3, s3), mw2 = m3(w2, s2);
  moert_memref2d_f32_t out = {0};

  /* One untimed call, then the timed ones. */
  double best = 1e30, total = 0, first = 0;
  for (int i = 0; i <= iters; ++i) {
    if (out.allocated)
      moert_buffer_free(out.allocated);
    double t0 = now();
    _mlir_ciface_moe_block(&out, &mx, &mr, &mw3, &mw2, &m1);
    double dt = now() - t0;
    if (i == 0) {
      first = dt;
      continue;
    }
    total += dt;
    if (dt < best)
      best = dt;
  }

  char path[4096];
  snprintf(path, sizeof(path), "%s/out.npy", dir);
  moert_status_t status = writeOutput(path, &out);
  if (status)
    fail(moert_status_message(status));
  printf("compiled_best_s=%.9f compiled_mean_s=%.9f first_call_s=%.9f", best,
         total / iters, first);
#ifdef MOE_BENCH_CBLAS
  printf(" sgemm_gflops=%.3f", sgemmRate(x, sx, w1, s1[1], k, iters));
#endif
  printf("\n");
  moert_buffer_free(out.allocated);
  float *buffers[] = {x, r, w1, w2, w3};
  for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); ++i)
    moert_buffer_free(buffers[i]);
  return 0;
}
