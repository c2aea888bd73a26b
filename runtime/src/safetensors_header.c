/*===- safetensors_header.c - the safetensors JSON header -----------------===*
 *
 * A small strict parser written for this one schema, so that its nesting
 * depth is bounded by construction, followed by the checks that need the
 * whole header (duplicate names, overlapping byte ranges).
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

#include "safetensors_internal.h"

#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Names, keys and dtype strings quoted in a message are cut to this many
 * bytes, except tensor names, which are quoted whole. */
#define QUOTE_LIMIT 64

/*===----------------------------------------------------------------------===*
 * The schema: tensors, metadata, the header object
 *===----------------------------------------------------------------------===*/

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
  moert_status_t status = jsonParseString(p, "the dtype", &name);
  if (status)
    return status;
  for (size_t i = 0; i < sizeof(kAll) / sizeof(kAll[0]); ++i) {
    if (strcmp(name, moert_dtype_name(kAll[i])) == 0) {
      *out = kAll[i];
      p->arena_used = mark;
      return NULL;
    }
  }
  status = moert_internal_file_error(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                                     "unknown dtype '%.*s'", QUOTE_LIMIT, name);
  p->arena_used = mark;
  return status;
}

/* "shape": [d0, d1, ...]; every dim a non-negative integer, at most
 * MOERT_MAX_RANK of them. */
static moert_status_t parseShape(Parser *p, int *rank, int64_t *shape) {
  moert_status_t status = jsonExpectChar(p, '[', "to open \"shape\"");
  if (status)
    return status;
  jsonSkipWhitespace(p);
  size_t count = 0;
  if (jsonPeek(p) == ']') {
    ++p->pos;
    *rank = 0;
    return NULL;
  }
  for (;;) {
    char what[32];
    snprintf(what, sizeof(what), "shape[%zu]", count);
    int64_t dim;
    status = jsonParseInteger(p, what, &dim);
    if (status)
      return status;
    if (dim < 0)
      return moert_internal_file_error(
          MOERT_INVALID_ARGUMENT, p->path, p->tensor,
          "%s is negative (%" PRId64 ")", what, dim);
    if (count < MOERT_MAX_RANK)
      shape[count] = dim;
    ++count;
    jsonSkipWhitespace(p);
    if (jsonPeek(p) == ',') {
      ++p->pos;
      continue;
    }
    if (jsonPeek(p) == ']') {
      ++p->pos;
      break;
    }
    char buf[16];
    return jsonSyntaxError(p, "expected ',' or ']' in \"shape\", found %s",
                           jsonDescribeNext(p, buf));
  }
  if (count > MOERT_MAX_RANK)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                                     "rank %zu exceeds the maximum rank %d",
                                     count, MOERT_MAX_RANK);
  *rank = (int)count;
  return NULL;
}

/* "data_offsets": [begin, end], both non-negative integers. */
static moert_status_t parseOffsets(Parser *p, ByteRange *range) {
  moert_status_t status = jsonExpectChar(p, '[', "to open \"data_offsets\"");
  if (status)
    return status;
  int64_t values[2];
  for (int i = 0; i < 2; ++i) {
    char what[32];
    snprintf(what, sizeof(what), "data_offsets[%d]", i);
    jsonSkipWhitespace(p);
    if (jsonPeek(p) == ']')
      return jsonSyntaxError(p,
                             "\"data_offsets\" must have exactly 2 elements, "
                             "found %d",
                             i);
    status = jsonParseInteger(p, what, &values[i]);
    if (status)
      return status;
    if (values[i] < 0)
      return moert_internal_file_error(
          MOERT_INVALID_ARGUMENT, p->path, p->tensor,
          "%s is negative (%" PRId64 ")", what, values[i]);
    jsonSkipWhitespace(p);
    if (i == 0 && jsonPeek(p) == ']')
      return jsonSyntaxError(p,
                             "\"data_offsets\" must have exactly 2 elements, "
                             "found 1");
    status = jsonExpectChar(p, i == 0 ? ',' : ']',
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
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                                     "data_offsets [%" PRIu64 ", %" PRIu64
                                     "]: begin is greater than end",
                                     range->begin, range->end);
  if (range->end > p->data_size)
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, p->path, p->tensor,
        "data_offsets [%" PRIu64 ", %" PRIu64
        "] out of range: the data section has %zu bytes",
        range->begin, range->end, p->data_size);
  size_t count, bytes;
  size_t elem_size = moert_dtype_size(view->dtype);
  moert_internal_format_shape(shape, sizeof(shape), view->rank, view->shape);
  if (!moert_internal_shape_bytes(view->rank, view->shape, elem_size, &count,
                                  &bytes))
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, p->path, p->tensor,
        "shape %s of %s overflows the addressable size", shape,
        moert_dtype_name(view->dtype));
  if (range->end - range->begin != bytes)
    return moert_internal_file_error(
        MOERT_INVALID_ARGUMENT, p->path, p->tensor,
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
  moert_status_t status = jsonExpectChar(p, '{', "to open the tensor's entry");
  if (status)
    return status;
  int have_dtype = 0, have_shape = 0, have_offsets = 0;
  jsonSkipWhitespace(p);
  if (jsonPeek(p) == '}') {
    ++p->pos;
  } else {
    for (;;) {
      size_t mark = p->arena_used;
      size_t key_pos = p->pos;
      char *key;
      status = jsonParseString(p, "a key of the tensor's entry", &key);
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
        status = jsonSyntaxError(
            p, "unexpected key '%.*s' in the tensor's entry", QUOTE_LIMIT, key);
        p->arena_used = mark;
        return status;
      }
      if (*seen) {
        p->pos = key_pos;
        status =
            jsonSyntaxError(p, "duplicate key '%s' in the tensor's entry", key);
        p->arena_used = mark;
        return status;
      }
      *seen = 1;
      p->arena_used = mark;
      status = jsonExpectChar(p, ':', "after a key");
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
      jsonSkipWhitespace(p);
      if (jsonPeek(p) == ',') {
        ++p->pos;
        continue;
      }
      status = jsonExpectChar(p, '}', "or ',' in the tensor's entry");
      if (status)
        return status;
      break;
    }
  }
  if (!have_dtype || !have_shape || !have_offsets)
    return moert_internal_file_error(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                                     "entry is missing \"%s\"",
                                     !have_dtype   ? "dtype"
                                     : !have_shape ? "shape"
                                                   : "data_offsets");
  return checkEntry(p, view, range, &view->nbytes);
}

/* "__metadata__": null or an object of string -> string, skipped. */
static moert_status_t parseMetadata(Parser *p) {
  jsonSkipWhitespace(p);
  if (p->length - p->pos >= 4 && memcmp(p->text + p->pos, "null", 4) == 0) {
    p->pos += 4;
    return NULL;
  }
  moert_status_t status = jsonExpectChar(p, '{', "to open \"__metadata__\"");
  if (status)
    return status;
  jsonSkipWhitespace(p);
  if (jsonPeek(p) == '}') {
    ++p->pos;
    return NULL;
  }
  size_t mark = p->arena_used;
  for (;;) {
    char *key, *value;
    status = jsonParseString(p, "a key of \"__metadata__\"", &key);
    if (!status)
      status = jsonExpectChar(p, ':', "after a key");
    if (!status)
      status = jsonParseString(
          p, "the values of \"__metadata__\" must be strings", &value);
    p->arena_used = mark;
    if (status)
      return status;
    jsonSkipWhitespace(p);
    if (jsonPeek(p) == ',') {
      ++p->pos;
      continue;
    }
    return jsonExpectChar(p, '}', "or ',' in \"__metadata__\"");
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
    return moert_internal_file_error(MOERT_OUT_OF_MEMORY, p->path, NULL,
                                     "too many tensors");
  moert_tensor_view_t *tensors = realloc(p->tensors, view_bytes);
  if (!tensors)
    return moert_internal_file_error(MOERT_OUT_OF_MEMORY, p->path, NULL,
                                     "out of memory for %zu tensors", capacity);
  p->tensors = tensors;
  ByteRange *ranges = realloc(p->ranges, range_bytes);
  if (!ranges)
    return moert_internal_file_error(MOERT_OUT_OF_MEMORY, p->path, NULL,
                                     "out of memory for %zu tensors", capacity);
  p->ranges = ranges;
  p->capacity = capacity;
  return NULL;
}

static moert_status_t parseHeader(Parser *p) {
  jsonSkipWhitespace(p);
  if (jsonPeek(p) != '{') {
    char buf[16];
    return jsonSyntaxError(p, "the header is not a JSON object (found %s)",
                           jsonDescribeNext(p, buf));
  }
  ++p->pos;
  jsonSkipWhitespace(p);
  int have_metadata = 0;
  if (jsonPeek(p) == '}') {
    ++p->pos;
  } else {
    for (;;) {
      size_t mark = p->arena_used;
      size_t key_pos = p->pos;
      char *name;
      moert_status_t status = jsonParseString(p, "a tensor name", &name);
      if (status)
        return status;
      status = jsonExpectChar(p, ':', "after a tensor name");
      if (status)
        return status;
      if (strcmp(name, "__metadata__") == 0) {
        p->arena_used = mark;
        if (have_metadata) {
          p->pos = key_pos;
          return jsonSyntaxError(p, "duplicate \"__metadata__\"");
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
      jsonSkipWhitespace(p);
      if (jsonPeek(p) == ',') {
        ++p->pos;
        continue;
      }
      status = jsonExpectChar(p, '}', "or ',' after an entry of the header");
      if (status)
        return status;
      break;
    }
  }
  jsonSkipWhitespace(p);
  if (p->pos != p->length) {
    char buf[16];
    return jsonSyntaxError(p, "unexpected %s after the header's object",
                           jsonDescribeNext(p, buf));
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
      return moert_internal_file_error(
          MOERT_INVALID_ARGUMENT, path, by_name[i]->name,
          "duplicate tensor name (entries %zu and %zu of the "
          "header)",
          (size_t)(by_name[i - 1] - views), (size_t)(by_name[i] - views));
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
      return moert_internal_file_error(
          MOERT_INVALID_ARGUMENT, path, views[range->index].name,
          "data_offsets [%" PRIu64 ", %" PRIu64
          "] overlap those of tensor '%s' [%" PRIu64 ", %" PRIu64 "]",
          range->begin, range->end, views[last->index].name, last->begin,
          last->end);
    if (!last || range->end > last->end)
      last = range;
  }
  return NULL;
}

/*===----------------------------------------------------------------------===*
 * Entry point
 *===----------------------------------------------------------------------===*/

moert_status_t moert_internal_parse_header(const char *path,
                                           const uint8_t *text, size_t length,
                                           size_t data_size,
                                           moert_internal_header_t *out) {
  memset(out, 0, sizeof(*out));
  Parser parser;
  memset(&parser, 0, sizeof(parser));
  parser.path = path;
  parser.text = text;
  parser.length = length;
  parser.data = text + length;
  parser.data_size = data_size;
  parser.arena = malloc(parser.length + 1);
  if (!parser.arena)
    return moert_internal_file_error(MOERT_OUT_OF_MEMORY, path, NULL,
                                     "out of memory for a %zu-byte header",
                                     parser.length);

  moert_status_t status = parseHeader(&parser);
  size_t n = parser.num_tensors;
  if (!status) {
    /* Before checkOverlaps sorts the ranges. */
    for (size_t i = 0; i < n; ++i)
      parser.tensors[i].data = parser.data + parser.ranges[i].begin;
  }
  if (!status && n) {
    /* n * sizeof(pointer) fits: growTensors checked a larger product. */
    out->by_name = malloc(n * sizeof(*out->by_name));
    if (!out->by_name)
      status = moert_internal_file_error(MOERT_OUT_OF_MEMORY, path, NULL,
                                         "out of memory for %zu tensors", n);
  }
  if (!status)
    status = checkNames(path, parser.tensors, n, out->by_name);
  if (!status)
    status = checkOverlaps(path, parser.tensors, parser.ranges, n);
  /* The views own the names in the arena from here on, even on failure. */
  out->tensors = parser.tensors;
  out->num_tensors = n;
  out->strings = parser.arena;
  free(parser.ranges);
  return status;
}
