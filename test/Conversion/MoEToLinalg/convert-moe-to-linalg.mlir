// RUN: moe-opt %s --convert-moe-to-linalg --split-input-file --verify-diagnostics | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-linalg=parallel-dispatch=true --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=PAR

// Router: x · Wᵀ, softmax, the rank of every expert, the selection of ids and
// weights by rank, and the renormalization.
// CHECK-LABEL: func @router
// CHECK-SAME: (%[[X:.*]]: tensor<8x16xf32>, %[[W:.*]]: tensor<4x16xf32>)
func.func @router(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>) {
  // CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]], %[[W]] : tensor<8x16xf32>, tensor<4x16xf32>) outs(%{{.*}} : tensor<8x4xf32>) attrs = {moe.exact_product}
  // CHECK: arith.maximumf
  // CHECK: arith.subf
  // CHECK-NEXT: math.exp
  // CHECK: %[[SCORES:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<8x4xf32>, tensor<8xf32>)
  // CHECK-NEXT: ^bb0
  // CHECK-NEXT: arith.divf
  // CHECK: %[[RANK:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[SCORES]], %[[SCORES]] : {{.*}}) outs(%{{.*}} : tensor<8x4xi32>)
  // CHECK: arith.cmpf ogt
  // CHECK: arith.cmpf oeq
  // CHECK: arith.cmpi ult
  // CHECK: %[[SEL:.*]]:2 = linalg.generic {{.*}} ins(%[[RANK]], %[[SCORES]] : tensor<8x4xi32>, tensor<8x4xf32>) outs(%{{.*}}, %{{.*}} : tensor<8x2xi32>, tensor<8x2xf32>)
  // CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[SEL]]#1 : tensor<8x2xf32>)
  // CHECK: %[[NORM:.*]] = linalg.generic {{.*}} ins(%[[SEL]]#1, %[[SUM]] :
  // CHECK: return %[[NORM]], %[[SEL]]#0
  %weights, %ids = moe.router %x weight %w k = 2 score = softmax renormalize : (tensor<8x16xf32>, tensor<4x16xf32>) -> (tensor<8x2xf32>, tensor<8x2xi32>)
  return %weights, %ids : tensor<8x2xf32>, tensor<8x2xi32>
}

// -----

// Sigmoid scores with a selection bias: the bias enters the keys (ranking)
// but not the weights.
// CHECK-LABEL: func @router_sigmoid_bias
func.func @router_sigmoid_bias(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>, %b: tensor<4xf32>) -> (tensor<8x1xf32>, tensor<8x1xi64>) {
  // CHECK: %[[SCORES:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<8x4xf32>) outs(%{{.*}} : tensor<8x4xf32>)
  // CHECK: math.exp
  // CHECK: %[[KEYS:.*]] = linalg.generic {{.*}} ins(%[[SCORES]], %{{.*}} : tensor<8x4xf32>, tensor<4xf32>)
  // CHECK: %[[RANK:.*]] = linalg.generic {{.*}} ins(%[[KEYS]], %[[KEYS]] :
  // CHECK: %[[SEL:.*]]:2 = linalg.generic {{.*}} ins(%[[RANK]], %[[SCORES]] :
  // CHECK-NOT: arith.divf
  // CHECK: return %[[SEL]]#1, %[[SEL]]#0 : tensor<8x1xf32>, tensor<8x1xi64>
  %weights, %ids = moe.router %x weight %w bias %b k = 1 score = sigmoid : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4xf32>) -> (tensor<8x1xf32>, tensor<8x1xi64>)
  return %weights, %ids : tensor<8x1xf32>, tensor<8x1xi64>
}

// -----

// Dispatch: one loop over the k*T pairs in drop order (p = j*T + t), then a
// gather of the buffer from the source token of every slot.
// CHECK-LABEL: func @dispatch
//
// parallel-dispatch: no loop; the 16 pairs fill one chunk of 64 ([1, 64]):
// each pair's expert, the chunk's histogram [1, 4] (which, with one chunk,
// is the total per expert: no prefix over earlier chunks), each pair's rank
// in its chunk, its raw slot, the slots, then for each of the 4x3 slots its
// source token, searched in the one chunk (more chunks:
// dispatch-execution.mlir).
// PAR-LABEL: func @dispatch
// PAR-NOT: scf.for
// PAR: %[[EXPERT:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<1x64xi32>)
// PAR:   scf.if
// PAR:     tensor.extract %{{.*}} : tensor<8x2xi32>
// PAR:   } else {
// PAR: %[[HIST:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[EXPERT]] : tensor<1x64xi32>) outs(%{{.*}} : tensor<1x4xi32>)
// PAR: %[[FILL:.*]] = tensor.collapse_shape %[[HIST]] {{\[\[}}0, 1]] : tensor<1x4xi32> into tensor<4xi32>
// PAR: %[[WITHIN:.*]] = linalg.generic {{.*}} ins(%[[EXPERT]], %[[EXPERT]] : tensor<1x64xi32>, tensor<1x64xi32>)
// PAR: %[[RAW:.*]] = linalg.generic {{.*}} ins(%[[EXPERT]], %[[WITHIN]] :
// PAR-NOT: tensor.extract
// PAR: %[[SLOTS:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<8x2xi32>)
// PAR:   tensor.extract %[[RAW]]
// PAR: %[[SRC:.*]] = linalg.generic {{.*}} ins(%[[EXPERT]] : tensor<1x64xi32>) outs(%{{.*}} : tensor<4x3xi32>)
// PAR: %[[COUNTS:.*]] = linalg.generic {{.*}} ins(%[[FILL]] : tensor<4xi32>)
// PAR: %[[BUF:.*]] = linalg.generic {{.*}} ins(%[[SRC]] : tensor<4x3xi32>) outs(%{{.*}} : tensor<4x3x16xf32>)
// PAR: return %[[BUF]], %[[SLOTS]], %[[COUNTS]]
func.func @dispatch(%x: tensor<8x16xf32>, %ids: tensor<8x2xi32>) -> (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>) {
  // CHECK: %[[PAIRS:.*]] = arith.muli %{{.*}}, %{{.*}} : index
  // CHECK: %[[LOOP:.*]]:3 = scf.for %[[P:.*]] = %{{.*}} to %[[PAIRS]] {{.*}} -> (tensor<4xi32>, tensor<8x2xi32>, tensor<4x3xi32>)
  // CHECK:   %[[J:.*]] = arith.divui %[[P]], %{{.*}}
  // CHECK:   %[[T:.*]] = arith.remui %[[P]], %{{.*}}
  // CHECK:   tensor.extract %{{.*}}[%[[T]], %[[J]]] : tensor<8x2xi32>
  // CHECK:   %[[CAP:.*]] = arith.constant 3 : i32
  // CHECK-NEXT: arith.cmpi slt, %{{.*}}, %[[CAP]] : i32
  // CHECK:   scf.yield
  // CHECK: %[[COUNTS:.*]] = linalg.generic {{.*}} ins(%[[LOOP]]#0 : tensor<4xi32>)
  // CHECK:   arith.minsi
  // CHECK: %[[BUF:.*]] = linalg.generic {{.*}} ins(%[[LOOP]]#2 : tensor<4x3xi32>) outs(%{{.*}} : tensor<4x3x16xf32>)
  // CHECK:   tensor.extract %{{.*}} : tensor<8x16xf32>
  // CHECK: return %[[BUF]], %[[LOOP]]#1, %[[COUNTS]]
  %b, %s, %c = moe.dispatch %x experts %ids : (tensor<8x16xf32>, tensor<8x2xi32>) -> (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>)
  return %b, %s, %c : tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<4xi32>
}

// -----

// Experts with counts: a loop over experts, each computing only its first
// counts[e] rows with three contractions and silu * up.
// CHECK-LABEL: func @experts_counts
func.func @experts_counts(%buf: tensor<4x3x16xf32>, %n: tensor<4xi32>, %g: tensor<4x32x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) -> tensor<4x3x16xf32> {
  // CHECK: scf.for %[[E:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[OUT:.*]] = %{{.*}}) -> (tensor<4x3x16xf32>)
  // CHECK:   %[[N:.*]] = tensor.extract %{{.*}}[%[[E]]] : tensor<4xi32>
  // CHECK:   %[[ROWS:.*]] = tensor.extract_slice %{{.*}}[%[[E]], 0, 0] [1, %{{.*}}, 16] [1, 1, 1] : tensor<4x3x16xf32> to tensor<?x16xf32>
  // CHECK-COUNT-2: linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[ROWS]], %{{.*}} : tensor<?x16xf32>, tensor<32x16xf32>)
  // CHECK:   math.exp
  // CHECK:   linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<16x32xf32>)
  // CHECK:   tensor.insert_slice %{{.*}} into %[[OUT]][%[[E]], 0, 0] [1, %{{.*}}, 16]
  %y = moe.experts %buf counts %n gate %g up %u down %d activation = silu_glu : (tensor<4x3x16xf32>, tensor<4xi32>, tensor<4x32x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x3x16xf32>
  return %y : tensor<4x3x16xf32>
}

// -----

// Experts without counts compute all C rows; gelu uses erf.
// CHECK-LABEL: func @experts_gelu_static
func.func @experts_gelu_static(%buf: tensor<4x3x16xf32>, %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>) -> tensor<4x3x16xf32> {
  // CHECK: tensor.extract_slice %{{.*}} : tensor<4x3x16xf32> to tensor<3x16xf32>
  // CHECK: math.erf
  %y = moe.experts %buf up %u down %d activation = gelu : (tensor<4x3x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<4x3x16xf32>
  return %y : tensor<4x3x16xf32>
}

// -----

// Combine: one parallel generic over [T, H]; k = 2 choices unrolled, each
// skipped when its slot is -1.
// CHECK-LABEL: func @combine
func.func @combine(%y: tensor<4x3x16xf32>, %s: tensor<8x2xi32>, %i: tensor<8x2xi32>, %w: tensor<8x2xf32>) -> tensor<8x16xf32> {
  // CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]} outs(%{{.*}} : tensor<8x16xf32>)
  // CHECK-COUNT-2: tensor.extract %{{.*}} : tensor<4x3x16xf32>
  // CHECK-NOT: tensor.extract %{{.*}} : tensor<4x3x16xf32>
  // CHECK: linalg.yield
  %out = moe.combine %y slots %s experts %i weights %w : (tensor<4x3x16xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>) -> tensor<8x16xf32>
  return %out : tensor<8x16xf32>
}

// -----

func.func @bf16_not_supported(%x: tensor<8x16xbf16>, %w: tensor<4x16xbf16>) -> (tensor<8x2xbf16>, tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.router' op lowering supports f32 activations and weights only, got 'bf16'}}
  %weights, %ids = moe.router %x weight %w k = 2 score = softmax : (tensor<8x16xbf16>, tensor<4x16xbf16>) -> (tensor<8x2xbf16>, tensor<8x2xi32>)
  return %weights, %ids : tensor<8x2xbf16>, tensor<8x2xi32>
}

// -----

func.func @layer_not_decomposed(%x: tensor<8x16xf32>, %wr: tensor<4x16xf32>, %wi: tensor<4x32x16xf32>, %wo: tensor<4x16x32xf32>) -> tensor<8x16xf32> {
  // expected-error @+1 {{'moe.layer' op must be decomposed first (run moe-decompose)}}
  %y = moe.layer %x router %wr experts(up %wi down %wo) k = 1 score = softmax activation = relu capacity = 2 : (tensor<8x16xf32>, tensor<4x16xf32>, tensor<4x32x16xf32>, tensor<4x16x32xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Counts in segments ([E, S]): expert e's C rows are S parts of C/S, each
// filled from its start; one loop iteration per (expert, segment), computing
// rows [s * C/S, s * C/S + counts[e, s]).
// CHECK-LABEL: func @experts_segments
// CHECK-DAG: %[[SEG:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[N:.*]] = arith.constant 8 : index
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %[[N]] step
// CHECK: %[[E:.*]] = arith.divui %[[I]], %{{.*}} : index
// CHECK: %[[S:.*]] = arith.remui %[[I]], %{{.*}} : index
// CHECK: %[[FIRST:.*]] = arith.muli %[[S]], %{{.*}} : index
// CHECK: tensor.extract %{{.*}}[%[[E]], %[[S]]] : tensor<4x2xi32>
// CHECK: tensor.extract_slice %{{.*}}[%[[E]], %[[FIRST]], 0] [1, %{{.*}}, 16] [1, 1, 1] : tensor<4x6x16xf32> to tensor<?x16xf32>
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[%[[E]], %[[FIRST]], 0]
func.func @experts_segments(%buf: tensor<4x6x16xf32>, %n: tensor<4x2xi32>,
                            %u: tensor<4x32x16xf32>, %d: tensor<4x16x32xf32>)
    -> tensor<4x6x16xf32> {
  %y = moe.experts %buf counts %n up %u down %d activation = relu
      : (tensor<4x6x16xf32>, tensor<4x2xi32>, tensor<4x32x16xf32>,
         tensor<4x16x32xf32>) -> tensor<4x6x16xf32>
  return %y : tensor<4x6x16xf32>
}
