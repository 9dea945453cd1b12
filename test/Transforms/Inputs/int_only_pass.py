"""A small MLP + projection module for --qwen-integer-only, its store and
calibration statistics, and the numpy mirror of the integer chain the pass
builds (multipliers, SiLU table, requantization), compared after the JIT.

  int_only_pass.py gen DIR > case.mlir    # writes DIR/w.qws, DIR/stats.json
  int_only_pass.py check < runner-output

h = rms_norm(x, gamma); y = linear_d(silu(linear_g(h)) * linear_u(h)) +
linear_q(h) + b_q with static int8 activations (w8a8) and i8 per-channel
weights; the norm's input scale comes from the "gamma#in" site.
"""
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from int_only_reference import int_rms_norm, requantize  # noqa: E402

F = np.float32
rng = np.random.default_rng(7)
T, K, H = 6, 64, 128
x = (rng.standard_normal((1, T, K)) * 1.5).astype(F)
ws = {n: (rng.standard_normal(s) * 0.15).astype(F) for n, s in
      [("wg", (H, K)), ("wu", (H, K)), ("wd", (K, H)), ("wq", (K, K))]}
bq = rng.standard_normal(K).astype(F)
gamma = rng.uniform(0.5, 1.5, K).astype(F)
EPS = 1e-6
x[0, 2] *= 20                     # a loud token
scales, codes = {}, {}
for n, w in ws.items():
    scales[n] = (np.abs(w).max(1) / F(127)).astype(F)
    codes[n] = np.clip(np.rint(w / scales[n][:, None]), -127, 127).astype(np.int64)
def rms(v):
    return (v / np.sqrt((v.astype(np.float64) ** 2).mean(-1, keepdims=True) + EPS) * gamma).astype(F)


h_f = rms(x)
SX = float(np.abs(h_f).max() / 127)  # the norm output's static scale (gate, up, q)
SIN = float(np.abs(x).max() / 32767)  # the norm input's int16 scale ("#in", max)
# Float model activations give the calibrated output / down-input scales.
g_f = h_f @ ws["wg"].T
u_f = h_f @ ws["wu"].T
m_f = g_f / (1 + np.exp(-g_f)) * u_f
SG = float(np.abs(g_f).max() * 0.9 / 127)
SU = float(np.abs(u_f).max() * 0.9 / 127)
SD = float(np.abs(m_f).max() * 0.8 / 127)


def qmult(m):
    """Mirror of qwen::intonly::quantizeMultiplier."""
    if m == 0:
        return 0, 0
    f, e = math.frexp(m)
    q = math.floor(f * 2.0 ** 31 + 0.5)
    if q == 1 << 31:
        q //= 2
        e += 1
    assert e <= 0
    if -e > 31:
        return 0, 0
    return q, -e


def silu(v):
    return v / (1.0 + np.exp(-v))


def ref():
    x16 = np.clip(np.rint(x / F(SIN)), -32767, 32767).astype(np.int64).reshape(T, K)
    def llround(v):  # std::llround: halves away from zero
        return int(math.copysign(math.floor(abs(v) + 0.5), v))
    gain = [llround(float(g) * math.sqrt(K) / SX * 65536.0) for g in gamma]
    eps = int(math.floor(K * EPS / (SIN * SIN) + 0.5))
    q = int_rms_norm(x16, gain, eps).reshape(1, T, K)
    out = {}
    for n, so in (("wg", SG), ("wu", SU)):
        acc = q @ codes[n].T
        mq = [qmult(SX * float(s) / so) for s in scales[n]]
        out[n] = requantize(acc, np.array([a for a, _ in mq]), np.array([b for _, b in mq]), 0)
    qs = np.arange(-127, 128)
    ss = np.abs(silu(qs * SG)).max() / 127
    table = np.clip(np.rint(silu((np.arange(256) - 128) * SG) / ss), -127, 127).astype(np.int64)
    s8 = table[out["wg"] + 128]
    m, e = qmult(ss * SU / SD)
    d8 = requantize(s8 * out["wu"], np.int64(m), np.int64(e), 0)
    yd = (d8 @ codes["wd"].T).astype(F) * np.array([F(SD * float(s)) for s in scales["wd"]], F)
    yq = (q @ codes["wq"].T).astype(F) * np.array([F(SX * float(s)) for s in scales["wq"]], F) + bq
    return (yd.astype(F) + yq.astype(F)).astype(F), (m_f @ ws["wd"].T + h_f @ ws["wq"].T + bq)


def fmt(a):
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(fmt(v) for v in a) + "]"


def gen(d):
    from qwen_opt import weight_store
    os.makedirs(d, exist_ok=True)
    ent = {}
    for n in ws:
        ent[n + ".codes"] = codes[n].astype(np.int8).view(np.uint8)
        ent[n + ".scales"] = scales[n].reshape(-1, 1)
    ent["gamma"] = gamma
    weight_store.write(os.path.join(d, "w.qws"), ent)
    stats = {"format": "qwen-calib", "version": 1, "layers": {
        "wg#out": {"observed": 0, "thresholds": {"mse": SG * 127, "max": 1.0}},
        "wu#out": {"observed": 1, "thresholds": {"mse": SU * 127, "max": 1.0}},
        "gamma#in": {"observed": 2, "thresholds": {"mse": 1.0, "max": SIN * 32767}}}}
    json.dump(stats, open(os.path.join(d, "stats.json"), "w"))
    def wt(n):
        r, c = ws[n].shape
        return f"!qquant.weight<{r}x{c}xf32, i8, symmetric, channel>"
    def act(s):
        return f"{{act = #qquant.act<static : !quant.uniform<i8<-127:127>:f32, {s!r}>>}}"
    print(f'''qwen.store @q "{os.path.join(d, 'w.qws')}"
func.func private @printMemrefF32(tensor<*xf32>)
func.func @model(%x: tensor<1x{T}x{K}xf32>) -> tensor<1x{T}x{K}xf32> {{
  %bq = arith.constant dense<{fmt(bq)}> : tensor<{K}xf32>
  %gamma = qwen.weight @q::@gamma : tensor<{K}xf32>
  %h = qwen.rms_norm %x, %gamma {{epsilon = {EPS:.6e} : f32}} : (tensor<1x{T}x{K}xf32>, tensor<{K}xf32>) -> tensor<1x{T}x{K}xf32>
  %wg = qquant.weight @q::@wg : {wt("wg")}
  %wu = qquant.weight @q::@wu : {wt("wu")}
  %wd = qquant.weight @q::@wd : {wt("wd")}
  %wq = qquant.weight @q::@wq : {wt("wq")}
  %g = qquant.linear %h, %wg {act(SX)} : (tensor<1x{T}x{K}xf32>, {wt("wg")}) -> tensor<1x{T}x{H}xf32>
  %u = qquant.linear %h, %wu {act(SX)} : (tensor<1x{T}x{K}xf32>, {wt("wu")}) -> tensor<1x{T}x{H}xf32>
  %m = qwen.silu_mul %g, %u : tensor<1x{T}x{H}xf32>
  %d = qquant.linear %m, %wd {act(SD)} : (tensor<1x{T}x{H}xf32>, {wt("wd")}) -> tensor<1x{T}x{K}xf32>
  %p = qquant.linear %h, %wq, %bq {act(SX)} : (tensor<1x{T}x{K}xf32>, {wt("wq")}, tensor<{K}xf32>) -> tensor<1x{T}x{K}xf32>
  %y = qwen.add %d, %p : tensor<1x{T}x{K}xf32>
  return %y : tensor<1x{T}x{K}xf32>
}}
func.func @main() {{
  %x = arith.constant dense<{fmt(x)}> : tensor<1x{T}x{K}xf32>
  %y = func.call @model(%x) : (tensor<1x{T}x{K}xf32>) -> tensor<1x{T}x{K}xf32>
  %p = tensor.cast %y : tensor<1x{T}x{K}xf32> to tensor<*xf32>
  func.call @printMemrefF32(%p) : (tensor<*xf32>) -> ()
  return
}}''')


def check():
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    if len(blocks) != 1:
        print(f"FAIL: expected 1 printed tensor\n{text}")
        sys.exit(1)
    got = np.array([float(t) for t in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", blocks[0].split("data =", 1)[1])])
    r, flt = ref()
    r = r.astype(np.float64).reshape(-1)
    err = np.abs(got - r) / np.maximum(np.abs(r), 1e-2) if got.shape == r.shape else np.array([np.inf])
    rel = np.abs(flt.reshape(-1) - r).max() / np.abs(flt).max()
    if err.max() > 1e-5:
        print(f"FAIL: max rel err {err.max():.2e} vs the numpy integer chain")
        sys.exit(1)
    print(f"OK integer chain: {r.size} values match numpy (max rel err {err.max():.1e}); "
          f"vs float model {rel:.3f} of max|y|")


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
