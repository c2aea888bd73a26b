// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-pack-weights | FileCheck %s

// Each weight argument becomes a view of the one buffer (the last
// argument); the manifest lists it with the slice its sharding says the
// rank loads: whole, a tp block, its ep experts, an etp block of each.
// CHECK-LABEL: module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, blob = 848, weights = [
// CHECK-SAME: #moe.weight<"emb", offset = 0, shape = [8, 16]>,
// CHECK-SAME: #moe.weight<"q", offset = 128, shape = [4, 16], split = tp, dim = 0>,
// CHECK-SAME: #moe.weight<"o", offset = 192, shape = [16, 4], split = tp, dim = 1>,
// CHECK-SAME: #moe.weight<"experts.{}.up", offset = 256, shape = [8, 16], count = 2, split = experts>,
// CHECK-SAME: #moe.weight<"experts.{}.down", offset = 512, shape = [16, 4], count = 2, split = experts_etp, dim = 1>,
// CHECK-SAME: #moe.weight<"shared.up", offset = 640, shape = [4, 16], split = etp, dim = 0>,
// CHECK-SAME: #moe.weight<"all.{}.gate", offset = 704, shape = [2, 16], count = 4, split = etp, dim = 0>,
// CHECK-SAME: #moe.weight<"norm", offset = 832, shape = [16]>]>}
// CHECK: func.func @forward(%[[IDS:[^:]*]]: tensor<1x4xi64>, %[[BLOB:[^:]*]]: tensor<848xf32>) -> tensor<8x16xf32>
// CHECK: %[[E:.*]] = tensor.extract_slice %[[BLOB]][0] [128] [1] : tensor<848xf32> to tensor<128xf32>
// CHECK: tensor.expand_shape %[[E]] {{\[\[}}0, 1]] output_shape [8, 16] : tensor<128xf32> into tensor<8x16xf32>
// CHECK: tensor.extract_slice %[[BLOB]][832] [16] [1] : tensor<848xf32> to tensor<16xf32>
// CHECK-NOT: moe.weight
// CHECK-NOT: moe.sharding
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  shard.grid @moe_dense(shape = 1x1x2)
  shard.grid @moe_experts(shape = 1x1x2x2)
  func.func @forward(%ids: tensor<1x4xi64> {moe.sharding = {grid = @moe_dense, split_axes = [array<i16: 1>]}},
      %emb: tensor<8x16xf32> {moe.weight = "emb"},
      %q: tensor<4x16xf32> {moe.weight = "q", moe.sharding = {grid = @moe_dense, split_axes = [array<i16: 2>]}},
      %o: tensor<16x4xf32> {moe.weight = "o", moe.sharding = {grid = @moe_dense, split_axes = [array<i16>, array<i16: 2>]}},
      %up: tensor<2x8x16xf32> {moe.weight = "experts.{}.up", moe.sharding = {grid = @moe_experts, split_axes = [array<i16: 2>]}},
      %down: tensor<2x16x4xf32> {moe.weight = "experts.{}.down", moe.sharding = {grid = @moe_experts, split_axes = [array<i16: 2>, array<i16>, array<i16: 3>]}},
      %sup: tensor<4x16xf32> {moe.weight = "shared.up", moe.sharding = {grid = @moe_experts, split_axes = [array<i16: 3>]}},
      %gate: tensor<4x2x16xf32> {moe.weight = "all.{}.gate", moe.sharding = {grid = @moe_experts, split_axes = [array<i16>, array<i16: 3>]}},
      %norm: tensor<16xf32> {moe.weight = "norm"}) -> tensor<8x16xf32> {
    return %emb : tensor<8x16xf32>
  }
}

// -----

// Without weight arguments nothing changes.
// CHECK-LABEL: func.func @no_weights(%{{.*}}: tensor<4xf32>) -> tensor<4xf32>
module {
  func.func @no_weights(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

module {
  // expected-error @+1 {{'func.func' op has weight arguments but its module has no 'moe.manifest' to list them in}}
  func.func @f(%w: tensor<4xf32> {moe.weight = "w"}) {
    return
  }
}

// -----

module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  shard.grid @moe_dense(shape = 1x2x1)
  // expected-error @+1 {{'func.func' op weight 'w' is split so that no rank can load its part: dimension 0 over axis 1 of @moe_dense}}
  func.func @f(%w: tensor<4xf32> {moe.weight = "w", moe.sharding = {grid = @moe_dense, split_axes = [array<i16: 1>]}}) {
    return
  }
}

// -----

module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  // expected-error @+1 {{'func.func' op weight 'w' has type 'tensor<4xf16>'; the runtime loads static f32 tensors}}
  func.func @f(%w: tensor<4xf16> {moe.weight = "w"}) {
    return
  }
}

// -----

module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  // expected-error @+1 {{'func.func' op weight 'w' is split so that no rank can load its part: malformed moe.sharding}}
  func.func @f(%w: tensor<4xf32> {moe.weight = "w", moe.sharding = "tp"}) {
    return
  }
}

// -----

module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  shard.grid @moe_experts(shape = 1x1x1x2)
  // expected-error @+1 {{'func.func' op weight 'e.{}' is split so that no rank can load its part: dimension 0 over axis 3 of @moe_experts}}
  func.func @f(%w: tensor<2x4xf32> {moe.weight = "e.{}", moe.sharding = {grid = @moe_experts, split_axes = [array<i16: 3>]}}) {
    return
  }
}

// -----

// The functions of one model (prefill and decode) share the buffer: the
// manifest lists the weights once; each function reads its views of it.
// CHECK-LABEL: module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, blob = 40, weights = [#moe.weight<"emb", offset = 0, shape = [2, 16]>, #moe.weight<"norm", offset = 32, shape = [8]>]>}
// CHECK: func.func @prefill(%{{[^:]*}}: tensor<2x4xi64>, %{{[^:]*}}: tensor<40xf32>)
// CHECK: func.func @decode(%{{[^:]*}}: tensor<2x1xi64>, %{{[^:]*}}: tensor<2xi64>, %{{[^:]*}}: tensor<40xf32>)
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  func.func @prefill(%ids: tensor<2x4xi64>, %emb: tensor<2x16xf32> {moe.weight = "emb"},
                     %norm: tensor<8xf32> {moe.weight = "norm"}) -> tensor<8xf32> {
    return %norm : tensor<8xf32>
  }
  func.func @decode(%ids: tensor<2x1xi64>, %pos: tensor<2xi64>,
                    %emb: tensor<2x16xf32> {moe.weight = "emb"},
                    %norm: tensor<8xf32> {moe.weight = "norm"}) -> tensor<8xf32> {
    return %norm : tensor<8xf32>
  }
}

// -----

// Functions that read different weights cannot share one buffer.
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  func.func @prefill(%emb: tensor<2x16xf32> {moe.weight = "emb"}) {
    return
  }
  // expected-error @+1 {{'func.func' op reads other weights, or the same in another layout, than @prefill; the functions of a module share one weight buffer}}
  func.func @decode(%emb: tensor<2x16xf32> {moe.weight = "other"}) {
    return
  }
}
