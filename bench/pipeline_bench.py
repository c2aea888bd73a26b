#!/usr/bin/env -S /usr/bin/python3
"""Forward-pass time of a pipeline (pp = 2) against one rank and against
data parallelism (dp = 2) on the same model and batch, in one run.

A Mixtral-style model of --layers decoder layers is compiled for each plan;
every executable runs on the same random weights and token ids (one OpenBLAS
thread per rank, so that two ranks use two cores and one rank one), and its
output must equal the one-rank output (max relative error <= 1e-5). Prints,
per plan, the forward-pass time (the slowest rank's, the mean of --iters
passes after one warm-up pass, best of --repeats runs) and the speed-up over
one rank.

The pipeline's microbatches are the point: with one microbatch the second
stage waits for the first and two ranks are no faster than one; with M of
them the stages overlap except for a bubble of 1 / (M + 1) of the time.

usage: pipeline_bench.py [--layers 4] [--hidden 256] [--ffn 512]
         [--batch 8] [--seq-len 64] [--iters 5] [--repeats 3] [--build build]
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=600)
    if proc.returncode != 0:
        sys.exit("pipeline_bench: %s failed:\n%s%s" % (
            " ".join(cmd[:3]), proc.stdout, proc.stderr))
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--build", default=str(ROOT / "build"))
    args = ap.parse_args()
    if args.layers % 2 or args.batch % 2:
        sys.exit("pipeline_bench: --layers and --batch must be even")

    with tempfile.TemporaryDirectory(prefix="moe-pipeline-bench-") as tmp:
        measure(args, pathlib.Path(tmp))


def measure(args, work):
    config = {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
        "vocab_size": 256, "hidden_size": args.hidden,
        "intermediate_size": args.ffn, "num_hidden_layers": args.layers,
        "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": args.hidden // 8, "hidden_act": "silu",
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 1e6, "num_local_experts": 8, "num_experts_per_tok": 2,
        "tie_word_embeddings": False, "torch_dtype": "float32"}
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    weights, ids = work / "w.safetensors", work / "ids.npy"
    run(["/usr/bin/python3", str(ROOT / "reference" / "make_weights.py"),
         "--config", str(config_path), "--seed", "1", "-o", str(weights)])
    run(["/usr/bin/python3", str(ROOT / "reference" / "make_ids.py"),
         "--vocab", "256", "--batch", str(args.batch), "--seq",
         str(args.seq_len), "--seed", "1", "-o", str(ids)])

    # (label, plan, microbatches, ranks)
    plans = [("1 rank", "", None, 1), ("dp=2", "dp=2", None, 2)]
    m = 1
    while m <= args.batch:
        plans.append(("pp=2, %d microbatch%s" % (m, "" if m == 1 else "es"),
                      "pp=2", m, 2))
        m *= 2
    compiler = pathlib.Path(args.build) / "bin" / "moe-compile"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    print("Mixtral-style model: %d layers, H=%d, F=%d, 8 experts top-2; "
          "batch %d x %d tokens; 2 CPU ranks (one thread each) against 1; "
          "mean of %d passes, best of %d runs" % (
              args.layers, args.hidden, args.ffn, args.batch, args.seq_len,
              args.iters, args.repeats))
    sys.stdout.flush()
    reference, base = None, None
    print("%-26s %12s %10s %14s" % ("plan", "ms/forward", "speed-up",
                                    "max rel err"))
    for label, plan, microbatches, ranks in plans:
        exe = work / ("model-%s-%s" % (plan or "single", microbatches or 0))
        cmd = [str(compiler), str(config_path), "--batch", str(args.batch),
               "--seq-len", str(args.seq_len), "-o", str(exe)]
        if plan:
            cmd += ["--plan", plan]
        if microbatches:
            cmd += ["--microbatches", str(microbatches)]
        run(cmd)
        out = work / ("out-%s.npy" % exe.name)
        best = None
        for _ in range(args.repeats):
            runcmd = [str(exe), "--weights", str(weights), "--input", str(ids),
                      "--output", str(out), "--warmup", "1", "--iters",
                      str(args.iters)]
            if ranks > 1:
                runcmd = ["mpiexec", "-n", str(ranks)] + runcmd
            text = run(runcmd, env)
            ms = float(re.search(r"([0-9.]+) ms per forward pass",
                                 text).group(1))
            best = ms if best is None else min(best, ms)
        result = np.load(out)
        if reference is None:
            reference, base = result, best
        err = float(np.abs(result.astype(np.float64) - reference).max() /
                    max(np.abs(reference).max(), 1e-30))
        if not err <= 1e-5:
            sys.exit("pipeline_bench: plan %s differs from one rank (max "
                     "relative error %.3e)" % (label, err))
        print("%-26s %12.2f %9.2fx %14.1e" % (label, best, base / best, err))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
