"""Compares qwen-quant-check kmeans (WeightSharing.cpp) with
kmeans_reference.py on random matrices: codebooks, indices (unpacked from the
packed store layout) and dequantized weights bit for bit, plain and weighted,
per tensor / channel / group; and that k-means beats uniform RTN-like levels
(its error is below the error of 2^bits evenly spaced levels per block).

usage: check_kmeans.py QWEN_QUANT_CHECK WORKDIR"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import kmeans_reference as ref  # noqa: E402

tool, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(11)
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    failures += not ok


def run(w, imp, flags):
    wp, ip = os.path.join(work, "w.npy"), os.path.join(work, "imp.npy")
    op, cp, bp = (os.path.join(work, n) for n in ("o.npy", "c.npy", "b.npy"))
    np.save(wp, w)
    args = [tool, "kmeans", wp]
    if imp is not None:
        np.save(ip, imp.reshape(1, -1).astype(np.float64))
        args.append(ip)
    subprocess.run(args + flags + ["-o", op, "--codes", cp, "--codebook", bp],
                   check=True)
    return np.load(op), np.load(cp), np.load(bp)


cases = [
    ("cb4 channel", 4, "channel", 128, 24, 96),
    ("cb3 channel", 3, "channel", 128, 16, 80),
    ("cb2 channel", 2, "channel", 128, 16, 64),
    ("cb4 group32", 4, "group", 32, 12, 128),
    ("cb3 group64", 3, "group", 64, 8, 128),
    ("cb4 tensor", 4, "tensor", 0, 16, 48),
    ("cb8 tensor", 8, "tensor", 0, 32, 64),
]
for name, bits, gran, group, rows, cols in cases:
    w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    w[0, 3] = 0.4  # an outlier
    for weighted in (False, True):
        imp = None
        if weighted:
            imp = rng.gamma(0.5, 1.0, cols)
            imp[rng.choice(cols, 3, replace=False)] *= 50
        flags = ["--bits=%d" % bits, "--granularity=" + gran]
        if gran == "group":
            flags.append("--group-size=%d" % group)
        dq, codes, books = run(w, imp, flags)
        rdq, ridx, rbooks, rpacked = ref.quantize(w, bits, gran, group, imp)
        tag = name + (" weighted" if weighted else "")
        check(tag + " codebooks", books.shape == rbooks.shape and
              np.array_equal(books.view(np.uint32), rbooks.view(np.uint32)),
              "max diff %g" % (np.max(np.abs(books - rbooks)) if books.shape == rbooks.shape else -1))
        check(tag + " indices", np.array_equal(codes, ridx),
              "%d differ" % np.sum(codes != ridx))
        check(tag + " dequantized", np.array_equal(dq.view(np.uint32),
                                                 rdq.view(np.uint32)))
        check(tag + " pack round trip",
              np.array_equal(ref.unpack(rpacked, cols, bits), ridx))
        check(tag + " sorted codebooks", bool(np.all(np.diff(books, axis=1) >= 0)))
        # Against evenly spaced levels over each block's [min, max].
        blk = cols if gran != "group" else group
        e_km = e_uni = 0.0
        wt = np.ones(cols) if imp is None else imp
        for r in range(rows):
            for g in range(cols // blk):
                sl = slice(g * blk, (g + 1) * blk)
                x = w[r, sl].astype(np.float64)
                if gran == "tensor":
                    x = w.astype(np.float64).reshape(-1)
                lv = np.linspace(x.min(), x.max(), 1 << bits)
                q = lv[np.argmin((x[:, None] - lv[None, :]) ** 2, axis=1)]
                d = (w[r, sl].astype(np.float64) - dq[r, sl]) if gran != "tensor" else None
                if gran == "tensor":
                    ww = np.tile(wt, rows)
                    e_uni = float(np.sum(ww * (x - q) ** 2))
                    e_km = float(np.sum(ww * (x - dq.reshape(-1)) ** 2))
                    break
                e_uni += float(np.sum(wt[sl] * (x - q) ** 2))
                e_km += float(np.sum(wt[sl] * d ** 2))
            if gran == "tensor":
                break
        check(tag + " beats evenly spaced levels", e_km < e_uni,
              "%g >= %g" % (e_km, e_uni))

# f16 centroids (codebook-type=f16): rounded straight from double.
for name, bits, gran, group in [("cb4 channel f16", 4, "channel", 0),
                                ("cb3 group32 f16", 3, "group", 32)]:
    w = (rng.standard_normal((8, 64)) * 0.05).astype(np.float32)
    flags = ["--bits=%d" % bits, "--granularity=" + gran, "--f16"]
    if group:
        flags.append("--group-size=%d" % group)
    dq, codes, books = run(w, None, flags)
    rdq, ridx, rbooks, _ = ref.quantize(w, bits, gran, group or 128, dtype=np.float16)
    check(name + " codebooks", np.array_equal(books, rbooks))
    check(name + " indices", np.array_equal(codes, ridx))
    check(name + " representable", np.array_equal(books.astype(np.float16).astype(np.float32), books))

# Determinism: the same input twice gives the same bytes.
w = (rng.standard_normal((8, 64)) * 0.05).astype(np.float32)
a = run(w, None, ["--bits=4", "--granularity=channel"])
b = run(w, None, ["--bits=4", "--granularity=channel"])
check("deterministic", all(np.array_equal(x, y) for x, y in zip(a, b)))
# A block with fewer distinct values than centroids: exact.
w = np.repeat(np.array([[-0.5, 0.0, 0.25]], np.float32), 22, axis=1)[:, :64]
w = np.repeat(w, 4, axis=0)
dq, _, books = run(w, None, ["--bits=3", "--granularity=channel"])
check("few distinct values exact", np.array_equal(dq, w))
rdq, _, rbooks, _ = ref.quantize(w, 3, "channel")
check("few distinct values vs reference", np.array_equal(books, rbooks))
print("%d failures" % failures)
sys.exit(1 if failures else 0)
