#!/usr/bin/env -S /usr/bin/python3
"""Benchmark: the compiled MoE block against PyTorch eager, side by side.

For each token count T, one run of this program
  1. writes random inputs (x [T,H], router [E,H], w1/w3 [E,F,H], w2 [E,H,F]),
  2. compiles a module holding one `moe.layer` (Mixtral-style: top-2 softmax
     routing with renormalization, SwiGLU experts, dropless) with moe-compile
     and links it into bench/moe_block_harness.c,
  3. times the compiled block (best of N calls after a warm-up call),
  4. times PyTorch eager on the same inputs and threads: the reference
     package's moe_block, i.e. Hugging Face's MixtralSparseMoeBlock loop
     (one_hot mask, per expert: index, three linears, index_add_),
  5. checks that both outputs agree,
and prints one table: times, the speed-up (PyTorch time / compiled time),
the expert GEMMs' achieved rate (their FLOPs, 3 * 2 * T*k * H * F, divided
by the compiled block's whole time, so a lower bound) and that rate as a
fraction of OpenBLAS sgemm measured in the same run on the aggregate expert
GEMM shape [T*k, H] x [H, F].

usage: moe_block_bench.py [--tokens 16 256 1024] [--hidden 1024] [--ffn 2816]
                          [--experts 8] [--top-k 2] [--threads 2] [--iters 10]
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference"))
from moe_reference import models  # noqa: E402
from moe_reference.config import parse_config  # noqa: E402

MODULE = """\
func.func @moe_block(%x: tensor<{T}x{H}xf32>, %router: tensor<{E}x{H}xf32>,
                     %up: tensor<{E}x{F}x{H}xf32>, %down: tensor<{E}x{H}x{F}xf32>,
                     %gate: tensor<{E}x{F}x{H}xf32>) -> tensor<{T}x{H}xf32>
    attributes {{llvm.emit_c_interface}} {{
  %y = moe.layer %x router %router experts(up %up down %down gate %gate)
      k = {K} score = softmax renormalize activation = silu_glu
      : (tensor<{T}x{H}xf32>, tensor<{E}x{H}xf32>, tensor<{E}x{F}x{H}xf32>,
         tensor<{E}x{H}x{F}xf32>, tensor<{E}x{F}x{H}xf32>) -> tensor<{T}x{H}xf32>
  return %y : tensor<{T}x{H}xf32>
}}
"""


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit("bench: command failed: %s\n%s%s" % (" ".join(map(str, cmd)),
                                                    proc.stdout, proc.stderr))
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[16, 256, 1024])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--ffn", type=int, default=2816)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--build", default=str(ROOT / "build"))
    args = ap.parse_args()

    build = pathlib.Path(args.build)
    compiler = build / "bin" / "moe-compile"
    libdir = build / "lib"
    if not compiler.exists():
        sys.exit("bench: %s not found: build first (utils/bootstrap.sh)" % compiler)
    H, F, E, K = args.hidden, args.ffn, args.experts, args.top_k
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    cfg = parse_config({
        "architectures": ["MixtralForCausalLM"], "vocab_size": 8,
        "hidden_size": H, "intermediate_size": F, "num_hidden_layers": 1,
        "num_attention_heads": 1, "num_key_value_heads": 1,
        "head_dim": 2, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
        "num_local_experts": E, "num_experts_per_tok": K})

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="moe-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        w1 = (rng.standard_normal((E, F, H), dtype=np.float32) * 0.02)
        w3 = (rng.standard_normal((E, F, H), dtype=np.float32) * 0.02)
        w2 = (rng.standard_normal((E, H, F), dtype=np.float32) * 0.02)
        router = rng.standard_normal((E, H), dtype=np.float32) * 0.1
        for name, a in (("w1", w1), ("w3", w3), ("w2", w2), ("router", router)):
            np.save(tmp / (name + ".npy"), a)
        weights = {"gate.weight": torch.from_numpy(router)}
        for e in range(E):
            for name, a in (("w1", w1), ("w3", w3), ("w2", w2)):
                weights["experts.%d.%s.weight" % (e, name)] = torch.from_numpy(a[e])

        for T in args.tokens:
            x = rng.standard_normal((T, H), dtype=np.float32)
            np.save(tmp / "x.npy", x)
            mlir = tmp / ("block%d.mlir" % T)
            mlir.write_text(MODULE.format(T=T, H=H, F=F, E=E, K=K))
            obj = tmp / ("block%d.o" % T)
            exe = tmp / ("harness%d" % T)
            t0 = time.time()
            run([compiler, mlir, "--emit=obj", "-o", obj])
            run(["clang-22", "-O2", "-DMOE_BENCH_CBLAS",
                 ROOT / "bench" / "moe_block_harness.c", obj,
                 "-I", ROOT / "runtime" / "include", "-L", libdir, "-lmoert",
                 "-lopenblas", "-lm", "-Wl,-rpath," + str(libdir), "-o", exe])
            compile_s = time.time() - t0
            out = run([exe, tmp, str(args.iters), str(K)])
            fields = dict(kv.split("=") for kv in out.split())
            ours = float(fields["compiled_best_s"])
            sgemm = float(fields["sgemm_gflops"])

            xt = torch.from_numpy(x)
            with torch.no_grad():
                ref = models.moe_block(cfg, xt, weights)      # warm-up
                best = float("inf")
                for _ in range(args.iters):
                    t1 = time.perf_counter()
                    ref = models.moe_block(cfg, xt, weights)
                    best = min(best, time.perf_counter() - t1)
            got = np.load(tmp / "out.npy")
            err = np.abs(got - ref.numpy()).max() / max(np.abs(ref.numpy()).max(), 1e-30)
            flops = 3 * 2.0 * T * K * H * F
            rate = flops / ours * 1e-9
            rows.append((T, ours * 1e3, best * 1e3, best / ours, rate, sgemm,
                         rate / sgemm, err, compile_s))

    print("MoE block: H=%d F=%d E=%d k=%d, %d threads (OpenBLAS and torch), "
          "best of %d" % (H, F, E, K, args.threads, args.iters))
    print("%6s %12s %12s %8s %14s %14s %9s %10s" % (
        "T", "compiled ms", "pytorch ms", "speedup", "expert GFLOP/s",
        "sgemm GFLOP/s", "of sgemm", "rel err"))
    for T, ours, theirs, ratio, rate, sgemm, frac, err, _ in rows:
        print("%6d %12.3f %12.3f %7.2fx %14.1f %14.1f %8.0f%% %10.2e" % (
            T, ours, theirs, ratio, rate, sgemm, frac * 100, err))
    bad = [r for r in rows if r[7] > 1e-4]
    if bad:
        sys.exit("bench: compiled and PyTorch outputs disagree (rel err > 1e-4)")


if __name__ == "__main__":
    main()
