"""An exported ONNX model (qwen-translate --export-onnx) in onnxruntime against
the bundle qwen-compile built from the same quantized module.

  compare_export.py EXPORTED.onnx BUNDLE --max-rel R [--max-kl K]
                    [--steps 4] [--prompt-len 8] [--seed 0] [--threads 2]
                    [--ort-config KEY=VALUE] [--text FILE --chunks N --ctx L]

Prints `ops:` (the exported graph's node counts of the op types the exporter
writes; onnx.checker must pass first unless --no-checker), then runs both on the same tokens: a
seeded random prompt as one prefill, then `steps` decode steps with the KV
cache (each feeding the token the bundle picks greedily, to both). For every
position:

  abs   max |ort - bundle|
  rel   max |ort - bundle| / max(1, max |bundle|)   (as run_recipe_e2e.py)
  kl    KL(softmax(bundle) || softmax(ort))

and fails when max rel > R (or mean KL > K). With --text the bundle's
tokenizer cuts the file into `chunks` windows of `ctx` tokens, each one
prefill in both; the mean KL and max rel over those positions are printed and
held to the same bounds.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qwen_opt import runtime  # noqa: E402
from qwen_opt.metrics import kl_rel, verdict  # noqa: E402


class OrtModel:
    """The source model's I/O contract: input_ids, attention_mask,
    position_ids, past_key_values.N.{key,value} -> logits, present.N.*."""

    def __init__(self, path, threads, config=(), head_dim=0):
        self.head_dim = head_dim
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        for kv in config:
            k, v = kv.split("=", 1)
            so.add_session_config_entry(k, v)
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.inputs = self.sess.get_inputs()
        self.outputs = [o.name for o in self.sess.get_outputs()]
        self.cached = any(i.name.startswith("past") for i in self.inputs)
        self.reset()

    def reset(self):
        self.past = {}
        self.length = 0
        self.history = []

    def _past_shape(self, i):
        # [batch, kv_heads, past_len, head_dim]; a symbolic head dim (genai's
        # kv_cache_dim) is the bundle manifest's head_dim.
        dims = []
        for k, d in enumerate(i.shape):
            if isinstance(d, int):
                dims.append(d)
            elif "batch" in str(d):
                dims.append(1)
            elif k == len(i.shape) - 1:
                dims.append(self.head_dim)
            else:
                dims.append(0)
        return dims

    def run(self, ids):
        if not self.cached:
            # No KV cache: the whole sequence again, the new tokens' rows.
            self.history += list(ids)
            n = len(ids)
            out = self._run(self.history, 0)
            return out[-n:]
        return self._run(ids, self.length)

    def _run(self, ids, start):
        t = len(ids)
        self.length = start
        feeds = {}
        for i in self.inputs:
            if i.name == "input_ids":
                feeds[i.name] = np.array([ids], np.int64)
            elif i.name == "attention_mask":
                feeds[i.name] = np.ones((1, self.length + t), np.int64)
            elif i.name == "position_ids":
                feeds[i.name] = np.arange(self.length, self.length + t, dtype=np.int64)[None]
            elif i.name in self.past:
                feeds[i.name] = self.past[i.name]
            elif "past" in i.name:
                feeds[i.name] = np.zeros(self._past_shape(i), np.float32)
            else:
                raise SystemExit(f"unknown model input {i.name}")
        outs = dict(zip(self.outputs, self.sess.run(None, feeds)))
        for name, v in outs.items():
            if name.startswith("present"):
                self.past[name.replace("present", "past_key_values", 1)] = v
        self.length = start + t
        return outs["logits"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("bundle")
    ap.add_argument("--max-rel", type=float, required=True)
    ap.add_argument("--max-kl", type=float, default=None)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ort-config", action="append", default=[],
                    help="KEY=VALUE session config entry, e.g. "
                         "session.qdq_matmulnbits_accuracy_level=0")
    ap.add_argument("--no-checker", action="store_true",
                    help="skip onnx.checker (for sources it rejects, e.g. "
                         "onnxruntime-genai's SimplifiedLayerNormalization "
                         "in the default domain)")
    ap.add_argument("--text")
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=128)
    o = ap.parse_args()

    if not o.no_checker:
        onnx.checker.check_model(o.onnx)
    m = onnx.load(o.onnx, load_external_data=False)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    watched = ["MatMulNBits", "DequantizeLinear", "QuantizeLinear", "Round", "MatMul", "Gather"]
    print("ops: " + " ".join(f"{k}={ops.get(k, 0)}" for k in watched))

    b = runtime.Bundle(o.bundle)
    b.set_num_threads(o.threads)
    head_dim = json.load(open(os.path.join(o.bundle, "manifest.json")))["model"].get("head_dim", 0)
    om = OrtModel(o.onnx, o.threads, o.ort_config, head_dim)
    vocab = b.vocab_size
    prompt = [int(x) for x in np.random.default_rng(o.seed).integers(0, vocab, o.prompt_len)]
    s = b.session(o.prompt_len + o.steps + 1)
    b_rows = list(s.prefill(prompt))
    o_rows = list(om.run(prompt))
    for _ in range(o.steps):
        tok = int(np.argmax(b_rows[-1]))
        b_rows.append(s.decode(tok))
        o_rows.append(om.run([tok])[-1])
    br, orr = np.array(b_rows, np.float64), np.array(o_rows, np.float64)
    if not np.isfinite(orr).all():
        print("FAIL: onnxruntime produced NaN or Inf logits")
        sys.exit(1)
    diff = np.abs(orr - br)
    kl, rel = kl_rel(br, orr)
    top1 = (br.argmax(-1) == orr.argmax(-1)).mean()
    print(f"positions={len(kl)} (prefill {o.prompt_len} + decode {o.steps}) "
          f"max_abs={diff.max():.3e} max_rel={rel.max():.3e} "
          f"mean_kl={kl.mean():.3e} top1={top1:.3f}")
    bad = []
    if rel.max() > o.max_rel:
        bad.append(f"max rel {rel.max():.3e} > {o.max_rel:.3e}")
    if o.max_kl is not None and kl.mean() > o.max_kl:
        bad.append(f"mean KL {kl.mean():.3e} > {o.max_kl:.3e}")
    if o.text:
        ids = b.tokenize(open(o.text, encoding="utf-8").read())
        kls, rels = [], []
        for c in range(o.chunks):
            chunk = ids[c * o.ctx:(c + 1) * o.ctx]
            if len(chunk) < o.ctx:
                break
            s = b.session(o.ctx)
            br = np.array(s.prefill(chunk), np.float64)
            om.reset()
            orr = np.array(om.run(chunk), np.float64)
            kl, rel = kl_rel(br, orr)
            kls.append(kl)
            rels.append(rel)
        kls, rels = np.concatenate(kls), np.concatenate(rels)
        print(f"text: positions={len(kls)} mean_kl={kls.mean():.3e} max_kl={kls.max():.3e} "
              f"max_rel={rels.max():.3e}")
        if o.max_kl is not None and kls.mean() > o.max_kl:
            bad.append(f"text mean KL {kls.mean():.3e} > {o.max_kl:.3e}")
        if rels.max() > o.max_rel:
            bad.append(f"text max rel {rels.max():.3e} > {o.max_rel:.3e}")
    verdict(bad)


if __name__ == "__main__":
    main()
