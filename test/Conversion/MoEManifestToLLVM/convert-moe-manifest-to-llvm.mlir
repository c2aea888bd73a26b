// RUN: moe-opt %s -split-input-file -verify-diagnostics --convert-moe-manifest-to-llvm | FileCheck %s
// RUN: moe-opt %s -split-input-file -verify-diagnostics --convert-moe-manifest-to-llvm=gemm=bf16 | FileCheck %s --check-prefix=GEMM
// RUN: not moe-opt %s -split-input-file --convert-moe-manifest-to-llvm=gemm=fp8 2>&1 | FileCheck %s --check-prefix=BADGEMM
// BADGEMM: error: convert-moe-manifest-to-llvm: unknown gemm mode 'fp8'; expected f32, tf32, bf16 or f16

// The plan's layout goes into the header, after the version line: one line
// per rank with its coordinates and group colors (PlanFacts.h). The moe.*
// module attributes are gone.
// CHECK-LABEL: module {
// CHECK: llvm.mlir.global external constant @moe_model_manifest("moe-model 1\0Aplan 2 1 2 1 1\0Arank 0 coords 0 0 0 0 0 0 0 colors 0 0 0 0 0 0\0Arank 1 coords 0 1 0 0 1 0 0 colors 0 0 1 0 1 1\0Aarch X\0Atensor 0 1 1 4 w\0A\00")
// CHECK-NOT: moe.plan
// GEMM: @moe_model_manifest("moe-model 1\0Agemm bf16\0Aplan 2 1 2 1 1\0A
module attributes {moe.manifest = "moe-model 1\0Aarch X\0Atensor 0 1 1 4 w\0A", moe.plan = #moe.plan<dp = 2, ep = 2>} {
  func.func @forward() { return }
}

// -----

// One rank: no layout lines (the runtime runs one rank without MPI).
// CHECK-LABEL: module {
// CHECK: @moe_model_manifest("moe-model 1\0Aarch Y\0A\00")
// GEMM: @moe_model_manifest("moe-model 1\0Agemm bf16\0Aarch Y\0A\00")
module attributes {moe.manifest = "moe-model 1\0Aarch Y\0A", moe.plan = #moe.plan<>} {
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

// expected-error @+1 {{'moe.manifest' does not start with its version line ('moe-model 1')}}
module attributes {moe.manifest = "arch X\0A"} {
}

// -----

// expected-error @+1 {{the module already defines @moe_model_manifest}}
module attributes {moe.manifest = "moe-model 1\0A"} {
  llvm.mlir.global external constant @moe_model_manifest("x") : !llvm.array<1 x i8>
}
