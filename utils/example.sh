#!/usr/bin/env bash
#===- utils/example.sh - README command (a): the main job on its default ---===#
#
# Bootstraps (installs what is missing, configures, builds), then compiles
# examples/mixtral-tiny (or the config given) with moe-compile for the CPU,
# runs the executable on random weights and token ids, and prints the check
# against the PyTorch reference and the time per forward pass.
#
#===----------------------------------------------------------------------===#
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
CONFIG="${1:-$ROOT/examples/mixtral-tiny/config.json}"

"$ROOT/utils/bootstrap.sh" >&2
echo "example: moe-compile $CONFIG --target cpu, run, compare with PyTorch" >&2
exec /usr/bin/python3 "$ROOT/utils/run-model.py" "$CONFIG" --build "$BUILD_DIR" \
  --seeds 1 --batch 2 --seq-len 8 --iters 10
