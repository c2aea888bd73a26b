/*===- calibrate.c - measures this machine for the planner ----------------===*
 *
 * mpiexec -n N moert-calibrate [OUT.json]
 *
 * Writes a cluster spec (docs/Planner.md) for N ranks on this machine, the
 * way the compiled programs run here: every rank runs at the same time, so
 * an oversubscribed machine is measured as such.
 *   - f32 rate: cblas_sgemm 256x256x256 on every rank at once, the slowest
 *     rank's rate (OpenBLAS threads as the environment sets them);
 *   - memory bandwidth: a 64 MiB copy on every rank at once;
 *   - link: the runtime's own all-reduce of one float (latency) and
 *     all-to-all of 8 MiB per rank (bandwidth) over all ranks, waiting the
 *     way compiled programs wait (MOERT_WAIT), fitted to the planner's
 *     formulas.
 * Prints the spec to stdout too (rank 0).
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/comm.h"
#include "moert/memref.h"

#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The slowest rank's time of `body`, best of `reps`. */
#define TIMED(reps, body, out)                                                 \
  do {                                                                         \
    double best_ = 1e30;                                                       \
    for (int r_ = 0; r_ < (reps); ++r_) {                                      \
      MPI_Barrier(MPI_COMM_WORLD);                                             \
      double t0_ = now();                                                      \
      body;                                                                    \
      double t_ = now() - t0_, max_;                                           \
      MPI_Allreduce(&t_, &max_, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);       \
      if (max_ < best_)                                                        \
        best_ = max_;                                                          \
    }                                                                          \
    (out) = best_;                                                             \
  } while (0)

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  /* The runtime's groups for a plan of `size` data-parallel ranks: the
   * layout moe-compile --plan dp=SIZE writes (every rank in one dp group,
   * alone in its other groups). */
  moert_layout_t layout = {{size, 1, 1, 1, 1}, size, NULL};
  layout.ranks = calloc((size_t)size, sizeof(moert_rank_place_t));
  if (!layout.ranks)
    MPI_Abort(MPI_COMM_WORLD, 1);
  for (int r = 0; r < size; ++r) {
    moert_rank_place_t *place = &layout.ranks[r];
    place->coords.dp = r;
    place->coords.ep_group = r;
    for (int g = MOERT_GROUP_TP; g < MOERT_NUM_GROUPS; ++g)
      place->colors[g] = r;
  }
  moert_status_t status = moert_comm_init(&layout, &argc, &argv);
  moert_layout_free(&layout);
  if (status) {
    fprintf(stderr, "moert-calibrate: %s\n", moert_status_message(status));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (argc > 2) {
    if (rank == 0)
      fprintf(stderr, "usage: mpiexec -n N %s [OUT.json]\n", argv[0]);
    MPI_Finalize();
    return 2;
  }

  /* f32 rate. */
  const int n = 256;
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  for (int i = 0; i < n * n; ++i)
    a[i] = b[i] = 1.0f / (float)(1 + i % 7);
  double gemm;
  TIMED(5,
        for (int k = 0; k < 4; ++k)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
                        1.0f, a, n, b, n, 0.0f, c, n),
        gemm);
  double flops = 4.0 * 2.0 * n * n * n / gemm;

  /* Memory bandwidth: read + write of a 64 MiB buffer. */
  size_t bytes = 64u << 20;
  char *src = malloc(bytes), *dst = malloc(bytes);
  memset(src, 1, bytes);
  memset(dst, 0, bytes);
  double copy;
  /* Called through a volatile pointer: the compiler cannot drop the copy. */
  void *(*volatile copyFn)(void *, const void *, size_t) = memcpy;
  TIMED(3, copyFn(dst, src, bytes), copy);
  double bandwidth = 2.0 * (double)bytes / copy;

  /* Link: latency from a small all-reduce (ring: 2(n-1) steps), bandwidth
   * from an all-to-all (each rank sends (n-1)/n of its buffer). */
  double latency = 1e-6, linkBandwidth = bandwidth;
  if (size > 1) {
    /* Every rank in one dp group: the runtime's group of all ranks. */
    float small = 1, smallOut;
    moert_memref1d_f32_t in1 = {&small, &small, 0, {1}, {1}};
    moert_memref1d_f32_t out1 = {&smallOut, &smallOut, 0, {1}, {1}};
    double reduce;
    TIMED(20, _mlir_ciface_moert_all_reduce_f32(&in1, &out1, MOERT_GROUP_DP),
          reduce);
    latency = reduce / (2.0 * (size - 1));
    int64_t per = (2 << 20) / size; /* floats to each rank: 8 MiB in all */
    float *sendBuf = calloc((size_t)(per * size), sizeof(float));
    float *recvBuf = calloc((size_t)(per * size), sizeof(float));
    moert_memref1d_f32_t inA = {sendBuf, sendBuf, 0, {per * size}, {1}};
    moert_memref1d_f32_t outA = {recvBuf, recvBuf, 0, {per * size}, {1}};
    double a2a;
    TIMED(3, _mlir_ciface_moert_all_to_all_f32(&inA, &outA, MOERT_GROUP_DP),
          a2a);
    double sent = (double)per * sizeof(float) * (size - 1);
    double wire = a2a - (size - 1) * latency;
    linkBandwidth = sent / (wire > 0 ? wire : a2a);
    free(sendBuf);
    free(recvBuf);
  }

  if (rank == 0) {
    long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGE_SIZE);
    double memoryGiB =
        (double)pages * (double)pageSize / (1024.0 * 1024.0 * 1024.0) / size;
    char spec[2048];
    snprintf(spec, sizeof(spec),
             "{\"name\": \"local\", \"nodes\": 1, \"devices_per_node\": %d,\n"
             " \"device\": {\"memory_gib\": %.3f, \"peak_tflops\": "
             "{\"f32\": %.6f, \"bf16\": %.6f},\n"
             "            \"memory_bandwidth_gbs\": %.3f},\n"
             " \"intra_node\": {\"bandwidth_gbs\": %.4f, \"latency_us\": "
             "%.3f},\n"
             " \"inter_node\": {\"bandwidth_gbs\": %.4f, \"latency_us\": "
             "%.3f},\n"
             " \"host_device_bandwidth_gbs\": %.3f}\n",
             size, memoryGiB, flops / 1e12, flops / 1e12, bandwidth / 1e9,
             linkBandwidth / 1e9, latency * 1e6, linkBandwidth / 1e9,
             latency * 1e6, bandwidth / 1e9);
    fputs(spec, stdout);
    if (argc == 2) {
      FILE *f = fopen(argv[1], "w");
      if (!f || fputs(spec, f) < 0 || fclose(f)) {
        fprintf(stderr, "moert-calibrate: cannot write '%s'\n", argv[1]);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
  }
  free(a);
  free(b);
  free(c);
  free(src);
  free(dst);
  moert_comm_finalize();
  MPI_Finalize();
  return 0;
}
