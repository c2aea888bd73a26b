/*===- nccl_backend.h - the collectives of compiled code on NCCL ---*- C -*-===*
 *
 * libmoert_cuda runs the collectives compiled code calls (comm.c's
 * _mlir_ciface_moert_* entry points, after their checks and counters) on
 * NCCL over the device buffers, on a communication stream of their own so
 * that a started collective overlaps the kernels issued before its wait.
 * One NCCL communicator per runtime group,
 * created at the group's first collective from a unique id broadcast over
 * the group's MPI communicator; non-blocking, so every wait polls
 * ncclCommGetAsyncError and gives up after MOERT_NCCL_TIMEOUT seconds
 * (default 300) with a message.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_NCCL_BACKEND_H
#define MOERT_NCCL_BACKEND_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* Every collective runs on the communication stream (moertCudaCommStream)
 * after the work issued so far on the compute stream. `group` is the
 * runtime's group number, `mpi` its MPI communicator. Counts are in f32
 * elements: per rank for all_gather, per chunk for all_to_all, the output's
 * for reduce_scatter. With `async` the call returns a handle (> 0) for
 * moertNcclWait and the compute stream goes on meanwhile; else, or when
 * too many are in flight, it returns 0 after the collective is done. */
int64_t moertNcclAllReduce(int group, MPI_Comm mpi, const float *in, float *out,
                           size_t count, int async);
int64_t moertNcclAllGather(int group, MPI_Comm mpi, const float *in, float *out,
                           size_t count, int async);
int64_t moertNcclReduceScatter(int group, MPI_Comm mpi, const float *in,
                               float *out, size_t count, int async);
int64_t moertNcclAllToAll(int group, MPI_Comm mpi, const float *in, float *out,
                          size_t chunk, int size, int async);
/* Waits (watching errors and MOERT_NCCL_TIMEOUT) for the collective of a
 * handle; what is issued on the compute stream after it follows it. */
void moertNcclWait(int64_t handle);
/* ncclSend of `buffer` (sending) or ncclRecv into it. */
void moertNcclPointToPoint(int sending, int group, MPI_Comm mpi, float *buffer,
                           size_t count, int peer);
/* Waits for the work issued on the compute stream (cuda_runtime.c). */
void moert_gpu_sync(void);
/* Destroys the communicators (before the MPI ones go). */
void moertNcclFinalize(void);

#endif /* MOERT_NCCL_BACKEND_H */
