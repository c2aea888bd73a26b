// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-pipeline | FileCheck %s

// pp = 2, two microbatches of one row, two layers: every stage runs layer
// 0's program on its own layer's weights (renamed {stage*1+0}); stage 0
// embeds, stage 1 normalizes; the hidden states go from stage to stage; the
// other layer's weights are gone, the embedding's and the norm's marked for
// the one stage that loads them.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[IDS:[^:]*]]: tensor<2x4xf32>, %[[E:[^:]*]]: tensor<1x4xf32> {moe.stage = 0 : i64, moe.weight = "embed"}, %[[W:[^:]*]]: tensor<1x4xf32> {moe.weight = "model.layers.{stage*1+0}.w"}, %[[N:[^:]*]]: tensor<1x4xf32> {moe.stage = 1 : i64, moe.weight = "norm"}) -> tensor<2x4xf32>
// CHECK: %[[STAGE:.*]] = shard.process_multi_index on @moe_dense axes = [0] : index
// CHECK: %[[LOOP:.*]] = scf.for %[[MB:.*]] = %{{.*}} to %c2 step %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (tensor<2x4xf32>)
// CHECK: %[[MBIDS:.*]] = tensor.extract_slice %[[IDS]][%{{.*}}, 0] [1, 4] [1, 1] : tensor<2x4xf32> to tensor<1x4xf32>
// CHECK: %[[X:.*]] = scf.if %{{.*}} -> (tensor<1x4xf32>) {
// CHECK-NEXT: %[[EMB:.*]] = arith.addf %[[MBIDS]], %[[E]]
// CHECK-NEXT: scf.yield %[[EMB]]
// CHECK: shard.recv %{{.*}} on @moe_dense grid_axes = [0] source = [%{{.*}}]
// CHECK: %[[Y:.*]] = arith.mulf %[[X]], %[[W]]
// CHECK-NOT: arith.mulf
// CHECK: %[[OUT:.*]] = scf.if %{{.*}} -> (tensor<1x4xf32>) {
// CHECK-NEXT: %[[NORMED:.*]] = arith.subf %[[Y]], %[[N]]
// CHECK-NEXT: scf.yield %[[NORMED]]
// CHECK: shard.send %[[Y]] on @moe_dense grid_axes = [0] destination = [%{{.*}}]
// CHECK: tensor.insert_slice %[[OUT]] into %[[ACC]][%{{.*}}, 0] [1, 4] [1, 1]
// CHECK: return %[[LOOP]] : tensor<2x4xf32>
module attributes {moe.plan = #moe.plan<pp = 2>, moe.microbatches = 2 : i64} {
  shard.grid @moe_dense(shape = 2x1x1)
  func.func @forward(%ids: tensor<1x4xf32>, %e: tensor<1x4xf32> {moe.weight = "embed"},
                     %w0: tensor<1x4xf32> {moe.weight = "model.layers.0.w"},
                     %w1: tensor<1x4xf32> {moe.weight = "model.layers.1.w"},
                     %n: tensor<1x4xf32> {moe.weight = "norm"}) -> tensor<1x4xf32> {
    %x = arith.addf %ids, %e : tensor<1x4xf32>
    %y = arith.mulf %x, %w0 {moe.decoder_layer = 0 : i64} : tensor<1x4xf32>
    %z = arith.mulf %y, %w1 {moe.decoder_layer = 1 : i64} : tensor<1x4xf32>
    %o = arith.subf %z, %n : tensor<1x4xf32>
    return %o : tensor<1x4xf32>
  }
}

// -----

// Without a pipeline the module is left as it is.
// CHECK-LABEL: func.func @no_pipeline
// CHECK-NOT: scf.for
module attributes {moe.plan = #moe.plan<dp = 2>} {
  func.func @no_pipeline(%x: tensor<4xf32>) -> tensor<4xf32> {
    %y = arith.addf %x, %x {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<pp = 2>} {
  // expected-error @+1 {{'func.func' op has 3 decoder layers, which pp = 2 does not divide}}
  func.func @uneven(%x: tensor<4xf32>) -> tensor<4xf32> {
    %a = arith.addf %x, %x {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %b = arith.addf %a, %a {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    %c = arith.addf %b, %b {moe.decoder_layer = 2 : i64} : tensor<4xf32>
    return %c : tensor<4xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<pp = 2>} {
  // expected-error @+1 {{'func.func' op decoder layer 1 differs from layer 0 (its weights); the stages of a pipeline share one program}}
  func.func @different(%x: tensor<4xf32>, %w0: tensor<4xf32> {moe.weight = "model.layers.0.w"},
                       %w1: tensor<8xf32> {moe.weight = "model.layers.1.w"}) -> tensor<4xf32> {
    %p = arith.negf %x : tensor<4xf32>
    %a = arith.addf %p, %w0 {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %s = tensor.extract_slice %w1[0] [4] [1] {moe.decoder_layer = 1 : i64} : tensor<8xf32> to tensor<4xf32>
    %b = arith.addf %a, %s {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    return %b : tensor<4xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<pp = 2>} {
  // expected-error @+1 {{'func.func' op weight 'w' of decoder layer 0 does not name its layer ('layers.0.')}}
  func.func @unnamed(%x: tensor<4xf32>, %w0: tensor<4xf32> {moe.weight = "w"},
                     %w1: tensor<4xf32> {moe.weight = "v"}) -> tensor<4xf32> {
    %p = arith.negf %x : tensor<4xf32>
    %a = arith.addf %p, %w0 {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %b = arith.addf %a, %w1 {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    return %b : tensor<4xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<pp = 2>} {
  func.func @shared(%x: tensor<4xf32>) -> tensor<4xf32> {
    %a = arith.addf %x, %x {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    // expected-error @+1 {{'arith.constant' op lies between decoder layers but belongs to none}}
    %c = arith.constant dense<1.0> : tensor<4xf32>
    %b = arith.addf %a, %c {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    %d = arith.addf %b, %c : tensor<4xf32>
    return %d : tensor<4xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<pp = 2>} {
  // expected-error @+1 {{'func.func' op passes 2 values between parts; moe-pipeline hands one (the hidden states) from stage to stage}}
  func.func @two_values(%x: tensor<4xf32>) -> tensor<4xf32> {
    %p = arith.negf %x : tensor<4xf32>
    %a = arith.addf %p, %p {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %a2 = arith.mulf %p, %p {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %b = arith.addf %a, %a2 {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    return %b : tensor<4xf32>
  }
}

// -----

// The final part may use only what the last layer hands on.
module attributes {moe.plan = #moe.plan<pp = 2>} {
  func.func @skips(%x: tensor<4xf32>) -> tensor<4xf32> {
    %p = arith.negf %x : tensor<4xf32>
    %a = arith.addf %p, %p {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %b = arith.addf %a, %a {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    // expected-error @+1 {{'arith.addf' op uses a value of another part of the model than the one before it; moe-pipeline hands only the hidden states from stage to stage}}
    %c = arith.addf %b, %a : tensor<4xf32>
    return %c : tensor<4xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<pp = 2>} {
  // expected-error @+1 {{'func.func' op must take the token ids and return the hidden states as static tensors with the sequences first, to be run by microbatches}}
  func.func @scalar_ids(%x: f32) -> f32 {
    %p = arith.negf %x : f32
    %a = arith.addf %p, %p {moe.decoder_layer = 0 : i64} : f32
    %b = arith.addf %a, %a {moe.decoder_layer = 1 : i64} : f32
    return %b : f32
  }
}

// -----

// A decode step of a generation program: its positions (role "batch") and
// its cache (role "kv-cache", [layers, rows, ...]) are read by microbatch
// rows; each stage reads its layers' cache ([1, ...], sliced at offset 0 by
// the template layer) and returns the stack of its layers' keys, the
// microbatches' stacked along the rows.
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[IDS:[^:]*]]: tensor<2x4xf32> {moe.parallel = "batch"}, %[[POS:[^:]*]]: tensor<2xi64> {moe.parallel = "batch"}, %[[CACHE:[^:]*]]: tensor<1x2x4xf32> {moe.parallel = "kv-cache"}, %{{[^:]*}}: tensor<1x4xf32> {moe.weight = "model.layers.{stage*1+0}.w"}) -> (tensor<2x4xf32>, tensor<1x2x4xf32>)
// CHECK: scf.for %{{.*}} = %{{.*}} to %c2 step %{{.*}} iter_args(%{{.*}} = %{{.*}}, %[[KACC:.*]] = %{{.*}}) -> (tensor<2x4xf32>, tensor<1x2x4xf32>)
// CHECK-DAG: tensor.extract_slice %[[POS]][%{{.*}}] [1] [1] : tensor<2xi64> to tensor<1xi64>
// CHECK-DAG: %[[MBCACHE:.*]] = tensor.extract_slice %[[CACHE]][0, %{{.*}}, 0] [1, 1, 4] [1, 1, 1] : tensor<1x2x4xf32> to tensor<1x1x4xf32>
// CHECK-DAG: %[[STACK:.*]] = tensor.empty() : tensor<1x1x4xf32>
// CHECK: tensor.extract_slice %[[MBCACHE]][0, 0, 0] [1, 1, 4] [1, 1, 1] {{.*}}: tensor<1x1x4xf32> to tensor<1x4xf32>
// CHECK: %[[MINE:.*]] = tensor.insert_slice %{{.*}} into %[[STACK]][0, 0, 0] [1, 1, 4] [1, 1, 1] : tensor<1x4xf32> into tensor<1x1x4xf32>
// CHECK: tensor.insert_slice %[[MINE]] into %[[KACC]][0, %{{.*}}, 0] [1, 1, 4] [1, 1, 1] : tensor<1x1x4xf32> into tensor<1x2x4xf32>
module attributes {moe.plan = #moe.plan<pp = 2>, moe.microbatches = 2 : i64} {
  shard.grid @moe_dense(shape = 2x1x1)
  func.func @decode(%ids: tensor<1x4xf32> {moe.parallel = "batch"},
                    %pos: tensor<1xi64> {moe.parallel = "batch"},
                    %cache: tensor<2x1x4xf32> {moe.parallel = "kv-cache"},
                    %w0: tensor<1x4xf32> {moe.weight = "model.layers.0.w"},
                    %w1: tensor<1x4xf32> {moe.weight = "model.layers.1.w"}) -> (tensor<1x4xf32>, tensor<2x1x4xf32>) {
    %stack = tensor.empty() : tensor<2x1x4xf32>
    %x = arith.addf %ids, %ids : tensor<1x4xf32>
    %c0 = tensor.extract_slice %cache[0, 0, 0] [1, 1, 4] [1, 1, 1] {moe.decoder_layer = 0 : i64} : tensor<2x1x4xf32> to tensor<1x4xf32>
    %p0 = arith.sitofp %pos {moe.decoder_layer = 0 : i64} : tensor<1xi64> to tensor<1xf32>
    %k0 = arith.mulf %x, %w0 {moe.decoder_layer = 0 : i64} : tensor<1x4xf32>
    %s0 = tensor.insert_slice %k0 into %stack[0, 0, 0] [1, 1, 4] [1, 1, 1] {moe.decoder_layer = 0 : i64} : tensor<1x4xf32> into tensor<2x1x4xf32>
    %y = arith.addf %k0, %c0 {moe.decoder_layer = 0 : i64} : tensor<1x4xf32>
    %c1 = tensor.extract_slice %cache[1, 0, 0] [1, 1, 4] [1, 1, 1] {moe.decoder_layer = 1 : i64} : tensor<2x1x4xf32> to tensor<1x4xf32>
    %p1 = arith.sitofp %pos {moe.decoder_layer = 1 : i64} : tensor<1xi64> to tensor<1xf32>
    %k1 = arith.mulf %y, %w1 {moe.decoder_layer = 1 : i64} : tensor<1x4xf32>
    %s1 = tensor.insert_slice %k1 into %s0[1, 0, 0] [1, 1, 4] [1, 1, 1] {moe.decoder_layer = 1 : i64} : tensor<1x4xf32> into tensor<2x1x4xf32>
    %z = arith.addf %k1, %c1 {moe.decoder_layer = 1 : i64} : tensor<1x4xf32>
    return %z, %s1 : tensor<1x4xf32>, tensor<2x1x4xf32>
  }
}

// -----

// A second result that is not a stack of the layers.
module attributes {moe.plan = #moe.plan<pp = 2>} {
  shard.grid @moe_dense(shape = 2x1x1)
  // expected-error @+1 {{'func.func' op returns #1, which is not a stack of its layers (a tensor.empty [2, ...] and one tensor.insert_slice per layer at the layer's offset); moe-pipeline returns the hidden states and such stacks}}
  func.func @not_a_stack(%ids: tensor<1x4xf32>, %w0: tensor<1x4xf32> {moe.weight = "model.layers.0.w"},
                         %w1: tensor<1x4xf32> {moe.weight = "model.layers.1.w"}) -> (tensor<1x4xf32>, tensor<1x4xf32>) {
    %x = arith.addf %ids, %ids : tensor<1x4xf32>
    %y = arith.mulf %x, %w0 {moe.decoder_layer = 0 : i64} : tensor<1x4xf32>
    %z = arith.mulf %y, %w1 {moe.decoder_layer = 1 : i64} : tensor<1x4xf32>
    return %z, %y : tensor<1x4xf32>, tensor<1x4xf32>
  }
}

// -----

// Layers of one stage may share more than the hidden states (ScMoE's
// shortcut: layer 1 reads a value of layer 0); only the stage boundary
// (between layers 1 and 2 here) must hand one value.
// CHECK-LABEL: func.func @shortcut_inside_a_stage
// CHECK: scf.for
// CHECK: shard.recv
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: shard.send
module attributes {moe.plan = #moe.plan<pp = 2>} {
  shard.grid @moe_dense(shape = 2x1x1)
  func.func @shortcut_inside_a_stage(%x: tensor<4xf32>) -> tensor<4xf32> {
    %p = arith.negf %x : tensor<4xf32>
    %u = arith.mulf %p, %p {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %a = arith.addf %u, %p {moe.decoder_layer = 0 : i64} : tensor<4xf32>
    %b = arith.addf %a, %u {moe.decoder_layer = 1 : i64} : tensor<4xf32>
    %u2 = arith.mulf %b, %b {moe.decoder_layer = 2 : i64} : tensor<4xf32>
    %a2 = arith.addf %u2, %b {moe.decoder_layer = 2 : i64} : tensor<4xf32>
    %b2 = arith.addf %a2, %u2 {moe.decoder_layer = 3 : i64} : tensor<4xf32>
    return %b2 : tensor<4xf32>
  }
}
