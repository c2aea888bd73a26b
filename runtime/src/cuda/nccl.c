/*===- nccl.c - the collectives of compiled code on NCCL ------------------===*
 *
 * See nccl_backend.h. Every NCCL call is checked: a failure or a time-out
 * aborts the communicator and then every rank (moert_comm_abort), naming the
 * call, NCCL's error and its last message.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "nccl_backend.h"

#include "cuda_internal.h"

#include "moert/comm.h"

#include <nccl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static ncclComm_t gComms[MOERT_NUM_GROUPS];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* MOERT_NCCL_TIMEOUT: seconds a collective may take (default 300). */
static double timeoutSeconds(void) {
  const char *text = getenv("MOERT_NCCL_TIMEOUT");
  double value = text ? atof(text) : 0;
  return value > 0 ? value : 300.0;
}

static void fail(ncclComm_t comm, ncclResult_t result, const char *what) {
  char detail[768];
  const char *last = comm ? ncclGetLastError(comm) : NULL;
  snprintf(detail, sizeof(detail), "%s%s%s", ncclGetErrorString(result),
           last && *last ? ": " : "", last && *last ? last : "");
  if (comm)
    ncclCommAbort(comm);
  moertCudaFail(what, detail);
}

static void timedOut(ncclComm_t comm, const char *what, double limit) {
  char detail[256];
  snprintf(detail, sizeof(detail),
           "timed out after %.0f s (a peer is gone or stuck; "
           "MOERT_NCCL_TIMEOUT sets the limit)",
           limit);
  if (comm)
    ncclCommAbort(comm);
  moertCudaFail(what, detail);
}

/* A call on a non-blocking communicator may return ncclInProgress: waits
 * until the communicator settles. */
static void settle(ncclComm_t comm, ncclResult_t result, const char *what) {
  double start = now(), limit = timeoutSeconds();
  while (result == ncclInProgress) {
    if (now() - start > limit)
      timedOut(comm, what, limit);
    sched_yield();
    ncclResult_t state = ncclSuccess;
    ncclResult_t queried = ncclCommGetAsyncError(comm, &state);
    result = queried != ncclSuccess ? queried : state;
  }
  if (result != ncclSuccess)
    fail(comm, result, what);
}

static ncclComm_t commOf(int group, MPI_Comm mpi) {
  if (gComms[group])
    return gComms[group];
  moertCudaInit();
  int size = 1, rank = 0;
  MPI_Comm_size(mpi, &size);
  MPI_Comm_rank(mpi, &rank);
  ncclUniqueId id;
  if (rank == 0) {
    ncclResult_t result = ncclGetUniqueId(&id);
    if (result != ncclSuccess)
      fail(NULL, result, "ncclGetUniqueId");
  }
  if (MPI_Bcast(&id, (int)sizeof(id), MPI_BYTE, 0, mpi) != MPI_SUCCESS)
    moertCudaFail("MPI_Bcast", "could not share the NCCL unique id");
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = NULL;
  ncclResult_t result = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  settle(comm, result, "ncclCommInitRankConfig");
  gComms[group] = comm;
  return comm;
}

/* The collectives in flight on the communication stream: their
 * communicator (for its errors), the event after them, and their name. */
enum { kMaxPending = 64 };
typedef struct {
  ncclComm_t comm;
  CUevent done;
  const char *what;
} pending_t;
static pending_t gPending[kMaxPending];

/* The communication stream, made to wait for the work issued so far on the
 * compute stream: the input's producers, and the last users of a reused
 * output buffer. */
static CUstream beginOnCommStream(void) {
  CUstream stream = moertCudaCommStream();
  CUevent ready = moertCudaRecordEvent(moertCudaStream());
  moertCudaStreamAwait(stream, ready);
  moertCudaEventDestroy(ready);
  return stream;
}

/* Waits for `done`, watching the communicator's asynchronous errors and the
 * time. */
static void awaitEvent(ncclComm_t comm, CUevent done, const char *what) {
  double start = now(), limit = timeoutSeconds();
  for (;;) {
    CUresult state = moertCudaEventQuery(done);
    if (state == CUDA_SUCCESS)
      return;
    if (state != CUDA_ERROR_NOT_READY)
      moertCudaCheck(state, what);
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (async != ncclSuccess && async != ncclInProgress)
      fail(comm, async, what);
    if (now() - start > limit)
      timedOut(comm, what, limit);
    sched_yield();
  }
}

/* Ends a collective just queued (`result`) on the communication stream:
 * with `async`, returns the handle moertNcclWait takes; else waits for it
 * and returns 0. */
static int64_t endOnCommStream(ncclComm_t comm, ncclResult_t result,
                               const char *what, int async) {
  settle(comm, result, what);
  CUevent done = moertCudaRecordEvent(moertCudaCommStream());
  if (async)
    for (int slot = 0; slot < kMaxPending; ++slot)
      if (!gPending[slot].done) {
        gPending[slot] = (pending_t){comm, done, what};
        return slot + 1;
      }
  /* Not asynchronous, or as many in flight as compiled code ever starts:
   * completes now. */
  awaitEvent(comm, done, what);
  moertCudaEventDestroy(done);
  return 0;
}

void moertNcclWait(int64_t handle) {
  if (handle < 1 || handle > kMaxPending || !gPending[handle - 1].done)
    moertCudaFail("moert_wait", "no NCCL collective has this handle");
  pending_t *p = &gPending[handle - 1];
  awaitEvent(p->comm, p->done, p->what);
  moertCudaEventDestroy(p->done);
  p->done = NULL;
}

int64_t moertNcclAllReduce(int group, MPI_Comm mpi, const float *in, float *out,
                           size_t count, int async) {
  ncclComm_t comm = commOf(group, mpi);
  CUstream stream = beginOnCommStream();
  return endOnCommStream(
      comm, ncclAllReduce(in, out, count, ncclFloat, ncclSum, comm, stream),
      "ncclAllReduce", async);
}

int64_t moertNcclAllGather(int group, MPI_Comm mpi, const float *in, float *out,
                           size_t count, int async) {
  ncclComm_t comm = commOf(group, mpi);
  CUstream stream = beginOnCommStream();
  return endOnCommStream(comm,
                         ncclAllGather(in, out, count, ncclFloat, comm, stream),
                         "ncclAllGather", async);
}

int64_t moertNcclReduceScatter(int group, MPI_Comm mpi, const float *in,
                               float *out, size_t count, int async) {
  ncclComm_t comm = commOf(group, mpi);
  CUstream stream = beginOnCommStream();
  return endOnCommStream(
      comm, ncclReduceScatter(in, out, count, ncclFloat, ncclSum, comm, stream),
      "ncclReduceScatter", async);
}

/* NCCL has no all-to-all: one send and one receive per peer, grouped. */
int64_t moertNcclAllToAll(int group, MPI_Comm mpi, const float *in, float *out,
                          size_t chunk, int size, int async) {
  ncclComm_t comm = commOf(group, mpi);
  CUstream stream = beginOnCommStream();
  settle(comm, ncclGroupStart(), "ncclGroupStart");
  for (int peer = 0; peer < size; ++peer) {
    settle(comm,
           ncclSend(in + (size_t)peer * chunk, chunk, ncclFloat, peer, comm,
                    stream),
           "ncclSend (all_to_all)");
    settle(comm,
           ncclRecv(out + (size_t)peer * chunk, chunk, ncclFloat, peer, comm,
                    stream),
           "ncclRecv (all_to_all)");
  }
  return endOnCommStream(comm, ncclGroupEnd(), "all_to_all (ncclGroupEnd)",
                         async);
}

void moertNcclPointToPoint(int sending, int group, MPI_Comm mpi, float *buffer,
                           size_t count, int peer) {
  ncclComm_t comm = commOf(group, mpi);
  CUstream stream = beginOnCommStream();
  const char *what = sending ? "ncclSend" : "ncclRecv";
  endOnCommStream(comm,
                  sending
                      ? ncclSend(buffer, count, ncclFloat, peer, comm, stream)
                      : ncclRecv(buffer, count, ncclFloat, peer, comm, stream),
                  what, /*async=*/0);
}

void moertNcclFinalize(void) {
  /* Collectives started and never waited for (an aborted run). */
  for (int slot = 0; slot < kMaxPending; ++slot)
    if (gPending[slot].done) {
      moertCudaEventDestroy(gPending[slot].done);
      gPending[slot].done = NULL;
    }
  /* A non-blocking communicator finishes its pending work first
   * (ncclCommFinalize, which may be in progress), then is destroyed. */
  for (int g = 0; g < MOERT_NUM_GROUPS; ++g) {
    ncclComm_t comm = gComms[g];
    if (!comm)
      continue;
    gComms[g] = NULL;
    settle(comm, ncclCommFinalize(comm), "ncclCommFinalize");
    ncclResult_t result = ncclCommDestroy(comm);
    if (result != ncclSuccess)
      fail(NULL, result, "ncclCommDestroy");
  }
}
