#!/usr/bin/env -S /usr/bin/python3
"""Partition an MoE block with moe-opt's passes, run it on MPI ranks, and
check it against the unpartitioned block on one rank. A plan's `dispatch=slice_allreduce` and
`dedup=1` add moe-slice-allreduce / moe-dedup-tokens (strict) after
moe-partition.

The block is a module with one `func.func @moe_block(x, router, up, down
[, gate]) -> y` of global (unpartitioned) types and no plan. For each --plan
the module gets `#moe.plan<...>`, goes through

    moe-opt --moe-shard=keep-signature --moe-partition [--extra passes]
    moe-compile --emit=obj

and is linked with test/Parallel/Inputs/moe_block_mpi.c; every rank receives
the whole inputs (random, from --seed) and rank 0 writes the whole output. The
reference is the same module compiled without a plan, run on one rank. Prints
per plan the relative error max|plan - single| / max|single| against --tol,
the block's time (best of --iters, slowest rank) and, with --stats, each
rank's collective calls and bytes for one call of the block (--iters 0).
Exits 1 if a plan fails.

usage: run-block.py BLOCK.mlir --plan "dp=2,ep=2" [--plan ...] [--seed 1]
         [--iters 0] [--stats] [--passes "--moe-slice-allreduce"]
         [--tol 1e-5] [--build build] [--workdir DIR]
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
HARNESS = ROOT / "test" / "Parallel" / "Inputs" / "moe_block_mpi.c"


def fail(message):
    sys.exit("run-block: error: " + message)


def run(cmd, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, **kwargs)
    if proc.returncode != 0:
        fail("%s failed (exit %d):\n%s%s" % (
            pathlib.Path(str(cmd[0])).name, proc.returncode, proc.stdout,
            proc.stderr))
    return proc.stdout


def explain(compiler, text, form):
    """The plan as moe-compile reads it (the one plan parser): --explain-plan
    in `form` (json, or manifest: the rank layout the harness reads)."""
    cmd = [compiler, "--explain-plan", "--explain-format=" + form, "x"]
    if text:
        cmd[1:1] = ["--plan", text]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        fail("--plan %s: %s" % (text, proc.stderr.strip()))
    return proc.stdout


def with_plan(module, attr):
    text, count = re.subn(r"^module\s*\{", "module attributes {moe.plan = %s} {"
                          % attr, module, count=1, flags=re.M)
    if count != 1:
        fail("the block must start with a plain 'module {'")
    return text


def main():
    ap = argparse.ArgumentParser(
        description="Partition an MoE block, run it on MPI ranks, compare.")
    ap.add_argument("block", help="module with func.func @moe_block")
    ap.add_argument("--plan", action="append", default=[], required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("--passes", default="",
                    help="extra moe-opt flags after moe-partition")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--clang", default="clang-22")
    ap.add_argument("--workdir")
    args = ap.parse_args()

    build = pathlib.Path(args.build)
    opt, compiler = build / "bin" / "moe-opt", build / "bin" / "moe-compile"
    for tool in (opt, compiler):
        if not tool.exists():
            fail("%s not found (build first, or pass --build)" % tool)
    module = pathlib.Path(args.block).read_text()
    signature = re.search(r"func\.func @moe_block\((.*?)\)\s*->", module,
                          re.S)
    if not signature:
        fail("%s has no func.func @moe_block" % args.block)
    shapes = [tuple(int(d) for d in m.split("x")) for m in
              re.findall(r"tensor<((?:\d+x)+)f32>", signature.group(1))
              for m in [m.rstrip("x")]]
    names = ["x", "router", "up", "down", "gate"][:len(shapes)]
    if len(shapes) not in (4, 5):
        fail("@moe_block must take (x, router, up, down[, gate])")

    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="moe-block-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, shape in zip(names, shapes):
        scale = 1.0 if name == "x" else 1.0 / np.sqrt(shape[-1])
        np.save(work / (name + ".npy"),
                (rng.standard_normal(shape) * scale).astype(np.float32))

    gated = ["-DMOE_BLOCK_GATED"] if len(shapes) == 5 else []
    lib = build / "lib"

    def build_exe(tag, text, passes):
        src = work / (tag + ".mlir")
        src.write_text(text)
        partitioned = work / (tag + ".partitioned.mlir")
        run([opt, src, *passes, "-o", partitioned])
        obj = work / (tag + ".o")
        run([compiler, partitioned, "--emit=obj", "-o", obj])
        exe = work / tag
        run([args.clang, "-O2", HARNESS, obj, *gated, "-I", ROOT / "bench",
             "-I", ROOT / "runtime" / "include", "-L", lib, "-lmoert",
             "-lm", "-Wl,-rpath," + str(lib), "-o", exe])
        return exe

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    single = build_exe("single", module, [])
    single_layout = work / "single.layout"
    single_layout.write_text(explain(compiler, "", "manifest"))
    run([single, single_layout, work, "0", work / "single.npy"], env=env)
    ref = np.load(work / "single.npy")

    failed = False
    for i, text in enumerate(args.plan):
        plan = json.loads(explain(compiler, text, "json"))
        world = plan["world"]
        tag = "plan%d" % i
        passes = ["--moe-shard=keep-signature", "--moe-partition"]
        # The plan's communication rewrites, as moe-compile runs them.
        if "slice_allreduce" in plan["dispatch"]:
            passes.append("--moe-slice-allreduce=strict=1")
        if 1 in plan["dedup"]:
            passes.append("--moe-dedup-tokens=strict=1")
        passes += args.passes.split()
        exe = build_exe(tag, with_plan(module, plan["plan"]), passes)
        layout = work / (tag + ".layout")
        layout.write_text(explain(compiler, text, "manifest"))
        out_npy = work / (tag + ".npy")
        out = run(["mpiexec", "-n", str(world), exe, layout, work,
                   str(args.iters), out_npy], env=env, timeout=300)
        got = np.load(out_npy)
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
        ok = got.shape == ref.shape and err <= args.tol
        failed |= not ok
        timing = re.search(r"block_ms=([0-9.]+)", out)
        print("plan %s (%d ranks): max_rel_err=%.1e (tol %.0e) %s%s" % (
            text, world, err, args.tol, "PASS" if ok else "FAIL",
            "; %s ms per block" % timing.group(1) if timing else ""))
        if args.stats:
            for line in sorted(l for l in out.splitlines()
                               if l.startswith("rank ")):
                print("  " + line)
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
