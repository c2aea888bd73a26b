#!/usr/bin/env -S /usr/bin/python3
"""Compare two .npy arrays: max_abs_err = max|a - b|,
max_rel_err = max|a - b| / max|b|  (B is the reference).  Exit 1 when the
shapes differ, either holds NaN/Inf where the other does not match, or
max_rel_err > --tol."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import (ArgumentParser, UserError, load_npy,  # noqa: E402
                               run_main)

PROG = "compare.py"


def errors(a, b):
    """(max_abs_err, max_rel_err) of a against reference b (float64)."""
    import numpy as np
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0, 0.0
    diff = np.abs(a - b)
    # Equal non-finite values (inf == inf) count as no error; NaN anywhere
    # (or inf against a different value) is an infinite error.
    same = (a == b)
    diff = np.where(same, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    max_abs = float(diff.max())
    finite_b = np.abs(b[np.isfinite(b)])
    max_b = float(finite_b.max()) if finite_b.size else 0.0
    if max_abs == 0.0:
        max_rel = 0.0
    elif max_b == 0.0:
        max_rel = float("inf")
    else:
        max_rel = max_abs / max_b
    return max_abs, max_rel


def load(path):
    a = load_npy(path)
    if a.dtype.kind not in "fiub":
        raise UserError("%s: unsupported dtype %s" % (path, a.dtype))
    return a


def main():
    import argparse
    ap = ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare A.npy against the reference B.npy; prints\n"
                    "  max_abs_err = max|A-B|\n"
                    "  max_rel_err = max|A-B| / max|B|\n"
                    "(max over all elements, in float64; 0 when A == B "
                    "exactly).\nExits 1 if the shapes differ, or "
                    "max_rel_err > --tol (NaN counts as inf).")
    ap.add_argument("a", metavar="A.npy", help="array under test")
    ap.add_argument("b", metavar="B.npy", help="reference array")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="largest accepted max_rel_err (default 1e-5)")
    args = ap.parse_args()
    if not args.tol >= 0:
        raise UserError("--tol must be >= 0, got %r" % args.tol)
    a, b = load(args.a), load(args.b)
    if a.shape != b.shape:
        print("shape mismatch: %s has shape %s, %s has shape %s"
              % (args.a, list(a.shape), args.b, list(b.shape)))
        return 1
    max_abs, max_rel = errors(a, b)
    print("max_abs_err=%.6e, max_rel_err=%.6e" % (max_abs, max_rel))
    if not max_rel <= args.tol:
        print("FAIL: max_rel_err %.6e > tol %.6e" % (max_rel, args.tol))
        return 1
    print("PASS (tol %.6e)" % args.tol)
    return 0


if __name__ == "__main__":
    run_main(PROG, main)
