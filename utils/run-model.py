#!/usr/bin/env -S /usr/bin/python3
"""Compile a model config with moe-compile, run the executable, and check its
output against the PyTorch reference (reference/) on the same weights.

For each seed: random weights with Hugging Face names (or --weights), random
token ids, one run of the compiled executable, one run of the reference, and
the relative error max|ours - ref| / max|ref| against --tol. Prints one line
per seed and exits 1 if any seed fails.

With --plan "dp=2,ep=2" the model is compiled for that plan and run under
`mpiexec -n <world>`; the reference is still the single-rank PyTorch model,
so the check is that the plan does not change the result. --plan auto lets
the planner choose for --cluster and --ranks; --check-plan-bytes compares
rank 0's collective counters with the planner's prediction for the plan.

usage: run-model.py examples/mixtral-tiny/config.json [--seeds 1 2 3]
         [--batch 1] [--seq-len 16] [--plan "dp=2,ep=2" | --plan auto
         [--cluster h100x8] [--ranks N]] [--stats] [--check-plan-bytes]
         [--weights W.safetensors] [--dtype f32]
         [--tol 1e-5] [--iters 1] [--threads N] [--build build] [--workdir DIR]
         [--exe PREBUILT]
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference"))

import numpy as np  # noqa: E402
from moe_reference import safetensors_np  # noqa: E402
from moe_reference.config import ConfigError, load_config  # noqa: E402
from moe_reference.weights import random_ids, random_weights  # noqa: E402


def fail(message):
    sys.exit("run-model: error: " + message)


def check_plan_bytes(args, compiler, world, work, output):
    """Rank 0's --stats against moe-compile's planner estimate of the plan."""
    measured = {}
    for kind, group, calls, nbytes in re.findall(
            r"^rank 0: (\S+) (\S+): (\d+) calls, (\d+) bytes$", output, re.M):
        measured[(kind, group)] = (int(calls), int(nbytes))
    report = work / "plan-report.json"
    proc = subprocess.run(
        [str(compiler), args.config, "--plan", args.plan or "dp=1",
         "--cluster", "h100x8", "--ranks", str(world), "--batch",
         str(args.batch), "--seq-len", str(args.seq_len), "--plan-report",
         str(report), "--explain-plan"] +
        (["--microbatches", str(args.microbatches)] if args.microbatches
         else []) +
        (["--overlap=" + args.overlap] if args.overlap else []) +
        (["--overlap-chunks", str(args.overlap_chunks)]
         if args.overlap_chunks > 1 else []), capture_output=True, text=True)
    if proc.returncode != 0:
        fail("the planner failed:\n" + proc.stdout + proc.stderr)
    estimate = json.loads(report.read_text())["plans"][0]
    predicted = {(c["kind"], c["group"]): (c["calls"], c["bytes"])
                 for c in estimate.get("collectives", [])}
    if predicted != measured:
        fail("the planner's bytes differ from --stats for plan %s:\n"
             "  predicted %s\n  measured  %s" % (
                 args.plan, sorted(predicted.items()),
                 sorted(measured.items())))
    print("plan %s: predicted collective calls and bytes equal --stats "
          "(%d kinds)" % (args.plan or "dp=1", len(measured)))


def main():
    ap = argparse.ArgumentParser(
        description="Compile a MoE config, run it, compare with PyTorch.")
    ap.add_argument("config", help="Hugging Face-style config.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--weights", help="use this safetensors file instead of "
                    "random weights (the seeds then only pick token ids)")
    ap.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32",
                    help="storage type of the random weights")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--target", choices=["cpu", "cuda"], default="cpu",
                    help="moe-compile --target (cuda needs an NVIDIA GPU to "
                    "run)")
    ap.add_argument("--cuda-gemm", default=None,
                    help="moe-compile --cuda-gemm (f32, tf32, bf16, f16)")
    ap.add_argument("--cuda-block-size", type=int, default=0,
                    help="moe-compile --cuda-block-size")
    ap.add_argument("--cuda-emulate-on-cpu", action="store_true",
                    help="moe-compile --cuda-emulate-on-cpu (with --target "
                    "cuda: the kernels' loop structure, run on the CPU)")
    ap.add_argument("--iters", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--plan", default="", help="parallel plan for moe-compile "
                    "--plan; the executable runs under mpiexec")
    ap.add_argument("--microbatches", type=int, default=0,
                    help="moe-compile --microbatches (pipelines)")
    ap.add_argument("--overlap", default="",
                    help="moe-compile --overlap (collectives overlapped with "
                         "compute, e.g. all-to-all,all-reduce)")
    ap.add_argument("--overlap-chunks", type=int, default=1,
                    help="moe-compile --overlap-chunks")
    ap.add_argument("--stats", action="store_true",
                    help="print each rank's collective calls and bytes")
    ap.add_argument("--cluster", default="h100x8",
                    help="cluster for --plan auto (moe-compile --cluster)")
    ap.add_argument("--ranks", type=int, default=0,
                    help="ranks for --plan auto (moe-compile --ranks)")
    ap.add_argument("--check-plan-bytes", action="store_true",
                    help="check rank 0's collective calls and bytes against "
                    "the planner's prediction for the plan (implies --stats)")
    ap.add_argument("--exe", help="run this executable, compiled earlier "
                    "for the same config, --batch, --seq-len and options "
                    "(utils/device-kit.sh), instead of compiling: for a "
                    "machine without moe-compile")
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--workdir", help="keep files here (default: a temporary "
                    "directory, removed at exit)")
    args = ap.parse_args()

    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError) as e:
        fail(str(e))
    compiler = pathlib.Path(args.build) / "bin" / "moe-compile"
    if args.exe:
        if args.plan == "auto" or args.check_plan_bytes:
            fail("--exe with --plan auto or --check-plan-bytes: both need "
                 "moe-compile")
        if not os.access(args.exe, os.X_OK):
            fail("--exe %s: not an executable file" % args.exe)
    elif not compiler.exists():
        fail("%s not found: build first (utils/bootstrap.sh)" % compiler)
    name = pathlib.Path(args.config).resolve().parent.name

    with tempfile.TemporaryDirectory(prefix="moe-run-") as tmp:
        work = pathlib.Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        exe = work / "model"
        t0 = time.time()
        compile_cmd = [str(compiler), args.config, "--target", args.target,
                       "--batch", str(args.batch), "--seq-len",
                       str(args.seq_len), "-o", str(exe)]
        world = 1
        if args.plan == "auto" and args.microbatches:
            fail("--microbatches with --plan auto: the planner chooses the "
                 "microbatches of the pipelines it considers")
        if args.plan == "auto":
            # The planner picks; its choice is read back from moe-compile.
            cmd = compile_cmd + ["--plan", "auto", "--cluster", args.cluster]
            if args.ranks:
                cmd += ["--ranks", str(args.ranks)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            chosen = re.search(
                r"--plan auto chose (\S+)(?: with --microbatches (\d+))? for",
                proc.stderr)
            if proc.returncode != 0 or not chosen:
                fail("moe-compile --plan auto failed:\n" + proc.stderr)
            args.plan = chosen.group(1)
            if chosen.group(2):
                args.microbatches = int(chosen.group(2))
            print("%s: --plan auto chose %s%s" % (
                name, args.plan, " with --microbatches %d" % args.microbatches
                if args.microbatches else ""))
        if args.microbatches:
            compile_cmd += ["--microbatches", str(args.microbatches)]
        if args.overlap:
            compile_cmd += ["--overlap=" + args.overlap]
        if args.overlap_chunks > 1:
            compile_cmd += ["--overlap-chunks", str(args.overlap_chunks)]
        if args.cuda_gemm:
            compile_cmd += ["--cuda-gemm", args.cuda_gemm]
        if args.cuda_emulate_on_cpu:
            compile_cmd += ["--cuda-emulate-on-cpu"]
        if args.cuda_block_size:
            compile_cmd += ["--cuda-block-size", str(args.cuda_block_size)]
        if args.plan:
            compile_cmd += ["--plan", args.plan]
            # The plan as moe-compile reads it (the one plan parser).
            proc = subprocess.run(
                [str(compiler), "--plan", args.plan, "--explain-plan",
                 "--explain-format=json", "x"], capture_output=True, text=True)
            if proc.returncode != 0:
                fail("moe-compile --plan %s:\n%s" % (args.plan, proc.stderr))
            world = json.loads(proc.stdout)["world"]
        if args.exe:
            exe = pathlib.Path(args.exe).resolve()
            print("%s: running %s (compiled earlier) for ids [%d, %d]" % (
                name, exe.name, args.batch, args.seq_len))
        else:
            proc = subprocess.run(compile_cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                fail("moe-compile failed:\n" + proc.stderr)
            print("%s: compiled %s for ids [%d, %d]%s in %.1f s" % (
                name, cfg.architecture, args.batch, args.seq_len,
                " with plan %s (%d ranks)" % (args.plan, world)
                if args.plan else "", time.time() - t0))

        import torch
        from moe_reference.models import MoEModel, set_threads
        if args.threads:
            set_threads(args.threads)
        env = dict(os.environ)
        # MOE_EXE_LIBRARY_PATH (utils/device-kit-run.sh): libraries for the
        # executable only, not for this Python and its PyTorch.
        if env.get("MOE_EXE_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = env["MOE_EXE_LIBRARY_PATH"] + (
                ":" + env["LD_LIBRARY_PATH"]
                if env.get("LD_LIBRARY_PATH") else "")
        failures = 0
        for seed in args.seeds:
            if args.weights:
                weights_path = pathlib.Path(args.weights)
            else:
                weights_path = work / ("weights-%d.safetensors" % seed)
                safetensors_np.save(weights_path, random_weights(cfg, seed),
                                    dtype=args.dtype.upper())
            ids = random_ids(cfg.vocab_size, args.batch, args.seq_len, seed)
            np.save(work / ("ids-%d.npy" % seed), ids)
            out_path = work / ("out-%d.npy" % seed)
            cmd = [str(exe), "--weights", str(weights_path), "--input",
                   str(work / ("ids-%d.npy" % seed)), "--output", str(out_path),
                   "--iters", str(args.iters)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.stats or args.check_plan_bytes:
                cmd += ["--stats"]
            if world > 1:
                # Oversubscribed ranks must not spin: one OpenBLAS thread each.
                env["OPENBLAS_NUM_THREADS"] = "1"
                cmd = ["mpiexec", "-n", str(world)] + cmd
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env=env, timeout=300)
            except subprocess.TimeoutExpired:
                fail("the executable did not finish in 300 s: %s" %
                     " ".join(cmd))
            if proc.returncode != 0:
                fail("the executable failed:\n" + proc.stdout + proc.stderr)
            if args.stats:
                sys.stdout.write("".join(sorted(
                    l + "\n" for l in proc.stdout.splitlines()
                    if l.startswith("rank "))))
            if args.check_plan_bytes:
                check_plan_bytes(args, compiler, world, work, proc.stdout)
            timing = re.search(r"([0-9.]+) ms per forward pass", proc.stdout)
            ours = np.load(out_path)
            ref = MoEModel(cfg, safetensors_np.load(weights_path),
                           str(weights_path)).forward(ids).numpy()
            if ours.shape != ref.shape:
                fail("shape %s vs reference %s" % (ours.shape, ref.shape))
            err = float(np.abs(ours.astype(np.float64) - ref).max() /
                        max(np.abs(ref).max(), 1e-30))
            ok = np.isfinite(err) and err <= args.tol
            failures += not ok
            print("%s: seed %d: max_rel_err=%.3e vs PyTorch (tol %.0e) %s; "
                  "%s ms per forward pass" % (
                      name, seed, err, args.tol, "PASS" if ok else "FAIL",
                      timing.group(1) if timing else "?"))
        del torch
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
