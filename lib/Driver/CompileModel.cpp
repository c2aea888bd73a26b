//===- CompileModel.cpp - what moe-compile does, as a library -------------===//
//
// See CompileModel.h. The stages, in order: read the input; choose the plan
// (the planner, for a cluster) or explain it; import the model with its
// plan; run buildMoEPartitionPipeline and buildMoETargetPipeline (the two
// halves of moe-compile-pipeline); emit what was asked for.
//
//===----------------------------------------------------------------------===//

#include "moe/Driver/CompileModel.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Import/ModelImport.h"
#include "moe/Plan/Explain.h"

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-compile: error: " << message << "\n";
  return 1;
}

class Compiler {
public:
  Compiler(MLIRContext &context, CompileModelOptions &options,
           TimingScope &timing)
      : context(context), o(options), timing(timing) {}
  int run();

private:
  int write(function_ref<void(llvm::raw_ostream &)> print);
  LogicalResult choosePlan();
  OwningOpRef<ModuleOp> load(std::unique_ptr<llvm::MemoryBuffer> buffer,
                             PlanAttr plan);
  LogicalResult runPasses(ModuleOp module, StringRef stage,
                          function_ref<LogicalResult(PassManager &)> build);

  MLIRContext &context;
  CompileModelOptions &o;
  TimingScope &timing;
  std::optional<ModelConfig> config;
};

/// Writes `print`'s output to the output file.
int Compiler::write(function_ref<void(llvm::raw_ostream &)> print) {
  std::string error;
  auto output = openOutputFile(o.output, &error);
  if (!output)
    return fail(error);
  print(output->os());
  output->keep();
  return 0;
}

/// --plan auto, or --plan P with a cluster: the planner's choice (its report
/// with --explain-plan) becomes the plan (with a pipeline's microbatches and
/// auto's overlap chunks).
LogicalResult Compiler::choosePlan() {
  AutoPlanOptions &p = o.planner;
  p.overlap = llvm::is_contained(o.pipeline.overlap, "all-to-all");
  bool report = o.explainPlan && o.explainFormat == "text";
  llvm::Expected<plan::Candidate> chosen =
      runPlanner(&context, summarizeModel(*config, o.batch, o.seqLen), p,
                 report ? &llvm::outs() : nullptr);
  if (!chosen)
    return fail(llvm::toString(chosen.takeError())), failure();
  if (report)
    llvm::outs() << "\n";
  else if (p.plan == "auto")
    llvm::errs() << "moe-compile: " << describeChoice(*chosen, p.cluster)
                 << "\n";
  if (p.plan == "auto" && chosen->pp > 1)
    p.microbatches = chosen->microbatches;
  if (p.plan == "auto" && chosen->overlap)
    o.pipeline.overlapChunks = chosen->chunks;
  p.plan = chosen->str();
  return success();
}

/// The whole model with `plan` attached: a config through the importer, or
/// the .mlir module in `buffer`. Null after an error.
OwningOpRef<ModuleOp> Compiler::load(std::unique_ptr<llvm::MemoryBuffer> buffer,
                                     PlanAttr plan) {
  if (config) {
    auto model = importModelForPlan(&context, *config, o.batch, o.seqLen,
                                    o.maxSeqLen, plan, o.planner.microbatches);
    if (!model)
      return fail(llvm::toString(model.takeError())), nullptr;
    return std::move(*model);
  }
  if (o.planner.microbatches || o.maxSeqLen)
    return fail(std::string(o.planner.microbatches ? "--microbatches"
                                                   : "--max-seq-len") +
                " applies to model configs (the importer builds the "
                "programs it shapes)"),
           nullptr;
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (module && plan && failed(attachPlan(*module, plan)))
    return fail("--plan \"" + o.planner.plan + "\" does not fit '" + o.input +
                "'"),
           nullptr;
  return module; // null: the parser printed the diagnostic
}

LogicalResult
Compiler::runPasses(ModuleOp module, StringRef stage,
                    function_ref<LogicalResult(PassManager &)> build) {
  TimingScope stageTiming = timing.nest(stage);
  PassManager pm(&context);
  if (failed(applyPassManagerCLOptions(pm)) || failed(build(pm)))
    return failure();
  pm.enableTiming(stageTiming);
  return pm.run(module);
}

int Compiler::run() {
  if (o.pipeline.cuda && !o.pipeline.cudaOptions.emulateOnHost &&
      o.emit == EmitKind::Executable &&
      !llvm::sys::fs::exists(o.host.runtimeLibDir + "/libmoert_cuda.so"))
    return fail("this build has no CUDA runtime (libmoert_cuda: the CUDA "
                "toolkit with cuBLAS and NCCL was not found at configure "
                "time); --emit=ptx, lowered-mlir, llvm and obj still work");
  // The input: a model config or an .mlir module.
  bool isConfig = StringRef(o.input).ends_with(".json");
  bool planner = o.planner.plan == "auto" || !o.planner.cluster.empty();
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  if (auto read = llvm::MemoryBuffer::getFileOrSTDIN(o.input))
    buffer = std::move(*read);
  else
    error = "cannot read '" + o.input + "': " + read.getError().message();
  if (isConfig || planner) {
    if (!isConfig)
      return fail("the planner (--plan auto, --cluster) reads a model config "
                  "(config.json); for an .mlir module use moe-opt "
                  "--moe-plan");
    if (!buffer)
      return fail(error);
    llvm::Expected<ModelConfig> parsed = parseModelConfig(buffer->getBuffer());
    if (!parsed)
      return fail(o.input + ": " + llvm::toString(parsed.takeError()));
    config = std::move(*parsed);
  }

  // The plan: given, or chosen by the planner for a cluster.
  if (planner && failed(choosePlan()))
    return 1;
  PlanAttr plan;
  if (!o.planner.plan.empty() &&
      !(plan = PlanAttr::parseOption(&context, o.planner.plan, error)))
    return fail("--plan \"" + o.planner.plan + "\": " + error);
  if (o.explainPlan) {
    plan = plan ? plan : PlanAttr::getDegrees(&context, 1, 1, 1, 1, 1);
    if (o.explainFormat == "json")
      writePlanJson(plan, llvm::outs());
    else if (o.explainFormat == "manifest")
      llvm::outs() << getLayoutManifestLines(plan);
    else
      explainPlan(plan, llvm::outs());
    return 0;
  }

  // The whole model, with its plan.
  OwningOpRef<ModuleOp> module;
  {
    TimingScope importTiming = timing.nest("import");
    if (!buffer)
      return fail(error);
    module = load(std::move(buffer), plan);
    if (!module)
      return 1;
  }
  auto print = [&](llvm::raw_ostream &os) { module->print(os); };
  if (o.emit == EmitKind::Mlir)
    return write(print);
  if (o.emit == EmitKind::Executable &&
      !(*module)->hasAttr(MoEDialect::getManifestAttrName()))
    return fail("'" + o.input +
                "' has no moe.manifest attribute: executables are built from "
                "a model config (config.json), which defines the weights");

  // moe-compile-pipeline: the rank's program, then the target's pipeline.
  if (failed(runPasses(*module, "partition", [&](PassManager &pm) {
        buildMoEPartitionPipeline(pm, o.pipeline);
        return success();
      })))
    return fail("partitioning '" + o.input + "' for the plan failed");
  if (o.emit == EmitKind::PartitionedMlir)
    return write(print);
  if (failed(runPasses(*module, "pipeline", [&](PassManager &pm) {
        return buildMoETargetPipeline(pm, o.pipeline, error);
      })))
    return fail(llvm::Twine("the ") + (o.pipeline.cuda ? "cuda" : "cpu") +
                " pipeline failed on '" + o.input + "'" +
                (error.empty() ? "" : ": " + error));
  if (o.emit == EmitKind::LoweredMlir)
    return write(print);
  if (o.emit == EmitKind::Ptx)
    return write([&](llvm::raw_ostream &os) {
      // Each kernel module's object holds its PTX (format isa).
      for (auto binary : module->getOps<gpu::BinaryOp>())
        for (Attribute attr : binary.getObjects())
          if (auto object = dyn_cast<gpu::ObjectAttr>(attr))
            os << "// kernel module @" << binary.getSymName() << "\n"
               << object.getObject().getValue() << "\n";
    });

  // The host code: LLVM IR, an object, or the executable.
  using Kind = HostCodeOptions::Kind;
  o.host.kind = o.emit == EmitKind::LlvmIr   ? Kind::LlvmIr
                : o.emit == EmitKind::Object ? Kind::Object
                                             : Kind::Executable;
  o.host.outputPath = o.output;
  o.host.runtimeLib = o.pipeline.cuda && !o.pipeline.cudaOptions.emulateOnHost
                          ? "moert_cuda"
                          : "moert";
  if (failed(emitHostCode(*module, o.host, timing, error)))
    return fail(error);
  return 0;
}

} // namespace

void mlir::moe::registerCompileModelDialects(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  registry.insert<MoEDialect>();
  registerShardingInterfaceExternalModels(registry);
}

int mlir::moe::compileModel(MLIRContext &context, CompileModelOptions options,
                            TimingScope &timing) {
  return Compiler(context, options, timing).run();
}
