/*===- safetensors_test_util.c - helpers of the safetensors tests ----------===*
 *
 * Each test writes its files into the harness's scratch directory and
 * removes them. Every validation error has a test that checks the status
 * code and that the message names the file and, where there is one, the
 * tensor.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "safetensors_test_util.h"
#include "moert/safetensors.h"
#include "test_harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*===----------------------------------------------------------------------===*
 * Helpers
 *===----------------------------------------------------------------------===*/

void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = (uint8_t)(v >> (8 * i));
}

void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = (uint8_t)(v >> (8 * i));
}

void putF32(uint8_t *p, float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof(bits));
  put32(p, bits);
}

double pow2(int exponent) {
  double result = 1.0;
  for (; exponent > 0; --exponent)
    result *= 2.0;
  for (; exponent < 0; ++exponent)
    result /= 2.0;
  return result;
}

float floatFromBits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

/* Writes a file whose length field says `length_field`, followed by
 * `header_size` bytes of header and then the data. */
int writeRaw(const char *path, uint64_t length_field, const void *header,
             size_t header_size, const void *data, size_t data_size) {
  size_t size = 8 + header_size + data_size;
  uint8_t *bytes = malloc(size);
  if (!bytes) {
    currentFailed = 1;
    return -1;
  }
  put64(bytes, length_field);
  if (header_size)
    memcpy(bytes + 8, header, header_size);
  if (data_size)
    memcpy(bytes + 8 + header_size, data, data_size);
  int result = writeTestFile(path, bytes, size);
  free(bytes);
  return result;
}

/* A well-formed file: the length of `header`, the header, the data. */
int writeSafetensors(const char *path, const char *header, const void *data,
                     size_t data_size) {
  return writeRaw(path, strlen(header), header, strlen(header), data,
                  data_size);
}

const uint8_t kZeros[256];

/* Writes `header` (with `data_size` zero bytes of data) to a scratch file,
 * opens it, and expects `code` with a message that names the file, the
 * tensor `tensor` (when not NULL) and contains `needle` (when not NULL). */
void expectOpenError(const char *file, int line, const char *header,
                     size_t data_size, moert_status_code_t code,
                     const char *tensor, const char *needle) {
  char path[4096];
  testPath(path, sizeof(path), "bad.safetensors");
  if (writeSafetensors(path, header, kZeros, data_size) != 0)
    return;
  char tensor_needle[256] = "";
  if (tensor)
    snprintf(tensor_needle, sizeof(tensor_needle), "tensor '%s'", tensor);
  moert_safetensors_t *st = (moert_safetensors_t *)&st; /* not NULL */
  moert_status_t status = moert_safetensors_open(path, &st);
  if (st != NULL) {
    fprintf(stderr, "  %s:%d: expected *out to be NULL on failure\n", file,
            line);
    currentFailed = 1;
    if (!status)
      moert_safetensors_close(st);
  }
  expectStatus(
      file, line, status, code,
      (const char *const[]){path, tensor ? tensor_needle : NULL, needle}, 3);
  unlink(path);
}

/* Opens `path`, failing the test (and returning NULL) when that fails. */
moert_safetensors_t *openOk(const char *path) {
  moert_safetensors_t *st = NULL;
  moert_status_t status = moert_safetensors_open(path, &st);
  EXPECT_OK(status);
  return st;
}
