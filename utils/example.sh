#!/usr/bin/env bash
#===- utils/example.sh - README command (a): the main job on its default ---===#
#
# Bootstraps (installs what is missing, configures, builds), then runs the
# example pipeline on examples/mlir/mixtral-block.mlir (or the file given) and
# prints the result: every moe.layer decomposed into router, dispatch,
# experts and combine.
#
#===----------------------------------------------------------------------===#
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
INPUT="${1:-$ROOT/examples/mlir/mixtral-block.mlir}"

"$ROOT/utils/bootstrap.sh" >&2
echo "example: moe-opt --moe-example-pipeline $INPUT" >&2
"$BUILD_DIR/bin/moe-opt" --moe-example-pipeline "$INPUT"
