"""--qwen-prune against a numpy mirror, with onnxruntime as the independent
source of the activations Wanda scores by.

usage: check_prune.py QWEN_COMPILE QWEN_OPT MODEL.onnx WORKDIR PATTERN METHOD SPARSITY

Compiles MODEL (a no-KV-cache fixture) to raised MLIR, prunes it, and reads
the pruned weights back from the new store. The mirror: magnitude scores
|W|, wanda |W[n,k]| * ||X[:,k]||_2 with X the op's input over the
calibration tokens, taken from onnxruntime running the *pruned* model (the
pass prunes sequentially: an op's input comes from the already-pruned
earlier ops, and no op's input depends on itself or later ops). Unstructured:
round(sparsity * count) lowest scores zeroed over the weight (magnitude) or
per row (wanda); 2:4: the 2 lowest of each 4 inputs of a row. Ties: the
later element is pruned first. Prints the weights checked, the sparsity,
and how many weights' kept/pruned state differs from the mirror (for
wanda, scores within float rounding of each other may order differently
between the executor and onnxruntime: at most 0.2 % may differ).
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "python"))
from qwen_opt import weight_store  # noqa: E402

compile_tool, opt, model, work, pattern, method, sparsity = sys.argv[1:8]
sparsity = float(sparsity)
os.makedirs(work, exist_ok=True)
mlir = os.path.join(work, "model.mlir")
subprocess.run([compile_tool, model, "--emit=mlir", "-o", mlir], check=True)
text = open(mlir).read()
vocab = int(re.search(r"tensor<\?x\?x(\d+)xf32> \{onnx.name = \"logits\"", text).group(1))
rng = np.random.default_rng(7)
seqs = [rng.integers(0, vocab, n).tolist() for n in (20, 33, 11)]
tokens = os.path.join(work, "tokens.json")
with open(tokens, "w") as f:
    json.dump({"sequences": seqs}, f)
pruned_mlir = os.path.join(work, "pruned.mlir")
store = os.path.join(work, "pruned.qws")
subprocess.run([opt, mlir, "-o", pruned_mlir,
                f"--qwen-prune=pattern={pattern} method={method} sparsity={sparsity} "
                f"calib-tokens={tokens} store={store}"], check=True)
pruned = weight_store.read(store)
ptext = open(pruned_mlir).read()
marks = len(re.findall(r'qquant.pruned = "' + re.escape(pattern) + '"', ptext))

# The original weights ([N, K], the ONNX initializers transposed).
m = onnx.load(model)
inits = {i.name: i for i in m.graph.initializer}
orig = {}
for name in pruned:
    src = name[: -len(".transposed")] if name.endswith(".transposed") else name
    orig[name] = numpy_helper.to_array(inits[src]).T.astype(np.float32)
    assert orig[name].shape == pruned[name].shape, name

# Wanda: the inputs of each pruned MatMul in the pruned model.
norms = {}
if method == "wanda":
    for name, w in pruned.items():
        src = name[: -len(".transposed")]
        inits[src].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w.T), src))
    users = {}
    for n in m.graph.node:
        if n.op_type == "MatMul" and n.input[1][: len(n.input[1])] + ".transposed" in pruned:
            users[n.input[1] + ".transposed"] = n.input[0]
    for name, x in users.items():
        m.graph.output.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    acc = {name: 0.0 for name in users}
    for s in seqs:
        ids = np.array([s], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        res = dict(zip(outs, sess.run(None, feed)))
        for name, x in users.items():
            v = res[x].astype(np.float64).reshape(-1, res[x].shape[-1])
            acc[name] = acc[name] + (v * v).sum(0)
    norms = {name: np.sqrt(a) for name, a in acc.items()}


def mirror(w, nrm):
    rows, cols = w.shape
    score = np.abs(w.astype(np.float64))
    if nrm is not None:
        score = score * nrm[None, :]
    keep = np.ones(w.shape, bool)  # C order (w may be a transposed view)
    if pattern == "2:4":
        g = score.reshape(rows, cols // 4, 4)
        idx = np.arange(4)
        # lexsort: primary score ascending, then later index first.
        for r in range(rows):
            for q in range(cols // 4):
                order = np.lexsort((-idx, g[r, q]))
                keep[r, 4 * q + order[:2]] = False
        return keep
    flat = score.reshape(-1) if nrm is None else None
    if nrm is None:
        k = int(np.floor(sparsity * flat.size + 0.5))
        order = np.lexsort((-np.arange(flat.size), flat))
        keep.reshape(-1)[order[:k]] = False
    else:
        k = int(np.floor(sparsity * cols + 0.5))
        for r in range(rows):
            order = np.lexsort((-np.arange(cols), score[r]))
            keep[r, order[:k]] = False
    return keep


total = diff = zeros = 0
for name, w in sorted(pruned.items()):
    o = orig[name]
    kept = w != 0
    # Kept weights are unchanged.
    assert np.array_equal(w[kept], o[kept]), name
    ref = mirror(o, norms.get(name) if method == "wanda" else None)
    total += w.size
    zeros += int((~kept).sum())
    diff += int((kept != ref).sum())
    if pattern == "2:4":
        assert ((~kept).reshape(w.shape[0], -1, 4).sum(-1) >= 2).all(), name
print(f"pruned ops {marks}, weights {len(pruned)}, sparsity {zeros / total:.4f}")
limit = 0 if method == "magnitude" else int(0.002 * total)
print(f"mirror differs at {diff} of {total} weights (limit {limit})")
print("PASS" if diff <= limit else "FAIL")
sys.exit(0 if diff <= limit else 1)
