/*===- safetensors_test_util.h - helpers of the safetensors tests -*- C -*-===*
 *
 * Writing (malformed) safetensors files and expecting open errors; shared by
 * safetensors_tests.c and safetensors_header_tests.c.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_SAFETENSORS_TEST_UTIL_H
#define MOERT_SAFETENSORS_TEST_UTIL_H

#include "moert/safetensors.h"
#include "test_harness.h"

#include <stddef.h>
#include <stdint.h>

extern const uint8_t kZeros[256];

void put16(uint8_t *p, uint16_t v);
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);
void putF32(uint8_t *p, float f);
double pow2(int exponent);
float floatFromBits(uint32_t bits);
int writeRaw(const char *path, uint64_t length_field, const void *header,
             size_t header_size, const void *data, size_t data_size);
int writeSafetensors(const char *path, const char *header, const void *data,
                     size_t data_size);
void expectOpenError(const char *file, int line, const char *header,
                     size_t data_size, moert_status_code_t code,
                     const char *tensor, const char *needle);
moert_safetensors_t *openOk(const char *path);

#define EXPECT_OPEN_ERROR(header, data_size, tensor, needle)                   \
  expectOpenError(__FILE__, __LINE__, (header), (data_size),                   \
                  MOERT_INVALID_ARGUMENT, (tensor), (needle))

#endif /* MOERT_SAFETENSORS_TEST_UTIL_H */
