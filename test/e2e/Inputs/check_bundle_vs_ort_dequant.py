"""A weight-only quantized bundle against onnxruntime running the same ONNX
with each quantized weight replaced by its dequantized value.

  check_bundle_vs_ort_dequant.py MODEL.onnx BUNDLE [--max-rel R]

The bundle's weights.bin is a weight store; every quantized matrix in it
(`<entry>.codes` + `.scales` [+ `.mask` for 2:4 sparse weights]: signed
symmetric uniform codes, per channel or per group, the layouts of
getWeightComponents) is decoded here with numpy, independently of the
compiler, and written back into the ONNX initializer it came from
(`<init>.transposed` = the MatMul's B input transposed, else the table
itself). Both then run a no-KV-cache prefill of seeded random prompts; the
logits must agree to R (max |bundle - ort| / max |ort|): what is left is
float summation order.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qwen_opt import runtime, weight_store  # noqa: E402


def unpack(packed, n, bits):
    b = np.unpackbits(packed, axis=1, bitorder="little")[:, : n * bits]
    b = b.reshape(packed.shape[0], n, bits).astype(np.int64)
    return (b << np.arange(bits)).sum(-1)


def decode(store, base, rows, cols):
    codes, scales = store[base + ".codes"], store[base + ".scales"].astype(np.float32)
    mask = store.get(base + ".mask")
    kept = cols // 2 if mask is not None else cols
    bits = codes.shape[1] * 8 // kept
    c = unpack(codes, kept, bits)
    c = np.where(c >= 1 << (bits - 1), c - (1 << bits), c)  # signed
    if mask is not None:
        pos = unpack(mask, kept, 2)
        col = 4 * (np.arange(kept) // 2)[None, :] + pos
    else:
        col = np.broadcast_to(np.arange(cols)[None, :], (rows, cols))
    group = cols // scales.shape[1]
    s = scales[np.arange(rows)[:, None], col // group]
    w = np.zeros((rows, cols), np.float32)
    w[np.arange(rows)[:, None], col] = (c * s).astype(np.float32)
    return w, bits, mask is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("bundle")
    ap.add_argument("--max-rel", type=float, default=1e-4)
    o = ap.parse_args()
    store = weight_store.read(os.path.join(o.bundle, "weights.bin"))
    m = onnx.load(o.model)
    inits = {i.name: i for i in m.graph.initializer}
    n_sparse = n_dense = 0
    for key in sorted(store):
        if not key.endswith(".codes"):
            continue
        base = key[: -len(".codes")]
        src = base[: -len(".transposed")] if base.endswith(".transposed") else base
        t = numpy_helper.to_array(inits[src])
        rows, cols = (t.shape[1], t.shape[0]) if src != base else t.shape
        w, bits, sparse = decode(store, base, rows, cols)
        n_sparse += sparse
        n_dense += not sparse
        inits[src].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w.T if src != base else w), src))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    b = runtime.Bundle(o.bundle)
    b.set_num_threads(2)
    worst = 0.0
    rng = np.random.default_rng(3)
    for n in (9, 23):
        ids = rng.integers(0, b.vocab_size, n)
        feed = {"input_ids": ids[None].astype(np.int64), "attention_mask": np.ones((1, n), np.int64)}
        ref = sess.run(["logits"], feed)[0][0].astype(np.float64)
        got = np.array(list(b.session(n + 1).prefill([int(i) for i in ids])), np.float64)
        worst = max(worst, np.abs(got - ref).max() / np.abs(ref).max())
    print(f"decoded {n_sparse} 2:4 sparse and {n_dense} dense quantized weights")
    print(f"max rel logit difference {worst:.2e} (limit {o.max_rel:.0e})")
    print("PASS" if worst <= o.max_rel else "FAIL")
    sys.exit(0 if worst <= o.max_rel else 1)


if __name__ == "__main__":
    main()
