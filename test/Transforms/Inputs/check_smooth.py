"""--qwen-smooth must not change the float model: runs the calibration
executor on a raised model before and after smoothing (AWQ or SmoothQuant)
and compares the logits.

usage: check_smooth.py QWEN_COMPILE QWEN_OPT QWEN_QUANT_CHECK MODEL.onnx METHOD WORKDIR"""
import json
import os
import re
import subprocess
import sys

import numpy as np

compile_tool, opt, check, model, method, work = sys.argv[1:7]
os.makedirs(work, exist_ok=True)
mlir = os.path.join(work, "model.mlir")
subprocess.run([compile_tool, model, "--emit=mlir", "-o", mlir], check=True)
vocab = int(re.search(r"tensor<\?x\?x(\d+)xf32> \{onnx.name = \"logits\"", open(mlir).read()).group(1))
rng = np.random.default_rng(5)
tokens = os.path.join(work, "tokens.json")
with open(tokens, "w") as f:
    json.dump({"sequences": [rng.integers(0, vocab, n).tolist() for n in (24, 40, 9)]}, f)
smoothed = os.path.join(work, "smoothed.mlir")
store = os.path.join(work, "smoothed.qws")
subprocess.run([opt, mlir, "-o", smoothed,
                f"--qwen-smooth=method={method} calib-tokens={tokens} store={store} "
                f"bits={8 if method == 'smoothquant' else 4} "
                f"group-size={0 if method == 'smoothquant' else 32} alpha=0.5"],
               check=True)
text = open(smoothed).read()
print("scaled weights", len(set(re.findall(r'@smoothed::@("[^"]+"|[\w.]+)', text))))
outs = []
for m in (mlir, smoothed):
    out = os.path.join(work, os.path.basename(m) + ".npy")
    subprocess.run([check, "exec", m, "--tokens", tokens, "-o", out], check=True)
    outs.append(np.load(out))
err = np.abs(outs[0] - outs[1]).max() / np.abs(outs[0]).max()
print(f"max relative logit change {err:.2g}")
print("PASS" if err < 1e-4 else "FAIL")
sys.exit(0 if err < 1e-4 else 1)
