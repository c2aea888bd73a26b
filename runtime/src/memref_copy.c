/*===- memref_copy.c - the copy routine MLIR's memref lowering calls ------===*
 *
 * `finalize-memref-to-llvm` lowers a memref.copy between non-contiguous
 * memrefs to a call to `memrefCopy` (upstream ships it in
 * libmlir_c_runner_utils, which compiled models should not depend on). This
 * is the same contract: element size, then unranked source and target
 * descriptors of equal shape.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/moert.h"

#include <stdint.h>
#include <string.h>

typedef struct UnrankedMemRef {
  int64_t rank;
  void *descriptor;
} UnrankedMemRef;

/* The ranked descriptor behind an unranked one: two pointers, the offset,
 * then `rank` sizes and `rank` strides. */
typedef struct StridedHeader {
  char *allocated;
  char *aligned;
  int64_t offset;
  int64_t sizesAndStrides[];
} StridedHeader;

static void copyDim(int64_t rank, int64_t dim, const int64_t *sizes,
                    const int64_t *srcStrides, const int64_t *dstStrides,
                    const char *src, char *dst, int64_t elemSize) {
  int64_t n = sizes[dim];
  if (dim == rank - 1) {
    if (srcStrides[dim] == 1 && dstStrides[dim] == 1) {
      memcpy(dst, src, (size_t)(n * elemSize));
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      memcpy(dst + i * dstStrides[dim] * elemSize,
             src + i * srcStrides[dim] * elemSize, (size_t)elemSize);
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    copyDim(rank, dim + 1, sizes, srcStrides, dstStrides,
            src + i * srcStrides[dim] * elemSize,
            dst + i * dstStrides[dim] * elemSize, elemSize);
}

MOERT_API void memrefCopy(int64_t elemSize, UnrankedMemRef *srcArg,
                          UnrankedMemRef *dstArg) {
  const StridedHeader *src = srcArg->descriptor;
  StridedHeader *dst = dstArg->descriptor;
  int64_t rank = srcArg->rank;
  const char *from = src->aligned + src->offset * elemSize;
  char *to = dst->aligned + dst->offset * elemSize;
  if (rank == 0) {
    memcpy(to, from, (size_t)elemSize);
    return;
  }
  const int64_t *sizes = src->sizesAndStrides;
  for (int64_t i = 0; i < rank; ++i)
    if (sizes[i] == 0)
      return;
  copyDim(rank, 0, sizes, src->sizesAndStrides + rank,
          dst->sizesAndStrides + rank, from, to, elemSize);
}
