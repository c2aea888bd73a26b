/*===- trace.h - Chrome trace events of a run, for all ranks ------*- C -*-===*
 *
 * `EXE --trace FILE` records, per rank, what it computes (each matrix
 * product), each collective from its start to its completion, and each wait
 * that stalled the rank; at the end rank 0 writes one Chrome trace-event
 * JSON file for all ranks, which Perfetto and chrome://tracing open and
 * utils/trace-summary.py summarizes (docs/Parallelism.md, "Traces").
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_TRACE_H
#define MOERT_TRACE_H

#include "moert/moert.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What an event is. */
typedef enum moert_trace_kind {
  MOERT_TRACE_COMPUTE = 0,    /* a matrix product m x n x k */
  MOERT_TRACE_COLLECTIVE = 1, /* a collective in flight (start to done) */
  MOERT_TRACE_STALL = 2,      /* the rank waiting for a collective */
  MOERT_TRACE_LAYER = 3 /* decoder layer `a`, op group `b`, mark to mark */
} moert_trace_kind_t;

/* Starts recording on every rank (after moert_comm_init; a barrier makes
 * the ranks' time origins agree). */
MOERT_API void moert_trace_start(void);
MOERT_API int moert_trace_enabled(void);
/* Seconds on the trace's clock (monotonic). */
MOERT_API double moert_trace_now(void);
/* Records an event from `begin` to `end` (moert_trace_now times): for
 * compute, `a`, `b`, `c` are m, n, k; for collectives and stalls, the
 * collective kind, the group and the bytes (moert/comm.h numbers). */
MOERT_API void moert_trace_record(moert_trace_kind_t kind, double begin,
                                  double end, long long a, long long b,
                                  long long c);
/* Called by compiled code where decoder layer `layer` or its op group
 * `group` (0: attention, 1: feed-forward, -1: none) begins (layer -1: where
 * the ops leave the layers; moe-trace-layers): ends the open span and opens
 * the next. On the CUDA target it marks when the host issues the work. */
MOERT_API void moert_trace_layer(int32_t layer, int32_t group);
/* Gathers every rank's events to rank 0, which writes them to `path` as
 * Chrome trace-event JSON. Collective: every rank calls it. */
MOERT_API moert_status_t moert_trace_write(const char *path);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_TRACE_H */
