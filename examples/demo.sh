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

# The front end on a real exporter's output: a Qwen2 model exported by the
# TorchScript exporter with a KV cache, imported, shape-inferred, raised to
# model-level ops, and its weights materialized in the layouts the ops read.
MODEL=$ROOT/test/fixtures/onnx/qwen2-torchscript-kvcache.onnx
"$BUILD/bin/qwen-translate" --import-onnx "$MODEL" -o "$OUT/qwen2.onnx.mlir"
"$BUILD/bin/qwen-opt" "$OUT/qwen2.onnx.mlir" --qwen-onnx-infer-shapes --qwen-raise-onnx \
  --qwen-materialize-weights="store=$OUT/qwen2.derived.qws" --qwen-verify-weights \
  --canonicalize -o "$OUT/qwen2.model.mlir"
echo
echo "== $(basename "$MODEL"): onnx ops imported -> model-level ops after raising"
printf "onnx ops imported:       %5d\n" "$(grep -c '= onnx\.' "$OUT/qwen2.onnx.mlir")"
printf "onnx ops left (small constants): %d\n" "$(grep -c '= onnx\.' "$OUT/qwen2.model.mlir")"
for op in embedding rms_norm linear rope attention silu_mul add logits; do
  printf "  qwen.%-10s %3d\n" "$op" "$(grep -c "= qwen\.$op " "$OUT/qwen2.model.mlir")"
done
echo "model-level IR: $OUT/qwen2.model.mlir"
