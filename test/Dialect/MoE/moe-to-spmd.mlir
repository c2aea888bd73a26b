// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-to-spmd | FileCheck %s

// A whole model under a plan of two ranks: sharded, partitioned (the
// layer's all-to-all form), and its weights packed, each rank listing its
// own experts.
// CHECK-LABEL: module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, blob = 2112, weights = [#moe.weight<"router", offset = 0, shape = [4, 16]>, #moe.weight<"up.{}", offset = 64, shape = [32, 16], count = 2, split = experts>, #moe.weight<"down.{}", offset = 1088, shape = [16, 32], count = 2, split = experts>]>, moe.plan = #moe.plan<dp = 2, ep = 2>}
// CHECK: shard.grid @moe_dense(shape = 1x2x1)
// CHECK: func.func @forward(%{{[^:]*}}: tensor<4x16xf32>, %{{[^:]*}}: tensor<2112xf32>) -> tensor<4x16xf32>
// CHECK: moe.dispatch
// CHECK: shard.all_to_all
// CHECK-NOT: shard.shard
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>, moe.plan = #moe.plan<dp = 2, ep = 2>} {
  func.func @forward(%x: tensor<8x16xf32> {moe.parallel = "batch"},
                     %r: tensor<4x16xf32> {moe.weight = "router"},
                     %up: tensor<4x32x16xf32> {moe.weight = "up.{}"},
                     %down: tensor<4x16x32xf32> {moe.weight = "down.{}"}) -> tensor<8x16xf32> {
    %y = moe.layer %x router %r experts(up %up down %down) k = 1 score = softmax activation = relu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// Without a plan the model is only packed.
// CHECK-LABEL: module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, blob = 64, weights = [#moe.weight<"router", offset = 0, shape = [4, 16]>]>}
// CHECK-NOT: shard.
// CHECK: func.func @forward(%{{[^:]*}}: tensor<8x16xf32>, %{{[^:]*}}: tensor<64xf32>)
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  func.func @forward(%x: tensor<8x16xf32> {moe.parallel = "batch"},
                     %r: tensor<4x16xf32> {moe.weight = "router"}) -> tensor<8x16xf32> {
    return %x : tensor<8x16xf32>
  }
}

// -----

// The plan's rewrites are strict: a layer the plan asks slice_allreduce for
// must have an all-to-all to replace (this capacity layer has none).
// expected-error @+1 {{moe-slice-allreduce does not apply: layer 0 has no all-to-all dispatch (capacity layers gather tokens instead, and ep = 1 has none)}}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dispatch = slice_allreduce>} {
  func.func @forward(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                     %up: tensor<4x32x16xf32>, %down: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %y = moe.layer %x router %r experts(up %up down %down) k = 1 score = softmax activation = relu capacity = 4
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}
