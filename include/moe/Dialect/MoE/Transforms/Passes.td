//===- Passes.td - moe dialect transformation passes -------*- tablegen -*-===//
//
// File organization: passes are grouped under banner comments by stage of the
// pipeline, alphabetical within a group. Every def ends in `Pass`, sets no
// constructor, and carries a before/after example in its description.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// Decomposition
//===----------------------------------------------------------------------===//

def MoEDecomposePass : Pass<"moe-decompose"> {
  let summary = "Expand moe.layer into router, dispatch, experts and combine";
  let description = [{
    Rewrites every `moe.layer` into the ops it stands for, so that later
    passes (sharding, the PPMoE and TED rewrites, lowering) see routing,
    dispatch, expert compute and combine as separate steps. The capacity of
    the dispatch is the layer's `capacity`, or the token count for a dropless
    layer (which then needs a static token count; otherwise the pass fails
    with a diagnostic on the layer).

    Shared experts become a `moe.experts` with one expert over all tokens
    (`tensor.expand_shape` / `tensor.collapse_shape` around it), and the
    optional shared-expert gate a `linalg.generic` computing
    `sigmoid(x · gᵀ)` that scales the shared output before it is added.

    Before:

    ```mlir
    %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
    ```

    After:

    ```mlir
    %w, %ids = moe.router %x weight %wr k = 2 score = softmax renormalize
        : (tensor<8x16xf32>, tensor<4x16xf32>)
        -> (tensor<8x2xf32>, tensor<8x2xi32>)
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless
        : (tensor<8x16xf32>, tensor<8x2xi32>)
        -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %out = moe.experts %buf counts %counts gate %w1 up %w3 down %w2
        activation = silu_glu
        : (tensor<4x8x16xf32>, tensor<4xi32>, tensor<4x32x16xf32>,
           tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x8x16xf32>
    %y = moe.combine %out slots %slots experts %ids weights %w
        : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>,
           tensor<8x2xf32>) -> tensor<8x16xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect"
  ];
}

//===----------------------------------------------------------------------===//
// Partitioning
//===----------------------------------------------------------------------===//

def MoEPartitionPass : Pass<"moe-partition", "ModuleOp"> {
  let summary = "Partition a sharded module into the per-rank SPMD program";
  let description = [{
    Turns a module annotated by `moe-shard` (global tensor types plus
    `shard.shard` annotations) into the program one rank runs: every value
    gets its local type and communication becomes explicit `shard`
    collectives on the plan's grids (docs/Parallelism.md).

    - `moe.layer` is partitioned by its own rule, exposed through upstream's
      `ShardingInterface` (`partition`): with the a2a baseline the rank
      routes its tokens, dispatches, exchanges the expert rows with an
      `all_to_all` over the ep group, runs its experts, sends the rows back
      and combines; capacity layers gather the dp group's tokens so the drop
      decision is the single-rank one; expert-tensor slices are summed by an
      `all_reduce` over the etp group. Router logits are computed the same
      way on every rank from the replicated router weight.
    - A change of sharding between a value and its annotated use becomes
      `shard.all_slice` (replicated to split: a local slice) or
      `shard.all_gather` (split to replicated).
    - Function arguments annotated by a `shard.shard` take their local type;
      the function's results take the type of what they return.
    - A `linalg` op on tensors splits the loops its split operands index
      (a map result `d` or `d floordiv c`, the grouped-query attention
      form); the other operands are sliced to match, inits built from
      `tensor.empty` / `linalg.fill` are built again at the local size,
      results take the splits of their loops, and a body that reads
      `linalg.index` of a split loop gets the rank's offset added. A split
      reduction loop (Megatron's row-parallel product) leaves partial sums,
      completed by a `shard.all_reduce` over its axes; that needs an
      addition into a zero-filled result. A body reading a split value from
      outside the op, an operand indexed by another function of a split
      loop, and a loop split two ways are errors.
    - `tensor.expand_shape` / `tensor.collapse_shape` keep a split on the
      outermost dimension of each group (a split inner dimension cannot be
      collapsed: an error).
    - `tensor.extract_slice` / `tensor.insert_slice` with static offsets and
      unit strides keep the splits of the dimensions they take whole (a
      layer of a decode step's cache; a prefill's stack of every layer's
      keys, an insert into a `tensor.empty` built again at the local size);
      taking part of a split dimension is an error.
    - A split function argument records its sharding as a `moe.sharding`
      argument attribute (for `moe-pack-weights`).
    - Other ops are cloned: elementwise ops (`arith.addf`, ...) on operands
      of one sharding keep it; ops on replicated operands stay replicated.
      Anything else with a sharded operand is an error naming the op.

    Upstream's `shard-partition` is not used for the function itself: in
    MLIR 22 it crashes on values without annotations and on some annotated
    `linalg` ops, and a compiler must diagnose, not crash. `moe.layer`'s rule
    uses the upstream `ShardingInterface`; the linalg rule is this pass's
    own (upstream's linalg sharding model has no floordiv maps, index
    offsets or zero-init check).

    Before (`moe-shard` on `#moe.plan<dp = 2, ep = 2>`):

    ```mlir
    %s = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %s : tensor<16x64xf32>
    ...
    %xu = shard.shard %xs to %s annotate_for_users : tensor<16x64xf32>
    %y = moe.layer %xu router %ru experts(up %uu down %du gate %gu) ...
    %ys = shard.shard %y to %s : tensor<16x64xf32>
    ```

    After (per rank: 8 tokens, 4 of the 8 experts):

    ```mlir
    func.func @forward(%x: tensor<8x64xf32>, %r: tensor<8x64xf32>,
                       %up: tensor<4x128x64xf32>, ...) -> tensor<8x64xf32>
    %w, %ids = moe.router %x weight %r k = 2 ...
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless ...
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2]
        split_axis = 0 concat_axis = 1
        : tensor<8x8x64xf32> -> tensor<4x16x64xf32>
    %out = moe.experts %in gate %gate up %up down %down ...
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2]
        split_axis = 1 concat_axis = 0
        : tensor<4x16x64xf32> -> tensor<8x8x64xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w ...
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::shard::ShardDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEToSpmdPass : Pass<"moe-to-spmd", "ModuleOp"> {
  let summary = "Turn a model into the per-rank program its #moe.plan asks "
                "for";
  let description = [{
    The partitioning half of `moe-compile`, as one pass that reads the
    module and runs, as a dynamic pipeline, the passes that apply:

    1. a whole model under a plan of more than one rank: `moe-shard` (no
       grids yet) and `moe-partition` (no grids, or `shard.shard`
       annotations to resolve). A module with grids and no annotations is
       taken as partitioned already;
    2. the plan's communication rewrites, strict, for the layers whose plan
       entry asks for them: `moe-slice-allreduce` (`dispatch =
       slice_allreduce`) and `moe-dedup-tokens` (`dedup = 1`), on what it
       partitioned;
    3. with `pp > 1`, `moe-pipeline`: the layers on stages, the microbatch
       loop;
    4. `moe-pack-weights`: the weight arguments into the runtime's buffer
       and manifest (a no-op without weight arguments);
    5. with `overlap` non-empty, `moe-overlap{collectives=...
       chunks=overlap-chunks}` on the rank's program, without remarks;
    6. with `trace-layers`, `moe-trace-layers`.

    The `moe.decoder_layer` tags are removed at the end (moe-pipeline
    consumed them). So `moe-opt --moe-to-spmd` on `moe-compile --emit=mlir` output gives the
    program `moe-compile --emit=partitioned-mlir` prints. A module without a
    plan is only packed.

    Before: `moe-compile cfg.json --plan dp=2,tp=2,ep=4 --emit=mlir` (the
    whole model, each weight an argument, `moe.plan` attached). After: the
    rank's program `forward(ids: [B/2, S], blob)`, with its collectives.
  }];
  let options = [
    ListOption<"overlap", "overlap", "std::string",
               "The collectives moe-overlap makes asynchronous (default: "
               "none)">,
    Option<"overlapChunks", "overlap-chunks", "int64_t", /*default=*/"1",
           "moe-overlap's chunks">,
    Option<"traceLayers", "trace-layers", "bool", /*default=*/"false",
           "Run moe-trace-layers last (the runtime's --trace then shows "
           "each layer)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::shard::ShardDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEPipelinePass : Pass<"moe-pipeline", "ModuleOp"> {
  let summary = "Place a partitioned model's layers on pipeline stages and "
                "run its microbatches through them";
  let description = [{
    For a module whose `#moe.plan` has `pp > 1`, after `moe-partition`: the
    function is the rank's program for one microbatch (the importer builds
    the model of one microbatch, `moe.microbatches` module attribute, and
    tags each decoder layer's ops with `moe.decoder_layer`). With `L` layers
    and `K = L / pp`, every stage runs the same program (SPMD):

    - a loop over the microbatches of the rank's sequences;
    - stage 0 runs the ops before the first layer (the embedding), the
      others receive the hidden states from the previous stage
      (`shard.recv` over `@moe_dense` axis 0);
    - the program of layers `0 .. K-1`, whose weights stage `s` reads as
      checkpoint layers `s * K + j` (the argument's `moe.weight` becomes
      `model.layers.{stage*K+j}....`, which the runtime resolves);
    - the last stage runs the ops after the last layer (the final norm), the
      others send their hidden states on (`shard.send`);
    - the microbatch's output goes into the result.

    The weights of layers `K ..` are dropped; those of the embedding and the
    norm are marked `moe.stage` (only that stage loads them). Layers of
    different structure (other weight types) cannot share a stage program:
    an error. A value of one layer used past the next, or ops between layers
    that belong to none, are errors naming the op. A plan with `pp = 1`
    leaves the module as it is.

    A generation program (`moe-compile --max-seq-len`) also returns stacks of
    its layers' keys and values (a `tensor.empty [L, ...]` and one
    `tensor.insert_slice` per layer at the layer's offset): each stage
    returns the stack of its own `K` layers, the microbatches' put along the
    rows. Its arguments with a row per sequence — role `"batch"` (ids, a
    decode step's positions) and `"kv-cache"` (rows second; only the stage's
    `K` layers) — take every microbatch's rows, and each microbatch reads its
    own. Any other further result is an error.

    Before (pp = 2, one rank's program for one microbatch, 2 layers):

    ```mlir
    func.func @forward(%ids: tensor<1x8xi64>, %emb: ..., %l0: ... {moe.weight =
        "model.layers.0.input_layernorm.weight"}, %l1: ..., %norm: ...)
    %x = linalg.generic ... // embed
    %y = ... {moe.decoder_layer = 0}
    %z = ... {moe.decoder_layer = 1}
    %o = ... // norm
    ```

    After:

    ```mlir
    func.func @forward(%ids: tensor<2x8xi64>, %emb: ... {moe.stage = 0},
        %l0: ... {moe.weight = "model.layers.{stage*1+0}.input_layernorm.weight"},
        %norm: ... {moe.stage = 1})
    %stage = shard.process_multi_index on @moe_dense axes = [0] : index
    scf.for %mb = ... iter_args(%acc = ...) {
      %x = scf.if %first { embed } else { shard.recv ... }
      ... layer 0 ...
      %out = scf.if %last { norm } else { shard.send ...; zeros }
      tensor.insert_slice %out into %acc ...
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::shard::ShardDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEShardPass : Pass<"moe-shard", "ModuleOp"> {
  let summary = "Annotate a model with the shardings of its #moe.plan";
  let description = [{
    Reads the module's `#moe.plan`, creates its grids (`@moe_dense`:
    pp x dp x tp, `@moe_experts`: pp x dp*tp/(ep*etp) x ep x etp; existing
    grids must have these shapes) and annotates, with upstream `shard.shard`
    ops, what the plan decides; `moe-partition` derives every other value's
    sharding from these through each op's rule.

    Function arguments by their `moe.parallel` role (the importer marks
    them; the role is the model's structure, the split is the plan's):

    - `"batch"`: dim 0 over dp (`@moe_dense` axis 1): the token ids;
    - `"column"`: a column-parallel (Megatron) weight or bias, dim 0 (its
      output features) over tp (`@moe_dense` axis 2): `q_proj`, `k_proj`,
      `v_proj`, so each rank computes whole heads;
    - `"row"`: a row-parallel weight, dim 1 (its input features) over tp:
      `o_proj`, whose partial products `moe-partition` sums with an
      all_reduce over tp;
    - `"kv-cache"`: a decode step's key or value cache
      `[layers, sequences, positions, kv heads, head dim]`: dim 1 over dp
      and dim 3 over tp, so each rank caches its sequences' kv heads.

    Arguments without a role are replicated (embedding, norms), unless a
    layer claims them. Every `moe.layer` in a function body:

    - tokens and the layer's result: split along dim 0 over dp
      (`@moe_dense` axis 1), replicated over tp;
    - the router weight and bias and the shared-expert gate: replicated;
    - stacked expert weights: dim 0 (experts) over ep (`@moe_experts`
      axis 2), and the FFN width (rows of up/gate, columns of down) over
      etp (axis 3); the shared expert's width over etp too.

    Axes of size 1 are left out. A function argument that feeds a layer is
    itself annotated, so after `moe-partition` the rank receives only its
    part (its experts, its tokens); with `keep-signature` arguments stay
    whole (each rank slices them) and returned values are gathered, so the
    partitioned function has the unpartitioned one's signature — what the
    equivalence tests call side by side.

    Layers whose operands are already annotated are left as they are.

    Before:

    ```mlir
    module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
      func.func @forward(%x: tensor<16x64xf32>, %r: tensor<8x64xf32>, ...) {
        %y = moe.layer %x router %r experts(up %u down %d gate %g) ...
    ```

    After:

    ```mlir
    shard.grid @moe_dense(shape = 1x2x1)
    shard.grid @moe_experts(shape = 1x1x2x1)
    func.func @forward(%x: tensor<16x64xf32>, %r: tensor<8x64xf32>, ...) {
      %s = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
      %xs = shard.shard %x to %s : tensor<16x64xf32>
      ...
      %xu = shard.shard %xs to %s annotate_for_users : tensor<16x64xf32>
      %y = moe.layer %xu router %ru experts(up %uu down %du gate %gu) ...
      %ys = shard.shard %y to %s : tensor<16x64xf32>
    ```
  }];
  let options = [
    Option<"keepSignature", "keep-signature", "bool", /*default=*/"false",
           "Leave function arguments and results whole (replicated): ranks "
           "slice their part on entry and gather results on exit">
  ];
  let dependentDialects = [
    "::mlir::moe::MoEDialect",
    "::mlir::shard::ShardDialect"
  ];
}

def MoEPackWeightsPass : Pass<"moe-pack-weights", "ModuleOp"> {
  let summary = "Pack a model's weight arguments into the one buffer the "
                "runtime fills, and list them in the manifest";
  let description = [{
    A model imported from a config takes each checkpoint tensor as its own
    function argument, named by a `moe.weight` argument attribute (the
    Hugging Face name; `{}` stands for the expert index of a stacked
    `[experts, ...]` argument). After `moe-partition` an argument has this
    rank's type and, when it is split, a `moe.sharding` attribute saying how
    its part was cut. This pass replaces the weight arguments of every
    function by views of one flat f32 buffer appended as the last argument
    (the executable's ABI: `forward(ids, blob)`), and records in the
    module's `#moe.manifest` the buffer's size (`blob`) and one `#moe.weight`
    per weight that tells the runtime what to read into it: its offset, this
    rank's shape, and the part it loads, derived from the sharding:

    | `moe.sharding` of the argument | `#moe.weight` |
    |---|---|
    | none (replicated) | `split = whole` (not printed) |
    | `@moe_dense`, dim d over tp (axis 2) | `split = tp, dim = d` |
    | `@moe_experts`, experts (dim 0) over ep (axis 2) | `split = experts` |
    | `@moe_experts`, dim d over etp (axis 3) | `split = etp, dim = d'` |
    | both | `split = experts_etp, dim = d'` |

    (d' is the dimension inside one expert for stacked arguments.) Any other
    split is an error naming the argument: no rank could load it. A module
    with weight arguments and no manifest is an error too. The functions of
    one module (a generation build's `prefill` and `decode`) share the
    buffer: the manifest lists the weights once, and a function whose list
    differs from the first one's is an error.

    Before:

    ```mlir
    module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1,
                         seq = 4, hidden = 64, vocab = 128>} {
      func.func @forward(%ids: tensor<1x4xi64>,
          %e: tensor<128x64xf32> {moe.weight = "model.embed_tokens.weight"},
          %q: tensor<32x64xf32> {moe.weight = "model.layers.0.self_attn.q_proj.weight",
                                 moe.sharding = {grid = @moe_dense,
                                   split_axes = [array<i16: 2>]}}) ...
    ```

    After:

    ```mlir
    module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1,
        seq = 4, hidden = 64, vocab = 128, blob = 10240, weights = [
        #moe.weight<"model.embed_tokens.weight", offset = 0, shape = [128, 64]>,
        #moe.weight<"model.layers.0.self_attn.q_proj.weight", offset = 8192,
                    shape = [32, 64], split = tp, dim = 0>]>} {
      func.func @forward(%ids: tensor<1x4xi64>, %blob: tensor<10240xf32>) ... {
        %0 = tensor.extract_slice %blob[0] [8192] [1] ...
        %e = tensor.expand_shape %0 [[0, 1]] output_shape [128, 64] ...
    ```
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

//===----------------------------------------------------------------------===//
// Communication rewrites (on the per-rank program)
//===----------------------------------------------------------------------===//

def MoEDedupTokensPass : Pass<"moe-dedup-tokens", "ModuleOp"> {
  let summary = "DeepSpeed-TED: send each token through the expert "
                "all-to-all once per tensor-parallel group";
  let description = [{
    Rewrites the all-to-all form of a dropless MoE layer (as `moe-partition`
    and the importer build it) whose tokens are replicated over the
    tensor-parallel group: each of the `tp` ranks routes and dispatches only
    its `1/tp` slice of the tokens, so the all-to-all moves `1/tp` of the data
    (`(tp-1)/tp` fewer bytes), and an `all_gather` over the tp group after
    the combine gives every rank all rows again.

    With experts sliced over etp (TED's expert tensor parallelism), the
    members of an etp group hold slices of the same experts but now receive
    different tokens: after the all-to-all they all-gather each other's rows
    over the etp group, compute their slice on all of them, and a
    `reduce_scatter` over the etp group sums the slices onto each row's
    owner. The rows are then complete, so the etp `all_reduce` that ended the
    block is removed (the combine must feed it directly).

    Legality comes from the shardings: the dispatch records the `@moe_dense`
    axes its tokens were split over (`moe.tokens_split`); the pass fires only
    when the tp axis (2) is not among them, `tp > 1`, and `tp` divides the
    token count. Elsewhere the IR is unchanged and a remark says why;
    `strict` makes that an error. `layers` limits the pass to the listed
    layer indices (`moe.layer_index`); `moe-compile` passes the layers whose
    plan entry has `dedup = 1`.

    Before (tp = 2, ep = 2, 16 tokens replicated over tp):

    ```mlir
    %w, %ids = moe.router %x weight %r k = 2 ...
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless
        {moe.tokens_split = array<i16>} ...   // tensor<8x16x64xf32>
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2]
        split_axis = 0 concat_axis = 1 ...     // -> tensor<4x32x64xf32>
    %out = moe.experts %in ...
    %back = shard.all_to_all %out ... split_axis = 1 concat_axis = 0 ...
    %y = moe.combine %back slots %slots experts %ids weights %w ...
    ```

    After:

    ```mlir
    %t = shard.process_multi_index on @moe_dense axes = [2] : index
    %xs = tensor.extract_slice %x[%off, 0] [8, 64] [1, 1] ...
    %w, %ids = moe.router %xs weight %r k = 2 ...
    %buf, %slots, %counts = moe.dispatch %xs experts %ids dropless ...
                                               // tensor<8x8x64xf32>
    %in = shard.all_to_all %buf ...            // -> tensor<4x16x64xf32>
    %out = moe.experts %in ...
    %back = shard.all_to_all %out ...
    %ys = moe.combine %back slots %slots experts %ids weights %w ...
    %y = shard.all_gather %ys on @moe_dense grid_axes = [2] gather_axis = 0
        : tensor<8x64xf32> -> tensor<16x64xf32>
    ```
  }];
  let options = [
    Option<"strict", "strict", "bool", /*default=*/"false",
           "Fail where the rewrite does not apply instead of a remark">,
    ListOption<"layers", "layers", "int64_t",
               "Only these layer indices (default: all)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::shard::ShardDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoESliceAllReducePass : Pass<"moe-slice-allreduce", "ModuleOp"> {
  let summary = "PPMoE: replace the expert all-to-alls by local index "
                "slicing and one all-reduce";
  let description = [{
    Rewrites the all-to-all form of a dropless MoE layer whose tokens are
    replicated over the ranks that hold its experts (the expert-parallel
    group lies inside a tensor-parallel group: `ep * etp` divides `tp`, and
    the tokens are not split over tp). Every rank then already has every
    token, so instead of sending rows away it takes the rows routed to its
    own experts out of the dispatch buffer (index slicing), runs its
    experts on them (only the filled rows: the dispatch counts are local
    now), places the result in an otherwise zero buffer, and combines: a
    gate-weighted partial output that is zero for tokens none of its
    experts serve. One `all_reduce` over the ep group sums the partials. No
    all-to-all remains.

    Where the combined output goes straight into the expert-tensor-parallel
    `all_reduce` and `ep * etp = tp`, the two all-reduces become one over
    the tensor-parallel group.

    Legality is read from the shardings recorded on the dispatch
    (`moe.tokens_split`, see moe-dedup-tokens); elsewhere the IR is
    unchanged and a remark says why; `strict` makes it an error. `layers`
    limits the pass to the listed layer indices; `moe-compile` passes the
    layers whose plan entry is `dispatch = slice_allreduce`.

    Before (tp = 2, ep = 2): as in moe-dedup-tokens. After:

    ```mlir
    %w, %ids = moe.router %x weight %r k = 2 ...
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless ...
    %e = shard.process_multi_index on @moe_experts axes = [2] : index
    %mine = tensor.extract_slice %buf[%first, 0, 0] [4, 16, 64] ...
    %n = tensor.extract_slice %counts[%first] [4] [1] ...
    %out = moe.experts %mine counts %n ...
    %full = tensor.insert_slice %out into %zeros[%first, 0, 0] [4, 16, 64] ...
    %part = moe.combine %full slots %slots experts %ids weights %w ...
    %y = shard.all_reduce %part on @moe_experts grid_axes = [2] ...
    ```
  }];
  let options = [
    Option<"strict", "strict", "bool", /*default=*/"false",
           "Fail where the rewrite does not apply instead of a remark">,
    ListOption<"layers", "layers", "int64_t",
               "Only these layer indices (default: all)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::shard::ShardDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// Scheduling (on the per-rank program)
//===----------------------------------------------------------------------===//

def MoETraceLayersPass : Pass<"moe-trace-layers", "ModuleOp"> {
  let summary = "Mark where each decoder layer and its attention and "
                "feed-forward blocks begin, for the runtime's trace";
  let description = [{
    Each op of a whole model's decoder layer carries `moe.decoder_layer`
    and `moe.op_group` (0: the attention, 1: the feed-forward block; the
    importer's tags, which the partitioning passes keep). This pass walks
    every block of a function and of its `scf.for/if/while/execute_region/
    index_switch` ops in program order and, wherever the pair changes,
    inserts a call `moert_trace_layer(L, G)` (two `i32`; G is -1 for an op
    without a group). Untagged ops (constants, what `moe-overlap` built)
    belong to the span running, except those after the block's last tagged
    op (the final norm, the terminator): a mark (-1, -1) before them leaves
    the layers. A loop or branch whose blocks get marks leaves the layers
    when it ends, so the op after it marks its span again. With `EXE --trace FILE` the runtime records the time
    between two marks as a span "layer L" on a "layers" track; without it
    the call returns at once. The marks follow program order, not the
    layers' data: after `moe-overlap`, a dispatch hoisted into the previous
    layer counts there. The call is declared
    `func.func private @moert_trace_layer(i32, i32)`; a module with no tagged
    op is unchanged. A declaration of that name with another type is an
    error.

    `moe-to-spmd{trace-layers=true}` runs it last, before it drops the tags;
    `moe-compile` always asks for it.

    Before:

    ```mlir
    %a = linalg.matmul {moe.decoder_layer = 0 : i64, moe.op_group = 0 : i64} ...
    %b = linalg.matmul {moe.decoder_layer = 0 : i64, moe.op_group = 1 : i64} ...
    return %b
    ```

    After:

    ```mlir
    func.call @moert_trace_layer(%c0_i32, %c0_i32) : (i32, i32) -> ()
    %a = linalg.matmul {moe.decoder_layer = 0 : i64, moe.op_group = 0 : i64} ...
    func.call @moert_trace_layer(%c0_i32, %c1_i32) : (i32, i32) -> ()
    %b = linalg.matmul {moe.decoder_layer = 0 : i64, moe.op_group = 1 : i64} ...
    func.call @moert_trace_layer(%c-1_i32, %c-1_i32) : (i32, i32) -> ()
    return %b
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
}

def MoEOverlapPass : Pass<"moe-overlap", "ModuleOp"> {
  let summary = "Overlap collectives with the compute that does not need "
                "them";
  let description = [{
    Turns each blocking collective of the kinds listed in `collectives`
    (`all-to-all`, `all-reduce`, `all-gather`, `reduce-scatter`) into a
    `moe.async_start` / `moe.async_wait` pair and schedules the pair:

    1. the pure ops that compute its input (a dispatch and its router) move
       up to just after what they read, and the start to just after its
       input;
    2. the wait moves down to just before the first use of the result;
    3. the ops after the wait that do not depend on the result move, in
       order, to just before the wait, so they run while the data travels
       (a Qwen2-MoE layer's shared expert while its routed tokens are
       exchanged; in a ScMoE pair, the dense layer's MLP and the next
       attention);
    4. a pair still without compute in between (a combine right after its
       experts) takes work from the end of the nearest earlier gap of a
       collective moving comparable bytes (its dispatch's), in proportion
       to the bytes the two move, where everything that uses the moved ops
       comes after its wait: the dispatch and the combine are both hidden
       in part rather than one fully. Pairs moving the most bytes choose
       first.

    With `chunks=N` (N > 1), each expert-parallel exchange (a dispatch
    buffer `[E, C, H]`, its all-to-all, `moe.experts` with per-source
    counts, the all-to-all back) is first split into N chunks of `C/N` rows
    of every expert, each with its own exchange and clamped counts, the
    results put back in place (Tutel's overlap degree): chunk i travels
    while chunk i - 1's experts compute. Experts work row by row, so the
    result is unchanged; an exchange whose `C` is not a multiple of N is
    left whole, with a remark.

    Legality comes from SSA dependences and memory effects only: nothing
    moves across an op with memory effects, a start does not move across
    other communication (whose issue order every rank must agree on; a wait
    may), and an op moves above a wait
    only if neither it nor anything it reads depends on the wait. Every
    rank runs the same schedule. A pair with no compute between its start
    and its wait gains nothing and is turned back into the blocking
    collective, with a remark saying why (`remarks=false` silences it).

    Before (ep = 2, a Qwen2-MoE layer: routed experts, then the shared
    expert):

    ```mlir
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless ...
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2]
        split_axis = 0 concat_axis = 1 : tensor<8x4x64xf32> -> tensor<4x8x64xf32>
    %out = moe.experts %in counts %n ...
    ...
    %shared = moe.experts %x3 gate %sg up %su down %sd activation = silu_glu ...
    ```

    After `moe-overlap{collectives=all-to-all}`:

    ```mlir
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless ...
    %f = moe.async_start %buf : tensor<8x4x64xf32>
        -> !moe.future<tensor<4x8x64xf32>> {
    ^bb0(%b: tensor<8x4x64xf32>):
      %r = shard.all_to_all %b on @moe_experts grid_axes = [2]
          split_axis = 0 concat_axis = 1 : tensor<8x4x64xf32> -> tensor<4x8x64xf32>
      moe.yield %r : tensor<4x8x64xf32>
    }
    %shared = moe.experts %x3 gate %sg up %su down %sd activation = silu_glu ...
    %in = moe.async_wait %f : !moe.future<tensor<4x8x64xf32>>
    %out = moe.experts %in counts %n ...
    ```
  }];
  let options = [
    ListOption<"collectives", "collectives", "std::string",
               "Collectives to make asynchronous: all-to-all, all-reduce, "
               "all-gather, reduce-scatter">,
    Option<"remarks", "remarks", "bool", /*default=*/"true",
           "Remark on each collective left blocking">,
    Option<"chunks", "chunks", "int64_t", /*default=*/"1",
           "Split each expert-parallel exchange into this many chunks of "
           "the buffer's rows, so one chunk travels while the previous "
           "one's experts compute">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::moe::MoEDialect",
    "::mlir::shard::ShardDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

//===----------------------------------------------------------------------===//
// Planning
//===----------------------------------------------------------------------===//

def MoEPlanPass : Pass<"moe-plan", "ModuleOp"> {
  let summary = "Choose the module's #moe.plan with the planner's cost model";
  let description = [{
    Summarizes the module's `moe.layer` ops (hidden size, experts, top-k,
    expert and shared widths, capacity, token count; the layers are assumed
    alike), enumerates every plan for `ranks` ranks of `cluster` — dp, tp,
    ep, etp, and the a2a, slice_allreduce and dedup variants — prunes the
    infeasible with the reason, ranks the rest by the predicted time of the
    compiled program (docs/Planner.md), and sets the module's `moe.plan` to
    the fastest. The report table (top `top` plans with compute and each
    collective, why the winner won, the pruned plans by reason) goes to
    stderr; `report` writes every estimate as JSON.

    The module is not changed otherwise: `moe-shard`, `moe-partition` and
    the plan's rewrites (or `moe-compile`) act on the plan. Models with
    attention are planned from their config by `moe-compile --plan auto`,
    which knows the heads.

    Before:

    ```mlir
    module {
      func.func @forward(%x: tensor<16x64xf32>, ...) -> tensor<16x64xf32> {
        %y = moe.layer %x router %r experts(up %u down %d gate %g) ...
    ```

    After (`moe-opt --moe-plan="cluster=h100x8 ranks=4"`):

    ```mlir
    module attributes {moe.plan = #moe.plan<dp = 4>} {
    ```
  }];
  let options = [
    Option<"cluster", "cluster", "std::string", /*default=*/"\"\"",
           "Cluster preset (h100x8, h100x8x4, a30x8, v100x128) or JSON "
           "file">,
    Option<"ranks", "ranks", "int64_t", /*default=*/"0",
           "Ranks to plan for (default: every device of the cluster)">,
    Option<"routingSkew", "routing-skew", "std::string",
           /*default=*/"\"uniform\"",
           "Expert load: uniform, zipf:S or hist:FILE">,
    Option<"report", "report", "std::string", /*default=*/"\"\"",
           "Write every plan's estimate as JSON to this file">,
    Option<"top", "top", "int64_t", /*default=*/"10",
           "Plans in the report table">
  ];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
