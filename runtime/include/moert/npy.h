/*===- npy.h - moert NumPy .npy reader and writer -------------------*- C
 *-*-===*
 *
 * Reads and writes NumPy's .npy format (versions 1.0 and 2.0): a magic
 * string, a version, a little-endian header length, a Python dict literal
 * {'descr': ..., 'fortran_order': ..., 'shape': (...)}, then the raw data.
 * Only C-order little-endian '<f4', '<i4' and '<i8' arrays are supported.
 *
 * Error messages start with the file's path: "<path>: <what is wrong>".
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_NPY_H
#define MOERT_NPY_H

#include "moert/dtype.h"
#include "moert/moert.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An array read from a .npy file. */
typedef struct moert_npy_array {
  moert_dtype_t dtype; /* MOERT_DTYPE_F32, MOERT_DTYPE_I32 or MOERT_DTYPE_I64 */
  int rank;            /* 0 is a scalar */
  int64_t shape[MOERT_MAX_RANK];
  void *data;    /* malloc'ed, row-major, host byte order; never NULL after a
                    successful read, even when nbytes is 0 */
  size_t nbytes; /* product(shape) * moert_dtype_size(dtype) */
} moert_npy_array_t;

/* Reads `path` into *out. On failure *out is zeroed (data NULL), so
 * moert_npy_free(out) is always safe. */
MOERT_API moert_status_t moert_npy_read(const char *path,
                                        moert_npy_array_t *out);
/* Frees array->data and zeroes *array; NULL is fine. */
MOERT_API void moert_npy_free(moert_npy_array_t *array);

/* Writes a C-order array of `dtype` (F32, I32 or I64), `data` in host byte
 * order, as a version 1.0 .npy file; the header is padded with spaces and a
 * final '\n' so that the data starts at a multiple of 64 bytes. Replaces an
 * existing file; on failure no partial file is left at `path`. */
MOERT_API moert_status_t moert_npy_write(const char *path, moert_dtype_t dtype,
                                         int rank, const int64_t *shape,
                                         const void *data);
/* moert_npy_write for float32 ('<f4'). */
MOERT_API moert_status_t moert_npy_write_f32(const char *path, int rank,
                                             const int64_t *shape,
                                             const float *data);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_NPY_H */
