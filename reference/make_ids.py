#!/usr/bin/env -S /usr/bin/python3
"""Write deterministic random token ids: int64 [B, S] in [0, vocab)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import ArgumentParser, UserError, run_main  # noqa: E402

PROG = "make_ids.py"


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Write random int64 token ids [B, S], uniform in "
                    "[0, vocab), drawn from numpy Generator(PCG64(seed)).")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="CONFIG.json",
                     help="take vocab_size from this config")
    src.add_argument("--vocab", type=int, help="vocabulary size")
    ap.add_argument("--batch", "-B", type=int, required=True, help="B")
    ap.add_argument("--seq", "-S", type=int, required=True, help="S")
    ap.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ap.add_argument("-o", "--output", required=True, metavar="IDS.npy")
    args = ap.parse_args()
    if args.batch <= 0 or args.seq <= 0:
        raise UserError("--batch and --seq must be positive")
    if args.seed < 0:
        raise UserError("--seed must be >= 0, got %d" % args.seed)
    if args.config is not None:
        from moe_reference.config import load_config
        vocab = load_config(args.config).vocab_size
    else:
        vocab = args.vocab
        if vocab <= 0:
            raise UserError("--vocab must be positive, got %d" % vocab)
    import numpy as np
    from moe_reference.weights import random_ids
    np.save(args.output, random_ids(vocab, args.batch, args.seq, args.seed),
            allow_pickle=False)
    return 0


if __name__ == "__main__":
    run_main(PROG, main)
