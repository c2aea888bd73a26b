/*===- safetensors_json.c - the JSON tokens of a safetensors header -------===*
 *
 * Whitespace, punctuation, strings (escapes, \\u surrogate pairs, UTF-8
 * checked) and integers (no fraction or exponent, within int64) for the
 * header parser in safetensors_header.c. Every error names the byte offset
 * in the header (and the tensor whose entry is being read).
 *
 *===----------------------------------------------------------------------===*/

#include "safetensors_internal.h"

#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

moert_status_t jsonSyntaxError(Parser *p, const char *format, ...) {
  char detail[256];
  va_list args;
  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  return moert_internal_file_error(MOERT_INVALID_ARGUMENT, p->path, p->tensor,
                                   "invalid JSON header at byte %zu: %s",
                                   p->pos, detail);
}

void jsonSkipWhitespace(Parser *p) {
  while (p->pos < p->length) {
    uint8_t c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      return;
    ++p->pos;
  }
}

/* The next byte, or -1 at the end of the header. */
int jsonPeek(const Parser *p) {
  return p->pos < p->length ? p->text[p->pos] : -1;
}

/* A printable description of the next byte, for "found ..." messages. */
const char *jsonDescribeNext(const Parser *p, char buf[16]) {
  int c = jsonPeek(p);
  if (c < 0)
    return "the end of the header";
  if (c >= 0x21 && c < 0x7f)
    snprintf(buf, 16, "'%c'", c);
  else
    snprintf(buf, 16, "byte 0x%02x", c);
  return buf;
}

moert_status_t jsonExpectChar(Parser *p, char expected, const char *what) {
  jsonSkipWhitespace(p);
  if (jsonPeek(p) == (unsigned char)expected) {
    ++p->pos;
    return NULL;
  }
  char buf[16];
  return jsonSyntaxError(p, "expected '%c' %s, found %s", expected, what,
                         jsonDescribeNext(p, buf));
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
    return jsonSyntaxError(p, "truncated \\u escape");
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    int digit = hexValue(p->text[p->pos + (size_t)i]);
    if (digit < 0)
      return jsonSyntaxError(p, "invalid hex digit in \\u escape");
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
moert_status_t jsonParseString(Parser *p, const char *what, char **out) {
  jsonSkipWhitespace(p);
  if (jsonPeek(p) != '"') {
    char buf[16];
    return jsonSyntaxError(p, "expected a string (%s), found %s", what,
                           jsonDescribeNext(p, buf));
  }
  ++p->pos;
  char *start = p->arena + p->arena_used;
  char *dst = start;
  for (;;) {
    if (p->pos >= p->length)
      return jsonSyntaxError(p, "unterminated string");
    uint8_t c = p->text[p->pos];
    if (c == '"') {
      ++p->pos;
      break;
    }
    if (c < 0x20)
      return jsonSyntaxError(p, "unescaped control character 0x%02x in string",
                             c);
    if (c >= 0x80) {
      size_t n = utf8SequenceLength(p->text + p->pos, p->length - p->pos);
      if (n == 0)
        return jsonSyntaxError(p, "invalid UTF-8 in string");
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
      return jsonSyntaxError(p, "unterminated string");
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
        return jsonSyntaxError(p, "unpaired low surrogate \\u%04X in string",
                               (unsigned)cp);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->length - p->pos < 2 || p->text[p->pos] != '\\' ||
            p->text[p->pos + 1] != 'u')
          return jsonSyntaxError(p, "unpaired high surrogate \\u%04X in string",
                                 (unsigned)cp);
        p->pos += 2;
        uint32_t low;
        status = parseHex4(p, &low);
        if (status)
          return status;
        if (low < 0xDC00 || low > 0xDFFF)
          return jsonSyntaxError(p, "unpaired high surrogate \\u%04X in string",
                                 (unsigned)cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      }
      if (cp == 0)
        return jsonSyntaxError(p, "\\u0000 in string");
      dst += encodeUtf8(cp, dst);
      break;
    }
    default:
      --p->pos;
      return jsonSyntaxError(p, "invalid escape '\\%c' in string",
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
  jsonSkipWhitespace(p);
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
moert_status_t jsonParseInteger(Parser *p, const char *what, int64_t *out) {
  size_t token_length = 0;
  NumberResult result = scanInteger(p, out, &token_length);
  int shown = token_length > 32 ? 32 : (int)token_length;
  const char *token = (const char *)p->text + p->pos;
  char buf[16];
  switch (result) {
  case NUMBER_OK:
    return NULL;
  case NUMBER_NOT_INTEGER:
    return jsonSyntaxError(p, "%s is not an integer (found %.*s)", what, shown,
                           token);
  case NUMBER_OUT_OF_RANGE:
    return jsonSyntaxError(p, "%s is out of the range of int64 (found %.*s)",
                           what, shown, token);
  case NUMBER_NOT_A_NUMBER:
    break;
  }
  if (token_length)
    return jsonSyntaxError(p, "%s is not an integer (found %.*s)", what, shown,
                           token);
  return jsonSyntaxError(p, "%s is not an integer (found %s)", what,
                         jsonDescribeNext(p, buf));
}
