#!/usr/bin/env bash
# Installs everything qwen-opt needs on a fresh Debian 12 machine (idempotent),
# builds it, and runs the main job. Usage: scripts/setup.sh [--no-demo]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

APT_PACKAGES=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 libomp-22-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  cmake ninja-build python3-venv libgtest-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# Python tools live in a project venv (fixtures, references, evaluation).
if [ ! -x .venv/bin/python3 ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python3 -c "import numpy, onnx, onnxruntime" 2>/dev/null; then
  echo "==> pip install -r python/requirements.txt"
  .venv/bin/python3 -m pip install -q --upgrade pip
  .venv/bin/python3 -m pip install -q -r python/requirements.txt
fi

# Build (Release, clang-22, Ninja). Re-running only rebuilds what changed.
BUILD=${QWEN_BUILD_DIR:-$ROOT/build}
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22
fi
cmake --build "$BUILD"

if [ "${1:-}" != "--no-demo" ]; then
  echo "==> main job: examples/demo.sh"
  "$ROOT/examples/demo.sh" "$BUILD"
fi
