/*===- npy.c - moert NumPy .npy reader and writer -------------------------===*
 *
 * The format (numpy/lib/format.py): "\x93NUMPY", a major and a minor version
 * byte, the header length (2 bytes little-endian in version 1.0, 4 in 2.0),
 * the header, then the data. The header is a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in '\n'. The parser here accepts exactly that
 * shape: the three keys, each once, in any order, quoted with ' or ", with
 * string, True/False and tuple-of-integers values, and an optional trailing
 * comma. Anything else is an error naming the byte offset in the header.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/npy.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_BYTES 6
/* A header with a rank-8 shape needs a few hundred bytes; this is generous
 * and keeps a corrupt 4-byte length from allocating gigabytes. */
#define MAX_HEADER_BYTES ((uint32_t)1 << 20)
/* The writer aligns the data to this many bytes, as NumPy does. */
#define DATA_ALIGNMENT 64

static moert_status_t npyError(moert_status_code_t code, const char *path,
                               const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static moert_status_t npyError(moert_status_code_t code, const char *path,
                               const char *format, ...) {
  char detail[512];
  va_list args;
  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  return moert_status_make(code, "%s: %s", path, detail);
}

/* Reads exactly `size` bytes unless the file ends first; *got says how many
 * were read. Returns the errno of a failed read, or 0. */
static int readAll(int fd, void *buf, size_t size, size_t *got) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, (char *)buf + done, size - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      *got = done;
      return errno;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  *got = done;
  return 0;
}

static int writeAll(int fd, const void *buf, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, (const char *)buf + done, size - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    done += (size_t)n;
  }
  return 0;
}

/*===----------------------------------------------------------------------===*
 * The header dict parser
 *===----------------------------------------------------------------------===*/

typedef struct {
  const char *path;
  const char *text;
  size_t length;
  size_t pos;
} HeaderParser;

static moert_status_t headerError(HeaderParser *p, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static moert_status_t headerError(HeaderParser *p, const char *format, ...) {
  char detail[256];
  va_list args;
  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  return npyError(MOERT_INVALID_ARGUMENT, p->path,
                  "malformed header at byte %zu: %s", p->pos, detail);
}

static void skipSpaces(HeaderParser *p) {
  while (p->pos < p->length &&
         (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' ||
          p->text[p->pos] == '\n' || p->text[p->pos] == '\r'))
    ++p->pos;
}

static int peekChar(const HeaderParser *p) {
  return p->pos < p->length ? (unsigned char)p->text[p->pos] : -1;
}

static const char *describeChar(const HeaderParser *p, char buf[16]) {
  int c = peekChar(p);
  if (c < 0)
    return "the end of the header";
  if (c >= 0x21 && c < 0x7f)
    snprintf(buf, 16, "'%c'", c);
  else
    snprintf(buf, 16, "byte 0x%02x", c);
  return buf;
}

static moert_status_t expectHeaderChar(HeaderParser *p, char expected,
                                       const char *what) {
  skipSpaces(p);
  if (peekChar(p) == (unsigned char)expected) {
    ++p->pos;
    return NULL;
  }
  char buf[16];
  return headerError(p, "expected '%c' %s, found %s", expected, what,
                     describeChar(p, buf));
}

/* A quoted Python string without escapes; *out and *length point into the
 * header. */
static moert_status_t parseQuoted(HeaderParser *p, const char *what,
                                  const char **out, size_t *length) {
  skipSpaces(p);
  int quote = peekChar(p);
  if (quote != '\'' && quote != '"') {
    char buf[16];
    return headerError(p, "expected a quoted string (%s), found %s", what,
                       describeChar(p, buf));
  }
  size_t start = ++p->pos;
  while (p->pos < p->length && p->text[p->pos] != quote) {
    unsigned char c = (unsigned char)p->text[p->pos];
    if (c == '\\' || c < 0x20 || c >= 0x7f)
      return headerError(p, "unsupported character 0x%02x in a string", c);
    ++p->pos;
  }
  if (p->pos >= p->length)
    return headerError(p, "unterminated string");
  *out = p->text + start;
  *length = p->pos - start;
  ++p->pos;
  return NULL;
}

static int matchWord(HeaderParser *p, const char *word) {
  size_t n = strlen(word);
  if (p->length - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
    return 0;
  /* Not a prefix of a longer identifier, e.g. "Truex". */
  if (p->pos + n < p->length) {
    unsigned char next = (unsigned char)p->text[p->pos + n];
    if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
        (next >= '0' && next <= '9') || next == '_')
      return 0;
  }
  p->pos += n;
  return 1;
}

static moert_status_t parseDescr(HeaderParser *p, moert_dtype_t *dtype) {
  skipSpaces(p);
  if (peekChar(p) == '[')
    return headerError(p, "'descr' is a list: structured dtypes are not "
                          "supported");
  const char *descr;
  size_t length;
  moert_status_t status =
      parseQuoted(p, "the value of 'descr'", &descr, &length);
  if (status)
    return status;
  int shown = length > 32 ? 32 : (int)length;
  if (length == 3 && descr[0] == '<') {
    if (memcmp(descr + 1, "f4", 2) == 0) {
      *dtype = MOERT_DTYPE_F32;
      return NULL;
    }
    if (memcmp(descr + 1, "i4", 2) == 0) {
      *dtype = MOERT_DTYPE_I32;
      return NULL;
    }
    if (memcmp(descr + 1, "i8", 2) == 0) {
      *dtype = MOERT_DTYPE_I64;
      return NULL;
    }
  }
  if (length > 0 && descr[0] == '>')
    return npyError(MOERT_INVALID_ARGUMENT, p->path,
                    "big-endian dtype '%.*s' is not supported (only '<f4', "
                    "'<i4' and '<i8' are)",
                    shown, descr);
  return npyError(MOERT_INVALID_ARGUMENT, p->path,
                  "unsupported dtype '%.*s' (only '<f4', '<i4' and '<i8' "
                  "are supported)",
                  shown, descr);
}

static moert_status_t parseFortranOrder(HeaderParser *p) {
  skipSpaces(p);
  if (matchWord(p, "False"))
    return NULL;
  if (matchWord(p, "True"))
    return npyError(MOERT_INVALID_ARGUMENT, p->path,
                    "fortran_order True is not supported (only C order is)");
  char buf[16];
  return headerError(p, "expected True or False for 'fortran_order', found %s",
                     describeChar(p, buf));
}

/* A tuple of non-negative integers: "()", "(3,)", "(2, 3)", "(2, 3,)". */
static moert_status_t parseShapeTuple(HeaderParser *p, int *rank,
                                      int64_t *shape) {
  moert_status_t status = expectHeaderChar(p, '(', "to open the 'shape' tuple");
  if (status)
    return status;
  size_t count = 0;
  int trailing_comma = 0;
  for (;;) {
    skipSpaces(p);
    if (peekChar(p) == ')') {
      ++p->pos;
      break;
    }
    int c = peekChar(p);
    if (c == '-')
      return headerError(p, "shape[%zu] is negative", count);
    if (c < '0' || c > '9') {
      char buf[16];
      return headerError(p, "expected an integer in 'shape', found %s",
                         describeChar(p, buf));
    }
    int64_t value = 0;
    while (p->pos < p->length && p->text[p->pos] >= '0' &&
           p->text[p->pos] <= '9') {
      int digit = p->text[p->pos] - '0';
      if (value > (INT64_MAX - digit) / 10)
        return headerError(p, "shape[%zu] is out of the range of int64", count);
      value = value * 10 + digit;
      ++p->pos;
    }
    if (count < MOERT_MAX_RANK)
      shape[count] = value;
    ++count;
    skipSpaces(p);
    trailing_comma = 0;
    if (peekChar(p) == ',') {
      ++p->pos;
      trailing_comma = 1;
      continue;
    }
    if (peekChar(p) != ')') {
      char buf[16];
      return headerError(p, "expected ',' or ')' in 'shape', found %s",
                         describeChar(p, buf));
    }
  }
  if (count == 1 && !trailing_comma)
    return headerError(p, "'shape' of one element needs a trailing comma, "
                          "as in (3,)");
  if (count > MOERT_MAX_RANK)
    return npyError(MOERT_INVALID_ARGUMENT, p->path,
                    "rank %zu exceeds the maximum rank %d", count,
                    MOERT_MAX_RANK);
  *rank = (int)count;
  return NULL;
}

static moert_status_t parseHeaderDict(HeaderParser *p, moert_npy_array_t *out) {
  moert_status_t status = expectHeaderChar(p, '{', "to open the header dict");
  if (status)
    return status;
  int have_descr = 0, have_order = 0, have_shape = 0;
  for (;;) {
    skipSpaces(p);
    if (peekChar(p) == '}') {
      ++p->pos;
      break;
    }
    size_t key_pos = p->pos;
    const char *key;
    size_t key_length;
    status = parseQuoted(p, "a key of the header dict", &key, &key_length);
    if (status)
      return status;
    int *seen;
    int which;
    if (key_length == 5 && memcmp(key, "descr", 5) == 0) {
      seen = &have_descr;
      which = 0;
    } else if (key_length == 13 && memcmp(key, "fortran_order", 13) == 0) {
      seen = &have_order;
      which = 1;
    } else if (key_length == 5 && memcmp(key, "shape", 5) == 0) {
      seen = &have_shape;
      which = 2;
    } else {
      p->pos = key_pos;
      return headerError(p, "unexpected key '%.*s'",
                         key_length > 32 ? 32 : (int)key_length, key);
    }
    if (*seen) {
      p->pos = key_pos;
      return headerError(p, "duplicate key '%.*s'", (int)key_length, key);
    }
    *seen = 1;
    status = expectHeaderChar(p, ':', "after a key");
    if (status)
      return status;
    if (which == 0)
      status = parseDescr(p, &out->dtype);
    else if (which == 1)
      status = parseFortranOrder(p);
    else
      status = parseShapeTuple(p, &out->rank, out->shape);
    if (status)
      return status;
    skipSpaces(p);
    if (peekChar(p) == ',') {
      ++p->pos;
      continue;
    }
    status = expectHeaderChar(p, '}', "or ',' in the header dict");
    if (status)
      return status;
    break;
  }
  skipSpaces(p);
  if (p->pos != p->length) {
    char buf[16];
    return headerError(p, "unexpected %s after the header dict",
                       describeChar(p, buf));
  }
  if (!have_descr || !have_order || !have_shape)
    return headerError(p, "the header dict has no '%s'",
                       !have_descr   ? "descr"
                       : !have_order ? "fortran_order"
                                     : "shape");
  return NULL;
}

/*===----------------------------------------------------------------------===*
 * Reading
 *===----------------------------------------------------------------------===*/

/* Converts `count` little-endian elements of `size` bytes to host order. */
static void littleToHost(void *data, size_t count, size_t size) {
  if (moert_internal_host_is_little_endian())
    return;
  uint8_t *bytes = data;
  for (size_t i = 0; i < count; ++i) {
    uint8_t *e = bytes + i * size;
    for (size_t j = 0; j < size / 2; ++j) {
      uint8_t t = e[j];
      e[j] = e[size - 1 - j];
      e[size - 1 - j] = t;
    }
  }
}

static moert_status_t readFile(const char *path, int fd,
                               moert_npy_array_t *out) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return npyError(MOERT_IO_ERROR, path, "cannot stat: %s", strerror(errno));
  if (!S_ISREG(st.st_mode))
    return npyError(MOERT_INVALID_ARGUMENT, path, "not a regular file");
  uint64_t file_size = (uint64_t)st.st_size;

  /* Magic, version and the header length. */
  uint8_t prefix[12];
  size_t got;
  int error = readAll(fd, prefix, 10, &got);
  if (error)
    return npyError(MOERT_IO_ERROR, path, "cannot read: %s", strerror(error));
  if (memcmp(prefix, MAGIC, got < MAGIC_BYTES ? got : MAGIC_BYTES) != 0)
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "not a .npy file (no \\x93NUMPY magic string)");
  if (got < 10)
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "truncated: the file has %zu bytes, fewer than the "
                    "10-byte preamble",
                    got);
  int major = prefix[6], minor = prefix[7];
  size_t prefix_bytes;
  uint32_t header_length;
  if (major == 1 && minor == 0) {
    prefix_bytes = 10;
    header_length = moert_internal_load_le16(prefix + 8);
  } else if (major == 2 && minor == 0) {
    prefix_bytes = 12;
    error = readAll(fd, prefix + 10, 2, &got);
    if (error)
      return npyError(MOERT_IO_ERROR, path, "cannot read: %s", strerror(error));
    if (got < 2)
      return npyError(MOERT_INVALID_ARGUMENT, path,
                      "truncated: the file ends inside the version 2.0 "
                      "preamble");
    header_length = moert_internal_load_le32(prefix + 8);
  } else {
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "unsupported .npy version %d.%d (only 1.0 and 2.0 are)",
                    major, minor);
  }
  if (header_length > MAX_HEADER_BYTES)
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "header too large: %" PRIu32 " bytes (the limit is %" PRIu32
                    ")",
                    header_length, MAX_HEADER_BYTES);
  if (header_length > file_size - prefix_bytes)
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "truncated: the header length is %" PRIu32
                    " bytes, but only %" PRIu64 " bytes follow the preamble",
                    header_length, file_size - prefix_bytes);

  char *header = malloc((size_t)header_length + 1);
  if (!header)
    return npyError(MOERT_OUT_OF_MEMORY, path, "out of memory");
  error = readAll(fd, header, header_length, &got);
  if (error || got < header_length) {
    free(header);
    return npyError(MOERT_IO_ERROR, path, "cannot read the header: %s",
                    error ? strerror(error) : "the file shrank");
  }
  header[header_length] = '\0';
  HeaderParser parser = {path, header, header_length, 0};
  moert_status_t status = parseHeaderDict(&parser, out);
  free(header);
  if (status)
    return status;

  size_t count, nbytes;
  char shape[MOERT_INTERNAL_SHAPE_STRING_SIZE];
  moert_internal_format_shape(shape, sizeof(shape), out->rank, out->shape);
  if (!moert_internal_shape_bytes(
          out->rank, out->shape, moert_dtype_size(out->dtype), &count, &nbytes))
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "shape %s overflows the addressable size", shape);
  uint64_t available = file_size - prefix_bytes - header_length;
  if (available < nbytes)
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "truncated data: shape %s of %s needs %zu bytes, but the "
                    "file has %" PRIu64,
                    shape, moert_dtype_name(out->dtype), nbytes, available);
  if (available > nbytes)
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "%" PRIu64 " unexpected bytes after the data of shape %s "
                    "of %s (%zu bytes)",
                    available - nbytes, shape, moert_dtype_name(out->dtype),
                    nbytes);

  out->data = malloc(nbytes ? nbytes : 1);
  if (!out->data)
    return npyError(MOERT_OUT_OF_MEMORY, path,
                    "out of memory for %zu bytes of data", nbytes);
  error = readAll(fd, out->data, nbytes, &got);
  if (error || got < nbytes)
    return npyError(MOERT_IO_ERROR, path, "cannot read the data: %s",
                    error ? strerror(error) : "the file shrank");
  littleToHost(out->data, count, moert_dtype_size(out->dtype));
  out->nbytes = nbytes;
  return NULL;
}

moert_status_t moert_npy_read(const char *path, moert_npy_array_t *out) {
  if (!out)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_npy_read: out is NULL");
  memset(out, 0, sizeof(*out));
  if (!path)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_npy_read: path is NULL");
  /* O_NONBLOCK so that a FIFO does not block the open; it is rejected as not
   * a regular file right after. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int error = errno;
    return npyError(error == ENOENT ? MOERT_NOT_FOUND : MOERT_IO_ERROR, path,
                    "cannot open: %s", strerror(error));
  }
  moert_status_t status = readFile(path, fd, out);
  close(fd);
  if (status)
    moert_npy_free(out);
  return status;
}

void moert_npy_free(moert_npy_array_t *array) {
  if (!array)
    return;
  free(array->data);
  memset(array, 0, sizeof(*array));
}

/*===----------------------------------------------------------------------===*
 * Writing
 *===----------------------------------------------------------------------===*/

/* Writes `count` elements of `size` bytes in little-endian order. */
static int writeLittleEndian(int fd, const uint8_t *data, size_t count,
                             size_t size) {
  if (moert_internal_host_is_little_endian())
    return writeAll(fd, data, count * size);
  uint8_t buffer[4096];
  size_t per_chunk = sizeof(buffer) / size;
  for (size_t first = 0; first < count; first += per_chunk) {
    size_t n = count - first < per_chunk ? count - first : per_chunk;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < size; ++j)
        buffer[i * size + j] = data[(first + i) * size + (size - 1 - j)];
    int error = writeAll(fd, buffer, n * size);
    if (error)
      return error;
  }
  return 0;
}

moert_status_t moert_npy_write(const char *path, moert_dtype_t dtype, int rank,
                               const int64_t *shape, const void *data) {
  if (!path)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "moert_npy_write: path is NULL");
  const char *descr;
  switch (dtype) {
  case MOERT_DTYPE_F32:
    descr = "<f4";
    break;
  case MOERT_DTYPE_I32:
    descr = "<i4";
    break;
  case MOERT_DTYPE_I64:
    descr = "<i8";
    break;
  default:
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "cannot write dtype %s (only F32, I32 and I64)",
                    moert_dtype_name(dtype));
  }
  if (rank < 0 || rank > MOERT_MAX_RANK)
    return npyError(MOERT_INVALID_ARGUMENT, path, "rank %d is outside [0, %d]",
                    rank, MOERT_MAX_RANK);
  if (rank > 0 && !shape)
    return npyError(MOERT_INVALID_ARGUMENT, path, "shape is NULL for rank %d",
                    rank);
  char shape_text[MOERT_INTERNAL_SHAPE_STRING_SIZE];
  moert_internal_format_shape(shape_text, sizeof(shape_text), rank, shape);
  for (int i = 0; i < rank; ++i)
    if (shape[i] < 0)
      return npyError(MOERT_INVALID_ARGUMENT, path,
                      "shape %s has a negative dimension", shape_text);
  size_t elem_size = moert_dtype_size(dtype), count, nbytes;
  if (!moert_internal_shape_bytes(rank, shape, elem_size, &count, &nbytes))
    return npyError(MOERT_INVALID_ARGUMENT, path,
                    "shape %s overflows the addressable size", shape_text);
  if (!data && nbytes)
    return npyError(MOERT_INVALID_ARGUMENT, path, "data is NULL");

  /* The preamble and the header: the dict, then spaces and '\n' up to a
   * multiple of 64. With 8 dims of up to 20 digits the dict has under 250
   * characters, so it always fits in version 1.0's 2-byte length. */
  char header[512];
  int length =
      snprintf(header + 10, sizeof(header) - 10,
               "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < rank; ++i)
    length +=
        snprintf(header + 10 + length, sizeof(header) - 10 - (size_t)length,
                 "%s%" PRId64, i ? ", " : "", shape[i]);
  length += snprintf(header + 10 + length, sizeof(header) - 10 - (size_t)length,
                     "%s), }", rank == 1 ? "," : "");
  size_t total = 10 + (size_t)length + 1; /* + '\n' */
  size_t padded =
      (total + DATA_ALIGNMENT - 1) / DATA_ALIGNMENT * DATA_ALIGNMENT;
  memset(header + 10 + length, ' ', padded - total);
  header[padded - 1] = '\n';
  memcpy(header, MAGIC, MAGIC_BYTES);
  header[6] = 1;
  header[7] = 0;
  header[8] = (char)((padded - 10) & 0xFF);
  header[9] = (char)((padded - 10) >> 8);

  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    return npyError(MOERT_IO_ERROR, path, "cannot create: %s", strerror(errno));
  int error = writeAll(fd, header, padded);
  if (!error)
    error = writeLittleEndian(fd, data, count, elem_size);
  if (close(fd) != 0 && !error)
    error = errno;
  if (error) {
    unlink(path);
    return npyError(MOERT_IO_ERROR, path, "cannot write: %s", strerror(error));
  }
  return NULL;
}

moert_status_t moert_npy_write_f32(const char *path, int rank,
                                   const int64_t *shape, const float *data) {
  return moert_npy_write(path, MOERT_DTYPE_F32, rank, shape, data);
}
