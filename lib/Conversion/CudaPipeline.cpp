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
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/TargetParser/Triple.h"

extern "C" void LLVMInitializeNVPTXTargetInfo();
extern "C" void LLVMInitializeNVPTXTargetMC();
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

std::string mlir::moe::getMoECudaPipeline(const CudaPipelineOptions &options) {
  // The same front half as the CPU pipeline (docs/Passes.md).
  std::string pipeline =
      frontPipeline(/*forGpu=*/true) +
      "moe-gpu-copy-globals,"
      "buffer-deallocation-pipeline,"
      "convert-bufferization-to-memref,"
      "moe-gpu-device-copies,"
      // Kernels: each outermost parallel loop nest, collapsed to one
      // dimension and tiled so that a block runs `block-size` iterations.
      // No canonicalize here: it folds a parallel loop of one iteration
      // (one token) away, leaving its body to run on the host.
      "convert-linalg-to-parallel-loops,"
      "func.func(scf-parallel-loop-fusion),"
      "moe-gpu-collapse-parallel-loops,";
  pipeline += llvm::formatv(
      "func.func(scf-parallel-loop-tiling{{parallel-loop-tile-sizes={0} "
      "no-min-max-bounds=true}",
      options.blockSize);
  if (options.emulateOnHost) {
    // The loops as the kernels would run them (collapsed, tiled, guarded),
    // run sequentially by the host against the CPU runtime: a check of the
    // transformations above without a GPU.
    return pipeline + "),lower-affine,convert-scf-to-cf,"
                      "expand-strided-metadata,lower-affine,"
                      "finalize-memref-to-llvm,convert-math-to-llvm,"
                      "convert-math-to-libm,convert-arith-to-llvm,"
                      "convert-index-to-llvm,convert-func-to-llvm,"
                      "convert-cf-to-llvm,reconcile-unrealized-casts";
  }
  pipeline += ",gpu-map-parallel-loops,convert-parallel-loops-to-gpu),";
  pipeline += "canonicalize,lower-affine,gpu-kernel-outlining,"
              "moe-gpu-async-launches,";
  pipeline += "nvvm-attach-target{chip=" + options.chip;
  if (!options.features.empty()) // else LLVM's PTX version for the chip
    pipeline += " features=" + options.features;
  pipeline += " O=3},";
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

/// Whether LLVM's NVPTX backend knows `chip` (sm_80, sm_90a, ...).
static bool isKnownChip(llvm::StringRef chip) {
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTargetMC();
  llvm::Triple triple("nvptx64-nvidia-cuda");
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return false;
  std::unique_ptr<llvm::MCSubtargetInfo> info(
      target->createMCSubtargetInfo(triple, "", ""));
  return info && info->isCPUStringValid(chip);
}

LogicalResult
mlir::moe::verifyCudaPipelineOptions(const CudaPipelineOptions &options,
                                     std::string &error) {
  if (!isKnownChip(options.chip)) {
    error = "'" + options.chip +
            "' is not a GPU architecture LLVM's NVPTX backend knows (sm_80, "
            "sm_90, sm_90a, sm_100, ...)";
    return failure();
  }
  if (options.format != "isa" && options.format != "bin" &&
      options.format != "fatbin") {
    error = "unknown kernel format '" + options.format +
            "'; expected isa, bin or fatbin";
    return failure();
  }
  if (options.blockSize < 1 || options.blockSize > 1024) {
    error = "the block size must be in [1, 1024], got " +
            std::to_string(options.blockSize);
    return failure();
  }
  if (failed(verifyGemmMode(options.gemm, error)))
    return failure();
  if (options.emulateOnHost && options.gemm != "f32") {
    error = "emulated on the CPU, the products are f32 only (gemm = " +
            options.gemm + ")";
    return failure();
  }
  return success();
}

LogicalResult mlir::moe::verifyGemmMode(StringRef gemm, std::string &error) {
  if (llvm::is_contained({"f32", "tf32", "bf16", "f16"}, gemm))
    return success();
  error = ("unknown gemm mode '" + gemm + "'; expected f32, tf32, bf16 or f16")
              .str();
  return failure();
}

LogicalResult mlir::moe::buildMoECudaPipeline(
    OpPassManager &pm, const CudaPipelineOptions &options, std::string &error) {
  if (failed(verifyCudaPipelineOptions(options, error)))
    return failure();
  llvm::raw_string_ostream os(error);
  return parsePassPipeline(getMoECudaPipeline(options), pm, os);
}

namespace {
/// The textual options of moe-opt's `moe-cuda-pipeline` and
/// `moe-compile-pipeline`, read into CudaPipelineOptions and
/// CompilePipelineOptions (the one description of the CUDA options).
struct PipelineCLOptions : public PassPipelineOptions<PipelineCLOptions> {
  Option<std::string> target{
      *this, "target", llvm::cl::desc("moe-compile-pipeline: cpu or cuda"),
      llvm::cl::init("cpu")};
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("GPU architecture (sm_90: H100)"),
                           llvm::cl::init("sm_90")};
  Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features, e.g. +ptx86 (default: the PTX version "
                     "LLVM requires for the chip)"),
      llvm::cl::init("")};
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
  Option<bool> emulateOnCpu{
      *this, "emulate-on-cpu",
      llvm::cl::desc("The kernels' loops run on the host (testing)"),
      llvm::cl::init(false)};
  Option<std::string> gemm{
      *this, "gemm",
      llvm::cl::desc("The CUDA runtime's product mode (f32, tf32, bf16, "
                     "f16)"),
      llvm::cl::init("f32")};
  ListOption<std::string> overlap{
      *this, "overlap",
      llvm::cl::desc("moe-compile-pipeline: the collectives moe-overlap "
                     "makes asynchronous")};
  Option<int64_t> overlapChunks{
      *this, "overlap-chunks",
      llvm::cl::desc("moe-compile-pipeline: moe-overlap's chunks"),
      llvm::cl::init(1)};

  moe::CompilePipelineOptions get() const {
    moe::CompilePipelineOptions o;
    o.cuda = target == "cuda";
    o.cudaOptions.chip = chip;
    o.cudaOptions.features = features;
    o.cudaOptions.format = format;
    o.cudaOptions.toolkit = toolkit;
    o.cudaOptions.blockSize = blockSize;
    o.cudaOptions.emulateOnHost = emulateOnCpu;
    o.cudaOptions.gemm = gemm;
    o.overlap = llvm::to_vector(overlap);
    o.overlapChunks = overlapChunks;
    return o;
  }
};
} // namespace

/// Registers a pipeline that reads PipelineCLOptions; `build` reports a bad
/// option through `error`. (registerPassPipeline rather than
/// PassPipelineRegistration, whose builder cannot report an error.)
static void registerWithOptions(
    StringRef name, StringRef summary,
    std::function<LogicalResult(OpPassManager &, const PipelineCLOptions &,
                                std::string &)>
        build) {
  std::string prefix = name.str();
  registerPassPipeline(
      name, summary,
      [build, prefix](OpPassManager &pm, StringRef text,
                      function_ref<LogicalResult(const Twine &)> onError) {
        PipelineCLOptions cl;
        if (failed(cl.parseFromString(text)))
          return failure();
        std::string error;
        if (failed(build(pm, cl, error)))
          return onError(prefix + ": " + error);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(PipelineCLOptions());
      });
}

void mlir::moe::registerMoECudaPipeline() {
  registerWithOptions(
      "moe-cuda-pipeline",
      "What moe-compile --target cuda runs: kernels through gpu and nvvm, "
      "matrix products to the runtime's cuBLAS calls, host code to the LLVM "
      "dialect",
      [](OpPassManager &pm, const PipelineCLOptions &cl, std::string &error) {
        return buildMoECudaPipeline(pm, cl.get().cudaOptions, error);
      });
}

LogicalResult
mlir::moe::buildMoECompilePipeline(OpPassManager &pm,
                                   const CompilePipelineOptions &options,
                                   std::string &error) {
  if (failed(verifyCompilePipelineOptions(options, error)))
    return failure();
  buildMoEPartitionPipeline(pm, options);
  return buildMoETargetPipeline(pm, options, error);
}

LogicalResult
mlir::moe::verifyCompilePipelineOptions(const CompilePipelineOptions &options,
                                        std::string &error) {
  if (options.cuda &&
      failed(verifyCudaPipelineOptions(options.cudaOptions, error)))
    return failure();
  return verifyOverlapOptions(options.overlap, options.overlapChunks, error,
                              "overlap", "overlap-chunks");
}

void mlir::moe::buildMoEPartitionPipeline(
    OpPassManager &pm, const CompilePipelineOptions &options) {
  MoEToSpmdPassOptions spmd;
  spmd.overlap = options.overlap;
  spmd.overlapChunks = options.overlapChunks;
  // Layer marks for the runtime's --trace (a call per layer: cheap).
  spmd.traceLayers = true;
  pm.addPass(createMoEToSpmdPass(spmd));
}

LogicalResult
mlir::moe::buildMoETargetPipeline(OpPassManager &pm,
                                  const CompilePipelineOptions &options,
                                  std::string &error) {
  if (options.cuda) {
    if (failed(buildMoECudaPipeline(pm, options.cudaOptions, error)))
      return failure();
  } else {
    buildMoECpuPipeline(pm);
  }
  // The manifest, with the plan's rank layout, into the runtime's global.
  ConvertMoEManifestToLLVMPassOptions manifest;
  manifest.gemm = options.cuda ? options.cudaOptions.gemm : "f32";
  pm.addPass(createConvertMoEManifestToLLVMPass(manifest));
  return success();
}

void mlir::moe::registerMoECompilePipeline() {
  registerWithOptions(
      "moe-compile-pipeline",
      "What moe-compile runs on an imported model: moe-to-spmd (the rank's "
      "program; overlap, overlap-chunks), the target's pipeline "
      "(target=cpu|cuda and the CUDA options), convert-moe-manifest-to-llvm",
      [](OpPassManager &pm, const PipelineCLOptions &cl, std::string &error) {
        if (cl.target != "cpu" && cl.target != "cuda") {
          error = "unknown target '" + cl.target + "'; expected cpu or cuda";
          return failure();
        }
        return buildMoECompilePipeline(pm, cl.get(), error);
      });
}
