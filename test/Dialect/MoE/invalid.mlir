// RUN: moe-opt %s -split-input-file -verify-diagnostics
//
// One case per diagnostic the moe verifiers (and the #moe.plan parser) can
// emit. Each case is named after the constraint id it breaks (see the
// `**Constraints:**` lists in MoEOps.td / MoEBase.td and the `// moe_*_cN`
// comments in MoEOps.cpp / MoEDialect.cpp); `ods` cases hit the declarative
// type and enum constraints.

// moe_router_c1_tokens_rank
func.func @moe_router_c1_tokens_rank(%x: tensor<8xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects 'tokens' to be a 2-D tensor [T, H], got 'tensor<8xf32>'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c1_weight_rank
func.func @moe_router_c1_weight_rank(%x: tensor<8x16xf32>, %w: tensor<4x16x1xf32>) {
  // expected-error @+1 {{'moe.router' op expects 'weight' to be a 2-D tensor [E, H], got 'tensor<4x16x1xf32>'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16x1xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c2_hidden
func.func @moe_router_c2_hidden(%x: tensor<8x16xf32>, %w: tensor<4x32xf32>) {
  // expected-error @+1 {{'moe.router' op expects the hidden size of 'weight' (dim 1) to match 'tokens' (dim 1): 32 vs 16}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x32xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c3_dynamic_experts
func.func @moe_router_c3_dynamic_experts(%x: tensor<8x16xf32>, %w: tensor<?x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects a static number of experts (dim 0 of 'weight'), got 'tensor<?x16xf32>'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<?x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c4_k_zero
func.func @moe_router_c4_k_zero(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects k >= 1, got k = 0}}
  moe.router %x weight %w k = 0 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x0xf32>, tensor<8x0xi32>)
  return
}

// -----

// moe_router_c4_k_above_experts
func.func @moe_router_c4_k_above_experts(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects k <= the number of experts, got k = 5 vs E = 4}}
  moe.router %x weight %w k = 5 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x5xf32>, tensor<8x5xi32>)
  return
}

// -----

// moe_router_c5_bias_rank
func.func @moe_router_c5_bias_rank(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>, %b: tensor<4x1xf32>) {
  // expected-error @+1 {{'moe.router' op expects 'bias' to be a 1-D tensor [E], got 'tensor<4x1xf32>'}}
  moe.router %x weight %w bias %b k = 2 score = sigmoid : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x1xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c5_bias_experts
func.func @moe_router_c5_bias_experts(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{'moe.router' op expects the number of experts of 'bias' (dim 0) to match 'weight' (dim 0): 3 vs 4}}
  moe.router %x weight %w bias %b k = 2 score = sigmoid : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<3xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c6_weights_rank
func.func @moe_router_c6_weights_rank(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects 'weights' to be a 2-D tensor [T, k], got 'tensor<16xf32>'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<16xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c6_weights_tokens
func.func @moe_router_c6_weights_tokens(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects the token count of 'weights' (dim 0) to match 'tokens' (dim 0): 7 vs 8}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<7x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c6_ids_k
func.func @moe_router_c6_ids_k(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects 'ids' to have k = 2 columns, got 3}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x3xi32>)
  return
}

// -----

// moe_router_c7_weight_dtype
func.func @moe_router_c7_weight_dtype(%x: tensor<8x16xf32>, %w: tensor<4x16xbf16>) {
  // expected-error @+1 {{'moe.router' op expects 'weight' to have the element type of 'tokens': 'bf16' vs 'f32'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xbf16>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c7_bias_dtype
func.func @moe_router_c7_bias_dtype(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>, %b: tensor<4xf16>) {
  // expected-error @+1 {{'moe.router' op expects 'bias' to have the element type of 'tokens': 'f16' vs 'f32'}}
  moe.router %x weight %w bias %b k = 2 score = sigmoid : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4xf16>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_c7_weights_dtype
func.func @moe_router_c7_weights_dtype(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op expects 'weights' to have the element type of 'tokens': 'f16' vs 'f32'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf16>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_ods_tokens_dtype
func.func @moe_router_ods_tokens_dtype(%x: tensor<8x16xi32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<8x16xi32>'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xi32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_router_ods_ids_dtype
func.func @moe_router_ods_ids_dtype(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.router' op result #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<8x2xf32>'}}
  moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xf32>)
  return
}

// -----

// moe_router_ods_unknown_score
func.func @moe_router_ods_unknown_score(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+2 {{custom op 'moe.router' expected ::mlir::moe::ScoreFunction to be one of: softmax, sigmoid}}
  // expected-error @+1 {{custom op 'moe.router' failed to parse MoE_ScoreFunctionAttr parameter 'value' which is to be a `::mlir::moe::ScoreFunction`}}
  moe.router %x weight %w k = 2 score = relu : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return
}

// -----

// moe_dispatch_c1_tokens_rank
func.func @moe_dispatch_c1_tokens_rank(%x: tensor<8xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'tokens' to be a 2-D tensor [T, H], got 'tensor<8xf32>'}}
  moe.dispatch %x experts %ids : (tensor<8xf32>, tensor<8x2xi32>) -> (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c2_ids_rank
func.func @moe_dispatch_c2_ids_rank(%x: tensor<8x16xf32>, %ids: tensor<8xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'ids' to be a 2-D tensor [T, k], got 'tensor<8xi32>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8xi32>) -> (tensor<4x4x16xf32>, tensor<8xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c2_ids_tokens
func.func @moe_dispatch_c2_ids_tokens(%x: tensor<8x16xf32>, %ids: tensor<6x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects the token count of 'ids' (dim 0) to match 'tokens' (dim 0): 6 vs 8}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<6x2xi32>) -> (tensor<4x4x16xf32>, tensor<6x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c2_dynamic_k
func.func @moe_dispatch_c2_dynamic_k(%x: tensor<8x16xf32>, %ids: tensor<8x?xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects a static k (dim 1 of 'ids'), got 'tensor<8x?xi32>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x?xi32>) -> (tensor<4x4x16xf32>, tensor<8x?xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c3_buffer_rank
func.func @moe_dispatch_c3_buffer_rank(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'buffer' to be a 3-D tensor [E, C, H], got 'tensor<16x16xf32>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<16x16xf32>, tensor<8x2xi32>, tensor<16xi32>)
  return
}

// -----

// moe_dispatch_c3_buffer_hidden
func.func @moe_dispatch_c3_buffer_hidden(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects the hidden size of 'buffer' (dim 2) to match 'tokens' (dim 1): 8 vs 16}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x4x8xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c4_dynamic_capacity
func.func @moe_dispatch_c4_dynamic_capacity(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects a static number of experts and capacity (dims 0 and 1 of 'buffer'), got 'tensor<4x?x16xf32>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x?x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c4_no_experts
func.func @moe_dispatch_c4_no_experts(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects at least one expert, got E = 0}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<0x4x16xf32>, tensor<8x2xi32>, tensor<0xi32>)
  return
}

// -----

// moe_dispatch_c4_capacity_zero
func.func @moe_dispatch_c4_capacity_zero(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects capacity >= 1, got C = 0}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x0x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c5_k_above_experts
func.func @moe_dispatch_c5_k_above_experts(%x: tensor<8x16xf32>, %ids: tensor<8x3xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects k <= the number of experts, got k = 3 vs E = 2}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x3xi32>) -> (tensor<2x4x16xf32>, tensor<8x3xi32>, tensor<2xi32>)
  return
}

// -----

// moe_dispatch_c6_buffer_dtype
func.func @moe_dispatch_c6_buffer_dtype(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'buffer' to have the element type of 'tokens': 'bf16' vs 'f32'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x4x16xbf16>, tensor<8x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c7_slots_type
func.func @moe_dispatch_c7_slots_type(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'slots' to have the type of 'ids': 'tensor<8x2xi64>' vs 'tensor<8x2xi32>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x4x16xf32>, tensor<8x2xi64>, tensor<4xi64>)
  return
}

// -----

// moe_dispatch_c8_dropless_dynamic_tokens
func.func @moe_dispatch_c8_dropless_dynamic_tokens(%x: tensor<?x16xf32>, %ids: tensor<?x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects a static token count with 'dropless', got 'tensor<?x16xf32>'}}
  moe.dispatch %x experts %ids dropless : (tensor<?x16xf32>, tensor<?x2xi32>) -> (tensor<4x8x16xf32>, tensor<?x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c8_dropless_capacity
func.func @moe_dispatch_c8_dropless_capacity(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects capacity >= the token count with 'dropless', got C = 4 vs T = 8}}
  moe.dispatch %x experts %ids dropless : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return
}

// -----

// moe_dispatch_c9_counts_experts
func.func @moe_dispatch_c9_counts_experts(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'counts' to be a 1-D tensor of 4 elements of type 'i32', got 'tensor<3xi32>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<3xi32>)
  return
}

// -----

// moe_dispatch_c9_counts_dtype
func.func @moe_dispatch_c9_counts_dtype(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects 'counts' to be a 1-D tensor of 4 elements of type 'i32', got 'tensor<4xi64>'}}
  moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<4xi64>)
  return
}

// -----

// moe_experts_c9_counts
func.func @moe_experts_c9_counts(%buf: tensor<4x4x16xf32>, %n: tensor<2xi32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'counts' to be a 1-D tensor of 4 elements (one per expert), or 2-D with one row per expert, got 'tensor<2xi32>'}}
  moe.experts %buf counts %n up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<2xi32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c9_count_segments
func.func @moe_experts_c9_count_segments(%buf: tensor<4x4x16xf32>, %n: tensor<4x3xi32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects the 3 count segments to divide the 4 rows of each expert}}
  moe.experts %buf counts %n up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x3xi32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c1_input_rank
func.func @moe_experts_c1_input_rank(%buf: tensor<16x16xf32>, %g: tensor<4x32x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'input' to be a 3-D tensor [E, C, H], got 'tensor<16x16xf32>'}}
  moe.experts %buf gate %g up %u down %d activation = silu_glu : (tensor<16x16xf32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<16x16xf32>
  return
}

// -----

// moe_experts_c2_up_rank
func.func @moe_experts_c2_up_rank(%buf: tensor<4x4x16xf32>, %u: tensor<32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'up' to be a 3-D tensor [E, F, H], got 'tensor<32x16xf32>'}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c3_down_rank
func.func @moe_experts_c3_down_rank(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'down' to be a 3-D tensor [E, H, F], got 'tensor<16x32xf32>'}}
  moe.experts %buf up %u down %d activation = gelu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c4_missing_gate
func.func @moe_experts_c4_missing_gate(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects a 'gate' weight for the gated activation 'silu_glu'}}
  moe.experts %buf up %u down %d activation = silu_glu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c4_unexpected_gate
func.func @moe_experts_c4_unexpected_gate(%buf: tensor<4x4x16xf32>, %g: tensor<4x32x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects no 'gate' weight for the activation 'relu'}}
  moe.experts %buf gate %g up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c5_gate_type
func.func @moe_experts_c5_gate_type(%buf: tensor<4x4x16xf32>, %g: tensor<4x24x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'gate' to have the type of 'up': 'tensor<4x24x16xf32>' vs 'tensor<4x32x16xf32>'}}
  moe.experts %buf gate %g up %u down %d activation = silu_glu : (tensor<4x4x16xf32>, tensor<4x24x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c6_up_experts
func.func @moe_experts_c6_up_experts(%buf: tensor<4x4x16xf32>, %u: tensor<3x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'up' to hold 4 experts (dim 0), got 3}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<3x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c6_down_experts
func.func @moe_experts_c6_down_experts(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<2x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'down' to hold 4 experts (dim 0), got 2}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<2x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c6_up_hidden
func.func @moe_experts_c6_up_hidden(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x8xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects the hidden size of 'up' (dim 2) to match 'input' (dim 2): 8 vs 16}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x8xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c6_down_hidden
func.func @moe_experts_c6_down_hidden(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects the hidden size of 'down' (dim 1) to match 'input' (dim 2): 8 vs 16}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x8x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c6_down_intermediate
func.func @moe_experts_c6_down_intermediate(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x24xf32>) {
  // expected-error @+1 {{'moe.experts' op expects the intermediate size of 'down' (dim 2) to match 'up' (dim 1): 24 vs 32}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x24xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c7_up_dtype
func.func @moe_experts_c7_up_dtype(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xbf16>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects 'up' to have the element type of 'input': 'bf16' vs 'f32'}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xbf16>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c7_down_dtype
func.func @moe_experts_c7_down_dtype(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf16>) {
  // expected-error @+1 {{'moe.experts' op expects 'down' to have the element type of 'input': 'f16' vs 'f32'}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf16>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_experts_c8_result_type
func.func @moe_experts_c8_result_type(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+1 {{'moe.experts' op expects the result to have the type of 'input': 'tensor<4x8x16xf32>' vs 'tensor<4x4x16xf32>'}}
  moe.experts %buf up %u down %d activation = relu : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

// moe_experts_ods_unknown_activation
func.func @moe_experts_ods_unknown_activation(%buf: tensor<4x4x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) {
  // expected-error @+2 {{custom op 'moe.experts' expected ::mlir::moe::Activation to be one of: silu_glu, gelu, relu}}
  // expected-error @+1 {{custom op 'moe.experts' failed to parse MoE_ActivationAttr parameter 'value' which is to be a `::mlir::moe::Activation`}}
  moe.experts %buf up %u down %d activation = tanh : (tensor<4x4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x4x16xf32>
  return
}

// -----

// moe_combine_c1_input_rank
func.func @moe_combine_c1_input_rank(%y: tensor<16x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects 'input' to be a 3-D tensor [E, C, H], got 'tensor<16x16xf32>'}}
  moe.combine %y slots %s experts %i weights %w : (tensor<16x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_combine_c4_result_rank
func.func @moe_combine_c4_result_rank(%y: tensor<4x4x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects 'result' to be a 2-D tensor [T, H], got 'tensor<128xf32>'}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<128xf32>
  return
}

// -----

// moe_combine_c4_result_hidden
func.func @moe_combine_c4_result_hidden(%y: tensor<4x4x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects the hidden size of 'result' (dim 1) to match 'input' (dim 2): 32 vs 16}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x32xf32>
  return
}

// -----

// moe_combine_c2_slots_rank
func.func @moe_combine_c2_slots_rank(%y: tensor<4x4x16xf32>, %s: tensor<16xi32>, %i: tensor<16xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects 'slots' to be a 2-D tensor [T, k], got 'tensor<16xi32>'}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<16xi32>, tensor<16xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_combine_c2_slots_tokens
func.func @moe_combine_c2_slots_tokens(%y: tensor<4x4x16xf32>, %s: tensor<6x2xi32>, %i: tensor<6x2xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects the token count of 'slots' (dim 0) to match 'result' (dim 0): 6 vs 8}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<6x2xi32>, tensor<6x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_combine_c2_weights_k
func.func @moe_combine_c2_weights_k(%y: tensor<4x4x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects 'weights' to have k = 2 columns, got 1}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x1xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_combine_c3_ids_type
func.func @moe_combine_c3_ids_type(%y: tensor<4x4x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi64>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects 'experts' to have the type of 'slots': 'tensor<8x2xi64>' vs 'tensor<8x2xi32>'}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi64>, tensor<8x2xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_combine_c5_weights_dtype
func.func @moe_combine_c5_weights_dtype(%y: tensor<4x4x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf16>) {
  // expected-error @+1 {{'moe.combine' op expects 'weights' to have the element type of 'input': 'f16' vs 'f32'}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf16>) -> tensor<8x16xf32>
  return
}

// -----

// moe_combine_c5_result_dtype
func.func @moe_combine_c5_result_dtype(%y: tensor<4x4x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects 'result' to have the element type of 'input': 'bf16' vs 'f32'}}
  moe.combine %y slots %s experts %i weights %w : (tensor<4x4x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xbf16>
  return
}

// -----

// moe_layer_router_k_above_experts
func.func @moe_layer_router_k_above_experts(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects k <= the number of experts, got k = 5 vs E = 4}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) k = 5 score = softmax activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_experts_intermediate
func.func @moe_layer_experts_intermediate(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x24xf32>, %w1: tensor<4x32x16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects the intermediate size of 'down' (dim 2) to match 'up' (dim 1): 24 vs 32}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x24xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c1_result_type
func.func @moe_layer_c1_result_type(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects the result to have the type of 'tokens': 'tensor<8x32xf32>' vs 'tensor<8x16xf32>'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x32xf32>
  return
}

// -----

// moe_layer_c2_capacity_zero
func.func @moe_layer_c2_capacity_zero(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects capacity >= 1, got 0}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) k = 2 score = softmax activation = silu_glu capacity = 0 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c4_shared_needs_gated
func.func @moe_layer_c4_shared_needs_gated(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects a gated activation with shared experts, got 'relu'}}
  moe.layer %x router %wr experts(up %w3 down %w2) shared(up %su down %sd gate %sg) k = 1 score = softmax activation = relu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_up_rank
func.func @moe_layer_c3_shared_up_rank(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<1x24x16xf32>, %su: tensor<1x24x16xf32>, %sd: tensor<16x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared up' to be a 2-D tensor [Fs, H], got 'tensor<1x24x16xf32>'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<1x24x16xf32>, tensor<16x24xf32>, tensor<1x24x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_down_rank
func.func @moe_layer_c3_shared_down_rank(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24x1xf32>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared down' to be a 2-D tensor [H, Fs], got 'tensor<16x24x1xf32>'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24x1xf32>, tensor<24x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_gate_type
func.func @moe_layer_c3_shared_gate_type(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<20x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared gate' to have the type of 'shared up': 'tensor<20x16xf32>' vs 'tensor<24x16xf32>'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<20x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_up_hidden
func.func @moe_layer_c3_shared_up_hidden(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x8xf32>, %su: tensor<24x8xf32>, %sd: tensor<16x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects the hidden size of 'shared up' (dim 1) to match 'tokens' (dim 1): 8 vs 16}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x8xf32>, tensor<16x24xf32>, tensor<24x8xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_down_hidden
func.func @moe_layer_c3_shared_down_hidden(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<8x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects the hidden size of 'shared down' (dim 0) to match 'tokens' (dim 1): 8 vs 16}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<8x24xf32>, tensor<24x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_down_intermediate
func.func @moe_layer_c3_shared_down_intermediate(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x20xf32>) {
  // expected-error @+1 {{'moe.layer' op expects the intermediate size of 'shared down' (dim 1) to match 'shared up' (dim 0): 20 vs 24}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x20xf32>, tensor<24x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_up_dtype
func.func @moe_layer_c3_shared_up_dtype(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xbf16>, %su: tensor<24x16xbf16>, %sd: tensor<16x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared up' to have the element type of 'tokens': 'bf16' vs 'f32'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xbf16>, tensor<16x24xf32>, tensor<24x16xbf16>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_down_dtype
func.func @moe_layer_c3_shared_down_dtype(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf16>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared down' to have the element type of 'tokens': 'f16' vs 'f32'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf16>, tensor<24x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c5_shared_gate_without_shared
func.func @moe_layer_c5_shared_gate_without_shared(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %g: tensor<1x16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects shared experts with 'shared_gate'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared_gate %g k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<1x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c5_shared_gate_rank
func.func @moe_layer_c5_shared_gate_rank(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared_gate' to be a 2-D tensor [1, H], got 'tensor<16xf32>'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) shared_gate %g k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c5_shared_gate_hidden
func.func @moe_layer_c5_shared_gate_hidden(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %g: tensor<1x8xf32>) {
  // expected-error @+1 {{'moe.layer' op expects the hidden size of 'shared_gate' (dim 1) to match 'tokens' (dim 1): 8 vs 16}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) shared_gate %g k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<1x8xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c5_shared_gate_dtype
func.func @moe_layer_c5_shared_gate_dtype(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %g: tensor<1x16xf16>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared_gate' to have the element type of 'tokens': 'f16' vs 'f32'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) shared_gate %g k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<1x16xf16>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c5_shared_gate_rows
func.func @moe_layer_c5_shared_gate_rows(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %w1: tensor<4x32x16xf32>, %sg: tensor<24x16xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>, %g: tensor<2x16xf32>) {
  // expected-error @+1 {{'moe.layer' op expects 'shared_gate' to have one row, got 'tensor<2x16xf32>'}}
  moe.layer %x router %wr experts(up %w3 down %w2 gate %w1) shared(up %su down %sd gate %sg) shared_gate %g k = 2 score = softmax renormalize activation = silu_glu : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>, tensor<24x16xf32>, tensor<2x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_layer_c3_shared_incomplete
func.func @moe_layer_c3_shared_incomplete(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w1: tensor<4x32x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>, %su: tensor<24x16xf32>, %sd: tensor<16x24xf32>) {
  // expected-error @+1 {{'moe.layer' op expects shared experts to have gate, up and down weights, got 2 of them}}
  "moe.layer"(%x, %wr, %w3, %w2, %w1, %su, %sd) <{activation = #moe<activation silu_glu>, k = 2 : i64, score = #moe<score_function softmax>, operandSegmentSizes = array<i32: 1, 1, 0, 1, 1, 1, 1, 1, 0, 0>}> : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>, tensor<24x16xf32>, tensor<16x24xf32>) -> tensor<8x16xf32>
  return
}

// -----

// moe_plan_c1_degree
// expected-error @+1 {{#moe.plan degree tp = 0 must be >= 1}}
module attributes {moe.plan = #moe.plan<tp = 0>} {}

// -----

// moe_plan_c2_world
// expected-error @+1 {{#moe.plan world = 8 does not equal dp * tp * pp = 2 * 2 * 1 = 4}}
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, world = 8>} {}

// -----

// moe_plan_c3_ep_divides_dp_tp
// expected-error @+1 {{#moe.plan ep = 3 must divide dp * tp = 4 (expert parallel ranks are carved out of the data and tensor parallel ranks)}}
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 3>} {}

// -----

// moe_plan_c4_etp_divides_tp
// expected-error @+1 {{#moe.plan etp = 4 must divide tp = 2 (expert tensor parallel ranks are carved out of the tensor parallel group)}}
module attributes {moe.plan = #moe.plan<tp = 2, etp = 4>} {}

// -----

// moe_plan_c8_ep_etp_divides_dp_tp
// expected-error @+1 {{#moe.plan ep * etp = 4 must divide dp * tp = 2 (an expert's etp slices live on ranks of one expert parallel position)}}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, etp = 2>} {}

// -----

// moe_plan_c5_empty_dispatch
// expected-error @+1 {{#moe.plan dispatch list must not be empty}}
module attributes {moe.plan = #moe.plan<dispatch = []>} {}

// -----

// moe_plan_c9_empty_dedup
// expected-error @+1 {{#moe.plan dedup list must not be empty}}
module attributes {moe.plan = #moe.plan<dedup = []>} {}

// -----

// moe_plan_c9_dedup_flag
// expected-error @+1 {{#moe.plan dedup = 2 must be 0 or 1}}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dedup = [0, 2]>} {}

// -----

// moe_plan_c10_slice_and_dedup
// expected-error @+1 {{#moe.plan asks for both dispatch = slice_allreduce and dedup = 1 on layer 1; dedup rewrites the all-to-all that slice_allreduce removes}}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dispatch = [a2a, slice_allreduce], dedup = 1>} {}

// -----

// moe_plan_syntax_unknown_key
// expected-error @+1 {{unknown key 'cp' in #moe.plan; expected one of dp, tp, ep, etp, pp, world, dispatch, dedup}}
module attributes {moe.plan = #moe.plan<dp = 2, cp = 2>} {}

// -----

// moe_plan_syntax_duplicate_key
// expected-error @+1 {{duplicate key 'dp' in #moe.plan}}
module attributes {moe.plan = #moe.plan<dp = 2, dp = 4>} {}

// -----

// moe_plan_syntax_unknown_strategy
// expected-error @+1 {{unknown dispatch strategy 'allgather' in #moe.plan; expected 'a2a' or 'slice_allreduce'}}
module attributes {moe.plan = #moe.plan<dispatch = [a2a, allgather]>} {}

// -----

// moe_plan_syntax_missing_value
// expected-error @+1 {{expected integer value}}
module attributes {moe.plan = #moe.plan<dp = >} {}

// -----

// moe_plan_attached_not_a_plan
// expected-error @+1 {{'moe.plan' must be a #moe.plan attribute, got 3 : i64}}
module attributes {moe.plan = 3} {}

// -----

// moe_plan_attached_unknown_attribute
// expected-error @+1 {{unknown moe dialect attribute 'moe.plans'}}
module attributes {moe.plans = #moe.plan<>} {}

// -----

// moe_plan_c6_ep_divides_layer_experts
// expected-error @+1 {{#moe.plan: plan ep = 4 does not divide the 6 experts of the model}}
module attributes {moe.plan = #moe.plan<dp = 4, ep = 4>} {
  func.func @f(%x: tensor<8x16xf32>, %wr: tensor<6x16xf32>, %w3: tensor<6x32x16xf32>, %w2: tensor<6x16x32xf32>) -> tensor<8x16xf32> {
    // expected-note @+1 {{expert set of this 'moe.layer'}}
    %y = moe.layer %x router %wr experts(up %w3 down %w2) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<6x16xf32>, tensor<6x32x16xf32>, tensor<6x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// moe_plan_c6_ep_divides_router_experts
// expected-error @+1 {{#moe.plan: plan ep = 4 does not divide the 6 experts of the model}}
module attributes {moe.plan = #moe.plan<dp = 4, ep = 4>} {
  func.func @f(%x: tensor<8x16xf32>, %wr: tensor<6x16xf32>) {
    // expected-note @+1 {{expert set of this 'moe.router'}}
    %w, %ids = moe.router %x weight %wr k = 2 score = softmax : (tensor<8x16xf32>, tensor<6x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
    return
  }
}

// -----

// moe_plan_c7_dispatch_per_layer
// expected-error @+1 {{#moe.plan lists 2 dispatch strategies but the operation holds 1 moe.layer ops}}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dispatch = [a2a, slice_allreduce]>} {
  func.func @f(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %y = moe.layer %x router %wr experts(up %w3 down %w2) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// moe_plan_c7_dedup_per_layer
// expected-error @+1 {{#moe.plan lists 3 dedup flags but the operation holds 1 moe.layer ops}}
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2, dedup = [1, 0, 1]>} {
  func.func @f(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %w3: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %y = moe.layer %x router %wr experts(up %w3 down %w2) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// moe_layer_index_negative
// expected-error @+1 {{'moe.layer_index' must be a non-negative integer, got -1 : i64}}
module attributes {moe.layer_index = -1} {}

// -----

// moe_tokens_split_not_axes
// expected-error @+1 {{'moe.tokens_split' must be an array<i16> of grid axes, got [1]}}
module attributes {moe.tokens_split = [1]} {}

// -----

// moe_exact_product_not_unit
// expected-error @+1 {{'moe.exact_product' must be a unit attribute, got 1 : i64}}
module attributes {moe.exact_product = 1} {}

// -----

// moe_manifest_not_a_manifest
// expected-error @+1 {{'moe.manifest' must be a #moe.manifest, got 3 : i64}}
module attributes {moe.manifest = 3} {}

// -----

// moe_manifest_nonpositive_size
// expected-error @+1 {{manifest: hidden = 0 is not positive}}
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 0, vocab = 8>} {}

// -----

// moe_manifest_max_seq_not_past_seq
// expected-error @+1 {{manifest: max_seq = 4 must be 0 (no generation) or greater than seq = 4}}
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, max_seq = 4>} {}

// -----

// moe_manifest_weight_not_a_weight
// expected-error @+1 {{manifest: "w" in weights is not a #moe.weight}}
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, blob = 4, weights = ["w"]>} {}

// -----

// moe_manifest_weight_past_blob
// expected-error @+1 {{manifest: weight 'w.{}' ends at element 18, past the blob of 16}}
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8, blob = 16, weights = [#moe.weight<"w.{}", offset = 2, shape = [2, 4], count = 2>]>} {}

// -----

// moe_weight_negative_offset
// expected-error @+1 {{weight 'w': offset -1 is negative}}
module attributes {w = #moe.weight<"w", offset = -1, shape = [4]>} {}

// -----

// moe_weight_zero_count
// expected-error @+1 {{weight 'w': count 0 is not positive}}
module attributes {w = #moe.weight<"w", offset = 0, shape = [4], count = 0>} {}

// -----

// moe_weight_bad_shape
// expected-error @+1 {{weight 'w': shape [4, 0] is not a non-empty list of positive sizes}}
module attributes {w = #moe.weight<"w", offset = 0, shape = [4, 0]>} {}

// -----

// moe_weight_slice_without_dim
// expected-error @+1 {{weight 'w': split = tp needs dim}}
module attributes {w = #moe.weight<"w", offset = 0, shape = [4], split = tp>} {}

// -----

// moe_weight_dim_without_slice
// expected-error @+1 {{weight 'w': split = experts takes no dim}}
module attributes {w = #moe.weight<"w", offset = 0, shape = [4], split = experts, dim = 0>} {}

// -----

// moe_weight_dim_out_of_range
// expected-error @+1 {{weight 'w': dim 1 is not a dimension of shape [4]}}
module attributes {w = #moe.weight<"w", offset = 0, shape = [4], split = etp, dim = 1>} {}

// -----

// moe_weight_negative_stage
// expected-error @+1 {{weight 'w': stage -2 is negative}}
module attributes {w = #moe.weight<"w", offset = 0, shape = [4], stage = -2>} {}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

// moe_async_start_c1
func.func @moe_async_start_c1(%x: tensor<4x2x8xf32>) -> tensor<2x4x8xf32> {
  // expected-error @+1 {{'moe.async_start' op expects its body to take one argument of the input's type 'tensor<4x2x8xf32>'}}
  %f = moe.async_start %x : tensor<4x2x8xf32> -> !moe.future<tensor<2x4x8xf32>> {
  ^bb0(%in: tensor<2x4x8xf32>):
    moe.yield %in : tensor<2x4x8xf32>
  }
  %r = moe.async_wait %f : !moe.future<tensor<2x4x8xf32>>
  return %r : tensor<2x4x8xf32>
}

// -----

// moe_async_start_c2
func.func @moe_async_start_c2(%x: tensor<8xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{'moe.async_start' op expects its body to be one shard.all_to_all, all_reduce, all_gather or reduce_scatter on the block argument, and a moe.yield of its result}}
  %f = moe.async_start %x : tensor<8xf32> -> !moe.future<tensor<8xf32>> {
  ^bb0(%in: tensor<8xf32>):
    moe.yield %in : tensor<8xf32>
  }
  %r = moe.async_wait %f : !moe.future<tensor<8xf32>>
  return %r : tensor<8xf32>
}

// -----

shard.grid @moe_dense(shape = 1x1x2)

// moe_async_start_c3
func.func @moe_async_start_c3(%x: tensor<8xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'moe.async_start' op yields 'tensor<8xf32>' but its future holds 'tensor<4xf32>'}}
  %f = moe.async_start %x : tensor<8xf32> -> !moe.future<tensor<4xf32>> {
  ^bb0(%in: tensor<8xf32>):
    %r = shard.all_reduce %in on @moe_dense grid_axes = [2] : tensor<8xf32> -> tensor<8xf32>
    moe.yield %r : tensor<8xf32>
  }
  %r = moe.async_wait %f : !moe.future<tensor<4xf32>>
  return %r : tensor<4xf32>
}

// -----

shard.grid @moe_dense(shape = 1x1x2)

// moe_async_start_c4
func.func @moe_async_start_c4(%x: tensor<8xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{'moe.async_start' op expects its future to have exactly one use, a moe.async_wait in the same block}}
  %f = moe.async_start %x : tensor<8xf32> -> !moe.future<tensor<8xf32>> {
  ^bb0(%in: tensor<8xf32>):
    %r = shard.all_reduce %in on @moe_dense grid_axes = [2] : tensor<8xf32> -> tensor<8xf32>
    moe.yield %r : tensor<8xf32>
  }
  %a = moe.async_wait %f : !moe.future<tensor<8xf32>>
  %b = moe.async_wait %f : !moe.future<tensor<8xf32>>
  return %a : tensor<8xf32>
}
