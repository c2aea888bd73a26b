// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-partition | FileCheck %s

// Dropless, dp=2, ep=2, annotated as moe-shard does: the arguments take
// their local types (8 of 16 tokens, 4 of 8 experts), the layer becomes the
// a2a baseline, the residual add stays local, and the result is this rank's
// rows.

// CHECK-LABEL: func.func @a2a
// A split argument records how its part was cut (what moe-pack-weights
// reads to decide which slice of the checkpoint the rank loads).
// CHECK-SAME: (%[[X:[^:]*]]: tensor<8x64xf32> {moe.sharding = {grid = @moe_dense, split_axes = [array<i16: 1>]}}, %[[R:[^:]*]]: tensor<8x64xf32>, %[[UP:[^:]*]]: tensor<4x128x64xf32> {moe.sharding = {grid = @moe_experts, split_axes = [array<i16: 2>]}}, %[[DOWN:[^:]*]]: tensor<4x64x128xf32> {{.*}}, %[[GATE:[^:]*]]: tensor<4x128x64xf32> {{.*}}) -> tensor<8x64xf32>
// CHECK-NEXT: %[[W:.*]], %[[IDS:.*]] = moe.router %[[X]] weight %[[R]] k = 2
// CHECK-NEXT: %[[BUF:.*]], %[[SLOTS:.*]], %[[COUNTS:.*]] = moe.dispatch %[[X]] experts %[[IDS]] dropless {moe.layer_index = 0 : i64, moe.tokens_split = array<i16: 1>} : {{.*}} -> (tensor<8x8x64xf32>, tensor<8x2xi32>, tensor<8xi32>)
// CHECK-NEXT: %[[IN:.*]] = shard.all_to_all %[[BUF]] on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x8x64xf32> -> tensor<4x16x64xf32>
// The counts travel the same way, so the experts compute only filled rows:
// one [4, 2] table of (local expert, source rank) counts.
// CHECK: linalg.generic {{.*}} ins(%[[COUNTS]] : tensor<8xi32>) outs(%{{.*}} : tensor<8xf32>)
// CHECK: %[[C3:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1, 2]] output_shape [8, 1, 1] : tensor<8xf32> into tensor<8x1x1xf32>
// CHECK-NEXT: %[[CIN:.*]] = shard.all_to_all %[[C3]] on @moe_experts grid_axes = [2] split_axis = 0 concat_axis = 1 : tensor<8x1x1xf32> -> tensor<4x2x1xf32>
// CHECK: %[[TABLE:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<4x2xi32>)
// CHECK: %[[OUT:.*]] = moe.experts %[[IN]] counts %[[TABLE]] gate %[[GATE]] up %[[UP]] down %[[DOWN]]
// CHECK-NEXT: %[[BACK:.*]] = shard.all_to_all %[[OUT]] on @moe_experts grid_axes = [2] split_axis = 1 concat_axis = 0 : tensor<4x16x64xf32> -> tensor<8x8x64xf32>
// CHECK-NEXT: %[[Y:.*]] = moe.combine %[[BACK]] slots %[[SLOTS]] experts %[[IDS]] weights %[[W]]
// CHECK-NEXT: %[[H:.*]] = arith.addf %[[X]], %[[Y]] : tensor<8x64xf32>
// CHECK-NEXT: return %[[H]] : tensor<8x64xf32>
module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @a2a(%x: tensor<16x64xf32>, %r: tensor<8x64xf32>,
                 %up: tensor<8x128x64xf32>, %down: tensor<8x64x128xf32>,
                 %gate: tensor<8x128x64xf32>) -> tensor<16x64xf32> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %rep = shard.sharding @moe_dense split_axes = [[]] : !shard.sharding
    %exp = shard.sharding @moe_experts split_axes = [[2]] : !shard.sharding
    %xs = shard.shard %x to %tok : tensor<16x64xf32>
    %rs = shard.shard %r to %rep : tensor<8x64xf32>
    %ups = shard.shard %up to %exp : tensor<8x128x64xf32>
    %downs = shard.shard %down to %exp : tensor<8x64x128xf32>
    %gates = shard.shard %gate to %exp : tensor<8x128x64xf32>
    %xu = shard.shard %xs to %tok annotate_for_users : tensor<16x64xf32>
    %ru = shard.shard %rs to %rep annotate_for_users : tensor<8x64xf32>
    %upu = shard.shard %ups to %exp annotate_for_users : tensor<8x128x64xf32>
    %downu = shard.shard %downs to %exp annotate_for_users : tensor<8x64x128xf32>
    %gateu = shard.shard %gates to %exp annotate_for_users : tensor<8x128x64xf32>
    %y = moe.layer %xu router %ru experts(up %upu down %downu gate %gateu)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<16x64xf32>, tensor<8x64xf32>, tensor<8x128x64xf32>,
           tensor<8x64x128xf32>, tensor<8x128x64xf32>) -> tensor<16x64xf32>
    %ys = shard.shard %y to %tok : tensor<16x64xf32>
    %h = arith.addf %xs, %ys : tensor<16x64xf32>
    return %h : tensor<16x64xf32>
  }
}

// -----

// Capacity, dp=2, ep=2, etp=2 (4 ranks of dp=2, tp=2), with whole
// arguments and result (moe-shard keep-signature): each rank slices its
// tokens and its experts' etp slice, gathers the dp group's tokens for the
// drop decision, computes its experts' part of the buffer, gathers the
// expert outputs over ep, keeps its rows, sums the etp partials, and the
// result is gathered back over dp.

// CHECK-LABEL: func.func @capacity_etp
// CHECK-SAME: (%[[X:.*]]: tensor<16x32xf32>, %[[R:.*]]: tensor<4x32xf32>, %[[UP:.*]]: tensor<4x64x32xf32>, %[[DOWN:.*]]: tensor<4x32x64xf32>) -> tensor<16x32xf32>
// CHECK-NEXT: %[[XL:.*]] = shard.all_slice %[[X]] on @moe_dense grid_axes = [1] slice_axis = 0 : tensor<16x32xf32> -> tensor<8x32xf32>
// CHECK-NEXT: %[[UPE:.*]] = shard.all_slice %[[UP]] on @moe_experts grid_axes = [2] slice_axis = 0 : tensor<4x64x32xf32> -> tensor<2x64x32xf32>
// CHECK-NEXT: %[[UPL:.*]] = shard.all_slice %[[UPE]] on @moe_experts grid_axes = [3] slice_axis = 1 : tensor<2x64x32xf32> -> tensor<2x32x32xf32>
// CHECK-NEXT: %[[DOWNE:.*]] = shard.all_slice %[[DOWN]] on @moe_experts grid_axes = [2] slice_axis = 0
// CHECK-NEXT: %[[DOWNL:.*]] = shard.all_slice %[[DOWNE]] on @moe_experts grid_axes = [3] slice_axis = 2 : tensor<2x32x64xf32> -> tensor<2x32x32xf32>
// CHECK-NEXT: %[[XG:.*]] = shard.all_gather %[[XL]] on @moe_dense grid_axes = [1] gather_axis = 0 : tensor<8x32xf32> -> tensor<16x32xf32>
// CHECK-NEXT: %[[W:.*]], %[[IDS:.*]] = moe.router %[[XG]] weight %[[R]] k = 1
// CHECK-NEXT: %[[BUF:.*]], %[[SLOTS:.*]], %{{.*}} = moe.dispatch %[[XG]] experts %[[IDS]] {moe.layer_index = 0 : i64} : {{.*}} -> (tensor<4x5x32xf32>, tensor<16x1xi32>, tensor<4xi32>)
// CHECK-NEXT: %[[EP:.*]] = shard.process_multi_index on @moe_experts axes = [2] : index
// CHECK: %[[MINE:.*]] = tensor.extract_slice %[[BUF]][%{{.*}}, 0, 0] [2, 5, 32] [1, 1, 1]
// CHECK-NEXT: %[[E:.*]] = moe.experts %[[MINE]] up %[[UPL]] down %[[DOWNL]]
// CHECK-NEXT: %[[ALL:.*]] = shard.all_gather %[[E]] on @moe_experts grid_axes = [2] gather_axis = 0 : tensor<2x5x32xf32> -> tensor<4x5x32xf32>
// CHECK-NEXT: %[[YG:.*]] = moe.combine %[[ALL]]
// CHECK-NEXT: %[[DP:.*]] = shard.process_multi_index on @moe_dense axes = [1] : index
// CHECK: %[[ROWS:.*]] = tensor.extract_slice %[[YG]][%{{.*}}, 0] [8, 32] [1, 1] : tensor<16x32xf32> to tensor<8x32xf32>
// CHECK-NEXT: %[[SUM:.*]] = shard.all_reduce %[[ROWS]] on @moe_experts grid_axes = [3] : tensor<8x32xf32> -> tensor<8x32xf32>
// CHECK-NEXT: %[[OUT:.*]] = shard.all_gather %[[SUM]] on @moe_dense grid_axes = [1] gather_axis = 0 : tensor<8x32xf32> -> tensor<16x32xf32>
// CHECK-NEXT: return %[[OUT]] : tensor<16x32xf32>
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2, ep = 2, etp = 2>} {
  shard.grid @moe_dense(shape = 1x2x2)
  shard.grid @moe_experts(shape = 1x1x2x2)
  func.func @capacity_etp(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
                          %up: tensor<4x64x32xf32>, %down: tensor<4x32x64xf32>)
      -> tensor<16x32xf32> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %rep = shard.sharding @moe_dense split_axes = [[]] : !shard.sharding
    %rows = shard.sharding @moe_experts split_axes = [[2], [3]] : !shard.sharding
    %cols = shard.sharding @moe_experts split_axes = [[2], [], [3]] : !shard.sharding
    %xu = shard.shard %x to %tok annotate_for_users : tensor<16x32xf32>
    %ru = shard.shard %r to %rep annotate_for_users : tensor<4x32xf32>
    %upu = shard.shard %up to %rows annotate_for_users : tensor<4x64x32xf32>
    %downu = shard.shard %down to %cols annotate_for_users : tensor<4x32x64xf32>
    %y = moe.layer %xu router %ru experts(up %upu down %downu)
        k = 1 score = softmax activation = relu capacity = 5
        : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
           tensor<4x32x64xf32>) -> tensor<16x32xf32>
    %ys = shard.shard %y to %tok : tensor<16x32xf32>
    %out = shard.shard %ys to %rep annotate_for_users : tensor<16x32xf32>
    return %out : tensor<16x32xf32>
  }
}

// -----

// Capacity with dp = 1 and ep = 2 (tp = 2): the tokens are already whole, so
// nothing is gathered before routing; the experts' part of the buffer is.

// CHECK-LABEL: func.func @capacity_tp_ep
// CHECK-SAME: (%[[X:[^:]*]]: tensor<16x32xf32>, %{{[^:]*}}: tensor<4x32xf32>, %{{[^:]*}}: tensor<2x64x32xf32> {{.*}}, %{{[^:]*}}: tensor<2x32x64xf32> {{.*}})
// CHECK-NEXT: moe.router %[[X]]
// CHECK-NEXT: moe.dispatch %[[X]]
// CHECK: shard.all_gather %{{.*}} on @moe_experts grid_axes = [2] gather_axis = 0 : tensor<2x5x32xf32> -> tensor<4x5x32xf32>
// CHECK-NEXT: %[[Y:.*]] = moe.combine
// CHECK-NEXT: return %[[Y]] : tensor<16x32xf32>
module attributes {moe.plan = #moe.plan<tp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @capacity_tp_ep(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
                            %up: tensor<4x64x32xf32>, %down: tensor<4x32x64xf32>)
      -> tensor<16x32xf32> {
    %rep = shard.sharding @moe_dense split_axes = [[]] : !shard.sharding
    %exp = shard.sharding @moe_experts split_axes = [[2]] : !shard.sharding
    %ups = shard.shard %up to %exp : tensor<4x64x32xf32>
    %downs = shard.shard %down to %exp : tensor<4x32x64xf32>
    %xu = shard.shard %x to %rep annotate_for_users : tensor<16x32xf32>
    %ru = shard.shard %r to %rep annotate_for_users : tensor<4x32xf32>
    %upu = shard.shard %ups to %exp annotate_for_users : tensor<4x64x32xf32>
    %downu = shard.shard %downs to %exp annotate_for_users : tensor<4x32x64xf32>
    %y = moe.layer %xu router %ru experts(up %upu down %downu)
        k = 1 score = softmax activation = relu capacity = 5
        : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x64x32xf32>,
           tensor<4x32x64xf32>) -> tensor<16x32xf32>
    return %y : tensor<16x32xf32>
  }
}

// -----

// A module without shardings is left alone when its plan has one rank.
// CHECK-LABEL: func.func @unsharded_one_rank
// CHECK-NEXT: moe.layer
module attributes {moe.plan = #moe.plan<dp = 1>} {
  func.func @unsharded_one_rank(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                                %up: tensor<4x32x16xf32>,
                                %down: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %y = moe.layer %x router %r experts(up %up down %down)
        k = 1 score = softmax activation = relu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<dp = 2>} {
  // expected-error @+1 {{'func.func' op has moe.layer ops without shardings under the plan #moe.plan<dp = 2>; run moe-shard first}}
  func.func @not_sharded(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                         %up: tensor<4x32x16xf32>,
                         %down: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %y = moe.layer %x router %r experts(up %up down %down)
        k = 1 score = softmax activation = relu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

shard.grid @moe_dense(shape = 1x2x1)
// expected-error @+1 {{'func.func' op is sharded but its module has no #moe.plan ('moe.plan' attribute)}}
func.func @no_plan(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %s = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
  %xs = shard.shard %x to %s : tensor<8x16xf32>
  return %xs : tensor<8x16xf32>
}

// -----

// The experts sharded over dp instead of ep: the layer's rule says what it
// needs rather than guessing.
module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @wrong_layout(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                          %up: tensor<4x32x16xf32>,
                          %down: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xu = shard.shard %x to %tok annotate_for_users : tensor<8x16xf32>
    %upu = shard.shard %up to %tok annotate_for_users : tensor<4x32x16xf32>
    // expected-error @+1 {{'moe.layer' op operand #2 is sharded @moe_dense [[1]], but under #moe.plan<dp = 2, ep = 2> the layer's rule needs @moe_experts [[2]] (the layout moe-shard annotates)}}
    %y = moe.layer %xu router %r experts(up %upu down %down)
        k = 1 score = softmax activation = relu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

// A linalg op takes the split of the loops its operands' split dimensions
// index: rows of x over dp give rows of the product; its init is built
// again at the local size.
// CHECK-LABEL: func.func @matmul_rows
// CHECK-SAME: (%[[X:[^:]*]]: tensor<4x16xf32> {{.*}}, %[[W:[^:]*]]: tensor<16x16xf32>) -> tensor<4x16xf32>
// CHECK: %[[INIT:.*]] = tensor.empty() : tensor<4x16xf32>
// CHECK: linalg.matmul ins(%[[X]], %[[W]] : tensor<4x16xf32>, tensor<16x16xf32>) outs(%[[INIT]] : tensor<4x16xf32>)
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @matmul_rows(%x: tensor<8x16xf32>, %w: tensor<16x16xf32>) -> tensor<8x16xf32> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %tok : tensor<8x16xf32>
    %init = tensor.empty() : tensor<8x16xf32>
    %y = linalg.matmul ins(%xs, %w : tensor<8x16xf32>, tensor<16x16xf32>)
        outs(%init : tensor<8x16xf32>) -> tensor<8x16xf32>
    return %y : tensor<8x16xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
  func.func @split_to_split(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %a = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %b = shard.sharding @moe_experts split_axes = [[], [2]] : !shard.sharding
    %xs = shard.shard %x to %a : tensor<8x16xf32>
    // expected-error @+1 {{'shard.shard' op needs a re-sharding from @moe_dense [[1]] to @moe_experts [[], [2]]; moe-partition handles replicated <-> split along one axis per dimension only}}
    %xb = shard.shard %xs to %b annotate_for_users : tensor<8x16xf32>
    return %xb : tensor<8x16xf32>
  }
}

// -----

module attributes {moe.plan = #moe.plan<dp = 2, ep = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x1x2x1)
  // expected-error @+1 {{'func.func' op splits dimension 0 of 'tensor<3x16xf32>' into 2 parts (@moe_dense [[1]]), which does not divide it}}
  func.func @indivisible(%x: tensor<3x16xf32>) -> tensor<3x16xf32> {
    %a = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %a : tensor<3x16xf32>
    return %xs : tensor<3x16xf32>
  }
}

// -----

// A layer result without an annotation has the sharding the layer's rule
// gives it (split over dp like its tokens), so returning it whole gathers it.
// CHECK-LABEL: func.func @unannotated_result
// CHECK: %[[Y:.*]] = moe.layer %{{.*}} : (tensor<4x16xf32>
// CHECK-NEXT: %[[ALL:.*]] = shard.all_gather %[[Y]] on @moe_dense grid_axes = [1] gather_axis = 0 : tensor<4x16xf32> -> tensor<8x16xf32>
// CHECK-NEXT: return %[[ALL]] : tensor<8x16xf32>
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x2x1x1)
  func.func @unannotated_result(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>,
                                %up: tensor<4x32x16xf32>,
                                %down: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %rep = shard.sharding @moe_dense split_axes = [[]] : !shard.sharding
    %xu = shard.shard %x to %tok annotate_for_users : tensor<8x16xf32>
    %y = moe.layer %xu router %r experts(up %up down %down)
        k = 1 score = softmax activation = relu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>,
           tensor<4x16x32xf32>) -> tensor<8x16xf32>
    %o = shard.shard %y to %rep annotate_for_users : tensor<8x16xf32>
    return %o : tensor<8x16xf32>
  }
}

// -----

// A sharding that is not a shard.sharding op cannot be read: an error, not a
// guess.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @opaque(%x: tensor<8x16xf32>, %s: !shard.sharding) -> tensor<8x16xf32> {
    // expected-error @+1 {{'shard.shard' op has a sharding moe-partition cannot read (it must come from a shard.sharding op)}}
    %xs = shard.shard %x to %s : tensor<8x16xf32>
    return %xs : tensor<8x16xf32>
  }
}

// -----

// Megatron attention projections, tp = 2: a column-parallel weight (rows
// over tp) gives a product split by columns; the row-parallel weight
// (columns over tp) then reduces over a split loop, so the partial products
// are summed by an all_reduce over tp.
// CHECK-LABEL: func.func @megatron
// CHECK-SAME: (%[[X:[^:]*]]: tensor<8x16xf32>, %[[WQ:[^:]*]]: tensor<4x16xf32> {{.*}}, %[[WO:[^:]*]]: tensor<16x4xf32> {{.*}}) -> tensor<8x16xf32>
// CHECK: %[[Q:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[WQ]] : tensor<8x16xf32>, tensor<4x16xf32>) outs(%{{.*}} : tensor<8x4xf32>)
// CHECK: %[[P:.*]] = linalg.generic {{.*}} ins(%[[Q]], %[[WO]] : tensor<8x4xf32>, tensor<16x4xf32>) outs(%{{.*}} : tensor<8x16xf32>)
// CHECK: %[[SUM:.*]] = shard.all_reduce %[[P]] on @moe_dense grid_axes = [2] : tensor<8x16xf32> -> tensor<8x16xf32>
// CHECK-NEXT: return %[[SUM]]
#mk = affine_map<(m, n, k) -> (m, k)>
#nk = affine_map<(m, n, k) -> (n, k)>
#mn = affine_map<(m, n, k) -> (m, n)>
module attributes {moe.plan = #moe.plan<tp = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  func.func @megatron(%x: tensor<8x16xf32>, %wq: tensor<8x16xf32>, %wo: tensor<16x8xf32>) -> tensor<8x16xf32> {
    %rows = shard.sharding @moe_dense split_axes = [[2]] : !shard.sharding
    %cols = shard.sharding @moe_dense split_axes = [[], [2]] : !shard.sharding
    %wqs = shard.shard %wq to %rows : tensor<8x16xf32>
    %wos = shard.shard %wo to %cols : tensor<16x8xf32>
    %zero = arith.constant 0.0 : f32
    %e1 = tensor.empty() : tensor<8x8xf32>
    %i1 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<8x8xf32>) -> tensor<8x8xf32>
    %q = linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%x, %wqs : tensor<8x16xf32>, tensor<8x16xf32>) outs(%i1 : tensor<8x8xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %m = arith.mulf %a, %b : f32
      %s = arith.addf %c, %m : f32
      linalg.yield %s : f32
    } -> tensor<8x8xf32>
    %e2 = tensor.empty() : tensor<8x16xf32>
    %i2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<8x16xf32>) -> tensor<8x16xf32>
    %o = linalg.generic {indexing_maps = [#mk, #nk, #mn], iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%q, %wos : tensor<8x8xf32>, tensor<16x8xf32>) outs(%i2 : tensor<8x16xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %m = arith.mulf %a, %b : f32
      %s = arith.addf %c, %m : f32
      linalg.yield %s : f32
    } -> tensor<8x16xf32>
    return %o : tensor<8x16xf32>
  }
}

// -----

// Grouped-query heads: the keys' head index is the query head floordiv the
// group, so splitting query heads over tp splits kv heads the same way. A
// body reading the index of a split loop gets the rank's offset added; the
// reshapes keep the split on the outer dimension of a group.
// CHECK-LABEL: func.func @gqa
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<2x16xf32> {{.*}}, %[[K:[^:]*]]: tensor<2x4xf32> {{.*}}) -> tensor<2x16xf32>
// CHECK: %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{\[\[}}0], [1, 2]] output_shape [2, 4, 4] : tensor<2x16xf32> into tensor<2x4x4xf32>
// CHECK: %[[K4:.*]] = tensor.expand_shape %[[K]] {{.*}} into tensor<2x1x4xf32>
// CHECK: %[[T:.*]] = shard.process_multi_index on @moe_dense axes = [2] : index
// CHECK: %[[OFF:.*]] = arith.muli %[[T]], %c4
// CHECK: linalg.generic {{.*}} ins(%[[Q4]], %[[K4]] : tensor<2x4x4xf32>, tensor<2x1x4xf32>)
// CHECK: %[[H:.*]] = linalg.index 1 : index
// CHECK-NEXT: arith.addi %[[H]], %[[OFF]] : index
// CHECK: tensor.collapse_shape {{.*}} : tensor<2x4x4xf32> into tensor<2x16xf32>
#qmap = affine_map<(t, h, d) -> (t, h, d)>
#kmap = affine_map<(t, h, d) -> (t, h floordiv 4, d)>
module attributes {moe.plan = #moe.plan<tp = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  func.func @gqa(%q: tensor<2x32xf32>, %k: tensor<2x8xf32>) -> tensor<2x32xf32> {
    %cols = shard.sharding @moe_dense split_axes = [[], [2]] : !shard.sharding
    %qs = shard.shard %q to %cols : tensor<2x32xf32>
    %ks = shard.shard %k to %cols : tensor<2x8xf32>
    %q4 = tensor.expand_shape %qs [[0], [1, 2]] output_shape [2, 8, 4] : tensor<2x32xf32> into tensor<2x8x4xf32>
    %k4 = tensor.expand_shape %ks [[0], [1, 2]] output_shape [2, 2, 4] : tensor<2x8xf32> into tensor<2x2x4xf32>
    %e = tensor.empty() : tensor<2x8x4xf32>
    %r = linalg.generic {indexing_maps = [#qmap, #kmap, #qmap], iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%q4, %k4 : tensor<2x8x4xf32>, tensor<2x2x4xf32>) outs(%e : tensor<2x8x4xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %h = linalg.index 1 : index
      %hi = arith.index_cast %h : index to i32
      %hf = arith.sitofp %hi : i32 to f32
      %m = arith.mulf %a, %b : f32
      %s = arith.addf %m, %hf : f32
      linalg.yield %s : f32
    } -> tensor<2x8x4xf32>
    %out = tensor.collapse_shape %r [[0], [1, 2]] : tensor<2x8x4xf32> into tensor<2x32xf32>
    return %out : tensor<2x32xf32>
  }
}

// -----

// A reduction over a split loop must add into a zero-filled result (the
// all_reduce sums one partial result per rank).
#mk2 = affine_map<(m, k) -> (m, k)>
#m2 = affine_map<(m, k) -> (m)>
module attributes {moe.plan = #moe.plan<tp = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  func.func @max_over_split(%x: tensor<8x16xf32>, %init: tensor<8xf32>) -> tensor<8xf32> {
    %cols = shard.sharding @moe_dense split_axes = [[], [2]] : !shard.sharding
    %xs = shard.shard %x to %cols : tensor<8x16xf32>
    // expected-error @+1 {{reduces over a split loop; moe-partition completes such reductions with an all_reduce sum, so the op must add into one zero-filled result}}
    %r = linalg.generic {indexing_maps = [#mk2, #m2], iterator_types = ["parallel", "reduction"]}
        ins(%xs : tensor<8x16xf32>) outs(%init : tensor<8xf32>) {
    ^bb0(%a: f32, %c: f32):
      %s = arith.maximumf %c, %a : f32
      linalg.yield %s : f32
    } -> tensor<8xf32>
    return %r : tensor<8xf32>
  }
}

// -----

// A body may not read a split value from outside the op: its local block
// is not what the global indices address.
#id2 = affine_map<(m, k) -> (m, k)>
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @captured(%x: tensor<8x16xf32>, %y: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %rows = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %rows : tensor<8x16xf32>
    %ys = shard.shard %y to %rows : tensor<8x16xf32>
    %e = tensor.empty() : tensor<8x16xf32>
    %r = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
        ins(%xs : tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
    ^bb0(%a: f32, %c: f32):
      %i = linalg.index 0 : index
      %j = linalg.index 1 : index
      // expected-error @+1 {{'tensor.extract' op inside a partitioned linalg.generic reads a split value}}
      %v = tensor.extract %ys[%i, %j] : tensor<8x16xf32>
      %s = arith.addf %a, %v : f32
      linalg.yield %s : f32
    } -> tensor<8x16xf32>
    return %r : tensor<8x16xf32>
  }
}

// -----

// An operand dimension indexed by a compound expression of a split loop.
#shift = affine_map<(m, k) -> (m + 1, k)>
#id3 = affine_map<(m, k) -> (m, k)>
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @shifted(%x: tensor<8x16xf32>, %y: tensor<9x16xf32>) -> tensor<8x16xf32> {
    %rows = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %rows : tensor<8x16xf32>
    %e = tensor.empty() : tensor<8x16xf32>
    // expected-error @+1 {{indexes operand #1 by d0 + 1, a function of split loop 0}}
    %r = linalg.generic {indexing_maps = [#id3, #shift, #id3], iterator_types = ["parallel", "parallel"]}
        ins(%xs, %y : tensor<8x16xf32>, tensor<9x16xf32>) outs(%e : tensor<8x16xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %s = arith.addf %a, %b : f32
      linalg.yield %s : f32
    } -> tensor<8x16xf32>
    return %r : tensor<8x16xf32>
  }
}

// -----

// Two operands splitting one loop over different axes.
#id4 = affine_map<(m, k) -> (m, k)>
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2>} {
  shard.grid @moe_dense(shape = 1x2x2)
  func.func @two_ways(%x: tensor<8x16xf32>, %y: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %dp = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %tp = shard.sharding @moe_dense split_axes = [[2]] : !shard.sharding
    %xs = shard.shard %x to %dp : tensor<8x16xf32>
    %ys = shard.shard %y to %tp : tensor<8x16xf32>
    %e = tensor.empty() : tensor<8x16xf32>
    // expected-error @+1 {{has loop 0 split two ways by its operands}}
    %r = linalg.generic {indexing_maps = [#id4, #id4, #id4], iterator_types = ["parallel", "parallel"]}
        ins(%xs, %ys : tensor<8x16xf32>, tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %s = arith.addf %a, %b : f32
      linalg.yield %s : f32
    } -> tensor<8x16xf32>
    return %r : tensor<8x16xf32>
  }
}

// -----

// Collapsing a split dimension into an outer one.
module attributes {moe.plan = #moe.plan<tp = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  func.func @collapse_inner(%x: tensor<4x8xf32>) -> tensor<32xf32> {
    %cols = shard.sharding @moe_dense split_axes = [[], [2]] : !shard.sharding
    %xs = shard.shard %x to %cols : tensor<4x8xf32>
    // expected-error @+1 {{collapses dimension 1, which is split, into an outer one; moe-partition collapses only groups split on their outermost dimension}}
    %r = tensor.collapse_shape %xs [[0, 1]] : tensor<4x8xf32> into tensor<32xf32>
    return %r : tensor<32xf32>
  }
}

// -----

// A split over an axis the grid does not have.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  // expected-error @+1 {{'func.func' op splits over axis 5 of @moe_dense, which has 3 axes}}
  func.func @bad_axis(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %s = shard.sharding @moe_dense split_axes = [[5]] : !shard.sharding
    %xs = shard.shard %x to %s : tensor<8x16xf32>
    return %xs : tensor<8x16xf32>
  }
}

// -----

// Halos (and explicit shard sizes) are not supported.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @halo(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %s = shard.sharding @moe_dense split_axes = [[1]] halo_sizes = [1, 1] : !shard.sharding
    // expected-error @+1 {{'shard.shard' op has halos or explicit shard sizes, which moe-partition does not support}}
    %xs = shard.shard %x to %s annotate_for_users : tensor<8x16xf32>
    return %xs : tensor<8x16xf32>
  }
}

// -----

// A function body of more than one block.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  // expected-error @+1 {{'func.func' op has more than one block; moe-partition handles one-block function bodies}}
  func.func @blocks(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
    %s = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %s : tensor<8x16xf32>
    cf.br ^next
  ^next:
    return %xs : tensor<8x16xf32>
  }
}

// -----

// An op with no rule for split operands.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @no_rule(%x: tensor<8x16xf32>) -> f32 {
    %rows = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %rows : tensor<8x16xf32>
    %c0 = arith.constant 0 : index
    // expected-error @+1 {{'tensor.extract' op has operands sharded @moe_dense [[1]]; moe-partition partitions moe ops, linalg ops, reshapes, slices, elementwise ops whose operands share one sharding, and ops on replicated values}}
    %r = tensor.extract %xs[%c0, %c0] : tensor<8x16xf32>
    return %r : f32
  }
}

// -----

// Slices take split dimensions whole: an extract_slice that takes part of
// one is an error.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  func.func @partial_slice(%x: tensor<8x16xf32>) -> tensor<2x16xf32> {
    %rows = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %xs = shard.shard %x to %rows : tensor<8x16xf32>
    // expected-error @+1 {{'tensor.extract_slice' op takes part of dimension 0 of 'tensor<8x16xf32>', which is split (@moe_dense [[1]]); moe-partition slices split dimensions only whole}}
    %r = tensor.extract_slice %xs[0, 0] [2, 16] [1, 1] : tensor<8x16xf32> to tensor<2x16xf32>
    return %r : tensor<2x16xf32>
  }
}

// -----

// A layer of a stacked cache [L, B, M, heads, d] split over sequences (dp)
// and heads (tp): the rank-reducing extract_slice takes the local block of
// the layer, and an insert_slice into a tensor.empty stacks local blocks
// into a local stack, split like its slices.
// CHECK-LABEL: func.func @cache_slices(
// CHECK-SAME: %[[CACHE:[^:]*]]: tensor<3x2x5x1x4xf32> {{.*}}, %[[NEW:[^:]*]]: tensor<2x5x1x4xf32> {{.*}}) -> (tensor<2x5x1x4xf32>, tensor<3x2x5x1x4xf32>)
// CHECK: %[[LAYER:.*]] = tensor.extract_slice %[[CACHE]][1, 0, 0, 0, 0] [1, 2, 5, 1, 4] [1, 1, 1, 1, 1] : tensor<3x2x5x1x4xf32> to tensor<2x5x1x4xf32>
// CHECK: %[[EMPTY:.*]] = tensor.empty() : tensor<3x2x5x1x4xf32>
// CHECK: %[[STACK:.*]] = tensor.insert_slice %[[NEW]] into %[[EMPTY]][2, 0, 0, 0, 0] [1, 2, 5, 1, 4] [1, 1, 1, 1, 1] : tensor<2x5x1x4xf32> into tensor<3x2x5x1x4xf32>
// CHECK: return %[[LAYER]], %[[STACK]]
module attributes {moe.plan = #moe.plan<dp = 2, tp = 2>} {
  shard.grid @moe_dense(shape = 1x2x2)
  func.func @cache_slices(%cache: tensor<3x4x5x2x4xf32>, %new: tensor<4x5x2x4xf32>) -> (tensor<4x5x2x4xf32>, tensor<3x4x5x2x4xf32>) {
    %s = shard.sharding @moe_dense split_axes = [[], [1], [], [2]] : !shard.sharding
    %cs = shard.shard %cache to %s : tensor<3x4x5x2x4xf32>
    %n = shard.sharding @moe_dense split_axes = [[1], [], [2]] : !shard.sharding
    %ns = shard.shard %new to %n : tensor<4x5x2x4xf32>
    %layer = tensor.extract_slice %cs[1, 0, 0, 0, 0] [1, 4, 5, 2, 4] [1, 1, 1, 1, 1] : tensor<3x4x5x2x4xf32> to tensor<4x5x2x4xf32>
    %empty = tensor.empty() : tensor<3x4x5x2x4xf32>
    %stack = tensor.insert_slice %ns into %empty[2, 0, 0, 0, 0] [1, 4, 5, 2, 4] [1, 1, 1, 1, 1] : tensor<4x5x2x4xf32> into tensor<3x4x5x2x4xf32>
    return %layer, %stack : tensor<4x5x2x4xf32>, tensor<3x4x5x2x4xf32>
  }
}

// -----

// The layer's rule is for f32 layers.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x2x1x1)
  func.func @f16_layer(%x: tensor<8x16xf16>, %r: tensor<4x16xf16>, %up: tensor<4x32x16xf16>, %down: tensor<4x16x32xf16>) -> tensor<8x16xf16> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %rep = shard.sharding @moe_dense split_axes = [[]] : !shard.sharding
    %xs = shard.shard %x to %tok annotate_for_users : tensor<8x16xf16>
    %rs = shard.shard %r to %rep annotate_for_users : tensor<4x16xf16>
    %us = shard.shard %up to %rep annotate_for_users : tensor<4x32x16xf16>
    %ds = shard.shard %down to %rep annotate_for_users : tensor<4x16x32xf16>
    // expected-error @+1 {{'moe.layer' op is partitioned for f32 tokens and weights only, got 'tensor<8x16xf16>'}}
    %y = moe.layer %xs router %rs experts(up %us down %ds) k = 1 score = softmax activation = relu
        : (tensor<8x16xf16>, tensor<4x16xf16>, tensor<4x32x16xf16>, tensor<4x16x32xf16>) -> tensor<8x16xf16>
    return %y : tensor<8x16xf16>
  }
}

// -----

// A layer result annotated with another sharding than its rule gives.
module attributes {moe.plan = #moe.plan<dp = 2>} {
  shard.grid @moe_dense(shape = 1x2x1)
  shard.grid @moe_experts(shape = 1x2x1x1)
  func.func @result_sharding(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>, %up: tensor<4x32x16xf32>, %down: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
    %tok = shard.sharding @moe_dense split_axes = [[1]] : !shard.sharding
    %rep = shard.sharding @moe_dense split_axes = [[]] : !shard.sharding
    %xs = shard.shard %x to %tok annotate_for_users : tensor<8x16xf32>
    %rs = shard.shard %r to %rep annotate_for_users : tensor<4x16xf32>
    %us = shard.shard %up to %rep annotate_for_users : tensor<4x32x16xf32>
    %ds = shard.shard %down to %rep annotate_for_users : tensor<4x16x32xf32>
    // expected-error @+1 {{'moe.layer' op result is sharded replicated, but under #moe.plan<dp = 2> the layer's rule gives @moe_dense [[1]]}}
    %y = moe.layer %xs router %rs experts(up %us down %ds) k = 1 score = softmax activation = relu
        : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
    %ys = shard.shard %y to %rep : tensor<8x16xf32>
    return %ys : tensor<8x16xf32>
  }
}

// -----

// Two loops split over one axis would leave each rank its diagonal block.
module attributes {moe.plan = #moe.plan<tp = 2>} {
  shard.grid @moe_dense(shape = 1x1x2)
  func.func @diagonal(%a: tensor<8x8xf32>, %b: tensor<8x8xf32>) -> tensor<8x8xf32> {
    %rows = shard.sharding @moe_dense split_axes = [[2]] : !shard.sharding
    %cols = shard.sharding @moe_dense split_axes = [[], [2]] : !shard.sharding
    %as = shard.shard %a to %rows : tensor<8x8xf32>
    %bs = shard.shard %b to %cols : tensor<8x8xf32>
    %zero = arith.constant 0.0 : f32
    %e = tensor.empty() : tensor<8x8xf32>
    %i = linalg.fill ins(%zero : f32) outs(%e : tensor<8x8xf32>) -> tensor<8x8xf32>
    // expected-error @+1 {{'linalg.matmul' op has loops 0 and 1 split over the same grid axis 2 by its operands; moe-partition splits a loop per axis}}
    %y = linalg.matmul ins(%as, %bs : tensor<8x8xf32>, tensor<8x8xf32>) outs(%i : tensor<8x8xf32>) -> tensor<8x8xf32>
    return %y : tensor<8x8xf32>
  }
}
