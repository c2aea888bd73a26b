/*===- safetensors_header_tests.c - malformed safetensors files ---------===*
 *
 * One test per way a file or its header can be malformed: each writes the
 * file into the harness's scratch directory, checks the status code and that
 * the message names the file and, where there is one, the tensor.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/safetensors.h"
#include "safetensors_test_util.h"
#include "test_harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*===----------------------------------------------------------------------===*
 * File-level errors
 *===----------------------------------------------------------------------===*/

static void testSafetensorsMissingFile(void) {
  char path[4096];
  testPath(path, sizeof(path), "does_not_exist.safetensors");
  moert_safetensors_t *st = NULL;
  EXPECT_STATUS(moert_safetensors_open(path, &st), MOERT_NOT_FOUND, path,
                "cannot open");
  EXPECT(st == NULL);
}

static void testSafetensorsNotARegularFile(void) {
  char path[4096];
  testPath(path, sizeof(path), ".");
  moert_safetensors_t *st = NULL;
  EXPECT_STATUS(moert_safetensors_open(path, &st), MOERT_INVALID_ARGUMENT, path,
                "not a regular file");
  EXPECT(st == NULL);
}

static void testSafetensorsShorterThanLength(void) {
  char path[4096];
  testPath(path, sizeof(path), "short.safetensors");
  const uint8_t bytes[5] = {2, 0, 0, 0, 0};
  for (size_t size = 0; size <= 5; size += 5) {
    writeTestFile(path, bytes, size);
    moert_safetensors_t *st = NULL;
    char count[32];
    snprintf(count, sizeof(count), "has %zu bytes", size);
    EXPECT_STATUS(moert_safetensors_open(path, &st), MOERT_INVALID_ARGUMENT,
                  path, "truncated", count);
    EXPECT(st == NULL);
  }
  unlink(path);
}

static void testSafetensorsHeaderLongerThanFile(void) {
  char path[4096];
  testPath(path, sizeof(path), "truncated_header.safetensors");
  writeRaw(path, 100, "{\"a\":", 5, NULL, 0);
  moert_safetensors_t *st = NULL;
  EXPECT_STATUS(moert_safetensors_open(path, &st), MOERT_INVALID_ARGUMENT, path,
                "truncated", "100", "only 5 bytes");
  unlink(path);
}

static void testSafetensorsHeaderTooLarge(void) {
  char path[4096];
  testPath(path, sizeof(path), "huge_header.safetensors");
  const uint64_t lengths[] = {200ull << 20, (100ull << 20) + 1, UINT64_MAX};
  for (size_t i = 0; i < 3; ++i) {
    writeRaw(path, lengths[i], "{}", 2, NULL, 0);
    char number[32];
    snprintf(number, sizeof(number), "%llu", (unsigned long long)lengths[i]);
    moert_safetensors_t *st = NULL;
    EXPECT_STATUS(moert_safetensors_open(path, &st), MOERT_INVALID_ARGUMENT,
                  path, "header too large", number);
  }
  unlink(path);
}

static void testSafetensorsInvalidJson(void) {
  static const struct {
    const char *header;
    const char *tensor; /* named in the message, or NULL */
    const char *needle;
  } kCases[] = {
      {"", NULL, "not a JSON object"},
      {"{", NULL, "expected a string"},
      {"{\"a\":}", "a", "expected '{'"},
      {"{\"a\" {}}", NULL, "expected ':'"},
      {"{'a':{}}", NULL, "expected a string"},
      {"{\"a", NULL, "unterminated string"},
      {"{\"a\\q\":{}}", NULL, "invalid escape"},
      {"{\"a\\u12\":{}}", NULL, "hex digit"},
      {"{\"\\ud800\":{}}", NULL, "unpaired high surrogate"},
      {"{\"\\ud800\\u0041\":{}}", NULL, "unpaired high surrogate"},
      {"{\"\\udc00\":{}}", NULL, "unpaired low surrogate"},
      {"{\"a\\u0000b\":{}}", NULL, "\\u0000"},
      {"{\"\xff\":{}}", NULL, "invalid UTF-8"},
      {"{\"\xc0\xaf\":{}}", NULL, "invalid UTF-8"},     /* overlong '/' */
      {"{\"\xed\xa0\x80\":{}}", NULL, "invalid UTF-8"}, /* raw surrogate */
      {"{\"\xe2\x82\":{}}", NULL, "invalid UTF-8"},     /* cut short */
      {"{\"a\nb\":{}}", NULL, "control character"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}",
       NULL, "expected a string"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x",
       NULL, "after the header's object"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}{}",
       NULL, "after the header's object"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", "a",
       "expected a string"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", "a",
       "shape[1] is not an integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1] \"data_offsets\":[0,4]}}", "a",
       "expected '}'"},
      {"{\"a\":{\"dtype\":F32,\"shape\":[1],\"data_offsets\":[0,4]}}", "a",
       "expected a string (the dtype)"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "a",
       "shape[0] is not an integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}",
       "a", "shape[0] is not an integer (found 't')"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}",
       "a", "shape[0] is not an integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}",
       "a", "shape[0] is not an integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "a",
       "expected '['"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
       "\"data_offsets\":[0,99999999999999999999]}}",
       "a", "out of the range of int64"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "a",
       "exactly 2 elements"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
       "a", "exactly 2 elements"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
       "\"extra\":1}}",
       "a", "unexpected key 'extra'"},
      {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
       "\"data_offsets\":[0,4]}}",
       "a", "duplicate key 'dtype'"},
      {"{\"__metadata__\":{\"k\":1}}", NULL, "must be strings"},
      {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", NULL, "must be strings"},
      {"{\"__metadata__\":[]}", NULL, "expected '{'"},
      {"{\"__metadata__\":{},\"__metadata__\":{}}", NULL,
       "duplicate \"__metadata__\""},
      {"{\"a\":null}", "a", "expected '{'"},
      {"{\"a\":true}", "a", "expected '{'"},
      {"{\"a\":1.5}", "a", "expected '{'"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); ++i) {
    expectOpenError(__FILE__, __LINE__, kCases[i].header, 16,
                    MOERT_INVALID_ARGUMENT, kCases[i].tensor, kCases[i].needle);
    if (currentFailed) {
      fprintf(stderr, "  (case %zu)\n", i);
      return;
    }
  }
  /* Every error names the byte offset. */
  EXPECT_OPEN_ERROR("{\"a\" {}}", 0, NULL, "invalid JSON header at byte 5");
}

static void testSafetensorsDeepNestingIsRejectedWithoutRecursion(void) {
  /* 100000 nested arrays where a shape dim should be: rejected at the second
   * '[' (the parser never recurses, so this cannot exhaust the stack). */
  enum { Depth = 100000 };
  const char *prefix = "{\"a\":{\"dtype\":\"F32\",\"shape\":";
  size_t prefix_length = strlen(prefix);
  char *header = malloc(prefix_length + 2 * Depth + 3);
  if (!header) {
    currentFailed = 1;
    return;
  }
  memcpy(header, prefix, prefix_length);
  memset(header + prefix_length, '[', Depth);
  memset(header + prefix_length + Depth, ']', Depth);
  memcpy(header + prefix_length + 2 * Depth, "}}", 3);
  EXPECT_OPEN_ERROR(header, 0, "a", "shape[0] is not an integer");
  /* And at the top level. */
  memset(header, '[', Depth);
  memset(header + Depth, ']', Depth);
  header[2 * Depth] = '\0';
  EXPECT_OPEN_ERROR(header, 0, NULL, "not a JSON object");
  free(header);
}

static void testSafetensorsHeaderNotAnObject(void) {
  EXPECT_OPEN_ERROR("[]", 0, NULL, "not a JSON object (found '[')");
  EXPECT_OPEN_ERROR("\"x\"", 0, NULL, "not a JSON object");
  EXPECT_OPEN_ERROR("42", 0, NULL, "not a JSON object");
  EXPECT_OPEN_ERROR("   ", 0, NULL, "not a JSON object");
}

/*===----------------------------------------------------------------------===*
 * Tensor-entry errors
 *===----------------------------------------------------------------------===*/

static void testSafetensorsMissingFields(void) {
  EXPECT_OPEN_ERROR("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "w",
                    "missing \"dtype\"");
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
                    "w", "missing \"shape\"");
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "w",
                    "missing \"data_offsets\"");
  EXPECT_OPEN_ERROR("{\"w\":{}}", 4, "w", "missing \"dtype\"");
}

static void testSafetensorsUnknownDtype(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "w", "unknown dtype 'F12'");
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "w", "unknown dtype 'f32'");
}

static void testSafetensorsNegativeDim(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,0]}}", 0,
      "w", "shape[1] is negative (-3)");
}

static void testSafetensorsNonIntegerDim(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,0]}}", 0,
      "w", "shape[1] is not an integer (found 1.5)");
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1e3],\"data_offsets\":[0,0]}}", 0,
      "w", "shape[1] is not an integer (found 1e3)");
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,\"3\"],\"data_offsets\":[0,0]}}",
      0, "w", "shape[1] is not an integer (found '\"')");
}

static void testSafetensorsRankTooLarge(void) {
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                    "\"data_offsets\":[0,4]}}",
                    4, "w", "rank 9 exceeds the maximum rank 8");
  /* Rank 8 is fine. */
  char path[4096];
  testPath(path, sizeof(path), "rank8.safetensors");
  writeSafetensors(path,
                   "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],"
                   "\"data_offsets\":[0,8]}}",
                   kZeros, 8);
  moert_safetensors_t *st = openOk(path);
  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsNegativeOffset(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
      "w", "data_offsets[0] is negative (-4)");
}

static void testSafetensorsBeginAfterEnd(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 16,
      "w", "data_offsets [8, 4]: begin is greater than end");
}

static void testSafetensorsEndOutOfRange(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 16,
      "w", "data_offsets [0, 32] out of range: the data section has 16 bytes");
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[9223372036854775800,"
                    "9223372036854775804]}}",
                    16, "w", "out of range");
}

static void testSafetensorsByteLengthMismatch(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
      "w", "data_offsets [0, 16] span 16 bytes, but shape [3] of F32 needs 12");
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
      16, "w", "shape [2, 2] of BF16 needs 8 bytes");
}

static void testSafetensorsSizeOverflow(void) {
  /* 2^32 * 2^32 elements: the element count overflows 64 bits. */
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,"
                    "4294967296],\"data_offsets\":[0,0]}}",
                    0, "w", "overflows");
  /* 2^62 elements fit, 2^64 bytes of F32 do not. */
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904]"
                    ",\"data_offsets\":[0,0]}}",
                    0, "w", "overflows");
  /* A zero dim makes the product 0 even next to huge ones. */
  EXPECT_OPEN_ERROR("{\"w\":{\"dtype\":\"F32\",\"shape\":[0,"
                    "9223372036854775807],\"data_offsets\":[0,4]}}",
                    4, "w", "needs 0 bytes");
}

static void testSafetensorsOverlappingTensors(void) {
  EXPECT_OPEN_ERROR(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
      24, "b", "data_offsets [8, 24] overlap those of tensor 'a' [0, 16]");
  /* Contained, and listed in the other order. */
  EXPECT_OPEN_ERROR(
      "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}",
      32, "b", "overlap those of tensor 'a' [0, 32]");
  /* Identical ranges. */
  EXPECT_OPEN_ERROR(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      4, "b", "overlap those of tensor 'a' [0, 4]");
  /* Overlapping an earlier range that ends after a later one. */
  EXPECT_OPEN_ERROR(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
      "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
      32, "b", "overlap those of tensor 'a' [0, 32]");
}

static void testSafetensorsDuplicateNames(void) {
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
      12, "w", "duplicate tensor name (entries 0 and 2");
  /* The same name spelled with an escape. */
  EXPECT_OPEN_ERROR(
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"\\u0077\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
      8, "w", "duplicate tensor name");
}

const TestCase kSafetensorsHeaderTests[] = {
    {"SafetensorsMissingFile", testSafetensorsMissingFile},
    {"SafetensorsNotARegularFile", testSafetensorsNotARegularFile},
    {"SafetensorsShorterThanLength", testSafetensorsShorterThanLength},
    {"SafetensorsHeaderLongerThanFile", testSafetensorsHeaderLongerThanFile},
    {"SafetensorsHeaderTooLarge", testSafetensorsHeaderTooLarge},
    {"SafetensorsInvalidJson", testSafetensorsInvalidJson},
    {"SafetensorsDeepNestingIsRejectedWithoutRecursion",
     testSafetensorsDeepNestingIsRejectedWithoutRecursion},
    {"SafetensorsHeaderNotAnObject", testSafetensorsHeaderNotAnObject},
    {"SafetensorsMissingFields", testSafetensorsMissingFields},
    {"SafetensorsUnknownDtype", testSafetensorsUnknownDtype},
    {"SafetensorsNegativeDim", testSafetensorsNegativeDim},
    {"SafetensorsNonIntegerDim", testSafetensorsNonIntegerDim},
    {"SafetensorsRankTooLarge", testSafetensorsRankTooLarge},
    {"SafetensorsNegativeOffset", testSafetensorsNegativeOffset},
    {"SafetensorsBeginAfterEnd", testSafetensorsBeginAfterEnd},
    {"SafetensorsEndOutOfRange", testSafetensorsEndOutOfRange},
    {"SafetensorsByteLengthMismatch", testSafetensorsByteLengthMismatch},
    {"SafetensorsSizeOverflow", testSafetensorsSizeOverflow},
    {"SafetensorsOverlappingTensors", testSafetensorsOverlappingTensors},
    {"SafetensorsDuplicateNames", testSafetensorsDuplicateNames},
};
const size_t kNumSafetensorsHeaderTests =
    sizeof(kSafetensorsHeaderTests) / sizeof(kSafetensorsHeaderTests[0]);
