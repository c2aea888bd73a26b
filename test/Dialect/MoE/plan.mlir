// RUN: moe-opt %s --split-input-file | moe-opt --split-input-file | FileCheck %s
//
// #moe.plan attached to a module as `moe.plan` is checked against the MoE ops
// it covers (ep divides the expert count, one dispatch strategy and one dedup
// flag per layer). Default entries (a2a, dedup 0) are not printed.

// CHECK: module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dispatch = [slice_allreduce, a2a], dedup = [0, 1]>}
module attributes {moe.plan = #moe.plan<dedup = [0, 1], tp = 2, ep = 2, dispatch = [slice_allreduce, a2a]>} {
  // CHECK-LABEL: func @two_layers
  func.func @two_layers(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %wi: tensor<4x32x16xf32>, %wo: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    // CHECK-COUNT-2: moe.layer
    %a = moe.layer %x router %wr experts(up %wi down %wo) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    %b = moe.layer %a router %wr experts(up %wi down %wo) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %b : tensor<8x16xf32>
  }
}

// -----

// CHECK: module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 4, dedup = 1>}
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 4, dedup = 1, dispatch = a2a>} {}

// CHECK: module attributes {moe.plan = #moe.plan<tp = 2>}
module attributes {moe.plan = #moe.plan<tp = 2, dedup = 0>} {}
