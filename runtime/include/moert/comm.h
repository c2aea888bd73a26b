/*===- comm.h - process groups and collectives for SPMD programs ---*- C -*-===*
 *
 * The MPI backend of the runtime. A plan (dp, tp, ep, etp, pp) lays the world
 * out as described in docs/Parallelism.md; moert_comm_init makes one MPI
 * communicator per group kind, and the collective entry points that compiled
 * code calls take the group as a small integer. Every call and byte is
 * counted per collective kind and group (moert_comm_print_stats).
 *
 * A single-rank plan never touches MPI, so single-rank executables run
 * without mpiexec.
 *
 * Every wait (blocking collectives are started and then waited for) aborts
 * the job when it lasts longer than MOERT_TIMEOUT seconds (default 300, 0:
 * forever), naming the collective, its group and the rank. MOERT_LINK=
 * GBPS[:LATENCY_US] emulates a slower link: a collective completes no
 * earlier than latency + bytes / bandwidth after its start (the rank
 * sleeps), bytes being what the rank sends.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_COMM_H
#define MOERT_COMM_H

#include "moert/memref.h"
#include "moert/moert.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moert_plan {
  int dp, tp, ep, etp, pp;
} moert_plan_t;

/* Group kinds; compiled code passes these numbers. */
typedef enum moert_group {
  MOERT_GROUP_WORLD = 0,
  MOERT_GROUP_DP = 1,  /* same tp rank and pp stage, all dp ranks */
  MOERT_GROUP_TP = 2,  /* one tensor-parallel group */
  MOERT_GROUP_EP = 3,  /* one expert-parallel group */
  MOERT_GROUP_ETP = 4, /* one expert-tensor-parallel group */
  MOERT_GROUP_PP = 5,  /* same dp and tp ranks, all pipeline stages */
  MOERT_NUM_GROUPS = 6
} moert_group_t;

typedef enum moert_collective {
  MOERT_ALL_REDUCE = 0,
  MOERT_ALL_GATHER = 1,
  MOERT_ALL_TO_ALL = 2,
  MOERT_REDUCE_SCATTER = 3,
  MOERT_GATHER = 4,
  MOERT_SEND = 5,
  MOERT_RECV = 6,
  MOERT_BROADCAST = 7,
  MOERT_NUM_COLLECTIVES = 8
} moert_collective_t;

/* Where a rank sits in the plan (docs/Parallelism.md): its pipeline stage
 * and its 0-based position in each group. */
typedef struct moert_coords {
  int pp, dp, tp, ep_group, ep, etp_group, etp;
} moert_coords_t;

/* One rank's entry of a layout: its coordinates, and for each group kind a
 * color shared exactly by the members of its group of that kind. */
typedef struct moert_rank_place {
  moert_coords_t coords;
  int colors[MOERT_NUM_GROUPS];
} moert_rank_place_t;

/* The layout of a plan's ranks. The runtime does not derive it: the compiler
 * computes it (PlanFacts.h) and the compiled program carries it in its
 * manifest, as one "plan DP TP EP ETP PP" line and one line per rank:
 *   rank R coords PP DP TP EP_GROUP EP ETP_GROUP ETP colors C0 C1 C2 C3 C4 C5
 * (`moe-compile --plan P --explain-plan --explain-format=manifest` prints
 * them). */
typedef struct moert_layout {
  moert_plan_t plan;
  int world;                 /* dp * tp * pp */
  moert_rank_place_t *ranks; /* world entries, or NULL for one rank */
} moert_layout_t;

/* Reads the "plan" and "rank" lines of `text` (a manifest, or only those
 * lines) into `layout` (all 1, one rank, when there is no plan line). The
 * plan's degrees are checked, every rank must have one line and no other;
 * free with moert_layout_free. */
MOERT_API moert_status_t moert_layout_parse(const char *text,
                                            moert_layout_t *layout);
MOERT_API void moert_layout_free(moert_layout_t *layout);
/* moert_layout_parse of a file's text (for programs that are not compiled
 * models: test harnesses given the output of moe-compile --explain-plan
 * --explain-format=manifest). */
MOERT_API moert_status_t moert_layout_read(const char *path,
                                           moert_layout_t *layout);
/* moert_layout_read, then moert_comm_init with that layout. */
MOERT_API moert_status_t moert_comm_init_from_file(const char *path, int *argc,
                                                   char ***argv);

/* dp * tp * pp */
MOERT_API int moert_plan_world_size(const moert_plan_t *plan);
/* Checks degrees >= 1, ep | dp*tp, etp | tp, ep*etp | dp*tp. */
MOERT_API moert_status_t moert_plan_validate(const moert_plan_t *plan);

/* Starts MPI when the layout has more than one rank (or the process was
 * launched by mpiexec), checks that the world size equals the layout's, and
 * builds the group communicators from the layout's colors. An error names
 * both sizes. The layout is copied. */
MOERT_API moert_status_t moert_comm_init(const moert_layout_t *layout,
                                         int *argc, char ***argv);
/* Rank in the world (0 without MPI). */
MOERT_API int moert_comm_rank(void);
MOERT_API int moert_comm_size(void);
/* Rank among the ranks on this node (0 without MPI): picks a GPU. */
MOERT_API int moert_comm_local_rank(void);
MOERT_API moert_coords_t moert_comm_coords(void);
/* Aborts every rank after printing `message` (a failed rank must not leave
 * the others waiting in a collective). */
MOERT_API void moert_comm_abort(const char *message);
MOERT_API void moert_comm_finalize(void);

/* For timing: a barrier over the world, and the largest of every rank's
 * `value` (the value itself without MPI). Not counted as collectives. */
MOERT_API void moert_comm_barrier(void);
MOERT_API double moert_comm_max_f64(double value);

/* Counters, per collective kind and group. */
MOERT_API long long moert_comm_calls(moert_collective_t kind,
                                     moert_group_t group);
MOERT_API long long moert_comm_bytes(moert_collective_t kind,
                                     moert_group_t group);
/* One line per (kind, group) with a non-zero count, prefixed by the rank. */
MOERT_API void moert_comm_print_stats(FILE *out);

/* Host-side collectives (the runtime's own use, e.g. gathering the output).
 * `count` elements of f32 per rank. */
MOERT_API void moert_comm_gather_f32(const float *in, float *out, long count,
                                     moert_group_t group);
/* Copies `count` int64 from world rank `root` to every rank (a generation
 * step's chosen tokens). */
MOERT_API void moert_comm_broadcast_i64(int64_t *buffer, long count, int root);
/* Moves `count` f32 from world rank `from` to world rank `to` (a copy when
 * they are the same rank; nothing on the other ranks). Counted as a send on
 * `from` and a recv on `to`, group world. */
MOERT_API void moert_comm_move_f32(float *buffer, long count, int from, int to);

/* This rank's position in `group` (0 without MPI); compiled code calls it
 * for rank-dependent offsets. */
MOERT_API int64_t moert_group_rank(int32_t group);

/* Entry points of compiled code (llvm.emit_c_interface); buffers are
 * contiguous 1-D f32 memrefs.
 *   all_reduce:  out = sum over the group of in               (equal sizes)
 *   all_gather:  out = concat over the group of in            (out = n * in)
 *   all_to_all:  chunk i of in goes to rank i; out = concat of the chunks
 *                received from ranks 0..n-1                   (equal sizes)
 *   reduce_scatter: out = chunk r of (sum over the group of in) (in = n * out)
 */
MOERT_API void _mlir_ciface_moert_all_reduce_f32(moert_memref1d_f32_t *in,
                                                 moert_memref1d_f32_t *out,
                                                 int32_t group);
MOERT_API void _mlir_ciface_moert_all_gather_f32(moert_memref1d_f32_t *in,
                                                 moert_memref1d_f32_t *out,
                                                 int32_t group);
MOERT_API void _mlir_ciface_moert_all_to_all_f32(moert_memref1d_f32_t *in,
                                                 moert_memref1d_f32_t *out,
                                                 int32_t group);
MOERT_API void _mlir_ciface_moert_reduce_scatter_f32(moert_memref1d_f32_t *in,
                                                     moert_memref1d_f32_t *out,
                                                     int32_t group);
/* Non-blocking forms of the four collectives above (moe.async_start): each
 * starts the collective and returns a handle for moert_wait_f32, which
 * returns once `out` holds the result. `in` must not change and both
 * buffers must live until the wait; compiled code passes them to the wait
 * for that reason. A handle of 0 is a collective that completed at its
 * start. */
MOERT_API int64_t _mlir_ciface_moert_start_all_reduce_f32(
    moert_memref1d_f32_t *in, moert_memref1d_f32_t *out, int32_t group);
MOERT_API int64_t _mlir_ciface_moert_start_all_gather_f32(
    moert_memref1d_f32_t *in, moert_memref1d_f32_t *out, int32_t group);
MOERT_API int64_t _mlir_ciface_moert_start_all_to_all_f32(
    moert_memref1d_f32_t *in, moert_memref1d_f32_t *out, int32_t group);
MOERT_API int64_t _mlir_ciface_moert_start_reduce_scatter_f32(
    moert_memref1d_f32_t *in, moert_memref1d_f32_t *out, int32_t group);
MOERT_API void _mlir_ciface_moert_wait_f32(int64_t handle,
                                           moert_memref1d_f32_t *in,
                                           moert_memref1d_f32_t *out);
/* Lets the collectives in flight advance (MPI progresses a non-blocking
 * collective only inside MPI calls). The runtime's matrix products call it
 * before they compute, so a collective started before them moves while they
 * run; nothing to do when none is in flight. */
MOERT_API void moert_comm_progress(void);

/* Point to point inside `group` (the pipeline's stages): `peer` is the
 * partner's rank in the group; send returns once `in` may be reused, recv
 * once `out` holds the data. Sizes must match on both sides. */
MOERT_API void _mlir_ciface_moert_send_f32(moert_memref1d_f32_t *in,
                                           int32_t group, int64_t peer);
MOERT_API void _mlir_ciface_moert_recv_f32(moert_memref1d_f32_t *out,
                                           int32_t group, int64_t peer);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_COMM_H */
