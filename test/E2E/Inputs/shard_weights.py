"""shard_weights.py IN OUT_PREFIX N [--duplicate NAME] [--drop NAME]

Splits a safetensors file into N shards OUT_PREFIX-0000i-of-0000N.safetensors
(tensors dealt round-robin in name order), as sharded Hugging Face
checkpoints are; --duplicate puts NAME in the first two shards, --drop leaves
NAME out.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "reference"))
from moe_reference import safetensors_np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("input")
ap.add_argument("prefix")
ap.add_argument("n", type=int)
ap.add_argument("--duplicate")
ap.add_argument("--drop")
args = ap.parse_args()
tensors = safetensors_np.load(args.input)
shards = [dict() for _ in range(args.n)]
for i, name in enumerate(sorted(tensors)):
    if name == args.drop:
        continue
    shards[i % args.n][name] = tensors[name]
if args.duplicate:
    shards[0][args.duplicate] = tensors[args.duplicate]
    shards[1][args.duplicate] = tensors[args.duplicate]
for i, shard in enumerate(shards):
    safetensors_np.save("%s-%05d-of-%05d.safetensors" % (args.prefix, i + 1, args.n),
                        shard)
