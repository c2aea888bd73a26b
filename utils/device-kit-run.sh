#!/usr/bin/env bash
#===- utils/device-kit-run.sh - the GPU checks, on a machine without LLVM ---===#
#
# Runs what utils/device-kit.sh prepared, on a machine with an NVIDIA GPU,
# its driver, cuBLAS 13, NCCL 2 and Python with PyTorch and numpy:
#
#   bash utils/device-kit-run.sh numerics   # the example models vs PyTorch
#   bash utils/device-kit-run.sh bench      # bench/cuda_moe_bench.py --run
#   bash utils/device-kit-run.sh all        # both
#   bash utils/device-kit-run.sh sanitize   # one model under compute-sanitizer
#
# Results go to $OUT (the device tool's folder) or to KIT/out: numerics.txt,
# bench.txt, sanitize.txt. Exits non-zero if a check fails. The kit's
# libraries are given to the compiled executables only
# (MOE_EXE_LIBRARY_PATH), not to Python and PyTorch.
#
# Environment: KIT (default .device-kit), PYTHON (default python3),
# BENCH_ARGS (more arguments for the bench, e.g. "--gemm bf16").
#
#===----------------------------------------------------------------------===#
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$(cd "${KIT:-$ROOT/.device-kit}" 2>/dev/null && pwd)" ||
  { echo "device-kit-run: no kit: run utils/device-kit.sh where the project builds" >&2; exit 2; }
PYTHON="${PYTHON:-python3}"
WHAT="${1:-all}"
RESULTS="${OUT:-$KIT/out}"
mkdir -p "$RESULTS"
case "$WHAT" in numerics|bench|all|sanitize) ;; *)
  echo "device-kit-run: expected numerics, bench, all or sanitize, got '$WHAT'" >&2; exit 2 ;;
esac
export PYTHONUNBUFFERED=1

# Which commit the kit was made from: a kit older than the checkout tests
# old code.
if [ -f "$KIT/REVISION" ]; then
  echo "device-kit-run: kit made from $(cat "$KIT/REVISION")"
  head="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)"
  if [ -n "$head" ] && [ "$head" != "$(cut -d' ' -f1 "$KIT/REVISION")" ]; then
    echo "device-kit-run: warning: the checkout is at $head; rebuild the kit (utils/device-kit.sh)"
  fi
fi

# The kit's libraries, unpacked (xz, or Python's lzma where xz is missing).
LIB="$(mktemp -d)"
cp -a "$KIT/lib/." "$LIB/"
for f in "$LIB"/*.xz; do
  [ -e "$f" ] || continue
  if command -v xz >/dev/null; then
    xz -d "$f"
  else
    "$PYTHON" -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as i, open(sys.argv[1][:-3], "wb") as o:
    shutil.copyfileobj(i, o)' "$f" && rm "$f"
  fi
done

# cuBLAS and NCCL of this machine (the toolkit's, or Python wheels').
EXTRA=""
for soname in libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
  if ! ldconfig -p | grep -q "$soname"; then
    path="$(find /usr/local /usr/lib /opt -name "$soname" 2>/dev/null | head -n1)"
    [ -n "$path" ] && EXTRA="$EXTRA:$(dirname "$path")"
  fi
done
export MOE_EXE_LIBRARY_PATH="$LIB$EXTRA"

nvidia-smi -L || { echo "device-kit-run: no GPU (nvidia-smi -L failed)" >&2; exit 2; }
nvidia-smi --query-gpu=name,compute_mode,memory.used,memory.total --format=csv || true
if LD_LIBRARY_PATH="$MOE_EXE_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    ldd "$LIB/libmoert_cuda.so" | grep "not found"; then
  echo "device-kit-run: libmoert_cuda.so has unresolved libraries (above)" >&2
  exit 2
fi

status=0
if [ "$WHAT" = sanitize ]; then
  # Out-of-bounds accesses and races of the kernels, on one small model,
  # with buffers freed at once (no cache hiding a use after free).
  sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n1)"
  if [ -z "$sanitizer" ]; then
    echo "device-kit-run: compute-sanitizer is neither on PATH nor in /usr/local/cuda*/bin" >&2
    exit 2
  fi
  export MOERT_CUDA_NO_CACHE=1
  : >"$RESULTS/sanitize.txt"
  for tool in memcheck racecheck; do
    wrapper="$LIB/sanitized-$tool"
    printf '#!/bin/sh\nexec "%s" --tool %s --error-exitcode 3 "%s" "$@"\n' \
      "$sanitizer" "$tool" "$KIT/models/mixtral-one-token" >"$wrapper"
    chmod +x "$wrapper"
    "$PYTHON" "$ROOT/utils/run-model.py" "$ROOT/examples/mixtral-tiny/config.json" \
      --target cuda --exe "$wrapper" --batch 1 --seq-len 1 --tol 1e-4 --seeds 6 \
      2>&1 | sed "s/^/$tool: /" | tee -a "$RESULTS/sanitize.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  done
  rm -rf "$LIB"
  exit "$status"
fi
if [ "$WHAT" != bench ]; then
  : >"$RESULTS/numerics.txt"
  # check LABEL: one model against PyTorch (reading /dev/null, not the rest
  # of models.txt); the variables are those of the models.txt line.
  check() {
    # shellcheck disable=SC2086
    "$PYTHON" "$ROOT/utils/run-model.py" "$ROOT/$config" --target cuda \
      --exe "$KIT/models/$name" --batch "$batch" --seq-len "$seq" \
      --tol "$tol" --seeds $seeds </dev/null 2>&1 | sed "s/^/$1: /" |
      tee -a "$RESULTS/numerics.txt"
    return "${PIPESTATUS[0]}"
  }
  while IFS='|' read -r name config batch seq tol gemm seeds; do
    if ! check "$name"; then
      status=1
      # Again with a wait after every launch and product: a pass now points
      # at a missing wait, a failure at the kernels or the products.
      MOERT_CUDA_SYNC=1 check "$name (MOERT_CUDA_SYNC=1)"
    fi
  done <"$KIT/models/models.txt"
fi
if [ "$WHAT" != numerics ]; then
  # shellcheck disable=SC2086
  "$PYTHON" "$ROOT/bench/cuda_moe_bench.py" --run "$KIT/bench" ${BENCH_ARGS:-} \
    2>&1 | tee "$RESULTS/bench.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
rm -rf "$LIB"
exit "$status"
