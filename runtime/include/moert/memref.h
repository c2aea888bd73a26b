/*===- memref.h - MLIR memref descriptors as the runtime sees them -*- C -*-===*
 *
 * Functions compiled with `llvm.emit_c_interface` pass memrefs as pointers to
 * these structs (MLIR's strided memref descriptor): the allocated and aligned
 * pointers, an offset in elements, then sizes and strides per dimension.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_MEMREF_H
#define MOERT_MEMREF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moert_memref1d_f32 {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} moert_memref1d_f32_t;

typedef struct moert_memref2d_f32 {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} moert_memref2d_f32_t;

typedef struct moert_memref3d_f32 {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[3];
  int64_t strides[3];
} moert_memref3d_f32_t;

typedef struct moert_memref5d_f32 {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[5];
  int64_t strides[5];
} moert_memref5d_f32_t;

typedef struct moert_memref1d_i64 {
  int64_t *allocated;
  int64_t *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} moert_memref1d_i64_t;

typedef struct moert_memref2d_i64 {
  int64_t *allocated;
  int64_t *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} moert_memref2d_i64_t;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_MEMREF_H */
