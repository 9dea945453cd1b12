#!/usr/bin/env python3
"""fp32 benchmark: qwen-opt (qwen-compile + qwen-run) against onnxruntime on the SAME ONNX file.

Usage (from the repository root; the model comes from bench/make_model.py):

    bench/run.sh --build-dir build                 # = the line below with the defaults
    .venv/bin/python bench/bench_fp32.py --model bench/out/qwen2.5-0.5b/model.onnx \
        [--prompt-len 64] [--new-tokens 32] [--runs 3] [--build-dir build] [--markdown out.md]

Needs numpy, onnx, onnxruntime (python/requirements.txt, i.e. the .venv of scripts/setup.sh).

What it does, in this order, one heavy thing at a time:
  1. hardware reference: core count, CPU model, a memory-read bandwidth measured here (numpy sum
     and dot over a 1 GiB float32 array, 1 thread and one thread per core, median of runs; before
     and after the runs, the better kept), and the
     decode bound = bandwidth / bytes of weights read per token (every initializer once, except
     tables only used by Gather -- the embedding lookup reads one row; a tied head that reads the
     embedding through MatMul is counted once).
  2. onnxruntime fp32 (CPUExecutionProvider, intra_op threads = all cores) in a child process
     (its peak RSS from GNU time, else wait4): prefill of P random prompt ids (fixed seed) with an empty
     KV cache, then N greedy tokens (the first from the prefill logits, then N-1 decode steps
     feeding present.* back as past_key_values.*); one warm-up run, then the median of --runs.
  3. qwen-opt: `qwen-compile MODEL --target host -o BUNDLE` (wall time, peak RSS), then --runs
     times `qwen-run BUNDLE --prompt-ids <ids> --max-new-tokens N --ignore-eos --print-ids`,
     parsing its `prefill: N tokens, X ms, Y tokens/s` / `decode: ...` lines (median) and its ids,
     which are compared with onnxruntime's greedy ids (agree / first divergence).
     Tools: bin/ of --build-dir, else $QWEN_BUILD_DIR, else build/ (or build*/) of the repository;
     --qwen-compile / --qwen-run name each binary directly.  Without qwen-compile this half is
     skipped with a message (without qwen-run it compiles only); the onnxruntime half still runs.
  4. a table (text + Markdown): tok/s, % of the decode bound, peak RSS for each side and the
     ratio qwen-opt / onnxruntime.

Timings are medians and are printed, never asserted (small shared machines are noisy).
The exit status is 0 unless something failed to run (an id disagreement is reported, not fatal).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "bench" / "out" / "qwen2.5-0.5b" / "model.onnx"

_ONNX_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------------------
# Child processes with their own peak RSS
# --------------------------------------------------------------------------------------


def _gnu_time():
    t = shutil.which("time", path="/usr/bin:/bin")
    if not t:
        return None
    try:
        r = subprocess.run([t, "-f", "%M", "true"], capture_output=True, text=True, timeout=10)
        return t if r.returncode == 0 and r.stderr.strip().isdigit() else None
    except (OSError, subprocess.SubprocessError):
        return None


_TIME = _gnu_time()


def run_measured(cmd, timeout=None, cwd=None, env=None):
    """Run cmd; return (rc, stdout, stderr, wall_s, peak_rss_bytes).

    Peak RSS: GNU time's %M when /usr/bin/time is GNU time (a small process forks the command, so
    nothing of ours is charged to it), else the child's own rusage from wait4 (which on Linux
    starts at this process's peak RSS: exec keeps the old mm's high-water mark).
    """
    tmp = None
    if _TIME:
        fd, tmp = tempfile.mkstemp(prefix="bench_rss_")
        os.close(fd)
        cmd = [_TIME, "-f", "%M", "-o", tmp, *cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env, text=True)
    # Read both pipes without deadlock, then reap the child ourselves with wait4 to get its rusage.
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fo = ex.submit(p.stdout.read)
        fe = ex.submit(p.stderr.read)
        try:
            out = fo.result(timeout=timeout)
            err = fe.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            p.kill()
            out, err = fo.result(), fe.result()
            err += f"\n[bench] killed after {timeout}s"
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    kib = ru.ru_maxrss  # Linux: KiB
    if tmp:
        try:
            last = Path(tmp).read_text().strip().splitlines()[-1]
            kib = int(last)
        except (OSError, IndexError, ValueError):
            pass
        os.unlink(tmp)
    return p.returncode, out, err, wall, kib * 1024


# --------------------------------------------------------------------------------------
# Hardware reference
# --------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def measure_bandwidth(gib: float, runs: int, threads: int) -> dict:
    """Read bandwidth (bytes/s) over a large float32 array, median of runs per kernel.

    Kernels: numpy sum with 1 thread, sum with `threads` threads (one slice each; numpy releases
    the GIL), and dot(x, x) with `threads` threads (SIMD BLAS: less compute per byte than the
    pairwise sum).  The bound uses the best kernel's median.
    """
    n = int(gib * (1 << 30)) // 4
    a = np.ones(n, dtype=np.float32)  # touches every page
    a.sum()  # warm
    chunks = np.array_split(a, threads)

    def timed(f):
        t = time.perf_counter()
        f()
        return a.nbytes / (time.perf_counter() - t)

    res = {}
    res["sum 1 thread"] = [timed(a.sum) for _ in range(runs)]
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for name, fn in ((f"sum {threads} threads", np.sum), (f"dot {threads} threads", lambda c: np.dot(c, c))):
            timed(lambda: list(ex.map(fn, chunks)))
            res[name] = [timed(lambda: list(ex.map(fn, chunks))) for _ in range(runs)]
    del chunks, a
    med = {k: median(v) for k, v in res.items()}
    best = max(med, key=med.get)
    return dict(bytes=n * 4, runs=runs, threads=threads, kernels=med, kernel=best, bw=med[best],
                bw_best_run=max(max(v) for v in res.values()))


def weight_bytes_per_token(model_path: Path) -> dict:
    """Bytes of weights one decode step reads, from the ONNX initializers (no external data loaded)."""
    import onnx


    m = onnx.load(str(model_path), load_external_data=False)
    g = m.graph
    sizes = {}
    for t in g.initializer:
        sizes[t.name] = int(np.prod(t.dims, dtype=np.int64)) * _ONNX_DTYPE_BYTES.get(t.data_type, 4)
    for node in g.node:  # large Constant nodes count too
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    sizes[node.output[0]] = int(np.prod(a.t.dims, dtype=np.int64)) * _ONNX_DTYPE_BYTES.get(a.t.data_type, 4)
    uses = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in sizes:
                uses.setdefault(name, []).append((node.op_type, i))
    gather_only = [n for n, u in uses.items() if u and all(op == "Gather" and i == 0 for op, i in u)]
    total = sum(sizes.values())
    big_gather = sum(sizes[n] for n in gather_only)
    elems_f32 = sum(int(np.prod(t.dims, dtype=np.int64)) for t in g.initializer if t.data_type == 1)
    return dict(
        total_bytes=total,
        gather_only_bytes=big_gather,
        gather_only=sorted(gather_only, key=lambda n: -sizes[n])[:3],
        per_token_bytes=total - big_gather,
        f32_elements=elems_f32,
        initializers=len(g.initializer),
    )


# --------------------------------------------------------------------------------------
# onnxruntime (runs in a child process: --_ort-worker)
# --------------------------------------------------------------------------------------


def ort_worker(spec: dict) -> dict:
    import onnxruntime as ort

    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(spec["model"], so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0

    ins = {i.name: i for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    past_names = [n for n in ins if n.startswith("past_key_values.")]
    present_for = {}
    for n in past_names:  # past_key_values.L.key -> present.L.key
        present_for[n] = "present." + n[len("past_key_values."):]
        assert present_for[n] in outs, f"no output {present_for[n]} for {n}"
    shp = ins[past_names[0]].shape if past_names else None
    kvh, hd = int(shp[1]), int(shp[3])
    int_type = {n: (np.int32 if ins[n].type == "tensor(int32)" else np.int64) for n in ins}

    prompt = np.asarray(spec["prompt_ids"], dtype=np.int64)[None]
    P, N = prompt.shape[1], spec["new_tokens"]

    def feeds_for(ids, past_len, past):
        s = ids.shape[1]
        f = {"input_ids": ids.astype(int_type["input_ids"])}
        if "attention_mask" in ins:
            f["attention_mask"] = np.ones((1, past_len + s), int_type["attention_mask"])
        if "position_ids" in ins:
            f["position_ids"] = np.arange(past_len, past_len + s, dtype=int_type["position_ids"])[None]
        f.update(past)
        return f

    def one_run():
        past = {n: np.zeros((1, kvh, 0, hd), np.float32) for n in past_names}
        t = time.perf_counter()
        res = sess.run(outs, feeds_for(prompt, 0, past))
        t_prefill = time.perf_counter() - t
        ids = [int(np.argmax(res[0][0, -1]))]
        r = dict(zip(outs, res))
        past = {n: r[present_for[n]] for n in past_names}
        t = time.perf_counter()
        for step in range(1, N):
            res = sess.run(outs, feeds_for(np.array([[ids[-1]]]), P + step - 1, past))
            r = dict(zip(outs, res))
            ids.append(int(np.argmax(r["logits"][0, -1])))
            past = {n: r[present_for[n]] for n in past_names}
        t_decode = time.perf_counter() - t
        return dict(prefill_s=t_prefill, decode_s=t_decode, decode_steps=N - 1, ids=ids)

    runs = []
    for i in range(spec["warmup"] + spec["runs"]):
        r = one_run()
        r["warmup"] = i < spec["warmup"]
        runs.append(r)
        log(
            f"  ort run {i}{' (warm-up)' if r['warmup'] else ''}: prefill {r['prefill_s'] * 1e3:.0f} ms, "
            f"decode {r['decode_s'] * 1e3:.0f} ms / {r['decode_steps']} steps"
        )
    return dict(load_s=load_s, runs=runs, ort_version=ort.__version__, threads=spec["threads"])


def bench_ort(args, prompt_ids) -> dict:
    spec = dict(
        model=str(args.model),
        prompt_ids=prompt_ids,
        new_tokens=args.new_tokens,
        runs=args.runs,
        warmup=args.warmup,
        threads=args.threads,
    )
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_ort-worker", json.dumps(spec)]
    rc, out, err, wall, rss = run_measured(cmd)
    sys.stderr.write(err)
    if rc != 0:
        return dict(ok=False, error=f"onnxruntime worker exited with {rc}")
    w = json.loads(out.strip().splitlines()[-1])
    timed = [r for r in w["runs"] if not r["warmup"]]
    P = len(prompt_ids)
    prefill = [P / r["prefill_s"] for r in timed]
    decode = [r["decode_steps"] / r["decode_s"] for r in timed if r["decode_steps"] > 0]
    ids = timed[0]["ids"]
    stable = all(r["ids"] == ids for r in w["runs"])
    return dict(
        ok=True,
        version=w["ort_version"],
        threads=w["threads"],
        load_s=w["load_s"],
        prefill_tps=median(prefill),
        prefill_all=prefill,
        prefill_ms=median([r["prefill_s"] * 1e3 for r in timed]),
        decode_tps=median(decode),
        decode_all=decode,
        decode_steps=timed[0]["decode_steps"],
        ids=ids,
        ids_stable=stable,
        peak_rss=rss,
        wall_s=wall,
    )


# --------------------------------------------------------------------------------------
# qwen-opt (qwen-compile + qwen-run)
# --------------------------------------------------------------------------------------


def find_tools(build_dir):
    """(qwen-compile, qwen-run, folders looked in): the first folder with qwen-compile, and
    qwen-run from that folder (None when it is not there yet)."""
    cands = []
    if build_dir:
        cands.append(Path(build_dir))
    if os.environ.get("QWEN_BUILD_DIR"):
        cands.append(Path(os.environ["QWEN_BUILD_DIR"]))
    cands.append(REPO / "build")
    cands += sorted(p for p in REPO.glob("build*") if p.is_dir() and p.name != "build")
    tried = []
    for d in cands:
        b = d / "bin" if (d / "bin").is_dir() else d
        tried.append(str(b))
        if (b / "qwen-compile").is_file():
            return b / "qwen-compile", (b / "qwen-run" if (b / "qwen-run").is_file() else None), tried
        if build_dir:  # an explicit --build-dir is the only place looked at
            break
    return None, None, tried


_RATE = re.compile(r"^\s*(prefill|decode):\s*(\d+)\s+tokens?,\s*([0-9.eE+-]+)\s*ms,\s*([0-9.eE+-]+|inf|nan)\s*tokens/s", re.M)


def parse_rates(text: str) -> dict:
    r = {}
    for m in _RATE.finditer(text):
        r[m.group(1)] = dict(tokens=int(m.group(2)), ms=float(m.group(3)), tps=float(m.group(4)))
    return r


def parse_ids(text: str, prompt, n_new):
    """The generated ids printed by --print-ids (format not fixed yet: be lenient).

    Takes the last line (after an optional `label:`) that is only integers separated by spaces or
    commas, with at least n_new of them; strips the prompt if it is printed too.
    """
    best = None
    for line in text.splitlines():
        if _RATE.match(line):
            continue
        body = line.split(":", 1)[1] if re.match(r"^\s*[A-Za-z][\w \-]*:", line) else line
        body = body.strip().strip("[]")
        if not body or not re.fullmatch(r"[\d\s,]+", body):
            continue
        nums = [int(x) for x in re.split(r"[\s,]+", body) if x]
        if len(nums) >= min(n_new, 1):
            best = nums
    if best is None:
        return None
    if len(best) >= len(prompt) + n_new and best[: len(prompt)] == list(prompt):
        best = best[len(prompt):]
    return best


def bench_qwen(args, prompt_ids) -> dict:
    compile_bin, run_bin, tried = find_tools(args.build_dir)
    if args.qwen_compile:
        compile_bin = Path(args.qwen_compile)
    if args.qwen_run:
        run_bin = Path(args.qwen_run)
    if compile_bin is None:
        return dict(
            ok=False,
            skipped=True,
            error="qwen-compile / qwen-run not found (looked in " + ", ".join(tried) + "); build them "
            "(ninja -C build) or pass --build-dir DIR",
        )
    res = dict(ok=False, tools=str(compile_bin.parent) if run_bin is None or run_bin.parent == compile_bin.parent
               else f"{compile_bin}, {run_bin}")
    bundle = Path(args.bundle) if args.bundle else args.model.parent / "bundle-fp32"
    res["bundle"] = str(bundle)
    if run_bin is None:
        log(f"[qwen] no qwen-run next to {compile_bin}: compiling only")
    if args.reuse_bundle and (bundle / "manifest.json").is_file():
        log(f"[qwen] reusing {bundle}")
        res["compile_s"] = res["compile_rss"] = None
    else:
        cmd = [str(compile_bin), str(args.model), "--target", args.target, "-o", str(bundle), *shlex.split(args.compile_args)]
        log("[qwen] " + shlex.join(cmd))
        rc, out, err, wall, rss = run_measured(cmd, timeout=args.compile_timeout)
        res.update(compile_s=wall, compile_rss=rss)
        if rc != 0:
            res["error"] = f"qwen-compile exited with {rc}: " + (err.strip() or out.strip())[-2000:]
            return res
        if err.strip():
            sys.stderr.write(err if err.endswith("\n") else err + "\n")
        log(f"[qwen] compiled in {wall:.1f}s, peak RSS {rss / 2**30:.2f} GiB")
    try:
        res["bundle_bytes"] = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    except OSError:
        pass
    if run_bin is None:
        res["error"] = f"qwen-run not found in {compile_bin.parent} (qwen-compile ran; see its time and RSS below)"
        res["skipped"] = True
        return res
    sep = args.prompt_ids_sep
    cmd = [
        str(run_bin),
        str(bundle),
        "--prompt-ids",
        sep.join(str(i) for i in prompt_ids),
        "--max-new-tokens",
        str(args.new_tokens),
        "--ignore-eos",
        "--print-ids",
        *shlex.split(args.qwen_run_args),
    ]
    log("[qwen] " + shlex.join(cmd[:3]) + " <%d ids> " % len(prompt_ids) + shlex.join(cmd[4:]))
    runs = []
    for i in range(args.warmup + args.runs):
        rc, out, err, wall, rss = run_measured(cmd, timeout=args.run_timeout)
        if rc != 0:
            res["error"] = f"qwen-run exited with {rc}: " + (err.strip() or out.strip())[-2000:]
            return res
        rates = parse_rates(out) or parse_rates(err)
        if "prefill" not in rates or "decode" not in rates:
            res["error"] = "no `prefill: N tokens, X ms, Y tokens/s` / `decode: ...` lines in qwen-run's output:\n" + out[-1500:] + err[-1500:]
            return res
        ids = parse_ids(out, prompt_ids, args.new_tokens)
        runs.append(dict(rates=rates, ids=ids, rss=rss, wall=wall, warmup=i < args.warmup))
        log(
            f"  qwen run {i}{' (warm-up)' if i < args.warmup else ''}: prefill {rates['prefill']['ms']:.0f} ms, "
            f"decode {rates['decode']['ms']:.0f} ms / {rates['decode']['tokens']} tokens, "
            f"wall {wall:.1f}s, peak RSS {rss / 2**30:.2f} GiB"
        )
    timed = [r for r in runs if not r["warmup"]]
    res.update(
        ok=True,
        prefill_tps=median([r["rates"]["prefill"]["tps"] for r in timed]),
        prefill_all=[r["rates"]["prefill"]["tps"] for r in timed],
        prefill_ms=median([r["rates"]["prefill"]["ms"] for r in timed]),
        decode_tps=median([r["rates"]["decode"]["tps"] for r in timed]),
        decode_all=[r["rates"]["decode"]["tps"] for r in timed],
        decode_tokens=timed[0]["rates"]["decode"]["tokens"],
        peak_rss=max(r["rss"] for r in timed),
        run_wall_s=median([r["wall"] for r in timed]),
        ids=timed[0]["ids"],
        ids_stable=all(r["ids"] == timed[0]["ids"] for r in runs),
    )
    return res


def compare_ids(ours, ref):
    if ours is None:
        return "unknown (no ids found in qwen-run's output)"
    if ours == ref:
        return f"agree ({len(ref)} of {len(ref)} greedy ids)"
    n = min(len(ours), len(ref))
    for i in range(n):
        if ours[i] != ref[i]:
            return f"DISAGREE: first divergence at generated token {i} (qwen {ours[i]}, onnxruntime {ref[i]}); {i} ids agree before it"
    return f"DISAGREE: lengths differ (qwen {len(ours)}, onnxruntime {len(ref)}), the first {n} agree"


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def hbytes(n) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.3f} {unit}"
    return f"{n} B"


def fmt(x, spec=".1f", unit=""):
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return format(x, spec) + unit


def build_table(o, q, bound_tps):

    def ratio(a, b):
        return fmt(a / b, ".2f", "x") if (a is not None and b) and a == a and b == b else "n/a"

    def spread(xs):
        return f"{min(xs):.1f}-{max(xs):.1f}" if xs else ""

    ok_o, ok_q = o.get("ok"), q.get("ok")
    g = lambda d, k: d.get(k) if d.get("ok") else None  # noqa: E731
    rows = [
        ("prefill tok/s (median)", g(o, "prefill_tps"), g(q, "prefill_tps"), ".1f", True),
        ("prefill tok/s (min-max)", spread(o.get("prefill_all", [])) if ok_o else None,
         spread(q.get("prefill_all", [])) if ok_q else None, "s", False),
        ("decode tok/s (median)", g(o, "decode_tps"), g(q, "decode_tps"), ".2f", True),
        ("decode tok/s (min-max)", spread(o.get("decode_all", [])) if ok_o else None,
         spread(q.get("decode_all", [])) if ok_q else None, "s", False),
        ("decode % of bound", 100 * g(o, "decode_tps") / bound_tps if ok_o else None,
         100 * g(q, "decode_tps") / bound_tps if ok_q else None, ".1f", False),
        ("peak RSS (MiB)", g(o, "peak_rss") / 2**20 if ok_o else None, g(q, "peak_rss") / 2**20 if ok_q else None, ".0f", True),
    ]
    out = []
    for name, a, b, spec, with_ratio in rows:
        fa = a if isinstance(a, str) else fmt(a, spec)
        fb = b if isinstance(b, str) else fmt(b, spec)
        r = ratio(b, a) if with_ratio and not isinstance(a, str) and a is not None and b is not None else ("" if not with_ratio else "n/a")
        out.append((name, fa or "n/a", fb or "n/a", r))
    return out


def render(info, o, q, table) -> tuple[str, str]:
    hdr = ("metric", "onnxruntime fp32", "qwen-opt fp32", "ratio qwen/ort")
    w = [max(len(str(r[i])) for r in [hdr, *table]) for i in range(4)]
    lines = []
    lines.append("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    lines.append("  ".join("-" * w[i] for i in range(4)))
    for r in table:
        lines.append("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    text_table = "\n".join(lines)
    md = ["| " + " | ".join(hdr) + " |", "|---|---:|---:|---:|"]
    for r in table:
        md.append("| " + " | ".join(str(c) for c in r) + " |")

    notes = []
    notes.append(f"model: {info['model']} ({info['weights']['f32_elements'] / 1e6:.1f} M f32 initializer elements, "
                 f"{info['weights']['initializers']} initializers)")
    notes.append(f"workload: batch 1, prompt {info['prompt_len']} random ids (seed {info['seed']}), "
                 f"{info['new_tokens']} greedy new tokens, --ignore-eos; median of {info['runs']} runs after {info['warmup']} warm-up")
    notes.append(f"machine: {info['cores']} cores ({info['cpu']}), load average {info['loadavg']} at start; "
                 f"onnxruntime intra_op threads {info['threads']}")
    bw = info["bandwidth"]
    notes.append(
        f"memory read bandwidth (numpy over {bw['bytes'] / 2**30:.1f} GiB f32, median of {bw['runs']}, measured before and "
        f"after the runs, the better kept): "
        + ", ".join(f"{k} {v / 1e9:.2f} GB/s" for k, v in bw["kernels"].items())
        + f" (best single run {bw['bw_best_run'] / 1e9:.2f} GB/s) -> bound uses {bw['bw'] / 1e9:.2f} GB/s ({bw['kernel']}); "
        "other load on the machine lowers it, so a side above 100% of the bound ran while the machine was quieter"
    )
    wt = info["weights"]
    notes.append(
        f"weights read per decode token: {hbytes(wt['per_token_bytes'])} (all initializers {hbytes(wt['total_bytes'])} "
        f"minus {hbytes(wt['gather_only_bytes'])} only gathered: {', '.join(wt['gather_only']) or 'none'}) "
        f"-> decode bound {info['bound_tps']:.2f} tok/s"
    )
    if o.get("ok"):
        notes.append(f"onnxruntime {o['version']}: session load {o['load_s']:.1f}s; decode tok/s = {o['decode_steps']} decode steps "
                     f"(token 1 comes from the prefill); ids stable across runs: {o['ids_stable']}")
    else:
        notes.append("onnxruntime: " + ("SKIPPED: " if o.get("skipped") else "FAILED: ") + str(o.get("error")))
    if q.get("ok"):
        c = q.get("compile_s")
        notes.append(
            f"qwen-opt ({q['tools']}): qwen-compile "
            + (f"{c:.1f}s wall, peak RSS {q['compile_rss'] / 2**30:.2f} GiB" if c is not None else "skipped (--reuse-bundle)")
            + (f"; bundle {hbytes(q['bundle_bytes'])}" if q.get("bundle_bytes") else "")
            + f"; qwen-run wall {q['run_wall_s']:.1f}s per run; decode reported over {q['decode_tokens']} tokens"
        )
        notes.append("greedy ids vs onnxruntime: " + info["ids_check"])
    else:
        err = str(q.get("error"))
        short = " / ".join(line.strip() for line in err.splitlines() if line.strip())
        short = short if len(short) <= 400 else short[:400] + " ... (full message above)"
        notes.append("qwen-opt: " + ("SKIPPED: " if q.get("skipped") else "FAILED: ") + short)
    if not q.get("ok") and q.get("compile_s") is not None:
        notes.append(f"  (qwen-compile took {q['compile_s']:.1f}s, peak RSS {q['compile_rss'] / 2**30:.2f} GiB"
                     + (f", bundle {hbytes(q['bundle_bytes'])})" if q.get("bundle_bytes") else ")"))
    text = text_table + "\n\n" + "\n".join("* " + n for n in notes)
    markdown = "\n".join(md) + "\n\n" + "\n".join("- " + n for n in notes)
    return text, markdown


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--_ort-worker"]:
        print(json.dumps(ort_worker(json.loads(argv[1]))), flush=True)
        return 0
    if argv[:1] == ["--_bw-worker"]:
        print(json.dumps(measure_bandwidth(**json.loads(argv[1]))), flush=True)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX file, or a folder with model.onnx (default %(default)s)")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per side (median); default %(default)s")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first; default %(default)s")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random prompt ids")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="onnxruntime intra_op threads (default: all cores)")
    ap.add_argument("--build-dir", help="folder with bin/qwen-compile and bin/qwen-run (default: build/, $QWEN_BUILD_DIR)")
    ap.add_argument("--qwen-compile", help="the qwen-compile binary (overrides --build-dir for it)")
    ap.add_argument("--qwen-run", help="the qwen-run binary (overrides --build-dir for it)")
    ap.add_argument("--bundle", help="bundle folder to write (default: <model dir>/bundle-fp32)")
    ap.add_argument("--reuse-bundle", action="store_true", help="do not recompile when the bundle has a manifest.json")
    ap.add_argument("--target", default="host")
    ap.add_argument("--prompt-ids-sep", default=",", help="separator of the --prompt-ids list given to qwen-run")
    ap.add_argument("--qwen-run-args", default="", help="extra arguments for qwen-run (e.g. --qwen-run-args='--threads 2')")
    ap.add_argument("--compile-args", default="", help="extra arguments for qwen-compile (e.g. --compile-args=-v)")
    ap.add_argument("--compile-timeout", type=float, default=None)
    ap.add_argument("--run-timeout", type=float, default=None)
    ap.add_argument("--skip-ort", action="store_true")
    ap.add_argument("--skip-qwen", action="store_true")
    ap.add_argument("--bw-gib", type=float, default=1.0, help="array size of the bandwidth measurement")
    ap.add_argument("--bw-runs", type=int, default=5, help="runs per bandwidth kernel (median)")
    ap.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    ap.add_argument("--json", type=Path, help="also write all measurements as JSON here")
    args = ap.parse_args(argv)

    if args.model.is_dir():
        args.model = args.model / "model.onnx"
    args.model = args.model.resolve()
    if not args.model.is_file():
        ap.error(f"{args.model} does not exist; make it with bench/make_model.py (see its docstring)")

    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    log(f"[bench] {args.model}: {cores} cores ({cpu_model()}), onnxruntime threads {args.threads}")
    weights = weight_bytes_per_token(args.model)
    vocab = None
    try:  # prompt ids below the vocabulary size (and below the special tokens of real Qwen vocabularies)
        import onnx

        m = onnx.load(str(args.model), load_external_data=False)
        for o_ in m.graph.output:
            if o_.name == "logits":
                vocab = o_.type.tensor_type.shape.dim[2].dim_value or None
    except Exception:
        pass
    vocab = vocab or 256
    hi = min(vocab, 151643)
    prompt_ids = [int(x) for x in np.random.RandomState(args.seed).randint(0, hi, size=args.prompt_len)]

    log(f"[bench] memory bandwidth: {args.bw_gib} GiB array, {args.bw_runs} runs ...")
    # In a child: Linux charges a child's peak RSS with its parent's peak at the time of fork/exec
    # (exec saves the old mm's high-water mark), so this process must stay small.
    def bandwidth():
        rc, out, err, _, _ = run_measured(
            [sys.executable, str(Path(__file__).resolve()), "--_bw-worker",
             json.dumps(dict(gib=args.bw_gib, runs=args.bw_runs, threads=cores))]
        )
        if rc != 0:
            sys.stderr.write(err)
            return None
        return json.loads(out.strip().splitlines()[-1])

    bw = bandwidth()
    if bw is None:
        log("[bench] bandwidth measurement failed")
        return 1

    o = dict(ok=False, skipped=True, error="skipped (--skip-ort)")
    if not args.skip_ort:
        log("[bench] onnxruntime ...")
        o = bench_ort(args, prompt_ids)
    q = dict(ok=False, skipped=True, error="skipped (--skip-qwen)")
    if not args.skip_qwen:
        log("[bench] qwen-opt ...")
        q = bench_qwen(args, prompt_ids)
        if not q.get("ok"):
            log("[bench] qwen-opt half: " + str(q.get("error")))

    if not (args.skip_ort and args.skip_qwen):
        log("[bench] memory bandwidth again ...")
        bw2 = bandwidth()
        if bw2 is not None and bw2["bw"] > bw["bw"]:
            bw = bw2
    bound_tps = bw["bw"] / weights["per_token_bytes"]

    ids_check = "n/a"
    if q.get("ok") and o.get("ok"):
        ids_check = compare_ids(q["ids"], o["ids"])
    elif q.get("ok"):
        ids_check = "no onnxruntime ids to compare with"
    info = dict(
        model=str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
        prompt_len=args.prompt_len,
        new_tokens=args.new_tokens,
        runs=args.runs,
        warmup=args.warmup,
        seed=args.seed,
        cores=cores,
        cpu=cpu_model(),
        loadavg=loadavg,
        threads=args.threads,
        bandwidth=bw,
        weights=weights,
        bound_tps=bound_tps,
        ids_check=ids_check,
    )
    table = build_table(o, q, bound_tps)
    text, markdown = render(info, o, q, table)
    print("\n" + text + "\n")
    print("Markdown:\n\n" + markdown + "\n")
    if args.markdown:
        args.markdown.write_text(markdown + "\n")
    if args.json:
        args.json.write_text(json.dumps(dict(info=info, onnxruntime=o, qwen=q), indent=2, default=str) + "\n")
    failed = (not args.skip_ort and not o.get("ok")) or (q.get("error") and not q.get("skipped") and not q.get("ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
