"""Checks a qwen-calibrate stats.json (and optionally what qwen-compile made
of it).

  check_calib_stats.py stats STATS.json --model-mlir MODEL.mlir --rows N
      every linear / logits layer of the model (qwen.linear / qwen.logits on
      a qwen.weight in --emit=mlir) has thresholds, nothing else does;
      max >= p99.99 >= p99.9 > 0, entropy and mse in (0, max]; each observed
      tensor saw N rows; per-channel min <= max; X^T X (.npy, K x K,
      symmetric) has diagonal / rows == moment2_diag.
  check_calib_stats.py scales STATS.json --quant-mlir Q.mlir --key KEY
      every qquant.linear with a static act has scale == thresholds[KEY] / 127
      of its layer (f64 printed), and every linear has one.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["stats", "scales"])
ap.add_argument("stats")
ap.add_argument("--model-mlir")
ap.add_argument("--quant-mlir")
ap.add_argument("--rows", type=int)
ap.add_argument("--key")
a = ap.parse_args()
s = json.load(open(a.stats))
bad = []

if a.mode == "stats":
    text = open(a.model_mlir).read()
    weights = dict(re.findall(r'(%\S+) = qwen\.weight @\w+::@"?([^" ]+)"? :', text))
    layers = set()
    for m in re.finditer(r"qwen\.(linear|logits) %\S+, (%[^ ,:]+)", text):
        if m.group(2) in weights:
            layers.add(weights[m.group(2)])
    got = set(s["layers"])
    if got != layers:
        bad.append(f"layers differ: missing {sorted(layers - got)}, extra {sorted(got - layers)}")
    for name, l in s["layers"].items():
        t = l["thresholds"]
        if not (t["max"] >= t["percentile_99.99"] >= t["percentile_99.9"] > 0):
            bad.append(f"{name}: percentiles {t}")
        if not (0 < t["entropy"] <= t["max"] and 0 < t["mse"] <= t["max"]):
            bad.append(f"{name}: entropy/mse {t}")
        ob = s["observed"][l["observed"]]
        if name not in ob["layers"]:
            bad.append(f"{name}: not in its observed tensor's layers")
    for ob in s["observed"]:
        st = ob["stats"]
        if st["rows"] != a.rows:
            bad.append(f"{ob['name']}: {st['rows']} rows, expected {a.rows}")
        if np.any(np.array(st["channel_min"]) > np.array(st["channel_max"])):
            bad.append(f"{ob['name']}: channel min > max")
        x = np.load(os.path.join(os.path.dirname(a.stats), st["xtx"]))
        K = st["cols"]
        if x.shape != (K, K) or not np.array_equal(x, x.T):
            bad.append(f"{ob['name']}: X^T X shape {x.shape}")
        elif not np.allclose(np.diag(x) / st["rows"], st["moment2_diag"], rtol=1e-12):
            bad.append(f"{ob['name']}: diag(X^T X) / rows != moment2_diag")
        if abs(st["absmax"] - max(-st["min"], st["max"])) > 0:
            bad.append(f"{ob['name']}: absmax")
    print(f"stats: {len(s['layers'])} layers, {len(s['observed'])} observed tensors")
else:
    text = open(a.quant_mlir).read()
    weights = dict(re.findall(r'(%\S+) = qquant\.weight @\w+::@"?([^" ]+)"? :', text))
    n = 0
    for m in re.finditer(r"qquant\.linear %[^ ,]+, (%[^ ,:]+)(?:, %[^ ]+)? \{act = #qquant\.act<static : "
                         r"!quant\.uniform<i8<-127:127>:f32, ([0-9.eE+-]+)>>\}", text):
        layer = weights[m.group(1)]
        want = s["layers"][layer]["thresholds"][a.key] / 127
        if abs(float(m.group(2)) - want) > 1e-12 * want:
            bad.append(f"{layer}: scale {m.group(2)} != {want}")
        n += 1
    total = len(re.findall(r"qquant\.linear ", text))
    if n != total or n == 0:
        bad.append(f"{n} of {total} linear ops have a static scale")
    print(f"scales: {n} static linear ops match thresholds.{a.key} / 127")

for b in bad:
    print("FAIL", b)
sys.exit(1 if bad else 0)
