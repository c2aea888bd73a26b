#!/usr/bin/env python3
"""Feeds moe-opt truncated and garbled copies of an .mlir file, and every
split of a -split-input-file file on its own, and fails if any run ends in a
signal (a crash) or an exit code other than 0 or 1, or if a rejected input
printed no diagnostic.

usage: mangle.py MOE_OPT VALID.mlir [--splits INVALID.mlir] [--variants N]
         [--args "--moe-shard --moe-partition"]
"""
import argparse
import random
import subprocess
import sys


EXTRA_ARGS = []


def run(moe_opt, text, what):
    proc = subprocess.run([moe_opt, "-", "-o", "/dev/null"] + EXTRA_ARGS,
                          input=text.encode("utf-8", "surrogateescape"),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=60)
    if proc.returncode < 0 or proc.returncode not in (0, 1):
        sys.stderr.write(f"FAIL: {what}: exit code {proc.returncode}\n"
                         f"{proc.stderr.decode(errors='replace')[-2000:]}\n"
                         f"--- input ---\n{text}\n")
        return False
    if proc.returncode == 1 and b"error" not in proc.stderr:
        sys.stderr.write(f"FAIL: {what}: rejected without a diagnostic\n")
        return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("moe_opt")
    parser.add_argument("valid")
    parser.add_argument("--splits")
    parser.add_argument("--variants", type=int, default=120)
    parser.add_argument("--args", default="",
                        help="moe-opt flags (passes) to run on every input")
    args = parser.parse_args()
    EXTRA_ARGS.extend(args.args.split())

    text = open(args.valid, encoding="utf-8").read()
    rng = random.Random(20261123)  # deterministic: a failure reproduces
    ok = True
    runs = 0

    # Truncations at evenly spread points, plus just before each op.
    cuts = {len(text) * i // args.variants for i in range(1, args.variants)}
    cuts |= {i for i in range(len(text)) if text.startswith("moe.", i)}
    for cut in sorted(cuts):
        ok &= run(args.moe_opt, text[:cut], f"truncated at byte {cut}")
        runs += 1

    # Garbles: replace, delete or duplicate a few characters.
    alphabet = "%<>()[]{},:=x0123456789?-#@ \n" + "abcdefghijklmnopqrstuvwyz"
    for i in range(args.variants):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            kind = rng.randrange(3)
            if kind == 0:
                chars[pos] = rng.choice(alphabet)
            elif kind == 1:
                del chars[pos]
            else:
                chars.insert(pos, chars[pos])
        ok &= run(args.moe_opt, "".join(chars), f"garble #{i}")
        runs += 1

    # Each negative case alone, verified without -verify-diagnostics: it must
    # be rejected with a diagnostic, never crash.
    if args.splits:
        cases = open(args.splits, encoding="utf-8").read().split("// -----")
        for i, case in enumerate(cases):
            proc_ok = run(args.moe_opt, case, f"split #{i} of {args.splits}")
            ok &= proc_ok
            runs += 1

    print(f"moe-opt robustness: {runs} inputs, {'all' if ok else 'NOT all'} "
          "handled without a crash")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
