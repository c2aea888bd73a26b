/*===- unittests.c - moert unit tests -------------------------------------===*
 *
 * A dependency-free test harness: each TEST is a function; the program prints
 * one line per test and ends with "N passed, N failed"; it exits non-zero if
 * any test failed.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/moert.h"
#include "moert_version.h"

#include <stdio.h>
#include <string.h>

static int currentFailed;

#define EXPECT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s:%d: expected %s\n", __FILE__, __LINE__, #cond);    \
      currentFailed = 1;                                                       \
    }                                                                          \
  } while (0)

static void testVersionMatchesBuild(void) {
  moert_version_t version = moert_get_version();
  EXPECT(version.major == MOERT_VERSION_MAJOR);
  EXPECT(version.minor == MOERT_VERSION_MINOR);
  EXPECT(version.patch == MOERT_VERSION_PATCH);
  EXPECT(version.major == MOERT_ABI_VERSION_MAJOR);
  char expected[64];
  snprintf(expected, sizeof(expected), "%d.%d.%d", version.major,
           version.minor, version.patch);
  EXPECT(strcmp(moert_get_version_string(), expected) == 0);
}

static void testNullStatusIsOk(void) {
  EXPECT(moert_status_code(NULL) == MOERT_OK);
  EXPECT(strcmp(moert_status_message(NULL), "ok") == 0);
  moert_status_free(NULL); /* must not crash */
}

static void testStatusCarriesFormattedMessage(void) {
  moert_status_t status =
      moert_status_make(MOERT_NOT_FOUND, "tensor '%s' missing in %s (%d)",
                        "model.embed_tokens.weight", "w.safetensors", 7);
  EXPECT(status != NULL);
  EXPECT(moert_status_code(status) == MOERT_NOT_FOUND);
  EXPECT(strcmp(moert_status_message(status),
                "tensor 'model.embed_tokens.weight' missing in "
                "w.safetensors (7)") == 0);
  moert_status_free(status);
}

static void testStatusWithOkCodeBecomesInternal(void) {
  moert_status_t status = moert_status_make(MOERT_OK, "misuse");
  EXPECT(status != NULL);
  EXPECT(moert_status_code(status) == MOERT_INTERNAL);
  moert_status_free(status);
}

static void testLongMessageIsNotTruncated(void) {
  char long_name[4096];
  memset(long_name, 'x', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  moert_status_t status =
      moert_status_make(MOERT_IO_ERROR, "cannot open %s", long_name);
  EXPECT(strlen(moert_status_message(status)) ==
         strlen("cannot open ") + sizeof(long_name) - 1);
  moert_status_free(status);
}

static void testCodeNames(void) {
  EXPECT(strcmp(moert_status_code_name(MOERT_OK), "OK") == 0);
  EXPECT(strcmp(moert_status_code_name(MOERT_INVALID_ARGUMENT),
                "INVALID_ARGUMENT") == 0);
  EXPECT(strcmp(moert_status_code_name(MOERT_UNAVAILABLE), "UNAVAILABLE") ==
         0);
  EXPECT(strcmp(moert_status_code_name((moert_status_code_t)99), "UNKNOWN") ==
         0);
}

typedef struct {
  const char *name;
  void (*run)(void);
} TestCase;

int main(void) {
  const TestCase tests[] = {
      {"VersionMatchesBuild", testVersionMatchesBuild},
      {"NullStatusIsOk", testNullStatusIsOk},
      {"StatusCarriesFormattedMessage", testStatusCarriesFormattedMessage},
      {"StatusWithOkCodeBecomesInternal", testStatusWithOkCodeBecomesInternal},
      {"LongMessageIsNotTruncated", testLongMessageIsNotTruncated},
      {"CodeNames", testCodeNames},
  };
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); ++i) {
    currentFailed = 0;
    tests[i].run();
    printf("%s: %s\n", currentFailed ? "FAIL" : "PASS", tests[i].name);
    if (currentFailed)
      ++failed;
    else
      ++passed;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
