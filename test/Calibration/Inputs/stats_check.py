"""qwen::calib::TensorStats (lib/Calibration) against numpy.

  stats_check.py DRIVER WORKDIR

For synthetic matrices (Gaussian with per-channel scales and outliers,
uniform, Laplace; streamed in chunks of growing magnitude so the histogram
re-bins) runs the driver (qwen-calib-stats) and checks:
  * count, min, max, absmax, per-channel min / max: exact;
  * E[x_j^2] and X^T X (the .npy): numpy in float64 to 1e-12 relative;
  * the histogram: floor(|x| * bins / range) counted in numpy (the streamed
    re-binning may move a value that sits on a bin edge: at most 2 counts),
    and np.histogram (at most 4);
  * range = first chunk's absmax times a power of two, >= absmax;
  * percentile thresholds: the same interpolation in numpy (1e-12) and
    between np.percentile(|x|)'s lower and higher order statistics, give or
    take one bin width;
  * entropy: a numpy port of pytorch-quantization's _compute_amax_entropy
    (np.digitize, scipy-style KL) on the driver's histogram gives the same
    threshold;
  * mse: the histogram objective in numpy gives the same threshold, and the
    true quantization MSE of the raw data at it is within 2 % of the best
    threshold on a fine grid (brute force int8 quantization);
  * known answers: uniform U(-1, 1) has max ~ 1 and p99.9 ~ 0.999; a NaN is
    reported with its index.
"""
import json
import os
import subprocess
import sys

import numpy as np

DRIVER, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def run(name, x, chunk, bins=2048):
    x = np.ascontiguousarray(x, dtype=np.float32)
    raw = os.path.join(WORK, name + ".f32")
    npy = os.path.join(WORK, name + ".npy")
    x.tofile(raw)
    r = subprocess.run([DRIVER, raw, str(x.shape[0]), str(x.shape[1]), str(chunk),
                        str(bins), npy], capture_output=True, text=True)
    return r, npy


def pct_np(counts, rng, frac):
    total = counts.sum()
    target = frac * total
    cum = np.concatenate([[0], np.cumsum(counts)])
    w = rng / len(counts)
    for i, c in enumerate(counts):
        if c > 0 and cum[i] + c >= target:
            return (i + min(max((target - cum[i]) / c, 0), 1)) * w
    return rng


def kl_np(counts, rng, nbins=128):
    """pytorch-quantization's _compute_amax_entropy (start_bin=128, stride=1),
    without the bins[0] = bins[1] adjustment, KL as scipy.stats.entropy."""
    bins = counts.astype(np.float64)
    edges = np.linspace(0, rng, len(bins) + 1)
    divs, args = [], []
    for i in range(nbins, len(bins) + 1):
        space = np.linspace(0, i, num=nbins + 1)
        dig = np.digitize(range(i), space) - 1
        dig[bins[:i] == 0] = -1
        new = np.zeros(nbins)
        for idx, d in enumerate(dig):
            if d != -1:
                new[d] += bins[idx]
        cnt = np.bincount(dig[dig != -1], minlength=nbins)
        new = np.where(cnt > 0, new / np.maximum(cnt, 1), 0)
        q = np.where(dig != -1, new[np.maximum(dig, 0)], 0.0)
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        p /= p.sum()
        q = q / q.sum()
        m = p > 0
        if np.any(q[m] == 0):
            ent = np.inf
        else:
            ent = float(np.sum(p[m] * np.log(p[m] / q[m])))
        divs.append(ent)
        args.append(i)
    divs = np.array(divs)
    last = len(divs) - 1 - np.argmin(divs[::-1])
    return edges[args[last]]


def mse_np(counts, rng, levels=127):
    B = len(counts)
    w = rng / B
    lo_edges = np.arange(B) * w
    best, bt = np.inf, rng
    for i in range(1, B + 1):
        t = i * w
        d = t / levels
        err = counts[:i].sum() * d * d / 12
        lo = lo_edges[i:] - t
        hi = lo + w
        err += np.sum(counts[i:] * (hi ** 3 - lo ** 3) / (3 * w))
        if err < best:
            best, bt = err, t
    return bt


def true_mse(a, t):
    s = np.float32(t / 127)
    q = np.clip(np.rint(a / s), -127, 127) * s
    return float(np.mean((a.astype(np.float64) - q) ** 2))


def full_check(name, x, chunk, bins=2048):
    r, npy = run(name, x, chunk, bins)
    check(r.returncode == 0, f"{name}: driver exit {r.returncode}: {r.stderr}")
    if r.returncode:
        return
    st = json.loads(r.stdout)
    x64 = x.astype(np.float64)
    a = np.abs(x)
    check(st["rows"] == x.shape[0] and st["cols"] == x.shape[1], f"{name}: shape")
    check(st["min"] == float(x.min()) and st["max"] == float(x.max()), f"{name}: min/max")
    check(st["absmax"] == float(a.max()), f"{name}: absmax")
    check(np.array_equal(np.array(st["channel_min"], np.float32), x.min(0)), f"{name}: channel_min")
    check(np.array_equal(np.array(st["channel_max"], np.float32), x.max(0)), f"{name}: channel_max")
    m2 = (x64 ** 2).mean(0)
    check(np.allclose(st["moment2_diag"], m2, rtol=1e-12, atol=0), f"{name}: moment2_diag")
    xtx = np.load(npy)
    ref = x64.T @ x64
    check(xtx.shape == ref.shape and np.allclose(xtx, ref, rtol=1e-10, atol=1e-9 * np.abs(ref).max()),
          f"{name}: X^T X")
    check(np.array_equal(xtx, xtx.T), f"{name}: X^T X symmetric")
    h = st["histogram"]
    counts = np.array(h["counts"])
    rng = h["range"]
    # The range starts at the absmax of the first chunk that is not all zero.
    first = next(float(np.abs(x[i:i + chunk]).max()) for i in range(0, len(x), chunk)
                 if np.abs(x[i:i + chunk]).max() > 0)
    k = np.log2(rng / first)
    check(rng >= a.max() and abs(k - round(k)) < 1e-9, f"{name}: range {rng} vs first chunk {first}")
    a64 = a.astype(np.float64)
    ref_counts = np.bincount(np.minimum((a64 * (bins / rng)).astype(np.int64), bins - 1).ravel(),
                             minlength=bins)
    np_counts, _ = np.histogram(a64, bins=bins, range=(0, rng))
    check(counts.sum() == a.size, f"{name}: histogram total")
    check(np.abs(counts - ref_counts).sum() <= 2, f"{name}: histogram vs floor(|x| * bins / range) "
          f"({np.abs(counts - ref_counts).sum()} counts differ)")
    check(np.abs(counts - np_counts).sum() <= 4, f"{name}: histogram vs np.histogram "
          f"({np.abs(counts - np_counts).sum()} counts differ)")
    th = st["thresholds"]
    w = rng / bins
    amax = float(a.max())
    for key, frac in (("percentile_99.99", 0.9999), ("percentile_99.9", 0.999)):
        mine = min(pct_np(counts, rng, frac), amax)
        check(abs(th[key] - mine) <= 1e-12 * max(1, mine), f"{name}: {key} {th[key]} vs {mine}")
        # Between the order statistics around the quantile, give or take a bin.
        lo_q = float(np.percentile(a, frac * 100, method="lower"))
        hi_q = float(np.percentile(a, frac * 100, method="higher"))
        check(lo_q - w <= th[key] <= hi_q + w,
              f"{name}: {key} {th[key]} vs np.percentile [{lo_q}, {hi_q}] (bin {w})")
    ent = min(kl_np(counts, rng), amax)
    check(abs(th["entropy"] - ent) <= 1e-9 * ent, f"{name}: entropy {th['entropy']} vs {ent}")
    mse = min(mse_np(counts, rng), amax)
    check(abs(th["mse"] - mse) <= 1e-9 * mse, f"{name}: mse {th['mse']} vs {mse}")
    grid = np.linspace(amax / 200, amax, 400)
    errs = [true_mse(x, t) for t in grid]
    got = true_mse(x, th["mse"])
    check(got <= 1.02 * min(errs), f"{name}: true MSE at mse threshold {got:.4g} vs grid best {min(errs):.4g}")
    check(th["max"] == amax, f"{name}: max threshold")
    print(f"{name}: max {amax:.4g} p99.99 {th['percentile_99.99']:.4g} p99.9 {th['percentile_99.9']:.4g} "
          f"entropy {th['entropy']:.4g} mse {th['mse']:.4g} (true-MSE ratio {got / min(errs):.4f})")
    return st


rng_ = np.random.default_rng(7)
# Gaussian, per-channel scales, a few outliers; chunks of growing magnitude.
K = 48
g = rng_.standard_normal((600, K)).astype(np.float32) * np.linspace(0.2, 3, K, dtype=np.float32)
g[:100] *= 0.05
g[300, 5] = 40.0
g[450, 11] = -55.0
full_check("gauss", g, 100)
# Laplace (heavy tails: clipping pays).
lap = rng_.laplace(size=(800, 32)).astype(np.float32)
full_check("laplace", lap, 64)
# Uniform: known answers.
u = rng_.uniform(-1, 1, size=(1000, 40)).astype(np.float32)
st = full_check("uniform", u, 250)
if st:
    th = st["thresholds"]
    check(abs(th["max"] - 1) < 1e-3, "uniform: max ~ 1")
    check(abs(th["percentile_99.9"] - 0.999) < 2e-3, "uniform: p99.9 ~ 0.999")
    check(th["entropy"] > 0.9, "uniform: entropy keeps (almost) the whole range")
# Zeros first, then values (range set late).
z = np.zeros((50, 16), np.float32)
z[25:] = rng_.standard_normal((25, 16)).astype(np.float32)
full_check("zeros-first", z, 25, bins=256)
# NaN: an error with the flat index.
bad = rng_.standard_normal((10, 8)).astype(np.float32)
bad[6, 3] = np.nan
r, _ = run("nan", bad, 5)
check(r.returncode == 1 and "non-finite at 51" in r.stdout, f"nan: {r.returncode} {r.stdout}")

print("FAILED" if failures else "ALL OK")
sys.exit(1 if failures else 0)
