/*===- comm_internal.h - what comm.c and comm_requests.c share ---*- C -*-===*
 *
 * Internal to the runtime: the names and sizes of the groups, MPI error
 * checks, and the table of collectives in flight (comm_requests.c).
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_COMM_INTERNAL_H
#define MOERT_COMM_INTERNAL_H

#include "moert/comm.h"

#include <mpi.h>

/* Wait by testing and yielding the core instead of spinning (MOERT_WAIT;
 * on by default when the node runs more ranks than it has cores). */
extern int moertYieldWait;

const char *moertCollectiveName(moert_collective_t kind);
const char *moertGroupName(int32_t group);
/* Members of `group` (1 without MPI). */
int moertGroupSize(int32_t group);
/* Aborts every rank with the MPI error text unless `rc` is MPI_SUCCESS. */
void moertCommCheck(int rc, const char *what);

/* How collectives in flight advance (MOERT_PROGRESS). */
typedef enum moert_progress {
  MOERT_PROGRESS_CALLS, /* tested at each matrix product (the default) */
  MOERT_PROGRESS_THREAD,
  MOERT_PROGRESS_NONE
} moert_progress_t;
extern moert_progress_t moertProgress;

/* Reads MOERT_TIMEOUT, MOERT_LINK and MOERT_PROGRESS. */
moert_status_t moertReadWaitSettings(void);
/* With MOERT_PROGRESS=thread (MPI initialized with MPI_THREAD_MULTIPLE):
 * starts and stops the progress thread. */
moert_status_t moertStartProgressThread(void);
void moertStopProgressThread(void);
/* A free slot for a collective of `kind` on `group` that moves `bytes`
 * (< 0: not a transfer of data, so neither slowed by MOERT_LINK nor
 * traced); the caller starts its MPI request in `*request`. Returns the
 * handle (slot + 1). */
int64_t moertBeginRequest(moert_collective_t kind, int32_t group,
                          long long bytes, MPI_Request **request);
/* Completes the collective of `handle` (0: nothing to do): tests its
 * request until done, aborting the job after MOERT_TIMEOUT; then sleeps
 * until its emulated completion (MOERT_LINK) and traces it. */
void moertCompleteRequest(int64_t handle, MPI_Status *status, const char *what);

/* Runs a collective the runtime waits for itself: `start` (an MPI_I* call
 * on `request_`) is started and completed. */
#define RUN_COLLECTIVE(kind, group, bytes, start, what)                        \
  do {                                                                         \
    MPI_Request *request_;                                                     \
    int64_t handle_ = moertBeginRequest(kind, group, bytes, &request_);        \
    moertCommCheck(start, what);                                               \
    moertCompleteRequest(handle_, MPI_STATUS_IGNORE, what);                    \
  } while (0)

#endif /* MOERT_COMM_INTERNAL_H */
