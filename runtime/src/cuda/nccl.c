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

/* Waits for the operations queued on the stream, watching the
 * communicator's asynchronous errors and the time. */
static void finish(ncclComm_t comm, const char *what) {
  CUstream stream = moertCudaStream();
  double start = now(), limit = timeoutSeconds();
  for (;;) {
    CUresult done = moertCudaStreamQuery(stream);
    if (done == CUDA_SUCCESS)
      return;
    if (done != CUDA_ERROR_NOT_READY)
      moertCudaCheck(done, what);
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm, &state);
    if (state != ncclSuccess && state != ncclInProgress)
      fail(comm, state, what);
    if (now() - start > limit)
      timedOut(comm, what, limit);
    sched_yield();
  }
}

/* Settles an operation just queued on the stream, then waits for it. */
static void complete(ncclComm_t comm, ncclResult_t result, const char *what) {
  settle(comm, result, what);
  finish(comm, what);
}

void moertNcclAllReduce(int group, MPI_Comm mpi, const float *in, float *out,
                        size_t count) {
  ncclComm_t comm = commOf(group, mpi);
  complete(comm,
           ncclAllReduce(in, out, count, ncclFloat, ncclSum, comm,
                         moertCudaStream()),
           "ncclAllReduce");
}

void moertNcclAllGather(int group, MPI_Comm mpi, const float *in, float *out,
                        size_t count) {
  ncclComm_t comm = commOf(group, mpi);
  complete(comm,
           ncclAllGather(in, out, count, ncclFloat, comm, moertCudaStream()),
           "ncclAllGather");
}

void moertNcclReduceScatter(int group, MPI_Comm mpi, const float *in,
                            float *out, size_t count) {
  ncclComm_t comm = commOf(group, mpi);
  complete(comm,
           ncclReduceScatter(in, out, count, ncclFloat, ncclSum, comm,
                             moertCudaStream()),
           "ncclReduceScatter");
}

/* NCCL has no all-to-all: one send and one receive per peer, grouped. */
void moertNcclAllToAll(int group, MPI_Comm mpi, const float *in, float *out,
                       size_t chunk, int size) {
  ncclComm_t comm = commOf(group, mpi);
  CUstream stream = moertCudaStream();
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
  complete(comm, ncclGroupEnd(), "all_to_all (ncclGroupEnd)");
}

void moertNcclPointToPoint(int sending, int group, MPI_Comm mpi, float *buffer,
                           size_t count, int peer) {
  ncclComm_t comm = commOf(group, mpi);
  const char *what = sending ? "ncclSend" : "ncclRecv";
  complete(
      comm,
      sending
          ? ncclSend(buffer, count, ncclFloat, peer, comm, moertCudaStream())
          : ncclRecv(buffer, count, ncclFloat, peer, comm, moertCudaStream()),
      what);
}

void moertNcclFinalize(void) {
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
