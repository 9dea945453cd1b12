#!/usr/bin/env python3
"""Quantized-recipe benchmark: qwen-opt bundles per recipe against onnxruntime fp32 (same ONNX).

Usage (from the repository root; model from bench/make_model.py):

    .venv/bin/python bench/bench_quant.py --model bench/out/qwen2.5-0.5b/model.onnx \
        --recipes fp32,w8a16,w4a16-g128,w4a16-g32 [--prompt-len 64] [--new-tokens 32] [--runs 3] \
        [--build-dir build] [--out-dir DIR] [--reuse-bundle] [--skip-ort] [--markdown out.md] [--json out.json]

Reuses bench_fp32.py's machinery (bandwidth, onnxruntime worker, qwen-compile/qwen-run parsing):
  1. memory read bandwidth (numpy, see bench_fp32.measure_bandwidth);
  2. onnxruntime fp32 (unless --skip-ort): prefill and decode tok/s;
  3. per recipe: `qwen-compile MODEL --target T --recipe R -o OUT/bundle-R` (or reuse), then
     --runs x `qwen-run` (median);
  4. the table: prefill / decode tok/s, the recipe's own decode bound = bandwidth / bytes read per
     decode token (weights.bin of the bundle, minus the embedding table when it is only gathered,
     i.e. not tied to the LM head), % of that bound, and ratios against onnxruntime fp32 and the
     qwen-opt fp32 bundle.
Timings are medians; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fp32 as B  # noqa: E402


def per_token_bytes(bundle: Path, fp32_info: dict) -> int:
    """Bytes one decode step reads from weights.bin: all of it, minus tables only gathered."""
    man = json.loads((bundle / "manifest.json").read_text())
    total = (bundle / "weights.bin").stat().st_size
    tied = bool(man.get("config", {}).get("tie_word_embeddings", False)) if isinstance(man.get("config"), dict) else False
    if tied or not fp32_info["gather_only_bytes"]:
        return total
    # untied: the embedding is only gathered; its stored size scales like the rest
    frac = fp32_info["gather_only_bytes"] / fp32_info["total_bytes"]
    return int(total * (1 - frac))


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] in (["--_ort-worker"], ["--_bw-worker"]):
        return B.main(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=B.DEFAULT_MODEL)
    ap.add_argument("--recipes", default="fp32,w8a16,w4a16-g128,w4a16-g32")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="onnxruntime intra_op threads; with 1, also pass --qwen-run-args='--threads 1' (the bound then uses one thread's bandwidth)")
    ap.add_argument("--build-dir")
    ap.add_argument("--qwen-compile")
    ap.add_argument("--qwen-run")
    ap.add_argument("--out-dir", type=Path, help="bundles go to OUT/bundle-<recipe> (default: the model's folder)")
    ap.add_argument("--reuse-bundle", action="store_true")
    ap.add_argument("--target", default="host")
    ap.add_argument("--prompt-ids-sep", default=",")
    ap.add_argument("--qwen-run-args", default="")
    ap.add_argument("--compile-args", default="")
    ap.add_argument("--compile-timeout", type=float, default=None)
    ap.add_argument("--run-timeout", type=float, default=None)
    ap.add_argument("--skip-ort", action="store_true")
    ap.add_argument("--bw-gib", type=float, default=1.0)
    ap.add_argument("--bw-runs", type=int, default=5)
    ap.add_argument("--label", default="", help="a label for this run in the report (e.g. before / after)")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.model.is_dir():
        args.model = args.model / "model.onnx"
    args.model = args.model.resolve()
    out_dir = (args.out_dir or args.model.parent).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    weights = B.weight_bytes_per_token(args.model)
    prompt_ids = [int(x) for x in np.random.RandomState(args.seed).randint(0, 151643, size=args.prompt_len)]
    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())

    def bandwidth():
        rc, out, err, _, _ = B.run_measured([sys.executable, str(Path(B.__file__).resolve()), "--_bw-worker",
                                             json.dumps(dict(gib=args.bw_gib, runs=args.bw_runs, threads=cores))])
        return json.loads(out.strip().splitlines()[-1]) if rc == 0 else None

    B.log("[bench] bandwidth ...")
    bw = bandwidth()
    o = dict(ok=False, error="skipped")
    if not args.skip_ort:
        B.log("[bench] onnxruntime fp32 ...")
        o = B.bench_ort(args, prompt_ids)
    res = {}
    for r in args.recipes.split(","):
        a = argparse.Namespace(**vars(args))
        a.bundle = str(out_dir / f"bundle-{r}")
        a.compile_args = (args.compile_args + ("" if r == "fp32" else f" --recipe {r}")).strip()
        B.log(f"[bench] qwen-opt {r} ...")
        q = B.bench_qwen(a, prompt_ids)
        if q.get("ok"):
            q["bytes_per_token"] = per_token_bytes(Path(a.bundle), weights)
        else:
            B.log(f"[bench] {r}: {q.get('error')}")
        res[r] = q
    bw2 = bandwidth()
    if bw is None or (bw2 is not None and bw2["bw"] > bw["bw"]):
        bw = bw2
    if args.threads == 1:  # one thread each side: the bound is one thread's bandwidth
        bw = dict(bw, bw=bw["kernels"]["sum 1 thread"], kernel="sum 1 thread")
    hdr = ["recipe", "weights MB/token", "prefill tok/s", "decode tok/s", "decode bound tok/s", "% of bound",
           "decode vs ort fp32", "decode vs qwen fp32", "prefill vs ort fp32"]
    rows = []
    if o.get("ok"):
        ob = bw["bw"] / weights["per_token_bytes"]
        rows.append(["onnxruntime fp32", f"{weights['per_token_bytes'] / 1e6:.0f}", f"{o['prefill_tps']:.1f}",
                     f"{o['decode_tps']:.2f}", f"{ob:.2f}", f"{100 * o['decode_tps'] / ob:.1f}", "1.00x", "", "1.00x"])
    fp = res.get("fp32", {})
    for r, q in res.items():
        if not q.get("ok"):
            rows.append([r, "", "FAILED", "", "", "", "", "", ""])
            continue
        bound = bw["bw"] / q["bytes_per_token"]
        rows.append([
            f"qwen-opt {r}", f"{q['bytes_per_token'] / 1e6:.0f}", f"{q['prefill_tps']:.1f}", f"{q['decode_tps']:.2f}",
            f"{bound:.2f}", f"{100 * q['decode_tps'] / bound:.1f}",
            f"{q['decode_tps'] / o['decode_tps']:.2f}x" if o.get("ok") else "n/a",
            f"{q['decode_tps'] / fp['decode_tps']:.2f}x" if fp.get("ok") else "n/a",
            f"{q['prefill_tps'] / o['prefill_tps']:.2f}x" if o.get("ok") else "n/a",
        ])
    md = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    notes = [
        f"{args.label + ': ' if args.label else ''}model {args.model.name}, prompt {args.prompt_len} random ids, "
        f"{args.new_tokens} new tokens, median of {args.runs} runs after {args.warmup} warm-up; "
        f"{cores} cores ({B.cpu_model()}), load average {loadavg} at start",
        f"bandwidth {bw['bw'] / 1e9:.2f} GB/s ({bw['kernel']}); bound = bandwidth / weights read per decode token",
    ]
    for r, q in res.items():
        if q.get("ok") and o.get("ok"):
            notes.append(f"{r}: greedy ids vs onnxruntime fp32: {B.compare_ids(q['ids'], o['ids'])}")
    text = "\n".join(md) + "\n\n" + "\n".join("- " + n for n in notes)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(dict(bandwidth=bw, ort=o, qwen=res, weights=weights), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
