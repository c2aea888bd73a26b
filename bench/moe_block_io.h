/*===- moe_block_io.h - inputs and outputs of the block harnesses ---------===*
 *
 * Shared by moe_block_harness.c (one rank, timed against sgemm) and
 * moe_block_mpi.c (partitioned blocks under mpiexec): .npy inputs as
 * memrefs, the output back to .npy, a clock.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_BENCH_MOE_BLOCK_IO_H
#define MOE_BENCH_MOE_BLOCK_IO_H

#include "moert/memref.h"
#include "moert/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* DIR/NAME.npy, which must have `rank` dimensions; `fail` gets the message
 * and must not return. */
static float *load(const char *dir, const char *name, int rank, int64_t *shape,
                   void (*fail)(const char *message)) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s.npy", dir, name);
  moert_npy_array_t a;
  moert_status_t status = moert_npy_read(path, &a);
  if (status || a.rank != rank) {
    char message[4200];
    snprintf(message, sizeof(message), "%s: %s", path,
             status ? moert_status_message(status) : "unexpected rank");
    fail(message);
  }
  memcpy(shape, a.shape, sizeof(int64_t) * (size_t)rank);
  return a.data;
}

static moert_memref2d_f32_t m2(float *p, const int64_t *s) {
  moert_memref2d_f32_t m = {p, p, 0, {s[0], s[1]}, {s[1], 1}};
  return m;
}
static moert_memref3d_f32_t m3(float *p, const int64_t *s) {
  moert_memref3d_f32_t m = {
      p, p, 0, {s[0], s[1], s[2]}, {s[1] * s[2], s[2], 1}};
  return m;
}

/* The block's output (any strides) to `path`. */
static moert_status_t writeOutput(const char *path,
                                  const moert_memref2d_f32_t *out) {
  int64_t shape[2] = {out->sizes[0], out->sizes[1]};
  float *dense = malloc(sizeof(float) * (size_t)(shape[0] * shape[1]));
  for (int64_t i = 0; i < shape[0]; ++i)
    for (int64_t j = 0; j < shape[1]; ++j)
      dense[i * shape[1] + j] =
          out->aligned[out->offset + i * out->strides[0] + j * out->strides[1]];
  moert_status_t status = moert_npy_write_f32(path, 2, shape, dense);
  free(dense);
  return status;
}

#endif /* MOE_BENCH_MOE_BLOCK_IO_H */
