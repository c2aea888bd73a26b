// RUN: moe-opt %s | moe-opt | FileCheck %s
//
// #moe.plan attached to a module as `moe.plan` is checked against the MoE ops
// it covers (ep divides the expert count, one dispatch strategy per layer).

// CHECK: module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dispatch = [slice_allreduce, a2a]>}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dispatch = [slice_allreduce, a2a]>} {
  // CHECK-LABEL: func @two_layers
  func.func @two_layers(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %wi: tensor<4x32x16xf32>, %wo: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    // CHECK-COUNT-2: moe.layer
    %a = moe.layer %x router %wr experts(up %wi down %wo) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    %b = moe.layer %a router %wr experts(up %wi down %wo) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %b : tensor<8x16xf32>
  }
}
