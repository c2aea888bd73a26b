/*===- cuda_internal.h - shared by the CUDA backend's files --------*- C
 * -*-===*/

#ifndef MOERT_CUDA_INTERNAL_H
#define MOERT_CUDA_INTERNAL_H

#include "moert/moert.h"

#include <cuda.h>

/* Opens the driver and makes this rank's device current (once). */
void moertCudaInit(void);
/* Waits for all work on the device. */
void moertCudaSynchronize(void);
/* The stream kernels, cuBLAS products and collectives run on, in the
 * order they are issued, and its state (CUDA_SUCCESS when idle,
 * CUDA_ERROR_NOT_READY when busy). */
CUstream moertCudaStream(void);
/* Where to write, before issuing it, what the next work is (a kernel's
 * name, a product's shape): errors found at later waits name it. */
char *moertCudaLastWork(size_t *capacity);
/* Records that work was issued on the stream without waiting for it (the
 * next moert_gpu_sync waits); with MOERT_CUDA_SYNC=1, waits right away. */
void moertCudaIssued(void);
CUresult moertCudaStreamQuery(CUstream stream);
/* The stream collectives run on beside moertCudaStream (created on first
 * use), and the events that order the two: an event recorded on a stream
 * after its work so far, a stream made to wait for one, its state
 * (CUDA_SUCCESS once reached) and its release (the driver keeps it until a
 * pending wait is done). */
CUstream moertCudaCommStream(void);
CUevent moertCudaRecordEvent(CUstream stream);
void moertCudaStreamAwait(CUstream stream, CUevent event);
CUresult moertCudaEventQuery(CUevent event);
void moertCudaEventDestroy(CUevent event);
/* Aborts every rank: "CUDA: <what> failed: <detail>". */
void moertCudaFail(const char *what, const char *detail)
    __attribute__((noreturn));
/* moertCudaFail with the driver's name and description of `result`. */
void moertCudaCheck(CUresult result, const char *what);

#endif /* MOERT_CUDA_INTERNAL_H */
