"""A quantized bundle against the fp32 bundle of the same model.

  run_recipe_e2e.py FP32_BUNDLE QUANT_BUNDLE --max-kl K --max-rel R
                    [--steps 16] [--prompt-len 8] [--seed 0] [--threads 2]

Both bundles run through the runtime on the same tokens: a seeded random
prompt, then `steps` tokens chosen greedily by the fp32 bundle and fed to
both (teacher forcing, so one early flip does not change every later row).
For every position (prefill rows and decode steps):

  kl        KL(softmax(fp32) || softmax(quantized)), natural log
  rel       max |quant - fp32| / max(1, max |fp32|)
  top1      whether the argmax agrees

Prints the mean and max KL, the max rel, the top-1 agreement and the bundle
sizes (weights.bin), and fails when mean KL > K or max rel > R.
"""
import argparse
import json
import os
import sys

import numpy as np

from paired_runs import greedy_pair  # noqa: E402
from qwen_opt.metrics import kl_rel, verdict  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32")
    ap.add_argument("quant")
    ap.add_argument("--max-kl", type=float, required=True)
    ap.add_argument("--max-rel", type=float, required=True)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    o = ap.parse_args()

    ref_rows, q_rows = greedy_pair(o.fp32, o.quant, o.prompt_len, o.steps, o.seed, o.threads)
    ref_rows, q_rows = np.array(ref_rows, np.float64), np.array(q_rows, np.float64)
    if not np.isfinite(q_rows).all():
        print("FAIL: the quantized bundle produced NaN or Inf logits")
        sys.exit(1)
    kl, rel = kl_rel(ref_rows, q_rows)
    top1 = (ref_rows.argmax(-1) == q_rows.argmax(-1)).mean()

    def size(b):
        return os.path.getsize(os.path.join(b, "weights.bin"))

    recipe = json.load(open(os.path.join(o.quant, "manifest.json")))["recipe"]
    print(f"recipe {recipe['name']}: bits_per_weight={recipe['bits_per_weight']} "
          f"schemes={json.dumps(recipe['schemes'], sort_keys=True)}")
    print(f"weights.bin: fp32 {size(o.fp32)} bytes, quantized {size(o.quant)} bytes "
          f"({size(o.quant) / size(o.fp32):.3f})")
    print(f"positions={len(kl)} mean_kl={kl.mean():.3e} max_kl={kl.max():.3e} "
          f"max_rel={rel.max():.3e} top1={top1:.3f}")
    bad = []
    if kl.mean() > o.max_kl:
        bad.append(f"mean KL {kl.mean():.3e} > {o.max_kl:.3e}")
    if rel.max() > o.max_rel:
        bad.append(f"max rel err {rel.max():.3e} > {o.max_rel:.3e}")
    verdict(bad)


if __name__ == "__main__":
    main()
