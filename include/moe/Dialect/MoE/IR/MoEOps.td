//===- MoEOps.td - moe dialect operations ------------------*- tablegen -*-===//
//
// Routing, dispatch, grouped expert compute, combine, and the composite layer.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Activations and weights: ranked tensors of f32, bf16 or f16. Ranks and
// shapes are checked in C++ so that every message names the offending values.
def MoE_FloatTensor : RankedTensorOf<[F32, BF16, F16]>;
// Expert ids and slot indices.
def MoE_IndexTensor : RankedTensorOf<[I32, I64]>;

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

def MoE_RouterOp : MoE_Op<"router", [Pure]> {
  let summary = "top-k expert selection for each token";
  let description = [{
    Scores every token against every expert and selects the `k` best.

    ```
    tokens [T,H] --x weightᵀ [H,E]--> logits [T,E] --score--> scores [T,E]
                 (+ bias [E], selection only) --top-k--> ids [T,k], weights [T,k]
    ```

    1. `logits = tokens · weightᵀ`, accumulated in f32 (the weight has the
       Hugging Face `nn.Linear` layout `[E, H]`);
    2. `scores = softmax(logits)` over experts, or `sigmoid(logits)`
       elementwise, as `score` says;
    3. the selection key of expert `e` is `scores[e] + bias[e]` when `bias`
       is given (DeepSeek-V3 style load balancing), else `scores[e]`;
    4. `ids[t, 0..k-1]` are the `k` experts with the largest keys, in
       descending order of key; equal keys go to the lower expert id first,
       so the result is deterministic;
    5. `weights[t, j] = scores[t, ids[t, j]]` (the bias never enters the
       weights), divided by `sum_j weights[t, j]` when `renormalize` is set.

    The ids of one token are distinct.

    **Constraints:**
    - `tokens` is `[T, H]` and `weight` is `[E, H]` with the same `H`
      (`moe_router_c1`, `moe_router_c2`);
    - `E` is static and `1 <= k <= E` (`moe_router_c3`, `moe_router_c4`);
    - `bias`, when present, is `[E]` (`moe_router_c5`);
    - `weights` and `ids` are `[T, k]` (`moe_router_c6`);
    - `tokens`, `weight`, `bias` and `weights` share an element type
      (`moe_router_c7`).

    Example:

    ```mlir
    %w, %ids = moe.router %x weight %wr k = 2 score = softmax renormalize
        : (tensor<8x16xf32>, tensor<4x16xf32>)
        -> (tensor<8x2xf32>, tensor<8x2xi32>)
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$tokens,
    MoE_FloatTensor:$weight,
    Optional<MoE_FloatTensor>:$bias,
    I64Attr:$k,
    MoE_ScoreFunctionAttr:$score,
    UnitAttr:$renormalize
  );
  let results = (outs MoE_FloatTensor:$weights, MoE_IndexTensor:$ids);
  let assemblyFormat = [{
    $tokens `weight` $weight (`bias` $bias^)? `k` `=` $k `score` `=` $score
    (`renormalize` $renormalize^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure]> {
  let summary = "scatter tokens into fixed-capacity expert buffers";
  let description = [{
    Copies each token into a slot of the buffer of each expert it was routed
    to. The buffer has `E` experts of capacity `C` (both static, taken from
    the result type); the slot map records where each (token, choice) went,
    and `counts[e]` how many slots of expert `e` are filled (at most `C`).

    ```
    tokens [T,H], ids [T,k]
        |  for j in 0..k-1:            (all first choices before any second)
        |    for t in 0..T-1:          (then in token order)
        |      e = ids[t,j]; s = fill[e]++
        |      if s < C: buffer[e,s,:] = tokens[t,:]; slots[t,j] = s
        |      else:     slots[t,j] = -1            (dropped)
        v
    buffer [E,C,H] (unused slots are zero), slots [T,k], counts [E]
    ```

    Filled slots of an expert are contiguous from slot 0, so rows
    `counts[e] ..< C` of `buffer[e]` are the unused, zero ones; `moe.experts`
    may skip them.

    The drop order is deterministic: choice rank first (every token's first
    choice is placed before any token's second choice, as in GShard), then
    token order. A dropped (token, choice) contributes nothing in
    `moe.combine`; the residual connection carries the token on.

    With `dropless`, the verifier requires `C >= T`: since the experts of a
    token are distinct (as `moe.router` produces them), an expert receives at
    most `T` tokens and nothing is dropped.

    An id outside `[0, E)` is a routing error: the (token, choice) is treated
    as dropped (`slots = -1`).

    **Constraints:**
    - `tokens` is `[T, H]`, `ids` is `[T, k]` (`moe_dispatch_c1`,
      `moe_dispatch_c2`);
    - `buffer` is `[E, C, H]` with static `E >= 1`, `C >= 1`, `k <= E`
      (`moe_dispatch_c3`, `moe_dispatch_c4`, `moe_dispatch_c5`);
    - `buffer` has the element type of `tokens` (`moe_dispatch_c6`);
    - `slots` has the type of `ids` (`moe_dispatch_c7`);
    - `dropless` needs a static `T` and `C >= T` (`moe_dispatch_c8`);
    - `counts` is `[E]` with the element type of `ids` (`moe_dispatch_c9`).

    Example:

    ```mlir
    %buf, %slots, %counts = moe.dispatch %x experts %ids
        : (tensor<8x16xf32>, tensor<8x2xi32>)
        -> (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$tokens,
    MoE_IndexTensor:$ids,
    UnitAttr:$dropless
  );
  let results = (outs MoE_FloatTensor:$buffer, MoE_IndexTensor:$slots,
                     MoE_IndexTensor:$counts);
  let assemblyFormat = [{
    $tokens `experts` $ids (`dropless` $dropless^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() { return getBuffer().getType().getDimSize(0); }
    int64_t getCapacity() { return getBuffer().getType().getDimSize(1); }
  }];
}

//===----------------------------------------------------------------------===//
// ExpertsOp
//===----------------------------------------------------------------------===//

def MoE_ExpertsOp : MoE_Op<"experts", [Pure, AttrSizedOperandSegments]> {
  let summary = "grouped feed-forward compute of every expert on its buffer";
  let description = [{
    Applies expert `e`'s feed-forward network to each of the `C` rows of
    `input[e]`. Weights use the Hugging Face `nn.Linear` layout
    (`[out, in]`), stacked over experts:

    - `silu_glu` (Mixtral, Qwen-MoE, DeepSeek): `y = down · (silu(gate · x) *
      (up · x))`, with `gate` and `up` `[E, F, H]` (Mixtral's `w1`, `w3`) and
      `down` `[E, H, F]` (`w2`);
    - `gelu`, `relu` (Switch): `y = down · act(up · x)`; there is no `gate`.

    `gelu` is the exact (erf) form. Rows of unused slots are zero in, and
    since the FFN has no bias, zero out. With `counts` (from `moe.dispatch`),
    only rows `0 ..< counts[e]` of expert `e` are computed and the others are
    zero in the result, which is the same value for a dispatched buffer and
    saves the work on padding. `counts` of shape `[E, S]` splits each
    expert's `C` rows into `S` equal segments, each filled from its start:
    rows `s·C/S ..< s·C/S + counts[e, s]` are computed. That is the layout
    an expert-parallel all-to-all delivers (one segment per source rank).

    **Constraints:**
    - `input` is `[E, C, H]`, `up` is `[E, F, H]`, `down` is `[E, H, F]`
      (`moe_experts_c1`, `moe_experts_c2`, `moe_experts_c3`);
    - `gate` is present, with the type of `up`, exactly when the activation
      is gated (`moe_experts_c4`, `moe_experts_c5`);
    - `E`, `H` and `F` agree across operands (`moe_experts_c6`);
    - all operands share the element type of `input`, and the result has the
      type of `input` (`moe_experts_c7`, `moe_experts_c8`);
    - `counts`, when present, is `[E]` or `[E, S]` with `S` dividing `C`
      (`moe_experts_c9`).

    Example:

    ```mlir
    %y = moe.experts %buf counts %counts gate %w1 up %w3 down %w2
        activation = silu_glu
        : (tensor<4x4x16xf32>, tensor<4xi32>, tensor<4x32x16xf32>,
           tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$input,
    Optional<MoE_IndexTensor>:$counts,
    Optional<MoE_FloatTensor>:$gate,
    MoE_FloatTensor:$up,
    MoE_FloatTensor:$down,
    MoE_ActivationAttr:$activation
  );
  let results = (outs MoE_FloatTensor:$output);
  let assemblyFormat = [{
    $input (`counts` $counts^)? (`gate` $gate^)? `up` $up `down` $down
    `activation` `=` $activation
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

def MoE_CombineOp : MoE_Op<"combine", [Pure]> {
  let summary = "gate-weighted gather of expert outputs back to token order";
  let description = [{
    The inverse of `moe.dispatch`:

    ```
    output[t,:] = sum over j with slots[t,j] >= 0 of
                    weights[t,j] * input[ids[t,j], slots[t,j], :]
    ```

    A dropped (token, choice), with `slots[t,j] = -1`, contributes zero.
    Accumulation is in choice order `j = 0..k-1`.

    **Constraints:**
    - `input` is `[E, C, H]` (`moe_combine_c1`);
    - `slots`, `ids` and `weights` are `[T, k]` (`moe_combine_c2`);
    - `slots` and `ids` have the same type (`moe_combine_c3`);
    - `output` is `[T, H]` (`moe_combine_c4`);
    - `weights` and `output` have the element type of `input`
      (`moe_combine_c5`).

    Example:

    ```mlir
    %y = moe.combine %out slots %slots experts %ids weights %w
        : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>,
           tensor<8x2xf32>) -> tensor<8x16xf32>
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$input,
    MoE_IndexTensor:$slots,
    MoE_IndexTensor:$ids,
    MoE_FloatTensor:$weights
  );
  let results = (outs MoE_FloatTensor:$output);
  let assemblyFormat = [{
    $input `slots` $slots `experts` $ids `weights` $weights attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_Op<"layer", [Pure, AttrSizedOperandSegments]> {
  let summary = "a whole MoE feed-forward block: route, dispatch, compute, combine";
  let description = [{
    The composite a model graph uses in place of a dense MLP. It means, and
    `moe-decompose` expands it into:

    ```
    %w, %ids      = moe.router %tokens weight %router ...
    %buf, %slots, %counts = moe.dispatch %tokens experts %ids  (capacity C)
    %y            = moe.experts %buf counts %counts ...
    %routed       = moe.combine %y slots %slots experts %ids weights %w
    result        = %routed [+ sigmoid(tokens · shared_gateᵀ) * shared(tokens)]
    ```

    `capacity` is the static per-expert capacity `C`; without it the layer is
    dropless (`C = T`, which needs a static `T`).

    Optional **shared experts** (Qwen2-MoE, DeepSeek) form one dense gated
    MLP that every token goes through: `shared(x) = down · (act(gate · x) *
    (up · x))` with `gate`, `up` `[Fs, H]` and `down` `[H, Fs]`; they need a
    gated activation. An optional `shared_gate` `[1, H]` scales the shared
    output by `sigmoid(x · shared_gateᵀ)` per token (Qwen2-MoE's
    `shared_expert_gate`).

    **Constraints:** those of the four ops it stands for, plus:
    - the result has the type of `tokens` (`moe_layer_c1`);
    - `capacity`, when present, is >= 1 (`moe_layer_c2`);
    - shared experts are `[Fs, H]`, `[Fs, H]`, `[H, Fs]` with a gated
      activation (`moe_layer_c3`, `moe_layer_c4`);
    - `shared_gate` is `[1, H]` and needs shared experts (`moe_layer_c5`).

    Example:

    ```mlir
    %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$tokens,
    MoE_FloatTensor:$router_weight,
    Optional<MoE_FloatTensor>:$router_bias,
    MoE_FloatTensor:$expert_up,
    MoE_FloatTensor:$expert_down,
    Optional<MoE_FloatTensor>:$expert_gate,
    Optional<MoE_FloatTensor>:$shared_up_proj,
    Optional<MoE_FloatTensor>:$shared_down_proj,
    Optional<MoE_FloatTensor>:$shared_gate_proj,
    Optional<MoE_FloatTensor>:$shared_gate,
    I64Attr:$k,
    MoE_ScoreFunctionAttr:$score,
    UnitAttr:$renormalize,
    MoE_ActivationAttr:$activation,
    OptionalAttr<I64Attr>:$capacity
  );
  let results = (outs MoE_FloatTensor:$output);
  let assemblyFormat = [{
    $tokens `router` $router_weight (`bias` $router_bias^)?
    `experts` `(` `up` $expert_up `down` $expert_down (`gate` $expert_gate^)? `)`
    (`shared` `(` `up` $shared_up_proj^ `down` $shared_down_proj `gate`
      $shared_gate_proj `)`)?
    (`shared_gate` $shared_gate^)?
    `k` `=` $k `score` `=` $score (`renormalize` $renormalize^)?
    `activation` `=` $activation (`capacity` `=` $capacity^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts() {
      return getRouterWeight().getType().getDimSize(0);
    }
    bool hasSharedExperts() { return getSharedUpProj() != nullptr; }
  }];
}

//===----------------------------------------------------------------------===//
// Asynchronous collectives
//===----------------------------------------------------------------------===//

// The network: what a collective in flight reads and writes. Starts and waits
// have effects on it, so no pass deletes, merges or reorders them as if they
// were pure; everything else they touch is in SSA values.
def MoE_CommunicationResource
    : Resource<"::mlir::moe::CommunicationResource">;

def MoE_AsyncStartOp : MoE_Op<"async_start", [
    MemoryEffects<[MemRead<MoE_CommunicationResource>,
                   MemWrite<MoE_CommunicationResource>]>]> {
  let summary = "starts a collective and returns its future";
  let description = [{
    Starts the one `shard` collective of its body on `input` and returns at
    once; `moe.async_wait` on the future yields the collective's result. The
    pair means exactly the blocking collective at the wait, provided that
    `input` is not changed in between, which SSA guarantees. `moe-overlap`
    builds the pairs; `moe-lower-collectives` lowers them to the runtime's
    non-blocking calls.

    The body has one block whose argument stands for `input`; it holds the
    collective (`shard.all_to_all`, `shard.all_reduce`, `shard.all_gather`
    or `shard.reduce_scatter`) on that argument and a `moe.yield` of its
    result.

    **Constraints:**
    - the block argument has the type of `input` (`moe_async_start_c1`);
    - the body is one collective on the block argument, yielded
      (`moe_async_start_c2`);
    - the yielded type is the future's value type (`moe_async_start_c3`);
    - the future has exactly one use, a `moe.async_wait` in the same block
      (`moe_async_start_c4`).

    Example:

    ```mlir
    %f = moe.async_start %buf : tensor<8x4x64xf32>
        -> !moe.future<tensor<4x8x64xf32>> {
    ^bb0(%in: tensor<8x4x64xf32>):
      %r = shard.all_to_all %in on @moe_experts grid_axes = [2]
          split_axis = 0 concat_axis = 1
          : tensor<8x4x64xf32> -> tensor<4x8x64xf32>
      moe.yield %r : tensor<4x8x64xf32>
    }
    // ... compute that does not need the result ...
    %r = moe.async_wait %f : !moe.future<tensor<4x8x64xf32>>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs MoE_FutureType:$future);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` qualified(type($future)) $body
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The collective in the body.
    ::mlir::Operation *getCollective() { return &getBody().front().front(); }
    /// The wait on the future (verified to exist).
    AsyncWaitOp getWait();
  }];
}

def MoE_AsyncWaitOp : MoE_Op<"async_wait", [
    MemoryEffects<[MemRead<MoE_CommunicationResource>,
                   MemWrite<MoE_CommunicationResource>]>,
    TypesMatchWith<"the result is the future's value type", "future", "result",
                   "::llvm::cast<FutureType>($_self).getValueType()">]> {
  let summary = "waits for a started collective and yields its result";
  let description = [{
    Blocks until the collective started by the `moe.async_start` of
    `future` has completed on this rank, and yields its result.

    Example:

    ```mlir
    %r = moe.async_wait %f : !moe.future<tensor<4x8x64xf32>>
    ```
  }];
  let arguments = (ins MoE_FutureType:$future);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$future attr-dict `:` qualified(type($future))";
  let extraClassDeclaration = [{
    AsyncStartOp getStart() {
      return ::llvm::cast<AsyncStartOp>(getFuture().getDefiningOp());
    }
  }];
}

def MoE_YieldOp : MoE_Op<"yield", [Pure, Terminator,
                                   HasParent<"AsyncStartOp">]> {
  let summary = "yields the collective's result from moe.async_start's body";
  let arguments = (ins AnyRankedTensor:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
