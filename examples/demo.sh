#!/usr/bin/env bash
# The main job: compile the bundled small model into ahead-of-time bundles for
# this CPU and generate text from a prompt. The model is models/tiny-qwen2-docs
# (a 3.9M-parameter Qwen2 we trained on the Python docs with its own
# byte-level BPE tokenizer; python/train/train_tiny_qwen.py): ONNX from the
# TorchScript exporter with a KV cache. It is compiled in fp32 and with the
# w4a16-g32 recipe (4-bit weights), both generate from the same prompt, and
# qwen-eval measures the 4-bit bundle against the fp32 one on held-out text.
# Usage: examples/demo.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=$ROOT/out/demo
MODEL=$ROOT/models/tiny-qwen2-docs
PROMPT="The list type"
mkdir -p "$OUT"
if [ ! -f "$MODEL/model.onnx" ]; then
  # The trained model is not in git (19.9 MB). Regenerate it (deterministic,
  # ~17 min on 2 cores, needs the fixtures venv with torch):
  #   nice -n 5 .venv-fixtures/bin/python python/train/train_tiny_qwen.py
  echo "note: $MODEL/model.onnx is missing (make it with python/train/train_tiny_qwen.py);"
  echo "      using the random-weight examples/tiny-qwen2 instead (its text is noise)"
  MODEL=$ROOT/examples/tiny-qwen2
fi

for recipe in fp32 w4a16-g32; do
  echo "== qwen-compile --recipe $recipe -> $OUT/$recipe"
  "$BUILD/bin/qwen-compile" "$MODEL/model.onnx" --tokenizer "$MODEL/tokenizer.json" \
    --target host --recipe "$recipe" -o "$OUT/$recipe"
  ls -l "$OUT/$recipe" | sed 1d
done

# What the compiler made of the exporter's graph (model-level ops).
"$BUILD/bin/qwen-compile" "$MODEL/model.onnx" --emit=mlir -o "$OUT/model.mlir"
printf "raised: "
for op in embedding rms_norm linear rope attention silu_mul add logits; do
  printf "qwen.%s x%d  " "$op" "$(grep -c "= qwen\.$op " "$OUT/model.mlir" || true)"
done
echo

for recipe in fp32 w4a16-g32; do
  echo
  echo "== qwen-run $recipe (greedy)"
  "$BUILD/bin/qwen-run" "$OUT/$recipe" --prompt "$PROMPT" --max-new-tokens 48
done
echo
echo "== qwen-run fp32 (sampling: temperature 0.8, top-k 40, top-p 0.95, seed 1)"
"$BUILD/bin/qwen-run" "$OUT/fp32" --prompt "To open a file" --max-new-tokens 48 \
  --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1
echo
echo "== qwen-eval w4a16-g32 against fp32 (held-out text, 8 chunks of 256 tokens)"
"$BUILD/bin/qwen-eval" "$OUT/w4a16-g32" --reference "$OUT/fp32" \
  --text "$(if [ -f "$MODEL/heldout.txt" ]; then echo "$MODEL/heldout.txt"; else echo "$ROOT/test/Runtime/Inputs/eval/text.txt"; fi)" --chunks 8
