/*===- dtype.h - moert element types --------------------------------*- C
 *-*-===*
 *
 * The element types that the runtime's loaders (safetensors, npy) know, and
 * the rank limit they share. Every value is stored little-endian in the files
 * those loaders read.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_DTYPE_H
#define MOERT_DTYPE_H

#include "moert/moert.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The highest tensor rank the loaders accept. */
#define MOERT_MAX_RANK 8

typedef enum moert_dtype {
  MOERT_DTYPE_F32 = 0,
  MOERT_DTYPE_F16 = 1,
  MOERT_DTYPE_BF16 = 2,
  MOERT_DTYPE_I32 = 3,
  MOERT_DTYPE_I64 = 4,
  /* The rest of the safetensors types: a file holding them opens and their
   * tensors can be viewed, but only the float types convert to float32. */
  MOERT_DTYPE_F64 = 5,
  MOERT_DTYPE_I16 = 6,
  MOERT_DTYPE_I8 = 7,
  MOERT_DTYPE_U64 = 8,
  MOERT_DTYPE_U32 = 9,
  MOERT_DTYPE_U16 = 10,
  MOERT_DTYPE_U8 = 11,
  MOERT_DTYPE_BOOL = 12,
  MOERT_DTYPE_F8_E4M3 = 13,
  MOERT_DTYPE_F8_E5M2 = 14,
} moert_dtype_t;

/* The safetensors spelling of `dtype` ("F32", "BF16", ...); "UNKNOWN" for a
 * value outside the enum. A static string. */
MOERT_API const char *moert_dtype_name(moert_dtype_t dtype);
/* Bytes per element; 0 for a value outside the enum. */
MOERT_API size_t moert_dtype_size(moert_dtype_t dtype);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_DTYPE_H */
