#!/usr/bin/env bash
#===- utils/bootstrap.sh - install what is missing, configure, build -------===#
#
# Idempotent: installs (apt-get, --no-install-recommends) only the Debian
# packages that are missing, configures build/ once, then builds with ninja.
# A second run does no installs and an incremental (usually empty) build.
#
# Environment:
#   BUILD_DIR   build directory (default: build)
#   JOBS        parallel build jobs (default: 2)
#
#===----------------------------------------------------------------------===#
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-2}"
LLVM_MAJOR="$(head -n1 "$ROOT/llvm_version.txt")"

PACKAGES=(
  "llvm-${LLVM_MAJOR}-dev" "libmlir-${LLVM_MAJOR}-dev" "mlir-${LLVM_MAJOR}-tools"
  "llvm-${LLVM_MAJOR}-tools" "clang-${LLVM_MAJOR}"
  cmake ninja-build
  libmpich-dev mpich libopenblas-dev
  python3-torch python3-numpy
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "bootstrap: all ${#PACKAGES[@]} packages present"
fi

LLVM_PREFIX="$(llvm-config-"${LLVM_MAJOR}" --prefix)"

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  echo "bootstrap: configuring $BUILD_DIR"
  cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$LLVM_PREFIX/bin/clang" \
    -DCMAKE_CXX_COMPILER="$LLVM_PREFIX/bin/clang++" \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DPython3_EXECUTABLE=/usr/bin/python3 \
    -DLLVM_ENABLE_ASSERTIONS=ON
fi

echo "bootstrap: building ($JOBS jobs)"
ninja -C "$BUILD_DIR" -j "$JOBS" all mlir-doc
