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

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
