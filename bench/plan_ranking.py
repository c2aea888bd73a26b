#!/usr/bin/env -S /usr/bin/python3
"""Does the planner rank plans the way they run? Predicted vs measured time
of one forward pass for plans of one model on 4 local MPI ranks.

1. `mpiexec -n 4 moert-calibrate` measures this machine as the compiled
   programs use it (every rank busy at once) and writes the `local` cluster
   spec;
2. for each plan, `moe-compile --plan P --cluster local.json --plan-report`
   gives the prediction, and utils/run-model.py compiles the model for P,
   runs it under mpiexec (--iters timed forward passes, after a warm-up) and
   checks it against PyTorch;
3. prints both per plan and Spearman's rank correlation between them.

usage: plan_ranking.py [--config examples/mixtral-tiny/config.json]
         [--batch 4] [--seq-len 32] [--iters 20] [--build build]
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
PLANS = ["dp=4", "dp=4,ep=2", "dp=4,ep=4", "dp=2,tp=2", "dp=2,tp=2,ep=2",
         "dp=2,tp=2,ep=4", "dp=2,tp=2,etp=2",
         "dp=2,tp=2,ep=2,dispatch=slice_allreduce", "dp=2,tp=2,ep=4,dedup=1",
         "dp=2,tp=2,ep=2,etp=2"]


def ranks(values):
    """Ranks 1..n, ties averaged."""
    order = np.argsort(values, kind="stable")
    r = np.empty(len(values))
    r[order] = np.arange(1, len(values) + 1)
    for v in set(values):
        same = [i for i, x in enumerate(values) if x == v]
        r[same] = np.mean(r[same])
    return r


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, **kw)
    if proc.returncode != 0:
        sys.exit("plan_ranking: %s failed:\n%s%s" % (
            pathlib.Path(str(cmd[0])).name, proc.stdout, proc.stderr))
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "examples" /
                                            "mixtral-tiny" / "config.json"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--build", default=str(ROOT / "build"))
    args = ap.parse_args()
    build = pathlib.Path(args.build)
    work = pathlib.Path(tempfile.mkdtemp(prefix="moe-plan-ranking-"))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")

    cluster = work / "local.json"
    print(run(["mpiexec", "-n", "4", build / "bin" / "moert-calibrate",
               cluster], env=env).strip())
    predicted, measured = [], []
    print("\n| plan | predicted ms | measured ms |")
    print("|---|---|---|")
    for i, plan in enumerate(PLANS):
        report = work / ("plan%d.json" % i)
        run([build / "bin" / "moe-compile", args.config, "--plan", plan,
             "--cluster", cluster, "--ranks", "4", "--batch", args.batch,
             "--seq-len", args.seq_len, "--plan-report", report,
             "--explain-plan"])
        estimate = json.loads(report.read_text())["plans"][0]
        if not estimate["feasible"]:
            sys.exit("plan_ranking: %s is infeasible: %s" % (
                plan, estimate["why_not"]))
        out = run([sys.executable, ROOT / "utils" / "run-model.py",
                   args.config, "--build", build, "--workdir",
                   work / ("run%d" % i), "--plan", plan, "--batch", args.batch,
                   "--seq-len", args.seq_len, "--iters", args.iters],
                  env=env, timeout=600)
        m = re.search(r"PASS; ([0-9.]+) ms per forward pass", out)
        if not m:
            sys.exit("plan_ranking: %s did not pass:\n%s" % (plan, out))
        predicted.append(estimate["total_seconds"] * 1e3)
        measured.append(float(m.group(1)))
        print("| %s | %.3f | %.3f |" % (plan, predicted[-1], measured[-1]))
        sys.stdout.flush()
    rp, rm = ranks(predicted), ranks(measured)
    rho = float(np.corrcoef(rp, rm)[0, 1])
    print("\nSpearman rank correlation over %d plans: %.2f (goal >= 0.8)" % (
        len(PLANS), rho))


if __name__ == "__main__":
    main()
