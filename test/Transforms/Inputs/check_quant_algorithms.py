"""Compares qwen-quant-check (QuantAlgorithms.cpp) with quant_reference.py on
random matrices: RTN codes bit for bit, clip-search ratios' results, GPTQ
codes and dequantized weights within float tolerance, and that GPTQ and
clip search lower the output error d^T H d below RTN's.

usage: check_quant_algorithms.py QWEN_QUANT_CHECK WORKDIR"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import quant_reference as ref  # noqa: E402

tool, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(7)
failures = 0


def run(mode, w, H, flags):
    wp, hp = os.path.join(work, "w.npy"), os.path.join(work, "h.npy")
    op, cp = os.path.join(work, "o.npy"), os.path.join(work, "c.npy")
    np.save(wp, w)
    args = [tool, mode, wp]
    if H is not None:
        np.save(hp, H)
        args.append(hp)
    out = subprocess.run(args + flags + ["-o", op, "--codes", cp], check=True,
                         capture_output=True, text=True).stdout
    err = None
    for line in out.splitlines():
        if line.startswith("output_error"):
            err = float(line.split()[1])
    return np.load(op), np.load(cp), err


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    failures += not ok


def data(rows, cols, tokens=256):
    # Inputs with a few large channels, as real activations have.
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    x[:, rng.choice(cols, 3, replace=False)] *= 8
    H = (x.astype(np.float64).T @ x.astype(np.float64))
    w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    return w, H


schemes = [
    ("i4 group32", ref.Scheme(4, gran="group", group=32), ["--bits=4", "--granularity=group", "--group-size=32"]),
    ("i3 group64", ref.Scheme(3, gran="group", group=64), ["--bits=3", "--granularity=group", "--group-size=64"]),
    ("u4 asym group32", ref.Scheme(4, symmetric=False, signed=False, gran="group", group=32),
     ["--bits=4", "--granularity=group", "--group-size=32", "--asymmetric", "--unsigned"]),
    ("i4 asym channel", ref.Scheme(4, symmetric=False, gran="channel"),
     ["--bits=4", "--granularity=channel", "--asymmetric"]),
    ("i8 tensor", ref.Scheme(8, gran="tensor"), ["--bits=8", "--granularity=tensor"]),
    ("log2 i4 group32", ref.Scheme(4, gran="group", group=32, grid="log2"),
     ["--bits=4", "--granularity=group", "--group-size=32", "--log2"]),
]

for name, s, flags in schemes:
    w, H = data(12, 64)
    # RTN: bit-exact codes and values.
    dq, codes, _ = run("rtn", w, None, flags)
    rc, rdq = ref.rtn(w, s)
    check(f"rtn {name} codes", np.array_equal(codes, rc),
          f"{int((codes != rc).sum())} codes differ")
    check(f"rtn {name} values", np.array_equal(dq, rdq), "values differ")
    # Clip search: same result as the reference search.
    dq, codes, e_clip = run("clip", w, H, flags)
    clip = ref.search_clip(w, s, H)
    rc, rdq = ref.rtn(w, s, clip)
    # The same choice per block, except where two ratios give errors equal
    # to rounding (the two searches sum in different orders): then the
    # blocks' errors must agree.
    same = np.array_equal(dq, rdq)
    e_ref = ref.output_error(w, rdq, H)
    check(f"clip {name}", same or abs(e_clip - e_ref) <= 1e-9 * e_ref,
          f"{int((dq != rdq).sum())} values differ, errors {e_clip} vs {e_ref}")
    e_rtn = ref.output_error(w, ref.rtn(w, s)[1], H)
    check(f"clip {name} <= rtn error", e_clip <= e_rtn * (1 + 1e-9), f"{e_clip} > {e_rtn}")
    # GPTQ, with and without act-order.
    for ao in (True, False):
        dq, codes, e_gptq = run("gptq", w, H, flags + [f"--act-order={'true' if ao else 'false'}"])
        rc, rdq = ref.gptq(w, H, s, act_order=ao)
        mism = int((codes != rc).sum())
        # Float64 in both, in a different operation order: a code may flip
        # where a value falls on a rounding boundary; allow 0.5% of them.
        check(f"gptq {name} act_order={ao} codes", mism <= codes.size * 0.005,
              f"{mism} of {codes.size} codes differ")
        check(f"gptq {name} act_order={ao} values",
              np.abs(dq - rdq).max() <= np.abs(rdq).max() * 0.5 if mism else np.allclose(dq, rdq, rtol=1e-6, atol=1e-7),
              f"max diff {np.abs(dq - rdq).max()}")
        if s.bits < 8:
            check(f"gptq {name} act_order={ao} beats rtn", e_gptq < e_rtn,
                  f"gptq {e_gptq} vs rtn {e_rtn}")

# A dead input column (all-zero activations) and a rank-deficient H.
w, _ = data(8, 32)
x = rng.standard_normal((16, 32)).astype(np.float32)
x[:, 5] = 0
H = x.astype(np.float64).T @ x.astype(np.float64)
s = ref.Scheme(4, gran="group", group=32)
dq, codes, e = run("gptq", w, H, ["--bits=4", "--group-size=32"])
rc, rdq = ref.gptq(w, H, s)
check("gptq dead column", int((codes != rc).sum()) <= 2 and np.isfinite(dq).all(),
      f"{int((codes != rc).sum())} codes differ")

print(f"{failures} failures")
sys.exit(1 if failures else 0)
