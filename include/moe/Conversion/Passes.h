//===- Passes.h - moe conversion passes -------------------------*- C++ -*-===//
//
// Declarations generated from Passes.td, and the CPU lowering pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_H
#define MOE_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir {
namespace moe {

#define GEN_PASS_DECL
#include "moe/Conversion/Passes.h.inc"

/// Name of the runtime's GEMM entry point the BLAS lowering calls.
constexpr llvm::StringLiteral kSgemmFunctionName = "moert_sgemm";

/// Adds the CPU pipeline: moe-decompose, convert-moe-to-linalg, one-shot
/// bufferization, moe-linalg-to-blas, buffer deallocation, and the lowering
/// of everything to the LLVM dialect.
void buildMoECpuPipeline(OpPassManager &pm);

/// Registers `moe-cpu-pipeline` (buildMoECpuPipeline) with the pass registry.
void registerMoECpuPipeline();

/// What `--target cuda` compiles for (docs/Cuda.md).
struct CudaPipelineOptions {
  std::string chip = "sm_90";
  std::string features; // PTX features; empty: what LLVM needs for the chip
  /// gpu-module-to-binary format: isa (PTX), bin or fatbin (need ptxas).
  std::string format = "isa";
  std::string toolkit; // CUDA toolkit root for ptxas; empty: MLIR's search
  int64_t blockSize = 256;
  /// Stop before the GPU: run the loops as the kernels would (collapsed,
  /// tiled by blockSize, bounds-guarded) sequentially on the host, with
  /// host memory and the CPU runtime. For testing the pipeline without a
  /// GPU (moe-compile --cuda-emulate-on-cpu).
  bool emulateOnHost = false;
  /// How cuBLAS computes the products of f32 operands: f32, tf32, bf16 or
  /// f16 (the manifest hands it to the CUDA runtime; f32 only with
  /// emulateOnHost).
  std::string gemm = "f32";
};
/// Checks a products' compute mode (CudaPipelineOptions::gemm, the
/// manifest's `gemm`): f32, tf32, bf16 or f16.
LogicalResult verifyGemmMode(llvm::StringRef gemm, std::string &error);
/// The textual pipeline, and the pipeline added to `pm` after checking the
/// options (an unknown chip or format, a block size outside [1, 1024]: the
/// error names it).
std::string getMoECudaPipeline(const CudaPipelineOptions &options);
LogicalResult verifyCudaPipelineOptions(const CudaPipelineOptions &options,
                                        std::string &error);
LogicalResult buildMoECudaPipeline(OpPassManager &pm,
                                   const CudaPipelineOptions &options,
                                   std::string &error);
/// Registers `moe-cuda-pipeline` with the pass registry.
void registerMoECudaPipeline();

/// What `moe-compile` compiles a model for.
struct CompilePipelineOptions {
  bool cuda = false; // --target cuda (else cpu)
  CudaPipelineOptions cudaOptions;
  /// The collectives moe-overlap makes asynchronous, and its chunks.
  SmallVector<std::string> overlap;
  int64_t overlapChunks = 1;
};
/// Checks every option (the target's and moe-overlap's); the error names
/// the bad one.
LogicalResult
verifyCompilePipelineOptions(const CompilePipelineOptions &options,
                             std::string &error);
/// moe-compile's pipeline from a whole model to the LLVM dialect:
/// buildMoEPartitionPipeline, then buildMoETargetPipeline. The error names a
/// bad option.
LogicalResult buildMoECompilePipeline(OpPassManager &pm,
                                      const CompilePipelineOptions &options,
                                      std::string &error);
/// Its first half: moe-to-spmd (the rank's program, overlapped as asked).
void buildMoEPartitionPipeline(OpPassManager &pm,
                               const CompilePipelineOptions &options);
/// Its second half, on the rank's program: the target's pipeline and
/// convert-moe-manifest-to-llvm.
LogicalResult buildMoETargetPipeline(OpPassManager &pm,
                                     const CompilePipelineOptions &options,
                                     std::string &error);
/// Registers `moe-compile-pipeline` with the pass registry.
void registerMoECompilePipeline();

#define GEN_PASS_REGISTRATION
#include "moe/Conversion/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_PASSES_H
