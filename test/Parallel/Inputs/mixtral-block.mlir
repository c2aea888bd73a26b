// A dropless Mixtral-style block for utils/run-block.py: 16 tokens, H = 32,
// 8 SwiGLU experts of width 64, top-2 with renormalization.
module {
  func.func @moe_block(%x: tensor<16x32xf32>, %router: tensor<8x32xf32>,
                       %up: tensor<8x64x32xf32>, %down: tensor<8x32x64xf32>,
                       %gate: tensor<8x64x32xf32>) -> tensor<16x32xf32>
      attributes {llvm.emit_c_interface} {
    %y = moe.layer %x router %router experts(up %up down %down gate %gate)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x64x32xf32>,
           tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
    return %y : tensor<16x32xf32>
  }
}
