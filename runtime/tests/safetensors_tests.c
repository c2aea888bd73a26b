/*===- safetensors_tests.c - moert safetensors reader tests ---------------===*
 *
 * Each test writes its files into the harness's scratch directory and
 * removes them. Every validation error has a test that checks the status
 * code and that the message names the file and, where there is one, the
 * tensor.
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
 * Valid files
 *===----------------------------------------------------------------------===*/

/* The round-trip file: F32, F16, BF16, I32, I64, a scalar and an empty
 * tensor, a __metadata__ entry in the middle, and a header length that puts
 * the data section at an odd offset. */
enum { kRoundTripDataSize = 82 };

static const float kF32Values[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 65536.0f};
static const uint16_t kF16Bits[12] = {
    0x3C00, /* 1 */
    0xC000, /* -2 */
    0x0001, /* smallest subnormal, 2^-24 */
    0x03FF, /* largest subnormal, 1023 * 2^-24 */
    0x0400, /* smallest normal, 2^-14 */
    0x7BFF, /* largest finite, 65504 */
    0x7C00, /* +inf */
    0xFC00, /* -inf */
    0x7E00, /* NaN */
    0x8000, /* -0 */
    0x8001, /* -2^-24 */
    0x3555, /* 0.333251953125 */
};
static const uint16_t kBF16Bits[5] = {0x3F80, 0xC040, 0x7F80, 0x0001, 0x4049};
static const int32_t kI32Values[3] = {7, -1, 2147483647};
static const int64_t kI64Value = -5000000000LL;

static void buildRoundTripFile(const char *path) {
  uint8_t data[kRoundTripDataSize];
  for (int i = 0; i < 6; ++i)
    putF32(data + 4 * i, kF32Values[i]);
  for (int i = 0; i < 12; ++i)
    put16(data + 24 + 2 * i, kF16Bits[i]);
  for (int i = 0; i < 5; ++i)
    put16(data + 48 + 2 * i, kBF16Bits[i]);
  for (int i = 0; i < 3; ++i)
    put32(data + 58 + 4 * i, (uint32_t)kI32Values[i]);
  put64(data + 70, (uint64_t)kI64Value);
  putF32(data + 78, 42.0f);

  char header[1024];
  int length = snprintf(
      header, sizeof(header),
      "{\"layer.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
      "\"data_offsets\":[0,24]},"
      "\"__metadata__\":{\"format\":\"pt\",\"note\":\"a \\\"quoted\\\" \\\\ "
      "value \\u00e9\"},"
      "\"half\":{\"shape\":[12],\"dtype\":\"F16\",\"data_offsets\":[24,48]},"
      "\"bf\":{\"data_offsets\":[48,58],\"dtype\":\"BF16\",\"shape\":[5]},"
      "\"ids\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[58,70]},"
      "\"big\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[70,78]},"
      "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[78,82]},"
      "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[82,82]}"
      "}");
  /* Pad with spaces (as the Python writer does) to an odd length. */
  while ((8 + length) % 4 != 1)
    header[length++] = ' ';
  header[length] = '\0';
  writeSafetensors(path, header, data, sizeof(data));
}

static void testSafetensorsRoundTrip(void) {
  char path[4096];
  testPath(path, sizeof(path), "round_trip.safetensors");
  buildRoundTripFile(path);
  moert_safetensors_t *st = openOk(path);
  if (!st)
    return;
  EXPECT(strcmp(moert_safetensors_path(st), path) == 0);
  EXPECT(moert_safetensors_num_tensors(st) == 7);
  const char *order[] = {"layer.weight", "half",   "bf",   "ids",
                         "big",          "scalar", "empty"};
  for (size_t i = 0; i < 7; ++i) {
    const moert_tensor_view_t *view = moert_safetensors_tensor(st, i);
    EXPECT(view && strcmp(view->name, order[i]) == 0);
  }
  EXPECT(moert_safetensors_tensor(st, 7) == NULL);

  /* Views. */
  const moert_tensor_view_t *view = NULL;
  EXPECT_OK(moert_safetensors_find(st, "layer.weight", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_F32 && view->rank == 2 &&
         view->shape[0] == 2 && view->shape[1] == 3 && view->nbytes == 24);
  /* The data section starts at an odd offset of a page-aligned mapping. */
  EXPECT(view && (uintptr_t)view->data % 4 != 0);
  EXPECT_OK(moert_safetensors_find(st, "ids", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_I32 && view->rank == 1 &&
         view->shape[0] == 3 && view->nbytes == 12);
  if (view) {
    const uint8_t *p = view->data;
    for (int i = 0; i < 3; ++i) {
      uint32_t v = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                   (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
      EXPECT((int32_t)v == kI32Values[i]);
    }
  }
  EXPECT_OK(moert_safetensors_find(st, "big", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_I64 && view->nbytes == 8);
  if (view) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
      v = v << 8 | ((const uint8_t *)view->data)[i];
    EXPECT((int64_t)v == kI64Value);
  }
  EXPECT_OK(moert_safetensors_find(st, "empty", &view));
  EXPECT(view && view->nbytes == 0 && view->data != NULL && view->rank == 2 &&
         view->shape[0] == 0 && view->shape[1] == 4);

  /* F32. */
  float f32[6] = {0};
  int64_t shape23[] = {2, 3};
  EXPECT_OK(moert_safetensors_read_f32(st, "layer.weight", 2, shape23, f32));
  EXPECT(memcmp(f32, kF32Values, sizeof(f32)) == 0);

  /* F16, including subnormals, infinities, NaN and -0. */
  float half[12];
  int64_t shape12[] = {12};
  EXPECT_OK(moert_safetensors_read_f32(st, "half", 1, shape12, half));
  EXPECT(half[0] == 1.0f);
  EXPECT(half[1] == -2.0f);
  EXPECT(half[2] == 1.0f / 16777216.0f);
  EXPECT(half[3] == 1023.0f / 16777216.0f);
  EXPECT(half[4] == 1.0f / 16384.0f);
  EXPECT(half[5] == 65504.0f);
  EXPECT(isinf(half[6]) && half[6] > 0);
  EXPECT(isinf(half[7]) && half[7] < 0);
  EXPECT(isnan(half[8]));
  EXPECT(half[9] == 0.0f && signbit(half[9]));
  EXPECT(half[10] == -1.0f / 16777216.0f);
  EXPECT(half[11] == 0.333251953125f);

  /* BF16: the top 16 bits of a float32. */
  float bf[5];
  int64_t shape5[] = {5};
  EXPECT_OK(moert_safetensors_read_f32(st, "bf", 1, shape5, bf));
  EXPECT(bf[0] == 1.0f);
  EXPECT(bf[1] == -3.0f);
  EXPECT(isinf(bf[2]) && bf[2] > 0);
  EXPECT(bf[3] == floatFromBits(0x00010000u) && bf[3] > 0);
  EXPECT(bf[4] == 3.140625f);

  /* A scalar (rank 0, shape may be NULL) and an empty tensor (dst may be
   * NULL). */
  float scalar = 0;
  EXPECT_OK(moert_safetensors_read_f32(st, "scalar", 0, NULL, &scalar));
  EXPECT(scalar == 42.0f);
  int64_t shape04[] = {0, 4};
  EXPECT_OK(moert_safetensors_read_f32(st, "empty", 2, shape04, NULL));

  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsExhaustiveHalf(void) {
  /* Every F16 bit pattern converts to the float32 with the same value: check
   * finite ones against sign * mantissa * 2^exponent computed in double. */
  enum { N = 65536 };
  uint8_t *data = malloc(2 * N);
  float *out = malloc(sizeof(float) * N);
  if (!data || !out) {
    free(data);
    free(out);
    currentFailed = 1;
    return;
  }
  for (uint32_t i = 0; i < N; ++i)
    put16(data + 2 * i, (uint16_t)i);
  char path[4096];
  testPath(path, sizeof(path), "all_halves.safetensors");
  writeSafetensors(path,
                   "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_"
                   "offsets\":[0,131072]}}",
                   data, 2 * N);
  moert_safetensors_t *st = openOk(path);
  int64_t shape[] = {N};
  if (st)
    EXPECT_OK(moert_safetensors_read_f32(st, "h", 1, shape, out));
  int mismatches = 0;
  for (uint32_t i = 0; st && i < N; ++i) {
    uint32_t exponent = (i >> 10) & 0x1F, mantissa = i & 0x3FF;
    double sign = (i & 0x8000) ? -1.0 : 1.0;
    if (exponent == 0x1F) {
      if (mantissa == 0 ? !isinf(out[i]) || (out[i] < 0) != (sign < 0)
                        : !isnan(out[i]))
        ++mismatches;
      continue;
    }
    double expected = exponent == 0
                          ? sign * mantissa / 16777216.0 /* 2^-24 */
                          : sign * (1024 + mantissa) * pow2((int)exponent - 25);
    if ((double)out[i] != expected || !signbit(out[i]) != !signbit(sign))
      ++mismatches;
  }
  EXPECT(mismatches == 0);
  moert_safetensors_close(st);
  unlink(path);
  free(data);
  free(out);
}

static void testSafetensorsSlice(void) {
  uint8_t data[24 * 4 + 8 * 2];
  for (int i = 0; i < 24; ++i)
    putF32(data + 4 * i, (float)i);
  for (int i = 0; i < 8; ++i) { /* BF16 of 0..7: the top half of float32 */
    float f = (float)i;
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    put16(data + 96 + 2 * i, (uint16_t)(bits >> 16));
  }
  char path[4096];
  testPath(path, sizeof(path), "slice.safetensors");
  writeSafetensors(
      path,
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3,4],\"data_offsets\":[0,96]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[4,2],\"data_offsets\":[96,112]}}",
      data, sizeof(data));
  moert_safetensors_t *st = openOk(path);
  if (!st)
    return;
  int64_t shape[] = {2, 3, 4};
  float out[24];

  /* dim 0, rows [1, 2): the second half. */
  EXPECT_OK(moert_safetensors_read_f32_slice(st, "t", 3, shape, 0, 1, 2, out));
  for (int i = 0; i < 12; ++i)
    EXPECT(out[i] == (float)(12 + i));

  /* dim 1, rows [1, 3): per outer index, rows 1 and 2 of 4 elements. */
  EXPECT_OK(moert_safetensors_read_f32_slice(st, "t", 3, shape, 1, 1, 3, out));
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < 8; ++k)
      EXPECT(out[o * 8 + k] == (float)(o * 12 + 4 + k));

  /* dim 2, rows [3, 4): the last column. */
  EXPECT_OK(moert_safetensors_read_f32_slice(st, "t", 3, shape, 2, 3, 4, out));
  for (int o = 0; o < 6; ++o)
    EXPECT(out[o] == (float)(o * 4 + 3));

  /* The whole range equals read_f32. */
  EXPECT_OK(moert_safetensors_read_f32_slice(st, "t", 3, shape, 1, 0, 3, out));
  for (int i = 0; i < 24; ++i)
    EXPECT(out[i] == (float)i);

  /* An empty slice copies nothing; dst may be NULL. */
  EXPECT_OK(moert_safetensors_read_f32_slice(st, "t", 3, shape, 0, 2, 2, NULL));

  /* BF16 rows [1, 3) of [4, 2]. */
  int64_t bshape[] = {4, 2};
  EXPECT_OK(moert_safetensors_read_f32_slice(st, "b", 2, bshape, 0, 1, 3, out));
  for (int i = 0; i < 4; ++i)
    EXPECT(out[i] == (float)(2 + i));

  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsEscapedNamesAndWhitespace(void) {
  uint8_t data[16] = {0};
  char path[4096];
  testPath(path, sizeof(path), "names.safetensors");
  writeSafetensors(
      path,
      " \r\n\t{ \"a\\\"b\\\\c\\/\" : { \"dtype\" : \"U8\" , \"shape\" : [ 4 ] ,"
      " \"data_offsets\" : [ 0 , 4 ] } ,\n"
      "\"caf\\u00e9\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[4,8]},"
      "\"\\ud83d\\ude00\":{\"dtype\":\"BOOL\",\"shape\":[4],"
      "\"data_offsets\":[8,12]},"
      "\"na\xc3\xafve\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],"
      "\"data_offsets\":[12,16]} }\n   ",
      data, sizeof(data));
  moert_safetensors_t *st = openOk(path);
  if (!st)
    return;
  const moert_tensor_view_t *view = NULL;
  EXPECT_OK(moert_safetensors_find(st, "a\"b\\c/", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_U8);
  EXPECT_OK(moert_safetensors_find(st, "caf\xc3\xa9", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_I8);
  EXPECT_OK(moert_safetensors_find(st, "\xf0\x9f\x98\x80", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_BOOL);
  EXPECT_OK(moert_safetensors_find(st, "na\xc3\xafve", &view));
  EXPECT(view && view->dtype == MOERT_DTYPE_F8_E4M3 && view->nbytes == 4);
  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsEmptyHeaders(void) {
  char path[4096];
  testPath(path, sizeof(path), "empty.safetensors");
  const char *headers[] = {"{}", "{\"__metadata__\":null}",
                           "{\"__metadata__\":{}}"};
  for (size_t i = 0; i < 3; ++i) {
    writeSafetensors(path, headers[i], NULL, 0);
    moert_safetensors_t *st = openOk(path);
    EXPECT(moert_safetensors_num_tensors(st) == 0);
    EXPECT(moert_safetensors_tensor(st, 0) == NULL);
    const moert_tensor_view_t *view = NULL;
    if (st)
      EXPECT_STATUS(moert_safetensors_find(st, "x", &view), MOERT_NOT_FOUND,
                    path, "tensor 'x'");
    moert_safetensors_close(st);
  }
  unlink(path);
}

static void testSafetensorsAdjacentAndEmptyRangesDoNotOverlap(void) {
  uint8_t data[16] = {0};
  char path[4096];
  testPath(path, sizeof(path), "adjacent.safetensors");
  /* b ends where a begins; e is empty and lies inside a; gaps are fine. */
  writeSafetensors(
      path,
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]},"
      "\"f\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]}}",
      data, sizeof(data));
  moert_safetensors_t *st = openOk(path);
  EXPECT(moert_safetensors_num_tensors(st) == 4);
  moert_safetensors_close(st);
  unlink(path);
}

/*===----------------------------------------------------------------------===*
 * Lookup and read errors
 *===----------------------------------------------------------------------===*/

/* A file with w: F32 [4, 8] and ids: I32 [4]. */
static moert_safetensors_t *openReadFile(char *path, size_t size) {
  testPath(path, size, "read.safetensors");
  uint8_t data[4 * 32 + 16] = {0};
  writeSafetensors(
      path,
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[0,128]},"
      "\"ids\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[128,144]}}",
      data, sizeof(data));
  return openOk(path);
}

static void testSafetensorsMissingTensor(void) {
  char path[4096];
  moert_safetensors_t *st = openReadFile(path, sizeof(path));
  if (!st)
    return;
  const moert_tensor_view_t *view = (const moert_tensor_view_t *)&view;
  EXPECT_STATUS(moert_safetensors_find(st, "model.nope", &view),
                MOERT_NOT_FOUND, path, "tensor 'model.nope'", "not found");
  EXPECT(view == NULL);
  float dst[32];
  int64_t shape[] = {4, 8};
  EXPECT_STATUS(moert_safetensors_read_f32(st, "model.nope", 2, shape, dst),
                MOERT_NOT_FOUND, path, "tensor 'model.nope'");
  EXPECT_STATUS(moert_safetensors_read_f32_slice(st, "model.nope", 2, shape, 0,
                                                 0, 1, dst),
                MOERT_NOT_FOUND, path, "tensor 'model.nope'");
  /* A prefix of a name is not the name. */
  EXPECT_STATUS(moert_safetensors_find(st, "i", &view), MOERT_NOT_FOUND, path,
                "tensor 'i'");
  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsReadWrongShape(void) {
  char path[4096];
  moert_safetensors_t *st = openReadFile(path, sizeof(path));
  if (!st)
    return;
  float dst[64];
  int64_t wide[] = {4, 16};
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", 2, wide, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
                "expected [4, 16], but the file has [4, 8]");
  int64_t flat[] = {32};
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", 1, flat, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
                "expected [32], but the file has [4, 8]");
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", 0, NULL, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
                "expected [], but the file has [4, 8]");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, wide, 0, 0, 1, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
      "expected [4, 16], but the file has [4, 8]");
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", 9, wide, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "rank 9");
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", -1, wide, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "rank -1");
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", 2, NULL, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "shape is NULL");
  int64_t right[] = {4, 8};
  EXPECT_STATUS(moert_safetensors_read_f32(st, "w", 2, right, NULL),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
                "destination is NULL");
  EXPECT_OK(moert_safetensors_read_f32(st, "w", 2, right, dst));
  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsReadNonFloat(void) {
  char path[4096];
  moert_safetensors_t *st = openReadFile(path, sizeof(path));
  if (!st)
    return;
  float dst[4];
  int64_t shape[] = {4};
  EXPECT_STATUS(moert_safetensors_read_f32(st, "ids", 1, shape, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'ids'",
                "dtype I32 cannot be read as float32");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "ids", 1, shape, 0, 0, 2, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'ids'", "dtype I32");
  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsBadSliceBounds(void) {
  char path[4096];
  moert_safetensors_t *st = openReadFile(path, sizeof(path));
  if (!st)
    return;
  float dst[32];
  int64_t shape[] = {4, 8};
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, shape, 0, 3, 2, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
      "slice [3, 2) of dimension 0 is out of bounds for its size 4");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, shape, 1, 4, 9, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
      "slice [4, 9) of dimension 1 is out of bounds for its size 8");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, shape, 0, -1, 2, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "slice [-1, 2)");
  EXPECT_STATUS(moert_safetensors_read_f32_slice(st, "w", 2, shape, 0,
                                                 INT64_MIN, INT64_MAX, dst),
                MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "out of bounds");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, shape, 2, 0, 1, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'",
      "slice dimension 2 is out of range for rank 2");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, shape, -1, 0, 1, dst),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "slice dimension -1");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(st, "w", 2, shape, 0, 0, 1, NULL),
      MOERT_INVALID_ARGUMENT, path, "tensor 'w'", "destination is NULL");
  moert_safetensors_close(st);
  unlink(path);
}

static void testSafetensorsNullArguments(void) {
  moert_safetensors_t *st = NULL;
  EXPECT_STATUS(moert_safetensors_open(NULL, &st), MOERT_INVALID_ARGUMENT,
                "path is NULL");
  EXPECT_STATUS(moert_safetensors_open("x", NULL), MOERT_INVALID_ARGUMENT,
                "out is NULL");
  const moert_tensor_view_t *view;
  EXPECT_STATUS(moert_safetensors_find(NULL, "x", &view),
                MOERT_INVALID_ARGUMENT, "file is NULL");
  EXPECT_STATUS(moert_safetensors_read_f32(NULL, "x", 0, NULL, NULL),
                MOERT_INVALID_ARGUMENT, "file is NULL");
  EXPECT_STATUS(
      moert_safetensors_read_f32_slice(NULL, "x", 1, NULL, 0, 0, 0, NULL),
      MOERT_INVALID_ARGUMENT, "file is NULL");
  EXPECT(moert_safetensors_num_tensors(NULL) == 0);
  EXPECT(moert_safetensors_tensor(NULL, 0) == NULL);
  EXPECT(moert_safetensors_path(NULL) == NULL);
  moert_safetensors_close(NULL);

  char path[4096];
  st = openReadFile(path, sizeof(path));
  if (!st)
    return;
  EXPECT_STATUS(moert_safetensors_find(st, NULL, &view), MOERT_INVALID_ARGUMENT,
                "name is NULL");
  EXPECT_STATUS(moert_safetensors_find(st, "w", NULL), MOERT_INVALID_ARGUMENT,
                "out is NULL");
  moert_safetensors_close(st);
  unlink(path);
}

static void testDtypeNamesAndSizes(void) {
  EXPECT(strcmp(moert_dtype_name(MOERT_DTYPE_F32), "F32") == 0);
  EXPECT(strcmp(moert_dtype_name(MOERT_DTYPE_F16), "F16") == 0);
  EXPECT(strcmp(moert_dtype_name(MOERT_DTYPE_BF16), "BF16") == 0);
  EXPECT(strcmp(moert_dtype_name(MOERT_DTYPE_I32), "I32") == 0);
  EXPECT(strcmp(moert_dtype_name(MOERT_DTYPE_I64), "I64") == 0);
  EXPECT(strcmp(moert_dtype_name((moert_dtype_t)99), "UNKNOWN") == 0);
  EXPECT(moert_dtype_size(MOERT_DTYPE_F32) == 4);
  EXPECT(moert_dtype_size(MOERT_DTYPE_BF16) == 2);
  EXPECT(moert_dtype_size(MOERT_DTYPE_I64) == 8);
  EXPECT(moert_dtype_size(MOERT_DTYPE_BOOL) == 1);
  EXPECT(moert_dtype_size((moert_dtype_t)99) == 0);
}

/*===----------------------------------------------------------------------===*
 * Robustness
 *===----------------------------------------------------------------------===*/

/* Every truncation of a valid file is rejected; random corruptions of its
 * header never crash, and whatever opens reads back within bounds (run under
 * valgrind or a sanitizer to make the latter meaningful). */
static void testSafetensorsTruncationsAndCorruptions(void) {
  char path[4096], mutant[4096];
  testPath(path, sizeof(path), "fuzz_source.safetensors");
  testPath(mutant, sizeof(mutant), "fuzz.safetensors");
  buildRoundTripFile(path);
  uint8_t original[2048];
  long size = readTestFile(path, original, sizeof(original));
  EXPECT(size > 8 && size < (long)sizeof(original));
  if (size <= 8 || size >= (long)sizeof(original))
    return;

  int unexpected = 0;
  for (long cut = 0; cut < size; ++cut) {
    writeTestFile(mutant, original, (size_t)cut);
    moert_safetensors_t *st = NULL;
    moert_status_t status = moert_safetensors_open(mutant, &st);
    if (moert_status_code(status) != MOERT_INVALID_ARGUMENT || st ||
        !strstr(moert_status_message(status), mutant))
      ++unexpected;
    moert_status_free(status);
    moert_safetensors_close(st);
  }
  EXPECT(unexpected == 0);

  uint32_t seed = 12345;
  uint8_t bytes[2048];
  size_t header_end = 8 + (size_t)original[0] + ((size_t)original[1] << 8);
  for (int iteration = 0; iteration < 400; ++iteration) {
    memcpy(bytes, original, (size_t)size);
    int flips = 1 + iteration % 4;
    for (int f = 0; f < flips; ++f) {
      seed = seed * 1664525u + 1013904223u;
      size_t at = 8 + (seed >> 8) % (header_end - 8);
      seed = seed * 1664525u + 1013904223u;
      static const char kInteresting[] = "{}[]\",:-0123456789e.\\ u";
      bytes[at] = (seed >> 24) & 1 ? (uint8_t)(seed >> 8)
                                   : (uint8_t)kInteresting[(seed >> 8) % 24];
    }
    writeTestFile(mutant, bytes, (size_t)size);
    moert_safetensors_t *st = NULL;
    moert_status_t status = moert_safetensors_open(mutant, &st);
    if (status) {
      if (st || !strstr(moert_status_message(status), mutant))
        ++unexpected;
      moert_status_free(status);
      continue;
    }
    /* Opened: every float tensor reads back. */
    for (size_t i = 0; i < moert_safetensors_num_tensors(st); ++i) {
      const moert_tensor_view_t *view = moert_safetensors_tensor(st, i);
      float *dst = malloc(view->nbytes * 4 + 4);
      moert_status_t read_status = moert_safetensors_read_f32(
          st, view->name, view->rank, view->shape, dst);
      moert_status_free(read_status);
      volatile uint8_t sink = 0;
      for (size_t b = 0; b < view->nbytes; ++b)
        sink ^= ((const uint8_t *)view->data)[b];
      (void)sink;
      free(dst);
    }
    moert_safetensors_close(st);
  }
  EXPECT(unexpected == 0);
  unlink(path);
  unlink(mutant);
}

const TestCase kSafetensorsTests[] = {
    {"SafetensorsRoundTrip", testSafetensorsRoundTrip},
    {"SafetensorsExhaustiveHalf", testSafetensorsExhaustiveHalf},
    {"SafetensorsSlice", testSafetensorsSlice},
    {"SafetensorsEscapedNamesAndWhitespace",
     testSafetensorsEscapedNamesAndWhitespace},
    {"SafetensorsEmptyHeaders", testSafetensorsEmptyHeaders},
    {"SafetensorsAdjacentAndEmptyRangesDoNotOverlap",
     testSafetensorsAdjacentAndEmptyRangesDoNotOverlap},
    {"SafetensorsMissingTensor", testSafetensorsMissingTensor},
    {"SafetensorsReadWrongShape", testSafetensorsReadWrongShape},
    {"SafetensorsReadNonFloat", testSafetensorsReadNonFloat},
    {"SafetensorsBadSliceBounds", testSafetensorsBadSliceBounds},
    {"SafetensorsNullArguments", testSafetensorsNullArguments},
    {"DtypeNamesAndSizes", testDtypeNamesAndSizes},
    {"SafetensorsTruncationsAndCorruptions",
     testSafetensorsTruncationsAndCorruptions},
};
const size_t kNumSafetensorsTests =
    sizeof(kSafetensorsTests) / sizeof(kSafetensorsTests[0]);
