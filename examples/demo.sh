#!/usr/bin/env bash
# The main job until the end-to-end compiler lands: a one-layer Qwen2-shaped
# model at the model level, its weights moved out of the IR into a weight
# store, then every reference checked against the store (shapes, dtypes,
# NaN/Inf).  Usage: examples/demo.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=$ROOT/out/demo
PY=$ROOT/.venv/bin/python3; [ -x "$PY" ] || PY=python3
mkdir -p "$OUT"

"$PY" "$ROOT/examples/tiny_qwen2.py" "$OUT/tiny-qwen2.inline.mlir"
"$BUILD/bin/qwen-opt" "$OUT/tiny-qwen2.inline.mlir" \
  --qwen-externalize-weights="store=$OUT/tiny-qwen2.qws min-elements=16" \
  --qwen-verify-weights=check-finite \
  -o "$OUT/tiny-qwen2.mlir"

echo "== model-level IR with weights by reference ($OUT/tiny-qwen2.mlir):"
cat "$OUT/tiny-qwen2.mlir"
echo
printf "IR with inline weights: %8d bytes\n" "$(stat -c %s "$OUT/tiny-qwen2.inline.mlir")"
printf "IR with references:     %8d bytes\n" "$(stat -c %s "$OUT/tiny-qwen2.mlir")"
printf "weight store:           %8d bytes (%s)\n" "$(stat -c %s "$OUT/tiny-qwen2.qws")" "$OUT/tiny-qwen2.qws"
