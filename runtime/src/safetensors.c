/*===- safetensors.c - moert safetensors reader ---------------------------===*
 *
 * Maps a safetensors file read-only and validates all of it up front: the
 * header length, the JSON header (parsed by a small strict parser written for
 * this one schema, so that its nesting depth is bounded by construction), and
 * every tensor's dtype, shape and byte range. Afterwards a tensor view is
 * only a pointer into the mapping, known to be in bounds.
 *
 * The parser accepts exactly
 *   header   := ws '{' ws [ entry (ws ',' ws entry)* ] ws '}' ws
 *   entry    := string ws ':' ws (tensor | metadata)
 *   tensor   := '{' members of "dtype": string, "shape": [int, ...] and
 *               "data_offsets": [int, int], each exactly once '}'
 *   metadata := 'null' | '{' [ string ':' string (',' string ':' string)* ] '}'
 * with JSON's strings (escapes, \u surrogate pairs, UTF-8 checked) and
 * integers (no fraction, no exponent, within int64). Anything else (floats,
 * true/false, unknown keys, trailing commas, deeper nesting) is an error
 * that names the byte offset in the header.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/safetensors.h"

#include "internal.h"

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

/* Names, keys and dtype strings quoted in a message are cut to this many
 * bytes, except tensor names, which are quoted whole. */
#define QUOTE_LIMIT 64

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
static moert_status_t fileError(moert_status_code_t code, const char *path,
                                const char *tensor, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static moert_status_t fileError(moert_status_code_t code, const char *path,
                                const char *tensor, const char *format, ...) {
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
 * The JSON header parser
 *===----------------------------------------------------------------------===*/

typedef struct {
  uint64_t begin, end;
  size_t index; /* of the tensor, in header order */
} ByteRange;

typedef struct {
  const char *path;
  const uint8_t *text;
  size_t length;
  size_t pos;
  /* Decoded strings; never longer than the header itself, since a decoded
   * string plus its NUL is no longer than its quoted source. */
  char *arena;
  size_t arena_used;
  /* The tensor whose entry is being parsed, for messages; NULL outside. */
  const char *tensor;
  /* What the entries describe. */
  moert_tensor_view_t *tensors;
  ByteRange *ranges;
  size_t num_tensors, capacity;
  size_t data_size; /* bytes of the data section */
  const uint8_t *data;
} Parser;

static moert_status_t syntaxError(Parser *p, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static moert_status_t syntaxError(Parser *p, const char *format, ...) {
  char detail[256];
  va_list args;
  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                   "invalid JSON header at byte %zu: %s", p->pos, detail);
}

static void skipWhitespace(Parser *p) {
  while (p->pos < p->length) {
    uint8_t c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      return;
    ++p->pos;
  }
}

/* The next byte, or -1 at the end of the header. */
static int peek(const Parser *p) {
  return p->pos < p->length ? p->text[p->pos] : -1;
}

/* A printable description of the next byte, for "found ..." messages. */
static const char *describeNext(const Parser *p, char buf[16]) {
  int c = peek(p);
  if (c < 0)
    return "the end of the header";
  if (c >= 0x21 && c < 0x7f)
    snprintf(buf, 16, "'%c'", c);
  else
    snprintf(buf, 16, "byte 0x%02x", c);
  return buf;
}

static moert_status_t expectChar(Parser *p, char expected, const char *what) {
  skipWhitespace(p);
  if (peek(p) == (unsigned char)expected) {
    ++p->pos;
    return NULL;
  }
  char buf[16];
  return syntaxError(p, "expected '%c' %s, found %s", expected, what,
                     describeNext(p, buf));
}

static int hexValue(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Reads the 4 hex digits of a \u escape at p->pos. */
static moert_status_t parseHex4(Parser *p, uint32_t *out) {
  if (p->length - p->pos < 4)
    return syntaxError(p, "truncated \\u escape");
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    int digit = hexValue(p->text[p->pos + (size_t)i]);
    if (digit < 0)
      return syntaxError(p, "invalid hex digit in \\u escape");
    value = value << 4 | (uint32_t)digit;
  }
  p->pos += 4;
  *out = value;
  return NULL;
}

static size_t encodeUtf8(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* The length of the well-formed UTF-8 sequence (2 to 4 bytes) starting at
 * s[0] >= 0x80, or 0 when it is malformed, overlong, a surrogate or beyond
 * U+10FFFF. */
static size_t utf8SequenceLength(const uint8_t *s, size_t available) {
  uint8_t c = s[0];
  size_t length;
  uint8_t lo = 0x80, hi = 0xBF; /* the range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* beyond U+10FFFF */
  } else {
    return 0;
  }
  if (available < length)
    return 0;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < length; ++i)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return length;
}

/* Parses a JSON string at p->pos (after whitespace) and decodes it into the
 * arena, NUL-terminated. *out points at it; the caller may give the space
 * back by resetting arena_used. */
static moert_status_t parseString(Parser *p, const char *what, char **out) {
  skipWhitespace(p);
  if (peek(p) != '"') {
    char buf[16];
    return syntaxError(p, "expected a string (%s), found %s", what,
                       describeNext(p, buf));
  }
  ++p->pos;
  char *start = p->arena + p->arena_used;
  char *dst = start;
  for (;;) {
    if (p->pos >= p->length)
      return syntaxError(p, "unterminated string");
    uint8_t c = p->text[p->pos];
    if (c == '"') {
      ++p->pos;
      break;
    }
    if (c < 0x20)
      return syntaxError(p, "unescaped control character 0x%02x in string", c);
    if (c >= 0x80) {
      size_t n = utf8SequenceLength(p->text + p->pos, p->length - p->pos);
      if (n == 0)
        return syntaxError(p, "invalid UTF-8 in string");
      memcpy(dst, p->text + p->pos, n);
      dst += n;
      p->pos += n;
      continue;
    }
    if (c != '\\') {
      *dst++ = (char)c;
      ++p->pos;
      continue;
    }
    /* An escape. */
    ++p->pos;
    if (p->pos >= p->length)
      return syntaxError(p, "unterminated string");
    c = p->text[p->pos++];
    switch (c) {
    case '"':
    case '\\':
    case '/':
      *dst++ = (char)c;
      break;
    case 'b':
      *dst++ = '\b';
      break;
    case 'f':
      *dst++ = '\f';
      break;
    case 'n':
      *dst++ = '\n';
      break;
    case 'r':
      *dst++ = '\r';
      break;
    case 't':
      *dst++ = '\t';
      break;
    case 'u': {
      uint32_t cp;
      moert_status_t status = parseHex4(p, &cp);
      if (status)
        return status;
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return syntaxError(p, "unpaired low surrogate \\u%04X in string",
                           (unsigned)cp);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->length - p->pos < 2 || p->text[p->pos] != '\\' ||
            p->text[p->pos + 1] != 'u')
          return syntaxError(p, "unpaired high surrogate \\u%04X in string",
                             (unsigned)cp);
        p->pos += 2;
        uint32_t low;
        status = parseHex4(p, &low);
        if (status)
          return status;
        if (low < 0xDC00 || low > 0xDFFF)
          return syntaxError(p, "unpaired high surrogate \\u%04X in string",
                             (unsigned)cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      }
      if (cp == 0)
        return syntaxError(p, "\\u0000 in string");
      dst += encodeUtf8(cp, dst);
      break;
    }
    default:
      --p->pos;
      return syntaxError(p, "invalid escape '\\%c' in string",
                         c >= 0x20 && c < 0x7f ? (char)c : '?');
    }
  }
  *dst++ = '\0';
  p->arena_used += (size_t)(dst - start);
  *out = start;
  return NULL;
}

/* Result of scanning a number token. */
typedef enum {
  NUMBER_OK,
  NUMBER_NOT_A_NUMBER,
  NUMBER_NOT_INTEGER,
  NUMBER_OUT_OF_RANGE
} NumberResult;

/* Parses a JSON integer at p->pos (after whitespace). On NUMBER_OK, *out
 * holds it and p->pos is past it; otherwise p->pos is left at the token and
 * *token_length is its length (0 when it does not look like a number). */
static NumberResult scanInteger(Parser *p, int64_t *out, size_t *token_length) {
  skipWhitespace(p);
  size_t pos = p->pos;
  /* The whole token, so that "1.5" and "1e3" are reported as non-integers
   * rather than as a syntax error at the '.'. */
  size_t end = pos;
  while (end < p->length) {
    uint8_t c = p->text[end];
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
          c == 'e' || c == 'E'))
      break;
    ++end;
  }
  *token_length = end - pos;
  if (end == pos)
    return NUMBER_NOT_A_NUMBER;
  int negative = 0;
  if (p->text[pos] == '-') {
    negative = 1;
    ++pos;
  }
  size_t digits_begin = pos;
  while (pos < end && p->text[pos] >= '0' && p->text[pos] <= '9')
    ++pos;
  size_t digits = pos - digits_begin;
  if (digits == 0)
    return NUMBER_NOT_A_NUMBER; /* "-", "+1", ".5", "e" */
  if (pos < end) {
    /* A fraction or an exponent: a number, but not an integer. Check that
     * it is otherwise JSON-shaped enough to call it a number. */
    uint8_t c = p->text[pos];
    return (c == '.' || c == 'e' || c == 'E') ? NUMBER_NOT_INTEGER
                                              : NUMBER_NOT_A_NUMBER;
  }
  if (digits > 1 && p->text[digits_begin] == '0')
    return NUMBER_NOT_A_NUMBER; /* leading zero */
  /* Accumulate as a negative number so that INT64_MIN fits. */
  int64_t value = 0;
  for (size_t i = digits_begin; i < pos; ++i) {
    int digit = p->text[i] - '0';
    if (value < (INT64_MIN + digit) / 10)
      return NUMBER_OUT_OF_RANGE;
    value = value * 10 - digit;
  }
  if (!negative) {
    if (value == INT64_MIN)
      return NUMBER_OUT_OF_RANGE;
    value = -value;
  }
  p->pos = end;
  *out = value;
  return NUMBER_OK;
}

/* Parses an integer for `what` (e.g. "shape[1]"), with a message for each way
 * it can fail. */
static moert_status_t parseInteger(Parser *p, const char *what, int64_t *out) {
  size_t token_length = 0;
  NumberResult result = scanInteger(p, out, &token_length);
  int shown = token_length > 32 ? 32 : (int)token_length;
  const char *token = (const char *)p->text + p->pos;
  char buf[16];
  switch (result) {
  case NUMBER_OK:
    return NULL;
  case NUMBER_NOT_INTEGER:
    return syntaxError(p, "%s is not an integer (found %.*s)", what, shown,
                       token);
  case NUMBER_OUT_OF_RANGE:
    return syntaxError(p, "%s is out of the range of int64 (found %.*s)", what,
                       shown, token);
  case NUMBER_NOT_A_NUMBER:
    break;
  }
  if (token_length)
    return syntaxError(p, "%s is not an integer (found %.*s)", what, shown,
                       token);
  return syntaxError(p, "%s is not an integer (found %s)", what,
                     describeNext(p, buf));
}

static moert_status_t parseDtype(Parser *p, moert_dtype_t *out) {
  static const moert_dtype_t kAll[] = {
      MOERT_DTYPE_F32,  MOERT_DTYPE_F16,     MOERT_DTYPE_BF16,
      MOERT_DTYPE_I32,  MOERT_DTYPE_I64,     MOERT_DTYPE_F64,
      MOERT_DTYPE_I16,  MOERT_DTYPE_I8,      MOERT_DTYPE_U64,
      MOERT_DTYPE_U32,  MOERT_DTYPE_U16,     MOERT_DTYPE_U8,
      MOERT_DTYPE_BOOL, MOERT_DTYPE_F8_E4M3, MOERT_DTYPE_F8_E5M2,
  };
  size_t mark = p->arena_used;
  char *name;
  moert_status_t status = parseString(p, "the dtype", &name);
  if (status)
    return status;
  for (size_t i = 0; i < sizeof(kAll) / sizeof(kAll[0]); ++i) {
    if (strcmp(name, moert_dtype_name(kAll[i])) == 0) {
      *out = kAll[i];
      p->arena_used = mark;
      return NULL;
    }
  }
  status = fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "unknown dtype '%.*s'", QUOTE_LIMIT, name);
  p->arena_used = mark;
  return status;
}

/* "shape": [d0, d1, ...]; every dim a non-negative integer, at most
 * MOERT_MAX_RANK of them. */
static moert_status_t parseShape(Parser *p, int *rank, int64_t *shape) {
  moert_status_t status = expectChar(p, '[', "to open \"shape\"");
  if (status)
    return status;
  skipWhitespace(p);
  size_t count = 0;
  if (peek(p) == ']') {
    ++p->pos;
    *rank = 0;
    return NULL;
  }
  for (;;) {
    char what[32];
    snprintf(what, sizeof(what), "shape[%zu]", count);
    int64_t dim;
    status = parseInteger(p, what, &dim);
    if (status)
      return status;
    if (dim < 0)
      return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                       "%s is negative (%" PRId64 ")", what, dim);
    if (count < MOERT_MAX_RANK)
      shape[count] = dim;
    ++count;
    skipWhitespace(p);
    if (peek(p) == ',') {
      ++p->pos;
      continue;
    }
    if (peek(p) == ']') {
      ++p->pos;
      break;
    }
    char buf[16];
    return syntaxError(p, "expected ',' or ']' in \"shape\", found %s",
                       describeNext(p, buf));
  }
  if (count > MOERT_MAX_RANK)
    return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "rank %zu exceeds the maximum rank %d", count,
                     MOERT_MAX_RANK);
  *rank = (int)count;
  return NULL;
}

/* "data_offsets": [begin, end], both non-negative integers. */
static moert_status_t parseOffsets(Parser *p, ByteRange *range) {
  moert_status_t status = expectChar(p, '[', "to open \"data_offsets\"");
  if (status)
    return status;
  int64_t values[2];
  for (int i = 0; i < 2; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "data_offsets[%d]", i);
    skipWhitespace(p);
    if (peek(p) == ']')
      return syntaxError(p,
                         "\"data_offsets\" must have exactly 2 elements, "
                         "found %d",
                         i);
    status = parseInteger(p, what, &values[i]);
    if (status)
      return status;
    if (values[i] < 0)
      return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                       "%s is negative (%" PRId64 ")", what, values[i]);
    skipWhitespace(p);
    if (i == 0 && peek(p) == ']')
      return syntaxError(p, "\"data_offsets\" must have exactly 2 elements, "
                            "found 1");
    status = expectChar(p, i == 0 ? ',' : ']',
                        i == 0 ? "after data_offsets[0]"
                               : "to close \"data_offsets\" (it must have "
                                 "exactly 2 elements)");
    if (status)
      return status;
  }
  range->begin = (uint64_t)values[0];
  range->end = (uint64_t)values[1];
  return NULL;
}

/* Checks an entry's byte range against its shape and the data section. */
static moert_status_t checkEntry(Parser *p, const moert_tensor_view_t *view,
                                 const ByteRange *range, size_t *nbytes) {
  char shape[MOERT_INTERNAL_SHAPE_STRING_SIZE];
  if (range->begin > range->end)
    return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "data_offsets [%" PRIu64 ", %" PRIu64
                     "]: begin is greater than end",
                     range->begin, range->end);
  if (range->end > p->data_size)
    return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "data_offsets [%" PRIu64 ", %" PRIu64
                     "] out of range: the data section has %zu bytes",
                     range->begin, range->end, p->data_size);
  size_t count, bytes;
  size_t elem_size = moert_dtype_size(view->dtype);
  moert_internal_format_shape(shape, sizeof(shape), view->rank, view->shape);
  if (!moert_internal_shape_bytes(view->rank, view->shape, elem_size, &count,
                                  &bytes))
    return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "shape %s of %s overflows the addressable size", shape,
                     moert_dtype_name(view->dtype));
  if (range->end - range->begin != bytes)
    return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                     " bytes, but shape %s of %s needs %zu bytes",
                     range->begin, range->end, range->end - range->begin, shape,
                     moert_dtype_name(view->dtype), bytes);
  *nbytes = bytes;
  return NULL;
}

/* The value of a tensor entry: an object with dtype, shape, data_offsets. */
static moert_status_t parseTensor(Parser *p, moert_tensor_view_t *view,
                                  ByteRange *range) {
  moert_status_t status = expectChar(p, '{', "to open the tensor's entry");
  if (status)
    return status;
  int have_dtype = 0, have_shape = 0, have_offsets = 0;
  skipWhitespace(p);
  if (peek(p) == '}') {
    ++p->pos;
  } else {
    for (;;) {
      size_t mark = p->arena_used;
      size_t key_pos = p->pos;
      char *key;
      status = parseString(p, "a key of the tensor's entry", &key);
      if (status)
        return status;
      int *seen = NULL;
      int which = 0;
      if (strcmp(key, "dtype") == 0) {
        seen = &have_dtype;
        which = 0;
      } else if (strcmp(key, "shape") == 0) {
        seen = &have_shape;
        which = 1;
      } else if (strcmp(key, "data_offsets") == 0) {
        seen = &have_offsets;
        which = 2;
      } else {
        p->pos = key_pos;
        status = syntaxError(p, "unexpected key '%.*s' in the tensor's entry",
                             QUOTE_LIMIT, key);
        p->arena_used = mark;
        return status;
      }
      if (*seen) {
        p->pos = key_pos;
        status =
            syntaxError(p, "duplicate key '%s' in the tensor's entry", key);
        p->arena_used = mark;
        return status;
      }
      *seen = 1;
      p->arena_used = mark;
      status = expectChar(p, ':', "after a key");
      if (status)
        return status;
      if (which == 0)
        status = parseDtype(p, &view->dtype);
      else if (which == 1)
        status = parseShape(p, &view->rank, view->shape);
      else
        status = parseOffsets(p, range);
      if (status)
        return status;
      skipWhitespace(p);
      if (peek(p) == ',') {
        ++p->pos;
        continue;
      }
      status = expectChar(p, '}', "or ',' in the tensor's entry");
      if (status)
        return status;
      break;
    }
  }
  if (!have_dtype || !have_shape || !have_offsets)
    return fileError(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                     "entry is missing \"%s\"",
                     !have_dtype   ? "dtype"
                     : !have_shape ? "shape"
                                   : "data_offsets");
  return checkEntry(p, view, range, &view->nbytes);
}

/* "__metadata__": null or an object of string -> string, skipped. */
static moert_status_t parseMetadata(Parser *p) {
  skipWhitespace(p);
  if (p->length - p->pos >= 4 && memcmp(p->text + p->pos, "null", 4) == 0) {
    p->pos += 4;
    return NULL;
  }
  moert_status_t status = expectChar(p, '{', "to open \"__metadata__\"");
  if (status)
    return status;
  skipWhitespace(p);
  if (peek(p) == '}') {
    ++p->pos;
    return NULL;
  }
  size_t mark = p->arena_used;
  for (;;) {
    char *key, *value;
    status = parseString(p, "a key of \"__metadata__\"", &key);
    if (!status)
      status = expectChar(p, ':', "after a key");
    if (!status)
      status = parseString(p, "the values of \"__metadata__\" must be strings",
                           &value);
    p->arena_used = mark;
    if (status)
      return status;
    skipWhitespace(p);
    if (peek(p) == ',') {
      ++p->pos;
      continue;
    }
    return expectChar(p, '}', "or ',' in \"__metadata__\"");
  }
}

static moert_status_t growTensors(Parser *p) {
  if (p->num_tensors < p->capacity)
    return NULL;
  size_t capacity = p->capacity ? p->capacity * 2 : 16;
  size_t view_bytes, range_bytes;
  if (!moert_internal_mul_size(capacity, sizeof(moert_tensor_view_t),
                               &view_bytes) ||
      !moert_internal_mul_size(capacity, sizeof(ByteRange), &range_bytes))
    return fileError(MOERT_OUT_OF_MEMORY, p->path, NULL, "too many tensors");
  moert_tensor_view_t *tensors = realloc(p->tensors, view_bytes);
  if (!tensors)
    return fileError(MOERT_OUT_OF_MEMORY, p->path, NULL,
                     "out of memory for %zu tensors", capacity);
  p->tensors = tensors;
  ByteRange *ranges = realloc(p->ranges, range_bytes);
  if (!ranges)
    return fileError(MOERT_OUT_OF_MEMORY, p->path, NULL,
                     "out of memory for %zu tensors", capacity);
  p->ranges = ranges;
  p->capacity = capacity;
  return NULL;
}

static moert_status_t parseHeader(Parser *p) {
  skipWhitespace(p);
  if (peek(p) != '{') {
    char buf[16];
    return syntaxError(p, "the header is not a JSON object (found %s)",
                       describeNext(p, buf));
  }
  ++p->pos;
  skipWhitespace(p);
  int have_metadata = 0;
  if (peek(p) == '}') {
    ++p->pos;
  } else {
    for (;;) {
      size_t mark = p->arena_used;
      size_t key_pos = p->pos;
      char *name;
      moert_status_t status = parseString(p, "a tensor name", &name);
      if (status)
        return status;
      status = expectChar(p, ':', "after a tensor name");
      if (status)
        return status;
      if (strcmp(name, "__metadata__") == 0) {
        p->arena_used = mark;
        if (have_metadata) {
          p->pos = key_pos;
          return syntaxError(p, "duplicate \"__metadata__\"");
        }
        have_metadata = 1;
        status = parseMetadata(p);
      } else {
        status = growTensors(p);
        if (status)
          return status;
        moert_tensor_view_t *view = &p->tensors[p->num_tensors];
        memset(view, 0, sizeof(*view));
        view->name = name;
        p->tensor = name;
        ByteRange *range = &p->ranges[p->num_tensors];
        range->index = p->num_tensors;
        status = parseTensor(p, view, range);
        p->tensor = NULL;
        if (!status)
          ++p->num_tensors;
      }
      if (status)
        return status;
      skipWhitespace(p);
      if (peek(p) == ',') {
        ++p->pos;
        continue;
      }
      status = expectChar(p, '}', "or ',' after an entry of the header");
      if (status)
        return status;
      break;
    }
  }
  skipWhitespace(p);
  if (p->pos != p->length) {
    char buf[16];
    return syntaxError(p, "unexpected %s after the header's object",
                       describeNext(p, buf));
  }
  return NULL;
}

/*===----------------------------------------------------------------------===*
 * Whole-file checks
 *===----------------------------------------------------------------------===*/

static int compareByName(const void *a, const void *b) {
  const moert_tensor_view_t *x = *(const moert_tensor_view_t *const *)a;
  const moert_tensor_view_t *y = *(const moert_tensor_view_t *const *)b;
  int c = strcmp(x->name, y->name);
  if (c)
    return c;
  return x < y ? -1 : x > y; /* header order among duplicates */
}

static int compareByBegin(const void *a, const void *b) {
  const ByteRange *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts the name index and rejects duplicate names. */
static moert_status_t checkNames(const char *path, moert_tensor_view_t *views,
                                 size_t n,
                                 const moert_tensor_view_t **by_name) {
  for (size_t i = 0; i < n; ++i)
    by_name[i] = &views[i];
  if (n > 1)
    qsort(by_name, n, sizeof(*by_name), compareByName);
  for (size_t i = 1; i < n; ++i) {
    if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0)
      return fileError(MOERT_INVALID_ARGUMENT, path, by_name[i]->name,
                       "duplicate tensor name (entries %zu and %zu of the "
                       "header)",
                       (size_t)(by_name[i - 1] - views),
                       (size_t)(by_name[i] - views));
  }
  return NULL;
}

/* Rejects two tensors whose (non-empty) byte ranges overlap. Sorts ranges. */
static moert_status_t checkOverlaps(const char *path,
                                    const moert_tensor_view_t *views,
                                    ByteRange *ranges, size_t n) {
  if (n > 1)
    qsort(ranges, n, sizeof(*ranges), compareByBegin);
  /* The non-empty range seen so far that ends last. */
  const ByteRange *last = NULL;
  for (size_t k = 0; k < n; ++k) {
    const ByteRange *range = &ranges[k];
    if (range->begin == range->end)
      continue; /* an empty range overlaps nothing */
    if (last && range->begin < last->end)
      return fileError(MOERT_INVALID_ARGUMENT, path, views[range->index].name,
                       "data_offsets [%" PRIu64 ", %" PRIu64
                       "] overlap those of tensor '%s' [%" PRIu64 ", %" PRIu64
                       "]",
                       range->begin, range->end, views[last->index].name,
                       last->begin, last->end);
    if (!last || range->end > last->end)
      last = range;
  }
  return NULL;
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
    return fileError(error == ENOENT ? MOERT_NOT_FOUND : MOERT_IO_ERROR, path,
                     NULL, "cannot open: %s", strerror(error));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int error = errno;
    close(fd);
    return fileError(MOERT_IO_ERROR, path, NULL, "cannot stat: %s",
                     strerror(error));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fileError(MOERT_INVALID_ARGUMENT, path, NULL, "not a regular file");
  }
  if (st.st_size < PREFIX_BYTES) {
    close(fd);
    return fileError(MOERT_INVALID_ARGUMENT, path, NULL,
                     "truncated: the file has %lld bytes, fewer than the "
                     "8-byte header length",
                     (long long)st.st_size);
  }
  if ((uint64_t)st.st_size > SIZE_MAX) {
    close(fd);
    return fileError(MOERT_INVALID_ARGUMENT, path, NULL,
                     "the file's %lld bytes exceed the address space",
                     (long long)st.st_size);
  }
  size_t size = (size_t)st.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int error = errno;
  close(fd);
  if (map == MAP_FAILED)
    return fileError(MOERT_IO_ERROR, path, NULL, "cannot map %zu bytes: %s",
                     size, strerror(error));
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
  if (header_length > MAX_HEADER_BYTES)
    return fileError(MOERT_INVALID_ARGUMENT, path, NULL,
                     "header too large: %" PRIu64
                     " bytes (the limit is %" PRIu64 ")",
                     header_length, MAX_HEADER_BYTES);
  if (header_length > file->map_size - PREFIX_BYTES)
    return fileError(MOERT_INVALID_ARGUMENT, path, NULL,
                     "truncated: the header length is %" PRIu64
                     " bytes, but only %zu bytes follow the length",
                     header_length, file->map_size - PREFIX_BYTES);

  Parser parser;
  memset(&parser, 0, sizeof(parser));
  parser.path = path;
  parser.text = bytes + PREFIX_BYTES;
  parser.length = (size_t)header_length;
  parser.data = parser.text + parser.length;
  parser.data_size = file->map_size - PREFIX_BYTES - parser.length;
  parser.arena = malloc(parser.length + 1);
  if (!parser.arena)
    return fileError(MOERT_OUT_OF_MEMORY, path, NULL,
                     "out of memory for a %zu-byte header", parser.length);

  status = parseHeader(&parser);
  size_t n = parser.num_tensors;
  if (!status) {
    /* Before checkOverlaps sorts the ranges. */
    for (size_t i = 0; i < n; ++i)
      parser.tensors[i].data = parser.data + parser.ranges[i].begin;
  }
  if (!status && n) {
    /* n * sizeof(pointer) fits: growTensors checked a larger product. */
    file->by_name = malloc(n * sizeof(*file->by_name));
    if (!file->by_name)
      status = fileError(MOERT_OUT_OF_MEMORY, path, NULL,
                         "out of memory for %zu tensors", n);
  }
  if (!status)
    status = checkNames(path, parser.tensors, n, file->by_name);
  if (!status)
    status = checkOverlaps(path, parser.tensors, parser.ranges, n);
  /* The views own the names in the arena from here on, even on failure. */
  file->tensors = parser.tensors;
  file->num_tensors = n;
  file->strings = parser.arena;
  free(parser.ranges);
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
  return fileError(MOERT_NOT_FOUND, file->path, name,
                   "not found (the file has %zu tensor%s)", file->num_tensors,
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
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
                     "expected rank %d is outside [0, %d]", rank,
                     MOERT_MAX_RANK);
  if (rank > 0 && !shape)
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
                     "expected shape is NULL for rank %d", rank);
  int same = view->rank == rank;
  for (int i = 0; same && i < rank; ++i)
    same = view->shape[i] == shape[i];
  if (!same) {
    char expected[MOERT_INTERNAL_SHAPE_STRING_SIZE];
    char actual[MOERT_INTERNAL_SHAPE_STRING_SIZE];
    moert_internal_format_shape(expected, sizeof(expected), rank, shape);
    moert_internal_format_shape(actual, sizeof(actual), view->rank,
                                view->shape);
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
                     "shape mismatch: expected %s, but the file has %s",
                     expected, actual);
  }
  if (!isFloatDtype(view->dtype))
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
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
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
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
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
                     "slice dimension %d is out of range for rank %d", dim,
                     rank);
  if (begin < 0 || begin > end || end > view->shape[dim])
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
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
    return fileError(MOERT_INVALID_ARGUMENT, file->path, name,
                     "destination is NULL");
  size_t elem_size = moert_dtype_size(view->dtype);
  const uint8_t *src = view->data;
  for (size_t o = 0; o < outer; ++o) {
    size_t first = (o * full_rows + (size_t)begin) * inner;
    convertToF32(view->dtype, src + first * elem_size, chunk, dst + o * chunk);
  }
  return NULL;
}
