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
  python3-torch python3-numpy python3-pip
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

# Hugging Face transformers, the outside reference of the generation tests
# (test/E2E/generate-hf.test): 4.40.2 works with Debian's torch 1.13. Pinned,
# without dependencies beyond these, into build/python-deps (Debian's
# interpreter uses it through PYTHONPATH; nothing system-wide changes).
PY_DEPS="$BUILD_DIR/python-deps"
PY_PINS=(transformers==4.40.2 tokenizers==0.19.1 huggingface_hub==0.23.4
  safetensors==0.4.3 regex==2026.11.19 tqdm==4.70.1 filelock==4.3.2
  fsspec==2026.9.0 packaging==26.4 pyyaml==6.0.4 requests==2.34.2)
if PYTHONPATH="$PY_DEPS" /usr/bin/python3 -c \
    'import sys, transformers; sys.exit(transformers.__version__ != "4.40.2")' \
    2>/dev/null; then
  echo "bootstrap: transformers 4.40.2 present in $PY_DEPS"
else
  echo "bootstrap: installing ${PY_PINS[*]} into $PY_DEPS"
  /usr/bin/python3 -m pip install -q --no-deps --disable-pip-version-check \
    --root-user-action=ignore --upgrade --target "$PY_DEPS" "${PY_PINS[@]}"
fi

echo "bootstrap: building ($JOBS jobs)"
ninja -C "$BUILD_DIR" -j "$JOBS" all mlir-doc
