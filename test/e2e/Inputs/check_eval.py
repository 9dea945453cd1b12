"""Checks a `qwen-eval --json` result against quality bounds.

  check_eval.py EVAL.json [--max-mean-kl X] [--max-p99-kl X]
                [--min-same-top1 PCT] [--max-ppl X] [--max-ppl-ratio X]

Prints each measured value next to its bound and PASS, or exits 1 naming
every bound that was crossed. The bounds in the tests are set from a
measurement with headroom (see each test), so a quality regression of a
recipe fails CI.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--max-mean-kl", type=float)
    ap.add_argument("--max-p99-kl", type=float)
    ap.add_argument("--min-same-top1", type=float)
    ap.add_argument("--max-ppl", type=float)
    ap.add_argument("--max-ppl-ratio", type=float)
    o = ap.parse_args()
    r = json.load(open(o.json))
    checks = [("mean_kl", o.max_mean_kl, "<="), ("p99_kl", o.max_p99_kl, "<="),
              ("same_top1_percent", o.min_same_top1, ">="), ("perplexity", o.max_ppl, "<=")]
    bad = []
    for key, bound, op in checks:
        if bound is None:
            continue
        if key not in r:
            raise SystemExit(f"FAIL: {o.json} has no '{key}' (keys: {', '.join(sorted(r))})")
        v = r[key]
        ok = v <= bound if op == "<=" else v >= bound
        print(f"{key}: {v:.6g} (bound {op} {bound:g})")
        if not ok:
            bad.append(f"{key} {v:.6g} not {op} {bound:g}")
    if o.max_ppl_ratio is not None:
        ratio = r["perplexity"] / r["reference_perplexity"]
        print(f"ppl ratio: {ratio:.6g} (bound <= {o.max_ppl_ratio:g})")
        if ratio > o.max_ppl_ratio:
            bad.append(f"ppl ratio {ratio:.6g} > {o.max_ppl_ratio:g}")
    if bad:
        print("FAIL: " + "; ".join(bad))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
