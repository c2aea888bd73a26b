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
/* Records that work (`what`, named in later errors) was issued on the
 * stream without waiting for it (the next moert_gpu_sync waits); with
 * MOERT_CUDA_SYNC=1, waits right away. */
void moertCudaIssued(const char *what);
CUresult moertCudaStreamQuery(CUstream stream);
/* Aborts every rank: "CUDA: <what> failed: <detail>". */
void moertCudaFail(const char *what, const char *detail)
    __attribute__((noreturn));
/* moertCudaFail with the driver's name and description of `result`. */
void moertCudaCheck(CUresult result, const char *what);

#endif /* MOERT_CUDA_INTERNAL_H */
