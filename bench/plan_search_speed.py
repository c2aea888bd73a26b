#!/usr/bin/env -S /usr/bin/python3
"""How long `moe-compile --plan auto` takes to plan a large model.

A 64-layer MoE decoder with 256 experts (top-8, examples/planner/
moe-64l-256e.json) on 1024 devices: 128 nodes of 8 H100 (a cluster file
written here from the h100x8 preset's figures). The time is the whole
moe-compile run up to the printed report (process start, config parsing,
enumeration, one estimate per plan, ranking, report); best of --repeats runs.

usage: plan_search_speed.py [--repeats 5] [--build build]
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--build", default=str(ROOT / "build"))
    args = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="moe-plan-speed-"))
    cluster = work / "h100x8x128.json"
    cluster.write_text(json.dumps({
        "name": "h100x8x128", "nodes": 128, "devices_per_node": 8,
        "device": {"memory_gib": 80, "peak_tflops": {"f32": 67, "bf16": 989},
                   "memory_bandwidth_gbs": 3350},
        "intra_node": {"bandwidth_gbs": 450, "latency_us": 3},
        "inter_node": {"bandwidth_gbs": 50, "latency_us": 6},
        "host_device_bandwidth_gbs": 55}))
    cmd = [str(pathlib.Path(args.build) / "bin" / "moe-compile"),
           str(ROOT / "examples" / "planner" / "moe-64l-256e.json"),
           "--plan", "auto", "--cluster", str(cluster), "--batch", "1024",
           "--seq-len", "4096", "--explain-plan", "--plan-top", "5"]
    best, out = float("inf"), ""
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
        if proc.returncode != 0:
            sys.exit("plan_search_speed: moe-compile failed:\n" + proc.stderr)
        out = proc.stdout
    report = out.split("\nplan #moe.plan")[0]
    print(report.rstrip())
    print()
    print("search for 64 layers, 256 experts over 1024 devices: %.3f s "
          "(best of %d runs of moe-compile --plan auto --explain-plan; goal "
          "<= 1 s)" % (best, args.repeats))


if __name__ == "__main__":
    main()
