/*===- buffer_host.c - buffers of the CPU runtime -------------------------===*
 *
 * moert_buffer_alloc for CPU executables: 64-byte aligned host memory, freed
 * with free() like the buffers compiled code allocates with malloc.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/model.h"

#include <stdlib.h>

void *moert_buffer_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  return aligned_alloc(64, rounded ? rounded : 64);
}

void moert_buffer_free(void *buffer) { free(buffer); }
