// RUN: moe-opt %s --moe-overlap="collectives=all-to-all" --split-input-file --verify-diagnostics | FileCheck %s
// RUN: moe-opt %s --moe-overlap="collectives=all-to-all remarks=false" --split-input-file | FileCheck %s --check-prefix=QUIET
// RUN: not moe-opt %s --moe-overlap="collectives=broadcast" --split-input-file 2>&1 | FileCheck %s --check-prefix=BADKIND
// RUN: moe-opt %s --moe-overlap="collectives=all-to-all chunks=2" --split-input-file 2>/dev/null | FileCheck %s --check-prefix=CHUNKS
// RUN: moe-opt %s --moe-overlap="collectives=all-to-all chunks=3" --split-input-file 2>&1 >/dev/null | FileCheck %s --check-prefix=CHUNKS3
// RUN: not moe-opt %s --moe-overlap="collectives=all-to-all chunks=0" --split-input-file 2>&1 | FileCheck %s --check-prefix=CHUNKS0

// CHUNKS0: moe-overlap: 'chunks' must be >= 1, got 0

// BADKIND: moe-overlap: unknown collective 'broadcast' in 'collectives'; expected all-to-all, all-reduce, all-gather or reduce-scatter

shard.grid @moe_experts(shape = 1x1x2x1)

// The start moves up to just after its input (above the independent
// product before it), the independent product after the dependent one moves
// up between the start and the wait, and the dependent op waits.
// CHECK-LABEL: func.func @overlaps_independent_compute
// CHECK-SAME: (%[[BUF:.*]]: tensor<4x2x8xf32>, %[[X:.*]]: tensor<4x8xf32>, %[[W:.*]]: tensor<8x8xf32>)
// CHECK: %[[A:.*]] = linalg.exp ins(%[[BUF]]
// CHECK-NEXT: %[[F:.*]] = moe.async_start %[[A]] : tensor<4x2x8xf32> -> !moe.future<tensor<2x4x8xf32>> {
// CHECK-NEXT: ^bb0(%[[IN:.*]]: tensor<4x2x8xf32>):
// CHECK-NEXT: %[[E:.*]] = shard.all_to_all %[[IN]] on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1
// CHECK-NEXT: moe.yield %[[E]] : tensor<2x4x8xf32>
// CHECK-NEXT: }
// CHECK: %[[P1:.*]] = linalg.matmul ins(%[[X]], %[[W]]
// CHECK: %[[P2:.*]] = linalg.matmul ins(%[[P1]], %[[W]]
// CHECK-NEXT: %[[R:.*]] = moe.async_wait %[[F]] : !moe.future<tensor<2x4x8xf32>>
// CHECK-NEXT: %[[D:.*]] = linalg.exp ins(%[[R]]
// CHECK-NEXT: return %[[D]], %[[P2]]
func.func @overlaps_independent_compute(%buf: tensor<4x2x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<2x4x8xf32>, tensor<4x8xf32>) {
  %e0 = tensor.empty() : tensor<4x2x8xf32>
  %a = linalg.exp ins(%buf : tensor<4x2x8xf32>) outs(%e0 : tensor<4x2x8xf32>) -> tensor<4x2x8xf32>
  %z = tensor.empty() : tensor<4x8xf32>
  %p1 = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %r = shard.all_to_all %a on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
  %e1 = tensor.empty() : tensor<2x4x8xf32>
  %d = linalg.exp ins(%r : tensor<2x4x8xf32>) outs(%e1 : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %p2 = linalg.matmul ins(%p1, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %d, %p2 : tensor<2x4x8xf32>, tensor<4x8xf32>
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

// Everything after the exchange needs its result: no gain, so it stays
// blocking and a remark says why.
// CHECK-LABEL: func.func @nothing_to_overlap
// CHECK-NOT: moe.async
// CHECK: shard.all_to_all
// QUIET-LABEL: func.func @nothing_to_overlap
// QUIET-NOT: moe.async
// QUIET: shard.all_to_all
func.func @nothing_to_overlap(%buf: tensor<4x2x8xf32>) -> tensor<2x4x8xf32> {
  // expected-remark @+1 {{moe-overlap: the all-to-all stays blocking: no compute that does not need its result lies between its input and its first use}}
  %r = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
  %e = tensor.empty() : tensor<2x4x8xf32>
  %d = linalg.exp ins(%r : tensor<2x4x8xf32>) outs(%e : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  return %d : tensor<2x4x8xf32>
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)
func.func private @effect(tensor<4x8xf32>)

// Ops with memory effects are barriers for the start and the wait: the
// start does not move above the call before it, nor the wait below the call
// after it. Pure ops may pass a call: the product behind the second call
// moves up into the gap.
// CHECK-LABEL: func.func @barriers
// CHECK: call @effect
// CHECK-NEXT: %[[F:.*]] = moe.async_start
// CHECK: %[[P1:.*]] = linalg.matmul
// CHECK: linalg.matmul ins(%[[P1]]
// CHECK-NEXT: %[[R:.*]] = moe.async_wait %[[F]]
// CHECK-NEXT: call @effect(%[[P1]])
// CHECK-NEXT: linalg.exp ins(%[[R]]
func.func @barriers(%buf: tensor<4x2x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<2x4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  call @effect(%x) : (tensor<4x8xf32>) -> ()
  %r = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
  %z = tensor.empty() : tensor<4x8xf32>
  %p1 = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  call @effect(%p1) : (tensor<4x8xf32>) -> ()
  %e = tensor.empty() : tensor<2x4x8xf32>
  %d = linalg.exp ins(%r : tensor<2x4x8xf32>) outs(%e : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %p2 = linalg.matmul ins(%p1, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %d, %p1, %p2 : tensor<2x4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

shard.grid @moe_dense(shape = 1x1x2)
shard.grid @moe_experts(shape = 1x1x2x1)

// Only the chosen kinds: the all_reduce stays as it is, and communication
// keeps its order (the exchange does not start above the all_reduce even
// though its input is ready; the product after it overlaps).
// CHECK-LABEL: func.func @only_chosen_kinds
// CHECK: shard.all_reduce
// CHECK-NEXT: moe.async_start
// CHECK: linalg.matmul
// CHECK: moe.async_wait
func.func @only_chosen_kinds(%buf: tensor<4x2x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<2x4x8xf32>, tensor<4x8xf32>) {
  %s = shard.all_reduce %x on @moe_dense grid_axes = [2] : tensor<4x8xf32> -> tensor<4x8xf32>
  %r = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
  %e = tensor.empty() : tensor<2x4x8xf32>
  %d = linalg.exp ins(%r : tensor<2x4x8xf32>) outs(%e : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %z = tensor.empty() : tensor<4x8xf32>
  %p = linalg.matmul ins(%s, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %s, %d, %p : tensor<4x8xf32>, tensor<2x4x8xf32>, tensor<4x8xf32>
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

// A dispatch and its combine: the independent work first gathers before the
// dispatch's wait; the combine, with nothing of its own to hide behind,
// then takes the end of it (half, as the two move the same bytes).
// CHECK-LABEL: func.func @balances
// CHECK: moe.async_start
// CHECK: %[[P1:.*]] = linalg.matmul
// CHECK-NOT: linalg.matmul
// CHECK: moe.async_wait
// CHECK: linalg.exp
// CHECK: moe.async_start
// CHECK: linalg.matmul ins(%[[P1]]
// CHECK: moe.async_wait
func.func @balances(%buf: tensor<4x2x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<4x2x8xf32>, tensor<4x8xf32>) {
  %r = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
  %e = tensor.empty() : tensor<2x4x8xf32>
  %d = linalg.exp ins(%r : tensor<2x4x8xf32>) outs(%e : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %back = shard.all_to_all %d on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<2x4x8xf32> -> tensor<4x2x8xf32>
  %z = tensor.empty() : tensor<4x8xf32>
  %p1 = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %p2 = linalg.matmul ins(%p1, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %back, %p2 : tensor<4x2x8xf32>, tensor<4x8xf32>
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

// chunks=2: the exchange becomes two, each of 4 of the 8 rows of every
// expert with its counts clamped to the chunk; the second chunk travels
// while the first one's experts compute, and the first one's way back
// while the second one's compute (the last way back has nothing left to
// hide behind). With chunks=3 (not a divisor of 8) the exchange stays
// whole, with a remark.
// CHUNKS-LABEL: func.func @chunks
// CHUNKS: moe.dispatch
// CHUNKS: %[[C0:.*]] = tensor.extract_slice %buffer[0, 0, 0] [8, 4, 64] [1, 1, 1]
// CHUNKS-NEXT: %[[F0:.*]] = moe.async_start %[[C0]]
// CHUNKS: %[[C1:.*]] = tensor.extract_slice %buffer[0, 4, 0] [8, 4, 64] [1, 1, 1]
// CHUNKS-NEXT: %[[F1:.*]] = moe.async_start %[[C1]]
// CHUNKS: arith.subi
// CHUNKS: arith.maxsi
// CHUNKS: arith.minsi
// CHUNKS: %[[R0:.*]] = moe.async_wait %[[F0]]
// CHUNKS-NEXT: %[[E0:.*]] = moe.experts %[[R0]] counts
// CHUNKS-NEXT: %[[B0:.*]] = moe.async_start %[[E0]]
// CHUNKS: %[[R1:.*]] = moe.async_wait %[[F1]]
// CHUNKS-NEXT: %[[E1:.*]] = moe.experts %[[R1]] counts
// CHUNKS-NEXT: %[[W0:.*]] = moe.async_wait %[[B0]]
// CHUNKS-NEXT: %[[I0:.*]] = tensor.insert_slice %[[W0]] into {{.*}}[0, 0, 0] [8, 4, 64] [1, 1, 1]
// CHUNKS-NEXT: %[[L:.*]] = shard.all_to_all %[[E1]]
// CHUNKS-NEXT: %[[I1:.*]] = tensor.insert_slice %[[L]] into %[[I0]][0, 4, 0] [8, 4, 64] [1, 1, 1]
// CHUNKS-NEXT: moe.combine %[[I1]]
func.func @chunks(%x: tensor<8x64xf32>, %ids: tensor<8x2xi32>, %w: tensor<8x2xf32>, %counts2: tensor<4x2xi32>, %g: tensor<4x128x64xf32>, %u: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) -> tensor<8x64xf32> {
  %buffer, %slots, %counts = moe.dispatch %x experts %ids dropless : (tensor<8x64xf32>, tensor<8x2xi32>) -> (tensor<8x8x64xf32>, tensor<8x2xi32>, tensor<8xi32>)
  // CHUNKS3: remark: moe-overlap: the exchange is not split into 3 chunks: chunks = 3 does not divide its 8 rows per expert
  // expected-remark @+1 {{the all-to-all stays blocking}}
  %a = shard.all_to_all %buffer on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x8x64xf32> -> tensor<4x16x64xf32>
  %y = moe.experts %a counts %counts2 gate %g up %u down %d activation = silu_glu : (tensor<4x16x64xf32>, tensor<4x2xi32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<4x16x64xf32>
  // expected-remark @+1 {{the all-to-all stays blocking}}
  %b = shard.all_to_all %y on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<4x16x64xf32> -> tensor<8x8x64xf32>
  %out = moe.combine %b slots %slots experts %ids weights %w : (tensor<8x8x64xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x64xf32>
  return %out : tensor<8x64xf32>
}
