#!/usr/bin/env python3
"""GPU benchmark: qwen-opt CUDA bundles of Qwen2.5-0.5B / 7B shapes, per recipe.

Usage (from the repository root, on a machine with an NVIDIA GPU and its driver):

    .venv/bin/python bench/bench_gpu.py [--models qwen2.5-0.5b,qwen2.5-7b]
        [--recipes fp32,fp16,w8a16,w4a16-g128,w8a8-dyn] [--runs 3] [--prompt-len 16]
        [--new-tokens 128] [--prefill-len 512] [--out-dir bench/out/gpu] [--build-dir build]
        [--json out.json]

One command does everything:
  1. the GPU (libcuda.so.1 through ctypes: name, compute capability -> --target sm_XY); without
     a driver or a device it stops with one line saying so;
  2. device copy bandwidth: cuMemcpyDtoDAsync of a 1 GiB buffer, timed with CUDA events (bytes
     read + written / time, median of 10);
  3. random-weight models of each shape (bench/make_model.py, reused when model.onnx exists;
     building the 7B one needs ~60 GB of RAM and the fixtures venv with torch);
  4. per recipe that qwen-compile offers: `qwen-compile MODEL --target sm_XY --recipe R`, then
     --runs x `qwen-run` for decode (--new-tokens after a --prompt-len prompt) and for prefill
     (--prefill-len tokens), medians;
  5. the decode bound: copy bandwidth / (weight bytes read per token + KV-cache bytes read at the
     mean context of the decode), and the % of it reached;
  6. PyTorch fp16 on the same shapes when torch with CUDA is importable: every linear of the model
     (torch.nn.functional.linear, batch 1 for decode, --prefill-len rows for prefill) replayed as
     one CUDA graph; linears only, so an upper bound on what an fp16 PyTorch forward reaches;
  7. a table of tokens/s and ratios (vs the bound, vs PyTorch fp16 linears).
Timings are medians; nothing is asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fp32 as B  # noqa: E402
import bench_quant as Q  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30


class Cuda:
    """The few driver calls the bench needs, through ctypes (no CUDA toolkit)."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            raise RuntimeError(f"the NVIDIA driver cannot be loaded ({e})") from e
        self.check(self.lib.cuInit(0), "cuInit")
        n = ctypes.c_int()
        self.check(self.lib.cuDeviceGetCount(ctypes.byref(n)), "cuDeviceGetCount")
        if n.value < 1:
            raise RuntimeError("the driver reports no CUDA device")
        self.ordinal = int(os.environ.get("QWEN_CUDA_DEVICE", "0"))
        self.dev = ctypes.c_int()
        self.check(self.lib.cuDeviceGet(ctypes.byref(self.dev), self.ordinal), "cuDeviceGet")
        name = ctypes.create_string_buffer(256)
        self.check(self.lib.cuDeviceGetName(name, 255, self.dev), "cuDeviceGetName")
        self.name = name.value.decode()
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(major), 75, self.dev), "cuDeviceGetAttribute")
        self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, self.dev), "cuDeviceGetAttribute")
        self.sm = f"sm_{major.value}{minor.value}"
        self.ctx = ctypes.c_void_p()
        self.check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), self.dev), "cuDevicePrimaryCtxRetain")
        self.check(self.lib.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")

    def check(self, r, what):
        if r != 0:
            name = ctypes.c_char_p()
            self.lib.cuGetErrorName(r, ctypes.byref(name))
            raise RuntimeError(f"{what} failed: {name.value.decode() if name.value else r}")

    def copy_bandwidth(self, nbytes=GIB, iters=10) -> float:
        """Bytes moved (read + written) per second by device-to-device copies."""
        lib, c = self.lib, ctypes
        src, dst = c.c_uint64(), c.c_uint64()
        self.check(lib.cuMemAlloc_v2(c.byref(src), c.c_size_t(nbytes)), "cuMemAlloc")
        self.check(lib.cuMemAlloc_v2(c.byref(dst), c.c_size_t(nbytes)), "cuMemAlloc")
        start, stop = c.c_void_p(), c.c_void_p()
        self.check(lib.cuEventCreate(c.byref(start), 0), "cuEventCreate")
        self.check(lib.cuEventCreate(c.byref(stop), 0), "cuEventCreate")
        times = []
        try:
            for i in range(iters + 1):  # the first one warms up
                self.check(lib.cuEventRecord(start, None), "cuEventRecord")
                self.check(lib.cuMemcpyDtoDAsync_v2(dst, src, c.c_size_t(nbytes), None), "cuMemcpyDtoDAsync")
                self.check(lib.cuEventRecord(stop, None), "cuEventRecord")
                self.check(lib.cuEventSynchronize(stop), "cuEventSynchronize")
                ms = c.c_float()
                self.check(lib.cuEventElapsedTime(c.byref(ms), start, stop), "cuEventElapsedTime")
                if i:
                    times.append(ms.value / 1e3)
        finally:
            lib.cuEventDestroy_v2(start)
            lib.cuEventDestroy_v2(stop)
            lib.cuMemFree_v2(src)
            lib.cuMemFree_v2(dst)
        return 2 * nbytes / B.median(times)


def kv_bytes_per_token(manifest: dict, context: float) -> float:
    """KV-cache bytes one decode step reads at `context` cached tokens (f32 past_key/value)."""
    m = manifest["model"]
    return 2 * m["num_layers"] * m["num_kv_heads"] * m["head_dim"] * 4 * context


def linear_shapes(cfg: dict):
    """(out, in) of every linear of a decode step: per layer q, k, v, o, gate, up, down; LM head."""
    h, kv = cfg["hidden_size"], cfg["num_key_value_heads"] * cfg["hidden_size"] // cfg["num_attention_heads"]
    inter = cfg["intermediate_size"]
    layer = [(h, h), (kv, h), (kv, h), (h, h), (inter, h), (inter, h), (h, inter)]
    return layer * cfg["num_hidden_layers"] + [(cfg["vocab_size"], h)]


def bench_torch(cfg: dict, rows_list, runs: int) -> dict:
    """Tokens/s of the model's linears in fp16 with PyTorch (CUDA graph), per number of rows."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        return dict(error=f"torch is not importable ({e})")
    if not torch.cuda.is_available():
        return dict(error="torch has no CUDA device")
    out = {}
    shapes = linear_shapes(cfg)
    ws = [torch.randn(o, i, dtype=torch.float16, device="cuda") * 0.02 for o, i in shapes]
    for rows in rows_list:
        xs = {i: torch.randn(rows, i, dtype=torch.float16, device="cuda") for i in {i for _, i in shapes}}

        def step():
            for w in ws:
                F.linear(xs[w.shape[1]], w)

        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        times = []
        for _ in range(max(runs, 3) + 1):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            g.replay()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        out[rows] = rows / B.median(times[1:])
        del g, xs
    del ws
    torch.cuda.empty_cache()
    return out


def qwen_run(run_bin, bundle, ids, new_tokens, runs) -> dict:
    """Median prefill / decode tokens/s over `runs` qwen-run calls."""
    rates = {"prefill": [], "decode": []}
    cmd = [str(run_bin), str(bundle), "--prompt-ids", ",".join(map(str, ids)),
           "--max-new-tokens", str(new_tokens), "--ignore-eos", "--ctx", str(len(ids) + new_tokens + 1)]
    for _ in range(runs):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError((p.stderr or p.stdout).strip().splitlines()[-1])
        r = B.parse_rates(p.stdout)
        for k in rates:
            if k in r and r[k]["tokens"] > 0:
                rates[k].append(r[k]["tps"])
    return {k: B.median(v) if v else None for k, v in rates.items()}


def recipes_offered(compile_bin) -> set:
    """The recipe names qwen-compile --help lists for --recipe."""
    p = subprocess.run([str(compile_bin), "--help"], capture_output=True, text=True)
    line = next((ln for ln in (p.stdout + p.stderr).splitlines() if "--recipe=" in ln), "")
    return set(re.findall(r"[\w-]+", line.split(":", 1)[-1]))


def ensure_model(name: str, out_dir: Path) -> Path:
    model = out_dir / name / "model.onnx"
    if not model.is_file():
        B.log(f"[model] making {name} (bench/make_model.py)")
        subprocess.run([sys.executable, str(REPO / "bench" / "make_model.py"), "--config", name,
                        "--out", str(model.parent), "--no-check"], check=True)
    return model


def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="qwen2.5-0.5b,qwen2.5-7b")
    ap.add_argument("--recipes", default="fp32,fp16,w8a16,w4a16-g128,w8a8-dyn")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prefill-len", type=int, default=512)
    ap.add_argument("--out-dir", type=Path, default=REPO / "bench" / "out" / "gpu")
    ap.add_argument("--build-dir")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.runs < 3:
        ap.error("--runs: at least 3 (medians)")

    try:
        gpu = Cuda()
    except RuntimeError as e:
        print(f"bench_gpu.py: no CUDA device: {e}", file=sys.stderr)
        return 1
    compile_bin, run_bin, tried = B.find_tools(args.build_dir)
    if not compile_bin or not run_bin:
        print(f"bench_gpu.py: qwen-compile / qwen-run not found (looked in {', '.join(tried)})", file=sys.stderr)
        return 1
    B.log(f"[gpu] {gpu.name} ({gpu.sm}); measuring copy bandwidth")
    bw = gpu.copy_bandwidth()
    B.log(f"[gpu] device copy bandwidth {bw / 1e9:.0f} GB/s (read + write)")
    offered = recipes_offered(compile_bin)

    rng_ids = [(i * 7919 + 13) % 30000 + 100 for i in range(max(args.prompt_len, args.prefill_len))]
    results = []
    for name in args.models.split(","):
        model = ensure_model(name, args.out_dir)
        cfg = json.loads((model.parent / "config.json").read_text())
        fp32_info = B.weight_bytes_per_token(model)
        B.log(f"[torch] fp16 linears of {name}")
        torch_rates = bench_torch(cfg, [1, args.prefill_len], args.runs)
        for recipe in args.recipes.split(","):
            row = dict(model=name, recipe=recipe)
            results.append(row)
            if recipe not in offered:
                row["error"] = "recipe not offered by this qwen-compile"
                continue
            bundle = args.out_dir / name / f"bundle-{recipe}-{gpu.sm}"
            B.log(f"[compile] {name} {recipe} --target {gpu.sm}")
            p = subprocess.run([str(compile_bin), str(model), "--target", gpu.sm, "--recipe", recipe,
                                "-o", str(bundle)], capture_output=True, text=True)
            if p.returncode != 0:
                row["error"] = "qwen-compile: " + ((p.stderr or p.stdout).strip().splitlines() or ["?"])[-1]
                continue
            try:
                dec = qwen_run(run_bin, bundle, rng_ids[:args.prompt_len], args.new_tokens, args.runs)
                pre = qwen_run(run_bin, bundle, rng_ids[:args.prefill_len], 1, args.runs)
            except RuntimeError as e:
                row["error"] = f"qwen-run: {e}"
                continue
            manifest = json.loads((bundle / "manifest.json").read_text())
            weight_bytes = Q.per_token_bytes(bundle, fp32_info)
            kv = kv_bytes_per_token(manifest, args.prompt_len + args.new_tokens / 2)
            bound = bw / (weight_bytes + kv)
            row.update(decode_tps=dec["decode"], prefill_tps=pre["prefill"], bytes_per_token=weight_bytes + kv,
                       bound_tps=bound,
                       pct_bound=100 * dec["decode"] / bound if dec["decode"] else None,
                       torch_decode_tps=torch_rates.get(1),
                       torch_prefill_tps=torch_rates.get(args.prefill_len))
            if "error" in torch_rates:
                row["torch"] = torch_rates["error"]

    print(f"\nGPU: {gpu.name} ({gpu.sm}); device copy bandwidth {bw / 1e9:.0f} GB/s; decode "
          f"{args.new_tokens} tokens after {args.prompt_len}, prefill {args.prefill_len}; medians of {args.runs}")
    if any("torch" in r for r in results):
        print("PyTorch fp16: not available (" + next(r["torch"] for r in results if "torch" in r) + ")")
    hdr = ("model", "recipe", "prefill tok/s", "decode tok/s", "bound tok/s", "% bound",
           "decode / torch fp16", "prefill / torch fp16")
    print(" | ".join(hdr))
    print(" | ".join("---" for _ in hdr))
    for r in results:
        if "error" in r:
            print(f"{r['model']} | {r['recipe']} | " + r["error"])
            continue
        ratio = lambda a, b: a / b if a and b else None  # noqa: E731
        print(" | ".join([r["model"], r["recipe"], fmt(r["prefill_tps"]), fmt(r["decode_tps"]),
                          fmt(r["bound_tps"]), fmt(r["pct_bound"]),
                          fmt(ratio(r["decode_tps"], r["torch_decode_tps"]), ".2f"),
                          fmt(ratio(r["prefill_tps"], r["torch_prefill_tps"]), ".2f")]))
    if args.json:
        args.json.write_text(json.dumps(dict(gpu=gpu.name, sm=gpu.sm, copy_bandwidth=bw, results=results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
