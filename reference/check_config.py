#!/usr/bin/env -S /usr/bin/python3
"""Validate config.json files and print what the reference derives from them
(architecture, attention shape, MoE routing, expert capacity rule)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import ArgumentParser, run_main  # noqa: E402

PROG = "check_config.py"


def describe(path, cfg):
    m = cfg.moe
    print("%s: %s" % (path, cfg.architecture))
    print("  vocab %d, hidden %d, layers %d, heads %d (kv %d, head_dim %d), "
          "rms_norm_eps %g, rope_theta %g%s"
          % (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers,
             cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
             cfg.rms_norm_eps, cfg.rope_theta,
             ", qkv bias" if cfg.attention_bias else ""))
    act = {"silu_glu": "SwiGLU", "relu": "ReLU"}[m.activation]
    line = ("  moe: %d experts, top-%d %s%s, %s experts F=%d"
            % (m.num_experts, m.top_k, m.score,
               " renormalized" if m.renormalize else "", act,
               m.intermediate_size))
    if cfg.architecture == "ScMoeForCausalLM":
        line += (", in the odd layers of dense/MoE pairs, on the shortcut "
                 "(the even layer's MLP input); dense MLP and shared expert "
                 "F=%d" % m.shared_intermediate_size)
    elif m.shared_intermediate_size:
        line += ", sigmoid-gated shared expert F=%d" % m.shared_intermediate_size
    print(line)
    if m.capacity_factor is None:
        print("  capacity: dropless")
    else:
        print("  capacity: C = ceil(%g * T * %d / %d)"
              % (m.capacity_factor, m.top_k, m.num_experts))


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Validate HF-style config.json files for the MoE "
                    "reference and print what is derived from each. Exits 1 "
                    "if any is invalid (one error line per invalid file).")
    ap.add_argument("configs", nargs="+", metavar="CONFIG.json")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="print errors only")
    args = ap.parse_args()
    from moe_reference.config import ConfigError, load_config
    bad = 0
    for path in args.configs:
        try:
            cfg = load_config(path)
        except ConfigError as e:
            sys.stdout.flush()
            sys.stderr.write("%s: error: %s\n" % (PROG, e))
            sys.stderr.flush()
            bad += 1
            continue
        if not args.quiet:
            describe(path, cfg)
            sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    run_main(PROG, main)
