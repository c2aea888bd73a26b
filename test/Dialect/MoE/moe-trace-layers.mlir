// RUN: moe-opt %s --moe-trace-layers --split-input-file --verify-diagnostics | FileCheck %s

// A mark where the layer or its op group changes; untagged ops in between
// belong to the span running, those after the last tagged op get -1 (the
// final norm, the terminator). Constants do not count.
// CHECK-LABEL: func.func private @moert_trace_layer(i32, i32)
// CHECK-LABEL: func.func @two_layers
// CHECK:      %[[L0:.*]] = arith.constant 0 : i32
// CHECK-NEXT: %[[ATT:.*]] = arith.constant 0 : i32
// CHECK-NEXT: call @moert_trace_layer(%[[L0]], %[[ATT]]) : (i32, i32) -> ()
// CHECK-NEXT: arith.addf {{.*}} {moe.decoder_layer = 0 : i64, moe.op_group = 0 : i64}
// CHECK-NEXT: arith.subf
// CHECK-NEXT: %[[L0B:.*]] = arith.constant 0 : i32
// CHECK-NEXT: %[[FFN:.*]] = arith.constant 1 : i32
// CHECK-NEXT: call @moert_trace_layer(%[[L0B]], %[[FFN]]) : (i32, i32) -> ()
// CHECK-NEXT: arith.mulf {{.*}} {moe.decoder_layer = 0 : i64, moe.op_group = 1 : i64}
// CHECK-NEXT: arith.constant {moe.decoder_layer = 1 : i64} 2.0
// CHECK-NEXT: %[[L1:.*]] = arith.constant 1 : i32
// CHECK-NEXT: %[[NONE:.*]] = arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer(%[[L1]], %[[NONE]]) : (i32, i32) -> ()
// CHECK-NEXT: arith.addf {{.*}} {moe.decoder_layer = 1 : i64}
// CHECK-NEXT: %[[OUT:.*]] = arith.constant -1 : i32
// CHECK-NEXT: %[[OUTG:.*]] = arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer(%[[OUT]], %[[OUTG]]) : (i32, i32) -> ()
// CHECK-NEXT: arith.negf
// CHECK-NEXT: return
func.func @two_layers(%x: f32) -> f32 {
  %a = arith.addf %x, %x {moe.decoder_layer = 0 : i64, moe.op_group = 0 : i64} : f32
  %u = arith.subf %a, %a : f32
  %b = arith.mulf %u, %a {moe.decoder_layer = 0 : i64, moe.op_group = 1 : i64} : f32
  %c = arith.constant {moe.decoder_layer = 1 : i64} 2.0 : f32
  %d = arith.addf %b, %c {moe.decoder_layer = 1 : i64} : f32
  %e = arith.negf %d : f32
  return %e : f32
}

// -----

// Each block on its own: a loop body that enters a layer leaves it before
// its yield. The payload of a linalg op gets no marks.
// CHECK-LABEL: func.func @loop
// CHECK: scf.for
// CHECK-NEXT: arith.constant 0 : i32
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: linalg.generic
// CHECK-NOT: call
// CHECK: linalg.yield
// CHECK: arith.constant -1 : i32
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: scf.yield
func.func @loop(%t: tensor<4xf32>) -> tensor<4xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %r = scf.for %i = %c0 to %c2 step %c1 iter_args(%acc = %t) -> tensor<4xf32> {
    %g = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
        outs(%acc : tensor<4xf32>) attrs = {moe.decoder_layer = 0 : i64} {
    ^bb0(%o: f32):
      %s = arith.addf %o, %o {moe.decoder_layer = 0 : i64} : f32
      linalg.yield %s : f32
    } -> tensor<4xf32>
    scf.yield %g : tensor<4xf32>
  }
  return %r : tensor<4xf32>
}

// -----

// A loop inside a layer: its body leaves the layers before its yield, so the
// layer's op after the loop marks the layer again.
// CHECK-LABEL: func.func @loop_in_layer
// CHECK:      arith.constant 0 : i32
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: arith.addf
// CHECK-NEXT: scf.for
// CHECK-NEXT: arith.constant 0 : i32
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: arith.addf
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: scf.yield
// CHECK:      arith.constant 0 : i32
// CHECK-NEXT: arith.constant -1 : i32
// CHECK-NEXT: call @moert_trace_layer
// CHECK-NEXT: arith.mulf
func.func @loop_in_layer(%x: f32) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %a = arith.addf %x, %x {moe.decoder_layer = 0 : i64} : f32
  %r = scf.for %i = %c0 to %c2 step %c1 iter_args(%acc = %a) -> f32 {
    %s = arith.addf %acc, %acc {moe.decoder_layer = 0 : i64} : f32
    scf.yield %s : f32
  }
  %m = arith.mulf %r, %r {moe.decoder_layer = 0 : i64} : f32
  return %m : f32
}

// -----

// Without tagged ops nothing changes (no declaration either).
// CHECK-LABEL: func.func @untagged
// CHECK-NOT: moert_trace_layer
func.func @untagged(%x: f32) -> f32 {
  return %x : f32
}

// -----

// expected-error @+1 {{'func.func' op has type '(f32) -> ()'; moe-trace-layers calls @moert_trace_layer as '(i32, i32) -> ()'}}
func.func private @moert_trace_layer(f32)
func.func @f(%x: f32) -> f32 {
  %a = arith.addf %x, %x {moe.decoder_layer = 0 : i64} : f32
  return %a : f32
}
