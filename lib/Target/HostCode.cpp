//===- HostCode.cpp - LLVM dialect -> host code ---------------------------===//

#include "moe/Target/HostCode.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// This machine, with every feature its CPU has.
std::unique_ptr<llvm::TargetMachine>
createHostTargetMachine(std::string &error) {
  std::string triple = llvm::sys::getDefaultTargetTriple();
  const llvm::Target *t =
      llvm::TargetRegistry::lookupTarget(llvm::Triple(triple), error);
  if (!t)
    return nullptr;
  llvm::SubtargetFeatures features;
  for (const auto &[feature, enabled] : llvm::sys::getHostCPUFeatures())
    features.AddFeature(feature, enabled);
  return std::unique_ptr<llvm::TargetMachine>(t->createTargetMachine(
      llvm::Triple(triple), llvm::sys::getHostCPUName(), features.getString(),
      llvm::TargetOptions(), llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
}

LogicalResult fail(std::string &error, const llvm::Twine &message) {
  error = message.str();
  return failure();
}

} // namespace

LogicalResult mlir::moe::emitHostCode(ModuleOp module,
                                      const HostCodeOptions &options,
                                      TimingScope &timing, std::string &error) {
  using Kind = HostCodeOptions::Kind;
  std::unique_ptr<llvm::TargetMachine> machine = createHostTargetMachine(error);
  if (!machine)
    return failure();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  {
    TimingScope translateTiming = timing.nest("translate-to-llvm-ir");
    llvmModule = translateModuleToLLVMIR(module, llvmContext);
    if (!llvmModule)
      return fail(error, "translation to LLVM IR failed");
    llvmModule->setTargetTriple(machine->getTargetTriple());
    llvmModule->setDataLayout(machine->createDataLayout());
  }
  {
    TimingScope optTiming = timing.nest("llvm-optimize");
    auto optimize =
        makeOptimizingTransformer(options.optLevel, 0, machine.get());
    if (llvm::Error err = optimize(llvmModule.get()))
      return fail(error, "LLVM optimization failed: " +
                             llvm::toString(std::move(err)));
  }
  if (options.kind == Kind::LlvmIr && options.irStream) {
    llvmModule->print(*options.irStream, nullptr);
    return success();
  }
  if (options.kind == Kind::LlvmIr) {
    std::unique_ptr<llvm::ToolOutputFile> output =
        openOutputFile(options.outputPath, &error);
    if (!output)
      return failure();
    llvmModule->print(output->os(), nullptr);
    output->keep();
    return success();
  }

  // Object file: the output itself, or a temporary to link.
  llvm::SmallString<128> objectPath;
  if (options.kind == Kind::Object)
    objectPath = options.outputPath;
  else if (std::error_code ec =
               llvm::sys::fs::createTemporaryFile("moe-model", "o", objectPath))
    return fail(error,
                "cannot create a temporary object file: " + ec.message());
  llvm::FileRemover removeObject(objectPath, options.kind == Kind::Executable);
  {
    TimingScope codegenTiming = timing.nest("codegen");
    std::error_code ec;
    llvm::raw_fd_ostream objectStream(objectPath, ec, llvm::sys::fs::OF_None);
    if (ec)
      return fail(error, "cannot write '" + objectPath + "': " + ec.message());
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, objectStream, nullptr,
                                     llvm::CodeGenFileType::ObjectFile))
      return fail(error, "the target cannot emit object files");
    codegen.run(*llvmModule);
  }
  if (options.kind == Kind::Object)
    return success();

  TimingScope linkTiming = timing.nest("link");
  std::string rpath = "-Wl,-rpath," + options.runtimeLibDir;
  std::string mainLib = options.runtimeLibDir + "/libmoert_main.a";
  std::string libPath = "-L" + options.runtimeLibDir;
  std::string runtime = "-l" + options.runtimeLib;
  SmallVector<StringRef> args = {options.linker,
                                 objectPath.str(),
                                 mainLib,
                                 libPath,
                                 runtime,
                                 rpath,
                                 "-lm",
                                 "-o",
                                 options.outputPath};
  std::string linkError;
  int rc = llvm::sys::ExecuteAndWait(options.linker, args, std::nullopt, {}, 0,
                                     0, &linkError);
  if (rc != 0)
    return fail(error,
                "linking with the runtime failed (" + options.linker + "): " +
                    (linkError.empty() ? "exit code " + std::to_string(rc)
                                       : linkError));
  return success();
}
