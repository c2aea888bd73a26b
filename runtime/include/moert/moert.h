/*===- moert.h - moe-mlir runtime C ABI ---------------------------*- C -*-===*
 *
 * The runtime that compiled moe-mlir programs link against. Every entry point
 * is prefixed `moert_`. Fallible calls return a moert_status_t: NULL means
 * success; anything else is an owned error object with a code and a message,
 * released with moert_status_free().
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_MOERT_H
#define MOERT_MOERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MOERT_BUILDING_LIBRARY)
#define MOERT_API __attribute__((visibility("default")))
#else
#define MOERT_API
#endif

/*===----------------------------------------------------------------------===*
 * Version
 *===----------------------------------------------------------------------===*/

/* The version of the ABI this header describes. A program built against
 * header major version N runs with any runtime of major version N. */
#define MOERT_ABI_VERSION_MAJOR 0

typedef struct moert_version {
  int major;
  int minor;
  int patch;
} moert_version_t;

/* The version of the loaded runtime library. */
MOERT_API moert_version_t moert_get_version(void);
/* The same as "MAJOR.MINOR.PATCH"; a static string. */
MOERT_API const char *moert_get_version_string(void);

/*===----------------------------------------------------------------------===*
 * Status
 *===----------------------------------------------------------------------===*/

typedef enum moert_status_code {
  MOERT_OK = 0,
  MOERT_INVALID_ARGUMENT = 1, /* the caller passed something malformed */
  MOERT_NOT_FOUND = 2,        /* a named file, tensor or symbol is missing */
  MOERT_IO_ERROR = 3,         /* reading or mapping a file failed */
  MOERT_OUT_OF_MEMORY = 4,
  MOERT_UNAVAILABLE = 5, /* a backend (MPI, CUDA, NCCL) is not usable */
  MOERT_INTERNAL = 6,    /* a bug in the runtime */
} moert_status_code_t;

/* NULL is success. */
typedef struct moert_status *moert_status_t;

/* Creates an error status with a printf-style message. `code` must not be
 * MOERT_OK. Never returns NULL for an error code: when memory is exhausted it
 * returns a static out-of-memory status that moert_status_free ignores. */
MOERT_API moert_status_t moert_status_make(moert_status_code_t code,
                                           const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* MOERT_OK for NULL. */
MOERT_API moert_status_code_t moert_status_code(moert_status_t status);
/* "ok" for NULL; otherwise the message, valid until the status is freed. */
MOERT_API const char *moert_status_message(moert_status_t status);
/* The code's name, e.g. "INVALID_ARGUMENT". */
MOERT_API const char *moert_status_code_name(moert_status_code_t code);
/* Releases a status; NULL is fine. */
MOERT_API void moert_status_free(moert_status_t status);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_MOERT_H */
