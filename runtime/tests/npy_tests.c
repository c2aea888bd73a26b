/*===- npy_tests.c - moert .npy reader and writer tests -------------------===*
 *
 * Round trips through moert_npy_write/moert_npy_read, hand-built files in
 * the variants NumPy writes, and one test per rejected input, each checking
 * the status code and that the message names the file.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/npy.h"
#include "test_harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes a .npy file of version major.minor whose length field is
 * `length_field`, then `header_size` header bytes, then the data. */
static int writeNpyRaw(const char *path, int major, int minor,
                       uint32_t length_field, const char *header,
                       size_t header_size, const void *data, size_t data_size) {
  size_t prefix = major == 1 ? 10 : 12;
  size_t size = prefix + header_size + data_size;
  uint8_t *bytes = malloc(size);
  if (!bytes) {
    currentFailed = 1;
    return -1;
  }
  memcpy(bytes, "\x93NUMPY", 6);
  bytes[6] = (uint8_t)major;
  bytes[7] = (uint8_t)minor;
  for (size_t i = 0; i < prefix - 8; ++i)
    bytes[8 + i] = (uint8_t)(length_field >> (8 * i));
  if (header_size)
    memcpy(bytes + prefix, header, header_size);
  if (data_size)
    memcpy(bytes + prefix + header_size, data, data_size);
  int result = writeTestFile(path, bytes, size);
  free(bytes);
  return result;
}

/* A version 1.0 file with `header` (unpadded, as given) and the data. */
static int writeNpy(const char *path, const char *header, const void *data,
                    size_t data_size) {
  return writeNpyRaw(path, 1, 0, (uint32_t)strlen(header), header,
                     strlen(header), data, data_size);
}

static const uint8_t kZeros[256];

/* Whether the first `size` bytes contain `text`. */
static int containsText(const uint8_t *bytes, long size, const char *text) {
  size_t length = strlen(text);
  for (long i = 0; i + (long)length <= size; ++i)
    if (memcmp(bytes + i, text, length) == 0)
      return 1;
  return 0;
}

/* Reads `path` and expects `code` with the path and `needle` in the
 * message, and a zeroed array. */
static void expectReadError(const char *file, int line, const char *path,
                            moert_status_code_t code, const char *needle) {
  moert_npy_array_t array;
  memset(&array, 0xAB, sizeof(array));
  moert_status_t status = moert_npy_read(path, &array);
  if (array.data != NULL || array.nbytes != 0 || array.rank != 0) {
    fprintf(stderr, "  %s:%d: expected a zeroed array on failure\n", file,
            line);
    currentFailed = 1;
  }
  expectStatus(file, line, status, code, (const char *const[]){path, needle},
               2);
  moert_npy_free(&array);
}

#define EXPECT_READ_ERROR(path, needle)                                        \
  expectReadError(__FILE__, __LINE__, (path), MOERT_INVALID_ARGUMENT, (needle))

/* Writes a version 1.0 file with `header` and `data_size` zero bytes and
 * expects reading it to fail with `needle`. */
static void expectHeaderError(const char *file, int line, const char *header,
                              size_t data_size, const char *needle) {
  char path[4096];
  testPath(path, sizeof(path), "bad.npy");
  if (writeNpy(path, header, kZeros, data_size) != 0)
    return;
  expectReadError(file, line, path, MOERT_INVALID_ARGUMENT, needle);
  unlink(path);
}

#define EXPECT_HEADER_ERROR(header, data_size, needle)                         \
  expectHeaderError(__FILE__, __LINE__, (header), (data_size), (needle))

/*===----------------------------------------------------------------------===*
 * Round trips and accepted variants
 *===----------------------------------------------------------------------===*/

static void testNpyRoundTripF32(void) {
  char path[4096];
  testPath(path, sizeof(path), "round_trip.npy");
  const float values[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -65536.0f};
  const int64_t shape[2] = {2, 3};
  EXPECT_OK(moert_npy_write_f32(path, 2, shape, values));

  /* The bytes: magic, version 1.0, a header padded to 64 ending in '\n'. */
  uint8_t bytes[512];
  long size = readTestFile(path, bytes, sizeof(bytes));
  EXPECT(size > 10);
  if (size <= 10)
    return;
  EXPECT(memcmp(bytes, "\x93NUMPY\x01\x00", 8) == 0);
  size_t header_length = (size_t)bytes[8] | (size_t)bytes[9] << 8;
  EXPECT((10 + header_length) % 64 == 0);
  EXPECT(size == (long)(10 + header_length + sizeof(values)));
  EXPECT(bytes[10 + header_length - 1] == '\n');
  const char *dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT(memcmp(bytes + 10, dict, strlen(dict)) == 0);
  for (size_t i = 10 + strlen(dict); i < 10 + header_length - 1; ++i)
    EXPECT(bytes[i] == ' ');

  moert_npy_array_t array;
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.dtype == MOERT_DTYPE_F32);
  EXPECT(array.rank == 2 && array.shape[0] == 2 && array.shape[1] == 3);
  EXPECT(array.nbytes == sizeof(values));
  EXPECT(array.data && memcmp(array.data, values, sizeof(values)) == 0);
  moert_npy_free(&array);
  EXPECT(array.data == NULL && array.nbytes == 0);
  moert_npy_free(&array); /* twice is fine */
  moert_npy_free(NULL);
  unlink(path);
}

static void testNpyRoundTripRanksAndDtypes(void) {
  char path[4096];
  testPath(path, sizeof(path), "ranks.npy");
  uint8_t bytes[512];
  moert_npy_array_t array;

  /* A scalar: "()". */
  const float scalar = 7.5f;
  EXPECT_OK(moert_npy_write_f32(path, 0, NULL, &scalar));
  long size = readTestFile(path, bytes, sizeof(bytes));
  EXPECT(size > 4 && (size - 4) % 64 == 0);
  EXPECT(containsText(bytes, size, "'shape': (), }"));
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.rank == 0 && array.nbytes == 4 &&
         *(const float *)array.data == 7.5f);
  moert_npy_free(&array);

  /* Rank 1: "(5,)". */
  const int32_t ints[5] = {1, -2, 3, INT32_MAX, INT32_MIN};
  const int64_t shape5[1] = {5};
  EXPECT_OK(moert_npy_write(path, MOERT_DTYPE_I32, 1, shape5, ints));
  size = readTestFile(path, bytes, sizeof(bytes));
  EXPECT(containsText(bytes, size,
                      "{'descr': '<i4', 'fortran_order': False, "
                      "'shape': (5,), }"));
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.dtype == MOERT_DTYPE_I32 && array.rank == 1 &&
         array.shape[0] == 5 && array.nbytes == sizeof(ints) &&
         memcmp(array.data, ints, sizeof(ints)) == 0);
  moert_npy_free(&array);

  /* Rank 8, int64. */
  const int64_t longs[2] = {INT64_MIN, 5000000000LL};
  const int64_t shape8[8] = {1, 1, 1, 1, 1, 1, 1, 2};
  EXPECT_OK(moert_npy_write(path, MOERT_DTYPE_I64, 8, shape8, longs));
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.dtype == MOERT_DTYPE_I64 && array.rank == 8 &&
         array.shape[7] == 2 && array.nbytes == sizeof(longs) &&
         memcmp(array.data, longs, sizeof(longs)) == 0);
  moert_npy_free(&array);

  /* Zero elements: data may be NULL on write, is non-NULL on read. */
  const int64_t shape03[2] = {0, 3};
  EXPECT_OK(moert_npy_write_f32(path, 2, shape03, NULL));
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.rank == 2 && array.shape[0] == 0 && array.shape[1] == 3 &&
         array.nbytes == 0 && array.data != NULL);
  moert_npy_free(&array);

  /* A large header still aligns: rank 8 with 19-digit dims and no data. */
  const int64_t wide[8] = {0,         INT64_MAX, INT64_MAX, INT64_MAX,
                           INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
  EXPECT_OK(moert_npy_write_f32(path, 8, wide, NULL));
  size = readTestFile(path, bytes, sizeof(bytes));
  EXPECT(size > 0 && size % 64 == 0 && bytes[size - 1] == '\n');
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.rank == 8 && array.shape[1] == INT64_MAX && array.nbytes == 0);
  moert_npy_free(&array);
  unlink(path);
}

static void testNpyReadsVariants(void) {
  char path[4096];
  testPath(path, sizeof(path), "variants.npy");
  moert_npy_array_t array;
  uint8_t data[16];
  for (int i = 0; i < 16; ++i)
    data[i] = (uint8_t)i;

  /* Version 2.0, double quotes, another key order, no trailing comma. */
  const char *v2 = "{\"shape\": (2,), \"fortran_order\": False, \"descr\": "
                   "\"<i8\"}  \n";
  writeNpyRaw(path, 2, 0, (uint32_t)strlen(v2), v2, strlen(v2), data, 16);
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.dtype == MOERT_DTYPE_I64 && array.rank == 1 &&
         array.shape[0] == 2 && array.nbytes == 16);
  if (array.data) {
    int64_t first;
    memcpy(&first, array.data, 8);
    EXPECT(first == 0x0706050403020100LL);
  }
  moert_npy_free(&array);

  /* NumPy 1.24's own layout: growth spaces and a full 64-byte pad. */
  char header[256];
  int n = snprintf(header, sizeof(header),
                   "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), "
                   "}%20s",
                   "");
  while ((10 + n + 1) % 64 != 0)
    header[n++] = ' ';
  header[n++] = '\n';
  header[n] = '\0';
  writeNpy(path, header, data, 16);
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.dtype == MOERT_DTYPE_F32 && array.rank == 2 &&
         array.nbytes == 16 && memcmp(array.data, data, 16) == 0);
  moert_npy_free(&array);

  /* Tuple with a trailing comma after several elements, spaces inside. */
  writeNpy(path,
           "{ 'descr' : '<i4' , 'shape' : ( 2 , 2 , ) , "
           "'fortran_order' : False , }",
           data, 16);
  EXPECT_OK(moert_npy_read(path, &array));
  EXPECT(array.dtype == MOERT_DTYPE_I32 && array.rank == 2);
  moert_npy_free(&array);
  unlink(path);
}

/*===----------------------------------------------------------------------===*
 * Errors
 *===----------------------------------------------------------------------===*/

static void testNpyMissingFile(void) {
  char path[4096];
  testPath(path, sizeof(path), "does_not_exist.npy");
  expectReadError(__FILE__, __LINE__, path, MOERT_NOT_FOUND, "cannot open");
}

static void testNpyNotARegularFile(void) {
  char path[4096];
  testPath(path, sizeof(path), ".");
  EXPECT_READ_ERROR(path, "not a regular file");
}

static void testNpyBadMagic(void) {
  char path[4096];
  testPath(path, sizeof(path), "magic.npy");
  writeTestFile(path, "PK\x03\x04 this is a zip file", 24);
  EXPECT_READ_ERROR(path, "not a .npy file");
  writeTestFile(path, "\x93NUMPX\x01\x00\x00\x00", 10);
  EXPECT_READ_ERROR(path, "not a .npy file");
  unlink(path);
}

static void testNpyTruncatedPreamble(void) {
  char path[4096];
  testPath(path, sizeof(path), "short.npy");
  writeTestFile(path, "", 0);
  EXPECT_READ_ERROR(path, "truncated: the file has 0 bytes");
  writeTestFile(path, "\x93NUMPY\x01", 7);
  EXPECT_READ_ERROR(path, "truncated: the file has 7 bytes");
  writeTestFile(path, "\x93NUMPY\x02\x00\x10\x00", 10);
  EXPECT_READ_ERROR(path, "truncated: the file ends inside the version 2.0");
  unlink(path);
}

static void testNpyUnsupportedVersion(void) {
  char path[4096];
  testPath(path, sizeof(path), "version.npy");
  const char *header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
  writeNpyRaw(path, 3, 0, (uint32_t)strlen(header), header, strlen(header),
              kZeros, 4);
  EXPECT_READ_ERROR(path, "unsupported .npy version 3.0");
  writeNpyRaw(path, 1, 1, (uint32_t)strlen(header), header, strlen(header),
              kZeros, 4);
  EXPECT_READ_ERROR(path, "unsupported .npy version 1.1");
  unlink(path);
}

static void testNpyHeaderTooLarge(void) {
  char path[4096];
  testPath(path, sizeof(path), "huge.npy");
  writeNpyRaw(path, 2, 0, 0x7FFFFFFFu, "{}", 2, NULL, 0);
  EXPECT_READ_ERROR(path, "header too large: 2147483647 bytes");
  unlink(path);
}

static void testNpyHeaderLongerThanFile(void) {
  char path[4096];
  testPath(path, sizeof(path), "cut_header.npy");
  writeNpyRaw(path, 1, 0, 1000, "{'descr': '<f4'", 15, NULL, 0);
  EXPECT_READ_ERROR(path, "truncated: the header length is 1000 bytes, but "
                          "only 15 bytes follow");
  unlink(path);
}

static void testNpyFortranOrder(void) {
  EXPECT_HEADER_ERROR(
      "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16,
      "fortran_order True is not supported");
}

static void testNpyBigEndian(void) {
  EXPECT_HEADER_ERROR(
      "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
      "big-endian dtype '>f4' is not supported");
  EXPECT_HEADER_ERROR(
      "{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }", 16,
      "big-endian dtype '>i8'");
}

static void testNpyUnsupportedDtype(void) {
  const char *descrs[] = {"<f8", "<f2", "|u1", "|b1", "<c8", "<u4", "f4", ""};
  for (size_t i = 0; i < sizeof(descrs) / sizeof(descrs[0]); ++i) {
    char header[128], needle[64];
    snprintf(header, sizeof(header),
             "{'descr': '%s', 'fortran_order': False, 'shape': (1,), }",
             descrs[i]);
    snprintf(needle, sizeof(needle), "unsupported dtype '%s'", descrs[i]);
    EXPECT_HEADER_ERROR(header, 8, needle);
  }
  EXPECT_HEADER_ERROR("{'descr': [('a', '<f4')], 'fortran_order': False, "
                      "'shape': (1,), }",
                      4, "structured dtypes are not supported");
}

static void testNpyMalformedHeader(void) {
  static const struct {
    const char *header;
    const char *needle;
  } kCases[] = {
      {"", "expected '{' to open the header dict"},
      {"   \n", "expected '{'"},
      {"{'descr': '<f4', 'fortran_order': False}", "no 'shape'"},
      {"{'fortran_order': False, 'shape': (1,)}", "no 'descr'"},
      {"{'descr': '<f4', 'shape': (1,)}", "no 'fortran_order'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
       "unexpected key 'x'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
       "'shape': (1,)}",
       "duplicate key 'descr'"},
      {"{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
       "expected ':'"},
      {"{'descr': '<f4", "unterminated string"},
      {"{descr: '<f4', 'fortran_order': False, 'shape': (1,)}",
       "expected a quoted string"},
      {"{'descr': '<f4',, 'fortran_order': False, 'shape': (1,)}",
       "expected a quoted string"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1)}",
       "needs a trailing comma"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
       "expected '(' to open the 'shape' tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1)}",
       "shape[1] is negative"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, x)}",
       "expected an integer in 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}",
       "expected ',' or ')'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}",
       "expected an integer in 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, "
       "'shape': (99999999999999999999,)}",
       "shape[0] is out of the range of int64"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,", "expected"},
      {"{'descr': '<f4', 'fortran_order': Tru, 'shape': (1,)}",
       "expected True or False"},
      {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}",
       "expected True or False"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
       "expected True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
       "unexpected 'x' after the header dict"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}}",
       "after the header dict"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}",
       "expected '}' or ','"},
      {"{'descr': '<f\xc3\xa4', 'fortran_order': False, 'shape': (1,)}",
       "unsupported character 0xc3"},
      {"{'de\\x73cr': '<f4', 'fortran_order': False, 'shape': (1,)}",
       "unsupported character 0x5c"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); ++i) {
    expectHeaderError(__FILE__, __LINE__, kCases[i].header, 4,
                      kCases[i].needle);
    if (currentFailed) {
      fprintf(stderr, "  (case %zu)\n", i);
      return;
    }
  }
  /* Syntax errors say where. */
  EXPECT_HEADER_ERROR("{'descr' '<f4'}", 4, "malformed header at byte 9");
}

static void testNpyRankTooLarge(void) {
  EXPECT_HEADER_ERROR("{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
                      4, "rank 9 exceeds the maximum rank 8");
}

static void testNpyTruncatedData(void) {
  EXPECT_HEADER_ERROR(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20,
      "truncated data: shape [2, 3] of F32 needs 24 bytes, but the file has "
      "20");
  EXPECT_HEADER_ERROR(
      "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", 0,
      "needs 8 bytes, but the file has 0");
}

static void testNpyTrailingData(void) {
  EXPECT_HEADER_ERROR(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28,
      "4 unexpected bytes after the data");
}

static void testNpyShapeOverflow(void) {
  EXPECT_HEADER_ERROR("{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (4294967296, 4294967296), }",
                      0, "overflows");
  EXPECT_HEADER_ERROR("{'descr': '<i8', 'fortran_order': False, "
                      "'shape': (4611686018427387904,), }",
                      0, "overflows");
}

static void testNpyTruncationsFail(void) {
  char path[4096], cut_path[4096];
  testPath(path, sizeof(path), "whole.npy");
  testPath(cut_path, sizeof(cut_path), "cut.npy");
  const float values[4] = {1, 2, 3, 4};
  const int64_t shape[1] = {4};
  EXPECT_OK(moert_npy_write_f32(path, 1, shape, values));
  uint8_t bytes[256];
  long size = readTestFile(path, bytes, sizeof(bytes));
  EXPECT(size > 16 && (size - 16) % 64 == 0);
  int unexpected = 0;
  for (long cut = 0; cut < size; ++cut) {
    writeTestFile(cut_path, bytes, (size_t)cut);
    moert_npy_array_t array;
    moert_status_t status = moert_npy_read(cut_path, &array);
    if (moert_status_code(status) != MOERT_INVALID_ARGUMENT ||
        !strstr(moert_status_message(status), cut_path) || array.data)
      ++unexpected;
    moert_status_free(status);
    moert_npy_free(&array);
  }
  EXPECT(unexpected == 0);
  unlink(path);
  unlink(cut_path);
}

static void testNpyWriteErrors(void) {
  char path[4096];
  testPath(path, sizeof(path), "write_errors.npy");
  const float values[4] = {0};
  const int64_t shape[2] = {2, 2};
  const int64_t negative[2] = {2, -2};
  const int64_t huge[2] = {INT64_MAX, INT64_MAX};
  EXPECT_STATUS(moert_npy_write_f32(NULL, 2, shape, values),
                MOERT_INVALID_ARGUMENT, "path is NULL");
  EXPECT_STATUS(moert_npy_write_f32(path, 9, shape, values),
                MOERT_INVALID_ARGUMENT, path, "rank 9 is outside [0, 8]");
  EXPECT_STATUS(moert_npy_write_f32(path, -1, shape, values),
                MOERT_INVALID_ARGUMENT, path, "rank -1");
  EXPECT_STATUS(moert_npy_write_f32(path, 2, NULL, values),
                MOERT_INVALID_ARGUMENT, path, "shape is NULL");
  EXPECT_STATUS(moert_npy_write_f32(path, 2, negative, values),
                MOERT_INVALID_ARGUMENT, path,
                "shape [2, -2] has a negative dimension");
  EXPECT_STATUS(moert_npy_write_f32(path, 2, huge, values),
                MOERT_INVALID_ARGUMENT, path, "overflows");
  EXPECT_STATUS(moert_npy_write_f32(path, 2, shape, NULL),
                MOERT_INVALID_ARGUMENT, path, "data is NULL");
  EXPECT_STATUS(moert_npy_write(path, MOERT_DTYPE_BF16, 2, shape, values),
                MOERT_INVALID_ARGUMENT, path, "cannot write dtype BF16");
  /* None of those created the file. */
  EXPECT(access(path, F_OK) != 0);

  char missing_dir[4096];
  testPath(missing_dir, sizeof(missing_dir), "no/such/dir/x.npy");
  EXPECT_STATUS(moert_npy_write_f32(missing_dir, 2, shape, values),
                MOERT_IO_ERROR, missing_dir, "cannot create");
  char directory[4096];
  testPath(directory, sizeof(directory), ".");
  EXPECT_STATUS(moert_npy_write_f32(directory, 2, shape, values),
                MOERT_IO_ERROR, directory, "cannot create");
}

static void testNpyReadNullArguments(void) {
  moert_npy_array_t array;
  EXPECT_STATUS(moert_npy_read(NULL, &array), MOERT_INVALID_ARGUMENT,
                "path is NULL");
  EXPECT(array.data == NULL);
  EXPECT_STATUS(moert_npy_read("x.npy", NULL), MOERT_INVALID_ARGUMENT,
                "out is NULL");
}

const TestCase kNpyTests[] = {
    {"NpyRoundTripF32", testNpyRoundTripF32},
    {"NpyRoundTripRanksAndDtypes", testNpyRoundTripRanksAndDtypes},
    {"NpyReadsVariants", testNpyReadsVariants},
    {"NpyMissingFile", testNpyMissingFile},
    {"NpyNotARegularFile", testNpyNotARegularFile},
    {"NpyBadMagic", testNpyBadMagic},
    {"NpyTruncatedPreamble", testNpyTruncatedPreamble},
    {"NpyUnsupportedVersion", testNpyUnsupportedVersion},
    {"NpyHeaderTooLarge", testNpyHeaderTooLarge},
    {"NpyHeaderLongerThanFile", testNpyHeaderLongerThanFile},
    {"NpyFortranOrder", testNpyFortranOrder},
    {"NpyBigEndian", testNpyBigEndian},
    {"NpyUnsupportedDtype", testNpyUnsupportedDtype},
    {"NpyMalformedHeader", testNpyMalformedHeader},
    {"NpyRankTooLarge", testNpyRankTooLarge},
    {"NpyTruncatedData", testNpyTruncatedData},
    {"NpyTrailingData", testNpyTrailingData},
    {"NpyShapeOverflow", testNpyShapeOverflow},
    {"NpyTruncationsFail", testNpyTruncationsFail},
    {"NpyWriteErrors", testNpyWriteErrors},
    {"NpyReadNullArguments", testNpyReadNullArguments},
};
const size_t kNumNpyTests = sizeof(kNpyTests) / sizeof(kNpyTests[0]);
