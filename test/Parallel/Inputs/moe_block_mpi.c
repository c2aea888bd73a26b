/*===- moe_block_mpi.c - runs a partitioned MoE block on MPI ranks --------===*
 *
 * Linked with the object moe-compile emits for a module whose function
 * `@moe_block(x, router, up, down[, gate]) -> y` (llvm.emit_c_interface) was
 * partitioned with `moe-shard=keep-signature` and `moe-partition`: every rank
 * passes the whole inputs and gets the whole output, so the same harness runs
 * the unpartitioned block on one rank. Built with -DMOE_BLOCK_GATED for
 * blocks with a gate projection.
 *
 * usage: mpiexec -n W moe_block_mpi LAYOUT DIR ITERS [OUT]
 *   LAYOUT is the plan's rank layout as moe-compile writes it (--plan P
 *   --explain-plan --explain-format=manifest). DIR holds x.npy [T, H],
 *   router.npy [E, H], up.npy [E, F, H], down.npy [E, H, F] (and
 *   gate.npy [E, F, H]). Runs the block ITERS times
 *   after one warm-up; rank 0 prints `block_ms=<best over iterations of the
 *   slowest rank>`, then the per-rank collective counters, and writes OUT.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moe_block_io.h"
#include "moert/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void _mlir_ciface_moe_block(moert_memref2d_f32_t *out, moert_memref2d_f32_t *x,
                            moert_memref2d_f32_t *router,
                            moert_memref3d_f32_t *up, moert_memref3d_f32_t *down
#ifdef MOE_BLOCK_GATED
                            ,
                            moert_memref3d_f32_t *gate
#endif
);

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: %s LAYOUT DIR ITERS [OUT.npy]\n", argv[0]);
    return 2;
  }
  moert_status_t status = moert_comm_init_from_file(argv[1], &argc, &argv);
  if (status) {
    fprintf(stderr, "error: %s\n", moert_status_message(status));
    return 1;
  }
  const char *dir = argv[2];
  int iters = atoi(argv[3]);
  int64_t sx[2], sr[2], su[3], sd[3];
  float *x = load(dir, "x", 2, sx, moert_comm_abort),
        *router = load(dir, "router", 2, sr, moert_comm_abort);
  float *up = load(dir, "up", 3, su, moert_comm_abort),
        *down = load(dir, "down", 3, sd, moert_comm_abort);
  moert_memref2d_f32_t mx = m2(x, sx), mr = m2(router, sr);
  moert_memref3d_f32_t mu = m3(up, su), md = m3(down, sd);
#ifdef MOE_BLOCK_GATED
  int64_t sg[3];
  float *gate = load(dir, "gate", 3, sg, moert_comm_abort);
  moert_memref3d_f32_t mg = m3(gate, sg);
#define CALL(out) _mlir_ciface_moe_block(out, &mx, &mr, &mu, &md, &mg)
#else
#define CALL(out) _mlir_ciface_moe_block(out, &mx, &mr, &mu, &md)
#endif

  moert_memref2d_f32_t out;
  CALL(&out); /* warm-up; its result is the one written */
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    moert_memref2d_f32_t again;
    moert_comm_barrier();
    double t0 = now();
    CALL(&again);
    double slowest = moert_comm_max_f64(now() - t0);
    if (slowest < best)
      best = slowest;
    free(again.allocated);
  }
  if (moert_comm_rank() == 0 && iters > 0)
    printf("block_ms=%.4f\n", best * 1e3);
  fflush(stdout);
  moert_comm_print_stats(stdout);
  if (argc == 5 && moert_comm_rank() == 0) {
    status = writeOutput(argv[4], &out);
    if (status)
      moert_comm_abort(moert_status_message(status));
  }
  free(out.allocated);
  moert_comm_finalize();
  return 0;
}
