#!/usr/bin/env python3
"""Benchmark: the MoE layer compiled for the GPU against PyTorch eager.

Mixtral shapes by default (H=4096, F=14336, E=8, top-2, SwiGLU experts,
dropless softmax routing with renormalization), T tokens per call. For each
T and each cuBLAS mode of --gemm, in one run:
  1. the module (one `moe.layer`, the same as bench/moe_block_bench.py's) is
     compiled with `moe-compile --target cuda --emit=obj` and linked into
     bench/moe_block_harness.c with libmoert_cuda,
  2. the block is timed (best of --iters calls after one untimed call that
     migrates the weights to the GPU),
  3. PyTorch eager runs the same block on the same GPU, as Hugging Face's
     MixtralSparseMoeBlock does it (per expert: index, three linears,
     index_add_), in float32 and in bfloat16,
  4. the outputs are compared with PyTorch's float32 output,
and one table is printed: times, speed-ups (PyTorch time / compiled time),
the expert GEMMs' rate (3 * 2 * T*k * H * F FLOPs over the whole block's
time) as a share of --peak-tflops (989: H100 SXM dense bf16), and the
expert weight bytes read per second (the distinct experts the tokens
chose, 3 * H * F each, at the storage width: 4 bytes for ours and
PyTorch f32, 2 for PyTorch bf16) as a share of --hbm-tbs (3.35 TB/s).

Two phases, because moe-compile needs this project's LLVM and the GPU
machine may not have it:
  --prepare DIR   compile and link the harnesses into DIR (no GPU needed)
  --run DIR       make the inputs, run the harnesses and PyTorch (GPU)
Without either, both run here. --emulate-on-cpu builds the harnesses with
`--cuda-emulate-on-cpu` against the CPU runtime and runs PyTorch on the CPU:
a check of the program itself at small shapes, not a measurement.

usage: cuda_moe_bench.py [--tokens 1 16 256 1024 4096] [--gemm bf16 f32]
                         [--hidden 4096] [--ffn 14336] [--experts 8]
                         [--top-k 2] [--iters 10]
                         [--prepare DIR | --run DIR] [--emulate-on-cpu]
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The module: the same Mixtral-style block as the CPU bench's.
sys.path.insert(0, str(ROOT / "bench"))
from moe_block_bench import MODULE  # noqa: E402

# Largest relative error against PyTorch f32 accepted per cuBLAS mode.
TOLERANCE = {"f32": 1e-4, "tf32": 1e-2, "bf16": 5e-2, "f16": 1e-2}


def executable_env():
    """The environment of the compiled harnesses: MOE_EXE_LIBRARY_PATH (set
    by utils/device-kit-run.sh) goes before LD_LIBRARY_PATH for them only,
    not for this Python and its PyTorch."""
    env = dict(os.environ)
    extra = env.get("MOE_EXE_LIBRARY_PATH")
    if extra:
        env["LD_LIBRARY_PATH"] = extra + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, **kw)
    if proc.returncode != 0:
        sys.exit("bench: command failed: %s\n%s%s" % (
            " ".join(map(str, cmd)), proc.stdout, proc.stderr))
    return proc.stdout


def prepare(args, out):
    """Compiles and links one harness per token count into `out`."""
    build = pathlib.Path(args.build)
    compiler = build / "bin" / "moe-compile"
    libdir = build / "lib"
    if not compiler.exists():
        sys.exit("bench: %s not found: build first (utils/bootstrap.sh)" %
                 compiler)
    runtime = "moert" if args.emulate_on_cpu else "moert_cuda"
    if not (libdir / ("lib%s.so" % runtime)).exists():
        sys.exit("bench: %s has no lib%s.so (the CUDA runtime is built when "
                 "CMake finds the CUDA toolkit)" % (libdir, runtime))
    cc = shutil.which("clang-22") or shutil.which("cc")
    out.mkdir(parents=True, exist_ok=True)
    H, F, E, K = args.hidden, args.ffn, args.experts, args.top_k
    for T in args.tokens:
        mlir = out / ("block%d.mlir" % T)
        mlir.write_text(MODULE.format(T=T, H=H, F=F, E=E, K=K))
        obj = out / ("block%d.o" % T)
        flags = ["--target", "cuda", "--cuda-chip", args.chip]
        if args.emulate_on_cpu:
            flags.append("--cuda-emulate-on-cpu")
        run([compiler, mlir, *flags, "--emit=obj", "-o", obj])
        print("bench: compiled T=%d" % T, file=sys.stderr)
        # The runtime travels with the harnesses ($ORIGIN).
        run([cc, "-O2", ROOT / "bench" / "moe_block_harness.c", obj,
             "-I", ROOT / "runtime" / "include", "-L", libdir, "-l" + runtime,
             "-lm", "-Wl,-rpath,$ORIGIN:" + str(libdir),
             "-o", out / ("harness%d" % T)])
    for lib in libdir.glob("lib%s.so*" % runtime):
        shutil.copy2(lib, out / lib.name, follow_symlinks=False)
    (out / "shapes.json").write_text(json.dumps({
        "hidden": H, "ffn": F, "experts": E, "top_k": K,
        "tokens": args.tokens, "emulate_on_cpu": args.emulate_on_cpu}))


def torch_block(torch, x, router, w1, w3, w2, k):
    """Hugging Face's MixtralSparseMoeBlock forward, in x's dtype."""
    F = torch.nn.functional
    probs = F.softmax(F.linear(x, router), dim=-1, dtype=torch.float32)
    weights, ids = torch.topk(probs, k, dim=-1)
    weights = (weights / weights.sum(dim=-1, keepdim=True)).to(x.dtype)
    out = torch.zeros_like(x)
    mask = F.one_hot(ids, num_classes=router.shape[0]).permute(2, 1, 0)
    for e in range(router.shape[0]):
        idx, top = torch.where(mask[e])
        if top.numel() == 0:
            continue
        cur = x[top]
        y = F.linear(F.silu(F.linear(cur, w1[e])) * F.linear(cur, w3[e]), w2[e])
        out.index_add_(0, top, y * weights[top, idx, None])
    return out, ids


def time_torch(torch, fn, iters, cuda):
    """Best of `iters` calls after one warm-up, in seconds."""
    fn()
    best = float("inf")
    for _ in range(iters):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) * 1e-3)
        else:
            import time
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    return best


def run_phase(args, out):
    """Runs the prepared harnesses and PyTorch; prints the table."""
    import numpy as np
    import torch

    shapes = json.loads((out / "shapes.json").read_text())
    H, F, E, K = (shapes[n] for n in ("hidden", "ffn", "experts", "top_k"))
    emulated = shapes["emulate_on_cpu"]
    cuda = not emulated
    if cuda and not torch.cuda.is_available():
        sys.exit("bench: PyTorch sees no GPU (prepare with --emulate-on-cpu "
                 "to check the program without one)")
    device = "cuda" if cuda else "cpu"
    modes = args.gemm if cuda else ["f32"]

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((E, F, H), dtype=np.float32) * 0.02
    w3 = rng.standard_normal((E, F, H), dtype=np.float32) * 0.02
    w2 = rng.standard_normal((E, H, F), dtype=np.float32) * 0.02
    router = rng.standard_normal((E, H), dtype=np.float32) * 0.1
    inputs = out / "inputs"
    inputs.mkdir(exist_ok=True)
    for name, a in (("w1", w1), ("w3", w3), ("w2", w2), ("router", router)):
        np.save(inputs / (name + ".npy"), a)
    tokens = [T for T in shapes["tokens"] if T in args.tokens]
    xs = {T: rng.standard_normal((T, H), dtype=np.float32) for T in tokens}

    # Ours first, while this process holds no CUDA context (a GPU in
    # exclusive-process mode takes one process at a time).
    ours = {}
    for T in tokens:
        np.save(inputs / "x.npy", xs[T])
        for mode in modes:
            fields = dict(kv.split("=") for kv in run(
                [out / ("harness%d" % T), inputs, args.iters, K, mode],
                env=executable_env()).split())
            ours[T, mode] = (float(fields["compiled_best_s"]),
                             np.load(inputs / "out.npy"))

    # Then PyTorch on the same inputs.
    tw = {n: torch.from_numpy(a).to(device)
          for n, a in (("w1", w1), ("w3", w3), ("w2", w2), ("router", router))}
    tw16 = {n: t.to(torch.bfloat16) for n, t in tw.items()} if cuda else None
    del w1, w3, w2
    rows = []
    for T in tokens:
        xt = torch.from_numpy(xs[T]).to(device)
        with torch.no_grad():
            ref, ids = torch_block(torch, xt, tw["router"], tw["w1"], tw["w3"],
                                   tw["w2"], K)
            ref = ref.float().cpu().numpy()
            distinct = int(torch.unique(ids).numel())
            t32 = time_torch(torch, lambda: torch_block(
                torch, xt, tw["router"], tw["w1"], tw["w3"], tw["w2"], K),
                args.iters, cuda)
            t16 = None
            if cuda:
                x16 = xt.to(torch.bfloat16)
                t16 = time_torch(torch, lambda: torch_block(
                    torch, x16, tw16["router"], tw16["w1"], tw16["w3"],
                    tw16["w2"], K), args.iters, cuda)
        flops = 3 * 2.0 * T * K * H * F
        expert_bytes = 3.0 * H * F * distinct
        for mode in modes:
            best, got = ours[T, mode]
            err = float(np.abs(got - ref).max() /
                        max(float(np.abs(ref).max()), 1e-30))
            rows.append((T, mode, best, t32, t16, flops, expert_bytes, err))

    print("MoE layer: H=%d F=%d E=%d k=%d, %s, best of %d%s" % (
        H, F, E, K, torch.cuda.get_device_name() if cuda else "CPU",
        args.iters, " (EMULATED ON THE CPU: not a GPU measurement)"
        if emulated else ""))
    print("%6s %5s %11s %11s %11s %8s %8s %9s %7s %10s %7s %9s %9s" % (
        "T", "gemm", "ours ms", "torch32 ms", "torch16 ms", "vs t32",
        "vs t16", "TFLOP/s", "of pk", "weight GB/s", "of HBM",
        "t16 GB/s", "rel err"))
    for T, mode, ours, t32, t16, flops, wbytes, err in rows:
        tf = flops / ours * 1e-12
        gbs = wbytes * 4 / ours * 1e-9
        print("%6d %5s %11.3f %11.3f %11s %7.2fx %8s %9.1f %6.1f%% %10.0f "
              "%6.1f%% %9s %9.2e" % (
                  T, mode, ours * 1e3, t32 * 1e3,
                  "%.3f" % (t16 * 1e3) if t16 else "-", t32 / ours,
                  "%.2fx" % (t16 / ours) if t16 else "-", tf,
                  100 * tf / args.peak_tflops, gbs,
                  100 * gbs / (args.hbm_tbs * 1e3),
                  "%.0f" % (wbytes * 2 / t16 * 1e-9) if t16 else "-", err))
    bad = [(T, mode, err) for T, mode, _, _, _, _, _, err in rows
           if err > TOLERANCE[mode]]
    if bad:
        sys.exit("bench: compiled and PyTorch f32 outputs disagree: %s" % ", ".join(
            "T=%d %s rel err %.2e > %.0e" % (T, m, e, TOLERANCE[m])
            for T, m, e in bad))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, nargs="+",
                    default=[1, 16, 256, 1024, 4096])
    ap.add_argument("--gemm", nargs="+", default=["bf16", "f32"],
                    choices=sorted(TOLERANCE))
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ffn", type=int, default=14336)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--chip", default="sm_90")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--hbm-tbs", type=float, default=3.35)
    ap.add_argument("--build", default=str(ROOT / "build"))
    phase = ap.add_mutually_exclusive_group()
    phase.add_argument("--prepare", metavar="DIR")
    phase.add_argument("--run", metavar="DIR")
    ap.add_argument("--emulate-on-cpu", action="store_true")
    args = ap.parse_args()
    if min(args.tokens) < 1 or args.iters < 1:
        ap.error("--tokens and --iters must be at least 1")
    if args.run and args.emulate_on_cpu:
        ap.error("--emulate-on-cpu is chosen at --prepare")

    if args.prepare:
        prepare(args, pathlib.Path(args.prepare))
    elif args.run:
        run_phase(args, pathlib.Path(args.run))
    else:
        with tempfile.TemporaryDirectory(prefix="moe-gpu-bench-") as tmp:
            prepare(args, pathlib.Path(tmp))
            run_phase(args, pathlib.Path(tmp))


if __name__ == "__main__":
    main()
