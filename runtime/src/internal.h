/*===- internal.h - helpers shared by the moert loaders -------------*- C
 *-*-===*
 *
 * Not installed and not part of the ABI: overflow-checked size arithmetic,
 * shape formatting and unaligned little-endian loads and stores, used by
 * safetensors.c and npy.c.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_INTERNAL_H
#define MOERT_INTERNAL_H

#include "moert/dtype.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* *out = a * b; returns 0 (and leaves *out alone) when that overflows. */
static inline int moert_internal_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

/* The number of elements of a shape with non-negative dims, and its size in
 * bytes at `elem_size` bytes each; returns 0 when either overflows size_t. */
static inline int moert_internal_shape_bytes(int rank, const int64_t *shape,
                                             size_t elem_size, size_t *count,
                                             size_t *nbytes) {
  size_t elements = 1;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX)
      return 0;
    if (!moert_internal_mul_size(elements, (size_t)shape[i], &elements))
      return 0;
  }
  size_t bytes;
  if (!moert_internal_mul_size(elements, elem_size, &bytes))
    return 0;
  *count = elements;
  *nbytes = bytes;
  return 1;
}

/* Room for "[d0, d1, ..., d7]" with every d an int64. */
#define MOERT_INTERNAL_SHAPE_STRING_SIZE (2 + MOERT_MAX_RANK * 22)

/* Writes "[4, 16]" (or "[]" for a scalar) into buf. Prints at most
 * MOERT_MAX_RANK dims and "..." after them when rank is larger. */
static inline const char *moert_internal_format_shape(char *buf, size_t size,
                                                      int rank,
                                                      const int64_t *shape) {
  size_t used = 0;
  int written = snprintf(buf, size, "[");
  used = written > 0 ? (size_t)written : 0;
  for (int i = 0; i < rank && i < MOERT_MAX_RANK && used < size; ++i) {
    written = snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "",
                       shape[i]);
    if (written < 0)
      break;
    used += (size_t)written;
  }
  if (rank > MOERT_MAX_RANK && used < size) {
    written = snprintf(buf + used, size - used, ", ...");
    used += written > 0 ? (size_t)written : 0;
  }
  if (used < size)
    snprintf(buf + used, size - used, "]");
  return buf;
}

static inline uint16_t moert_internal_load_le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t moert_internal_load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static inline uint64_t moert_internal_load_le64(const uint8_t *p) {
  return (uint64_t)moert_internal_load_le32(p) |
         (uint64_t)moert_internal_load_le32(p + 4) << 32;
}

static inline void moert_internal_store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Whether the host stores integers little-endian, so that file bytes can be
 * copied as they are. */
static inline int moert_internal_host_is_little_endian(void) {
  const uint32_t one = 1;
  uint8_t first;
  memcpy(&first, &one, 1);
  return first == 1;
}

#endif /* MOERT_INTERNAL_H */
