#!/usr/bin/env -S /usr/bin/python3
"""Compile a model config for generation (moe-compile --max-seq-len), run the
executable's --generate, and check the generated ids and every step's logits
against a reference on the same weights and prompts.

For each seed: random weights (with lm_head.weight) and prompts, one run of
the single-rank executable, then
  --against reference   reference/generate.py (the PyTorch reference with
                        its own cache; --alone: each prompt by itself),
  --against hf          reference/hf_generate.py (Hugging Face transformers'
                        generate(do_sample=False); transformers on PYTHONPATH),
and with --plans, the same model compiled for each plan and run under
`mpiexec -n <world>` against the single-rank run. Comparisons go through
reference/compare_generation.py (ids up to each row's first near tie,
logits within --tol). Prints one line per check; exits 1 if any fails.

usage: run-generate.py examples/mixtral-tiny/config.json --build build
         --workdir DIR [--seeds 1 2 3] [--batch 2] [--seq-len 8]
         [--generate 8] [--max-seq-len M] [--lengths 8,3] [--eos ID]
         [--against reference|hf|none] [--alone] [--plans "dp=2" "tp=2" ...]
         [--tol 1e-4] [--microbatches M] [--overlap KINDS]
         [--cuda-emulate-on-cpu]
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PY = "/usr/bin/python3"


def fail(message):
    sys.exit("run-generate: error: " + message)


def run(cmd, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        fail("%s failed (exit %d):\n%s%s" % (pathlib.Path(str(cmd[0])).name,
                                             proc.returncode, proc.stdout,
                                             proc.stderr))
    return proc.stdout


def world_of(plan):
    degrees = dict(kv.split("=") for kv in plan.split(",") if "=" in kv)
    return (int(degrees.get("dp", 1)) * int(degrees.get("tp", 1))
            * int(degrees.get("pp", 1)))


def compare(args, ids, ref_ids, ref_logits, logits, lengths):
    cmd = [PY, ROOT / "reference" / "compare_generation.py", ids, ref_ids,
           ref_logits, "--logits", logits, "--prompt-len", args.seq_len,
           "--tol", args.tol]
    if lengths:
        cmd += ["--lengths", lengths]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True)
    if proc.returncode not in (0, 1):
        fail("compare_generation.py: " + proc.stderr)
    lines = proc.stdout.strip().splitlines()
    steps = sum(int(m) for m in re.findall(r": (\d+) of", proc.stdout))
    total = sum(int(m) for m in re.findall(r"of (\d+) steps", proc.stdout))
    worst = max(float(m) for m in re.findall(r"max_rel_err (\S+)",
                                             proc.stdout))
    return lines[-1], "%d of %d steps compared, logits max_rel_err %.2g" % (
        steps, total, worst), proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=8)
    ap.add_argument("--generate", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=0)
    ap.add_argument("--lengths", default=None)
    ap.add_argument("--eos", type=int, default=None)
    ap.add_argument("--against", choices=["reference", "hf", "none"],
                    default="reference")
    ap.add_argument("--alone", action="store_true")
    ap.add_argument("--plans", nargs="*", default=[])
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--microbatches", type=int, default=0,
                    help="microbatches of the pipeline plans (pp > 1)")
    ap.add_argument("--overlap", default="",
                    help="moe-compile --overlap for the plans (e.g. "
                         "all-to-all,all-reduce)")
    ap.add_argument("--cuda-emulate-on-cpu", action="store_true",
                    help="compile for --target cuda, its kernels run on the "
                         "CPU (no GPU needed)")
    args = ap.parse_args()

    build = pathlib.Path(args.build)
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    name = pathlib.Path(args.config).parent.name
    max_seq = args.max_seq_len or args.seq_len + args.generate
    compiler = build / "bin" / "moe-compile"

    def compile_for(plan, out):
        cmd = [compiler, args.config, "--batch", args.batch, "--seq-len",
               args.seq_len, "--max-seq-len", max_seq, "-o", out]
        if plan:
            cmd += ["--plan", plan]
            if args.microbatches and "pp=" in plan and "pp=1" not in plan:
                cmd += ["--microbatches", args.microbatches]
            if args.overlap:
                cmd += ["--overlap=" + args.overlap]
        if args.cuda_emulate_on_cpu:
            cmd += ["--target", "cuda", "--cuda-emulate-on-cpu"]
        run(cmd)

    exe = work / "model"
    compile_for(None, exe)
    plan_exes = []
    for i, plan in enumerate(args.plans):
        plan_exe = work / ("plan%d" % i)
        compile_for(plan, plan_exe)
        plan_exes.append((plan, plan_exe))
    print("%s: compiled for generation (max-seq-len %d)%s"
          % (name, max_seq, ", %d plans" % len(plan_exes) if plan_exes
             else ""))

    lengths = None
    if args.lengths:
        values = [int(x) for x in args.lengths.split(",")]
        lengths = work / "lengths.npy"
        run([PY, "-c", "import numpy as np, sys; np.save(sys.argv[1], "
             "np.array(%r, dtype=np.int64))" % values, lengths])
    failed = False
    for seed in args.seeds:
        weights = work / ("w%d.safetensors" % seed)
        prompts = work / ("ids%d.npy" % seed)
        run([PY, ROOT / "reference" / "make_weights.py", "--config",
             args.config, "--seed", seed, "--with-lm-head", "-o", weights,
             "--random-ids", args.batch, args.seq_len, "--ids-out", prompts])
        common = ["--weights", weights, "--input", prompts, "--generate",
                  args.generate]
        if lengths:
            common += ["--lengths", lengths]
        if args.eos is not None:
            common += ["--eos", args.eos]
        ours, ours_logits = work / "out.npy", work / "logits.npy"
        run([exe] + common + ["--output", ours, "--output-logits",
                              ours_logits])
        if args.against != "none":
            ref, ref_logits = work / "ref.npy", work / "ref-logits.npy"
            if args.against == "reference":
                cmd = [PY, ROOT / "reference" / "generate.py", "--config",
                       args.config] + common + ["--output", ref,
                                                "--output-logits", ref_logits]
                if args.alone:
                    cmd.append("--alone")
            else:
                if lengths:
                    fail("--against hf compares prompts without padding")
                cmd = [PY, ROOT / "reference" / "hf_generate.py", "--config",
                       args.config] + common + ["--output", ref,
                                                "--output-logits", ref_logits]
            run(cmd)
            verdict, summary, detail = compare(args, ours, ref, ref_logits,
                                               ours_logits, lengths)
            label = args.against + (" (each prompt alone)" if args.alone
                                    else "")
            print("%s: seed %d: %s: %s %s" % (name, seed, label, summary,
                                              verdict))
            if verdict != "PASS":
                failed = True
                print(detail)
        for plan, plan_exe in plan_exes:
            out, logits = work / "plan-out.npy", work / "plan-logits.npy"
            run(["mpiexec", "-n", world_of(plan), plan_exe] + common +
                ["--output", out, "--output-logits", logits])
            verdict, summary, detail = compare(args, out, ours, ours_logits,
                                               logits, lengths)
            print("%s: seed %d: plan %s (%d ranks) against 1 rank: %s %s"
                  % (name, seed, plan, world_of(plan), summary, verdict))
            if verdict != "PASS":
                failed = True
                print(detail)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
