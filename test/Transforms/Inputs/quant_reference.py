"""numpy mirror of lib/Transforms/QuantAlgorithms.cpp (grids, RTN, clip
search, GPTQ), written from the algorithm descriptions, for the tests that
compare the C++ against it. Float32 where the C++ uses float (grids, codes,
dequantized values), float64 where it uses double (GPTQ's updates, H)."""

import numpy as np


class Scheme:
    def __init__(self, bits=4, symmetric=True, signed=True, gran="group",
                 group=128, grid="uniform"):
        self.bits, self.symmetric, self.signed = bits, symmetric, signed
        self.gran, self.group, self.grid = gran, group, grid


def f32(x):
    return np.float32(x)


def fit(v, s, clip=1.0):
    """Grid (scale, zpU) of a block of values, as GridQuantizer::fit."""
    v = np.asarray(v, dtype=np.float32)
    half = 1 << (s.bits - 1)
    levels = (1 << s.bits) - 1
    lo = min(f32(0), v.min()) if v.size else f32(0)
    hi = max(f32(0), v.max()) if v.size else f32(0)
    amax = np.abs(v).max() if v.size else f32(0)
    clip = f32(clip)
    if s.grid == "log2":
        return f32(amax * clip), 0
    if s.symmetric:
        return f32(amax * clip / f32(half - 1)), 0
    lo, hi = f32(lo * clip), f32(hi * clip)
    scale = f32((hi - lo) / f32(levels))
    zp = 0 if scale == 0 else int(np.clip(np.rint(f32(-lo / scale)), 0, levels))
    return scale, zp


def code(v, g, s):
    scale, zp = g
    half = 1 << (s.bits - 1)
    levels = (1 << s.bits) - 1
    v = f32(v)
    if s.grid == "log2":
        M = half - 1
        a = f32(0) if scale == 0 else f32(abs(v) / scale)
        best, err = 0, a
        for m in range(1, M + 1):
            e = f32(abs(a - f32(2.0 ** -(m - 1))))
            if e < err:
                best, err = m, e
        return 0 if best == 0 else ((half if v < 0 else 0) | best)
    if s.symmetric:
        q = 0 if scale == 0 else int(np.clip(np.rint(f32(v / scale)), -(half - 1), half - 1))
        return q if s.signed else q + half
    q = zp if scale == 0 else int(np.clip(np.rint(f32(v / scale)) + zp, 0, levels))
    return q - half if s.signed else q


def dequant(c, g, s):
    scale, zp = g
    half = 1 << (s.bits - 1)
    if s.grid == "log2":
        m = c & (half - 1)
        if m == 0:
            return f32(0)
        mag = f32(scale * f32(2.0 ** -(m - 1)))
        return -mag if c & half else mag
    if s.symmetric:
        return f32(scale * f32(c if s.signed else c - half))
    q = c + half if s.signed else c
    return f32(scale * f32(q - zp))


def blocks(s, rows, cols):
    if s.gran == "tensor":
        return 1, cols, 1
    block = s.group if s.gran == "group" else cols
    return rows * (cols // block), block, cols // block


def rtn(w, s, clip=None):
    rows, cols = w.shape
    n, block, per_row = blocks(s, rows, cols)
    out = np.zeros_like(w, dtype=np.float32)
    codes = np.zeros(w.shape, dtype=np.int64)
    if s.gran == "tensor":
        g = fit(w.ravel(), s, 1.0 if clip is None else clip[0])
        for r in range(rows):
            for c in range(cols):
                codes[r, c] = code(w[r, c], g, s)
                out[r, c] = dequant(codes[r, c], g, s)
        return codes, out
    for r in range(rows):
        for b in range(per_row):
            c0 = b * block
            g = fit(w[r, c0:c0 + block], s, 1.0 if clip is None else clip[r * per_row + b])
            for c in range(c0, c0 + block):
                codes[r, c] = code(w[r, c], g, s)
                out[r, c] = dequant(codes[r, c], g, s)
    return codes, out


def search_clip(w, s, H):
    rows, cols = w.shape
    n, block, per_row = blocks(s, rows, cols)
    ratios = [f32(1.0 - 0.05 * k) for k in range(11)]
    best = np.ones(n, dtype=np.float32)

    def err(r, c0, m, g):
        d = np.array([float(w[r, c0 + j]) - float(dequant(code(w[r, c0 + j], g, s), g, s))
                      for j in range(m)])
        Hb = H[c0:c0 + m, c0:c0 + m]
        return float(d @ Hb @ d)

    if s.gran == "tensor":
        be = np.inf
        for ratio in ratios:
            g = fit(w.ravel(), s, ratio)
            e = sum(err(r, 0, cols, g) for r in range(rows))
            if e < be:
                be, best[0] = e, ratio
        return best
    for r in range(rows):
        for b in range(per_row):
            c0 = b * block
            be = np.inf
            for ratio in ratios:
                g = fit(w[r, c0:c0 + block], s, ratio)
                e = err(r, c0, block, g)
                if e < be:
                    be, best[r * per_row + b] = e, ratio
    return best


def gptq(w, H, s, damp=0.01, act_order=True, block_size=128):
    """GPTQ as in Frantar et al., Algorithm 1 (lazy batch updates,
    Cholesky form of H^-1), float64 updates."""
    rows, cols = w.shape
    H = H.astype(np.float64).copy()
    w0 = w.astype(np.float32).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    w0[:, dead] = 0
    groups = s.gran == "group"
    static = act_order or not groups
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(cols)
    Hp = H[perm][:, perm]
    Hp[np.diag_indices(cols)] += damp * np.mean(np.diag(H))
    L = np.linalg.cholesky(Hp)
    Hinv = np.linalg.inv(L).T @ np.linalg.inv(L)
    U = np.linalg.cholesky(Hinv).T
    n, block, per_row = blocks(s, rows, cols)
    grids = [None] * n
    if static:
        if s.gran == "tensor":
            grids[0] = fit(w0.ravel(), s)
        else:
            for r in range(rows):
                for b in range(per_row):
                    grids[r * per_row + b] = fit(w0[r, b * block:(b + 1) * block], s)
    B = max(block_size, block if groups else 1)
    codes = np.zeros((rows, cols), dtype=np.int64)
    deq = np.zeros((rows, cols), dtype=np.float32)
    for r in range(rows):
        W = w0[r, perm].astype(np.float64)
        for i1 in range(0, cols, B):
            i2 = min(cols, i1 + B)
            err1 = np.zeros(i2 - i1)
            for i in range(i1, i2):
                c = perm[i]
                if not static and c % block == 0:
                    grids[r * per_row + c // block] = fit(W[i:i + block].astype(np.float32), s)
                gi = 0 if s.gran == "tensor" else r * per_row + c // block
                g = grids[gi]
                q = code(f32(W[i]), g, s)
                dq = dequant(q, g, s)
                codes[r, c] = q
                deq[r, c] = dq
                e = (W[i] - float(dq)) / U[i, i]
                err1[i - i1] = e
                W[i + 1:i2] -= e * U[i, i + 1:i2]
            W[i2:] -= err1 @ U[i1:i2, i2:]
    return codes, deq


def output_error(w, q, H):
    d = w.astype(np.float64) - q.astype(np.float64)
    return float(np.einsum("ri,ij,rj->", d, H, d))
