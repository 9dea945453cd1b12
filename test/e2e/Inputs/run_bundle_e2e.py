"""End-to-end check of a compiled bundle against onnxruntime on the same ONNX.

  run_bundle_e2e.py BUNDLE MODEL.onnx [--steps 16] [--prompt-len 8] [--seed 0]

Runs the bundle through the runtime (python/qwen_opt/runtime.py, the C API of
libqwen_runtime) and the ONNX file through onnxruntime, side by side:

  prefill   logits of every prompt position
  decode i  logits of greedy step i (i = 1..steps): the runtime's KV-cache
            decode (or full recompute for models without a cache) against
            onnxruntime fed its own present -> past (or the whole sequence)

Every row must match within TOL = 1e-4 relative (max over the vocabulary of
|got - ref| / max(1, max |ref|)), and the greedy ids must be the same. Then
`kv == recompute`: a fresh session prefills prompt + generated tokens at once;
its logits at each generated position must equal the decode steps' logits
within 1e-5 (same kernels, same reduction order, different batching).
`last logits only`: a session without all_logits (qwen_session_set_all_logits
0; the bundle's logits_rows input = 1) returns one row per prefill, equal to
the last prefill row and to the first decode step within 1e-5.

onnxruntime's MatMulNBits with accuracy_level 4 quantizes activations to int8
on the CPU; the reference here sets accuracy_level to 0 in memory so it
computes the exact dequantized product the model describes.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qwen_opt import runtime  # noqa: E402

TOL = 1e-4
TOL_RECOMPUTE = 1e-5


def rel_err(got, ref):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return np.inf
    err = np.abs(got - ref).max() if got.size else 0.0
    r = err / max(1.0, np.abs(ref).max())
    return r if np.isfinite(r) else np.inf


class OrtModel:
    """Greedy generation with onnxruntime, KV cache fed back when present."""

    NP = {"tensor(int64)": np.int64, "tensor(int32)": np.int32,
          "tensor(float)": np.float32, "tensor(bool)": np.bool_}

    def __init__(self, path, kv_heads, head_dim):
        self.kv_shape = [1, kv_heads, 0, head_dim]
        m = onnx.load(path)
        for n in m.graph.node:
            if n.op_type == "MatMulNBits":
                for a in n.attribute:
                    if a.name == "accuracy_level":
                        a.i = 0
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        self.sess = ort.InferenceSession(m.SerializeToString(), so,
                                         providers=["CPUExecutionProvider"])
        self.inputs = self.sess.get_inputs()
        self.outputs = [o.name for o in self.sess.get_outputs()]
        self.past = [i for i in self.inputs if i.name.startswith("past")]

    def run(self, ids, past):
        """ids: new tokens; past: dict name -> array or None. Returns logits
        [S, V] and the present dict."""
        plen = 0 if past is None else next(iter(past.values())).shape[2]
        feeds = {}
        s = len(ids)
        for i in self.inputs:
            dt = self.NP[i.type]
            if i.name == "input_ids":
                feeds[i.name] = np.array([ids], dt)
            elif i.name == "attention_mask":
                feeds[i.name] = np.ones((1, plen + s), dt)
            elif i.name == "position_ids":
                feeds[i.name] = np.arange(plen, plen + s, dtype=dt)[None]
            elif i.name.startswith("past"):
                if past is None:
                    feeds[i.name] = np.zeros(self.kv_shape, dt)
                else:
                    feeds[i.name] = past[i.name]
            else:
                raise SystemExit(f"FAIL: unknown model input {i.name}")
        outs = dict(zip(self.outputs, self.sess.run(None, feeds)))
        present = {}
        for p in self.past:
            key = p.name.replace("past_key_values", "present")
            present[p.name] = outs[key]
        return outs["logits"][0], (present if self.past else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    o = ap.parse_args()

    manifest = json.load(open(os.path.join(o.bundle, "manifest.json")))
    vocab = manifest["model"]["vocab_size"]
    prompt = [int(x) for x in np.random.default_rng(o.seed).integers(0, vocab, o.prompt_len)]

    ref = OrtModel(o.model, manifest["model"]["num_kv_heads"],
                   manifest["model"]["head_dim"])
    b = runtime.Bundle(o.bundle)
    if o.threads:
        b.set_num_threads(o.threads)
    ctx = o.prompt_len + o.steps + 1
    sess = b.session(ctx)
    bad = []

    # prefill
    got = sess.prefill(prompt)
    ref_logits, past = ref.run(prompt, None)
    e = rel_err(got, ref_logits)
    print(f"prefill: {len(prompt)} tokens max_rel_err={e:.3e}")
    if e > TOL:
        bad.append(f"prefill max_rel_err {e:.3e}")
    seq = list(prompt)
    ours_steps, ids = [], []
    last_ours, last_ref = got[-1], ref_logits[-1]
    for step in range(1, o.steps + 1):
        tok, tok_ref = int(np.argmax(last_ours)), int(np.argmax(last_ref))
        if tok != tok_ref:
            bad.append(f"step {step}: greedy id {tok} != onnxruntime's {tok_ref}")
            break
        ids.append(tok)
        seq.append(tok)
        last_ours = sess.decode(tok)
        if past is None:  # no cache: onnxruntime recomputes the sequence
            r, _ = ref.run(seq, None)
            last_ref = r[-1]
        else:
            r, past = ref.run([tok], past)
            last_ref = r[-1]
        ours_steps.append(np.array(last_ours))
        e = rel_err(last_ours, last_ref)
        print(f"decode {step}: id {tok} max_rel_err={e:.3e}")
        if e > TOL:
            bad.append(f"decode {step} max_rel_err {e:.3e}")
    print("ids: " + ",".join(map(str, ids)))

    # KV-cache decode == full recompute
    full = b.session(ctx).prefill(seq)
    worst = 0.0
    for i, row in enumerate(ours_steps):
        worst = max(worst, rel_err(row, full[len(prompt) + i]))
    print(f"kv == recompute: {len(ours_steps)} steps max_rel_err={worst:.3e}")
    if worst > TOL_RECOMPUTE:
        bad.append(f"kv decode vs recompute max_rel_err {worst:.3e}")

    # The last position's logits only
    last = b.session(ctx, all_logits=False)
    rows = last.prefill(prompt)
    worst = rel_err(rows, got[-1:]) if rows.shape == (1, vocab) else float("inf")
    if ours_steps:
        worst = max(worst, rel_err(last.decode(ids[0]), ours_steps[0]))
    print(f"last logits only: {rows.shape[0]} row max_rel_err={worst:.3e}")
    if worst > TOL_RECOMPUTE:
        bad.append(f"last logits only: {rows.shape} rows max_rel_err {worst:.3e}")

    if bad:
        print("FAIL:\n  " + "\n  ".join(bad))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
