/*===- test_harness.h - moert unit test harness ---------------------*- C
 *-*-===*
 *
 * Shared by the files of moert-unittests: the EXPECT macros, the test-case
 * table type, and a scratch directory for test files (created by main with
 * mkdtemp and removed at exit).
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_TEST_HARNESS_H
#define MOERT_TEST_HARNESS_H

#include "moert/moert.h"

#include <stddef.h>
#include <stdio.h>

/* Set by a failed expectation; main resets it before each test. */
extern int currentFailed;

#define EXPECT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s:%d: expected %s\n", __FILE__, __LINE__, #cond);    \
      currentFailed = 1;                                                       \
    }                                                                          \
  } while (0)

/* Expects `status` to be success; prints and frees it otherwise. */
#define EXPECT_OK(status) expectOk(__FILE__, __LINE__, (status))
/* Expects `status` to carry `code` and a message containing every one of the
 * strings given (NULLs among them are skipped); frees it. */
#define EXPECT_STATUS(status, code, ...)                                       \
  expectStatus(__FILE__, __LINE__, (status), (code),                           \
               (const char *const[]){__VA_ARGS__},                             \
               sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

void expectOk(const char *file, int line, moert_status_t status);
void expectStatus(const char *file, int line, moert_status_t status,
                  moert_status_code_t code, const char *const *needles,
                  size_t num_needles);

typedef struct {
  const char *name;
  void (*run)(void);
} TestCase;

/* Writes "<scratch dir>/<name>" into buf and returns buf. */
const char *testPath(char *buf, size_t size, const char *name);
/* Creates (or replaces) `path` with `size` bytes; returns 0 on success and
 * fails the current test otherwise. */
int writeTestFile(const char *path, const void *data, size_t size);
/* Reads up to `size` bytes of `path` into buf; returns the count, or -1. */
long readTestFile(const char *path, void *buf, size_t size);

extern const TestCase kSafetensorsTests[];
extern const size_t kNumSafetensorsTests;
extern const TestCase kSafetensorsHeaderTests[];
extern const size_t kNumSafetensorsHeaderTests;
extern const TestCase kNpyTests[];
extern const size_t kNumNpyTests;
extern const TestCase kKernelTests[];
extern const size_t kNumKernelTests;

#endif /* MOERT_TEST_HARNESS_H */
