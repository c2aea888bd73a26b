#!/usr/bin/env -S /usr/bin/python3
"""Run the PyTorch reference forward: token ids -> hidden states (or logits)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import (ArgumentParser, UserError, load_npy,  # noqa: E402
                               run_main, threads_from)

PROG = "run_reference.py"


def load_ids(path):
    import numpy as np
    ids = load_npy(path, "token ids")
    if ids.dtype.kind not in "iu":
        raise UserError("%s: token ids must be integers, got %s"
                        % (path, ids.dtype))
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise UserError("%s: token ids must have shape [B, S] with B, S > 0, "
                        "got %s" % (path, list(ids.shape)))
    return ids.astype(np.int64)


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Run the float32 PyTorch reference of a MoE model on "
                    "token ids; write the final hidden states [B, S, H] (or "
                    "the logits [B, S, V]) as a float32 .npy.")
    ap.add_argument("--config", required=True, metavar="CONFIG.json")
    ap.add_argument("--weights", required=True, metavar="W.safetensors")
    ap.add_argument("--input", required=True, metavar="IDS.npy",
                    help="integer token ids [B, S]")
    ap.add_argument("--output", "-o", required=True, metavar="OUT.npy")
    ap.add_argument("--logits", action="store_true",
                    help="write logits (needs lm_head.weight, or "
                         "tie_word_embeddings) instead of hidden states")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: $MOE_REF_THREADS, "
                         "else torch's default)")
    args = ap.parse_args()
    threads = threads_from(args.threads)

    import numpy as np
    from moe_reference.config import load_config
    from moe_reference import safetensors_np
    from moe_reference.weights import LM_HEAD, check_weights

    cfg = load_config(args.config)
    ids = load_ids(args.input)
    if ids.min() < 0 or ids.max() >= cfg.vocab_size:
        raise UserError("%s: token ids must lie in [0, %d), found %d..%d"
                        % (args.input, cfg.vocab_size, ids.min(), ids.max()))
    tensors = safetensors_np.load(args.weights)
    # Validate before importing torch (slow), so bad input fails fast.
    check_weights(cfg, tensors, args.weights)
    if args.logits and LM_HEAD not in tensors and not cfg.tie_word_embeddings:
        raise UserError("%s: --logits needs '%s' (make_weights.py "
                        "--with-lm-head) or tie_word_embeddings: true"
                        % (args.weights, LM_HEAD))

    from moe_reference.models import MoEModel, set_threads
    set_threads(threads)
    model = MoEModel(cfg, tensors, source=args.weights)
    out = model.forward(ids, return_logits=args.logits)
    np.save(args.output, out.numpy().astype(np.float32), allow_pickle=False)
    return 0


if __name__ == "__main__":
    run_main(PROG, main)
