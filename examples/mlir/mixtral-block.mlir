// A tiny Mixtral-style MoE decoder MLP stack: two residual MoE blocks, each
// with 8 experts, top-2 softmax routing with renormalization and SwiGLU
// experts (H = 64, F = 128, T = 16 tokens), under a plan for 4 ranks.
//
// Run the decomposition pipeline on it:
//   build/bin/moe-opt --moe-example-pipeline examples/mlir/mixtral-block.mlir
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 4>} {
  func.func @forward(%x: tensor<16x64xf32>,
                     %router0: tensor<8x64xf32>, %w3_0: tensor<8x128x64xf32>,
                     %w2_0: tensor<8x64x128xf32>, %w1_0: tensor<8x128x64xf32>,
                     %router1: tensor<8x64xf32>, %w3_1: tensor<8x128x64xf32>,
                     %w2_1: tensor<8x64x128xf32>, %w1_1: tensor<8x128x64xf32>)
      -> tensor<16x64xf32> {
    %moe0 = moe.layer %x router %router0 experts(up %w3_0 down %w2_0 gate %w1_0)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<16x64xf32>, tensor<8x64xf32>, tensor<8x128x64xf32>,
           tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
    %h0 = arith.addf %x, %moe0 : tensor<16x64xf32>
    %moe1 = moe.layer %h0 router %router1 experts(up %w3_1 down %w2_1 gate %w1_1)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<16x64xf32>, tensor<8x64xf32>, tensor<8x128x64xf32>,
           tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
    %h1 = arith.addf %h0, %moe1 : tensor<16x64xf32>
    return %h1 : tensor<16x64xf32>
  }
}
