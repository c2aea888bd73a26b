#!/usr/bin/env -S /usr/bin/python3
"""Per-MoE-layer time of the a2a baseline, PPMoE's slice_allreduce and
DeepSpeed-TED's dedup on the same block and the same ranks, in one run.

A Mixtral-style block (top-2 of E SwiGLU experts, dropless) is partitioned by
moe-shard/moe-partition for each plan, rewritten by moe-slice-allreduce or
moe-dedup-tokens as the plan says, compiled, and run under mpiexec by
utils/run-block.py, which also checks each plan against the unpartitioned
block. Prints, per plan, the best time of one block over --iters calls (the
slowest rank's), the ratio to the a2a plan of the same degrees, and the bytes
one rank sends per call by collective.

CPU ranks over MPI on a shared machine are not the hardware these techniques
target: read the table as information about this machine.

usage: dispatch_strategies.py [--tokens 256] [--hidden 512] [--ffn 1024]
         [--experts 8] [--iters 10] [--build build]
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

BLOCK = """module {{
  func.func @moe_block(%x: tensor<{T}x{H}xf32>, %router: tensor<{E}x{H}xf32>,
                       %up: tensor<{E}x{F}x{H}xf32>, %down: tensor<{E}x{H}x{F}xf32>,
                       %gate: tensor<{E}x{F}x{H}xf32>) -> tensor<{T}x{H}xf32>
      attributes {{llvm.emit_c_interface}} {{
    %y = moe.layer %x router %router experts(up %up down %down gate %gate)
        k = 2 score = softmax renormalize activation = silu_glu
        : (tensor<{T}x{H}xf32>, tensor<{E}x{H}xf32>, tensor<{E}x{F}x{H}xf32>,
           tensor<{E}x{H}x{F}xf32>, tensor<{E}x{F}x{H}xf32>) -> tensor<{T}x{H}xf32>
    return %y : tensor<{T}x{H}xf32>
  }}
}}
"""

# (baseline, variants): every variant is compared with its baseline.
GROUPS = [
    ("tp=4,ep=4", ["tp=4,ep=4,dispatch=slice_allreduce", "tp=4,ep=4,dedup=1"]),
    ("dp=2,tp=2,ep=2", ["dp=2,tp=2,ep=2,dispatch=slice_allreduce",
                        "dp=2,tp=2,ep=2,dedup=1"]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--build", default=str(ROOT / "build"))
    args = ap.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="moe-dispatch-bench-"))
    block = work / "block.mlir"
    block.write_text(BLOCK.format(T=args.tokens, H=args.hidden, F=args.ffn,
                                  E=args.experts))
    plans = [p for base, variants in GROUPS for p in [base] + variants]
    cmd = [sys.executable, str(ROOT / "utils" / "run-block.py"), str(block),
           "--build", args.build, "--workdir", str(work / "run"), "--stats",
           "--iters", str(args.iters)]
    for plan in plans:
        cmd += ["--plan", plan]
    print("MoE block T=%d H=%d F=%d E=%d top-2, 4 CPU ranks, best of %d "
          "calls; partitioning, rewriting and compiling ..." % (
              args.tokens, args.hidden, args.ffn, args.experts, args.iters))
    sys.stdout.flush()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("dispatch_strategies: run-block failed:\n" + proc.stdout +
                 proc.stderr)

    # Per plan: time, pass/fail, rank 0's bytes per collective and call.
    results, current = {}, None
    calls = args.iters + 1  # the warm-up call is counted too
    for line in proc.stdout.splitlines():
        m = re.match(r"plan (\S+) \((\d+) ranks\): max_rel_err=(\S+) .* (PASS|FAIL)"
                     r"; ([0-9.]+) ms per block", line)
        if m:
            current = m.group(1)
            results[current] = {"err": m.group(3), "ok": m.group(4),
                                "ms": float(m.group(5)), "bytes": {}}
            continue
        m = re.match(r"\s+rank 0: (\S+) (\S+): \d+ calls, (\d+) bytes", line)
        if m and current:
            results[current]["bytes"]["%s %s" % (m.group(1), m.group(2))] = \
                int(m.group(3)) // calls

    print()
    print("| plan | ms per layer | vs a2a | check | bytes per call, rank 0 |")
    print("|---|---|---|---|---|")
    for base, variants in GROUPS:
        for plan in [base] + variants:
            r = results[plan]
            ratio = results[base]["ms"] / r["ms"]
            sent = ", ".join("%s %d" % kv for kv in sorted(r["bytes"].items()))
            print("| %s | %.2f | %s | %s (%s) | %s |" % (
                plan, r["ms"], "1.00x" if plan == base else "%.2fx" % ratio,
                r["ok"], r["err"], sent))
    print()
    print("vs a2a > 1 means faster than the a2a plan of the same degrees.")


if __name__ == "__main__":
    main()
