// RUN: moe-opt %s -split-input-file -verify-diagnostics --convert-moe-manifest-to-llvm | FileCheck %s
// RUN: moe-opt %s -split-input-file -verify-diagnostics --convert-moe-manifest-to-llvm=gemm=bf16 | FileCheck %s --check-prefix=GEMM
// RUN: not moe-opt %s -split-input-file --convert-moe-manifest-to-llvm=gemm=fp8 2>&1 | FileCheck %s --check-prefix=BADGEMM
// BADGEMM: error: convert-moe-manifest-to-llvm: unknown gemm mode 'fp8'; expected f32, tf32, bf16 or f16

// The plan's layout goes into the header, after the version line: one line
// per rank with its coordinates and group colors (PlanFacts.h). Then the
// model, the buffer, and one line per weight in the runtime's words
// (runtime/include/moert/model.h). The moe.* module attributes are gone.
// CHECK-LABEL: module {
// CHECK: llvm.mlir.global external constant @moe_model_manifest("moe-model 1\0Aplan 2 1 2 1 1\0Arank 0 coords 0 0 0 0 0 0 0 colors 0 0 0 0 0 0\0Arank 1 coords 0 1 0 0 1 0 0 colors 0 0 1 0 1 1\0A
// CHECK-SAME: arch X\0Abatch 2\0Aseq 8\0Ahidden 16\0Avocab 32\0Atied 1\0Amax-seq 24\0Amicrobatches 2\0Ablob 1000\0A
// CHECK-SAME: tensor 0 1 2 32 16 emb\0A
// CHECK-SAME: tensor-slice tp 1 512 1 2 16 4 o\0A
// CHECK-SAME: tensor-slice etp 0 576 1 2 4 16 shared\0A
// CHECK-SAME: tensor-ep 640 2 2 4 16 up.{}\0A
// CHECK-SAME: tensor-ep-slice etp 1 768 2 2 16 2 down.{}\0A
// CHECK-SAME: stage 1 tensor 832 1 1 16 layers.{stage*2+1}.norm\0A\00")
// CHECK-NOT: moe.plan
// GEMM: @moe_model_manifest("moe-model 1\0Agemm bf16\0Aplan 2 1 2 1 1\0A
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 2, seq = 8, hidden = 16, vocab = 32, tied = true, max_seq = 24, microbatches = 2, blob = 1000, weights = [
    #moe.weight<"emb", offset = 0, shape = [32, 16]>,
    #moe.weight<"o", offset = 512, shape = [16, 4], split = tp, dim = 1>,
    #moe.weight<"shared", offset = 576, shape = [4, 16], split = etp, dim = 0>,
    #moe.weight<"up.{}", offset = 640, shape = [4, 16], count = 2, split = experts>,
    #moe.weight<"down.{}", offset = 768, shape = [16, 2], count = 2, split = experts_etp, dim = 1>,
    #moe.weight<"layers.{stage*2+1}.norm", offset = 832, shape = [16], stage = 1>]>,
    moe.plan = #moe.plan<dp = 2, ep = 2>} {
  func.func @forward() { return }
}

// -----

// One rank: no layout lines (the runtime runs one rank without MPI). No
// weights: an empty buffer.
// CHECK-LABEL: module {
// CHECK: @moe_model_manifest("moe-model 1\0Aarch Y\0Abatch 1\0Aseq 4\0Ahidden 16\0Avocab 8\0Atied 0\0Ablob 0\0A\00")
// GEMM: @moe_model_manifest("moe-model 1\0Agemm bf16\0Aarch Y\0A
module attributes {moe.manifest = #moe.manifest<arch = "Y", batch = 1, seq = 4, hidden = 16, vocab = 8>, moe.plan = #moe.plan<>} {
}

// -----

// Without a manifest only the plan goes.
// CHECK-LABEL: module {
// CHECK-NOT: moe_model_manifest
// CHECK: func.func @f
module attributes {moe.plan = #moe.plan<dp = 2>} {
  func.func @f() { return }
}

// -----

// expected-error @+1 {{the module already defines @moe_model_manifest}}
module attributes {moe.manifest = #moe.manifest<arch = "X", batch = 1, seq = 4, hidden = 16, vocab = 8>} {
  llvm.mlir.global external constant @moe_model_manifest("x") : !llvm.array<1 x i8>
}
