// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-dedup-tokens | FileCheck %s
// Runs without diagnostics checking fail on the last case (no plan), hence
// `not`; their output is checked all the same.
// RUN: not moe-opt %s --split-input-file --moe-dedup-tokens=strict=1 2>&1 >/dev/null | FileCheck %s --check-prefix=STRICT
// RUN: not moe-opt %s --split-input-file --moe-dedup-tokens --moe-slice-allreduce 2>&1 | FileCheck %s --check-prefix=THEN

// dp=2, tp=2, ep=4: the 8 tokens of a rank are replicated over its tp
// group. Each tp rank routes and dispatches its 4 of them, the all-to-all
// carries [8, 4, 16] instead of [8, 8, 16] (half the bytes), and an
// all-gather over the tp group after the combine gives all 8 rows back.

// CHECK-LABEL: func.func @dedup
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[R:.*]]: tensor<8x16xf32>, %[[UP:.*]]: tensor<2x32x16xf32>, %[[DOWN:.*]]: tensor<2x16x32xf32>)
// CHECK-NEXT: %[[T:.*]] = shard.process_multi_index on @moe_dense axes = [2] : index
// CHECK-NEXT: %[[FOUR:.*]] = arith.constant 4 : index
// CHECK-NEXT: %[[OFF:.*]] = arith.muli %[[T]], %[[FOUR]] : index
// CHECK-NEXT: %[[XS:.*]] = tensor.extract_slice %[[X]][%[[OFF]], 0] [4, 16] [1, 1] : tensor<8x16xf32> to tensor<4x16xf32>
// CHECK-NEXT: %[[W:.*]], %[[IDS:.*]] = moe.router %[[XS]] weight %[[R]] k = 2 score = softmax renormalize : (tensor<4x16xf32>, tensor<8x16xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>)
// CHECK-NEXT: %[[BUF:.*]], %[[SLOTS:.*]], %{{.*}} = moe.dispatch %[[XS]] experts %[[IDS]] dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16: 1, 2>} : (tensor<4x16xf32>, tensor<4x2xi32>) -> (tensor<8x4x16xf32>, tensor<4x2xi32>, tensor<8xi32>)
// CHECK-NEXT: %[[IN:.*]] = shard.all_to_all %[[BUF]] on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x4x16xf32> -> tensor<2x16x16xf32>
// CHECK-NEXT: %[[OUT:.*]] = moe.experts %[[IN]] up %[[UP]] down %[[DOWN]]
// CHECK-NEXT: %[[BACK:.*]] = shard.all_to_all %[[OUT]] on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<8x4x16xf32>
// CHECK-NEXT: %[[YS:.*]] = moe.combine %[[BACK]] slots %[[SLOTS]] experts %[[IDS]] weights %[[W]] : (tensor<8x4x16xf32>, tensor<4x2xi32>, tensor<4x2xi32>, tensor<4x2xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[Y:.*]] = shard.all_gather %[[YS]] on @moe_dense grid_axes = [2] gather_axis = 0 : tensor<4x16xf32> -> tensor<8x16xf32>
// CHECK-NEXT: return %[[Y]] : tensor<8x16xf32>

// The rewritten layer's tokens are split over tp now, so PPMoE's rewrite no
// longer applies after it.
// THEN: remark: moe-slice-allreduce does not apply: the tokens are split over the tensor-parallel axis
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 4>} {
  shard.grid @moe_dense(shape = 1x2x2)
  shard.grid @moe_experts(shape = 1x1x4x1)
  func.func @dedup(%x: tensor<8x16xf32>, %r: tensor<8x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax renormalize : (tensor<8x16xf32>, tensor<8x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16: 1>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<8x8x16xf32>, tensor<8x2xi32>, tensor<8xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x8x16xf32> -> tensor<2x32x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x32x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x32x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x32x16xf32> -> tensor<8x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<8x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// tp=4, ep=2, etp=2: after the all-to-all the etp group gathers its rows,
// computes its slices on all of them and reduce-scatters the sums; the etp
// all_reduce that ended the block is gone.

// CHECK-LABEL: func.func @with_etp
// CHECK: %[[IN:.*]] = shard.all_to_all %{{.*}} : tensor<4x2x16xf32> -> tensor<2x4x16xf32>
// CHECK: %[[ROWS:.*]] = linalg.transpose ins(%[[IN]] : tensor<2x4x16xf32>) {{.*}} permutation = [1, 0, 2]
// CHECK-NEXT: %[[ALL:.*]] = shard.all_gather %[[ROWS]] on @moe_experts grid_axes = [3] gather_axis = 0 : tensor<4x2x16xf32> -> tensor<8x2x16xf32>
// CHECK: %[[EIN:.*]] = linalg.transpose ins(%[[ALL]] : tensor<8x2x16xf32>)
// CHECK-NEXT: %[[PART:.*]] = moe.experts %[[EIN]] {{.*}} -> tensor<2x8x16xf32>
// CHECK: %[[PROWS:.*]] = linalg.transpose ins(%[[PART]] : tensor<2x8x16xf32>)
// CHECK-NEXT: %[[SUM:.*]] = shard.reduce_scatter %[[PROWS]] on @moe_experts grid_axes = [3] scatter_axis = 0 : tensor<8x2x16xf32> -> tensor<4x2x16xf32>
// CHECK: %[[OUT:.*]] = linalg.transpose ins(%[[SUM]] : tensor<4x2x16xf32>)
// CHECK-NEXT: shard.all_to_all %[[OUT]]
// CHECK-NEXT: %[[YS:.*]] = moe.combine
// CHECK-NEXT: %[[Y:.*]] = shard.all_gather %[[YS]] on @moe_dense grid_axes = [2] gather_axis = 0 : tensor<2x16xf32> -> tensor<8x16xf32>
// CHECK-NEXT: return %[[Y]]
module attributes {moe.plan = #moe.plan<tp = 4, ep = 2, etp = 2>} {
  shard.grid @moe_dense(shape = 1x1x4)
  shard.grid @moe_experts(shape = 1x1x2x2)
  func.func @with_etp(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x16x16xf32>, %down: tensor<2x16x16xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    %sum = shard.all_reduce %y on @moe_experts grid_axes = [3] : tensor<8x16xf32> -> tensor<8x16xf32>
    return %sum : tensor<8x16xf32>
  }
}

// -----

// With etp > 1 and something between the combine and the etp all_reduce
// (here a residual add standing for a shared expert), the rows cannot be
// completed early: unchanged.
// CHECK-LABEL: func.func @etp_shared
// CHECK: moe.dispatch %{{.*}} : (tensor<8x16xf32>
module attributes {moe.plan = #moe.plan<tp = 4, ep = 2, etp = 2>} {
  shard.grid @moe_dense(shape = 1x1x4)
  shard.grid @moe_experts(shape = 1x1x2x2)
  func.func @etp_shared(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x16x16xf32>, %down: tensor<2x16x16xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    // expected-remark @+1 {{moe-dedup-tokens does not apply: with etp > 1 the combined output must go straight to the expert-tensor-parallel all_reduce (a shared expert in between is not supported)}}
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    %h = arith.addf %y, %x : tensor<8x16xf32>
    %sum = shard.all_reduce %h on @moe_experts grid_axes = [3] : tensor<8x16xf32> -> tensor<8x16xf32>
    return %sum : tensor<8x16xf32>
  }
}

// -----

// tp = 1: no duplicates to drop.
// CHECK-LABEL: func.func @no_tp
// CHECK: moe.dispatch %{{.*}} : (tensor<8x16xf32>
// STRICT: error: moe-dedup-tokens does not apply: tp = 1: the tokens have no tensor-parallel duplicates
module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @no_tp(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    // expected-remark @+1 {{moe-dedup-tokens does not apply: tp = 1: the tokens have no tensor-parallel duplicates}}
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16: 1>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// Three tokens do not split over tp = 2.
// STRICT: error: moe-dedup-tokens does not apply: tp = 2 does not divide the 3 tokens of a rank
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @odd(%x: tensor<3x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> tensor<3x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<3x16xf32>, tensor<4x16xf32>) -> (tensor<3x2xf32>, tensor<3x2xi32>)
    // expected-remark @+1 {{moe-dedup-tokens does not apply: tp = 2 does not divide the 3 tokens of a rank}}
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16>} : (tensor<3x16xf32>, tensor<3x2xi32>) -> (tensor<4x3x16xf32>, tensor<3x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x3x16xf32> -> tensor<2x6x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x6x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x6x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x6x16xf32> -> tensor<4x3x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x3x16xf32>, tensor<3x2xi32>, tensor<3x2xi32>, tensor<3x2xf32>) -> tensor<3x16xf32>
    return %y : tensor<3x16xf32>
  }
}

// -----

// expected-error @+1 {{moe-dedup-tokens needs the module's #moe.plan}}
module {
}
