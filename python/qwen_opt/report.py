"""qwen-report: compile a model with several recipes, measure each bundle on
this machine, and print the strategy table (text and Markdown) with a
size-vs-KL plot (SVG, the Pareto front drawn).

  qwen-report model.onnx --recipes fp32,w8a16,w4a16-g128,mixed-4.5,mixed-3.5 \\
      --text held-out.txt [--tokenizer tokenizer.json] [--calib-text calib.txt]
      [--out DIR] [--markdown table.md] [--json table.json] [--plot plot.svg]
      [--ctx 256] [--chunks N] [--runs 3] [--decode-tokens 32] [--threads N]
      [--progress auto|always|never]

Recipes:
  a named recipe (fp32, w8a16, w4a16-g128, ...) or a recipe file (*.json);
  uniform-<scheme>  every matrix (linear, LM head, embedding) in one scheme,
                    e.g. uniform-i4-g64, uniform-i3-g128 (a generated recipe
                    file: the named recipes keep the LM head and embedding at
                    8 bits, these do not, so they compare with mixed-* at
                    equal size);
  mixed-<bits>      mixed precision at <bits> stored bits per weight:
                    --qwen-sensitivity on the calibration text (once), then
                    --qwen-assign-precision{avg-bits=<bits>} writes a recipe
                    file (kept in --out with its assignment table) that
                    qwen-compile builds.

Per recipe: bundle size (weights.bin + model.so, MB = 1e6 bytes) and bits
per weight (the manifest's: stored bits of the linear / LM head / embedding
matrices per weight); prefill ms (a --prefill-tokens prompt, median of
--runs) and decode ms/token (--decode-tokens greedy tokens, median) from
qwen-run; perplexity, mean KL and same top-1 % against the fp32 bundle from
qwen-eval on the text (llama.cpp's chunking).
"""
import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

STATIC = {"w8a8"}


class Progress:
    """A bar on stderr: redrawn in place on a terminal, one line a step otherwise."""

    def __init__(self, total, mode):
        self.total, self.done, self.t0 = total, 0, time.time()
        self.tty = mode == "always" or (mode == "auto" and sys.stderr.isatty())
        self.quiet = mode == "never"

    def step(self, what):
        if self.quiet:
            return
        n, w = self.done, 30
        fill = int(w * n / max(self.total, 1))
        el = time.time() - self.t0
        line = f"[{'#' * fill}{'.' * (w - fill)}] {n}/{self.total} {el:5.0f}s {what}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def advance(self):
        self.done += 1

    def finish(self):
        if not self.quiet:
            self.done = self.total
            self.step("done")
            if self.tty:
                sys.stderr.write("\n")


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        sys.stderr.write("\n" + p.stdout + p.stderr)
        raise SystemExit(f"qwen-report: error: command failed: {' '.join(cmd)}")
    return p.stdout


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r":\s*([-+0-9.eE]+)", text, re.M)
    return float(m.group(1)) if m else None


def parse_scheme(s):
    """'i4-g64', 'cb4-channel', 'i4-g128-2:4' -> recipe-file override fields."""
    m = re.fullmatch(r"(cb|[iu])([2348])-(channel|tensor|g(32|64|128))(-asym)?(-2:4)?", s)
    if not m or (m.group(1) == "cb" and (m.group(5) or m.group(6))):
        raise SystemExit(f"qwen-report: error: bad scheme '{s}' (e.g. i4-g64, i8-channel, "
                         "cb4-channel, i4-g128-2:4)")
    if m.group(1) == "cb":
        o = {"bits": int(m.group(2)), "grid": "codebook"}
    else:
        o = {"bits": int(m.group(2)), "signed": m.group(1) == "i", "symmetric": not m.group(5)}
    if m.group(6):
        o["sparsity"] = "2:4"
    if m.group(4):
        o.update(granularity="group", group_size=int(m.group(4)))
    else:
        o["granularity"] = m.group(3)
    return o


def pareto(points):
    """Indices of the points no other point beats on both size and KL."""
    front = []
    for i, (s, k) in enumerate(points):
        if not any((s2 <= s and k2 <= k) and (s2 < s or k2 < k)
                   for j, (s2, k2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def svg_plot(all_rows, path, title):
    """Size (MB) against mean KL (log scale), a point per quantized recipe (the
    fp32 reference, KL 0, is named in the subtitle), the Pareto front drawn."""
    W, H, L, R, T, B = 760, 480, 80, 190, 50, 60
    ref = [r for r in all_rows if r["mean_kl"] <= 0]
    rows = [r for r in all_rows if r["mean_kl"] > 0]
    if not rows:
        rows = all_rows  # nothing quantized: plot the reference alone
    pts = [(r["size_mb"], r["mean_kl"]) for r in rows]
    kls = [k for _, k in pts if k > 0] or [1e-6]
    lo = math.floor(math.log10(min(kls)))
    hi = math.ceil(math.log10(max(kls)))
    if hi <= lo:
        hi = lo + 1
    smin0, smax0 = min(s for s, _ in pts), max(s for s, _ in pts)
    pad = max((smax0 - smin0) * 0.08, smax0 * 0.02, 1e-3)
    smin, smax = max(smin0 - pad, 0.0), smax0 + pad

    def x(s):
        return L + (s - smin) / (smax - smin) * (W - L - R)

    def y(k):
        v = math.log10(k) if k > 0 else lo
        return T + (hi - v) / (hi - lo) * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{esc(title)}</text>']
    if ref:
        o.append(f'<text x="{W / 2}" y="40" text-anchor="middle" fill="#555">reference '
                 f'{esc(ref[0]["recipe"])}: {ref[0]["size_mb"]:.3f} MB, KL 0 (not drawn)</text>')
    # Axes, grid and ticks.
    o.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
    o.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
    for e in range(lo, hi + 1):
        yy = y(10.0 ** e)
        o.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{W - R}" y2="{yy:.1f}" stroke="#ddd"/>')
        lab = f"1e{e}"
        o.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{lab}</text>')
    step = nice_step(smax - smin)
    s = math.ceil(smin / step) * step
    while s <= smax + 1e-9:
        xx = x(s)
        o.append(f'<line x1="{xx:.1f}" y1="{H - B}" x2="{xx:.1f}" y2="{H - B + 5}" stroke="black"/>')
        o.append(f'<text x="{xx:.1f}" y="{H - B + 18}" text-anchor="middle">{round(s, 6):g}</text>')
        s += step
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 15}" text-anchor="middle">bundle size (MB)</text>')
    o.append(f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 18 {(T + H - B) / 2})">mean KL vs fp32 (log)</text>')
    # Pareto front as a staircase.
    front = pareto(pts)
    if len(front) > 1:
        d = []
        for n, i in enumerate(front):
            xx, yy = x(pts[i][0]), y(pts[i][1])
            if n == 0:
                d.append(f"M{xx:.1f},{yy:.1f}")
            else:
                d.append(f"H{xx:.1f} V{yy:.1f}")
        o.append(f'<path d="{" ".join(d)}" fill="none" stroke="#d62728" stroke-width="1.5" '
                 f'stroke-dasharray="5,3"/>')
    placed = []  # label boxes (x0, y0, x1, y1), to keep labels apart

    def label_at(xx, yy, text):
        w, h = 6.6 * len(text), 12
        tries = [(7, -6), (7, 14), (-7 - w, -6), (-7 - w, 14), (7, -18), (7, 26),
                 (-7 - w, -18), (-7 - w, 26), (-w / 2, -10), (-w / 2, 22), (7, -30),
                 (-7 - w, -30), (7, 38), (-7 - w, 38)]
        first = None
        for dx, dy in tries:
            box = (xx + dx, yy + dy - h + 2, xx + dx + w, yy + dy + 2)
            if box[0] < L + 2 or box[2] > W - 4 or box[1] < T - 8 or box[3] > H - B - 2:
                continue  # keep labels inside the plot
            first = first or box
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in placed):
                break
        else:
            box = first or (xx + 7, yy - 16, xx + 7 + w, yy - 4)
        placed.append(box)
        return box[0], box[3] - 2

    for i, r in enumerate(rows):
        xx, yy = x(pts[i][0]), y(pts[i][1])
        placed.append((xx - 5, yy - 5, xx + 5, yy + 5))
    for i, r in enumerate(rows):
        xx, yy = x(pts[i][0]), y(pts[i][1])
        on = i in front
        color = "#d62728" if on else "#1f77b4"
        shape = (f'<rect x="{xx - 4:.1f}" y="{yy - 4:.1f}" width="8" height="8" fill="{color}"/>'
                 if r["recipe"].startswith("mixed") else
                 f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="4.5" fill="{color}"/>')
        o.append(shape)
        lx_, ly_ = label_at(xx, yy, r["recipe"])
        o.append(f'<text x="{lx_:.1f}" y="{ly_:.1f}">{esc(r["recipe"])}</text>')
    # Legend.
    lx = W - R + 15
    o.append(f'<circle cx="{lx}" cy="{T + 10}" r="4.5" fill="#1f77b4"/>'
             f'<text x="{lx + 10}" y="{T + 14}">uniform recipe</text>')
    o.append(f'<rect x="{lx - 4}" y="{T + 26}" width="8" height="8" fill="#1f77b4"/>'
             f'<text x="{lx + 10}" y="{T + 34}">mixed precision</text>')
    o.append(f'<line x1="{lx - 6}" y1="{T + 50}" x2="{lx + 6}" y2="{T + 50}" stroke="#d62728" '
             f'stroke-dasharray="5,3" stroke-width="1.5"/><text x="{lx + 10}" y="{T + 54}">'
             f'Pareto front (red)</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    allpts = [(r["size_mb"], r["mean_kl"]) for r in all_rows]
    return [all_rows[i]["recipe"] for i in pareto(allpts)]


def nice_step(span):
    raw = span / 6
    p = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if m * p >= raw:
            return m * p
    return 10 * p


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --qwen-sensitivity's default candidates (MixedPrecision.cpp).
CANDIDATES = ["i8-channel", "i4-g32", "i4-g128", "i3-g128", "i2-g64", "cb4-channel",
              "i4-g128-2:4"]


def time_bundle(tool, b, o):
    """Median prefill ms of a --prefill-tokens prompt and decode ms/token."""
    prompt = ",".join(str(1 + i % 200) for i in range(o.prefill_tokens))
    pre, dec = [], []
    for _ in range(o.runs):
        cmd = [tool("qwen-run"), b, "--prompt-ids", prompt, "--max-new-tokens",
               str(o.decode_tokens), "--ignore-eos"]
        if o.threads:
            cmd += ["--threads", str(o.threads)]
        out = run(cmd)
        m = re.search(r"^prefill: (\d+) tokens, ([0-9.]+) ms", out, re.M)
        pre.append(float(m.group(2)))
        m = re.search(r"^decode: (\d+) tokens, ([0-9.]+) ms", out, re.M)
        dec.append(float(m.group(2)) / max(int(m.group(1)), 1))
    return statistics.median(pre), statistics.median(dec)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="qwen-report", description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--recipes", default="fp32,w8a16,w4a16-g128,mixed-4.5,mixed-3.5")
    ap.add_argument("--text", required=True, help="held-out text for perplexity and KL")
    ap.add_argument("--tokenizer", help="default: tokenizer.json next to the model")
    ap.add_argument("--calib-text", help="mixed-*: calibration text (default: calib.txt next to the model)")
    ap.add_argument("--calib-seqs", type=int, default=8)
    ap.add_argument("--calib-len", type=int, default=128)
    ap.add_argument("--calib", help="stats.json from qwen-calibrate (w8a8)")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prefill-tokens", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bin-dir", default=os.environ.get("QWEN_BIN_DIR", "build/bin"))
    ap.add_argument("--out", default="out/report")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    ap.add_argument("--plot", help="size-vs-KL plot (SVG); default OUT/plot.svg")
    ap.add_argument("--progress", choices=["auto", "always", "never"], default="auto")
    ap.add_argument("--cost-model", help="kernel timings JSON for mixed-lat-<ms> recipes")
    ap.add_argument("--cost-model-out",
                    help="measure the kernel cost model on this machine first (decode of "
                         "uniform-<scheme> bundles) and write it here; mixed-lat-* use it")
    o = ap.parse_args(argv)

    tool = lambda t: os.path.join(o.bin_dir, t)
    for t in ("qwen-compile", "qwen-eval", "qwen-run", "qwen-opt", "qwen-tokenize"):
        if not os.path.exists(tool(t)):
            raise SystemExit(f"qwen-report: error: {tool(t)} not found (--bin-dir)")
    mdir = os.path.dirname(os.path.abspath(o.model))
    tok = o.tokenizer or os.path.join(mdir, "tokenizer.json")
    if not os.path.exists(tok):
        raise SystemExit(f"qwen-report: error: no tokenizer '{tok}' (--tokenizer)")
    os.makedirs(o.out, exist_ok=True)
    recipes = [r for r in o.recipes.split(",") if r]
    if "fp32" in recipes:
        recipes.remove("fp32")
    recipes = ["fp32"] + recipes  # the reference comes first
    for r in recipes:
        if r in STATIC and not o.calib:
            raise SystemExit(f"qwen-report: error: recipe {r} needs --calib stats.json")
        if r.startswith("mixed-"):
            try:
                float(r[10:] if r.startswith("mixed-lat-") else r[6:])
                if r.startswith("mixed-lat-") and not (o.cost_model or o.cost_model_out):
                    raise SystemExit(f"qwen-report: error: {r} needs --cost-model "
                                     f"(make one with --cost-model-out)")
            except ValueError:
                raise SystemExit(f"qwen-report: error: bad mixed recipe '{r}' (mixed-<bits>, e.g. mixed-4.5)")
        if r.startswith("uniform-"):
            parse_scheme(r[8:])
    mixed = [r for r in recipes if r.startswith("mixed-")]
    prog = Progress(len(recipes) * 3 + (2 if mixed else 0) +
                    (len(CANDIDATES) if o.cost_model_out else 0), o.progress)

    if o.cost_model_out:
        # Decode ms/token of a bundle with every matrix in one scheme, over its
        # number of matrix weights: the time per weight of that scheme's
        # kernels on this machine (the rest of a decode step folded in).
        kernels, measured = {}, {}
        for c in CANDIDATES:
            prog.step(f"cost model: time uniform-{c}")
            rf = os.path.join(o.out, f"uniform-{c}.recipe.json")
            with open(rf, "w") as f:
                json.dump({"base": "fp32", "layers": {"*": parse_scheme(c)}}, f)
            b = os.path.join(o.out, f"uniform-{c}")
            run([tool("qwen-compile"), o.model, "--tokenizer", tok, "--recipe", rf, "-o", b])
            man = json.load(open(os.path.join(b, "manifest.json")))
            nw = man["recipe"]["quantizable_weights"]
            _, dec = time_bundle(tool, b, o)
            kernels[c] = {"ns_per_weight": dec * 1e6 / nw, "us_per_call": 0.0}
            measured[c] = {"decode_ms_per_token": dec, "weights": nw}
            prog.advance()
        with open(o.cost_model_out, "w") as f:
            json.dump({"target": "host", "model": o.model, "threads": o.threads,
                       "method": "decode ms/token of uniform-<scheme> bundles / matrix weights",
                       "kernels": kernels, "measured": measured}, f, indent=2)

    sens_mlir = None
    if mixed:
        calib = o.calib_text or os.path.join(mdir, "calib.txt")
        if not os.path.exists(calib):
            raise SystemExit(f"qwen-report: error: mixed recipes need --calib-text (no '{calib}')")
        prog.step("raise the float model")
        fl = os.path.join(o.out, "float.mlir")
        run([tool("qwen-compile"), o.model, "--emit=mlir", "-o", fl])
        with open(calib) as f:
            ids = [int(t) for t in run([tool("qwen-tokenize"), "--whole", tok], input=f.read()).split()]
        n = o.calib_seqs * o.calib_len
        if len(ids) < n:
            raise SystemExit(f"qwen-report: error: '{calib}' has {len(ids)} tokens, "
                             f"--calib-seqs x --calib-len needs {n}")
        toks = os.path.join(o.out, "calib-tokens.json")
        with open(toks, "w") as f:
            json.dump({"sequences": [ids[i * o.calib_len:(i + 1) * o.calib_len]
                                     for i in range(o.calib_seqs)]}, f)
        prog.advance()
        prog.step(f"sensitivity: {o.calib_seqs} x {o.calib_len} tokens, 5 schemes per layer")
        sens_mlir = os.path.join(o.out, "sensitivity.mlir")
        sens = f"--qwen-sensitivity=calib-tokens={toks}"
        if o.cost_model or o.cost_model_out:
            sens += f" cost-model={o.cost_model or o.cost_model_out}"
        run([tool("qwen-opt"), fl, sens, "-o", sens_mlir])
        prog.advance()

    rows = []
    ref = os.path.join(o.out, "fp32")
    for r in recipes:
        safe = r.replace("/", "_")
        b = os.path.join(o.out, os.path.basename(safe[:-5]) if safe.endswith(".json") else safe)
        prog.step(f"compile {r}")
        recipe_arg, assignment = r, None
        if r.startswith("mixed-"):
            rf = os.path.join(o.out, f"{r}.recipe.json")
            assignment = run([tool("qwen-opt"), sens_mlir,
                              f"--qwen-assign-precision="
                              + (f"latency-ms={r[10:]}" if r.startswith("mixed-lat-")
                                 else f"avg-bits={r[6:]}")
                              + f" print-assignment recipe-out={rf}",
                              "-o", os.devnull])
            with open(os.path.join(o.out, f"{r}.assignment.txt"), "w") as f:
                f.write(assignment)
            recipe_arg = rf
        elif r.startswith("uniform-"):
            rf = os.path.join(o.out, f"{r}.recipe.json")
            with open(rf, "w") as f:
                json.dump({"base": "fp32", "layers": {"*": parse_scheme(r[8:])}}, f)
            recipe_arg = rf
        cmd = [tool("qwen-compile"), o.model, "--tokenizer", tok, "--recipe", recipe_arg, "-o", b]
        if r in STATIC:
            cmd += ["--calib", o.calib]
        run(cmd)
        man = json.load(open(os.path.join(b, "manifest.json")))
        size = sum(f["bytes"] for f in man["files"] if f["path"] in ("weights.bin", "model.so"))
        wbytes = sum(f["bytes"] for f in man["files"] if f["path"] == "weights.bin")
        bpw = man.get("recipe", {}).get("bits_per_weight", 32.0)
        prog.advance()

        prog.step(f"evaluate {r} on {os.path.basename(o.text)}")
        ev = [tool("qwen-eval"), b, "--text", o.text, "--ctx", str(o.ctx)]
        if o.chunks:
            ev += ["--chunks", str(o.chunks)]
        if o.threads:
            ev += ["--threads", str(o.threads)]
        if r != "fp32":
            ev += ["--reference", ref]
        e = run(ev)
        prog.advance()

        prog.step(f"time {r}: prefill {o.prefill_tokens}, decode {o.decode_tokens} tokens")
        pre, dec = time_bundle(tool, b, o)
        prog.advance()
        rows.append(dict(
            recipe=r, size_mb=size / 1e6, weights_mb=wbytes / 1e6, bits_per_weight=bpw,
            prefill_ms=pre, decode_ms_per_token=dec,
            perplexity=metric(e, "perplexity"),
            mean_kl=0.0 if r == "fp32" else metric(e, "mean KL"),
            p99_kl=0.0 if r == "fp32" else metric(e, "p99 KL"),
            same_top1=100.0 if r == "fp32" else metric(e, "same top-1"),
            tokens_scored=int(metric(e, "tokens scored") or 0),
            predicted_kl=(float(re.search(r"predicted loss ([-+0-9.eE]+)", assignment).group(1))
                          if assignment else None)))
    prog.finish()

    plot = o.plot or os.path.join(o.out, "plot.svg")
    front = svg_plot(rows, plot, f"{os.path.basename(mdir)}: size vs mean KL "
                                 f"({rows[0]['tokens_scored']} tokens)")

    hdr = ["strategy", "size MB", "bits/weight", "prefill ms", "decode ms/token", "perplexity",
           "mean KL", "same top-1 %"]

    def cells(x):
        return [x["recipe"] + (" *" if x["recipe"] in front else ""), f"{x['size_mb']:.3f}",
                f"{x['bits_per_weight']:.2f}", f"{x['prefill_ms']:.2f}",
                f"{x['decode_ms_per_token']:.3f}", f"{x['perplexity']:.3f}",
                "0" if x["recipe"] == "fp32" else f"{x['mean_kl']:.3e}", f"{x['same_top1']:.2f}"]
    table = [hdr] + [cells(x) for x in rows]
    w = [max(len(row[i]) for row in table) for i in range(len(hdr))]
    text = "\n".join("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(row))
                     for row in table)
    note = (f"model {o.model}; text {o.text}, ctx {o.ctx}, {rows[0]['tokens_scored']} tokens "
            f"scored; size = weights.bin + model.so (1 MB = 1e6 bytes); prefill: a "
            f"{o.prefill_tokens}-token prompt, decode: {o.decode_tokens} greedy tokens, median of "
            f"{o.runs} runs{f', {o.threads} threads' if o.threads else ''}; * = on the Pareto "
            f"front of size vs mean KL")
    if mixed:
        note += (f"; mixed-*: --qwen-sensitivity on {o.calib_seqs} x {o.calib_len} tokens of "
                 f"the calibration text, --qwen-assign-precision{{avg-bits}}")
    print(text)
    print(note)
    print(f"plot: {plot}")
    md = "| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr) + "\n"
    md += "".join("| " + " | ".join(cells(x)) + " |\n" for x in rows)
    md += "\n" + note + "\n"
    if o.markdown:
        with open(o.markdown, "w") as f:
            f.write(md)
    if o.json:
        with open(o.json, "w") as f:
            json.dump({"rows": rows, "pareto": front, "plot": plot}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
