"""The perplexity and KL numbers qwen-eval must print for bundles around the
fake model.so (unittests/Runtime/FakeModel.c), computed from its formula.

    fake_eval_reference.py BUNDLE TEXT --vocab V --scale S [--ref-scale R]
                           --ctx N [--chunks N] --compare QWEN_EVAL.json

At position p of a fresh session the fake model's logits are
10 * scale at target = (sum of ids[0..p] + p) mod V, plus 0.001 * (v mod 7),
plus 0.01 * ((sum of t*t + sum of positions + rows) mod 13) for every v,
computed in double and rounded to float32 in the model's order. The ids come from BUNDLE's tokenizer (through the
runtime's Python binding). Scoring as llama.cpp: positions ctx/2 .. ctx-2 of
each chunk predict the next id. Checks the JSON's perplexity, reference
perplexity, mean/median/p99/max KL and same-top-1 within a relative 1e-11 (and
1e-15 absolute); prints PASS or FAIL (exit 1).
"""

import argparse
import json
import math
import sys

import numpy as np

from qwen_opt.runtime import Bundle


def log_softmax(scale, target, shared, V):
    # The model's own order of float64 operations, then its float32 rounding.
    onehot = np.zeros(V)
    onehot[target] = 10.0 * scale
    x = (onehot + shared) + 0.001 * (np.arange(V) % 7).astype(np.float64)
    x = x.astype(np.float32).astype(np.float64)
    m = x.max()
    return x - (m + math.log(np.exp(x - m).sum()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("text")
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--ref-scale", type=float)
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--compare", required=True)
    a = ap.parse_args()

    with open(a.text, "rb") as f:
        ids = Bundle(a.bundle).tokenize(f.read().decode("utf-8"))
    V, ctx = a.vocab, a.ctx
    n_chunks = len(ids) // ctx
    if a.chunks:
        n_chunks = min(n_chunks, a.chunks)
    nll, rnll, kls, same = [], [], [], 0
    for c in range(n_chunks):
        chunk = ids[c * ctx:(c + 1) * ctx]
        for p in range(ctx // 2, ctx - 1):
            target = (sum(chunk[:p + 1]) + p) % V
            # Rows 0..p: sum of t*t, of positions, and the count.
            rows = sum(t * t for t in chunk[:p + 1]) + p * (p + 1) // 2 + p + 1
            shared = 0.01 * (rows % 13)
            lt = log_softmax(a.scale, target, shared, V)
            nll.append(-lt[chunk[p + 1]])
            if a.ref_scale is not None:
                lr = log_softmax(a.ref_scale, target, shared, V)
                rnll.append(-lr[chunk[p + 1]])
                kls.append(float((np.exp(lr) * (lr - lt)).sum()))
                same += int(lt.argmax() == lr.argmax())
    want = {"tokens_scored": len(nll), "perplexity": math.exp(np.mean(nll))}
    if a.ref_scale is not None:
        want.update({
            "reference_perplexity": math.exp(np.mean(rnll)),
            "mean_kl": float(np.mean(kls)),
            "median_kl": float(np.median(kls)),
            "p99_kl": float(np.percentile(kls, 99)),  # linear at 0.99 * (n - 1)
            "max_kl": max(kls),
            "same_top1_percent": 100.0 * same / len(kls),
        })
    with open(a.compare) as f:
        got = json.load(f)
    ok = True
    for k, v in want.items():
        g = got[k]
        good = abs(g - v) <= 1e-15 + 1e-11 * abs(v)
        ok &= good
        print(f"{k}: want {v!r} got {g!r} {'ok' if good else 'MISMATCH'}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
