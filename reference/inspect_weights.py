#!/usr/bin/env -S /usr/bin/python3
"""List the tensors of .safetensors files (validating each strictly) and,
with --config, check names and shapes against the architecture."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_reference.cli import ArgumentParser, run_main  # noqa: E402

PROG = "inspect_weights.py"


def inspect(path, cfg, quiet):
    from moe_reference import safetensors_np
    from moe_reference.weights import check_weights
    tensors, meta, dtypes = safetensors_np.load_file(path)
    if not quiet:
        for k in sorted(meta):
            print("metadata %s = %s" % (k, meta[k]))
        for name in sorted(tensors):
            print("%s %s %s" % (name, dtypes[name], list(tensors[name].shape)))
    nbytes = sum(t.size * safetensors_np.DTYPES[dtypes[n]].itemsize
                 for n, t in tensors.items())
    print("%d tensors, %d bytes of data" % (len(tensors), nbytes))
    if cfg is not None:
        check_weights(cfg, tensors, path)
        print("matches %s" % cfg.architecture)


def main():
    ap = ArgumentParser(
        prog=PROG,
        description="Validate .safetensors files and list their tensors "
                    "(name, dtype, shape); with --config also check that "
                    "each holds exactly the tensors of that model. Exits 1 "
                    "if any file is invalid (one error line per file).")
    ap.add_argument("weights", nargs="+", metavar="W.safetensors")
    ap.add_argument("--config", metavar="CONFIG.json")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="print only the summary line of each file")
    args = ap.parse_args()
    from moe_reference.config import load_config
    from moe_reference.safetensors_np import SafetensorsError
    from moe_reference.weights import WeightsError
    cfg = load_config(args.config) if args.config else None
    bad = 0
    for path in args.weights:
        try:
            inspect(path, cfg, args.quiet)
        except (SafetensorsError, WeightsError) as e:
            sys.stdout.flush()
            sys.stderr.write("%s: error: %s\n" % (PROG, e))
            sys.stderr.flush()
            bad += 1
        sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    run_main(PROG, main)
