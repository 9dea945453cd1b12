#!/usr/bin/env bash
# Installs the peers of bench/bench_quant.py into .venv (scripts/setup.sh makes
# it): llama-cpp-python (built from source here, for this CPU), gguf, onnx_ir.
#
# llama.cpp's AMX kernels (built in by -march=native on CPUs that list
# amx_int8) faulted at their first ldtilecfg (general protection fault in
# libggml-cpu) on a VM whose kernel granted AMX, so the bench's llama.cpp
# runs died with exit 139. Where the CPU lists AMX, ggml is therefore built
# for this CPU's ISA with the AMX parts left out: GGML_NATIVE=OFF and the
# AVX/AVX2/AVX-512 (F, BW, DQ, VL, VBMI, VNNI, BF16)/AVX-VNNI/FMA/F16C/BMI2
# switches for what /proc/cpuinfo lists. Its CPU repacking (Q4_0 -> the
# interleaved layouts its AVX-512 GEMV reads) stays on. Elsewhere: -march=native.
# QWEN_LLAMA_CMAKE_ARGS replaces the choice.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${QWEN_BENCH_PIP:-.venv/bin/pip}
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
args="${QWEN_LLAMA_CMAKE_ARGS:-}"
if [ -z "$args" ] && has amx_int8; then
  args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  has avx && args+=" -DGGML_AVX=ON"
  has avx2 && args+=" -DGGML_AVX2=ON"
  has fma && args+=" -DGGML_FMA=ON"
  has f16c && args+=" -DGGML_F16C=ON"
  has bmi2 && args+=" -DGGML_BMI2=ON"
  has avx_vnni && args+=" -DGGML_AVX_VNNI=ON"
  if has avx512f && has avx512bw && has avx512dq && has avx512vl; then
    args+=" -DGGML_AVX512=ON"
    has avx512vbmi && args+=" -DGGML_AVX512_VBMI=ON"
    has avx512_vnni && args+=" -DGGML_AVX512_VNNI=ON"
    has avx512_bf16 && args+=" -DGGML_AVX512_BF16=ON"
  fi
fi
echo "[install-peers] llama-cpp-python CMAKE_ARGS: ${args:-(default: -march=native)}"
# gguf, onnx_ir and llama-cpp-python's dependencies first, then llama.cpp
# itself rebuilt with the flags above (a wheel built earlier with other
# flags is not reused: --no-cache-dir, --force-reinstall of that one package).
"$PIP" install -r bench/requirements.txt
CMAKE_ARGS="$args" "$PIP" install --no-cache-dir --force-reinstall --no-deps --no-binary llama-cpp-python \
  "$(grep -m1 '^llama-cpp-python' bench/requirements.txt)"
