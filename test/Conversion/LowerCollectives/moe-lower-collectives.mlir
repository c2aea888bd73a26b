// RUN: moe-opt %s --moe-lower-collectives --split-input-file --verify-diagnostics | FileCheck %s

shard.grid @moe_dense(shape = 1x2x1)
shard.grid @moe_experts(shape = 1x1x2x1)

// CHECK-NOT: shard.grid
// CHECK-DAG: func.func private @moert_all_gather_f32(memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, i32) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moert_group_rank(i32) -> i64
// CHECK-LABEL: func @gather_and_index
// CHECK-SAME: (%[[X:.*]]: tensor<8x64xf32>)
func.func @gather_and_index(%x: tensor<8x64xf32>) -> (tensor<16x64xf32>, index) {
  // CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1]] : tensor<8x64xf32> into tensor<512xf32>
  // CHECK: %[[IN:.*]] = bufferization.to_buffer %[[FLAT]] read_only : tensor<512xf32> to memref<512xf32>
  // CHECK: %[[OUT:.*]] = memref.alloc() : memref<1024xf32>
  // CHECK-DAG: %[[INC:.*]] = memref.cast %[[IN]]
  // CHECK-DAG: %[[OUTC:.*]] = memref.cast %[[OUT]]
  // CHECK-DAG: %[[DP:.*]] = arith.constant 1 : i32
  // CHECK: call @moert_all_gather_f32(%[[INC]], %[[OUTC]], %[[DP]])
  // CHECK: %[[T:.*]] = bufferization.to_tensor %[[OUT]] restrict writable : memref<1024xf32> to tensor<1024xf32>
  // CHECK: %[[G:.*]] = tensor.expand_shape %[[T]] {{\[\[}}0, 1]] output_shape [16, 64]
  %g = shard.all_gather %x on @moe_dense grid_axes = [1] gather_axis = 0 : tensor<8x64xf32> -> tensor<16x64xf32>
  // CHECK: %[[EP:.*]] = arith.constant 3 : i32
  // CHECK: %[[R:.*]] = call @moert_group_rank(%[[EP]]) : (i32) -> i64
  // CHECK: %[[I:.*]] = arith.index_cast %[[R]] : i64 to index
  %i = shard.process_multi_index on @moe_experts axes = [2] : index
  // CHECK: return %[[G]], %[[I]]
  return %g, %i : tensor<16x64xf32>, index
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

// Dispatch direction: the received [src, E/ep, C, H] is transposed to
// [E/ep, src, C, H]; combine direction: the chunks are made contiguous first.
// CHECK-LABEL: func @all_to_all_both_ways
func.func @all_to_all_both_ways(%buf: tensor<8x4x16xf32>) -> tensor<8x4x16xf32> {
  // CHECK: call @moert_all_to_all_f32
  // CHECK: tensor.expand_shape %{{.*}} output_shape [2, 4, 4, 16] : tensor<512xf32> into tensor<2x4x4x16xf32>
  // CHECK: linalg.transpose ins(%{{.*}} : tensor<2x4x4x16xf32>) outs(%{{.*}} : tensor<4x2x4x16xf32>) permutation = [1, 0, 2, 3]
  // CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0], [1, 2], [3]] : tensor<4x2x4x16xf32> into tensor<4x8x16xf32>
  %sent = shard.all_to_all %buf on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x4x16xf32> -> tensor<4x8x16xf32>
  // CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0], [1, 2], [3]] output_shape [4, 2, 4, 16] : tensor<4x8x16xf32> into tensor<4x2x4x16xf32>
  // CHECK: linalg.transpose ins(%{{.*}} : tensor<4x2x4x16xf32>) outs(%{{.*}} : tensor<2x4x4x16xf32>) permutation = [1, 0, 2, 3]
  // CHECK: call @moert_all_to_all_f32
  %back = shard.all_to_all %sent on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<4x8x16xf32> -> tensor<8x4x16xf32>
  return %back : tensor<8x4x16xf32>
}

// -----

shard.grid @moe_dense(shape = 1x2x1)

// CHECK-LABEL: func @all_reduce_sum
func.func @all_reduce_sum(%x: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // CHECK: call @moert_all_reduce_f32
  %r = shard.all_reduce %x on @moe_dense grid_axes = [1] reduction = sum : tensor<8x64xf32> -> tensor<8x64xf32>
  return %r : tensor<8x64xf32>
}

// -----

shard.grid @other(shape = 2)

func.func @unknown_grid(%x: tensor<8x64xf32>) -> tensor<16x64xf32> {
  // expected-error @+1 {{'shard.all_gather' op has no runtime group: expected @moe_dense axis 0 (pp), 1 (dp) or 2 (tp), or @moe_experts axis 2 (ep) or 3 (etp)}}
  %g = shard.all_gather %x on @other grid_axes = [0] gather_axis = 0 : tensor<8x64xf32> -> tensor<16x64xf32>
  return %g : tensor<16x64xf32>
}

// -----

shard.grid @moe_dense(shape = 1x2x1)

func.func @gather_axis_one(%x: tensor<8x64xf32>) -> tensor<8x128xf32> {
  // expected-error @+1 {{'shard.all_gather' op is lowered for f32 tensors gathered along axis 0 only}}
  %g = shard.all_gather %x on @moe_dense grid_axes = [1] gather_axis = 1 : tensor<8x64xf32> -> tensor<8x128xf32>
  return %g : tensor<8x128xf32>
}

// -----

shard.grid @moe_dense(shape = 1x2x1)

func.func @max_reduction(%x: tensor<8x64xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{'shard.all_reduce' op is lowered for sums of f32 tensors only}}
  %r = shard.all_reduce %x on @moe_dense grid_axes = [1] reduction = max : tensor<8x64xf32> -> tensor<8x64xf32>
  return %r : tensor<8x64xf32>
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

func.func @rank2_all_to_all(%x: tensor<8x64xf32>) -> tensor<4x128xf32> {
  // expected-error @+1 {{'shard.all_to_all' op is lowered for rank-3 f32 tensors with (split, concat) axes (0, 1) or (1, 0) only}}
  %r = shard.all_to_all %x on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x64xf32> -> tensor<4x128xf32>
  return %r : tensor<4x128xf32>
}

// -----

shard.grid @moe_dense(shape = 1x2x2)

// reduce_scatter (sum, axis 0) is one runtime call; all_slice needs no
// communication: each rank takes its block at rank * size.
// CHECK-LABEL: func @reduce_scatter_and_all_slice
func.func @reduce_scatter_and_all_slice(%x: tensor<8x64xf32>) -> (tensor<4x64xf32>, tensor<8x32xf32>) {
  // CHECK-DAG: %[[TP:.*]] = arith.constant 2 : i32
  // CHECK: call @moert_reduce_scatter_f32(%{{.*}}, %{{.*}}, %[[TP]])
  // CHECK: tensor.expand_shape %{{.*}} output_shape [4, 64] : tensor<256xf32> into tensor<4x64xf32>
  %r = shard.reduce_scatter %x on @moe_dense grid_axes = [2] scatter_axis = 0 : tensor<8x64xf32> -> tensor<4x64xf32>
  // CHECK: %[[R:.*]] = call @moert_group_rank(%{{.*}}) : (i32) -> i64
  // CHECK: %[[I:.*]] = arith.index_cast %[[R]] : i64 to index
  // CHECK: %[[OFF:.*]] = arith.muli %[[I]], %{{.*}} : index
  // CHECK: tensor.extract_slice %{{.*}}[0, %[[OFF]]] [8, 32] [1, 1] : tensor<8x64xf32> to tensor<8x32xf32>
  // CHECK-NOT: call
  %s = shard.all_slice %x on @moe_dense grid_axes = [1] slice_axis = 1 : tensor<8x64xf32> -> tensor<8x32xf32>
  return %r, %s : tensor<4x64xf32>, tensor<8x32xf32>
}

// -----

shard.grid @moe_dense(shape = 1x2x1)

func.func @reduce_scatter_axis_one(%x: tensor<8x64xf32>) -> tensor<8x32xf32> {
  // expected-error @+1 {{'shard.reduce_scatter' op is lowered for sums of f32 tensors scattered along axis 0 only}}
  %r = shard.reduce_scatter %x on @moe_dense grid_axes = [1] scatter_axis = 1 : tensor<8x64xf32> -> tensor<8x32xf32>
  return %r : tensor<8x32xf32>
}

// -----

// A world rank fixed by the module's dlti.map (as upstream's shard-to-MPI
// tests do): rank 2 of dp=2, tp=2, ep=2, etp=2 is dp 1, tp 0, ep 1, etp 0
// (docs/Parallelism.md), so the process indices and the slice offset are
// constants and no moert_group_rank call remains.

// CHECK-LABEL: func @fixed_rank
// CHECK-NOT: moert_group_rank
// CHECK: %[[R:.*]] = arith.constant 1 : index
// CHECK-NEXT: %[[ROWS:.*]] = arith.constant 4 : index
// CHECK-NEXT: %[[OFF:.*]] = arith.muli %[[R]], %[[ROWS]] : index
// CHECK-NEXT: %[[S:.*]] = tensor.extract_slice %{{.*}}[%[[OFF]], 0] [4, 64] [1, 1] : tensor<8x64xf32> to tensor<4x64xf32>
// CHECK-NEXT: %[[DP:.*]] = arith.constant 1 : index
// CHECK-NEXT: %[[TP:.*]] = arith.constant 0 : index
// CHECK-NEXT: %[[EP:.*]] = arith.constant 1 : index
// CHECK-NEXT: %[[ETP:.*]] = arith.constant 0 : index
// CHECK-NEXT: return %[[S]], %[[DP]], %[[TP]], %[[EP]], %[[ETP]]
module attributes {dlti.map = #dlti.map<"MPI:comm_world_rank" = 2 : i64>,
                   moe.plan = #moe.plan<dp = 2, tp = 2, ep = 2, etp = 2>} {
  shard.grid @moe_dense(shape = 1x2x2)
  shard.grid @moe_experts(shape = 1x1x2x2)
  func.func @fixed_rank(%x: tensor<8x64xf32>) -> (tensor<4x64xf32>, index, index, index, index) {
    %s = shard.all_slice %x on @moe_dense grid_axes = [1] slice_axis = 0 : tensor<8x64xf32> -> tensor<4x64xf32>
    %dp = shard.process_multi_index on @moe_dense axes = [1] : index
    %tp = shard.process_multi_index on @moe_dense axes = [2] : index
    %ep = shard.process_multi_index on @moe_experts axes = [2] : index
    %etp = shard.process_multi_index on @moe_experts axes = [3] : index
    return %s, %dp, %tp, %ep, %etp : tensor<4x64xf32>, index, index, index, index
  }
}

// -----

// expected-error @+1 {{"MPI:comm_world_rank" = 4 is outside the 4 ranks of #moe.plan<dp = 2, tp = 2>}}
module attributes {dlti.map = #dlti.map<"MPI:comm_world_rank" = 4 : i64>,
                   moe.plan = #moe.plan<dp = 2, tp = 2>} {
}

// -----

// expected-error @+1 {{a fixed "MPI:comm_world_rank" needs the module's #moe.plan to place the rank in its groups}}
module attributes {dlti.map = #dlti.map<"MPI:comm_world_rank" = 1 : i64>} {
}

// -----

// A pipeline's point to point: grid axis 0 is the pp group (5); the peer is
// the stage index, passed as i64.
shard.grid @moe_dense(shape = 2x1x1)

// CHECK-DAG: func.func private @moert_send_f32(memref<?xf32, strided<[?], offset: ?>>, i32, i64) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moert_recv_f32(memref<?xf32, strided<[?], offset: ?>>, i32, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @send_recv
// CHECK-SAME: (%[[X:.*]]: tensor<4x64xf32>, %[[PEER:.*]]: index)
func.func @send_recv(%x: tensor<4x64xf32>, %peer: index) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  // CHECK: %[[P:.*]] = arith.index_cast %[[PEER]] : index to i64
  // CHECK: %[[PP:.*]] = arith.constant 5 : i32
  // CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[X]]
  // CHECK: %[[IN:.*]] = bufferization.to_buffer %[[FLAT]] read_only
  // CHECK: call @moert_send_f32(%{{.*}}, %[[PP]], %[[P]])
  %sent = shard.send %x on @moe_dense grid_axes = [0] destination = [%peer] : (tensor<4x64xf32>, index) -> tensor<4x64xf32>
  // CHECK: %[[ONE:.*]] = arith.constant 1 : index
  // CHECK: %[[Q:.*]] = arith.index_cast %[[ONE]] : index to i64
  // CHECK: %[[OUT:.*]] = memref.alloc() : memref<256xf32>
  // CHECK: call @moert_recv_f32(%{{.*}}, %{{.*}}, %[[Q]])
  // CHECK: %[[T:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
  // CHECK: %[[R:.*]] = tensor.expand_shape %[[T]] {{\[\[}}0, 1]] output_shape [4, 64]
  %r = shard.recv %x on @moe_dense grid_axes = [0] source = [1] : (tensor<4x64xf32>) -> tensor<4x64xf32>
  // CHECK: return %[[X]], %[[R]]
  return %sent, %r : tensor<4x64xf32>, tensor<4x64xf32>
}

// -----

shard.grid @moe_dense(shape = 2x1x1)

func.func @recv_without_source(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{'shard.recv' op needs a source to be lowered}}
  %r = shard.recv %x on @moe_dense grid_axes = [0] : (tensor<4x64xf32>) -> tensor<4x64xf32>
  return %r : tensor<4x64xf32>
}

// -----

shard.grid @moe_dense(shape = 2x1x1)

func.func @send_on_two_axes(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{'shard.send' op has no runtime group}}
  %s = shard.send %x on @moe_dense grid_axes = [0, 1] destination = [1, 0] : (tensor<4x64xf32>) -> tensor<4x64xf32>
  return %s : tensor<4x64xf32>
}

// -----

// With the rank fixed (world rank 3 of dp=2, pp=2), the stage is a constant.
module attributes {dlti.map = #dlti.map<"MPI:comm_world_rank" = 3 : i32>, moe.plan = #moe.plan<dp = 2, pp = 2>} {
  shard.grid @moe_dense(shape = 2x2x1)
  // CHECK-LABEL: func @fixed_stage
  func.func @fixed_stage() -> index {
    // CHECK: %[[S:.*]] = arith.constant 1 : index
    // CHECK: return %[[S]]
    %s = shard.process_multi_index on @moe_dense axes = [0] : index
    return %s : index
  }
}

// -----

shard.grid @moe_experts(shape = 1x1x2x1)

// A started all_to_all: the runtime's non-blocking call where it starts, and
// at the wait the call that completes it, which reads the input once more
// (so its buffer stays alive and unchanged while in flight), then the
// result's reshaping. The compute in between stays in between.
// CHECK-DAG: func.func private @moert_start_all_to_all_f32(memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, i32) -> i64 attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moert_wait_f32(i64, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @started_all_to_all
// CHECK-SAME: (%[[X:.*]]: tensor<4x2x8xf32>, %[[Y:.*]]: tensor<8xf32>)
func.func @started_all_to_all(%x: tensor<4x2x8xf32>, %y: tensor<8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>) {
  // CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[X]]
  // CHECK: %[[IN:.*]] = bufferization.to_buffer %[[FLAT]] read_only
  // CHECK: %[[OUT:.*]] = memref.alloc() : memref<64xf32>
  // CHECK: %[[OUTC:.*]] = memref.cast %[[OUT]]
  // CHECK: %[[H:.*]] = call @moert_start_all_to_all_f32({{.*}}, %[[OUTC]], {{.*}}) : {{.*}} -> i64
  // CHECK-NOT: moe.async
  %f = moe.async_start %x : tensor<4x2x8xf32> -> !moe.future<tensor<2x4x8xf32>> {
  ^bb0(%in: tensor<4x2x8xf32>):
    %r = shard.all_to_all %in on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<4x2x8xf32> -> tensor<2x4x8xf32>
    moe.yield %r : tensor<2x4x8xf32>
  }
  // CHECK: %[[Z:.*]] = linalg.exp ins(%[[Y]]
  %e = tensor.empty() : tensor<8xf32>
  %z = linalg.exp ins(%y : tensor<8xf32>) outs(%e : tensor<8xf32>) -> tensor<8xf32>
  // CHECK: %[[AGAIN:.*]] = bufferization.to_buffer %[[FLAT]] read_only
  // CHECK: %[[AGAINC:.*]] = memref.cast %[[AGAIN]]
  // CHECK: call @moert_wait_f32(%[[H]], %[[AGAINC]], %[[OUTC]])
  // CHECK: %[[T:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
  // CHECK: %[[RECV:.*]] = tensor.expand_shape %[[T]]
  // CHECK: %[[MOVED:.*]] = linalg.transpose ins(%[[RECV]]
  // CHECK: %[[R:.*]] = tensor.collapse_shape %[[MOVED]]
  %r = moe.async_wait %f : !moe.future<tensor<2x4x8xf32>>
  // CHECK: return %[[R]], %[[Z]]
  return %r, %z : tensor<2x4x8xf32>, tensor<8xf32>
}
