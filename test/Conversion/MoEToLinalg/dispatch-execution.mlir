// Runs moe.dispatch with both slot assignments of convert-moe-to-linalg (the
// sequential loop and the parallel chunked scan that the CUDA target uses)
// and checks that they agree exactly. 40 tokens x 2 choices = 80 pairs span
// two chunks of the scan (20 tokens: one chunk, its special case); ids 3
// and -1 are invalid (3 experts); capacity 16 drops some pairs.
//
// DEFINE: %{lower} = one-shot-bufferize{bufferize-function-boundaries}, \
// DEFINE:   convert-bufferization-to-memref,convert-linalg-to-loops, \
// DEFINE:   convert-scf-to-cf,expand-strided-metadata,lower-affine, \
// DEFINE:   finalize-memref-to-llvm,convert-arith-to-llvm, \
// DEFINE:   convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm, \
// DEFINE:   reconcile-unrealized-casts
// RUN: moe-opt %s --pass-pipeline="builtin.module(convert-moe-to-linalg,%{lower})" > %t.seq.mlir
// RUN: moe-opt %s --pass-pipeline="builtin.module(convert-moe-to-linalg{parallel-dispatch=true},%{lower})" > %t.par.mlir
// RUN: mlir-runner %t.seq.mlir -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so > %t.seq.txt
// RUN: mlir-runner %t.par.mlir -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils.so > %t.par.txt
// RUN: FileCheck %s < %t.seq.txt
// RUN: FileCheck %s < %t.par.txt
// RUN: sed 's/base@ = [0-9a-fx]*//' %t.seq.txt > %t.seq.data
// RUN: sed 's/base@ = [0-9a-fx]*//' %t.par.txt > %t.par.data
// RUN: diff %t.seq.data %t.par.data

// slots: pair (t, j) = (0, 0) has expert 0 and is its first pair; (0, 1)
// has expert 3 (invalid): -1. Pairs of choice 1 come after all of choice 0
// (drop order): expert 0's are dropped (24 pairs for 16 slots).
// CHECK-LABEL: slots
// CHECK-NEXT: sizes = [40, 2]
// CHECK-NEXT: {{\[\[}}0,   -1],
// CHECK-NEXT: [-1,   8],
// CHECK-NEXT: [0,   8],
// CHECK-NEXT: [0,   -1],
// CHECK-LABEL: counts
// CHECK-NEXT: sizes = [3]
// CHECK-NEXT: [16,  16,  16]
// CHECK-LABEL: buffer
// CHECK-NEXT: sizes = [3, 16, 2]
// CHECK-NEXT: {{\[\[\[}}0,    0.5],
// CHECK-NEXT: [4,    4.5],
// With capacity 40 nothing is dropped; expert 0's 24 rows are followed by
// 16 unused (zero) rows.
// CHECK-LABEL: counts
// CHECK-NEXT: sizes = [3]
// CHECK-NEXT: [24,  16,  16]
// CHECK-LABEL: buffer
// CHECK-NEXT: sizes = [3, 40, 2]
// CHECK-COUNT-24: {{^ *\[+[0-9]+, +[0-9.]+\]}}
// CHECK-NEXT: [0,    0],
// One chunk (20 tokens, capacity 5): every expert fills up.
// CHECK-LABEL: slots
// CHECK-NEXT: sizes = [20, 2]
// CHECK-LABEL: counts
// CHECK-NEXT: sizes = [3]
// CHECK-NEXT: [5,  5,  5]
// CHECK-LABEL: buffer
// CHECK-NEXT: sizes = [3, 5, 2]

func.func private @printMemrefI32(memref<*xi32>)
func.func private @printMemrefF32(memref<*xf32>)
func.func private @printString(!llvm.ptr)

func.func @main() {
  %empty_ids = tensor.empty() : tensor<40x2xi32>
  // ids[t, j] = (7t + 3j + t/5) mod 4, with 3 replaced by -1 for odd t:
  // both kinds of invalid id, and experts 0..2 unevenly loaded.
  %ids = linalg.generic {
      indexing_maps = [affine_map<(t, j) -> (t, j)>],
      iterator_types = ["parallel", "parallel"]} outs(%empty_ids : tensor<40x2xi32>) {
  ^bb0(%out: i32):
    %t = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c7 = arith.constant 7 : index
    %c3 = arith.constant 3 : index
    %c5 = arith.constant 5 : index
    %c4 = arith.constant 4 : index
    %c2 = arith.constant 2 : index
    %c1 = arith.constant 1 : index
    %a = arith.muli %t, %c7 : index
    %b = arith.muli %j, %c3 : index
    %q = arith.divui %t, %c5 : index
    %s0 = arith.addi %a, %b : index
    %s1 = arith.addi %s0, %q : index
    %v = arith.remui %s1, %c4 : index
    %odd = arith.remui %t, %c2 : index
    %is3 = arith.cmpi eq, %v, %c3 : index
    %isOdd = arith.cmpi eq, %odd, %c1 : index
    %neg = arith.andi %is3, %isOdd : i1
    %vi = arith.index_cast %v : index to i32
    %m1 = arith.constant -1 : i32
    %r = arith.select %neg, %m1, %vi : i32
    linalg.yield %r : i32
  } -> tensor<40x2xi32>
  // tokens[t, h] = t + h / 2
  %empty_x = tensor.empty() : tensor<40x2xf32>
  %x = linalg.generic {
      indexing_maps = [affine_map<(t, h) -> (t, h)>],
      iterator_types = ["parallel", "parallel"]} outs(%empty_x : tensor<40x2xf32>) {
  ^bb0(%out: f32):
    %t = linalg.index 0 : index
    %h = linalg.index 1 : index
    %ti = arith.index_cast %t : index to i32
    %hi = arith.index_cast %h : index to i32
    %tf = arith.sitofp %ti : i32 to f32
    %hf = arith.sitofp %hi : i32 to f32
    %half = arith.constant 0.5 : f32
    %hh = arith.mulf %hf, %half : f32
    %r = arith.addf %tf, %hh : f32
    linalg.yield %r : f32
  } -> tensor<40x2xf32>
  %buffer, %slots, %counts = moe.dispatch %x experts %ids
      : (tensor<40x2xf32>, tensor<40x2xi32>)
      -> (tensor<3x16x2xf32>, tensor<40x2xi32>, tensor<3xi32>)

  // The same pairs with room for all: unused slots stay zero.
  %buffer2, %slots2, %counts2 = moe.dispatch %x experts %ids
      : (tensor<40x2xf32>, tensor<40x2xi32>)
      -> (tensor<3x40x2xf32>, tensor<40x2xi32>, tensor<3xi32>)

  // The first 20 tokens: 40 pairs, one chunk (the decode-sized case), with
  // drops at capacity 5.
  %x20 = tensor.extract_slice %x[0, 0] [20, 2] [1, 1] : tensor<40x2xf32> to tensor<20x2xf32>
  %ids20 = tensor.extract_slice %ids[0, 0] [20, 2] [1, 1] : tensor<40x2xi32> to tensor<20x2xi32>
  %buffer3, %slots3, %counts3 = moe.dispatch %x20 experts %ids20
      : (tensor<20x2xf32>, tensor<20x2xi32>)
      -> (tensor<3x5x2xf32>, tensor<20x2xi32>, tensor<3xi32>)

  %ms = bufferization.to_buffer %slots : tensor<40x2xi32> to memref<40x2xi32>
  %us = memref.cast %ms : memref<40x2xi32> to memref<*xi32>
  %mc = bufferization.to_buffer %counts : tensor<3xi32> to memref<3xi32>
  %uc = memref.cast %mc : memref<3xi32> to memref<*xi32>
  %mb = bufferization.to_buffer %buffer : tensor<3x16x2xf32> to memref<3x16x2xf32>
  %ub = memref.cast %mb : memref<3x16x2xf32> to memref<*xf32>
  %l0 = llvm.mlir.addressof @slots_label : !llvm.ptr
  call @printString(%l0) : (!llvm.ptr) -> ()
  call @printMemrefI32(%us) : (memref<*xi32>) -> ()
  %l1 = llvm.mlir.addressof @counts_label : !llvm.ptr
  call @printString(%l1) : (!llvm.ptr) -> ()
  call @printMemrefI32(%uc) : (memref<*xi32>) -> ()
  %l2 = llvm.mlir.addressof @buffer_label : !llvm.ptr
  call @printString(%l2) : (!llvm.ptr) -> ()
  call @printMemrefF32(%ub) : (memref<*xf32>) -> ()
  %mc2 = bufferization.to_buffer %counts2 : tensor<3xi32> to memref<3xi32>
  %uc2 = memref.cast %mc2 : memref<3xi32> to memref<*xi32>
  %mb2 = bufferization.to_buffer %buffer2 : tensor<3x40x2xf32> to memref<3x40x2xf32>
  %ub2 = memref.cast %mb2 : memref<3x40x2xf32> to memref<*xf32>
  call @printString(%l1) : (!llvm.ptr) -> ()
  call @printMemrefI32(%uc2) : (memref<*xi32>) -> ()
  call @printString(%l2) : (!llvm.ptr) -> ()
  call @printMemrefF32(%ub2) : (memref<*xf32>) -> ()
  %ms3 = bufferization.to_buffer %slots3 : tensor<20x2xi32> to memref<20x2xi32>
  %us3 = memref.cast %ms3 : memref<20x2xi32> to memref<*xi32>
  %mc3 = bufferization.to_buffer %counts3 : tensor<3xi32> to memref<3xi32>
  %uc3 = memref.cast %mc3 : memref<3xi32> to memref<*xi32>
  %mb3 = bufferization.to_buffer %buffer3 : tensor<3x5x2xf32> to memref<3x5x2xf32>
  %ub3 = memref.cast %mb3 : memref<3x5x2xf32> to memref<*xf32>
  call @printString(%l0) : (!llvm.ptr) -> ()
  call @printMemrefI32(%us3) : (memref<*xi32>) -> ()
  call @printString(%l1) : (!llvm.ptr) -> ()
  call @printMemrefI32(%uc3) : (memref<*xi32>) -> ()
  call @printString(%l2) : (!llvm.ptr) -> ()
  call @printMemrefF32(%ub3) : (memref<*xf32>) -> ()
  return
}

llvm.mlir.global internal constant @slots_label("slots\0A\00") {addr_space = 0 : i32}
llvm.mlir.global internal constant @counts_label("counts\0A\00") {addr_space = 0 : i32}
llvm.mlir.global internal constant @buffer_label("buffer\0A\00") {addr_space = 0 : i32}
