// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-plan="cluster=h100x8 ranks=8" 2>%t.report | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.report
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-plan="cluster=h100x8 ranks=8 routing-skew=zipf:2" 2>&1 >/dev/null | FileCheck %s --check-prefix=SKEWED
// RUN: not moe-opt %s --split-input-file --moe-plan 2>&1 | FileCheck %s --check-prefix=NOCLUSTER
// RUN: not moe-opt %s --split-input-file --moe-plan="cluster=h100x8 ranks=64" 2>&1 | FileCheck %s --check-prefix=RANKS
// RUN: not moe-opt %s --split-input-file --moe-plan="cluster=dgx" 2>&1 | FileCheck %s --check-prefix=PRESET
// RUN: not moe-opt %s --split-input-file --moe-plan="cluster=h100x8 routing-skew=pareto" 2>&1 | FileCheck %s --check-prefix=SKEW
// NOCLUSTER: error: moe-plan: needs cluster= (a preset or a JSON file)
// RANKS: error: moe-plan: ranks = 64 is not between 1 and 8, the devices of 'h100x8'
// PRESET: error: moe-plan: unknown cluster preset 'dgx'
// SKEW: error: moe-plan: routing skew 'pareto': expected uniform, zipf:S or hist:FILE

// Two layers of 4096 tokens on one 8-GPU node. Split over dp the tokens need
// no collective and the weights fit on every device, so dp = 8 wins; among
// the plans with tp = 2, slice_allreduce (experts over ep inside the tp
// group) ties with slicing every expert over etp.

// CHECK: module attributes {moe.plan = #moe.plan<dp = 8>}
// REPORT: moe-plan: module (2 layers, 8 experts, top-2, 4096 tokens) on h100x8 (1 nodes x 8 devices), 8 ranks
// REPORT: {{^ *}}1 dp=8 {{[0-9]}}
// REPORT-NEXT: {{^ *}}2 dp=4,tp=2,ep=2,dispatch=slice_allreduce {{[0-9]}}
// REPORT-NEXT: {{^ *}}3 dp=4,tp=2,etp=2 {{[0-9]}}
// REPORT: chosen: dp=8
// REPORT-NEXT: why: {{.*}}% faster than the runner-up dp=4,tp=2,ep=2,dispatch=slice_allreduce; the largest difference is all_reduce
// REPORT: pruned:

// With most tokens on expert 0 (Zipf, s = 2) the busiest ep rank of
// slice_allreduce computes far more than its share, so it falls behind etp.
// SKEWED: {{^ *}}2 dp=4,tp=2,etp=2 {{[0-9]}}
// SKEWED: dp=4,tp=2,ep=2,dispatch=slice_allreduce {{[0-9]}}
module {
  func.func @forward(%x: tensor<4096x1024xf32>, %r: tensor<8x1024xf32>,
                     %up: tensor<8x4096x1024xf32>, %down: tensor<8x1024x4096xf32>,
                     %gate: tensor<8x4096x1024xf32>) -> tensor<4096x1024xf32> {
    %y = moe.layer %x router %r experts(up %up down %down gate %gate)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<4096x1024xf32>, tensor<8x1024xf32>, tensor<8x4096x1024xf32>,
           tensor<8x1024x4096xf32>, tensor<8x4096x1024xf32>) -> tensor<4096x1024xf32>
    %h = arith.addf %x, %y : tensor<4096x1024xf32>
    %z = moe.layer %h router %r experts(up %up down %down gate %gate)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<4096x1024xf32>, tensor<8x1024xf32>, tensor<8x4096x1024xf32>,
           tensor<8x1024x4096xf32>, tensor<8x4096x1024xf32>) -> tensor<4096x1024xf32>
    return %z : tensor<4096x1024xf32>
  }
}

// -----

// expected-error @+1 {{moe-plan: the module has no moe.layer to plan for}}
module {
  func.func @empty() {
    return
  }
}
