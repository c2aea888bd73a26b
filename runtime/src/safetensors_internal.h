/*===- safetensors_internal.h - between the safetensors sources ---*- C -*-===*
 *
 * Not installed: the header parser (safetensors_header.c) and the error
 * format shared with the reader (safetensors.c).
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_SAFETENSORS_INTERNAL_H
#define MOERT_SAFETENSORS_INTERNAL_H

#include "moert/safetensors.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "<path>: tensor '<tensor>': <detail>", or "<path>: <detail>" when tensor
 * is NULL. */
moert_status_t moert_internal_file_error(moert_status_code_t code,
                                         const char *path, const char *tensor,
                                         const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* What a validated header describes. */
typedef struct moert_internal_header {
  moert_tensor_view_t *tensors; /* header order; data set */
  size_t num_tensors;
  const moert_tensor_view_t **by_name; /* sorted by name */
  char *strings;                       /* the names the views point to */
} moert_internal_header_t;

/* Parses and validates the JSON header `text` (`length` bytes) of `path`,
 * followed by `data_size` bytes of data. Whether it fails or not, `out`
 * owns what was allocated and the caller frees it. */
moert_status_t moert_internal_parse_header(const char *path,
                                           const uint8_t *text, size_t length,
                                           size_t data_size,
                                           moert_internal_header_t *out);

/*===----------------------------------------------------------------------===*
 * The header parser's state and JSON tokens (safetensors_json.c)
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

/* "invalid JSON header at byte N: <detail>", naming the tensor if any. */
moert_status_t jsonSyntaxError(Parser *p, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void jsonSkipWhitespace(Parser *p);
/* The next byte, or -1 at the end of the header. */
int jsonPeek(const Parser *p);
/* A printable description of the next byte, for "found ..." messages. */
const char *jsonDescribeNext(const Parser *p, char buf[16]);
/* Skips whitespace and consumes `expected`, or fails naming `what`. */
moert_status_t jsonExpectChar(Parser *p, char expected, const char *what);
/* A JSON string, decoded into the parser's arena. */
moert_status_t jsonParseString(Parser *p, const char *what, char **out);
/* A JSON integer within int64. */
moert_status_t jsonParseInteger(Parser *p, const char *what, int64_t *out);

#endif /* MOERT_SAFETENSORS_INTERNAL_H */
