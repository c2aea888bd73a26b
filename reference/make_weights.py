#!/usr/bin/env -S /usr/bin/python3
"""Write deterministic random weights (Hugging Face tensor names) for a config.

Every tensor is drawn from one numpy Generator(PCG64(seed)) in a fixed order,
so the same config, seed and dtype always give byte-identical files.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import ArgumentParser, UserError, run_main  # noqa: E402

PROG = "make_weights.py"
DTYPES = {"f32": "F32", "bf16": "BF16", "f16": "F16"}


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Write deterministic random weights (HF names) for a "
                    "MoE config as a .safetensors file.")
    ap.add_argument("--config", required=True, metavar="CONFIG.json",
                    help="HF-style config.json")
    ap.add_argument("--seed", required=True, type=int,
                    help="seed of numpy's Generator(PCG64(seed)), >= 0")
    ap.add_argument("-o", "--output", required=True, metavar="W.safetensors",
                    help="weights file to write")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32",
                    help="storage type of the weights (default f32); bf16 "
                         "rounds to nearest even")
    ap.add_argument("--with-lm-head", action="store_true",
                    help="also write lm_head.weight [vocab, hidden] (drawn "
                         "last: the other tensors do not change)")
    ap.add_argument("--random-ids", nargs=2, type=int, metavar=("B", "S"),
                    help="also write random token ids [B, S] (needs "
                         "--ids-out); same as make_ids.py with this seed")
    ap.add_argument("--ids-out", metavar="IDS.npy",
                    help="where --random-ids writes the int64 ids")
    args = ap.parse_args()
    if args.seed < 0:
        raise UserError("--seed must be >= 0, got %d" % args.seed)
    if (args.random_ids is None) != (args.ids_out is None):
        raise UserError("--random-ids B S and --ids-out go together")
    if args.random_ids is not None and min(args.random_ids) <= 0:
        raise UserError("--random-ids B S must be positive, got %d %d"
                        % tuple(args.random_ids))

    from moe_reference.config import load_config
    from moe_reference import safetensors_np
    from moe_reference.weights import random_ids, random_weights

    cfg = load_config(args.config)
    tensors = random_weights(cfg, args.seed, with_lm_head=args.with_lm_head)
    meta = {"format": "pt",
            "moe_reference.architecture": cfg.architecture,
            "moe_reference.seed": str(args.seed)}
    safetensors_np.save(args.output, tensors, metadata=meta,
                        dtype=DTYPES[args.dtype])
    if args.random_ids is not None:
        import numpy as np
        ids = random_ids(cfg.vocab_size, args.random_ids[0],
                         args.random_ids[1], args.seed)
        np.save(args.ids_out, ids, allow_pickle=False)
    return 0


if __name__ == "__main__":
    run_main(PROG, main)
