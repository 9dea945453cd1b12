#!/usr/bin/env python3
"""Quantized-kernel benchmark: qwen-opt recipes side by side with onnxruntime and llama.cpp on
the same ONNX model (same weights).

Usage (from the repository root; model from bench/make_model.py; peers need
`.venv/bin/pip install -r bench/requirements.txt`):

    .venv/bin/python bench/bench_quant.py --model bench/out/qwen2.5-0.5b/model.onnx [--threads 1]
        [--recipes fp32,w8a16,w8a8-dyn,w4a16-g32,w4a16-g128,w4a16-g128-bf16,w4a16-g128-i16,w4a8-dyn,
                   examples/recipes/all4-g128-i16.json]
        [--peers ort-fp32,ort-int8,ort-int4,llama-f32,llama-q8_0,llama-q4_0 | none]
        [--prefill-len 512] [--prompt-len 16] [--new-tokens 128] [--runs 3]
        [--build-dir build] [--out-dir DIR] [--reuse-bundle] [--markdown out.md] [--json out.json]

Every system runs twice, in a child process each time (peak RSS from GNU time):
  prefill: a --prefill-len random prompt, 2 new tokens -> prefill tok/s;
  decode:  a --prompt-len prompt, then --new-tokens greedy tokens -> decode tok/s.
Systems:
  qwen-opt: `qwen-compile MODEL --target T --recipe R -o OUT/bundle-R`, then `qwen-run`; R a named
    recipe or a recipe file (bundle and row named by its stem). The named recipes keep the LM head
    and embedding at i8 per channel; examples/recipes/all4-g128-i16.json puts every matrix, LM head
    included, at 4 bits in groups of 128 with int16 inputs: the matrices onnxruntime's MatMulNBits
    model quantizes (every MatMul), where llama.cpp's Q4_0 keeps output.weight in Q6_K;
  onnxruntime (CPU EP, intra_op = --threads): fp32; dynamic int8 (`quantize_dynamic`, int8
    per-channel weights); 4-bit `MatMulNBits` (symmetric blocks of --nbits-block, accuracy_level 4);
  llama.cpp (llama-cpp-python, n_threads = --threads): a GGUF written from the ONNX initializers,
    then llama.cpp's quantizer: F32, Q8_0, Q4_0 (bench/peers.py).
The bound: the memory read bandwidth measured here (numpy, bench_fp32.measure_bandwidth; one
thread's when --threads 1) / the bytes of weights one decode token reads (the system's stored
weights minus tables only gathered). Ratios against llama.cpp Q4_0 / Q8_0 and onnxruntime are
the issue's targets. Timings are medians of --runs; nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fp32 as B  # noqa: E402
import peers as P  # noqa: E402

# The all-4-bit recipe the default run compares with MatMulNBits (every MatMul at 4 bits).
ALL4 = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "all4-g128-i16.json"


def per_token_bytes(bundle: Path, fp32_info: dict) -> int:
    """Bytes one decode step reads from weights.bin: each distinct span of it once (the compiler
    stores identical tensors once, e.g. a tied embedding and LM head), minus the spans that only
    gathered tables (the ONNX's gather-only initializers and their quantized components) use."""
    man = json.loads((bundle / "manifest.json").read_text())
    gathered = set(fp32_info.get("gather_only") or [])
    spans = {}
    for i in man["inputs"]:
        if i.get("role") == "weight":
            spans.setdefault((i["offset"], i["bytes"]), []).append(i["name"])

    def gather_only(name):
        return name in gathered or any(name.startswith(g + ".") for g in gathered)

    return sum(n for (_, n), names in spans.items() if not all(gather_only(x) for x in names))


def gguf_bytes_per_token(path: Path) -> int:
    """Bytes of a GGUF's tensors one decode step reads: all but token_embd (gathered) when the
    file has its own output.weight."""
    import gguf

    r = gguf.GGUFReader(str(path))
    sizes = {t.name: int(t.n_bytes) for t in r.tensors}
    return sum(sizes.values()) - (sizes.get("token_embd.weight", 0) if "output.weight" in sizes else 0)


PEERS = {  # name -> (label, kind, quantization)
    "ort-fp32": ("onnxruntime fp32", "ort", None),
    "ort-int8": ("onnxruntime dynamic int8", "ort", "int8"),
    "ort-int4": ("onnxruntime MatMulNBits int4 (acc 4)", "ort", "nbits"),
    "llama-f32": ("llama.cpp F32", "llama", "F32"),
    "llama-q8_0": ("llama.cpp Q8_0", "llama", "Q8_0"),
    "llama-q4_0": ("llama.cpp Q4_0", "llama", "Q4_0"),
}


def run_llama(args, gguf_path: Path, prompt_ids, new_tokens) -> dict:
    spec = dict(model=str(gguf_path), prompt_ids=prompt_ids, new_tokens=new_tokens, runs=args.runs,
                warmup=args.warmup, threads=args.threads)
    rc, out, err, wall, rss = B.run_measured([sys.executable, str(Path(P.__file__).resolve()), "--_llama-worker",
                                              json.dumps(spec)], timeout=args.run_timeout)
    if rc != 0:
        return dict(ok=False, error=f"llama.cpp worker exited with {rc}: {err.strip()[-1500:]}")
    w = json.loads(out.strip().splitlines()[-1])
    timed = [r for r in w["runs"] if not r["warmup"]]
    return dict(ok=True, prefill_tps=B.median([len(prompt_ids) / r["prefill_s"] for r in timed]),
                decode_tps=B.median([r["decode_steps"] / r["decode_s"] for r in timed if r["decode_steps"]]),
                ids=timed[0]["ids"], peak_rss=rss, version=w["version"])


def measure(args, name, prompt_ids, new_tokens, out_dir, nvals):
    """One phase of one system: dict(ok, prefill_tps, decode_tps, ids, peak_rss, ...)."""
    a = argparse.Namespace(**vars(args))
    a.new_tokens = new_tokens
    if name.startswith("qwen:"):
        r = name[5:]
        a.bundle = str(out_dir / f"bundle-{r}")
        spec = args.recipe_files.get(r, r)  # a recipe file's system is named by its stem
        a.compile_args = (args.compile_args + ("" if r == "fp32" else f" --recipe {spec}")).strip()
        return B.bench_qwen(a, prompt_ids)
    label, kind, q = PEERS[name]
    if kind == "ort":
        a.model = nvals["ort"][q] if q else args.model
        return B.bench_ort(a, prompt_ids)
    return run_llama(a, nvals["llama"][q], prompt_ids, new_tokens)


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] in (["--_ort-worker"], ["--_bw-worker"]):
        return B.main(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=B.DEFAULT_MODEL)
    ap.add_argument("--recipes", default="fp32,w8a16,w8a8-dyn,w4a16-g32,w4a16-g128,w4a16-g128-bf16,w4a16-g128-i16,w4a8-dyn,"
                    + str(ALL4), help="named recipes or recipe files (.json: the system is named by the file's stem)")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma list of " + ", ".join(PEERS) + ", or none")
    ap.add_argument("--prefill-len", type=int, default=512, help="prompt of the prefill phase")
    ap.add_argument("--prompt-len", type=int, default=16, help="prompt of the decode phase")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens generated in the decode phase")
    ap.add_argument("--nbits-block", type=int, default=32, help="block size of onnxruntime's MatMulNBits model")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads of every system (qwen-run --threads, ORT intra_op, llama.cpp n_threads)")
    ap.add_argument("--build-dir")
    ap.add_argument("--qwen-compile")
    ap.add_argument("--qwen-run")
    ap.add_argument("--out-dir", type=Path, help="bundles, GGUF and quantized ONNX files go here (default: the model's folder)")
    ap.add_argument("--reuse-bundle", action="store_true")
    ap.add_argument("--target", default="host")
    ap.add_argument("--prompt-ids-sep", default=",")
    ap.add_argument("--qwen-run-args", default="")
    ap.add_argument("--compile-args", default="")
    ap.add_argument("--compile-timeout", type=float, default=None)
    ap.add_argument("--run-timeout", type=float, default=None)
    ap.add_argument("--bw-gib", type=float, default=1.0)
    ap.add_argument("--bw-runs", type=int, default=5)
    ap.add_argument("--label", default="", help="a label for this run in the report (e.g. before / after)")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rerender", type=Path, metavar="JSON",
                    help="print the table of a saved --json run again (bytes per token recounted from the "
                         "bundles in --out-dir); measures nothing")
    args = ap.parse_args(argv)
    if args.rerender:
        return rerender(args.rerender, (args.out_dir or args.rerender.parent).resolve(), args.markdown)
    if args.model.is_dir():
        args.model = args.model / "model.onnx"
    args.model = args.model.resolve()
    if not args.model.is_file():
        sys.exit(f"bench_quant.py: --model {args.model}: no such file (make it with bench/make_model.py)")
    peers = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            sys.exit(f"bench_quant.py: --peers: unknown peer '{p}' (known: {', '.join(PEERS)}, none)")
    need = {PEERS[p][1] for p in peers}
    missing = []
    for mod, kind in (("llama_cpp", "llama"), ("gguf", "llama")):
        if kind in need and importlib.util.find_spec(mod) is None:
            missing.append(mod)
    if missing:
        sys.exit(f"bench_quant.py: the llama.cpp peers need {', '.join(missing)}: "
                 f".venv/bin/pip install -r bench/requirements.txt (or --peers without llama-*)")
    args.qwen_run_args = (args.qwen_run_args + f" --threads {args.threads}").strip()
    out_dir = (args.out_dir or args.model.parent).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    weights = B.weight_bytes_per_token(args.model)
    cfg = args.model.parent / "config.json"
    vocab = min(151643, json.loads(cfg.read_text()).get("vocab_size", 151643)) if cfg.is_file() else 151643
    rs = np.random.RandomState(args.seed)
    prefill_ids = [int(x) for x in rs.randint(0, vocab, size=args.prefill_len)]
    decode_ids = [int(x) for x in rs.randint(0, vocab, size=args.prompt_len)]
    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())

    def bandwidth():
        rc, out, err, _, _ = B.run_measured([sys.executable, str(Path(B.__file__).resolve()), "--_bw-worker",
                                             json.dumps(dict(gib=args.bw_gib, runs=args.bw_runs, threads=cores))])
        return json.loads(out.strip().splitlines()[-1]) if rc == 0 else None

    B.log("[bench] bandwidth ...")
    bw = bandwidth()
    # the peers' files, from the same ONNX
    nvals = {"ort": {}, "llama": {}}
    for p in peers:
        _, kind, q = PEERS[p]
        if kind == "ort" and q:
            nvals["ort"][q] = P.prepare_ort(args.model, out_dir, q, args.nbits_block)
        elif kind == "llama":
            nvals["llama"].update(P.prepare_llama(args.model, out_dir, [q]))
    specs = [r for r in args.recipes.split(",") if r]
    names = [Path(r).stem if r.endswith(".json") else r for r in specs]
    args.recipe_files = {n: r for n, r in zip(names, specs) if r.endswith(".json")}
    systems = [f"qwen:{n}" for n in names] + peers
    res = {}
    for s in systems:
        B.log(f"[bench] {s}: prefill {args.prefill_len} tokens ...")
        pf = measure(args, s, prefill_ids, 2, out_dir, nvals)
        B.log(f"[bench] {s}: decode {args.new_tokens} tokens ...")
        a = argparse.Namespace(**vars(args))
        if s.startswith("qwen:"):
            a.reuse_bundle = True  # the bundle the prefill phase compiled
        dc = measure(a, s, decode_ids, args.new_tokens, out_dir, nvals) if pf.get("ok") else pf
        r = dict(ok=pf.get("ok") and dc.get("ok"), error=pf.get("error") or dc.get("error"),
                 prefill_tps=pf.get("prefill_tps"), decode_tps=dc.get("decode_tps"),
                 peak_rss=max(pf.get("peak_rss") or 0, dc.get("peak_rss") or 0), ids=dc.get("ids"))
        if not r["ok"]:
            B.log(f"[bench] {s}: {r['error']}")
        elif s.startswith("qwen:"):
            r["bytes_per_token"] = per_token_bytes(out_dir / f"bundle-{s[5:]}", weights)
        elif PEERS[s][1] == "ort":
            q = PEERS[s][2]
            r["bytes_per_token"] = B.weight_bytes_per_token(nvals["ort"][q])["per_token_bytes"] if q else weights["per_token_bytes"]
        else:
            r["bytes_per_token"] = gguf_bytes_per_token(nvals["llama"][PEERS[s][2]])
        res[s] = r
    bw2 = bandwidth()
    if bw is None or (bw2 is not None and bw2["bw"] > bw["bw"]):
        bw = bw2
    if args.threads == 1:  # one thread each side: the bound is one thread's bandwidth
        bw = dict(bw, bw=bw["kernels"]["sum 1 thread"], kernel="sum 1 thread")
    run = dict(systems=systems, cores=cores, loadavg=loadavg, cpu=B.cpu_model())
    if args.json:
        args.json.write_text(json.dumps(dict(bandwidth=bw, results=res, weights=weights, run=run,
                                             args={k: str(v) for k, v in vars(args).items()}), indent=1, default=str))
    report(args, res, bw, run)
    return 0


def report(args, res, bw, run):
    """Prints (and with --markdown writes) the table and its notes."""
    systems, cores, loadavg = run["systems"], run["cores"], run["loadavg"]

    def tps(s, k):
        r = res.get(s, {})
        return r.get(k) if r.get("ok") else None

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "n/a"

    refs = [("llama-q4_0", "decode_tps"), ("ort-int4", "decode_tps"), ("llama-q8_0", "prefill_tps"),
            ("ort-fp32", "decode_tps")]
    hdr = ["system", "weights MB/token", "prefill tok/s", "decode tok/s", "decode bound tok/s", "% of bound",
           "peak RSS GiB", "decode vs llama.cpp Q4_0", "decode vs ORT int4", "prefill vs llama.cpp Q8_0",
           "decode vs ORT fp32"]
    rows = []
    for s in systems:
        r = res[s]
        name = f"qwen-opt {s[5:]}" if s.startswith("qwen:") else PEERS[s][0]
        if not r["ok"]:
            rows.append([name, "", "FAILED", "", "", "", "", "", "", "", ""])
            continue
        bound = bw["bw"] / r["bytes_per_token"]
        rows.append([name, f"{r['bytes_per_token'] / 1e6:.{0 if r['bytes_per_token'] >= 1e7 else 2}f}", f"{r['prefill_tps']:.1f}", f"{r['decode_tps']:.2f}",
                     f"{bound:.2f}", f"{100 * r['decode_tps'] / bound:.1f}", f"{r['peak_rss'] / 2**30:.2f}"]
                    + [ratio(r[k], tps(p, k)) for p, k in refs])
    md = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    notes = [
        f"{args.label + ': ' if args.label else ''}model {args.model.name}; prefill: {args.prefill_len} random ids; "
        f"decode: {args.new_tokens} greedy tokens after {args.prompt_len} ids; median of {args.runs} runs after "
        f"{args.warmup} warm-up; {args.threads} thread(s) each; {cores} cores ({run.get('cpu', B.cpu_model())}), "
        f"load average {loadavg} at start",
        f"bandwidth {bw['bw'] / 1e9:.2f} GB/s ({bw['kernel']}); bound = bandwidth / weights read per decode token",
    ]
    ref = res.get("ort-fp32") or res.get("llama-f32") or {}
    for s in systems:
        if s != "ort-fp32" and res[s].get("ok") and ref.get("ok") and ref.get("ids"):
            peer = "onnxruntime" if "ort-fp32" in res else "llama.cpp"
            cmp = B.compare_ids(res[s]["ids"], ref["ids"]).replace("(qwen ", f"({s} ").replace("onnxruntime ", peer + " ")
            notes.append(f"{s}: greedy ids vs {peer} fp32: {cmp}")
    text = "\n".join(md) + "\n\n" + "\n".join("- " + n for n in notes)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


def rerender(path: Path, out_dir: Path, markdown):
    """The table of a saved --json run again, with the qwen bundles' bytes per token recounted from
    the bundles in out_dir (for a change of the accounting, not of the measurements)."""
    d = json.loads(path.read_text())
    a = d["args"]
    args = argparse.Namespace(label=a.get("label", ""), model=Path(a["model"]), prefill_len=int(a["prefill_len"]),
                              new_tokens=int(a["new_tokens"]), prompt_len=int(a["prompt_len"]), runs=int(a["runs"]),
                              warmup=int(a["warmup"]), threads=int(a["threads"]), markdown=markdown)
    res = d["results"]
    for s, r in res.items():
        if s.startswith("qwen:") and r.get("ok"):
            r["bytes_per_token"] = per_token_bytes(out_dir / f"bundle-{s[5:]}", d["weights"])
    report(args, res, d["bandwidth"], d["run"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
