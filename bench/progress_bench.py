#!/usr/bin/env -S /usr/bin/python3
"""How collectives in flight should advance while a rank computes, measured
side by side in one run (docs/Parallelism.md, "Progress"): the overlapped
ScMoE and the 4-chunk Mixtral programs of bench/overlap_bench.py (same
models, dp = ep = 2, 128 tokens per rank) run with MOERT_PROGRESS=calls
(the runtime tests the requests at the start of each matrix product, the
default), thread (a thread enters MPI's progress engine every 50 us) and
none (only the waits advance them), without and with an emulated link.
Prints ms per forward pass (best of --runs runs of --iters passes) and each
mode's time relative to `calls` as a Markdown table.

usage: progress_bench.py [--build build] [--workdir DIR] [--runs 3]
         [--iters 5] [--links none,5:10,1:10]
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from overlap_bench import MODELS, PY, SEQ, run  # noqa: E402

MODES = ["calls", "thread", "none"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--workdir", default="/tmp/progress-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--links", default="none,5:10,1:10")
    a = ap.parse_args()
    work = pathlib.Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    compiler = pathlib.Path(a.build) / "bin" / "moe-compile"
    ep = 2
    programs = {}
    for name, chunks in (("scmoe", 1), ("mixtral", 4)):
        cfg = work / ("%s.json" % name)
        cfg.write_text(json.dumps(MODELS[name]))
        weights = work / ("%s.safetensors" % name)
        run([PY, ROOT / "reference" / "make_weights.py", "--config", cfg,
             "--seed", 1, "-o", weights])
        exe = work / name
        run([compiler, cfg, "--plan", "dp=2,ep=2", "--batch", ep, "--seq-len",
             SEQ, "--overlap=all-to-all", "--overlap-chunks", chunks, "-o",
             exe])
        programs[name] = (exe, weights)
    ids = work / "ids.npy"
    run([PY, ROOT / "reference" / "make_ids.py", "--config",
         work / "scmoe.json", "-B", ep, "-S", SEQ, "--seed", 1, "-o", ids])

    rows = []
    for name, (exe, weights) in programs.items():
        for link in a.links.split(","):
            t = {}
            for mode in MODES:
                env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
                           MOERT_PROGRESS=mode)
                if link != "none":
                    env["MOERT_LINK"] = link
                best = None
                for _ in range(a.runs):
                    out = run(["mpiexec", "-n", ep, exe, "--weights", weights,
                               "--input", ids, "--output", work / "out.npy",
                               "--iters", a.iters, "--warmup", 1,
                               "--threads", 1], env=env)
                    ms = float(re.search(r"([0-9.]+) ms per forward pass",
                                         out).group(1))
                    best = ms if best is None else min(best, ms)
                t[mode] = best
                print("  %s link=%s %s: %.2f ms" % (name, link, mode, best),
                      file=sys.stderr)
            rows.append((name, link, t))
    print("| program | link | calls | thread | none | thread / calls | "
          "none / calls |")
    print("|---|---|---|---|---|---|---|")
    for name, link, t in rows:
        print("| %s | %s | %.1f ms | %.1f ms | %.1f ms | %.2f | %.2f |" % (
            name, "none" if link == "none" else
            "%s Gb/s, %s us" % tuple(link.split(":")),
            t["calls"], t["thread"], t["none"], t["thread"] / t["calls"],
            t["none"] / t["calls"]))


if __name__ == "__main__":
    main()
