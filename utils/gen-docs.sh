#!/usr/bin/env bash
#===- utils/gen-docs.sh - refresh docs/generated from ODS -----------------===#
#
# Builds the `mlir-doc` target and copies the pages generated from the .td
# files into docs/generated/. test/Docs/generated-docs.test fails when the
# committed copies are stale, so run this after changing any .td file.
#
#===----------------------------------------------------------------------===#
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ninja -C "$BUILD_DIR" mlir-doc >/dev/null
mkdir -p "$ROOT/docs/generated"
cp "$BUILD_DIR/docs/Dialects/MoEOps.md" "$BUILD_DIR/docs/Dialects/MoEAttrs.md" \
   "$BUILD_DIR/docs/Dialects/MoETypes.md" \
   "$BUILD_DIR/docs/MoEPasses.md" "$BUILD_DIR/docs/MoEConversionPasses.md" \
   "$BUILD_DIR/docs/MoECodegenPasses.md" \
   "$ROOT/docs/generated/"
echo "gen-docs: refreshed docs/generated/"
