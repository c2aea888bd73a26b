/*===- moe_block_gpu.c - times a moe.layer compiled with --target cuda ----===*
 *
 * Linked with the object `moe-compile --target cuda --emit=obj` makes of
 * bench/cuda_moe_bench.py's module (one `@moe_block` function with
 * llvm.emit_c_interface) and with libmoert_cuda; or, for a check without a
 * GPU, with the object of `--cuda-emulate-on-cpu` and the CPU runtime.
 * The inputs go into runtime buffers (CUDA managed memory on a GPU), the
 * block runs once untimed (the weights migrate to the GPU) and then ITERS
 * timed times. The compiled block waits for the device before it returns
 * (moe-gpu-async-launches), so a wall clock around the call times it.
 *
 * usage: moe_block_gpu DIR ITERS GEMM   (DIR holds x, router, w1, w3, w2
 *        .npy files; GEMM is the products' mode: f32, tf32, bf16 or f16)
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moe_block_io.h"
#include "moert/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR ITERS GEMM\n", argv[0]);
    return 1;
  }
  const char *dir = argv[1];
  int iters = atoi(argv[2]);
  if (iters < 1)
    fail("ITERS must be at least 1");
  moert_status_t status = moert_set_gemm_mode(argv[3]);
  if (status)
    fail(moert_status_message(status));

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
  status = writeOutput(path, &out);
  if (status)
    fail(moert_status_message(status));
  printf("compiled_best_s=%.9f compiled_mean_s=%.9f first_call_s=%.9f\n", best,
         total / iters, first);
  moert_buffer_free(out.allocated);
  float *buffers[] = {x, r, w1, w2, w3};
  for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); ++i)
    moert_buffer_free(buffers[i]);
  return 0;
}
