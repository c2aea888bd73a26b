// A Switch-style block for utils/run-block.py: 16 tokens, H = 32, 4 ReLU
// experts of width 64, top-1, capacity 5 (factor 1.25), so tokens drop.
module {
  func.func @moe_block(%x: tensor<16x32xf32>, %router: tensor<4x32xf32>,
                       %up: tensor<4x64x32xf32>, %down: tensor<4x32x64xf32>)
      -> tensor<16x32xf32> attributes {llvm.emit_c_interface} {
    %y = moe.layer %x router %router experts(up %up down %down)
        k = 1 score = softmax activation = relu capacity = 5
        : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
           tensor<4x32x64xf32>) -> tensor<16x32xf32>
    return %y : tensor<16x32xf32>
  }
}
