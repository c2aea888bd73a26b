#!/usr/bin/env -S /usr/bin/python3
"""Compare generated ids (and logits) against a reference generation.

A greedy step whose two best reference logits are closer than --margin
(relative to the largest |logit| of the step) is a near tie: rounding alone
may pick either token, and every later step depends on the pick. So each
row is compared up to and including its first near tie only: the ids must
be equal there, and the logits of those steps within --tol relative
(max|a - b| / max|b| per step). Rows past their prompt and generated
tokens must agree exactly (padding -1, eos). Prints one line per row and
PASS or FAIL; exits 1 on FAIL."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import (ArgumentParser, UserError, load_npy,  # noqa: E402
                               run_main)

PROG = "compare_generation.py"


def main():
    ap = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("ids", metavar="IDS.npy", help="ids under test [B, S+N]")
    ap.add_argument("ref_ids", metavar="REF_IDS.npy")
    ap.add_argument("ref_logits", metavar="REF_LOGITS.npy",
                    help="the reference's logits [B, N, V]")
    ap.add_argument("--logits", metavar="LOGITS.npy",
                    help="logits under test [B, N, V], compared too")
    ap.add_argument("--prompt-len", type=int, required=True, metavar="S")
    ap.add_argument("--lengths", metavar="L.npy")
    ap.add_argument("--margin", type=float, default=1e-4)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    import numpy as np
    ids, ref = load_npy(args.ids), load_npy(args.ref_ids)
    ref_logits = load_npy(args.ref_logits).astype(np.float64)
    logits = load_npy(args.logits).astype(np.float64) if args.logits else None
    if ids.shape != ref.shape:
        raise UserError("shapes differ: %s vs %s" % (ids.shape, ref.shape))
    B, W = ids.shape
    S = args.prompt_len
    N = W - S
    if ref_logits.shape[:2] != (B, N) or (logits is not None and
                                          logits.shape != ref_logits.shape):
        raise UserError("logits must be [%d, %d, V]" % (B, N))
    lengths = ([S] * B if not args.lengths else
               [int(x) for x in load_npy(args.lengths)])
    ok = True
    for b in range(B):
        compared, worst, tie = 0, 0.0, None
        for t in range(N):
            step = ref_logits[b, t]
            if not np.all(np.isfinite(step)):
                break                       # every row had ended
            top2 = np.sort(step)[-2:]
            scale = max(np.abs(step).max(), 1e-30)
            if logits is not None:
                err = np.abs(logits[b, t] - step).max() / scale
                worst = max(worst, err)
            compared += 1
            if (top2[1] - top2[0]) / scale <= args.margin:
                tie = t
                break
        end = lengths[b] + compared
        same_ids = np.array_equal(ids[b, :end], ref[b, :end])
        if tie is None:
            same_ids = same_ids and np.array_equal(ids[b], ref[b])
        row_ok = same_ids and worst <= args.tol
        ok &= row_ok
        print("row %d: %d of %d steps compared%s; ids %s; logits max_rel_err "
              "%.3g" % (b, compared, N,
                        " (near tie at step %d)" % tie if tie is not None
                        else "", "equal" if same_ids else "DIFFER", worst))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    run_main(PROG, main)
