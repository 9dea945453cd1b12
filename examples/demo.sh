#!/usr/bin/env bash
# The main job: compile the bundled small Qwen2 model (examples/tiny-qwen2:
# ONNX from the TorchScript exporter with a KV cache, plus its byte-level BPE
# tokenizer.json) into an ahead-of-time bundle for this CPU, then generate
# text from a prompt with the runtime. The model's weights are random (made
# by python/fixtures/make_demo_model.py), so the text is noise; what matters
# is the path: import -> raise -> linalg -> LLVM -> model.so + weights.bin.
# Usage: examples/demo.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=$ROOT/out/demo
MODEL=$ROOT/examples/tiny-qwen2
mkdir -p "$OUT"

echo "== qwen-compile $MODEL/model.onnx --target host -o $OUT/bundle"
"$BUILD/bin/qwen-compile" "$MODEL/model.onnx" --tokenizer "$MODEL/tokenizer.json" \
  --target host -o "$OUT/bundle" -v
ls -l "$OUT/bundle"

# What the compiler made of the exporter's graph (model-level ops).
"$BUILD/bin/qwen-compile" "$MODEL/model.onnx" --emit=mlir -o "$OUT/model.mlir"
printf "raised: "
for op in embedding rms_norm linear rope attention silu_mul add logits; do
  printf "qwen.%s x%d  " "$op" "$(grep -c "= qwen\.$op " "$OUT/model.mlir" || true)"
done
echo

echo
echo "== qwen-run (greedy)"
"$BUILD/bin/qwen-run" "$OUT/bundle" --prompt "The quick brown fox" --max-new-tokens 32
echo
echo "== qwen-run (sampling: temperature 0.8, top-k 40, top-p 0.95, seed 1)"
"$BUILD/bin/qwen-run" "$OUT/bundle" --prompt "Once upon a time" --max-new-tokens 32 \
  --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1
