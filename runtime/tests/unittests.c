/*===- unittests.c - moert unit tests -------------------------------------===*
 *
 * A dependency-free test harness: each TEST is a function; the program prints
 * one line per test and ends with "N passed, N failed"; it exits non-zero if
 * any test failed. The status tests live here; safetensors_tests.c and
 * npy_tests.c contribute their own tables to the same binary.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/moert.h"
#include "moert_version.h"
#include "test_harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int currentFailed;

/*===----------------------------------------------------------------------===*
 * Harness
 *===----------------------------------------------------------------------===*/

static char gTempDir[4096];

void expectOk(const char *file, int line, moert_status_t status) {
  if (!status)
    return;
  fprintf(stderr, "  %s:%d: expected ok, got %s: %s\n", file, line,
          moert_status_code_name(moert_status_code(status)),
          moert_status_message(status));
  currentFailed = 1;
  moert_status_free(status);
}

void expectStatus(const char *file, int line, moert_status_t status,
                  moert_status_code_t code, const char *const *needles,
                  size_t num_needles) {
  if (!status) {
    fprintf(stderr, "  %s:%d: expected %s, got ok\n", file, line,
            moert_status_code_name(code));
    currentFailed = 1;
    return;
  }
  const char *message = moert_status_message(status);
  if (moert_status_code(status) != code) {
    fprintf(stderr, "  %s:%d: expected %s, got %s: %s\n", file, line,
            moert_status_code_name(code),
            moert_status_code_name(moert_status_code(status)), message);
    currentFailed = 1;
  }
  for (size_t i = 0; i < num_needles; ++i) {
    if (needles[i] && !strstr(message, needles[i])) {
      fprintf(stderr, "  %s:%d: expected the message to contain \"%s\": %s\n",
              file, line, needles[i], message);
      currentFailed = 1;
    }
  }
  moert_status_free(status);
}

const char *testPath(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", gTempDir, name);
  return buf;
}

int writeTestFile(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "  cannot create %s\n", path);
    currentFailed = 1;
    return -1;
  }
  size_t written = size ? fwrite(data, 1, size, f) : 0;
  if (fclose(f) != 0 || written != size) {
    fprintf(stderr, "  cannot write %s\n", path);
    currentFailed = 1;
    return -1;
  }
  return 0;
}

long readTestFile(const char *path, void *buf, size_t size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  size_t got = fread(buf, 1, size, f);
  fclose(f);
  return (long)got;
}

static int makeTempDir(void) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base)
    base = "/tmp";
  snprintf(gTempDir, sizeof(gTempDir), "%s/moert-unittests-XXXXXX", base);
  return mkdtemp(gTempDir) ? 0 : -1;
}

/* Removes what tests left behind (they should leave nothing) and the
 * directory. */
static void removeTempDir(void) {
  DIR *dir = opendir(gTempDir);
  if (dir) {
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
      if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
        continue;
      char path[8192];
      snprintf(path, sizeof(path), "%s/%s", gTempDir, entry->d_name);
      if (unlink(path) != 0)
        rmdir(path);
    }
    closedir(dir);
  }
  rmdir(gTempDir);
}

/*===----------------------------------------------------------------------===*
 * Status tests
 *===----------------------------------------------------------------------===*/

static void testVersionMatchesBuild(void) {
  moert_version_t version = moert_get_version();
  EXPECT(version.major == MOERT_VERSION_MAJOR);
  EXPECT(version.minor == MOERT_VERSION_MINOR);
  EXPECT(version.patch == MOERT_VERSION_PATCH);
  EXPECT(version.major == MOERT_ABI_VERSION_MAJOR);
  char expected[64];
  snprintf(expected, sizeof(expected), "%d.%d.%d", version.major, version.minor,
           version.patch);
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
  EXPECT(strcmp(moert_status_code_name(MOERT_UNAVAILABLE), "UNAVAILABLE") == 0);
  EXPECT(strcmp(moert_status_code_name((moert_status_code_t)99), "UNKNOWN") ==
         0);
}

static const TestCase kStatusTests[] = {
    {"VersionMatchesBuild", testVersionMatchesBuild},
    {"NullStatusIsOk", testNullStatusIsOk},
    {"StatusCarriesFormattedMessage", testStatusCarriesFormattedMessage},
    {"StatusWithOkCodeBecomesInternal", testStatusWithOkCodeBecomesInternal},
    {"LongMessageIsNotTruncated", testLongMessageIsNotTruncated},
    {"CodeNames", testCodeNames},
};

int main(void) {
  if (makeTempDir() != 0) {
    fprintf(stderr, "cannot create a scratch directory under %s\n", gTempDir);
    printf("0 passed, 1 failed\n");
    return 1;
  }
  const struct {
    const TestCase *tests;
    size_t count;
  } tables[] = {
      {kStatusTests, sizeof(kStatusTests) / sizeof(kStatusTests[0])},
      {kSafetensorsTests, kNumSafetensorsTests},
      {kSafetensorsHeaderTests, kNumSafetensorsHeaderTests},
      {kNpyTests, kNumNpyTests},
      {kKernelTests, kNumKernelTests},
  };
  int passed = 0, failed = 0;
  for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); ++t) {
    for (size_t i = 0; i < tables[t].count; ++i) {
      currentFailed = 0;
      tables[t].tests[i].run();
      printf("%s: %s\n", currentFailed ? "FAIL" : "PASS",
             tables[t].tests[i].name);
      fflush(stdout);
      if (currentFailed)
        ++failed;
      else
        ++passed;
    }
  }
  removeTempDir();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
