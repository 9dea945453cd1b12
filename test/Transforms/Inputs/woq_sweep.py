"""Numerics of the fused weight-only kernels (lib/Transforms/QuantKernels.cpp).

  woq_sweep.py gen STORE fused|ref > case.mlir   # writes STORE, prints the program
  woq_sweep.py check FUSED_OUT REF_OUT           # the runner outputs of both
  woq_sweep.py gen STORE fused-m1 > case.mlir   # the kernel with tile_m = 1
  woq_sweep.py gen STORE bf16|ref-bf16 > case.mlir
  woq_sweep.py check-bf16 FUSED_OUT REF_OUT
  woq_sweep.py gen STORE i16|ref-i16 > case.mlir
  woq_sweep.py check-i16 FUSED_OUT REF_OUT

bf16: the linears carry {bf16_input} (the input rounded to bfloat16) and the
fused program says the target has AVX512-BF16 (qwen.quant_kernel =
{avx512bf16 = true}), so 4-bit codes in groups of 64 / 128 (or per channel
with K a multiple of 64) take the vdpbf16ps kernel for single tokens; the
exact result is then x rounded to bf16 (numpy, round to nearest even) times
the dequantized weight. Its cases (BF16_CASES) come from their own seed.

i16: the linears carry {i16_input} (the input quantized to int16 and
dequantized per weight group, s = amax / 32767) and the fused program says
the target has AVX512-VNNI ({vnni = true}), so 4-bit codes in groups of 64 /
128 take the vpdpwssd kernel for single tokens; the exact result is the
dequantized input (numpy, f32 as the reference computes it) times the
dequantized weight. Its cases (I16_CASES) come from their own seed; some
tokens have a zero group and some a group with one outlier.

Odd shapes: N not a multiple of the tile of output channels, K not a multiple
of the 32-element chunk (per channel), groups of 32 / 64 / 128, M = 1, 3, 17
tokens (17 = 4 blocks of 4 plus a remainder), rank-2 (dynamic M) and rank-3
inputs, with and without bias, f32 and f16 scales, i4 and i8 codes, per
tensor / channel / group, qquant.linear and qquant.logits. `fused` lowers with
the kernel, `ref` with `qwen.quant_kernel = {fused = false}` (the reference:
dequantize the whole weight, then a matmul). Both are compared with float64
numpy (codes * scales, then x @ W^T + b) and with each other.

Tolerance (float reassociation: the kernel sums in 16 lanes and per chunk,
the reference in k order; and the runner prints 6 significant digits):
|a - b| <= 2e-5 * sum_k |x_k * W_nk| + 2e-6 * |b|.
"""
import re
import sys

import numpy as np

F = np.float32
rng = np.random.default_rng(11)

# name, bits, granularity, group, N, K, M list, bias, scale dtype, op
CASES = [
    ("g32", 4, "group", 32, 37, 96, [1, 3, 17], True, F, "linear"),
    ("g64", 4, "group", 64, 70, 192, [1, 3, 17], False, F, "linear"),
    ("g128", 4, "group", 128, 131, 384, [1, 3, 17], True, np.float16, "linear"),
    ("ch4", 4, "channel", 0, 29, 100, [1, 3, 17], True, F, "linear"),
    ("t4", 4, "tensor", 0, 9, 64, [1, 17], False, F, "logits"),
    ("ch8", 8, "channel", 0, 45, 77, [1, 3, 17], True, F, "linear"),
    ("g8", 8, "group", 32, 19, 96, [1, 3, 17], False, F, "logits"),
    ("ch8b", 8, "channel", 0, 50, 896, [1, 3], False, F, "linear"),
]


# The bf16 sweep: the vdpbf16ps kernel (groups of 64 / 128, channel with K a
# multiple of 64), its fallbacks on rounded inputs (group 32, K = 100), and
# Qwen2.5-0.5B's K (896, 4864) with N not a multiple of the tile.
BF16_CASES = [
    ("b64", 4, "group", 64, 70, 192, [1, 3, 17], False, F, "linear"),
    ("b128", 4, "group", 128, 131, 896, [1, 3, 17], True, np.float16, "linear"),
    ("bch", 4, "channel", 0, 29, 128, [1, 2], True, F, "linear"),
    ("bch64", 4, "channel", 0, 13, 192, [1], False, F, "linear"),
    ("bdown", 4, "group", 128, 9, 4864, [1, 5], False, F, "linear"),
    ("b32", 4, "group", 32, 37, 96, [1, 3], True, F, "linear"),
    ("bk100", 4, "channel", 0, 21, 100, [1, 3], False, F, "linear"),
    ("bhead", 4, "tensor", 0, 9, 64, [1, 17], False, F, "logits"),
]


# The i16 sweep: the vpdpwssd kernel (groups of 64 / 128; 8-bit codes and
# group 32 on the f32 kernel), Qwen2.5-0.5B's K, f16 scales, tails of N, and
# an LM head (qquant.logits {i16_input}).
I16_CASES = [
    ("i64", 4, "group", 64, 70, 192, [1, 3, 17], False, F, "linear"),
    ("i128", 4, "group", 128, 131, 896, [1, 3, 17], True, np.float16, "linear"),
    ("idown", 4, "group", 128, 9, 4864, [1, 5], False, F, "linear"),
    ("i64q", 4, "group", 64, 23, 896, [1, 2], True, F, "linear"),
    ("i32", 4, "group", 32, 37, 96, [1, 3], True, F, "linear"),
    ("i8g", 8, "group", 64, 19, 128, [1, 3], False, F, "linear"),
    ("ihead", 4, "group", 128, 37, 896, [1, 3], False, F, "logits"),
]


def i16_round(x, group):
    """x quantized to int16 and dequantized per group of the last dim, in
    float32 as qquant.linear {i16_input} defines it."""
    m, k = x.shape
    g = x.reshape(m, k // group, group).astype(F)
    s = (np.abs(g).max(2, keepdims=True) / F(32767)).astype(F)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s == 0, F(0), np.clip(np.rint(g / s), -32767, 32767)).astype(F)
    return (q * s).astype(F).reshape(m, k)


def bf16_round(x):
    """float32 -> the nearest bfloat16 (ties to even), as float32."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def quantize(w, bits, gran, group):
    n, k = w.shape
    qmax = 2 ** (bits - 1) - 1
    if gran == "tensor":
        s = np.array([np.abs(w).max() / qmax], F)
        codes = np.clip(np.rint(w / s[0]), -qmax, qmax).astype(np.int64)
        deq = codes * s[0].astype(np.float64)
    elif gran == "channel":
        s = (np.abs(w).max(1) / qmax).astype(F).reshape(n, 1)
        codes = np.clip(np.rint(w / s), -qmax, qmax).astype(np.int64)
        deq = codes * s.astype(np.float64)
    else:
        g = w.reshape(n, k // group, group)
        s = (np.abs(g).max(2) / qmax).astype(F)
        codes = np.clip(np.rint(g / s[..., None]), -qmax, qmax).astype(np.int64).reshape(n, k)
        deq = (codes.reshape(n, k // group, group) * s[..., None].astype(np.float64)).reshape(n, k)
    return codes, s, deq


def pack(codes, bits):
    n, k = codes.shape
    u = (codes & ((1 << bits) - 1)).astype(np.uint8)
    if bits == 8:
        return u
    nb = (k * bits + 7) // 8
    out = np.zeros((n, nb), np.uint8)
    for j in range(k):
        out[:, j // 2] |= (u[:, j] << (4 * (j % 2))).astype(np.uint8)
    return out


def data(bf16=False, i16=False):
    global rng
    rng = np.random.default_rng(23 if bf16 else 31 if i16 else 11)
    out = []
    for name, bits, gran, group, n, k, ms, has_b, sdt, op in (BF16_CASES if bf16 else I16_CASES if i16 else CASES):
        w = rng.standard_normal((n, k)).astype(F)
        codes, s, deq = quantize(w, bits, gran, group)
        if sdt == np.float16:
            s = s.astype(np.float16)
            deq = codes.reshape(n, -1, group) * s.astype(np.float64)[..., None]
            deq = deq.reshape(n, k)
        b = rng.standard_normal(n).astype(F) if has_b else None
        xs = [rng.standard_normal((m, k)).astype(F) for m in ms]
        if i16:
            # Token 0: its first group all zero (s = 0); the last token: an
            # outlier 300x the rest in its last group.
            xs[0][0, :group] = 0
            xs[-1][-1, k - 1] = 300.0
        out.append(dict(name=name, bits=bits, gran=gran, group=group, n=n, k=k, codes=pack(codes, bits),
                        s=s, deq=deq, b=b, xs=xs, op=op))
    return out


def fmt(a):
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(fmt(v) for v in a) + "]"


def wtype(c):
    g = {"tensor": "tensor", "channel": "channel", "group": f"group = {c['group']}"}[c["gran"]]
    return f"!qquant.weight<{c['n']}x{c['k']}xf32, i{c['bits']}, symmetric, {g}>"


def case_lines(v, c, t, attr=""):
    """MLIR lines of case number v (weight type t): the weight, the bias, and
    per activation x of c["xs"] a qquant.linear / logits printed with
    printMemrefF32 (odd i: rank 3 [1, M, K]; even: rank 2 with a dynamic M)."""
    n, k = c["n"], c["k"]
    lines = [f"  %w{v} = qquant.weight @q::@{c['name']} : {t}"]
    if c["b"] is not None:
        lines.append(f"  %b{v} = arith.constant dense<{fmt(c['b'])}> : tensor<{n}xf32>")
    for i, x in enumerate(c["xs"]):
        m = x.shape[0]
        if i % 2 == 1:
            lines.append(f"  %x{v}_{i} = arith.constant dense<{fmt(x[None])}> : tensor<1x{m}x{k}xf32>")
            xt, yt = f"tensor<1x{m}x{k}xf32>", f"tensor<1x{m}x{n}xf32>"
        else:  # dynamic M
            lines.append(f"  %xs{v}_{i} = arith.constant dense<{fmt(x)}> : tensor<{m}x{k}xf32>")
            lines.append(f"  %x{v}_{i} = tensor.cast %xs{v}_{i} : tensor<{m}x{k}xf32> to tensor<?x{k}xf32>")
            xt, yt = f"tensor<?x{k}xf32>", f"tensor<?x{n}xf32>"
        xv = f"%x{v}_{i}"
        if c["op"] == "linear" and c["b"] is not None:
            lines.append(f"  %y{v}_{i} = qquant.linear {xv}, %w{v}, %b{v}{attr} : ({xt}, {t}, tensor<{n}xf32>) -> {yt}")
        elif c["op"] == "linear":
            lines.append(f"  %y{v}_{i} = qquant.linear {xv}, %w{v}{attr} : ({xt}, {t}) -> {yt}")
        else:
            lines.append(f"  %y{v}_{i} = qquant.logits {xv}, %w{v}{attr} : ({xt}, {t}) -> {yt}")
        lines.append(f"  %p{v}_{i} = tensor.cast %y{v}_{i} : {yt} to tensor<*xf32>")
        lines.append(f"  func.call @printMemrefF32(%p{v}_{i}) : (tensor<*xf32>) -> ()")
    return lines


def gen(store, mode):
    sys.path.insert(0, "")
    from qwen_opt import weight_store
    bf16 = mode in ("bf16", "ref-bf16")
    i16 = mode in ("i16", "ref-i16")
    cases = data(bf16, i16)
    entries = {}
    for c in cases:
        entries[c["name"] + ".codes"] = c["codes"]
        entries[c["name"] + ".scales"] = c["s"].reshape(1) if c["gran"] == "tensor" else c["s"]
    weight_store.write(store, entries)
    attr = {"fused": "", "ref": " attributes {qwen.quant_kernel = {fused = false}}",
            "fused-m1": " attributes {qwen.quant_kernel = {tile_m = 1}}",
            "bf16": " attributes {qwen.quant_kernel = {avx512bf16 = true}}",
            "ref-bf16": " attributes {qwen.quant_kernel = {fused = false}}",
            "i16": " attributes {qwen.quant_kernel = {vnni = true}}",
            "ref-i16": " attributes {qwen.quant_kernel = {fused = false}}"}[mode]
    lines = [f"module{attr} {{", f'qwen.store @q "{store}"', "func.func private @printMemrefF32(tensor<*xf32>)",
             "func.func @main() {"]
    v = 0
    for c in cases:
        lines += case_lines(v, c, wtype(c), " {bf16_input}" if bf16 else " {i16_input}" if i16 else "")
        v += 1
    lines += ["  return", "}", "}"]
    print("\n".join(lines))


NUM = re.compile(r"-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")


def parse(path):
    text = open(path).read()
    return [np.array([float(t) for t in NUM.findall(blk.split("data =", 1)[1])])
            for blk in text.split("Unranked Memref")[1:]]


def check(fused_out, ref_out, bf16=False, i16=False):
    cases = data(bf16, i16)
    fu, re_ = parse(fused_out), parse(ref_out)
    want = sum(len(c["xs"]) for c in cases)
    if len(fu) != want or len(re_) != want:
        print(f"FAIL: expected {want} printed tensors, got {len(fu)} fused, {len(re_)} reference")
        sys.exit(1)
    ok, i, worst = True, 0, 0.0
    for c in cases:
        for x in c["xs"]:
            if bf16:
                x = bf16_round(x)
            elif i16:
                x = i16_round(x, c["group"])
            x64 = x.astype(np.float64)
            exact = x64 @ c["deq"].T + (c["b"].astype(np.float64) if c["b"] is not None else 0)
            mag = np.abs(x64) @ np.abs(c["deq"]).T
            tol = 2e-5 * mag + 2e-6 * np.abs(exact)
            for label, got in (("fused", fu[i]), ("reference", re_[i])):
                got = got.reshape(exact.shape) if got.size == exact.size else None
                if got is None or not (np.abs(got - exact) <= tol).all():
                    ok = False
                    print(f"FAIL {c['name']} M={x.shape[0]} {label}: "
                          + ("wrong size" if got is None else f"max err/tol {np.max(np.abs(got - exact) / tol):.2f}"))
            d = np.abs(fu[i].reshape(exact.shape) - re_[i].reshape(exact.shape))
            if not (d <= tol).all():
                ok = False
                print(f"FAIL {c['name']} M={x.shape[0]}: fused vs reference max err/tol {np.max(d / tol):.2f}")
            worst = max(worst, float(np.max(d / np.maximum(mag, 1e-30))))
            i += 1
        if ok:
            print(f"OK {c['name']}: i{c['bits']} {c['gran']}{'' if c['gran'] != 'group' else ' ' + str(c['group'])} "
                  f"N={c['n']} K={c['k']} M={','.join(str(x.shape[0]) for x in c['xs'])} {c['op']}")
    print(f"{'OK' if ok else 'FAIL'}: {i} products; max |fused - reference| / sum|x*w| = {worst:.1e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[1] == "check-bf16", sys.argv[1] == "check-i16")
