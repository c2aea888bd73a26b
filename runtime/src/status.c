/*===- status.c - moert status objects ------------------------------------===*
 *
 * An error status owns a heap copy of its message. When even that allocation
 * fails, a static out-of-memory status stands in; freeing it is a no-op.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/moert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct moert_status {
  moert_status_code_t code;
  char *message;
};

static char kOutOfMemoryMessage[] = "out of memory while reporting an error";
static struct moert_status kOutOfMemoryStatus = {MOERT_OUT_OF_MEMORY,
                                                 kOutOfMemoryMessage};

moert_status_t moert_status_make(moert_status_code_t code, const char *format,
                                 ...) {
  if (code == MOERT_OK)
    code = MOERT_INTERNAL; /* an error status must carry an error code */
  struct moert_status *status = malloc(sizeof(*status));
  if (!status)
    return &kOutOfMemoryStatus;

  va_list args;
  va_start(args, format);
  int length = vsnprintf(NULL, 0, format, args);
  va_end(args);
  if (length < 0)
    length = 0;
  status->message = malloc((size_t)length + 1);
  if (!status->message) {
    free(status);
    return &kOutOfMemoryStatus;
  }
  va_start(args, format);
  vsnprintf(status->message, (size_t)length + 1, format, args);
  va_end(args);
  status->code = code;
  return status;
}

moert_status_code_t moert_status_code(moert_status_t status) {
  return status ? status->code : MOERT_OK;
}

const char *moert_status_message(moert_status_t status) {
  return status ? status->message : "ok";
}

const char *moert_status_code_name(moert_status_code_t code) {
  switch (code) {
  case MOERT_OK:
    return "OK";
  case MOERT_INVALID_ARGUMENT:
    return "INVALID_ARGUMENT";
  case MOERT_NOT_FOUND:
    return "NOT_FOUND";
  case MOERT_IO_ERROR:
    return "IO_ERROR";
  case MOERT_OUT_OF_MEMORY:
    return "OUT_OF_MEMORY";
  case MOERT_UNAVAILABLE:
    return "UNAVAILABLE";
  case MOERT_INTERNAL:
    return "INTERNAL";
  }
  return "UNKNOWN";
}

void moert_status_free(moert_status_t status) {
  if (!status || status == &kOutOfMemoryStatus)
    return;
  free(status->message);
  free(status);
}
