//===- CudaPipeline.cpp - moe-compile --target cuda -----------------------===//
//
// The pass pipeline moe-compile runs for `--target cuda`, also registered as
// `moe-cuda-pipeline` in moe-opt (docs/Cuda.md). Matrix products become
// runtime calls (cuBLAS); every other parallel loop becomes a kernel
// (scf.parallel -> gpu.launch -> outlined gpu.module -> NVVM -> PTX, or a
// fatbin of sm_XX SASS plus the PTX); the host side calls the runtime's
// mgpu* entry points, and every buffer comes from the runtime's allocator
// (CUDA managed memory), so host loops and kernels share them.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

std::string mlir::moe::getMoECudaPipeline(const CudaPipelineOptions &options) {
  // The same front half as the CPU pipeline (docs/Passes.md).
  std::string pipeline =
      std::string(kFrontPipeline) +
      "moe-gpu-copy-globals,"
      "buffer-deallocation-pipeline,"
      "convert-bufferization-to-memref,"
      // Kernels: each outermost parallel loop nest, tiled so that a block
      // runs `block` iterations of its first dimension.
      "convert-linalg-to-parallel-loops,"
      "canonicalize,";
  pipeline += llvm::formatv(
      "func.func(scf-parallel-loop-tiling{{parallel-loop-tile-sizes={0} "
      "no-min-max-bounds=true},gpu-map-parallel-loops,"
      "convert-parallel-loops-to-gpu),",
      options.blockSize);
  pipeline += "canonicalize,lower-affine,gpu-kernel-outlining,";
  pipeline += llvm::formatv("nvvm-attach-target{{chip={0} features={1} O=3},",
                            options.chip, options.features);
  pipeline += "gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm,canonicalize,"
              "cse,reconcile-unrealized-casts),";
  pipeline += "gpu-module-to-binary{format=" + options.format;
  if (!options.toolkit.empty())
    pipeline += " toolkit=" + options.toolkit;
  pipeline += "},";
  // The host.
  pipeline += "convert-scf-to-cf,"
              "expand-strided-metadata,"
              "lower-affine,"
              "finalize-memref-to-llvm{use-generic-functions=true},"
              "convert-math-to-llvm,"
              "convert-math-to-libm,"
              "convert-arith-to-llvm,"
              "convert-index-to-llvm,"
              "gpu-to-llvm,"
              "convert-func-to-llvm,"
              "convert-cf-to-llvm,"
              "reconcile-unrealized-casts";
  return pipeline;
}

LogicalResult mlir::moe::buildMoECudaPipeline(
    OpPassManager &pm, const CudaPipelineOptions &options, std::string &error) {
  llvm::raw_string_ostream os(error);
  return parsePassPipeline(getMoECudaPipeline(options), pm, os);
}

namespace {
struct CudaPipelineCLOptions
    : public PassPipelineOptions<CudaPipelineCLOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("GPU architecture (sm_90: H100)"),
                           llvm::cl::init("sm_90")};
  Option<std::string> features{*this, "features",
                               llvm::cl::desc("PTX features"),
                               llvm::cl::init("+ptx80")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel format: isa (PTX, JIT-compiled by the driver), "
                     "bin (cubin) or fatbin (cubin + PTX; needs ptxas)"),
      llvm::cl::init("isa")};
  Option<std::string> toolkit{*this, "toolkit",
                              llvm::cl::desc("CUDA toolkit root (ptxas)"),
                              llvm::cl::init("")};
  Option<int64_t> blockSize{*this, "block-size",
                            llvm::cl::desc("Threads per block"),
                            llvm::cl::init(256)};
};
} // namespace

void mlir::moe::registerMoECudaPipeline() {
  PassPipelineRegistration<CudaPipelineCLOptions>(
      "moe-cuda-pipeline",
      "What moe-compile --target cuda runs: kernels through gpu and nvvm, "
      "matrix products to the runtime's cuBLAS calls, host code to the LLVM "
      "dialect",
      [](OpPassManager &pm, const CudaPipelineCLOptions &cl) {
        moe::CudaPipelineOptions options;
        options.chip = cl.chip;
        options.features = cl.features;
        options.format = cl.format;
        options.toolkit = cl.toolkit;
        options.blockSize = cl.blockSize;
        std::string error;
        if (failed(buildMoECudaPipeline(pm, options, error)))
          llvm::report_fatal_error(llvm::Twine("moe-cuda-pipeline: ") + error);
      });
}
