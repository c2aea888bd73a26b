//===- MoEBase.td - moe dialect, enums and attributes ------*- tablegen -*-===//
//
// The moe dialect: Mixture-of-Experts routing, dispatch/combine, grouped
// expert compute, and the parallelization plan attribute.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"
include "mlir/IR/BuiltinTypes.td"

//===----------------------------------------------------------------------===//
// Dialect
//===----------------------------------------------------------------------===//

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts routing, dispatch, expert compute and plans.";
  let description = [{
    The `moe` dialect holds what a Mixture-of-Experts (MoE) model needs and
    upstream MLIR lacks: token routing (`moe.router`), dispatch into
    fixed-capacity expert buffers with deterministic drop semantics
    (`moe.dispatch`), grouped expert feed-forward compute (`moe.experts`),
    the weighted combine back to token order (`moe.combine`), the composite
    `moe.layer` that model graphs use, and the `#moe.plan` attribute that
    records a parallelization plan (data, tensor, expert, expert-tensor and
    pipeline parallel degrees plus a per-layer dispatch strategy).

    Everything else (matrix products, norms, attention) is expressed with
    upstream dialects (`linalg`, `tensor`, `arith`, `math`), and sharding with
    upstream `shard`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Name of the discardable attribute that carries a `#moe.plan`.
    static constexpr ::llvm::StringLiteral getPlanAttrName() {
      return ::llvm::StringLiteral("moe.plan");
    }
    /// Name of the discardable attribute that carries the #moe.manifest of
    /// an imported model.
    static constexpr ::llvm::StringLiteral getManifestAttrName() {
      return ::llvm::StringLiteral("moe.manifest");
    }
    /// On the moe.dispatch of a partitioned layer: the layer's position in
    /// program order (which `dispatch`/`dedup` entry of the plan applies).
    static constexpr ::llvm::StringLiteral getLayerIndexAttrName() {
      return ::llvm::StringLiteral("moe.layer_index");
    }
    /// On each op of a whole model's decoder layer: the layer's index (what
    /// moe-pipeline places on stages; moe-partition carries it to the ops it
    /// builds for the layer).
    static constexpr ::llvm::StringLiteral getDecoderLayerAttrName() {
      return ::llvm::StringLiteral("moe.decoder_layer");
    }
    /// Beside moe.decoder_layer: which part of the layer an op belongs to,
    /// 0 for its attention (with the input norm), 1 for its feed-forward
    /// block (with the post-attention norm); moe-trace-layers marks both.
    static constexpr ::llvm::StringLiteral getOpGroupAttrName() {
      return ::llvm::StringLiteral("moe.op_group");
    }
    /// On a whole model built for one microbatch of a pipeline: how many
    /// microbatches the compiled program runs (moe-pipeline's loop).
    static constexpr ::llvm::StringLiteral getMicrobatchesAttrName() {
      return ::llvm::StringLiteral("moe.microbatches");
    }
    /// On the moe.dispatch of a partitioned layer: the `@moe_dense` axes its
    /// tokens were split over (dim 0); they are replicated over the others.
    /// What moe-slice-allreduce and moe-dedup-tokens prove legality from.
    static constexpr ::llvm::StringLiteral getTokensSplitAttrName() {
      return ::llvm::StringLiteral("moe.tokens_split");
    }
    /// Unit attribute on a matrix product (the router's logits) that must be
    /// computed in f32 whatever faster mode the runtime's products use:
    /// rounding router inputs flips routing decisions.
    static constexpr ::llvm::StringLiteral getExactProductAttrName() {
      return ::llvm::StringLiteral("moe.exact_product");
    }
  }];
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def MoE_ScoreFunction : I32EnumAttr<"ScoreFunction",
    "function turning router logits into expert scores", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_ScoreFunctionAttr
    : EnumAttr<MoE_Dialect, MoE_ScoreFunction, "score_function"> {
  let assemblyFormat = "$value";
}

def MoE_Activation : I32EnumAttr<"Activation",
    "expert feed-forward activation", [
      I32EnumAttrCase<"silu_glu", 0>,
      I32EnumAttrCase<"gelu", 1>,
      I32EnumAttrCase<"relu", 2>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_ActivationAttr : EnumAttr<MoE_Dialect, MoE_Activation, "activation"> {
  let assemblyFormat = "$value";
}

def MoE_DispatchStrategy : I32EnumAttr<"DispatchStrategy",
    "how tokens reach the ranks that hold their experts", [
      I32EnumAttrCase<"a2a", 0>,
      I32EnumAttrCase<"slice_allreduce", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_DispatchStrategyAttr
    : EnumAttr<MoE_Dialect, MoE_DispatchStrategy, "dispatch_strategy"> {
  let assemblyFormat = "$value";
}

def MoE_WeightSplit : I32EnumAttr<"WeightSplit",
    "which part of a weight a rank loads", [
      I32EnumAttrCase<"whole", 0>,
      I32EnumAttrCase<"tp", 1>,
      I32EnumAttrCase<"etp", 2>,
      I32EnumAttrCase<"experts", 3>,
      I32EnumAttrCase<"experts_etp", 4>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

class MoE_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoE_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def MoE_PlanAttr : MoE_Attr<"Plan", "plan"> {
  let summary = "parallelization plan of an MoE model";
  let description = [{
    A plan assigns the ranks of a world of `dp * tp * pp` ranks to parallel
    groups:

    - `dp`: data parallel degree (tokens split over it);
    - `tp`: tensor parallel degree of the dense backbone (Megatron style);
    - `pp`: pipeline parallel degree (layers split over it);
    - `ep`: expert parallel degree, carved out of the `dp * tp` ranks of one
      pipeline stage, so `ep` must divide `dp * tp`;
    - `etp`: expert tensor parallel degree (each expert sliced over it),
      carved out of the tensor parallel group, so `etp` must divide `tp`;
    - `dispatch`: the dispatch strategy, either one for every MoE layer or a
      list with one entry per `moe.layer` of the module, in program order:
      `a2a` (all-to-all over the ep group, the baseline) or
      `slice_allreduce` (PPMoE: local index slicing and one all-reduce,
      `moe-slice-allreduce`);
    - `dedup`: 1 to drop the tensor-parallel duplicates of the tokens around
      the all-to-all (DeepSpeed-TED, `moe-dedup-tokens`), 0 not to; one
      value for every layer or a list with one per `moe.layer`.

    Keys may appear in any order; a missing degree is 1 and a missing
    `dispatch` is `a2a`, a missing `dedup` is 0. An optional `world` states the world size the plan
    is meant for and must equal `dp * tp * pp`.

    When the attribute is attached to an operation as `moe.plan`, the dialect
    also checks it against the MoE ops nested in that operation: `ep` must
    divide the number of experts of every `moe.layer` and `moe.router` (the
    ops that see the model's whole expert set, before and after
    partitioning), and a per-layer `dispatch` list must have one entry per
    `moe.layer`.

    **Constraints:**
    - every degree is >= 1 (`moe_plan_c1`);
    - `world`, when given, equals `dp * tp * pp` (`moe_plan_c2`);
    - `ep` divides `dp * tp` (`moe_plan_c3`);
    - `etp` divides `tp` (`moe_plan_c4`);
    - `ep * etp` divides `dp * tp` (`moe_plan_c8`);
    - the `dispatch` list is not empty (`moe_plan_c5`);
    - the `dedup` list is not empty and holds only 0 and 1 (`moe_plan_c9`);
    - no layer has both `dispatch = slice_allreduce` and `dedup = 1`
      (`moe_plan_c10`);
    - attached as `moe.plan`: `ep` divides every expert count
      (`moe_plan_c6`), a per-layer `dispatch` or `dedup` list has one entry per
      `moe.layer` (`moe_plan_c7`).

    Example:

    ```mlir
    module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 4>} {}
    ```
  }];
  let parameters = (ins
    "int64_t":$dp,
    "int64_t":$tp,
    "int64_t":$ep,
    "int64_t":$etp,
    "int64_t":$pp,
    ArrayRefParameter<"::mlir::moe::DispatchStrategy",
                      "dispatch strategy per layer (one entry: all layers)">:$dispatch,
    ArrayRefParameter<"int64_t",
                      "dedup (0 or 1) per layer (one entry: all layers)">:$dedup
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Number of ranks the plan spans: dp * tp * pp.
    int64_t getWorldSize() const { return getDp() * getTp() * getPp(); }
    /// Dispatch strategy of the `layer`-th moe.layer in program order.
    ::mlir::moe::DispatchStrategy getDispatchForLayer(unsigned layer) const;
    /// Whether the `layer`-th moe.layer drops duplicate tokens (dedup).
    bool getDedupForLayer(unsigned layer) const;
    /// The plan with these degrees, a2a dispatch and no dedup.
    static PlanAttr getDegrees(::mlir::MLIRContext *ctx, int64_t dp,
                               int64_t tp, int64_t ep, int64_t etp,
                               int64_t pp);
    /// The plan's degrees (PlanFacts.h: checks, rank layout, grids).
    ::mlir::moe::PlanDegrees getPlanDegrees() const {
      return {getDp(), getTp(), getEp(), getEtp(), getPp()};
    }
    /// Parses the command-line form of a plan, "dp=2,tp=2,ep=4" or
    /// "tp=2,ep=2,dispatch=[a2a,slice_allreduce]": `key=value` entries
    /// separated by commas outside brackets, the keys and values of the
    /// attribute's own syntax (the one parser of plans). On failure returns
    /// null and sets `error` to the reason.
    static PlanAttr parseOption(::mlir::MLIRContext *ctx,
                                ::llvm::StringRef text, std::string &error);
  }];
}


// A list of sizes written in brackets, `[32, 64]` (a plain ArrayRefParameter
// has no delimiters, which struct() cannot tell from its own commas).
def MoE_BracketedSizes : ArrayRefParameter<"int64_t", "sizes"> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::SmallVector<int64_t>> {
    ::llvm::SmallVector<int64_t> sizes;
    if ($_parser.parseCommaSeparatedList(
            ::mlir::AsmParser::Delimiter::Square,
            [&] { return $_parser.parseInteger(sizes.emplace_back()); }))
      return ::mlir::failure();
    return sizes;
  }() }];
  let printer = [{
    $_printer << '[';
    ::llvm::interleaveComma($_self, $_printer);
    $_printer << ']';
  }];
}

def MoE_WeightAttr : MoE_Attr<"Weight", "weight"> {
  let summary = "one checkpoint tensor a rank loads into its weight buffer";
  let description = [{
    An entry of a `#moe.manifest`: the checkpoint tensor `name` goes to the
    rank's weight buffer (a flat array of f32) at element `offset`, with
    this rank's `shape`. A name with `{}` stands for `count` tensors, the
    `{}` replaced by the expert index, stored one after the other
    (`moe-pack-weights` stacks an expert weight so). A name may also hold a
    pipeline's `{stage*K+J}` hole, which the runtime fills with its stage.

    `split` says which part of the checkpoint tensor the rank loads:
    - `whole`: all of it (the default);
    - `tp`, `etp`: block `r` of dimension `dim` (of each of the `count`
      tensors), `r` the rank's position in its tensor or expert-tensor
      parallel group; `shape` is the block's;
    - `experts`: the experts `ep_rank * count ..`, each whole;
    - `experts_etp`: both.
    With `stage`, only the ranks of that pipeline stage load it.

    **Constraints:** `offset >= 0`; `count >= 1`; a non-empty `shape` of
    positive sizes; `dim` given exactly for `tp`, `etp` and `experts_etp`,
    and a dimension of `shape`; `stage >= 0`.

    Example:

    ```mlir
    #moe.weight<"model.layers.0.block_sparse_moe.experts.{}.w1.weight",
                offset = 8192, shape = [32, 64], count = 2,
                split = experts_etp, dim = 0>
    ```
  }];
  let parameters = (ins
    StringRefParameter<"checkpoint tensor name">:$name,
    "int64_t":$offset,
    MoE_BracketedSizes:$shape,
    DefaultValuedParameter<"int64_t", "1", "tensors stored from offset">:$count,
    DefaultValuedParameter<"::mlir::moe::WeightSplit",
                           "::mlir::moe::WeightSplit::whole",
                           "the part a rank loads">:$split,
    OptionalParameter<"std::optional<int64_t>", "the sliced dimension">:$dim,
    OptionalParameter<"std::optional<int64_t>", "the only pipeline stage that loads it">:$stage
  );
  let assemblyFormat = [{
    `<` $name `,` struct($offset, $shape, $count, $split, $dim, $stage) `>`
  }];
  let genVerifyDecl = 1;
}

def MoE_ManifestAttr : MoE_Attr<"Manifest", "manifest"> {
  let summary = "what a compiled model's runtime needs to know of it";
  let description = [{
    Attached to an imported model's module as `moe.manifest`: the model's
    architecture and sizes (from the importer), the pipeline's microbatches
    (`moe-pipeline`), and the rank's weight buffer: its size in f32
    elements (`blob`) and the `#moe.weight` tensors that fill it
    (`moe-pack-weights`, derived from the partitioned function's argument
    types and shardings). `convert-moe-manifest-to-llvm` writes it, with
    the plan's rank layout, as the text the runtime reads
    (`runtime/include/moert/model.h`).

    `batch` is the global batch (each rank computes `batch / dp`
    sequences), `seq` the prompt length, `max_seq` the key/value cache
    length of a generation build (0: a forward build), `tied` whether the
    logits reuse the embedding.

    **Constraints:** `batch`, `seq`, `hidden` and `vocab` are >= 1,
    `max_seq` is 0 or > `seq`, `microbatches >= 1`, `blob >= 0`; every
    entry of `weights` is a `#moe.weight` that fits in the blob.

    Example:

    ```mlir
    module attributes {moe.manifest = #moe.manifest<
        arch = "MixtralForCausalLM", batch = 2, seq = 8, hidden = 64,
        vocab = 128, blob = 8256,
        weights = [#moe.weight<"model.embed_tokens.weight", offset = 0,
                               shape = [128, 64]>,
                   #moe.weight<"model.norm.weight", offset = 8192,
                               shape = [64]>]>} {}
    ```
  }];
  let parameters = (ins
    StringRefParameter<"Hugging Face architecture name">:$arch,
    "int64_t":$batch,
    "int64_t":$seq,
    "int64_t":$hidden,
    "int64_t":$vocab,
    DefaultValuedParameter<"bool", "false", "logits reuse the embedding">:$tied,
    DefaultValuedParameter<"int64_t", "0", "key/value cache length">:$max_seq,
    DefaultValuedParameter<"int64_t", "1", "pipeline microbatches">:$microbatches,
    DefaultValuedParameter<"int64_t", "0", "weight buffer elements">:$blob,
    DefaultValuedParameter<"::mlir::ArrayAttr", "::mlir::ArrayAttr()",
                           "the #moe.weight entries">:$weights
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The #moe.weight entries.
    ::llvm::SmallVector<WeightAttr> getWeightList() const;
    /// This manifest with other fields replaced.
    ManifestAttr withMicrobatches(int64_t microbatches) const;
    ManifestAttr withWeights(int64_t blob, ::mlir::ArrayAttr weights) const;
  }];
}

//===----------------------------------------------------------------------===//
// Op base classes
//===----------------------------------------------------------------------===//

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

def MoE_FutureType : TypeDef<MoE_Dialect, "Future"> {
  let mnemonic = "future";
  let summary = "the result of a collective that is in flight";
  let description = [{
    What `moe.async_start` returns and `moe.async_wait` turns into the
    collective's result, a ranked tensor of type `valueType`:

    ```mlir
    !moe.future<tensor<4x8x64xf32>>
    ```
  }];
  let parameters = (ins "::mlir::RankedTensorType":$valueType);
  let assemblyFormat = "`<` $valueType `>`";
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
