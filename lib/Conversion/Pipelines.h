//===- Pipelines.h - what the target pipelines share ------------*- C++ -*-===//
//
// Internal to lib/Conversion: the front half of `moe-cpu-pipeline` and
// `moe-cuda-pipeline`, from MoE ops to bufferized IR whose matrix products
// call the runtime (docs/Passes.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_PIPELINES_H
#define MOE_LIB_CONVERSION_PIPELINES_H

#include <string>

namespace mlir {
namespace moe {

/// `forGpu`: the dispatch's slot assignment as data-parallel steps (kernels)
/// rather than one sequential loop, and long reductions split into
/// parallel partial reductions.
inline std::string frontPipeline(bool forGpu) {
  return std::string("moe-decompose,") +
         (forGpu ? "convert-moe-to-linalg{parallel-dispatch=true},"
                 : "convert-moe-to-linalg,") +
         "moe-lower-collectives,"
         "canonicalize,cse," +
         (forGpu ? "moe-gpu-split-reductions," : "") +
         "one-shot-bufferize{bufferize-function-boundaries "
         "function-boundary-type-conversion=identity-layout-map},"
         "canonicalize,"
         "moe-linalg-to-blas,";
}

} // namespace moe
} // namespace mlir

#endif // MOE_LIB_CONVERSION_PIPELINES_H
