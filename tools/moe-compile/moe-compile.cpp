//===- moe-compile.cpp - MoE model -> executable --------------------------===//
//
// The driver: a Hugging Face-style config.json (or an .mlir module that
// carries a moe.manifest) -> the whole model -> moe-compile-pipeline (the
// rank's program, the target's lowering, the manifest) -> LLVM IR -> object
// -> an executable linked with the moert runtime. The work is in the
// libraries; this file reads the command line.
//
//   moe-compile mixtral.json --target cpu -o mixtral [--batch 1 --seq-len 16]
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Import/ModelImport.h"
#include "moe/Plan/AutoPlan.h"
#include "moe/Plan/Explain.h"
#include "moe/Target/HostCode.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-compile options");
template <typename T, typename... Mods>
static cl::opt<T> option(const char *name, const char *desc, Mods &&...mods) {
  return cl::opt<T>(StringRef(name), cl::desc(desc), cl::cat(category),
                    std::forward<Mods>(mods)...);
}

static cl::opt<std::string>
    inputFilename(cl::Positional, cl::desc("<config.json | model.mlir>"),
                  cl::Required, cl::cat(category));
static auto outputFilename =
    option<std::string>("o", "Output file", cl::init("a.out"));
static auto target = option<std::string>(
    "target",
    "Target: cpu (CPU ranks; the default) or cuda (GPU kernels + cuBLAS, "
    "docs/Cuda.md)",
    cl::init("cpu"));
static auto cudaChip = option<std::string>(
    "cuda-chip", "--target cuda: the GPU architecture (default sm_90)",
    cl::init("sm_90"));
static auto cudaFormat = option<std::string>(
    "cuda-format",
    "--target cuda: how kernels are embedded: fatbin (SASS for --cuda-chip "
    "plus PTX; needs ptxas, the default when the build found the CUDA "
    "toolkit), bin (SASS) or isa (PTX, compiled by the driver at load)");
static auto cudaGemm = option<std::string>(
    "cuda-gemm",
    "--target cuda: how cuBLAS computes the matrix products of f32 "
    "operands: f32 (the default, exact f32), tf32, bf16 or f16 (tensor "
    "cores on rounded inputs, f32 accumulation; docs/Cuda.md)",
    cl::init("f32"));
static auto cudaBlockSize = option<int64_t>(
    "cuda-block-size",
    "--target cuda: threads per block of every kernel (default 256, at most "
    "1024)",
    cl::init(256));
static auto cudaEmulateOnCpu = option<bool>(
    "cuda-emulate-on-cpu",
    "--target cuda, for testing without a GPU: build a CPU executable whose "
    "loops have the kernels' structure (collapsed, tiled by the block size, "
    "bounds-guarded), run on the host with the CPU runtime (docs/Cuda.md)");
enum class Emit { Mlir, PartitionedMlir, LoweredMlir, Ptx, LlvmIr, Obj, Exe };
static auto emit = option<Emit>(
    "emit", "What to produce", cl::init(Emit::Exe),
    cl::values(
        clEnumValN(Emit::Mlir, "mlir",
                   "the imported model (moe IR; a config's model is whole, "
                   "with the plan attached)"),
        clEnumValN(Emit::PartitionedMlir, "partitioned-mlir",
                   "the per-rank program (moe-to-spmd: moe-shard, "
                   "moe-partition, the plan's rewrites, moe-pipeline, "
                   "moe-pack-weights)"),
        clEnumValN(Emit::LoweredMlir, "lowered-mlir",
                   "the module after the target pipeline"),
        clEnumValN(Emit::Ptx, "ptx", "--target cuda: the PTX of every kernel"),
        clEnumValN(Emit::LlvmIr, "llvm", "optimized LLVM IR"),
        clEnumValN(Emit::Obj, "obj", "an object file"),
        clEnumValN(Emit::Exe, "exe", "an executable linked with the runtime")));
static auto batch = option<int64_t>(
    "batch", "Batch size B of the token ids [B, S] (configs only; default 1)",
    cl::init(1));
static auto seqLen = option<int64_t>(
    "seq-len",
    "Sequence length S of the token ids [B, S] (configs only; default 16)",
    cl::init(16));
static auto maxSeqLen = option<int64_t>(
    "max-seq-len",
    "Build for generation: a prefill over the prompt [B, S] and a decode "
    "step over [B, 1] with a key/value cache of M positions (configs only; "
    "M > S; the executable's --generate N needs S + N <= M)",
    cl::init(0));
static auto planOption = option<std::string>(
    "plan", "Parallel plan, e.g. \"dp=2,ep=2\" (missing degrees are 1; world = "
            "dp*tp*pp), or \"auto\" to let the planner choose for --cluster; "
            "overrides a #moe.plan in the module");
static auto microbatches = option<int64_t>(
    "microbatches",
    "Microbatches of a pipeline (pp > 1): each stage passes one on while it "
    "computes the next (default: the smallest count >= pp that divides a "
    "data-parallel rank's sequences; 1 for capacity-limited experts; --plan "
    "auto chooses its own)",
    cl::init(0));
static cl::list<std::string>
    overlap("overlap",
            cl::desc("Collectives to overlap with compute (moe-overlap): "
                     "all-to-all, all-reduce, all-gather, reduce-scatter"),
            cl::CommaSeparated, cl::cat(category));
static auto overlapChunks = option<int64_t>(
    "overlap-chunks",
    "With --overlap=all-to-all: split each expert-parallel exchange into N "
    "chunks, one travelling while the previous one's experts compute",
    cl::init(1));
static auto explainPlan = option<bool>(
    "explain-plan",
    "Print the plan's ranks and groups (with --cluster: the planner's "
    "report first) and exit");
static auto explainFormat = option<std::string>(
    "explain-format",
    "--explain-plan's form: text (the default), json (for programs: degrees, "
    "grids, every rank's coordinates and group colors) or manifest (the "
    "layout lines the runtime reads)",
    cl::init("text"));
static auto clusterOption = option<std::string>(
    "cluster",
    "Machine for the planner: a preset (h100x8, h100x8x4, a30x8, v100x128), "
    "local (written by moert-calibrate) or a JSON file (docs/Planner.md)");
static auto ranksOption = option<int64_t>(
    "ranks", "Ranks the planner plans for (default: every device of --cluster)",
    cl::init(0));
static auto skewOption = option<std::string>(
    "routing-skew",
    "Expert load the planner assumes: uniform, zipf:S or hist:FILE",
    cl::init("uniform"));
static auto planReport = option<std::string>(
    "plan-report",
    "Write the planner's estimates of every plan as JSON to this file");
static auto planTop =
    option<int64_t>("plan-top", "Plans in the report's table", cl::init(10));
static cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimization level"),
                                  cl::init(3), cl::Prefix, cl::cat(category));
static auto timing =
    option<bool>("timing", "Print the time of each stage and pass");

namespace {
int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

/// Writes `print`'s output to -o.
int writeOutput(function_ref<void(llvm::raw_ostream &)> print) {
  std::string error;
  auto output = openOutputFile(outputFilename, &error);
  if (!output)
    return fail(error);
  print(output->os());
  output->keep();
  return 0;
}

/// The command line's CUDA options, checked; failure after an error.
FailureOr<moe::CompilePipelineOptions> readTargetOptions() {
  moe::CompilePipelineOptions o;
  o.cuda = target == "cuda";
  if (target != "cpu" && !o.cuda)
    return fail("unknown --target '" + target + "'; expected 'cpu' or 'cuda'"),
           failure();
  bool anyCuda = cudaChip.getNumOccurrences() ||
                 cudaFormat.getNumOccurrences() ||
                 cudaGemm.getNumOccurrences() ||
                 cudaBlockSize.getNumOccurrences() || cudaEmulateOnCpu;
  std::string why =
      emit == Emit::Ptx && !o.cuda ? "--emit=ptx needs --target cuda"
      : !o.cuda && anyCuda
          ? "--cuda-chip, --cuda-format, --cuda-gemm, --cuda-block-size and "
            "--cuda-emulate-on-cpu need --target cuda"
      : cudaEmulateOnCpu && (cudaGemm != "f32" || emit == Emit::Ptx)
          ? "--cuda-emulate-on-cpu runs on the CPU runtime: no PTX, and "
            "products in f32 only"
      : !llvm::is_contained({"f32", "tf32", "bf16", "f16"}, cudaGemm)
          ? "unknown --cuda-gemm '" + cudaGemm +
                "'; expected f32, tf32, bf16 or f16"
      : emit == Emit::Ptx && !cudaFormat.empty() && cudaFormat != "isa"
          ? "--emit=ptx prints the kernels' PTX (--cuda-format isa), not "
            "--cuda-format " +
                cudaFormat
          : "";
  if (!why.empty())
    return fail(why), failure();
  moe::CudaPipelineOptions &c = o.cudaOptions;
  c.emulateOnHost = cudaEmulateOnCpu;
  c.blockSize = cudaBlockSize;
  c.chip = cudaChip;
  c.toolkit = MOE_CUDA_TOOLKIT_ROOT;
  c.format = emit == Emit::Ptx     ? "isa"
             : !cudaFormat.empty() ? std::string(cudaFormat)
             : c.toolkit.empty()   ? "isa"
                                   : "fatbin";
  o.gemm = cudaGemm;
  if (o.cuda && failed(moe::verifyCudaPipelineOptions(c, why)))
    return fail("--target cuda: " + why), failure();
  if (o.cuda && !cudaEmulateOnCpu && emit == Emit::Exe &&
      !llvm::sys::fs::exists(MOE_RUNTIME_LIB_DIR "/libmoert_cuda.so"))
    return fail("this build has no CUDA runtime (libmoert_cuda: the CUDA "
                "toolkit with cuBLAS and NCCL was not found at configure "
                "time); --emit=ptx, lowered-mlir, llvm and obj still work"),
           failure();
  return o;
}

/// --plan auto, or --plan P with --cluster: the planner's choice (its report
/// with --explain-plan) becomes --plan (and --microbatches for a pipeline).
LogicalResult choosePlan(MLIRContext &context, const moe::ModelConfig &config) {
  if (planOption.empty())
    return fail("--cluster needs --plan (auto, or a plan to estimate)"),
           failure();
  if (planOption == "auto" && microbatches.getNumOccurrences())
    return fail("--microbatches with --plan auto: the planner chooses the "
                "microbatches of the pipelines it considers"),
           failure();
  moe::AutoPlanOptions options{planOption,  clusterOption, ranksOption,
                               skewOption,  planReport,    planTop,
                               microbatches};
  options.overlap = llvm::is_contained(overlap, "all-to-all");
  options.chunks = overlapChunks.getNumOccurrences() ? overlapChunks : 0;
  bool report = explainPlan && explainFormat == "text";
  llvm::Expected<moe::plan::Candidate> chosen =
      moe::runPlanner(&context, moe::summarizeModel(config, batch, seqLen),
                      options, report ? &llvm::outs() : nullptr);
  if (!chosen)
    return fail(llvm::toString(chosen.takeError())), failure();
  if (report)
    llvm::outs() << "\n";
  else if (planOption == "auto")
    llvm::errs() << "moe-compile: --plan auto chose " << chosen->str()
                 << (chosen->pp > 1 ? " with --microbatches " +
                                          std::to_string(chosen->microbatches)
                                    : "")
                 << (chosen->chunks > 1 ? " with --overlap-chunks " +
                                              std::to_string(chosen->chunks)
                                        : "")
                 << " for " << clusterOption << " (--explain-plan shows why)\n";
  if (planOption == "auto" && chosen->pp > 1)
    microbatches = chosen->microbatches;
  if (planOption == "auto" && chosen->overlap)
    overlapChunks = chosen->chunks;
  planOption = chosen->str();
  return success();
}

/// The whole model with `plan` attached: a config through the importer (the
/// plan checked against it first), or the .mlir module in `buffer`. Null
/// after an error.
OwningOpRef<ModuleOp> loadModel(MLIRContext &context,
                                const std::optional<moe::ModelConfig> &config,
                                std::unique_ptr<llvm::MemoryBuffer> buffer,
                                moe::PlanAttr plan) {
  OwningOpRef<ModuleOp> module;
  if (config) {
    llvm::Expected<int64_t> mbs = moe::checkPlanForModel(
        moe::summarizeModel(*config, batch, seqLen), plan, microbatches);
    if (!mbs)
      return fail(llvm::toString(mbs.takeError())), nullptr;
    // The decode step runs the model on one token per sequence.
    if (maxSeqLen) {
      llvm::Expected<int64_t> decode = moe::checkPlanForModel(
          moe::summarizeModel(*config, batch, 1), plan, *mbs);
      if (!decode)
        return fail("the decode step ([" + std::to_string(batch) +
                    ", 1] tokens) cannot take the plan: " +
                    llvm::toString(decode.takeError())),
               nullptr;
    }
    auto model =
        moe::importModel(&context, *config, batch, seqLen, *mbs, maxSeqLen);
    if (!model)
      return fail(llvm::toString(model.takeError())), nullptr;
    module = std::move(*model);
  } else {
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
    module = parseSourceFile<ModuleOp>(sourceMgr, &context);
    if (!module)
      return nullptr; // the parser printed the diagnostic
    if (microbatches.getNumOccurrences())
      return fail("--microbatches applies to model configs (the importer "
                  "builds the model of one microbatch)"),
             nullptr;
    if (maxSeqLen.getNumOccurrences())
      return fail("--max-seq-len applies to model configs (the importer "
                  "builds the prefill and decode programs)"),
             nullptr;
  }
  if (plan) {
    (*module)->setAttr(moe::MoEDialect::getPlanAttrName(), plan);
    if (failed(mlir::verify(*module)))
      return fail("--plan \"" + planOption + "\" does not fit '" +
                  inputFilename + "'"),
             nullptr;
  }
  return module;
}

/// The lowered module as --emit asks: LLVM IR, an object or an executable.
int emitHost(ModuleOp module, TimingScope &timing, bool cuda) {
  moe::HostCodeOptions host;
  host.optLevel = optLevel;
  host.outputPath = outputFilename;
  host.linker = MOE_CLANG_PATH;
  host.runtimeLibDir = MOE_RUNTIME_LIB_DIR;
  host.runtimeLib = cuda && !cudaEmulateOnCpu ? "moert_cuda" : "moert";
  using Kind = moe::HostCodeOptions::Kind;
  host.kind = emit == Emit::LlvmIr ? Kind::LlvmIr
              : emit == Emit::Obj  ? Kind::Object
                                   : Kind::Executable;
  std::string error;
  if (emit != Emit::LlvmIr)
    return failed(moe::emitHostCode(module, host, timing, error)) ? fail(error)
                                                                  : 0;
  auto output = openOutputFile(outputFilename, &error);
  if (!output)
    return fail(error);
  host.irStream = &output->os();
  if (failed(moe::emitHostCode(module, host, timing, error)))
    return fail(error);
  output->keep();
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  registerAllPasses();
  moe::registerMoEPasses();
  moe::registerMoEConversionPasses();
  moe::registerMoECodegenPasses();
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
      "out.npy\n\nMLIR's options (--mlir-print-ir-after-all, --mlir-timing, "
      "...) are accepted too; --help-hidden lists them.\n");
  if (!llvm::is_contained({"text", "json", "manifest"}, explainFormat))
    return fail("unknown --explain-format '" + explainFormat +
                "'; expected text, json or manifest");
  FailureOr<moe::CompilePipelineOptions> targetOptions = readTargetOptions();
  if (failed(targetOptions))
    return 1;
  if (microbatches.getNumOccurrences() && microbatches < 1)
    return fail("--microbatches must be >= 1");
  for (const std::string &kind : overlap)
    if (!llvm::is_contained(
            {"all-to-all", "all-reduce", "all-gather", "reduce-scatter"}, kind))
      return fail("--overlap: unknown collective '" + kind +
                  "'; expected all-to-all, all-reduce, all-gather or "
                  "reduce-scatter");
  if (overlapChunks < 1)
    return fail("--overlap-chunks must be >= 1");
  if (overlapChunks > 1 && !llvm::is_contained(overlap, "all-to-all"))
    return fail("--overlap-chunks splits the all-to-alls that --overlap "
                "overlaps; add --overlap=all-to-all");

  DefaultTimingManager tm;
  applyDefaultTimingManagerCLOptions(tm);
  tm.setEnabled(tm.isEnabled() || timing);
  TimingScope rootTiming = tm.getRootScope();
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  registry.insert<moe::MoEDialect>();
  moe::registerShardingInterfaceExternalModels(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // The input: a model config or an .mlir module.
  bool isConfig = StringRef(inputFilename).ends_with(".json");
  std::optional<moe::ModelConfig> config;
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  if (auto read = llvm::MemoryBuffer::getFileOrSTDIN(inputFilename))
    buffer = std::move(*read);
  else
    error = "cannot read '" + inputFilename + "': " + read.getError().message();
  if (isConfig || planOption == "auto" || !clusterOption.empty()) {
    if (!isConfig)
      return fail("the planner (--plan auto, --cluster) reads a model config "
                  "(config.json); for an .mlir module use moe-opt "
                  "--moe-plan");
    if (!buffer)
      return fail(error);
    llvm::Expected<moe::ModelConfig> parsed =
        moe::parseModelConfig(buffer->getBuffer());
    if (!parsed)
      return fail(inputFilename + ": " + llvm::toString(parsed.takeError()));
    config = std::move(*parsed);
  }

  // The plan: given, or chosen by the planner for --cluster.
  if ((planOption == "auto" || !clusterOption.empty()) &&
      failed(choosePlan(context, *config)))
    return 1;
  moe::PlanAttr plan;
  if (!planOption.empty() &&
      !(plan = moe::PlanAttr::parseOption(&context, planOption, error)))
    return fail("--plan \"" + planOption + "\": " + error);
  if (explainPlan) {
    plan = plan ? plan : moe::PlanAttr::getDegrees(&context, 1, 1, 1, 1, 1);
    if (explainFormat == "json")
      moe::writePlanJson(plan, llvm::outs());
    else if (explainFormat == "manifest")
      llvm::outs() << moe::getLayoutManifestLines(plan);
    else
      moe::explainPlan(plan, llvm::outs());
    return 0;
  }

  // The whole model, with its plan.
  OwningOpRef<ModuleOp> module;
  {
    TimingScope importTiming = rootTiming.nest("import");
    if (!buffer)
      return fail(error);
    module = loadModel(context, config, std::move(buffer), plan);
    if (!module)
      return 1;
  }
  if (emit == Emit::Mlir)
    return writeOutput([&](llvm::raw_ostream &os) { module->print(os); });
  if (emit == Emit::Exe &&
      !(*module)->hasAttr(moe::MoEDialect::getManifestAttrName()))
    return fail("'" + inputFilename +
                "' has no moe.manifest attribute: executables are built from "
                "a model config (config.json), which defines the weights");

  // moe-compile-pipeline: the rank's program, then the target's pipeline.
  auto runPasses = [&](StringRef stage,
                       function_ref<LogicalResult(PassManager &)> build) {
    TimingScope stageTiming = rootTiming.nest(stage);
    PassManager pm(&context);
    if (failed(applyPassManagerCLOptions(pm)) || failed(build(pm)))
      return failure();
    pm.enableTiming(stageTiming);
    return pm.run(*module);
  };
  if (failed(runPasses("partition", [](PassManager &pm) {
        moe::MoEToSpmdPassOptions options;
        options.overlap = llvm::to_vector(overlap);
        options.overlapChunks = overlapChunks;
        pm.addPass(moe::createMoEToSpmdPass(options));
        return success();
      })))
    return fail("partitioning '" + inputFilename + "' for the plan failed");
  if (emit == Emit::PartitionedMlir)
    return writeOutput([&](llvm::raw_ostream &os) { module->print(os); });
  if (failed(runPasses("pipeline", [&](PassManager &pm) {
        return moe::buildMoETargetPipeline(pm, *targetOptions, error);
      })))
    return fail("the " + target + " pipeline failed on '" + inputFilename +
                "'" + (error.empty() ? "" : ": " + error));
  if (emit == Emit::LoweredMlir)
    return writeOutput([&](llvm::raw_ostream &os) { module->print(os); });
  if (emit == Emit::Ptx)
    return writeOutput([&](llvm::raw_ostream &os) {
      // Each kernel module's object holds its PTX (format isa).
      for (auto binary : module->getOps<gpu::BinaryOp>())
        for (Attribute attr : binary.getObjects())
          if (auto object = dyn_cast<gpu::ObjectAttr>(attr))
            os << "// kernel module @" << binary.getSymName() << "\n"
               << object.getObject().getValue() << "\n";
    });

  // The host code: LLVM IR, an object, or the executable.
  return emitHost(*module, rootTiming, targetOptions->cuda);
}
