// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-shard | FileCheck %s
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-shard=keep-signature | FileCheck %s --check-prefix=KEEP
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-shard --moe-shard | FileCheck %s --check-prefix=TWICE

// dp=2, ep=2: tokens split over dp (@moe_dense axis 1), experts over ep
// (@moe_experts axis 2), the router replicated; the arguments carry their
// own annotation, the layer's operands an annotation for their user.

// CHECK-LABEL: shard.grid @moe_dense(shape = 1x2x1)
// CHECK-NEXT: shard.grid @moe_experts(shape = 1x1x2x1)
// CHECK-LABEL: func.func @dp_ep
// CHECK-SAME: (%[[X:.*]]: tensor<16x64xf32>, %[[R:.*]]: tensor<8x64xf32>, %[[UP:.*]]: tensor<8x128x64xf32>, %[[DOWN:.*]]: tensor<8x64x128xf32>, %[[GATE:.*]]: tensor<8x128x64xf32>)
// CHECK-DAG: %[[EXP:.*]] = shard.sharding @moe_experts split_axes = {{\[\[}}2]] : !shard.sharding
// CHECK-DAG: %[[UPS:.*]] = shard.shard %[[UP]] to %{{.*}} : tensor<8x128x64xf32>
// CHECK-DAG: %[[REP:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}]] : !shard.sharding
// CHECK-DAG: %[[RS:.*]] = shard.shard %[[R]] to %[[REP]] : tensor<8x64xf32>
// CHECK-DAG: %[[TOK:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}1]] : !shard.sharding
// CHECK-DAG: %[[XS:.*]] = shard.shard %[[X]] to %[[TOK]] : tensor<16x64xf32>
// CHECK: %[[XU:.*]] = shard.shard %[[XS]] to %{{.*}} annotate_for_users : tensor<16x64xf32>
// CHECK: %[[RU:.*]] = shard.shard %[[RS]] to %{{.*}} annotate_for_users : tensor<8x64xf32>
// CHECK: %[[UPU:.*]] = shard.shard %[[UPS]] to %{{.*}} annotate_for_users : tensor<8x128x64xf32>
// CHECK: %[[Y:.*]] = moe.layer %[[XU]] router %[[RU]] experts(up %[[UPU]]
// CHECK: %[[YS:.*]] = shard.shard %[[Y]] to %{{.*}} : tensor<16x64xf32>
// CHECK: %[[SUM:.*]] = arith.addf %[[XS]], %[[YS]]
// CHECK: return %[[SUM]]

// With keep-signature the arguments are not annotated and the returned value
// is gathered to replicated.
// KEEP-LABEL: func.func @dp_ep
// KEEP-NOT: {{shard.shard %arg[0-9]+ to %[a-z_0-9]+ :}}
// KEEP: moe.layer
// KEEP: %[[REP:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}]] : !shard.sharding
// KEEP-NEXT: %[[OUT:.*]] = shard.shard %{{.*}} to %[[REP]] annotate_for_users : tensor<16x64xf32>
// KEEP-NEXT: return %[[OUT]]

// A second run leaves annotated layers alone.
// TWICE-LABEL: func.func @dp_ep
// TWICE-COUNT-11: shard.shard %
// TWICE-NOT: shard.shard %
// TWICE: return
module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  func.func @dp_ep(%x: tensor<16x64xf32>, %r: tensor<8x64xf32>,
                   %up: tensor<8x128x64xf32>, %down: tensor<8x64x128xf32>,
                   %gate: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
    %y = moe.layer %x router %r experts(up %up down %down gate %gate)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<16x64xf32>, tensor<8x64xf32>, tensor<8x128x64xf32>,
           tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
    %h = arith.addf %x, %y : tensor<16x64xf32>
    return %h : tensor<16x64xf32>
  }
}

// -----

// tp=2, etp=2 with a shared expert: tokens replicated (dp = 1), every
// expert's width split over etp (@moe_experts axis 3) — rows of up/gate,
// columns of down — and the shared expert's width too; the shared gate is
// replicated.

// CHECK-LABEL: shard.grid @moe_dense(shape = 1x1x2)
// CHECK-NEXT: shard.grid @moe_experts(shape = 1x1x1x2)
// CHECK-LABEL: func.func @etp_shared
// CHECK-DAG: shard.sharding @moe_experts split_axes = {{\[\[}}], [3]] : !shard.sharding
// CHECK-DAG: shard.sharding @moe_experts split_axes = {{\[\[}}], [], [3]] : !shard.sharding
// CHECK-DAG: shard.sharding @moe_experts split_axes = {{\[\[}}3]] : !shard.sharding
// CHECK-DAG: shard.sharding @moe_experts split_axes = {{\[\[}}], [3]] : !shard.sharding
// CHECK-NOT: split_axes = {{\[\[}}1]]
// CHECK: moe.layer
module attributes {moe.plan = #moe.plan<tp = 2, etp = 2>} {
  func.func @etp_shared(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                        %up: tensor<4x32x16xf32>, %down: tensor<4x16x32xf32>,
                        %gate: tensor<4x32x16xf32>, %sup: tensor<8x16xf32>,
                        %sdown: tensor<16x8xf32>, %sgate: tensor<8x16xf32>,
                        %g: tensor<1x16xf32>) -> tensor<8x16xf32> {
    %y = moe.layer %x router %r experts(up %up down %down gate %gate)
        shared(up %sup down %sdown gate %sgate) shared_gate %g
        k = 2 score = softmax activation = silu_glu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<8x16xf32>,
           tensor<16x8xf32>, tensor<8x16xf32>, tensor<1x16xf32>)
        -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// A plan of one rank: everything replicated.
// CHECK-LABEL: func.func @one_rank
// CHECK-NOT: split_axes = {{\[\[}}{{[0-9]}}
// CHECK: return
module attributes {moe.plan = #moe.plan<dp = 1>} {
  func.func @one_rank(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                      %up: tensor<4x32x16xf32>, %down: tensor<4x16x32xf32>)
      -> tensor<8x16xf32> {
    %y = moe.layer %x router %r experts(up %up down %down)
        k = 1 score = softmax activation = relu capacity = 3
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// expected-error @+1 {{moe-shard needs the module's plan: a 'moe.plan' attribute such as #moe.plan<dp = 2, ep = 2>}}
module {
  func.func @no_plan(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
    return %x : tensor<8x16xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  // expected-error @+1 {{'shard.grid' op has shape 1x4x1 but the module's plan #moe.plan<dp = 2, ep = 2> needs 1x2x1}}
  shard.grid @moe_dense(shape = 1x4x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
}

// -----

module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  func.func @nested(%c: i1, %x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                    %up: tensor<4x32x16xf32>, %down: tensor<4x16x32xf32>)
      -> tensor<8x16xf32> {
    %y = scf.if %c -> tensor<8x16xf32> {
      // expected-error @+1 {{'moe.layer' op is not in the single block of its function's body; moe-shard annotates only such layers}}
      %l = moe.layer %x router %r experts(up %up down %down)
          k = 1 score = softmax activation = relu
          : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
             tensor<4x16x32xf32>) -> tensor<8x16xf32>
      scf.yield %l : tensor<8x16xf32>
    } else {
      scf.yield %x : tensor<8x16xf32>
    }
    return %y : tensor<8x16xf32>
  }
}

// -----

// Grids half defined: the dense grid without the expert grid.
// expected-error @+1 {{moe-shard: the module defines one of @moe_dense and @moe_experts but not the other as a shard.grid}}
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
}

// -----

// Arguments by their moe.parallel role: the ids over dp, a column-parallel
// weight by rows and a row-parallel one by columns over tp, a key/value
// cache [L, B, M, kv heads, d] by sequences over dp and heads over tp; an
// argument without a role is left alone (replicated).
// CHECK-LABEL: func.func @roles
// CHECK-DAG: %[[DP:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}1]] : !shard.sharding
// CHECK-DAG: %[[ROWS:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}2]] : !shard.sharding
// CHECK-DAG: %[[COLS:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}], [2]] : !shard.sharding
// CHECK-DAG: %[[CACHE:.*]] = shard.sharding @moe_dense split_axes = {{\[\[}}], [1], [], [2]] : !shard.sharding
// CHECK-DAG: shard.shard %arg4 to %[[CACHE]] : tensor<2x2x6x2x4xf32>
// CHECK-DAG: shard.shard %arg0 to %[[DP]] : tensor<2x4xi64>
// CHECK-DAG: shard.shard %arg1 to %[[ROWS]] : tensor<8x16xf32>
// CHECK-DAG: shard.shard %arg2 to %[[COLS]] : tensor<16x8xf32>
// CHECK-NOT: shard.shard %arg3
// KEEP-LABEL: func.func @roles
// KEEP-NOT: shard.shard
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2>} {
  func.func @roles(%ids: tensor<2x4xi64> {moe.parallel = "batch"},
                   %q: tensor<8x16xf32> {moe.parallel = "column"},
                   %o: tensor<16x8xf32> {moe.parallel = "row"},
                   %n: tensor<16xf32>,
                   %cache: tensor<2x2x6x2x4xf32> {moe.parallel = "kv-cache"}) {
    return
  }
}

// -----

module attributes {moe.plan = #moe.plan<tp = 2>} {
  // expected-error @+1 {{'func.func' op argument #0 has moe.parallel = "diagonal"; expected "batch", "column", "row" or "kv-cache"}}
  func.func @bad_role(%w: tensor<8x16xf32> {moe.parallel = "diagonal"}) {
    return
  }
}

// -----

module attributes {moe.plan = #moe.plan<tp = 2>} {
  // expected-error @+1 {{'func.func' op argument #0 of type 'tensor<8xf32>' cannot be "row"-parallel (it has fewer than 2 dimensions)}}
  func.func @row_of_vector(%w: tensor<8xf32> {moe.parallel = "row"}) {
    return
  }
}

// -----

module attributes {moe.plan = #moe.plan<dp = 2>} {
  // expected-error @+1 {{'func.func' op argument #0 of type 'tensor<2x6x4xf32>' cannot be "kv-cache"-parallel (it has fewer than 5 dimensions)}}
  func.func @flat_cache(%c: tensor<2x6x4xf32> {moe.parallel = "kv-cache"}) {
    return
  }
}
