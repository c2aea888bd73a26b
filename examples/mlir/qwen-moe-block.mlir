// A tiny Qwen2-MoE-style MoE block: 4 experts, top-2 softmax routing without
// renormalization (norm_topk_prob = false), SwiGLU experts and a shared
// expert scaled by a sigmoid shared-expert gate (H = 32, F = 48, Fs = 96).
module {
  func.func @moe_block(%x: tensor<8x32xf32>, %router: tensor<4x32xf32>,
                       %up: tensor<4x48x32xf32>, %down: tensor<4x32x48xf32>,
                       %gate: tensor<4x48x32xf32>, %shared_up: tensor<96x32xf32>,
                       %shared_down: tensor<32x96xf32>,
                       %shared_gate_proj: tensor<96x32xf32>,
                       %shared_expert_gate: tensor<1x32xf32>) -> tensor<8x32xf32> {
    %y = moe.layer %x router %router experts(up %up down %down gate %gate)
        shared(up %shared_up down %shared_down gate %shared_gate_proj)
        shared_gate %shared_expert_gate
        k = 2 score = softmax activation = silu_glu
        : (tensor<8x32xf32>, tensor<4x32xf32>, tensor<4x48x32xf32>,
           tensor<4x32x48xf32>, tensor<4x48x32xf32>, tensor<96x32xf32>,
           tensor<32x96xf32>, tensor<96x32xf32>, tensor<1x32xf32>)
        -> tensor<8x32xf32>
    return %y : tensor<8x32xf32>
  }
}
