#!/usr/bin/env -S /usr/bin/python3
"""Compile time of one model with two moe-compile builds, side by side in one
run: each compiles the same config and plan to an executable --repeat times,
alternating, and the script prints the best time of each and their ratio.

usage: compile_time.py --old OLD/bin/moe-compile [--new build/bin/moe-compile]
         [--config examples/mixtral-tiny/config.json]
         [--plan dp=2,tp=2,ep=4] [--batch 2] [--seq-len 8] [--repeat 3]
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the moe-compile to compare")
    ap.add_argument("--new", default=str(ROOT / "build" / "bin" / "moe-compile"))
    ap.add_argument("--config",
                    default=str(ROOT / "examples" / "mixtral-tiny" / "config.json"))
    ap.add_argument("--plan", default="dp=2,tp=2,ep=4")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best = {"old": float("inf"), "new": float("inf")}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeat):
            for tag in ("old", "new"):
                cmd = [getattr(args, tag), args.config, "--plan", args.plan,
                       "--batch", str(args.batch), "--seq-len",
                       str(args.seq_len), "-o", str(pathlib.Path(work) / tag)]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                elapsed = time.perf_counter() - t0
                if proc.returncode != 0:
                    sys.exit("compile_time: %s failed:\n%s" % (tag, proc.stderr))
                best[tag] = min(best[tag], elapsed)
    print("%s --plan %s --batch %d --seq-len %d: old %.2f s, new %.2f s "
          "(best of %d), new/old = %.2f" % (
              pathlib.Path(args.config).parent.name, args.plan, args.batch,
              args.seq_len, best["old"], best["new"], args.repeat,
              best["new"] / best["old"]))


if __name__ == "__main__":
    main()
