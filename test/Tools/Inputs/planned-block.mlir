// A two-layer MoE stack with a plan, for the robustness runs of the
// partitioning and rewrite passes (moe-opt-robustness.test).
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 2, dedup = [1, 0], dispatch = [a2a, slice_allreduce]>} {
  func.func @forward(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>,
                     %up: tensor<8x64x32xf32>, %down: tensor<8x32x64xf32>,
                     %gate: tensor<8x64x32xf32>) -> tensor<16x32xf32> {
    %y = moe.layer %x router %r experts(up %up down %down gate %gate)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x64x32xf32>,
           tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
    %h = arith.addf %x, %y : tensor<16x32xf32>
    %z = moe.layer %h router %r experts(up %up down %down)
        k = 1 score = softmax activation = relu capacity = 6
        : (tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x64x32xf32>,
           tensor<8x32x64xf32>) -> tensor<16x32xf32>
    return %z : tensor<16x32xf32>
  }
}
