// RUN: moe-opt %s --moe-decompose --split-input-file --verify-diagnostics | FileCheck %s

// A dropless layer: capacity = token count, `dropless` on the dispatch.
// CHECK-LABEL: func @dropless_silu_glu
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[WR:.*]]: tensor<4x16xf32>, %[[UP:.*]]: tensor<4x32x16xf32>, %[[DOWN:.*]]: tensor<4x16x32xf32>, %[[GATE:.*]]: tensor<4x32x16xf32>)
func.func @dropless_silu_glu(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>) -> tensor<8x16xf32> {
  // CHECK-NOT: moe.layer
  // CHECK:      %[[W:.*]], %[[IDS:.*]] = moe.router %[[X]] weight %[[WR]] k = 2 score = softmax renormalize : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  // CHECK-NEXT: %[[BUF:.*]], %[[SLOTS:.*]], %[[COUNTS:.*]] = moe.dispatch %[[X]] experts %[[IDS]] dropless : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  // CHECK-NEXT: %[[OUT:.*]] = moe.experts %[[BUF]] counts %[[COUNTS]] gate %[[GATE]] up %[[UP]] down %[[DOWN]] activation = silu_glu
  // CHECK-NEXT: %[[Y:.*]] = moe.combine %[[OUT]] slots %[[SLOTS]] experts %[[IDS]] weights %[[W]] : (tensor<4x8x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
  // CHECK-NEXT: return %[[Y]]
  %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// A Switch-style layer: explicit capacity, router bias, no gate, and a dynamic
// token count (allowed because the capacity is given).
// CHECK-LABEL: func @capacity_relu_dynamic_tokens
func.func @capacity_relu_dynamic_tokens(%x: tensor<?x16xf32>, %wr: tensor<4x16xf32>, %b: tensor<4xf32>, %wi: tensor<4x32x16xf32>, %wo: tensor<4x16x32xf32>) -> tensor<?x16xf32> {
  // CHECK: moe.router %{{.*}} weight %{{.*}} bias %{{.*}} k = 1 score = sigmoid : {{.*}} -> (tensor<?x1xf32>, tensor<?x1xi32>)
  // CHECK-NOT: dropless
  // CHECK: moe.dispatch {{.*}} -> (tensor<4x3x16xf32>, tensor<?x1xi32>, tensor<4xi32>)
  // CHECK: moe.experts %{{.*}} counts %{{.*}} up %{{.*}} down %{{.*}} activation = relu
  // CHECK: moe.combine {{.*}} -> tensor<?x16xf32>
  %y = moe.layer %x router %wr bias %b experts(up %wi down %wo) k = 1 score = sigmoid activation = relu capacity = 3 : (tensor<?x16xf32>, tensor<4x16xf32>, tensor<4xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Shared experts with a sigmoid gate (Qwen2-MoE): one more moe.experts over
// all tokens as a single expert, the gate logit as a reduction, and the gated
// sum.
// CHECK-LABEL: func @shared_experts_with_gate
// CHECK-SAME: (%[[X:[^:]*]]: tensor<8x16xf32>, {{.*}}, %[[SU:[^:]*]]: tensor<24x16xf32>, %[[SD:[^:]*]]: tensor<16x24xf32>, %[[SG:[^:]*]]: tensor<24x16xf32>, %[[G:[^:]*]]: tensor<1x16xf32>)
func.func @shared_experts_with_gate(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %sg: tensor<24x16xf32>, %g: tensor<1x16xf32>) -> tensor<8x16xf32> {
  // CHECK: %[[ROUTED:.*]] = moe.combine
  // CHECK-DAG: %[[X3:.*]] = tensor.expand_shape %[[X]] {{\[\[}}0, 1], [2]] output_shape [1, 8, 16]
  // CHECK-DAG: %[[SG3:.*]] = tensor.expand_shape %[[SG]] {{.*}} into tensor<1x24x16xf32>
  // CHECK-DAG: %[[SU3:.*]] = tensor.expand_shape %[[SU]] {{.*}} into tensor<1x24x16xf32>
  // CHECK-DAG: %[[SD3:.*]] = tensor.expand_shape %[[SD]] {{.*}} into tensor<1x16x24xf32>
  // CHECK-NOT: counts
  // CHECK: %[[SHARED3:.*]] = moe.experts %[[X3]] gate %[[SG3]] up %[[SU3]] down %[[SD3]] activation = silu_glu
  // CHECK: %[[SHARED:.*]] = tensor.collapse_shape %[[SHARED3]]
  // CHECK: %[[LOGITS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]], %[[G]] : tensor<8x16xf32>, tensor<1x16xf32>)
  // CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[ROUTED]], %[[LOGITS]], %[[SHARED]] :
  // CHECK: math.exp
  // CHECK: return %[[SUM]]
  %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) shared_gate %g k = 2 score = softmax activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<1x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Shared experts without a gate (DeepSeek): a plain add.
// CHECK-LABEL: func @shared_experts_no_gate
func.func @shared_experts_no_gate(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %sg: tensor<24x16xf32>) -> tensor<8x16xf32> {
  // CHECK: %[[ROUTED:.*]] = moe.combine
  // CHECK: %[[SHARED:.*]] = tensor.collapse_shape
  // CHECK-NOT: linalg.generic
  // CHECK: %[[SUM:.*]] = arith.addf %[[ROUTED]], %[[SHARED]] : tensor<8x16xf32>
  // CHECK: return %[[SUM]]
  %y = moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// A dropless layer over a dynamic token count has no static capacity: the
// pass names the problem instead of leaving the layer behind.
func.func @dropless_dynamic_tokens(%x: tensor<?x16xf32>, %wr: tensor<4x16xf32>, %wi: tensor<4x32x16xf32>, %wo: tensor<4x16x32xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{'moe.layer' op is dropless (no capacity) but its token count is dynamic; moe-decompose needs a static token count or an explicit capacity}}
  %y = moe.layer %x router %wr experts(up %wi down %wo) k = 1 score = softmax activation = relu : (tensor<?x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
