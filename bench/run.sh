#!/usr/bin/env bash
# fp32 benchmark, qwen-opt vs onnxruntime on the same ONNX file (see bench/bench_fp32.py).
# Usage: bench/run.sh [bench_fp32.py options]   (model: bench/make_model.py --config qwen2.5-0.5b --out bench/out/qwen2.5-0.5b/)
# Python: $QWEN_BENCH_PYTHON, else .venv (numpy + onnx + onnxruntime, from scripts/setup.sh), else the fixtures venv.
cd "$(dirname "$0")/.." && PY=${QWEN_BENCH_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo "${QWEN_FIXTURES_VENV:-.venv-fixtures}/bin/python")} && exec "$PY" bench/bench_fp32.py "$@"
