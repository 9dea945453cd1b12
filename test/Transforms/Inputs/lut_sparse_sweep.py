"""Numerics of the codebook (LUT) and 2:4 sparse kernels
(lib/Transforms/SparseLutKernels.cpp).

  lut_sparse_sweep.py gen STORE MODE > case.mlir   # writes STORE, prints the program
  lut_sparse_sweep.py check REF_OUT OUT...         # the runner outputs

MODE: `ref` lowers with `qwen.quant_kernel = {fused = false}` (codebooks:
dequantize the whole weight, then the matmul; 2:4: linearSparse24), `avx2`
with the kernels' AVX2 lane permutes (the default, any x86-64 with AVX2),
`avx512` with vpermps / vpermt2ps on zmm (`avx512 = true`), `gather` with
the codebook centroids gathered from memory (`lut_gather = true`).

Shapes: N not a multiple of the tile of 4 channels, K not a multiple of the
chunk (per tensor / channel; 16 * 8 / B inputs for a B-bit codebook, 32 for
2:4), M = 1, 3, 17 (blocks of 4 tokens and a remainder), rank-2 inputs with
a dynamic M and rank-3 ones, bias, linear and logits; codebooks of 2 to 8
bits per tensor / channel / group (f32 and f16 centroids); 2:4 i4 / i8
uniform per tensor / channel / group and log2 i4; codebooks of 3, 5, 6 and 7
bits and 2 bits in groups of 32 (16 codes from 2 * bits bytes, codes
spanning bytes); an asymmetric u4 2:4 weight, which the kernels leave to the
reference. Every
output is compared with float64 numpy and each kernel run with the
reference.

Tolerance: the kernels sum in 16 lanes per chunk, then reduce across lanes;
the reference sums in k order; the runner prints 6 significant digits:
|a - b| <= 2e-5 * sum_k |x_k W_nk| + 2e-6 |b| (as woq_sweep.py).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from log2_reference import pack  # noqa: E402
from woq_sweep import case_lines, parse  # noqa: E402

F = np.float32
rng = np.random.default_rng(29)

# Codebooks (every width 2..8): name, bits, granularity, group, N, K, M list, bias, centroid dtype, op.
CB = [
    ("cb4c", 4, "channel", 0, 37, 100, [1, 3, 17], True, F, "linear"),
    ("cb4g", 4, "group", 32, 29, 96, [1, 3, 17], False, np.float16, "linear"),
    ("cb4t", 4, "tensor", 0, 9, 64, [1, 17], False, F, "logits"),
    ("cb2g", 2, "group", 64, 19, 128, [1, 3], True, F, "linear"),
    ("cb2c", 2, "channel", 0, 13, 70, [1, 17], False, F, "linear"),
    ("cb8c", 8, "channel", 0, 21, 77, [1, 3, 17], True, F, "linear"),
    ("cb8g", 8, "group", 32, 11, 64, [1, 3], False, np.float16, "logits"),
    ("cb3c", 3, "channel", 0, 10, 40, [1, 3], True, F, "linear"),
    ("cb3g", 3, "group", 32, 23, 128, [1, 3, 17], False, np.float16, "linear"),
    ("cb5g", 5, "group", 64, 14, 128, [1, 3], True, F, "linear"),
    ("cb6c", 6, "channel", 0, 9, 50, [1, 17], False, F, "logits"),
    ("cb7t", 7, "tensor", 0, 6, 48, [1, 3], True, F, "linear"),
    ("cb2g32", 2, "group", 32, 7, 64, [1, 3], False, F, "linear"),
]
# 2:4: name, grid (i4 / i8 / log2 / u4 asymmetric), granularity, group, N, K, M list, bias, scale dtype, op.
SP = [
    ("sp4g", "i4", "group", 32, 37, 96, [1, 3, 17], True, F, "linear"),
    ("sp4g128", "i4", "group", 128, 30, 256, [1, 3], False, F, "linear"),
    ("sp4c", "i4", "channel", 0, 29, 100, [1, 3, 17], False, F, "linear"),
    ("sp4t", "i4", "tensor", 0, 9, 36, [1, 3], True, F, "linear"),
    ("sp8c", "i8", "channel", 0, 45, 68, [1, 3, 17], True, np.float16, "linear"),
    ("splog", "log2", "group", 32, 19, 64, [1, 17], False, F, "logits"),
    ("spu4", "u4", "channel", 0, 10, 32, [1, 3], True, F, "linear"),
]


def codebook_case(name, bits, gran, group, n, k, ms, has_b, cdt, op):
    codes = rng.integers(0, 1 << bits, (n, k))
    books = {"tensor": 1, "channel": n, "group": n * (k // max(group, 1))}[gran]
    cb = np.sort(rng.standard_normal((books, 1 << bits)), axis=1).astype(cdt)
    if gran == "tensor":
        book = np.zeros((n, k), np.int64)
    elif gran == "channel":
        book = np.repeat(np.arange(n)[:, None], k, 1)
    else:
        book = np.arange(n)[:, None] * (k // group) + np.arange(k)[None, :] // group
    deq = cb.astype(np.float64)[book, codes]
    g = {"tensor": "tensor", "channel": "channel", "group": f"group = {group}"}[gran]
    return dict(name=name, n=n, k=k, ms=ms, has_b=has_b, op=op, deq=deq,
                wt=f"!qquant.weight<{n}x{k}xf32, codebook {bits}, {g}>",
                entries={".codes": pack(codes, bits), ".codebook": cb})


def log2_level(c):
    m = c & 7
    return np.where(m == 0, 0.0, np.where(c & 8, -1.0, 1.0) * np.exp2(-(m - 1.0)))


def sparse_case(name, grid, gran, group, n, k, ms, has_b, sdt, op):
    h = k // 2
    pairs = np.array([(a, b) for a in range(4) for b in range(a + 1, 4)])
    pos = pairs[rng.integers(0, 6, (n, k // 4))].reshape(n, h)
    cols = 4 * (np.arange(h) // 2)[None, :] + pos
    ngroups = {"tensor": 1, "channel": 1, "group": k // max(group, 1)}[gran]
    shape = (1,) if gran == "tensor" else (n, ngroups)
    s = rng.uniform(0.05, 2.0, shape).astype(sdt)
    s64 = s.astype(np.float64)
    sc = (np.full((n, h), s64[0]) if gran == "tensor" else
          s64[np.arange(n)[:, None], cols // group] if gran == "group" else np.repeat(s64, h, 1))
    entries = {".scales": s, ".mask": pack(pos, 2)}
    if grid == "log2":
        c = rng.integers(0, 16, (n, h))
        vals = log2_level(c) * sc
        entries[".codes"] = pack(c, 4)
        wt = f"log2 i4, symmetric"
    elif grid == "u4":
        c = rng.integers(0, 16, (n, h))
        z = rng.integers(3, 13, (n, 1)).astype(np.uint8)
        vals = (c - z.astype(np.int64)) * sc
        entries[".codes"] = pack(c, 4)
        entries[".zeros"] = z
        wt = "ui4, asymmetric"
    else:
        bits = 4 if grid == "i4" else 8
        qmax = (1 << (bits - 1)) - 1
        c = rng.integers(-qmax, qmax + 1, (n, h))
        vals = c * sc
        entries[".codes"] = pack(c & ((1 << bits) - 1), bits)
        wt = f"i{bits}, symmetric"
    deq = np.zeros((n, k))
    deq[np.arange(n)[:, None], cols] = vals
    g = {"tensor": "tensor", "channel": "channel", "group": f"group = {group}"}[gran]
    return dict(name=name, n=n, k=k, ms=ms, has_b=has_b, op=op, deq=deq, entries=entries,
                wt=f"!qquant.weight<{n}x{k}xf32, {wt}, {g}, sparsity = 2:4>")


def data():
    cases = [codebook_case(*c) for c in CB] + [sparse_case(*c) for c in SP]
    for c in cases:
        c["b"] = rng.standard_normal(c["n"]).astype(F) if c["has_b"] else None
        c["xs"] = [rng.standard_normal((m, c["k"])).astype(F) for m in c["ms"]]
    return cases


ATTRS = {"ref": "{fused = false}", "avx2": None, "avx512": "{avx512 = true}", "gather": "{lut_gather = true}"}


def gen(store, mode):
    from qwen_opt import weight_store
    cases = data()
    entries = {}
    for c in cases:
        for sfx, a in c["entries"].items():
            entries[c["name"] + sfx] = a
    weight_store.write(store, entries)
    attr = "" if ATTRS[mode] is None else f" attributes {{qwen.quant_kernel = {ATTRS[mode]}}}"
    lines = [f"module{attr} {{", f'qwen.store @q "{store}"', "func.func private @printMemrefF32(tensor<*xf32>)",
             "func.func @main() {"]
    for v, c in enumerate(cases):
        lines += case_lines(v, c, c["wt"])
    lines += ["  return", "}", "}"]
    print("\n".join(lines))


def check(ref_out, outs):
    cases = data()
    runs = [("reference", parse(ref_out))] + [(os.path.basename(o), parse(o)) for o in outs]
    want = sum(len(c["xs"]) for c in cases)
    for label, got in runs:
        if len(got) != want:
            print(f"FAIL: expected {want} printed tensors, got {len(got)} in {label}")
            sys.exit(1)
    ok, i, worst = True, 0, 0.0
    for c in cases:
        case_ok = True
        for x in c["xs"]:
            x64 = x.astype(np.float64)
            exact = x64 @ c["deq"].T + (c["b"].astype(np.float64) if c["b"] is not None else 0)
            mag = np.abs(x64) @ np.abs(c["deq"]).T
            tol = 2e-5 * mag + 2e-6 * np.abs(exact)
            ref = runs[0][1][i]
            for label, got in runs:
                g = got[i]
                if g.size != exact.size or not (np.abs(g.reshape(exact.shape) - exact) <= tol).all():
                    case_ok = False
                    print(f"FAIL {c['name']} M={x.shape[0]} {label} vs numpy: "
                          + ("wrong size" if g.size != exact.size else
                             f"max err/tol {np.max(np.abs(g.reshape(exact.shape) - exact) / tol):.2f}"))
                    continue
                d = np.abs(g - ref).reshape(exact.shape)
                if not (d <= tol).all():
                    case_ok = False
                    print(f"FAIL {c['name']} M={x.shape[0]}: {label} vs reference max err/tol {np.max(d / tol):.2f}")
                worst = max(worst, float(np.max(d / np.maximum(mag, 1e-30))))
            i += 1
        ok &= case_ok
        if case_ok:
            print(f"OK {c['name']}: {c['wt']} M={','.join(str(m) for m in c['ms'])} {c['op']}"
                  + (" bias" if c["has_b"] else ""))
    print(f"{'OK' if ok else 'FAIL'}: {i} products x {len(runs)} lowerings; "
          f"max |kernel - reference| / sum|x*w| = {worst:.1e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3:])
