#!/usr/bin/env bash
# Runs the importer fuzzer for N seconds (default 600) on a seed corpus of
# real exporter fixtures and the importer tests' models.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
B=${QWEN_FUZZ_BUILD:-build-fuzz}
CORPUS=$B/corpus; mkdir -p "$CORPUS" "$B/crashes"
cp -n test/fixtures/onnx/*.onnx "$CORPUS"/ 2>/dev/null || true
PY=.venv/bin/python3
for k in linear ops typed-fields unsupported-op cycle short-initializer shape-mismatch; do
  [ -f "$CORPUS/seed-$k.onnx" ] || PYTHONPATH=python $PY test/Import/Inputs/make_models.py $k "$CORPUS/seed-$k.onnx"
done
ASAN_OPTIONS=detect_leaks=0 "$B/bin/onnx-import-fuzzer" "$CORPUS" \
  -max_total_time="$SECS" -max_len=1048576 -rss_limit_mb=4096 -timeout=20 \
  -artifact_prefix="$B/crashes/" -print_final_stats=1
