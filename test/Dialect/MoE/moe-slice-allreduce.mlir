// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-slice-allreduce | FileCheck %s
// Runs without diagnostics checking fail on the last case (no plan), hence
// `not`; their output is checked all the same.
// RUN: not moe-opt %s --split-input-file --moe-slice-allreduce=layers=1 2>/dev/null | FileCheck %s --check-prefix=OTHER
// RUN: not moe-opt %s --split-input-file --moe-slice-allreduce=strict=1 2>&1 >/dev/null | FileCheck %s --check-prefix=STRICT

// tp=2, ep=2: the tokens are whole on both ranks (tokens_split is empty), so
// each rank keeps its two experts' rows of the dispatch buffer, computes
// only their filled rows, and one all-reduce over the ep group sums the
// partial outputs. No all-to-all is left.

// CHECK-LABEL: func.func @tp_ep
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[R:.*]]: tensor<4x16xf32>, %[[UP:.*]]: tensor<2x32x16xf32>, %[[DOWN:.*]]: tensor<2x16x32xf32>)
// CHECK-NEXT: %[[W:.*]], %[[IDS:.*]] = moe.router %[[X]] weight %[[R]]
// CHECK-NEXT: %[[BUF:.*]], %[[SLOTS:.*]], %[[COUNTS:.*]] = moe.dispatch %[[X]] experts %[[IDS]] dropless
// CHECK-NEXT: %[[E:.*]] = shard.process_multi_index on @moe_experts axes = [2] : index
// CHECK-NEXT: %[[TWO:.*]] = arith.constant 2 : index
// CHECK-NEXT: %[[FIRST:.*]] = arith.muli %[[E]], %[[TWO]] : index
// CHECK-NEXT: %[[MINE:.*]] = tensor.extract_slice %[[BUF]][%[[FIRST]], 0, 0] [2, 8, 16] [1, 1, 1] : tensor<4x8x16xf32> to tensor<2x8x16xf32>
// CHECK-NEXT: %[[N:.*]] = tensor.extract_slice %[[COUNTS]][%[[FIRST]]] [2] [1] : tensor<4xi32> to tensor<2xi32>
// CHECK-NEXT: %[[OUT:.*]] = moe.experts %[[MINE]] counts %[[N]] up %[[UP]] down %[[DOWN]] activation = gelu : (tensor<2x8x16xf32>, tensor<2xi32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x8x16xf32>
// CHECK: %[[ZEROS:.*]] = linalg.fill {{.*}} -> tensor<4x8x16xf32>
// CHECK-NEXT: %[[FULL:.*]] = tensor.insert_slice %[[OUT]] into %[[ZEROS]][%[[FIRST]], 0, 0] [2, 8, 16] [1, 1, 1] : tensor<2x8x16xf32> into tensor<4x8x16xf32>
// CHECK-NEXT: %[[PART:.*]] = moe.combine %[[FULL]] slots %[[SLOTS]] experts %[[IDS]] weights %[[W]]
// CHECK-NEXT: %[[Y:.*]] = shard.all_reduce %[[PART]] on @moe_experts grid_axes = [2] : tensor<8x16xf32> -> tensor<8x16xf32>
// CHECK-NEXT: return %[[Y]]
// CHECK-NOT: shard.all_to_all

// With layers=1 the pass leaves layer 0 alone; strict makes every remark
// below an error.
// STRICT: error: moe-slice-allreduce does not apply: the tokens are split over dp = 2
// STRICT: error: moe-slice-allreduce does not apply: the dispatch does not record how its tokens are sharded
// STRICT: error: moe-slice-allreduce does not apply: the experts' output does not go back through an all_to_all
// OTHER-LABEL: func.func @tp_ep
// OTHER: shard.all_to_all
// OTHER: shard.all_to_all
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @tp_ep(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// tp=4, ep=2, etp=2: the expert-tensor-parallel all-reduce that ends the
// block and the new ep one become a single all-reduce over the tp group.

// CHECK-LABEL: func.func @merged
// CHECK: %[[PART:.*]] = moe.combine
// CHECK-NEXT: %[[Y:.*]] = shard.all_reduce %[[PART]] on @moe_dense grid_axes = [2] : tensor<8x16xf32> -> tensor<8x16xf32>
// CHECK-NEXT: return %[[Y]]
module attributes {moe.plan = #moe.plan<tp = 4, ep = 2, etp = 2>} {
  shard.grid @moe_dense(shape = 1x1x4)
  shard.grid @moe_experts(shape = 1x1x2x2)
  func.func @merged(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x16x16xf32>, %down: tensor<2x16x16xf32>) -> tensor<8x16xf32> {
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

// dp=2, ep=2 (tp = 1): each rank has other tokens, and the ep group spans
// both, so the experts' ranks do not have the tokens: unchanged, a remark.

// CHECK-LABEL: func.func @dp_ep
// CHECK: shard.all_to_all
// CHECK: shard.all_to_all
module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @dp_ep(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    // expected-remark @+1 {{moe-slice-allreduce does not apply: the tokens are split over dp = 2 and the expert-parallel group spans data-parallel ranks (ep * etp = 2 does not divide tp = 1)}}
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16: 1>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// A dispatch without a recorded token sharding: replication is not proven.
// CHECK-LABEL: func.func @unknown
// CHECK: shard.all_to_all
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @unknown(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> tensor<8x16xf32> {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    // expected-remark @+1 {{moe-slice-allreduce does not apply: the dispatch does not record how its tokens are sharded (moe.tokens_split): it was not built by moe-partition or the importer}}
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// The expert outputs are used twice: not the a2a form the pass rewrites.
// CHECK-LABEL: func.func @extra_use
// CHECK: shard.all_to_all
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @extra_use(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<2x32x16xf32>, %down: tensor<2x16x32xf32>) -> (tensor<8x16xf32>, tensor<2x16x16xf32>) {
    %w, %ids = moe.router %x weight %r k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    // expected-remark @+1 {{moe-slice-allreduce does not apply: the experts' output does not go back through an all_to_all}}
    %buf, %slots, %counts = moe.dispatch %x experts %ids dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16>} : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
    %in = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
    %out = moe.experts %in up %up down %down activation = gelu : (tensor<2x16x16xf32>, tensor<2x32x16xf32>, tensor<2x16x32xf32>) -> tensor<2x16x16xf32>
    %back = shard.all_to_all %out on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
    %y = moe.combine %back slots %slots experts %ids weights %w : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
    return %y, %out : tensor<8x16xf32>, tensor<2x16x16xf32>
  }
}

// -----

// expected-error @+1 {{moe-slice-allreduce needs the module's #moe.plan}}
module {
}
