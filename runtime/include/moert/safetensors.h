/*===- safetensors.h - moert safetensors reader ---------------------*- C
 *-*-===*
 *
 * Reads a safetensors file: an 8-byte little-endian header length N, N bytes
 * of JSON header mapping tensor names to {"dtype", "shape", "data_offsets"}
 * (plus an optional "__metadata__" object of strings, which is skipped), then
 * the data section. The file is mapped read-only; every tensor's entry is
 * validated when the file is opened, so that a view handed out later is
 * always in bounds. See runtime/README.md for the validation rules.
 *
 * Error messages start with the file's path, then name the tensor, if any:
 *   "<path>: tensor '<name>': <what is wrong, with the numbers involved>"
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_SAFETENSORS_H
#define MOERT_SAFETENSORS_H

#include "moert/dtype.h"
#include "moert/moert.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One tensor of an open file. Every pointer stays valid until the file is
 * closed. `data` points into the mapping and need not be aligned; it holds
 * `nbytes` == product(shape) * moert_dtype_size(dtype) little-endian bytes
 * (non-NULL even when nbytes is 0). Rank 0 is a scalar. */
typedef struct moert_tensor_view {
  const char *name; /* UTF-8, NUL-terminated */
  moert_dtype_t dtype;
  int rank;
  int64_t shape[MOERT_MAX_RANK];
  const void *data;
  size_t nbytes;
} moert_tensor_view_t;

typedef struct moert_safetensors moert_safetensors_t;

/* Maps and validates `path`. On success *out owns the file; on failure *out
 * is NULL. */
MOERT_API moert_status_t moert_safetensors_open(const char *path,
                                                moert_safetensors_t **out);
/* Unmaps and frees; NULL is fine. */
MOERT_API void moert_safetensors_close(moert_safetensors_t *file);

/* The path the file was opened with. */
MOERT_API const char *moert_safetensors_path(const moert_safetensors_t *file);
/* The number of tensors (the "__metadata__" entry is not one); 0 for NULL. */
MOERT_API size_t moert_safetensors_num_tensors(const moert_safetensors_t *file);
/* The index-th tensor, in header order; NULL when index is out of range. */
MOERT_API const moert_tensor_view_t *
moert_safetensors_tensor(const moert_safetensors_t *file, size_t index);
/* Looks a tensor up by name: NOT_FOUND naming the tensor and the file if
 * there is none. */
MOERT_API moert_status_t
moert_safetensors_find(const moert_safetensors_t *file, const char *name,
                       const moert_tensor_view_t **out);

/* Copies tensor `name` into dst as float32, converting from F32, F16, BF16 or
 * F64. Its shape must equal (rank, shape) exactly. dst holds product(shape)
 * floats. */
MOERT_API moert_status_t
moert_safetensors_read_f32(const moert_safetensors_t *file, const char *name,
                           int rank, const int64_t *shape, float *dst);
/* Like moert_safetensors_read_f32, but copies only the rows [begin, end) along
 * dimension `dim`; (rank, shape) is the full tensor's shape. dst receives a
 * dense row-major tensor whose shape is `shape` with shape[dim] replaced by
 * end - begin. Requires 0 <= dim < rank and 0 <= begin <= end <= shape[dim]. */
MOERT_API moert_status_t moert_safetensors_read_f32_slice(
    const moert_safetensors_t *file, const char *name, int rank,
    const int64_t *shape, int dim, int64_t begin, int64_t end, float *dst);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_SAFETENSORS_H */
