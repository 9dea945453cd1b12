#!/usr/bin/env bash
# Regenerates the committed ONNX fixtures (test/fixtures/onnx) with the real
# exporters. Needs torch + transformers + optimum + onnxruntime-genai, which
# are large: they go into their own venv (.venv-fixtures), never into CI's.
# Usage: scripts/make-fixtures.sh [--only NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${QWEN_FIXTURES_VENV:-.venv-fixtures}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r python/fixtures/requirements.txt
fi
exec "$VENV/bin/python" python/fixtures/make_fixtures.py --out test/fixtures/onnx "$@"
