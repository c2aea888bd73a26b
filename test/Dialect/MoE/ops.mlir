// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s
//
// Round-trips every moe op, every optional piece of their syntax, and the
// #moe.plan attribute.

// CHECK-LABEL: func @router_softmax_renormalize
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[W:.*]]: tensor<4x16xf32>)
func.func @router_softmax_renormalize(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>) {
  // CHECK: %{{.*}}, %{{.*}} = moe.router %[[X]] weight %[[W]] k = 2 score = softmax renormalize
  // CHECK-SAME: : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  %weights, %ids = moe.router %x weight %w k = 2 score = softmax renormalize : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return %weights, %ids : tensor<8x2xf32>, tensor<8x2xi32>
}

// CHECK-LABEL: func @router_sigmoid_bias_dynamic_tokens
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xbf16>, %[[W:.*]]: tensor<8x16xbf16>, %[[B:.*]]: tensor<8xbf16>)
func.func @router_sigmoid_bias_dynamic_tokens(%x: tensor<?x16xbf16>, %w: tensor<8x16xbf16>, %b: tensor<8xbf16>) -> (tensor<?x4xbf16>, tensor<?x4xi64>) {
  // CHECK: moe.router %[[X]] weight %[[W]] bias %[[B]] k = 4 score = sigmoid :
  // CHECK-NOT: renormalize
  // CHECK-SAME: -> (tensor<?x4xbf16>, tensor<?x4xi64>)
  %weights, %ids = moe.router %x weight %w bias %b k = 4 score = sigmoid : (tensor<?x16xbf16>, tensor<8x16xbf16>, tensor<8xbf16>) -> (tensor<?x4xbf16>, tensor<?x4xi64>)
  return %weights, %ids : tensor<?x4xbf16>, tensor<?x4xi64>
}

// CHECK-LABEL: func @dispatch_with_capacity
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[IDS:.*]]: tensor<8x2xi32>)
func.func @dispatch_with_capacity(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) -> (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>) {
  // CHECK: moe.dispatch %[[X]] experts %[[IDS]] :
  // CHECK-SAME: -> (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  %buffer, %slots, %counts = moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return %buffer, %slots, %counts : tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>
}

// CHECK-LABEL: func @dispatch_dropless
func.func @dispatch_dropless(%x: tensor<8x16xf16>, %ids: tensor<8x1xi64>) -> (tensor<2x8x16xf16>, tensor<8x1xi64>, tensor<2xi64>) {
  // CHECK: moe.dispatch %{{.*}} experts %{{.*}} dropless :
  %buffer, %slots, %counts = moe.dispatch %x experts %ids dropless : (tensor<8x16xf16>, tensor<8x1xi64>) -> (tensor<2x8x16xf16>, tensor<8x1xi64>, tensor<2xi64>)
  return %buffer, %slots, %counts : tensor<2x8x16xf16>, tensor<8x1xi64>, tensor<2xi64>
}

// CHECK-LABEL: func @experts_silu_glu
// CHECK-SAME: (%[[B:.*]]: tensor<4x3x16xf32>, %[[G:.*]]: tensor<4x32x16xf32>, %[[U:.*]]: tensor<4x32x16xf32>, %[[D:.*]]: tensor<4x16x32xf32>)
func.func @experts_silu_glu(%buf: tensor<4x3x16xf32>, %g: tensor<4x32x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) -> tensor<4x3x16xf32> {
  // CHECK: moe.experts %[[B]] gate %[[G]] up %[[U]] down %[[D]] activation = silu_glu
  %y = moe.experts %buf gate %g up %u down %d activation = silu_glu : (tensor<4x3x16xf32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x3x16xf32>
  return %y : tensor<4x3x16xf32>
}

// CHECK-LABEL: func @experts_with_counts
// CHECK-SAME: (%[[B:.*]]: tensor<4x3x16xf32>, %[[N:.*]]: tensor<4xi32>,
func.func @experts_with_counts(%buf: tensor<4x3x16xf32>, %n: tensor<4xi32>, %g: tensor<4x32x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) -> tensor<4x3x16xf32> {
  // CHECK: moe.experts %[[B]] counts %[[N]] gate %{{.*}} up %{{.*}} down %{{.*}} activation = silu_glu
  %y = moe.experts %buf counts %n gate %g up %u down %d activation = silu_glu : (tensor<4x3x16xf32>, tensor<4xi32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x3x16xf32>
  return %y : tensor<4x3x16xf32>
}

// CHECK-LABEL: func @experts_gelu_and_relu
func.func @experts_gelu_and_relu(%buf: tensor<4x3x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) -> (tensor<4x3x16xf32>, tensor<4x3x16xf32>) {
  // CHECK: moe.experts %{{.*}} up %{{.*}} down %{{.*}} activation = gelu
  // CHECK: moe.experts %{{.*}} up %{{.*}} down %{{.*}} activation = relu
  %a = moe.experts %buf up %u down %d activation = gelu : (tensor<4x3x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x3x16xf32>
  %b = moe.experts %buf up %u down %d activation = relu : (tensor<4x3x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x3x16xf32>
  return %a, %b : tensor<4x3x16xf32>, tensor<4x3x16xf32>
}

// CHECK-LABEL: func @combine
// CHECK-SAME: (%[[Y:.*]]: tensor<4x3x16xf32>, %[[S:.*]]: tensor<8x2xi32>, %[[I:.*]]: tensor<8x2xi32>, %[[W:.*]]: tensor<8x2xf32>)
func.func @combine(%y: tensor<4x3x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf32>) -> tensor<8x16xf32> {
  // CHECK: moe.combine %[[Y]] slots %[[S]] experts %[[I]] weights %[[W]] :
  // CHECK-SAME: -> tensor<8x16xf32>
  %out = moe.combine %y slots %s experts %i weights %w : (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
  return %out : tensor<8x16xf32>
}

// CHECK-LABEL: func @layer_mixtral_style
func.func @layer_mixtral_style(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w1: tensor<4x32x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
  // CHECK: moe.layer %{{.*}} router %{{.*}} experts(up %{{.*}} down %{{.*}} gate %{{.*}}) k = 2 score = softmax renormalize activation = silu_glu :
  %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// CHECK-LABEL: func @layer_qwen_style_shared_experts
func.func @layer_qwen_style_shared_experts(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w1: tensor<4x32x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %g: tensor<1x16xf32>) -> tensor<8x16xf32> {
  // CHECK: moe.layer %{{.*}} experts(up %{{.*}} down %{{.*}} gate %{{.*}}) shared(up %{{.*}} down %{{.*}} gate %{{.*}}) shared_gate %{{.*}} k = 4 score = softmax activation = silu_glu :
  %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) shared_gate %g k = 4 score = softmax activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<1x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// CHECK-LABEL: func @layer_switch_style_capacity
func.func @layer_switch_style_capacity(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %b: tensor<4xf32>, %wi: tensor<4x32x16xf32>, %wo: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
  // CHECK: moe.layer %{{.*}} router %{{.*}} bias %{{.*}} experts(up %{{.*}} down %{{.*}}) k = 1 score = sigmoid activation = relu capacity = 3 :
  %y = moe.layer %x router %wr bias %b experts(up %wi down %wo) k = 1 score = sigmoid activation = relu capacity = 3 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// CHECK-LABEL: func @plans
// CHECK: plan.default = #moe.plan<>
// CHECK-SAME: plan.degrees = #moe.plan<dp = 2, tp = 4, ep = 4, etp = 2, pp = 2>
// CHECK-SAME: plan.per_layer = #moe.plan<tp = 2, ep = 2, dispatch = [a2a, slice_allreduce]>
// CHECK-SAME: plan.slice = #moe.plan<tp = 4, ep = 4, dispatch = slice_allreduce>
func.func @plans() attributes {
    plan.default = #moe.plan<>,
    plan.degrees = #moe.plan<pp = 2, etp = 2, ep = 4, tp = 4, dp = 2, world = 16>,
    plan.slice = #moe.plan<tp = 4, ep = 4, dispatch = slice_allreduce>,
    plan.per_layer = #moe.plan<tp = 2, ep = 2, dispatch = [a2a, slice_allreduce]>} {
  return
}

shard.grid @moe_experts(shape = 1x1x2x1)

// CHECK-LABEL: func @async_collective
// CHECK-SAME: (%[[X:.*]]: tensor<4x2x8xf32>)
// CHECK: %[[F:.*]] = moe.async_start %[[X]] : tensor<4x2x8xf32> -> !moe.future<tensor<2x4x8xf32>> {
// CHECK: ^bb0(%[[IN:.*]]: tensor<4x2x8xf32>):
// CHECK: %[[R:.*]] = shard.all_to_all %[[IN]]
// CHECK: moe.yield %[[R]] : tensor<2x4x8xf32>
// CHECK: %[[W:.*]] = moe.async_wait %[[F]] : !moe.future<tensor<2x4x8xf32>>
// CHECK: return %[[W]]
func.func @async_collective(%x: tensor<4x2x8xf32>) -> tensor<2x4x8xf32> {
  %f = moe.async_start %x : tensor<4x2x8xf32> -> !moe.future<tensor<2x4x8xf32>> {
  ^bb0(%in: tensor<4x2x8xf32>):
    %r = shard.all_to_all %in on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
    moe.yield %r : tensor<2x4x8xf32>
  }
  %w = moe.async_wait %f : !moe.future<tensor<2x4x8xf32>>
  return %w : tensor<2x4x8xf32>
}
