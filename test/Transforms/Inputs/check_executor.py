"""Runs the calibration executor (qwen-quant-check exec) on a raised model
and onnxruntime on the same ONNX file, sequence by sequence, and compares
the logits.

usage: check_executor.py QWEN_COMPILE QWEN_QUANT_CHECK MODEL.onnx WORKDIR"""
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort

compile_tool, check_tool, model, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)
mlir = os.path.join(work, "model.mlir")
subprocess.run([compile_tool, model, "--emit=mlir", "-o", mlir], check=True)

so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
vocab = sess.get_outputs()[0].shape[-1]
rng = np.random.default_rng(3)
seqs = [rng.integers(0, vocab, n).tolist() for n in (7, 12, 1)]
tokens = os.path.join(work, "tokens.json")
with open(tokens, "w") as f:
    json.dump({"sequences": seqs}, f)
out = os.path.join(work, "logits.npy")
subprocess.run([check_tool, "exec", mlir, "--tokens", tokens, "-o", out], check=True)
got = np.load(out)


def feeds(seq):
    T = len(seq)
    d = {}
    for i in sess.get_inputs():
        if i.name == "input_ids":
            d[i.name] = np.array([seq], dtype=np.int64)
        elif i.name == "attention_mask":
            d[i.name] = np.ones((1, T), dtype=np.int64)
        elif i.name == "position_ids":
            d[i.name] = np.arange(T, dtype=np.int64)[None]
        elif "past" in i.name:
            shape = [1] + [0 if not isinstance(s, int) else s for s in i.shape[1:]]
            d[i.name] = np.zeros(shape, dtype=np.float32)
        else:
            raise SystemExit(f"unexpected input {i.name}")
    return d


ref = np.concatenate([sess.run(None, feeds(s))[0][0] for s in seqs])
assert got.shape == ref.shape, (got.shape, ref.shape)
err = np.abs(got - ref).max() / np.abs(ref).max()
print(f"tokens {ref.shape[0]} vocab {ref.shape[1]} max relative error {err:.3g}")
print("PASS" if err < 1e-4 else "FAIL")
sys.exit(0 if err < 1e-4 else 1)
