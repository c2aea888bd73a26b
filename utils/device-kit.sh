#!/usr/bin/env bash
#===- utils/device-kit.sh - what a GPU machine needs to run our GPU checks -===#
#
# The GPU machines this project borrows (the `device` tool) have the CUDA
# driver, cuBLAS, NCCL, Python with PyTorch and numpy, but not this project's
# LLVM/MLIR, so moe-compile cannot run there. This script, run where the
# project builds, makes a folder that can travel instead:
#
#   models/    the example models compiled with --target cuda, and
#              models.txt: how utils/run-model.py checks each against PyTorch
#              (the runs of test/Integration/cuda-models.test);
#   bench/     bench/cuda_moe_bench.py --prepare: the Mixtral-shape MoE layer
#              harnesses for each token count;
#   lib/       libmoert_cuda and the libraries it needs that a CUDA image may
#              lack (MPICH, OpenBLAS, ...), xz-compressed when large;
#
# and utils/device-kit-run.sh runs it there:
#
#   utils/device-kit.sh                       # makes .device-kit/ (ignored)
#   device run: bash utils/device-kit-run.sh all     (carry: .device-kit)
#
# Environment: BUILD_DIR (default build), KIT (default .device-kit),
# BENCH_TOKENS (default "1 16 256 1024 4096").
#
#===----------------------------------------------------------------------===#
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
KIT="${KIT:-$ROOT/.device-kit}"
BENCH_TOKENS="${BENCH_TOKENS:-1 16 256 1024 4096}"
COMPILER="$BUILD_DIR/bin/moe-compile"
RUNTIME="$BUILD_DIR/lib/libmoert_cuda.so"

fail() { echo "device-kit: error: $*" >&2; exit 1; }
[ -x "$COMPILER" ] || fail "$COMPILER not found: build first (utils/bootstrap.sh)"
[ -e "$RUNTIME" ] || fail "$RUNTIME not found: the build did not find the CUDA toolkit (docs/Cuda.md)"

rm -rf "$KIT"
mkdir -p "$KIT/models" "$KIT/lib"
# The commit (and whether the tree had changes) the kit is made from.
{ git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown; } | tr -d '\n' >"$KIT/REVISION"
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo " (with uncommitted changes)" >>"$KIT/REVISION"
else
  echo >>"$KIT/REVISION"
fi

# name | config | batch | seq-len | tolerance | --cuda-gemm | seeds
MODELS=(
  "mixtral-f32|examples/mixtral-tiny/config.json|2|16|1e-4|f32|1 2"
  "qwen-f32|examples/qwen-moe-tiny/config.json|2|16|1e-4|f32|3"
  "switch-f32|examples/switch-tiny/config.json|2|16|1e-4|f32|4"
  "mixtral-bf16|examples/mixtral-tiny/config.json|2|16|5e-2|bf16|5"
  "mixtral-one-token|examples/mixtral-tiny/config.json|1|1|1e-4|f32|6"
)
: >"$KIT/models/models.txt"
for entry in "${MODELS[@]}"; do
  IFS='|' read -r name config batch seq tol gemm seeds <<<"$entry"
  echo "device-kit: compiling $name"
  "$COMPILER" "$ROOT/$config" --target cuda --cuda-gemm "$gemm" \
    --batch "$batch" --seq-len "$seq" -o "$KIT/models/$name"
  echo "$entry" >>"$KIT/models/models.txt"
done

echo "device-kit: preparing the bench (T = $BENCH_TOKENS)"
# shellcheck disable=SC2086
/usr/bin/python3 "$ROOT/bench/cuda_moe_bench.py" --build "$BUILD_DIR" \
  --prepare "$KIT/bench" --tokens $BENCH_TOKENS

# The runtime and its dependencies, but not the C library, the compiler's
# support libraries or CUDA's own (cuBLAS, NCCL, the driver): those come from
# the GPU machine, which must have versions that match its driver.
cp -a "$BUILD_DIR"/lib/libmoert_cuda.so* "$KIT/lib/"
ldd "$RUNTIME" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
  while read -r soname path; do
    case "$soname" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*) ;;
      libgcc_s.so*|libstdc++.so*) ;;
      libcublas*|libnccl*|libcuda.so*|libcudart*|libculibos*) ;;
      *)
        if [ "$(stat -L -c %s "$path")" -gt 4000000 ]; then
          xz -T2 -6 -c "$path" >"$KIT/lib/$soname.xz"
        else
          cp -L "$path" "$KIT/lib/$soname"
        fi ;;
    esac
  done

echo "device-kit: $KIT ($(du -sh "$KIT" | cut -f1)): carry it and run" \
  "'bash utils/device-kit-run.sh all' on the GPU machine"
