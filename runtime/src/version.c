/*===- version.c - moert version query ------------------------------------===*/

#include "moert/moert.h"
#include "moert_version.h"

moert_version_t moert_get_version(void) {
  moert_version_t version = {MOERT_VERSION_MAJOR, MOERT_VERSION_MINOR,
                             MOERT_VERSION_PATCH};
  return version;
}

const char *moert_get_version_string(void) { return MOERT_VERSION_STRING; }
