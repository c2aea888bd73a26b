#!/usr/bin/env -S /usr/bin/python3
"""Greedy generation with Hugging Face transformers' own model classes
(MixtralForCausalLM, Qwen2MoeForCausalLM) on our safetensors:
``model.generate(do_sample=False)`` with its key/value cache, the outside
reference for a compiled executable's --generate (docs/Generation.md).

Needs transformers 4.40.x on the path (utils/bootstrap.sh installs it under
build/python-deps; run with PYTHONPATH=build/python-deps)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import (ArgumentParser, UserError, load_npy,  # noqa: E402
                               run_main, threads_from)

PROG = "hf_generate.py"


def legacy_window(config, path):
    """Sliding windows in the current definition (a query at i attends to
    the keys i - window < j <= i; Qwen2-MoE windows only with
    use_sliding_window, from layer max_window_layers on). transformers
    without masking_utils (4.40) builds its eager mask from
    ``sliding_window`` with one key more (i - window <= j), and for
    Qwen2-MoE on every layer whatever use_sliding_window says: give it the
    window that admits the same keys, or say why none does."""
    import importlib.util
    if importlib.util.find_spec("transformers.masking_utils") is not None:
        return
    from moe_reference.config import load_config
    ours = load_config(path)
    if ours.sliding_window is None:
        config.sliding_window = None
        return
    if not all(ours.windowed_layers):
        raise UserError("%s: this transformers windows every layer; only "
                        "configs that window them all compare" % path)
    if ours.sliding_window < 2:
        raise UserError("%s: this transformers admits sliding_window + 1 "
                        "keys and cannot express a window of 1" % path)
    config.sliding_window = ours.sliding_window - 1


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Generate N tokens greedily after each prompt with "
                    "Hugging Face transformers; write int64 ids [B, S + N] "
                    "and the logits of every step [B, N, V].")
    ap.add_argument("--config", required=True, metavar="CONFIG.json")
    ap.add_argument("--weights", required=True, metavar="W.safetensors")
    ap.add_argument("--input", required=True, metavar="IDS.npy",
                    help="integer prompt ids [B, S] (no padding)")
    ap.add_argument("--output", "-o", required=True, metavar="OUT.npy")
    ap.add_argument("--output-logits", required=True, metavar="LOGITS.npy")
    ap.add_argument("--generate", type=int, required=True, metavar="N")
    ap.add_argument("--eos", type=int, default=None, metavar="ID")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    threads = threads_from(args.threads)
    if args.generate < 1:
        raise UserError("--generate must be >= 1, got %d" % args.generate)

    import numpy as np
    try:
        import torch
        import transformers
    except ImportError as e:
        raise UserError("needs transformers (utils/bootstrap.sh installs it "
                        "under build/python-deps): %s" % e)
    from moe_reference import safetensors_np
    if threads:
        torch.set_num_threads(threads)

    with open(args.config) as f:
        raw = json.load(f)
    classes = {"mixtral": transformers.MixtralForCausalLM,
               "qwen2_moe": transformers.Qwen2MoeForCausalLM}
    kind = raw.get("model_type")
    if kind not in classes:
        raise UserError("%s: model_type %r has no Hugging Face class here "
                        "(mixtral, qwen2_moe)" % (args.config, kind))
    config = transformers.AutoConfig.for_model(**raw)
    config._attn_implementation = "eager"
    legacy_window(config, args.config)
    torch.manual_seed(0)
    model = classes[kind](config).eval().to(torch.float32)
    tensors = safetensors_np.load(args.weights)
    state = {n: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
             for n, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [n for n in missing
               if not (n == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise UserError("%s does not fit %s: missing %s, unexpected %s"
                        % (args.weights, kind, missing[:3], unexpected[:3]))
    if config.tie_word_embeddings:
        model.tie_weights()

    ids = torch.from_numpy(load_npy(args.input, "token ids").astype(np.int64))
    eos = args.eos
    gen = model.generation_config
    gen.eos_token_id = eos
    gen.pad_token_id = eos if eos is not None else 0
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False,
            max_new_tokens=args.generate, min_new_tokens=0,
            output_logits=True, return_dict_in_generate=True,
            use_cache=True)
    seq = out.sequences.numpy()
    B, S = ids.shape
    N = args.generate
    result = np.full((B, S + N), eos if eos is not None else -1,
                     dtype=np.int64)
    result[:, :seq.shape[1]] = seq
    logits = np.full((B, N, config.vocab_size), np.nan, dtype=np.float32)
    for t, step in enumerate(out.logits):
        logits[:, t] = step.float().numpy()
    np.save(args.output, result, allow_pickle=False)
    np.save(args.output_logits, logits, allow_pickle=False)
    print("transformers %s: %s, %d steps" % (transformers.__version__,
                                             type(model).__name__,
                                             len(out.logits)))
    return 0


if __name__ == "__main__":
    run_main(PROG, main)
