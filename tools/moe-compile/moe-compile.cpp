//===- moe-compile.cpp - MoE model -> executable --------------------------===//
//
// The command line of moe-compile: a Hugging Face-style config.json (or an
// .mlir module that carries a moe.manifest) -> an executable linked with
// the moert runtime. The options are read and checked here; the work
// (plan, import, moe-compile-pipeline, host code) is compileModel's
// (lib/Driver).
//
//   moe-compile mixtral.json --target cpu -o mixtral [--batch 1 --seq-len 16]
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Driver/CompileModel.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/AsmState.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/TargetSelect.h"

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
using Emit = moe::EmitKind;
static auto emit = option<Emit>(
    "emit", "What to produce", cl::init(Emit::Executable),
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
        clEnumValN(Emit::Object, "obj", "an object file"),
        clEnumValN(Emit::Executable, "exe",
                   "an executable linked with the runtime")));
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

/// The command line's pipeline options, checked: what depends on the command
/// line here, the options themselves by the pipelines' own checks.
FailureOr<moe::CompilePipelineOptions> readPipelineOptions() {
  moe::CompilePipelineOptions o;
  o.cuda = target == "cuda";
  moe::CudaPipelineOptions &c = o.cudaOptions;
  c.emulateOnHost = cudaEmulateOnCpu;
  c.blockSize = cudaBlockSize;
  c.chip = cudaChip;
  c.gemm = cudaGemm;
  c.toolkit = MOE_CUDA_TOOLKIT_ROOT;
  c.format = emit == Emit::Ptx     ? "isa"
             : !cudaFormat.empty() ? std::string(cudaFormat)
             : c.toolkit.empty()   ? "isa"
                                   : "fatbin";
  o.overlap = llvm::to_vector(overlap);
  o.overlapChunks = overlapChunks;
  bool anyCuda = cudaChip.getNumOccurrences() ||
                 cudaFormat.getNumOccurrences() ||
                 cudaGemm.getNumOccurrences() ||
                 cudaBlockSize.getNumOccurrences() || cudaEmulateOnCpu;
  std::string why =
      target != "cpu" && !o.cuda
          ? "unknown --target '" + target + "'; expected 'cpu' or 'cuda'"
      : emit == Emit::Ptx && !o.cuda ? "--emit=ptx needs --target cuda"
      : !o.cuda && anyCuda
          ? "--cuda-chip, --cuda-format, --cuda-gemm, --cuda-block-size and "
            "--cuda-emulate-on-cpu need --target cuda"
      : emit == Emit::Ptx && cudaEmulateOnCpu
          ? "--emit=ptx prints the kernels' PTX; --cuda-emulate-on-cpu "
            "builds none"
      : emit == Emit::Ptx && !cudaFormat.empty() && cudaFormat != "isa"
          ? "--emit=ptx prints the kernels' PTX (--cuda-format isa), not "
            "--cuda-format " +
                cudaFormat
          : "";
  if (!why.empty())
    return fail(why), failure();
  if (o.cuda && failed(moe::verifyCudaPipelineOptions(c, why)))
    return fail("--target cuda: " + why), failure();
  if (failed(moe::verifyOverlapOptions(o.overlap, o.overlapChunks, why,
                                       "overlap", "overlap-chunks")))
    return fail(why), failure();
  return o;
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
  if (microbatches.getNumOccurrences() && microbatches < 1)
    return fail("--microbatches must be >= 1");
  FailureOr<moe::CompilePipelineOptions> pipelineOptions =
      readPipelineOptions();
  if (failed(pipelineOptions))
    return 1;
  DefaultTimingManager tm;
  applyDefaultTimingManagerCLOptions(tm);
  tm.setEnabled(tm.isEnabled() || timing);
  TimingScope rootTiming = tm.getRootScope();
  DialectRegistry registry;
  moe::registerCompileModelDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  moe::CompileModelOptions o;
  o.input = inputFilename;
  o.output = outputFilename;
  o.emit = emit;
  o.pipeline = *pipelineOptions;
  o.batch = batch;
  o.seqLen = seqLen;
  o.maxSeqLen = maxSeqLen;
  o.planner = {planOption, clusterOption, ranksOption, skewOption,
               planReport, planTop,       microbatches};
  o.planner.chunks = overlapChunks.getNumOccurrences() ? overlapChunks : 0;
  o.explainPlan = explainPlan;
  o.explainFormat = explainFormat;
  o.host.optLevel = optLevel;
  o.host.linker = MOE_CLANG_PATH;
  o.host.runtimeLibDir = MOE_RUNTIME_LIB_DIR;
  return moe::compileModel(context, std::move(o), rootTiming);
}
