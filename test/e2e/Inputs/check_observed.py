"""The observed activations of a calibration bundle (qwen-calibrate
--keep-bundle) are the tensors the model computes with: the observed input
of the LM head, times the LM head's weight from weights.bin, reproduces the
bundle's logits; every layer's observed tensor has the width of its weight;
the observed rows are the prefill's tokens. Runs through the Python binding
(qwen_opt.runtime) of the C API.

  check_observed.py BUNDLE
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qwen_opt import runtime, weight_store  # noqa: E402

d = sys.argv[1]
man = json.load(open(os.path.join(d, "manifest.json")))
weights = weight_store.read(os.path.join(d, "weights.bin"))
b = runtime.Bundle(d)
b.set_num_threads(2)
obs = b.observed
s = b.session(64)
rng = np.random.default_rng(0)
ids = rng.integers(0, b.vocab_size, size=12)
logits = s.prefill(ids)
bad = []
head = None
for i, (name, layers) in enumerate(obs):
    x = s.observed(i)
    if x.shape[0] != len(ids):
        bad.append(f"{name}: {x.shape[0]} rows for {len(ids)} tokens")
    for l in layers:
        w = weights[l]
        if w.shape[1] != x.shape[1]:
            bad.append(f"{name}: width {x.shape[1]} != {l} {w.shape}")
        if w.shape[0] == b.vocab_size:
            head = (x, w, l)
if head is None:
    bad.append("no observed LM head input")
else:
    x, w, l = head
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    err = np.abs(ref - logits).max() / max(1.0, np.abs(ref).max())
    print(f"LM head '{l}': observed input x W^T vs logits: max rel err {err:.1e}")
    if err > 1e-4:
        bad.append(f"logits differ: {err}")
s.observed(0)
try:
    s.observed(len(obs))
    bad.append("an index past the end was accepted")
except RuntimeError as e:
    print("past the end:", str(e).split(" (")[0])
print(f"{len(obs)} observed tensors, {sum(len(l) for _, l in obs)} layers")
for x in bad:
    print("FAIL", x)
sys.exit(1 if bad else 0)
