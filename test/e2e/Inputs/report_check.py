"""Checks qwen-report's outputs: report_check.py REPORT.json TABLE.md PLOT.svg
[--mixed-beats RECIPE_MIXED RECIPE_UNIFORM]...: every row measured, fp32
first with KL 0, the Markdown table has a row per recipe, the SVG parses and
has a point per recipe, a mixed-<b> recipe stores at most b bits per weight,
and (--mixed-beats) the mixed recipe is no larger than the uniform one and
has a lower mean KL."""
import argparse
import json
import math
import xml.dom.minidom

ap = argparse.ArgumentParser()
ap.add_argument("json")
ap.add_argument("md")
ap.add_argument("svg")
ap.add_argument("--mixed-beats", nargs=2, action="append", default=[])
o = ap.parse_args()
r = json.load(open(o.json))
rows = {x["recipe"]: x for x in r["rows"]}
assert r["rows"][0]["recipe"] == "fp32" and r["rows"][0]["mean_kl"] == 0
for x in r["rows"]:
    for k in ("size_mb", "bits_per_weight", "prefill_ms", "decode_ms_per_token", "perplexity",
              "mean_kl", "same_top1"):
        assert x[k] is not None and math.isfinite(x[k]) and x[k] >= 0, (x["recipe"], k, x[k])
    if x["recipe"].startswith("mixed-") and not x["recipe"].startswith("mixed-lat-"):
        assert x["bits_per_weight"] <= float(x["recipe"][6:]) + 1e-9, x
        assert x["predicted_kl"] is not None
    print(f"row {x['recipe']} bpw {x['bits_per_weight']:.2f}")
md = open(o.md).read()
assert md.startswith("| strategy | size MB | bits/weight | prefill ms | decode ms/token | "
                     "perplexity | mean KL | same top-1 % |"), md[:200]
for name in rows:
    assert f"| {name} " in md, name
svg = xml.dom.minidom.parse(o.svg)
texts = [t.firstChild.data for t in svg.getElementsByTagName("text") if t.firstChild]
for name in rows:
    if name == "fp32":  # the reference (KL 0) is named in the subtitle
        assert any(t.startswith("reference fp32:") for t in texts), texts
    else:
        assert name in texts, name
assert r["pareto"] and "fp32" in r["pareto"]
assert svg.getElementsByTagName("path"), "no Pareto front drawn"
for m, u in o.mixed_beats:
    a, b = rows[m], rows[u]
    # The weights the budget assigns (weights.bin), not model.so: with the
    # fused weight-only kernels (QuantKernels.cpp) the code depends on the mix
    # of schemes (~10-25 kB on this 2.9 MB model), which is no weight size.
    assert a["weights_mb"] <= b["weights_mb"] + 1e-9, (a["weights_mb"], b["weights_mb"])
    assert a["mean_kl"] < b["mean_kl"], (m, a["mean_kl"], u, b["mean_kl"])
    print(f"{m} beats {u}")
print("PASS")
