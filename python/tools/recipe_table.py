"""Compiles one ONNX model with several recipes and measures each bundle.

  python/tools/recipe_table.py MODEL.onnx --tokenizer tokenizer.json --text held-out.txt
      [--recipes fp32,w8a16,...] [--calib stats.json] [--ctx 256] [--chunks N]
      [--build-dir build] [--out DIR] [--markdown table.md] [--json table.json]

For each recipe: `qwen-compile --recipe R` (with `--calib` for static
activation recipes), bundle size (weights.bin + model.so) and bits per weight
from the manifest, `qwen-eval --reference <fp32 bundle>` on the text
(perplexity, mean KL, p99 KL, same top-1 %, llama.cpp's chunking), and decode
tokens/s from `qwen-run` (median of --runs runs of --decode-tokens greedy
tokens after a 32-token prompt). Prints a text table and writes Markdown /
JSON. This is the measurement behind the notes' recipe tables; `qwen-report`
(issue 7) grows out of it.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

STATIC = {"w8a8"}


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)}")
    return p.stdout


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r":\s*([-+0-9.eE]+)", text, re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--recipes", default="fp32,w8a16,w8a8-dyn,w8a8,w4a16-g128,w4a16-g32,w3a16-g128")
    ap.add_argument("--calib", help="stats.json from qwen-calibrate (static-activation recipes)")
    ap.add_argument("--calib-method", help="forwarded to qwen-compile --calib-method")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--out", default="out/recipes")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    o = ap.parse_args()

    bindir = os.path.join(o.build_dir, "bin")
    tool = lambda t: os.path.join(bindir, t)
    os.makedirs(o.out, exist_ok=True)
    recipes = o.recipes.split(",")
    if recipes[0] != "fp32":
        recipes = ["fp32"] + [r for r in recipes if r != "fp32"]
    rows = []
    for r in recipes:
        if r in STATIC and not o.calib:
            print(f"[table] skip {r}: needs --calib", file=sys.stderr)
            continue
        b = os.path.join(o.out, r)
        cmd = [tool("qwen-compile"), o.model, "--tokenizer", o.tokenizer, "--recipe", r, "-o", b]
        if r in STATIC:
            cmd += ["--calib", o.calib]
            if o.calib_method:
                cmd += ["--calib-method", o.calib_method]
        print(f"[table] compile {r}", file=sys.stderr)
        run(cmd)
        man = json.load(open(os.path.join(b, "manifest.json")))
        size = sum(f["bytes"] for f in man["files"] if f["path"] in ("weights.bin", "model.so"))
        bpw = man.get("recipe", {}).get("bits_per_weight", 32.0 if r == "fp32" else None)
        ev = [tool("qwen-eval"), b, "--text", o.text, "--ctx", str(o.ctx)]
        if o.chunks:
            ev += ["--chunks", str(o.chunks)]
        if o.threads:
            ev += ["--threads", str(o.threads)]
        if r != "fp32":
            ev += ["--reference", os.path.join(o.out, "fp32")]
        print(f"[table] eval {r}", file=sys.stderr)
        e = run(ev)
        prompt = ",".join(str(i) for i in range(1, 33))
        rates = []
        for _ in range(o.runs):
            cmd = [tool("qwen-run"), b, "--prompt-ids", prompt, "--max-new-tokens",
                   str(o.decode_tokens), "--ignore-eos"]
            if o.threads:
                cmd += ["--threads", str(o.threads)]
            out = run(cmd)
            m = re.search(r"^decode: \d+ tokens, [0-9.]+ ms, ([0-9.]+) tokens/s", out, re.M)
            rates.append(float(m.group(1)))
        rows.append(dict(
            recipe=r, size_mb=size / 1e6, bits_per_weight=bpw,
            perplexity=metric(e, "perplexity"),
            mean_kl=0.0 if r == "fp32" else metric(e, "mean KL"),
            p99_kl=0.0 if r == "fp32" else metric(e, "p99 KL"),
            same_top1=100.0 if r == "fp32" else metric(e, "same top-1"),
            decode_tok_s=statistics.median(rates),
            tokens_scored=metric(e, "tokens scored")))

    hdr = ["recipe", "size MB", "bits/weight", "perplexity", "mean KL", "p99 KL",
           "same top-1 %", "decode tok/s"]

    def cells(x):
        bpw = x["bits_per_weight"]
        return [x["recipe"], f"{x['size_mb']:.2f}", "-" if bpw is None else f"{bpw:.2f}",
                f"{x['perplexity']:.3f}", f"{x['mean_kl']:.5f}", f"{x['p99_kl']:.5f}",
                f"{x['same_top1']:.2f}", f"{x['decode_tok_s']:.1f}"]
    table = [hdr] + [cells(x) for x in rows]
    w = [max(len(row[i]) for row in table) for i in range(len(hdr))]
    for row in table:
        print("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(row)))
    md = "| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) + "\n"
    md += "".join("| " + " | ".join(cells(x)) + " |\n" for x in rows)
    md += (f"\nmodel {o.model}; text {o.text}, ctx {o.ctx}, "
           f"{int(rows[0]['tokens_scored'] or 0)} tokens scored (llama.cpp chunking); "
           f"decode: median of {o.runs} runs of {o.decode_tokens} tokens after a 32-token prompt\n")
    if o.markdown:
        open(o.markdown, "w").write(md)
    if o.json:
        json.dump(rows, open(o.json, "w"), indent=2)


if __name__ == "__main__":
    main()
