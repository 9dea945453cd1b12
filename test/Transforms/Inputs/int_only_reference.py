"""Bit-exact numpy references of the integer-only qquant ops.

  int_only_reference.py gen > case.mlir     # prints the JIT program
  int_only_reference.py check < runner-output

qquant.requantize (gemmlowp SaturatingRoundingDoublingHighMul +
RoundingDivideByPOT, clamp to [-127, 127]) per channel and per tensor with
extreme accumulators, shifts 0 and 31 and a zero multiplier;
qquant.lookup, qquant.int_mul, qquant.quantize and qquant.dequantize.
"""
import re
import sys

import numpy as np

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
rng = np.random.default_rng(5)
C = 8
acc = rng.integers(-200000, 200000, (4, C), dtype=np.int64)
acc[0] = [I32_MIN, I32_MAX, -1, 0, 1, 1 << 30, -(1 << 30), 12345]
acc[1, :4] = [2, -2, 3, -3]   # ties of the rounding shift
mult = np.array([1 << 30, (1 << 31) - 1, 1518500250, 0, 1 << 30, 1717986918, 1288490189, 2000000000], np.int64)
shift = np.array([0, 31, 7, 3, 1, 12, 20, 5], np.int64)
ZP = 3
lut = rng.integers(-127, 128, 256)
a8 = rng.integers(-127, 128, (4, C))
b8 = rng.integers(-127, 128, (4, C))
b8[0, :3] = [-127, 127, -128]
a8[0, :3] = [-127, -127, -128]
xf = (rng.standard_normal((4, C)) * 3).astype(np.float32)
xf[0, :4] = [0.5 * 0.05, -0.5 * 0.05, 1.5 * 0.05, 100.0]  # ties, clipping
QS = 0.05
DS = np.array([0.5, 1e-3, 2.0, 3.0, 0.25, 1.0, 7.0, 1e-5], np.float32)
bias = rng.standard_normal(C).astype(np.float32)
# int_rms_norm: int16 rows (one all zero, one extreme), gains, eps.
h16 = rng.integers(-3000, 3000, (4, C))
h16[1] = 0
h16[2] = [32767, -32767, 32767, -32767, 1, -1, 0, 32767]
gain = rng.integers(-(1 << 24), 1 << 24, C)
gain[0] = 1 << 40
EPS = 7
QS16 = 0.0015


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int64 holders of i32."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    q = np.abs(s) // (1 << 31) * np.sign(s)  # truncate toward zero
    return np.where((a == I32_MIN) & (b == I32_MIN), I32_MAX, q)


def rdbpot(x, e):
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def requantize(x, m, e, zp):
    return np.clip(rdbpot(srdhm(x, m), e) + zp, -127, 127)


def isqrt_newton(v):
    """The op's integer Newton square root (checked against math.isqrt)."""
    import math
    r = 1 << ((v.bit_length() + 1) // 2)
    for _ in range(8):
        r = min(r, (r + v // max(r, 1)) // 2)
    assert r == math.isqrt(v), (v, r)
    return r


def int_rms_norm(x, g, eps):
    out = np.zeros(x.shape, np.int64)
    for i, row in enumerate(x.tolist()):
        v = eps + sum(t * t for t in row)
        r = isqrt_newton(v)
        for k, t in enumerate(row):
            if r == 0:
                continue
            n, d = t * int(g[k]), r << 16
            q = (abs(n) + d // 2) // d
            out[i, k] = max(-127, min(127, -q if n < 0 else q))
    return out


def fmt(a):
    if a.ndim == 0:
        return repr(a.item())
    return "[" + ", ".join(fmt(v) for v in a) + "]"


def arr(a):
    return ", ".join(str(int(v)) for v in a)


def refs():
    return [
        ("requantize per channel", requantize(acc, mult, shift, ZP)),
        ("requantize per tensor", requantize(acc, mult[2], shift[2], 0)),
        ("lookup", lut[a8 + 128]),
        ("int_mul", a8 * b8),
        ("quantize", np.clip(np.rint(xf / np.float32(QS)), -127, 127)),
        ("dequantize", (acc.astype(np.float32) * DS + bias).astype(np.float32)),
        ("int_rms_norm", int_rms_norm(h16, gain, EPS)),
        ("quantize i16", np.clip(np.rint(xf / np.float32(QS16)), -32767, 32767)),
    ]


def gen():
    print(f'''func.func private @printMemrefI32(tensor<*xi32>)
func.func private @printMemrefF32(tensor<*xf32>)
func.func @main() {{
  %acc = arith.constant dense<{fmt(acc)}> : tensor<4x{C}xi32>
  %a = arith.constant dense<{fmt(a8)}> : tensor<4x{C}xi8>
  %b = arith.constant dense<{fmt(b8)}> : tensor<4x{C}xi8>
  %x = arith.constant dense<{fmt(xf)}> : tensor<4x{C}xf32>
  %bias = arith.constant dense<{fmt(bias)}> : tensor<{C}xf32>
  %r0 = qquant.requantize %acc {{multiplier = array<i32: {arr(mult)}>, shift = array<i32: {arr(shift)}>, zero_point = {ZP} : i32}} : tensor<4x{C}xi32> -> tensor<4x{C}xi8>
  %r1 = qquant.requantize %acc {{multiplier = array<i32: {mult[2]}>, shift = array<i32: {shift[2]}>}} : tensor<4x{C}xi32> -> tensor<4x{C}xi8>
  %r2 = qquant.lookup %a {{table = array<i8: {arr(lut)}>}} : tensor<4x{C}xi8> -> tensor<4x{C}xi8>
  %r3 = qquant.int_mul %a, %b : (tensor<4x{C}xi8>, tensor<4x{C}xi8>) -> tensor<4x{C}xi32>
  %r4 = qquant.quantize %x {{scale = {QS!r}}} : tensor<4x{C}xf32> -> tensor<4x{C}xi8>
  %h = arith.constant dense<{fmt(h16)}> : tensor<4x{C}xi16>
  %r6 = qquant.int_rms_norm %h {{gain = array<i64: {arr(gain)}>, eps = {EPS} : i64}} : tensor<4x{C}xi16> -> tensor<4x{C}xi8>
  %r7 = qquant.quantize %x {{scale = {QS16!r}}} : tensor<4x{C}xf32> -> tensor<4x{C}xi16>
  %r5 = qquant.dequantize %acc, %bias {{scale = array<f32: {", ".join(repr(float(v)) for v in DS)}>}} : (tensor<4x{C}xi32>, tensor<{C}xf32>) -> tensor<4x{C}xf32>''')
    for i in range(8):
        if i in (0, 1, 2, 4, 6, 7):
            src = "i16" if i == 7 else "i8"
            print(f"  %e{i} = arith.extsi %r{i} : tensor<4x{C}x{src}> to tensor<4x{C}xi32>")
            v = f"%e{i}"
        else:
            v = f"%r{i}"
        if i == 5:
            print(f"  %p{i} = tensor.cast {v} : tensor<4x{C}xf32> to tensor<*xf32>")
            print(f"  func.call @printMemrefF32(%p{i}) : (tensor<*xf32>) -> ()")
        else:
            print(f"  %p{i} = tensor.cast {v} : tensor<4x{C}xi32> to tensor<*xi32>")
            print(f"  func.call @printMemrefI32(%p{i}) : (tensor<*xi32>) -> ()")
    print("  return\n}")


NUM = re.compile(r"-?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)")


def check():
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    rs = refs()
    if len(blocks) != len(rs):
        print(f"FAIL: expected {len(rs)} printed tensors\n{text}")
        sys.exit(1)
    ok = True
    for (name, r), blk in zip(rs, blocks):
        got = np.array([float(t) for t in NUM.findall(blk.split("data =", 1)[1])])
        r = np.asarray(r, np.float64).reshape(-1)
        if name == "dequantize":
            good = got.shape == r.shape and np.all(np.abs(got - r) <= 1e-5 * np.maximum(np.abs(r), 1e-3))  # printed to 6 digits
        else:
            good = got.shape == r.shape and np.array_equal(got, r)
        print(("OK " if good else "FAIL ") + f"{name}: {r.size} values"
              + (" match numpy bit for bit" if good and name != "dequantize" else ""))
        ok &= bool(good)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1]]()
