// A tiny Switch-Transformer-style MoE block: 4 experts, top-1 routing with a
// capacity of 5 tokens per expert (capacity factor 1.25 over 16 tokens), so
// over-capacity tokens are dropped, and ReLU experts (H = 32, F = 64).
module {
  func.func @moe_block(%x: tensor<16x32xf32>, %router: tensor<4x32xf32>,
                       %wi: tensor<4x64x32xf32>, %wo: tensor<4x32x64xf32>)
      -> tensor<16x32xf32> {
    %y = moe.layer %x router %router experts(up %wi down %wo)
        k = 1 score = softmax activation = relu capacity = 5
        : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
           tensor<4x32x64xf32>) -> tensor<16x32xf32>
    return %y : tensor<16x32xf32>
  }
}
