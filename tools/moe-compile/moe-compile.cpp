//===- moe-compile.cpp - MoE model -> executable --------------------------===//
//
// The driver: a Hugging Face-style config.json (or an .mlir module that
// carries a moe.manifest) -> import -> the target's pass pipeline -> LLVM IR
// -> object -> an executable linked with the moert runtime.
//
//   moe-compile mixtral.json --target cpu -o mixtral [--batch 1 --seq-len 16]
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Import/ModelImport.h"

#include "moe/Plan/AutoPlan.h"
#include "moe/Plan/Explain.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-compile options");

static cl::opt<std::string>
    inputFilename(cl::Positional, cl::desc("<config.json | model.mlir>"),
                  cl::Required, cl::cat(category));
static cl::opt<std::string> outputFilename("o", cl::desc("Output file"),
                                           cl::value_desc("path"),
                                           cl::init("a.out"),
                                           cl::cat(category));
static cl::opt<std::string>
    target("target",
           cl::desc("Target: cpu (CPU ranks; the default) or cuda (GPU "
                    "kernels + cuBLAS, docs/Cuda.md)"),
           cl::init("cpu"), cl::cat(category));
static cl::opt<std::string> cudaChip("cuda-chip",
                                     cl::desc("--target cuda: the GPU "
                                              "architecture (default sm_90)"),
                                     cl::init("sm_90"), cl::cat(category));
static cl::opt<std::string> cudaFormat(
    "cuda-format",
    cl::desc("--target cuda: how kernels are embedded: fatbin (SASS for "
             "--cuda-chip plus PTX; needs ptxas, the default when the build "
             "found the CUDA toolkit), bin (SASS) or isa (PTX, compiled by "
             "the driver at load)"),
    cl::init(""), cl::cat(category));
static cl::opt<std::string> cudaGemm(
    "cuda-gemm",
    cl::desc("--target cuda: how cuBLAS computes the matrix products of f32 "
             "operands: f32 (the default, exact f32), tf32, bf16 or f16 "
             "(tensor cores on rounded inputs, f32 accumulation; "
             "docs/Cuda.md)"),
    cl::init("f32"), cl::cat(category));
static cl::opt<int64_t> cudaBlockSize(
    "cuda-block-size",
    cl::desc("--target cuda: threads per block of every kernel (default "
             "256, at most 1024)"),
    cl::init(256), cl::cat(category));
static cl::opt<bool> cudaEmulateOnCpu(
    "cuda-emulate-on-cpu",
    cl::desc("--target cuda, for testing without a GPU: build a CPU "
             "executable whose loops have the kernels' structure (collapsed, "
             "tiled by the block size, bounds-guarded), run on the host with "
             "the CPU runtime (docs/Cuda.md)"),
    cl::init(false), cl::cat(category));
enum class Emit {
  Mlir,
  PartitionedMlir,
  LoweredMlir,
  Ptx,
  LlvmIr,
  Object,
  Executable
};
static cl::opt<Emit> emit(
    "emit", cl::desc("What to produce"), cl::init(Emit::Executable),
    cl::values(clEnumValN(Emit::Mlir, "mlir",
                          "the imported model (moe IR; a config's model is "
                          "whole, with the plan attached)"),
               clEnumValN(Emit::PartitionedMlir, "partitioned-mlir",
                          "the per-rank program: after moe-shard, "
                          "moe-partition, the plan's rewrites and "
                          "moe-pack-weights"),
               clEnumValN(Emit::LoweredMlir, "lowered-mlir",
                          "the module after the target pipeline"),
               clEnumValN(Emit::Ptx, "ptx",
                          "--target cuda: the PTX of every kernel"),
               clEnumValN(Emit::LlvmIr, "llvm", "optimized LLVM IR"),
               clEnumValN(Emit::Object, "obj", "an object file"),
               clEnumValN(Emit::Executable, "exe",
                          "an executable linked with the runtime")),
    cl::cat(category));
static cl::opt<int64_t> batch("batch",
                              cl::desc("Batch size B of the token ids [B, S] "
                                       "(configs only; default 1)"),
                              cl::init(1), cl::cat(category));
static cl::opt<int64_t>
    seqLen("seq-len",
           cl::desc("Sequence length S of the token ids [B, S] (configs "
                    "only; default 16)"),
           cl::init(16), cl::cat(category));
static cl::opt<std::string>
    planOption("plan",
               cl::desc("Parallel plan, e.g. \"dp=2,ep=2\" (missing degrees "
                        "are 1; world = dp*tp*pp), or \"auto\" to let the "
                        "planner choose for --cluster; overrides a #moe.plan "
                        "in the module"),
               cl::init(""), cl::cat(category));
static cl::opt<int64_t> microbatches(
    "microbatches",
    cl::desc("Microbatches of a pipeline (pp > 1): each stage passes one on "
             "while it computes the next (default: the smallest count >= pp "
             "that divides a data-parallel rank's sequences; 1 for "
             "capacity-limited experts; --plan auto chooses its own)"),
    cl::init(0), cl::cat(category));
static cl::opt<bool>
    explainPlan("explain-plan",
                cl::desc("Print the plan's ranks and groups (with --cluster: "
                         "the planner's report first) and exit"),
                cl::init(false), cl::cat(category));
static cl::opt<std::string> explainFormat(
    "explain-format",
    cl::desc("--explain-plan's form: text (the default), json (for "
             "programs: degrees, grids, every rank's coordinates and group "
             "colors) or manifest (the layout lines the runtime reads)"),
    cl::init("text"), cl::cat(category));
static cl::opt<std::string>
    clusterOption("cluster",
                  cl::desc("Machine for the planner: a preset (h100x8, "
                           "h100x8x4, a30x8, v100x128), local (written by "
                           "moert-calibrate) or a JSON file "
                           "(docs/Planner.md)"),
                  cl::init(""), cl::cat(category));
static cl::opt<int64_t>
    ranksOption("ranks",
                cl::desc("Ranks the planner plans for (default: every "
                         "device of --cluster)"),
                cl::init(0), cl::cat(category));
static cl::opt<std::string>
    skewOption("routing-skew",
               cl::desc("Expert load the planner assumes: uniform, zipf:S or "
                        "hist:FILE"),
               cl::init("uniform"), cl::cat(category));
static cl::opt<std::string>
    planReport("plan-report",
               cl::desc("Write the planner's estimates of every plan as "
                        "JSON to this file"),
               cl::init(""), cl::cat(category));
static cl::opt<int64_t> planTop("plan-top",
                                cl::desc("Plans in the report's table"),
                                cl::init(10), cl::cat(category));
static cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimization level"),
                                  cl::init(3), cl::Prefix, cl::cat(category));
static cl::opt<bool> timing("timing",
                            cl::desc("Print the time of each stage and pass"),
                            cl::init(false), cl::cat(category));

namespace {

int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

std::unique_ptr<llvm::TargetMachine> createHostTargetMachine() {
  std::string triple = llvm::sys::getDefaultTargetTriple();
  std::string error;
  const llvm::Target *t =
      llvm::TargetRegistry::lookupTarget(llvm::Triple(triple), error);
  if (!t) {
    llvm::errs() << "moe-compile: error: " << error << "\n";
    return nullptr;
  }
  llvm::TargetOptions options;
  auto cpu = llvm::sys::getHostCPUName();
  llvm::SubtargetFeatures features;
  for (const auto &[feature, enabled] : llvm::sys::getHostCPUFeatures())
    features.AddFeature(feature, enabled);
  return std::unique_ptr<llvm::TargetMachine>(t->createTargetMachine(
      llvm::Triple(triple), cpu, features.getString(), options,
      llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOptLevel::Aggressive));
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  registerAllPasses();
  moe::registerMoEPasses();
  moe::registerMoEConversionPasses();
  registerMLIRContextCLOptions();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  registerAsmPrinterCLOptions();
  // Only the driver's own options are listed; MLIR's (e.g.
  // --mlir-print-ir-after-all, --mlir-timing) still work: see --help-hidden.
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-compile: compile a Mixture-of-Experts model into an executable\n\n"
      "  moe-compile model.json --target cpu -o model\n"
      "  ./model --weights model.safetensors --input ids.npy --output "
      "out.npy\n\n"
      "MLIR's options (--mlir-print-ir-after-all, --mlir-timing, ...) are "
      "accepted too; --help-hidden lists them.\n");

  if (!llvm::is_contained({"text", "json", "manifest"}, explainFormat))
    return fail("unknown --explain-format '" + explainFormat +
                "'; expected text, json or manifest");
  if (target != "cpu" && target != "cuda")
    return fail("unknown --target '" + target + "'; expected 'cpu' or 'cuda'");
  bool cuda = target == "cuda";
  if (emit == Emit::Ptx && !cuda)
    return fail("--emit=ptx needs --target cuda");
  if (!cuda &&
      (cudaChip.getNumOccurrences() || cudaFormat.getNumOccurrences() ||
       cudaGemm.getNumOccurrences() || cudaBlockSize.getNumOccurrences() ||
       cudaEmulateOnCpu))
    return fail("--cuda-chip, --cuda-format, --cuda-gemm, --cuda-block-size "
                "and --cuda-emulate-on-cpu need --target cuda");
  if (cudaEmulateOnCpu && (cudaGemm != "f32" || emit == Emit::Ptx))
    return fail("--cuda-emulate-on-cpu runs on the CPU runtime: no PTX, and "
                "products in f32 only");
  if (!llvm::is_contained({"f32", "tf32", "bf16", "f16"}, cudaGemm))
    return fail("unknown --cuda-gemm '" + cudaGemm +
                "'; expected f32, tf32, bf16 or f16");
  moe::CudaPipelineOptions cudaOptions;
  cudaOptions.emulateOnHost = cudaEmulateOnCpu;
  cudaOptions.blockSize = cudaBlockSize;
  cudaOptions.chip = cudaChip;
  cudaOptions.toolkit = MOE_CUDA_TOOLKIT_ROOT;
  cudaOptions.format = !cudaFormat.empty()           ? std::string(cudaFormat)
                       : cudaOptions.toolkit.empty() ? "isa"
                                                     : "fatbin";
  if (emit == Emit::Ptx) {
    if (!cudaFormat.empty() && cudaFormat != "isa")
      return fail("--emit=ptx prints the kernels' PTX (--cuda-format isa), "
                  "not --cuda-format " +
                  cudaFormat);
    cudaOptions.format = "isa";
  }
  if (cuda) {
    // The options' checks, before any work.
    std::string error;
    if (failed(moe::verifyCudaPipelineOptions(cudaOptions, error)))
      return fail("--target cuda: " + error);
  }
  if (cuda && !cudaEmulateOnCpu && emit == Emit::Executable &&
      !llvm::sys::fs::exists(MOE_RUNTIME_LIB_DIR "/libmoert_cuda.so"))
    return fail("this build has no CUDA runtime (libmoert_cuda: the CUDA "
                "toolkit with cuBLAS and NCCL was not found at configure "
                "time); --emit=ptx, lowered-mlir, llvm and obj still work");

  DefaultTimingManager tm;
  applyDefaultTimingManagerCLOptions(tm);
  if (timing)
    tm.setEnabled(true);
  TimingScope rootTiming = tm.getRootScope();

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  registry.insert<moe::MoEDialect>();
  moe::registerShardingInterfaceExternalModels(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // The planner: --plan auto, or an estimate of the given plan for --cluster.
  if (planOption == "auto" || !clusterOption.empty()) {
    if (!llvm::StringRef(inputFilename).ends_with(".json"))
      return fail("the planner (--plan auto, --cluster) reads a model config "
                  "(config.json); for an .mlir module use moe-opt "
                  "--moe-plan");
    if (planOption.empty())
      return fail("--cluster needs --plan (auto, or a plan to estimate)");
    auto buffer = llvm::MemoryBuffer::getFile(inputFilename);
    if (!buffer)
      return fail("cannot read '" + inputFilename +
                  "': " + buffer.getError().message());
    llvm::Expected<moe::ModelConfig> config =
        moe::parseModelConfig((*buffer)->getBuffer());
    if (!config)
      return fail(inputFilename + ": " + llvm::toString(config.takeError()));
    if (microbatches.getNumOccurrences() && microbatches < 1)
      return fail("--microbatches must be >= 1");
    if (planOption == "auto" && microbatches.getNumOccurrences())
      return fail("--microbatches with --plan auto: the planner chooses the "
                  "microbatches of the pipelines it considers");
    moe::AutoPlanOptions options{planOption,  clusterOption, ranksOption,
                                 skewOption,  planReport,    planTop,
                                 microbatches};
    llvm::Expected<moe::plan::Candidate> chosen = moe::runPlanner(
        &context, moe::summarizeModel(*config, batch, seqLen), options,
        explainPlan && explainFormat == "text" ? &llvm::outs() : nullptr);
    if (!chosen)
      return fail(llvm::toString(chosen.takeError()));
    if (explainPlan && explainFormat == "text")
      llvm::outs() << "\n";
    else if (planOption == "auto")
      llvm::errs() << "moe-compile: --plan auto chose " << chosen->str()
                   << (chosen->pp > 1
                           ? llvm::formatv(" with --microbatches {0}",
                                           chosen->microbatches)
                                 .str()
                           : std::string())
                   << " for " << clusterOption
                   << " (--explain-plan shows why)\n";
    if (planOption == "auto" && chosen->pp > 1)
      microbatches = chosen->microbatches;
    planOption = chosen->str();
  }

  if (microbatches.getNumOccurrences() && microbatches < 1)
    return fail("--microbatches must be >= 1");
  moe::PlanAttr plan;
  if (!planOption.empty()) {
    std::string error;
    plan = moe::PlanAttr::parseOption(&context, planOption, error);
    if (!plan)
      return fail("--plan \"" + planOption + "\": " + error);
  }
  if (explainPlan) {
    if (!plan)
      plan = moe::PlanAttr::getDegrees(&context, 1, 1, 1, 1, 1);
    if (explainFormat == "json")
      moe::writePlanJson(plan, llvm::outs());
    else if (explainFormat == "manifest")
      llvm::outs() << moe::getLayoutManifestLines(plan);
    else
      moe::explainPlan(plan, llvm::outs());
    return 0;
  }

  // Import.
  OwningOpRef<ModuleOp> module;
  {
    TimingScope importTiming = rootTiming.nest("import");
    auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(inputFilename);
    if (!buffer)
      return fail("cannot read '" + inputFilename +
                  "': " + buffer.getError().message());
    if (llvm::StringRef(inputFilename).ends_with(".json")) {
      llvm::Expected<moe::ModelConfig> config =
          moe::parseModelConfig((*buffer)->getBuffer());
      if (!config)
        return fail(inputFilename + ": " + llvm::toString(config.takeError()));
      llvm::Expected<int64_t> mbs = moe::checkPlanForModel(
          moe::summarizeModel(*config, batch, seqLen), plan, microbatches);
      if (!mbs)
        return fail(llvm::toString(mbs.takeError()));
      auto model = moe::importModel(&context, *config, batch, seqLen, *mbs);
      if (!model)
        return fail(llvm::toString(model.takeError()));
      module = std::move(*model);
      if (plan)
        (*module)->setAttr(moe::MoEDialect::getPlanAttrName(), plan);

    } else {
      llvm::SourceMgr sourceMgr;
      sourceMgr.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
      module = parseSourceFile<ModuleOp>(sourceMgr, &context);
      if (!module)
        return 1; // the parser printed the diagnostic
      if (microbatches.getNumOccurrences())
        return fail("--microbatches applies to model configs (the importer "
                    "builds the pipeline)");
      if (plan) {
        (*module)->setAttr(moe::MoEDialect::getPlanAttrName(), plan);
        if (failed(mlir::verify(*module)))
          return fail("--plan \"" + planOption + "\" does not fit '" +
                      inputFilename + "'");
      }
    }
  }

  if (emit == Emit::Mlir) {
    std::string errorMessage;
    auto output = openOutputFile(outputFilename, &errorMessage);
    if (!output)
      return fail(errorMessage);
    module->print(output->os());
    output->keep();
    return 0;
  }

  // The per-rank program of the module's plan (moe-to-spmd decides which
  // passes apply).
  {
    TimingScope partitionTiming = rootTiming.nest("partition");
    PassManager pm(&context);
    if (failed(applyPassManagerCLOptions(pm)))
      return fail("invalid pass manager options");
    pm.enableTiming(partitionTiming);
    pm.addPass(moe::createMoEToSpmdPass());
    if (failed(pm.run(*module)))
      return fail("partitioning '" + inputFilename + "' for the plan failed");
  }

  // Text outputs go through a ToolOutputFile (removed unless kept); objects
  // and executables are written by codegen and the linker.
  std::unique_ptr<llvm::ToolOutputFile> output;
  if (emit == Emit::PartitionedMlir || emit == Emit::LoweredMlir ||
      emit == Emit::Ptx || emit == Emit::LlvmIr) {
    std::string errorMessage;
    output = openOutputFile(outputFilename, &errorMessage);
    if (!output)
      return fail(errorMessage);
  }
  if (emit == Emit::PartitionedMlir) {
    module->print(output->os());
    output->keep();
    return 0;
  }

  auto manifest = (*module)->getAttrOfType<StringAttr>(
      moe::MoEDialect::getManifestAttrName());
  if (!manifest && emit == Emit::Executable)
    return fail("'" + inputFilename +
                "' has no moe.manifest attribute: executables are built from "
                "a model config (config.json), which defines the weights");

  // The target pipeline, down to the LLVM dialect.
  {
    TimingScope pipelineTiming = rootTiming.nest("pipeline");
    PassManager pm(&context);
    if (failed(applyPassManagerCLOptions(pm)))
      return fail("invalid pass manager options");
    pm.enableTiming(pipelineTiming);
    if (cuda) {
      std::string error;
      if (failed(moe::buildMoECudaPipeline(pm, cudaOptions, error)))
        return fail("the cuda pipeline: " + error);
    } else {
      moe::buildMoECpuPipeline(pm);
    }
    // The manifest, with the plan's rank layout, into the runtime's global.
    moe::ConvertMoEManifestToLLVMPassOptions manifestOptions;
    manifestOptions.gemm = cudaGemm;
    pm.addPass(moe::createConvertMoEManifestToLLVMPass(manifestOptions));
    if (failed(pm.run(*module)))
      return fail("the " + target + " pipeline failed on '" + inputFilename +
                  "'");
  }
  if (emit == Emit::LoweredMlir) {
    module->print(output->os());
    output->keep();
    return 0;
  }
  if (emit == Emit::Ptx) {
    // Each kernel module's object holds its PTX (format isa).
    for (auto binary : module->getOps<gpu::BinaryOp>())
      for (Attribute attr : binary.getObjects())
        if (auto object = dyn_cast<gpu::ObjectAttr>(attr))
          output->os() << "// kernel module @" << binary.getSymName() << "\n"
                       << object.getObject().getValue() << "\n";
    output->keep();
    return 0;
  }

  // LLVM IR, optimized for this machine.
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::TargetMachine> machine = createHostTargetMachine();
  if (!machine)
    return 1;
  std::unique_ptr<llvm::Module> llvmModule;
  {
    TimingScope translateTiming = rootTiming.nest("translate-to-llvm-ir");
    llvmModule = translateModuleToLLVMIR(*module, llvmContext);
    if (!llvmModule)
      return fail("translation to LLVM IR failed");
    llvmModule->setTargetTriple(machine->getTargetTriple());
    llvmModule->setDataLayout(machine->createDataLayout());
  }
  {
    TimingScope optTiming = rootTiming.nest("llvm-optimize");
    auto optimize = makeOptimizingTransformer(optLevel, 0, machine.get());
    if (llvm::Error err = optimize(llvmModule.get()))
      return fail("LLVM optimization failed: " +
                  llvm::toString(std::move(err)));
  }
  if (emit == Emit::LlvmIr) {
    llvmModule->print(output->os(), nullptr);
    output->keep();
    return 0;
  }

  // Object file: the output itself, or a temporary to link.
  llvm::SmallString<128> objectPath;
  if (emit == Emit::Object) {
    objectPath = outputFilename;
  } else if (std::error_code ec = llvm::sys::fs::createTemporaryFile(
                 "moe-model", "o", objectPath)) {
    return fail("cannot create a temporary object file: " + ec.message());
  }
  llvm::FileRemover removeObject(objectPath, emit == Emit::Executable);
  {
    TimingScope codegenTiming = rootTiming.nest("codegen");
    std::error_code ec;
    llvm::raw_fd_ostream objectStream(objectPath, ec, llvm::sys::fs::OF_None);
    if (ec)
      return fail("cannot write '" + objectPath + "': " + ec.message());
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, objectStream, nullptr,
                                     llvm::CodeGenFileType::ObjectFile))
      return fail("the target cannot emit object files");
    codegen.run(*llvmModule);
  }
  if (emit == Emit::Object)
    return 0;

  // Link with the runtime.
  {
    TimingScope linkTiming = rootTiming.nest("link");
    std::string linker = MOE_CLANG_PATH;
    std::string libDir = MOE_RUNTIME_LIB_DIR;
    std::string rpath = "-Wl,-rpath," + libDir;
    std::string mainLib = libDir + "/libmoert_main.a";
    std::string libPath = "-L" + libDir;
    SmallVector<StringRef> args = {linker,
                                   objectPath.str(),
                                   mainLib,
                                   libPath,
                                   cuda && !cudaEmulateOnCpu ? "-lmoert_cuda"
                                                             : "-lmoert",
                                   rpath,
                                   "-lm",
                                   "-o",
                                   outputFilename};
    std::string linkError;
    int rc = llvm::sys::ExecuteAndWait(linker, args, std::nullopt, {}, 0, 0,
                                       &linkError);
    if (rc != 0)
      return fail(
          "linking with the runtime failed (" + linker + "): " +
          (linkError.empty() ? "exit code " + std::to_string(rc) : linkError));
  }
  return 0;
}
