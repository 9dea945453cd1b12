#!/usr/bin/env python3
"""Runs two bundles on the same tokens (a seeded prompt, then greedy steps of
the first bundle fed to both) and checks that their logits are bit-identical:
for compilations that must not change numerics (e.g. --qwen-fuse-act-quant on
and off). Prints the number of positions compared and OK, or the first
difference and exits 1."""

import argparse
import sys

import numpy as np

from paired_runs import greedy_pair  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    o = ap.parse_args()

    ra, rb = greedy_pair(o.a, o.b, o.prompt_len, o.steps, o.seed, o.threads)
    ra, rb = np.array(ra, np.float32), np.array(rb, np.float32)
    if not np.isfinite(ra).all():
        print("FAIL: non-finite logits")
        sys.exit(1)
    diff = np.argwhere(ra.view(np.uint32) != rb.view(np.uint32))
    if len(diff):
        p, v = diff[0]
        print(f"FAIL: {len(diff)} logits differ; first at position {p} token {v}: "
              f"{ra[p, v]!r} vs {rb[p, v]!r} (max abs diff {np.abs(ra - rb).max():.3e})")
        sys.exit(1)
    print(f"positions={len(ra)} vocab={ra.shape[1]} OK: bit-identical")


if __name__ == "__main__":
    main()
