#!/usr/bin/env bash
#===- utils/device-kit-run.sh - the GPU checks, on a machine without LLVM ---===#
#
# Runs what utils/device-kit.sh prepared, on a machine with an NVIDIA GPU,
# its driver, cuBLAS 13, NCCL 2 and Python with PyTorch and numpy:
#
#   bash utils/device-kit-run.sh numerics   # the example models vs PyTorch
#   bash utils/device-kit-run.sh bench      # bench/cuda_moe_bench.py --run
#   bash utils/device-kit-run.sh all        # both
#
# Results go to $OUT (the device tool's folder) or to KIT/out: numerics.txt
# and bench.txt. Exits non-zero if a check fails.
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
case "$WHAT" in numerics|bench|all) ;; *)
  echo "device-kit-run: expected numerics, bench or all, got '$WHAT'" >&2; exit 2 ;;
esac

# The kit's libraries, unpacked.
LIB="$(mktemp -d)"
cp -a "$KIT/lib/." "$LIB/"
for f in "$LIB"/*.xz; do [ -e "$f" ] && xz -d "$f"; done

# cuBLAS and NCCL of this machine (the toolkit's, or Python wheels').
EXTRA=""
for soname in libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
  if ! ldconfig -p | grep -q "$soname"; then
    path="$(find /usr/local /usr/lib /opt -name "$soname" 2>/dev/null | head -n1)"
    [ -n "$path" ] && EXTRA="$EXTRA:$(dirname "$path")"
  fi
done
export LD_LIBRARY_PATH="$LIB$EXTRA${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

nvidia-smi -L || { echo "device-kit-run: no GPU (nvidia-smi -L failed)" >&2; exit 2; }
if ldd "$LIB/libmoert_cuda.so" | grep "not found"; then
  echo "device-kit-run: libmoert_cuda.so has unresolved libraries (above)" >&2
  exit 2
fi

status=0
if [ "$WHAT" != bench ]; then
  : >"$RESULTS/numerics.txt"
  while IFS='|' read -r name config batch seq tol gemm seeds; do
    # shellcheck disable=SC2086
    "$PYTHON" "$ROOT/utils/run-model.py" "$ROOT/$config" --target cuda \
      --exe "$KIT/models/$name" --batch "$batch" --seq-len "$seq" \
      --tol "$tol" --seeds $seeds 2>&1 | sed "s/^/$name: /" |
      tee -a "$RESULTS/numerics.txt"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
      status=1
      # Again with a wait after every launch and product: a pass now points
      # at a missing wait, a failure at the kernels or the products.
      # shellcheck disable=SC2086
      MOERT_CUDA_SYNC=1 "$PYTHON" "$ROOT/utils/run-model.py" "$ROOT/$config" \
        --target cuda --exe "$KIT/models/$name" --batch "$batch" \
        --seq-len "$seq" --tol "$tol" --seeds $seeds 2>&1 |
        sed "s/^/$name (MOERT_CUDA_SYNC=1): /" | tee -a "$RESULTS/numerics.txt"
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
