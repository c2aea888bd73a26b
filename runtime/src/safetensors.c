/*===- safetensors.c - moert safetensors reader ---------------------------===*
 *
 * Maps a safetensors file read-only and validates all of it up front: the
 * header length, the JSON header (safetensors_header.c), and every tensor's
 * dtype, shape and byte range. Afterwards a tensor view is only a pointer
 * into the mapping, known to be in bounds. This file maps, answers queries
 * and converts tensors to f32.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/safetensors.h"

#include "internal.h"
#include "safetensors_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is rejected before anything is allocated. */
#define MAX_HEADER_BYTES ((uint64_t)100 * 1024 * 1024)
/* Bytes of the 8-byte length prefix. */
#define PREFIX_BYTES 8

struct moert_safetensors {
  char *path;
  void *map;
  size_t map_size;
  moert_tensor_view_t *tensors; /* header order */
  size_t num_tensors;
  const moert_tensor_view_t **by_name; /* sorted by name */
  char *strings;                       /* tensor names */
};

/*===----------------------------------------------------------------------===*
 * Errors
 *===----------------------------------------------------------------------===*/

/* "<path>: tensor '<tensor>': <detail>", or "<path>: <detail>" when tensor
 * is NULL. */
moert_status_t moert_internal_file_error(moert_status_code_t code,
                                         const char *path, const char *tensor,
                                         const char *format, ...) {
  char detail[512];
  va_list args;
  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  if (tensor)
    return moert_status_make(code, "%s: tensor '%s': %s", path, tensor, detail);
  return moert_status_make(code, "%s: %s", path, detail);
}

/*===----------------------------------------------------------------------===*
 * Opening and closing
 *===----------------------------------------------------------------------===*/

void moert_safetensors_close(moert_safetensors_t *file) {
  if (!file)
    return;
  if (file->map)
    munmap(file->map, file->map_size);
  free(file->tensors);
  free(file->by_name);
  free(file->strings);
  free(file->path);
  free(file);
}

/* Opens and maps `path`; fills file->map and file->map_size. */
static moert_status_t mapFile(const char *path, moert_safetensors_t *file) {
  /* O_NONBLOCK so that a FIFO does not block the open; it is rejected as not
   * a regular file right after. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int error = errno;
    return moert_internal_file_error(
        error == ENOENT ? MOERT_NOT_FOUND : MOERT_IO_ERROR, path, NULL,
        "cannot open: %s", strerror(error));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int error = errno;
    close(fd);
    return moert_internal_file_error(MOERT_IO_ERROR, path, NULL,
                                     "cannot stat: %s", strerror(error));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, path, NULL,
                                     "not a regular file");
  }
  if (st.st_size < PREFIX_BYTES) {
    close(fd);
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, path, NULL,
        "truncated: the file has %lld bytes, fewer than the "
        "8-byte header length",
        (long long)st.st_size);
  }
  if ((uint64_t)st.st_size > SIZE_MAX) {
    close(fd);
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, path, NULL,
        "the file's %lld bytes exceed the address space",
        (long long)st.st_size);
  }
  size_t size = (size_t)st.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int error = errno;
  close(fd);
  if (map == MAP_FAILED)
    return moert_internal_file_error(MOERT_IO_ERROR, path, NULL,
                                     "cannot map %zu bytes: %s", size,
                                     strerror(error));
  file->map = map;
  file->map_size = size;
  return NULL;
}

static moert_status_t openFile(const char *path, moert_safetensors_t *file) {
  moert_status_t status = mapFile(path, file);
  if (status)
    return status;
  const uint8_t *bytes = file->map;
  uint64_t header_length = moert_internal_load_le64(bytes);
  /* A JSON text, not a safetensors file: most likely the index of a sharded
   * checkpoint (model.safetensors.index.json), passed instead of its
   * shards. */
  size_t first = 0;
  while (first < file->map_size && first < 64 &&
         (bytes[first] == ' ' || bytes[first] == '\n' || bytes[first] == '\r' ||
          bytes[first] == '\t'))
    ++first;
  if (header_length > MAX_HEADER_BYTES && first < file->map_size &&
      bytes[first] == '{')
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, path, NULL,
        "a JSON file, not safetensors: a sharded checkpoint's "
        "model.safetensors.index.json? Pass each shard it lists instead, "
        "one --weights per shard");
  if (header_length > MAX_HEADER_BYTES)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, path, NULL,
                                     "header too large: %" PRIu64
                                     " bytes (the limit is %" PRIu64 ")",
                                     header_length, MAX_HEADER_BYTES);
  if (header_length > file->map_size - PREFIX_BYTES)
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, path, NULL,
        "truncated: the header length is %" PRIu64
        " bytes, but only %zu bytes follow the length",
        header_length, file->map_size - PREFIX_BYTES);

  moert_internal_header_t header;
  status = moert_internal_parse_header(
      path, bytes + PREFIX_BYTES, (size_t)header_length,
      file->map_size - PREFIX_BYTES - (size_t)header_length, &header);
  /* The file owns what the parser allocated, even on failure. */
  file->tensors = header.tensors;
  file->num_tensors = header.num_tensors;
  file->by_name = header.by_name;
  file->strings = header.strings;
  return status;
}

moert_status_t moert_safetensors_open(const char *path,
                                      moert_safetensors_t **out) {
  if (!out)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_safetensors_open: out is NULL");
  *out = NULL;
  if (!path)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_safetensors_open: path is NULL");
  moert_safetensors_t *file = calloc(1, sizeof(*file));
  char *path_copy = strdup(path);
  if (!file || !path_copy) {
    free(file);
    free(path_copy);
    return moert_status_make(MOERT_OUT_OF_MEMORY, "%s: out of memory", path);
  }
  file->path = path_copy;
  moert_status_t status = openFile(file->path, file);
  if (status) {
    moert_safetensors_close(file);
    return status;
  }
  *out = file;
  return NULL;
}

/*===----------------------------------------------------------------------===*
 * Queries
 *===----------------------------------------------------------------------===*/

const char *moert_safetensors_path(const moert_safetensors_t *file) {
  return file ? file->path : NULL;
}

size_t moert_safetensors_num_tensors(const moert_safetensors_t *file) {
  return file ? file->num_tensors : 0;
}

const moert_tensor_view_t *
moert_safetensors_tensor(const moert_safetensors_t *file, size_t index) {
  if (!file || index >= file->num_tensors)
    return NULL;
  return &file->tensors[index];
}

moert_status_t moert_safetensors_find(const moert_safetensors_t *file,
                                      const char *name,
                                      const moert_tensor_view_t **out) {
  if (out)
    *out = NULL;
  if (!file || !name || !out)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_safetensors_find: %s is NULL",
                             !file   ? "file"
                             : !name ? "name"
                                     : "out");
  size_t lo = 0, hi = file->num_tensors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const moert_tensor_view_t *view = file->by_name[mid];
    int c = strcmp(name, view->name);
    if (c == 0) {
      *out = view;
      return NULL;
    }
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return moert_internal_file_error(MOERT_NOT_FOUND, file->path, name,
                                   "not found (the file has %zu tensor%s)",
                                   file->num_tensors,
                                   file->num_tensors == 1 ? "" : "s");
}

/*===----------------------------------------------------------------------===*
 * Reading as float32
 *===----------------------------------------------------------------------===*/

static float floatFromBits(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

/* IEEE half to single: exact, including subnormals, infinities and NaN
 * payloads. */
static float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  if (exponent == 0x1F) /* infinity or NaN; keeps the payload */
    return floatFromBits(sign | 0x7F800000u | mantissa << 13);
  if (exponent != 0) /* normal */
    return floatFromBits(sign | (exponent + 127 - 15) << 23 | mantissa << 13);
  if (mantissa == 0) /* signed zero */
    return floatFromBits(sign);
  /* Subnormal: mantissa * 2^-24; normalize so the leading 1 is at bit 10. */
  uint32_t shift = 0;
  while (!(mantissa & 0x400)) {
    mantissa <<= 1;
    ++shift;
  }
  mantissa &= 0x3FF;
  return floatFromBits(sign | (127 - 15 + 1 - shift) << 23 | mantissa << 13);
}

static int isFloatDtype(moert_dtype_t dtype) {
  return dtype == MOERT_DTYPE_F32 || dtype == MOERT_DTYPE_F16 ||
         dtype == MOERT_DTYPE_BF16 || dtype == MOERT_DTYPE_F64;
}

/* Converts `count` little-endian elements of a float dtype at src. */
static void convertToF32(moert_dtype_t dtype, const uint8_t *src, size_t count,
                         float *dst) {
  switch (dtype) {
  case MOERT_DTYPE_F32:
    if (moert_internal_host_is_little_endian()) {
      memcpy(dst, src, count * sizeof(float));
    } else {
      for (size_t i = 0; i < count; ++i)
        dst[i] = floatFromBits(moert_internal_load_le32(src + 4 * i));
    }
    return;
  case MOERT_DTYPE_F16:
    for (size_t i = 0; i < count; ++i)
      dst[i] = halfToFloat(moert_internal_load_le16(src + 2 * i));
    return;
  case MOERT_DTYPE_BF16:
    for (size_t i = 0; i < count; ++i)
      dst[i] =
          floatFromBits((uint32_t)moert_internal_load_le16(src + 2 * i) << 16);
    return;
  case MOERT_DTYPE_F64:
    for (size_t i = 0; i < count; ++i) {
      uint64_t bits = moert_internal_load_le64(src + 8 * i);
      double value;
      memcpy(&value, &bits, sizeof(value));
      dst[i] = (float)value;
    }
    return;
  default:
    return; /* excluded by the callers */
  }
}

/* The checks shared by read_f32 and read_f32_slice. */
static moert_status_t prepareRead(const moert_safetensors_t *file,
                                  const char *name, int rank,
                                  const int64_t *shape, const char *function,
                                  const moert_tensor_view_t **out) {
  if (!file || !name)
    return moert_status_make(MOERT_INVALID_ARGUMENT, "%s: %s is NULL", function,
                             !file ? "file" : "name");
  const moert_tensor_view_t *view;
  moert_status_t status = moert_safetensors_find(file, name, &view);
  if (status)
    return status;
  if (rank < 0 || rank > MOERT_MAX_RANK)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, file->path, name,
                                     "expected rank %d is outside [0, %d]",
                                     rank, MOERT_MAX_RANK);
  if (rank > 0 && !shape)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, file->path, name,
                                     "expected shape is NULL for rank %d",
                                     rank);
  int same = view->rank == rank;
  for (int i = 0; same && i < rank; ++i)
    same = view->shape[i] == shape[i];
  if (!same) {
    char expected[MOERT_INTERNAL_SHAPE_STRING_SIZE];
    char actual[MOERT_INTERNAL_SHAPE_STRING_SIZE];
    moert_internal_format_shape(expected, sizeof(expected), rank, shape);
    moert_internal_format_shape(actual, sizeof(actual), view->rank,
                                view->shape);
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, file->path, name,
        "shape mismatch: expected %s, but the file has %s", expected, actual);
  }
  if (!isFloatDtype(view->dtype))
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, file->path, name,
        "dtype %s cannot be read as float32 (F32, F16, BF16 or "
        "F64 can)",
        moert_dtype_name(view->dtype));
  *out = view;
  return NULL;
}

moert_status_t moert_safetensors_read_f32(const moert_safetensors_t *file,
                                          const char *name, int rank,
                                          const int64_t *shape, float *dst) {
  const moert_tensor_view_t *view;
  moert_status_t status =
      prepareRead(file, name, rank, shape, "moert_safetensors_read_f32", &view);
  if (status)
    return status;
  if (view->nbytes == 0)
    return NULL;
  if (!dst)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, file->path, name,
                                     "destination is NULL");
  size_t elem_size = moert_dtype_size(view->dtype);
  convertToF32(view->dtype, view->data, view->nbytes / elem_size, dst);
  return NULL;
}

moert_status_t moert_safetensors_read_f32_slice(const moert_safetensors_t *file,
                                                const char *name, int rank,
                                                const int64_t *shape, int dim,
                                                int64_t begin, int64_t end,
                                                float *dst) {
  const moert_tensor_view_t *view;
  moert_status_t status = prepareRead(
      file, name, rank, shape, "moert_safetensors_read_f32_slice", &view);
  if (status)
    return status;
  if (dim < 0 || dim >= rank)
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, file->path, name,
        "slice dimension %d is out of range for rank %d", dim, rank);
  if (begin < 0 || begin > end || end > view->shape[dim])
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, file->path, name,
        "slice [%" PRId64 ", %" PRId64
        ") of dimension %d is out of bounds for its size %" PRId64
        " (need 0 <= begin <= end <= size)",
        begin, end, dim, view->shape[dim]);
  /* Every product below divides the tensor's element count, which is known
   * to fit in size_t. */
  size_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i)
    outer *= (size_t)view->shape[i];
  for (int i = dim + 1; i < rank; ++i)
    inner *= (size_t)view->shape[i];
  size_t rows = (size_t)(end - begin);
  size_t full_rows = (size_t)view->shape[dim];
  size_t chunk = rows * inner; /* elements copied per outer index */
  if (chunk == 0 || outer == 0)
    return NULL;
  if (!dst)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, file->path, name,
                                     "destination is NULL");
  size_t elem_size = moert_dtype_size(view->dtype);
  const uint8_t *src = view->data;
  for (size_t o = 0; o < outer; ++o) {
    size_t first = (o * full_rows + (size_t)begin) * inner;
    convertToF32(view->dtype, src + first * elem_size, chunk, dst + o * chunk);
  }
  return NULL;
}
