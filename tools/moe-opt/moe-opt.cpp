//===- moe-opt.cpp - moe-mlir optimizer driver ----------------------------===//
//
// mlir-opt with the moe dialect and passes added: every upstream dialect,
// extension and pass stays available, so moe-opt accepts what mlir-opt-22
// accepts.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::moe::registerMoEPasses();
  mlir::moe::registerMoEPipelines();
  mlir::moe::registerMoEConversionPasses();
  mlir::moe::registerMoECodegenPasses();
  mlir::moe::registerMoECpuPipeline();
  mlir::moe::registerMoECudaPipeline();
  mlir::moe::registerMoECompilePipeline();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels to LLVM IR (the CUDA pipeline).
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::moe::MoEDialect>();
  mlir::moe::registerShardingInterfaceExternalModels(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moe-mlir optimizer driver\n", registry));
}
