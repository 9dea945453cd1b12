"""numpy mirror of the weight-sharing k-means (include/qwen/Transforms/
WeightSharing.h): 1-D weighted k-means++ from splitmix64, Lloyd iterations,
f32 sorted codebooks, and the `bits`-per-index packing (the code of column c
in bits [c*b, c*b+b) of the row's bytes, LSB first)."""
import numpy as np

M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, state):
        self.state = state & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return float(self.next() >> 11) * 2.0 ** -53


def draw(p, rng):
    cs = np.cumsum(p)  # sequential, like the C++ running sum
    u = rng.uniform() * cs[-1]
    i = int(np.searchsorted(cs, u, side="right"))
    if i < len(p):
        return i
    nz = np.nonzero(p > 0)[0]
    return int(nz[-1]) if len(nz) else 0


def nearest(x, c):
    return np.argmin((x[:, None] - c[None, :]) ** 2, axis=1)


def kmeans1d(x, v, k, block, seed=0x5EED, max_iters=100, tol=1e-6,
             dtype=np.float32):
    x = np.asarray(x, np.float64)
    v = np.ones_like(x) if v is None else np.asarray(v, np.float64)
    rng = SplitMix64(seed ^ ((block * 0xD1B54A32D192ED03) & M64))
    c = np.zeros(k)
    c[0] = x[draw(v, rng)]
    d2 = (x - c[0]) * (x - c[0])
    for j in range(1, k):
        p = v * d2
        total = 0.0
        for t in p:  # sequential, as in C++
            total += t
        if not total > 0:
            c[j:] = c[0]
            break
        c[j] = x[draw(p, rng)]
        d2 = np.minimum(d2, (x - c[j]) * (x - c[j]))
    scale = np.max(np.abs(x)) if len(x) else 0.0
    if scale == 0:
        scale = 1.0
    it = 0
    while it < max_iters:
        it += 1
        idx = nearest(x, c)
        sw = np.bincount(idx, weights=v, minlength=k)
        swx = np.bincount(idx, weights=v * x, minlength=k)
        nc = c.copy()
        ne = sw > 0
        nc[ne] = swx[ne] / sw[ne]
        shift = np.max(np.abs(nc - c)[ne]) if ne.any() else 0.0
        c = nc
        if shift <= tol * scale:
            break
    # f16: rounded straight from double, then held as f32.
    cb = np.sort(c.astype(dtype).astype(np.float32))
    return cb, nearest(x, cb.astype(np.float64))


def quantize(w, bits, gran="channel", group=128, importance=None,
             max_iters=100, tol=1e-6, dtype=np.float32):
    """-> (dequantized f32 [rows, cols], indices [rows, cols],
    codebooks f32 [books, 2^bits], packed codes u8 [rows, rowBytes])"""
    w = np.asarray(w, np.float32)
    rows, cols = w.shape
    k = 1 << bits
    imp = None
    if importance is not None:
        importance = np.asarray(importance, np.float64).reshape(-1)
        mean = 0.0
        for t in importance:
            mean += t
        mean /= cols
        imp = np.maximum(importance / mean if mean > 0 else np.ones(cols), 1e-6)
    idx = np.zeros((rows, cols), np.int64)
    if gran == "tensor":
        x = w.astype(np.float64).reshape(-1)
        v = None if imp is None else np.tile(imp, rows)
        cb, i = kmeans1d(x, v, k, 0, max_iters=max_iters, tol=tol, dtype=dtype)
        books = cb[None, :]
        idx[:] = i.reshape(rows, cols)
    else:
        block = group if gran == "group" else cols
        per = cols // block
        books = np.zeros((rows * per, k), np.float32)
        for r in range(rows):
            for g in range(per):
                sl = slice(g * block, (g + 1) * block)
                cb, i = kmeans1d(w[r, sl].astype(np.float64),
                                 None if imp is None else imp[sl], k,
                                 r * per + g, max_iters=max_iters, tol=tol,
                                 dtype=dtype)
                books[r * per + g] = cb
                idx[r, sl] = i
    return dequantize(idx, books, gran, group), idx, books, pack(idx, bits)


def dequantize(idx, books, gran="channel", group=128):
    rows, cols = idx.shape
    if gran == "tensor":
        return books[0][idx]
    block = group if gran == "group" else cols
    per = cols // block
    book = (np.arange(rows)[:, None] * per + np.arange(cols)[None, :] // block)
    return books[book, idx]


def pack(idx, bits):
    rows, cols = idx.shape
    rb = (cols * bits + 7) // 8
    out = np.zeros((rows, rb), np.uint8)
    for c in range(cols):
        for i in range(bits):
            bit = c * bits + i
            out[:, bit // 8] |= (((idx[:, c] >> i) & 1) << (bit % 8)).astype(np.uint8)
    return out


def unpack(packed, cols, bits):
    rows = packed.shape[0]
    idx = np.zeros((rows, cols), np.int64)
    for c in range(cols):
        for i in range(bits):
            bit = c * bits + i
            idx[:, c] |= ((packed[:, bit // 8].astype(np.int64) >> (bit % 8)) & 1) << i
    return idx
