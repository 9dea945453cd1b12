# -*- Python -*-
# lit configuration for qwen-opt: finds our tools in the build tree and
# FileCheck / not / split-file in LLVM 22's bin directory.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "QWEN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".py", ".test"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs", "CMakeLists.txt", "Unit", "lit.site.cfg.py.in"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.qwen_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%qwen_src", config.qwen_src_root))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PYTHONPATH", os.path.join(config.qwen_src_root, "python"),
                             append_path=True)

tool_dirs = [config.qwen_tools_dir, config.llvm_tools_dir]
tools = ["qwen-opt", "qwen-translate", "qwen-tokenize", "qwen-compile", "qwen-run",
         "qwen-eval", "qwen-calibrate", "qwen-calib-stats", "qwen-quant-check",
         "qwen-report"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.qwen_tools_dir, append_path=True)

# The upstream JIT for numerical end-to-end tests of the linalg lowering.
llvm_config.add_tool_substitutions(["mlir-runner"], [config.llvm_tools_dir])
_llvm_lib_dir = os.path.join(os.path.dirname(config.llvm_tools_dir), "lib")
config.substitutions.append(
    ("%mlir_runner_libs",
     ",".join(os.path.join(_llvm_lib_dir, l) for l in
              ["libmlir_runner_utils.so", "libmlir_c_runner_utils.so"])))
# Tensors (after --qwen-lower-model-to-linalg) to the LLVM dialect
# (finalize-memref-to-llvm: memref.reshape, which convert-to-llvm leaves;
# qwen-compile's pipeline has it too).
config.substitutions.append(
    ("%linalg_to_llvm",
     "--one-shot-bufferize=bufferize-function-boundaries --scf-forall-to-parallel "
     "--convert-linalg-to-loops --convert-vector-to-scf --convert-scf-to-cf "
     "--convert-vector-to-llvm --expand-strided-metadata --lower-affine "
     "--finalize-memref-to-llvm --convert-to-llvm --reconcile-unrealized-casts"))

# The bundle runtime (C API) for the Python bindings the bundle tests use.
config.environment["QWEN_RUNTIME_LIB"] = os.path.join(
    config.qwen_obj_root, "lib", "libqwen_runtime.so")

# CPU features of this machine, for tests of bundles built for another CPU.
try:
    _flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
except (OSError, StopIteration):
    _flags = []
if "avx512_fp16" not in _flags:
    config.available_features.add("cpu-lacks-avx512fp16")
if "avx512f" in _flags:
    config.available_features.add("cpu-has-avx512f")
if "avx512_vnni" in _flags:
    config.available_features.add("cpu-has-avx512vnni")
if "avx512_bf16" in _flags:
    config.available_features.add("cpu-has-avx512bf16")

# The trained model is not in git (19.9 MB); python/train/train_tiny_qwen.py
# regenerates it deterministically. Tests on it run where it exists.
if os.path.exists(os.path.join(config.qwen_src_root, "models", "tiny-qwen2-docs", "model.onnx")):
    config.available_features.add("trained-model")

# CUDA bundles (qwen-compile --target sm_XY) need ptxas; --emit=ptx does not.
import shutil
_ptxas = next((p for p in [os.path.join(os.environ.get("CUDA_HOME", ""), "bin", "ptxas"),
                           "/usr/local/cuda/bin/ptxas", shutil.which("ptxas") or ""]
               if p and os.access(p, os.X_OK)), None)
if _ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", _ptxas))
    # Several architectures (--target sm_80,sm_90) also need the toolkit's
    # fatbinary, which qwen-compile looks for beside ptxas first.
    if os.access(os.path.join(os.path.dirname(_ptxas), "fatbinary"), os.X_OK):
        config.available_features.add("fatbinary")
