#!/usr/bin/env -S /usr/bin/python3
"""Greedy generation with the PyTorch reference (its own key/value cache):
prompt ids [B, S] -> ids [B, S + N] (and the logits of every step), the
semantics of a compiled executable's --generate (docs/Generation.md)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import (ArgumentParser, UserError, load_npy,  # noqa: E402
                               run_main, threads_from)

PROG = "generate.py"


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Generate N tokens greedily (argmax, the lowest id on a "
                    "tie) after each prompt with the float32 PyTorch "
                    "reference; write int64 ids [B, S + N].")
    ap.add_argument("--config", required=True, metavar="CONFIG.json")
    ap.add_argument("--weights", required=True, metavar="W.safetensors")
    ap.add_argument("--input", required=True, metavar="IDS.npy",
                    help="integer prompt ids [B, S], right-padded")
    ap.add_argument("--output", "-o", required=True, metavar="OUT.npy")
    ap.add_argument("--generate", type=int, required=True, metavar="N")
    ap.add_argument("--eos", type=int, default=None, metavar="ID")
    ap.add_argument("--lengths", metavar="L.npy",
                    help="integer prompt lengths [B] (default: all S)")
    ap.add_argument("--output-logits", metavar="LOGITS.npy",
                    help="also write the logits of every step [B, N, V]")
    ap.add_argument("--alone", action="store_true",
                    help="generate each prompt by itself (a batch of one)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    threads = threads_from(args.threads)

    import numpy as np
    from moe_reference.config import load_config
    from moe_reference import safetensors_np
    from moe_reference.weights import check_weights

    cfg = load_config(args.config)
    ids = load_npy(args.input, "token ids")
    if ids.dtype.kind not in "iu" or ids.ndim != 2:
        raise UserError("%s: token ids must be integers [B, S]" % args.input)
    B, S = ids.shape
    if args.generate < 1:
        raise UserError("--generate must be >= 1, got %d" % args.generate)
    lengths = [S] * B
    if args.lengths:
        lengths = load_npy(args.lengths, "prompt lengths")
        if lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > S:
            raise UserError("%s: prompt lengths must be [%d] in [1, %d]"
                            % (args.lengths, B, S))
        lengths = [int(x) for x in lengths]
    for b in range(B):
        row = ids[b, :lengths[b]]
        if row.min() < 0 or row.max() >= cfg.vocab_size:
            raise UserError("%s: token ids must lie in [0, %d)"
                            % (args.input, cfg.vocab_size))
    tensors = safetensors_np.load(args.weights)
    check_weights(cfg, tensors, args.weights)

    from moe_reference.models import MoEModel, generate, set_threads
    set_threads(threads)
    model = MoEModel(cfg, tensors, source=args.weights)
    out, logits = generate(model, ids, lengths, args.generate, args.eos,
                           alone=args.alone)
    np.save(args.output, out.astype(np.int64), allow_pickle=False)
    if args.output_logits:
        np.save(args.output_logits, logits.astype(np.float32),
                allow_pickle=False)
    return 0


if __name__ == "__main__":
    run_main(PROG, main)
