#!/usr/bin/env python3
"""Cases for the per-token activation quantizers (qquant.dynamic_quantize,
qquant.rms_norm_quantize, qquant.silu_mul_quantize): `gen fused|ref` writes a
module that runs them on fixed inputs and prints q (as i32) and the scales'
bit patterns; `check A B` compares both outputs with a float32 numpy
emulation of the ops' documented arithmetic.

dynamic_quantize is exact (max, one division, roundeven). The norm's sum of
squares and SwiGLU's exp may round differently from numpy, so there each
scale must be within 1e-6 (relative) and each q within 1 of the emulation,
with at most 1 % of the q off by one."""

import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lower_linalg_jit import fmt  # noqa: E402

EPS = 1e-6


def data():
    r = np.random.default_rng(7)
    f = lambda *s: (r.standard_normal(s) * 2).astype(np.float32)
    zero_row = f(4, 37)
    zero_row[2] = 0  # a zero token: scale 0, q 0
    cases = [
        dict(name="dq_tail", op="dq", shape=(4, 37), x=zero_row),
        dict(name="dq_wide", op="dq", shape=(1, 3, 200), x=f(1, 3, 200), dyn=True),
        dict(name="dq_tensor4", op="dq", shape=(3, 20), x=f(3, 20), bits=4, per_token=False),
        dict(name="rms_tail", op="rms", shape=(5, 37), x=f(5, 37), g=f(37)),
        dict(name="rms_wide", op="rms", shape=(1, 3, 200), x=f(1, 3, 200), g=f(200), dyn=True),
        dict(name="rms_16", op="rms", shape=(2, 16), x=f(2, 16), g=f(16)),
        dict(name="silu_tail", op="silu", shape=(4, 100), x=f(4, 100), u=f(4, 100)),
        dict(name="silu_wide", op="silu", shape=(1, 2, 64), x=f(1, 2, 64), u=f(1, 2, 64), dyn=True),
    ]
    return cases


def ttype(shape, elt, dyn=False):
    dims = [str(d) for d in shape]
    if dyn:
        dims[-2] = "?"
    return f"tensor<{'x'.join(dims)}x{elt}>"


def gen(mode):
    attr = " attributes {qwen.quant_kernel = {fused = false}}" if mode == "ref" else ""
    L = [f"module{attr} {{", "func.func private @printMemrefI32(tensor<*xi32>)", "func.func @main() {"]

    def const(name, a, dyn):
        st = ttype(a.shape, "f32")
        L.append(f"  %{name}s = arith.constant dense<{fmt(a)}> : {st}")
        if dyn:
            L.append(f"  %{name} = tensor.cast %{name}s : {st} to {ttype(a.shape, 'f32', True)}")
        else:
            L.append(f"  %{name} = tensor.cast %{name}s : {st} to {st}")

    def emit_print(v, shape, elt, dyn, conv):
        t, st = ttype(shape, elt, dyn), ttype(shape, elt)
        it = ttype(shape, "i32")
        r = len(shape)
        ids = ", ".join(f"d{i}" for i in range(r))
        m = f"affine_map<({ids}) -> ({ids})>"
        its = ", ".join(['"parallel"'] * r)
        L.append(f"  %{v}c = tensor.cast %{v} : {t} to {st}")
        L.append(f"  %{v}e = tensor.empty() : {it}")
        L.append(f"  %{v}i = linalg.generic {{indexing_maps = [{m}, {m}], iterator_types = [{its}]}} "
                 f"ins(%{v}c : {st}) outs(%{v}e : {it}) {{")
        L.append(f"  ^bb0(%in: {elt}, %out: i32):")
        L.append(f"    %c = {conv} %in : {elt} to i32")
        L.append("    linalg.yield %c : i32")
        L.append(f"  }} -> {it}")
        L.append(f"  %{v}p = tensor.cast %{v}i : {it} to tensor<*xi32>")
        L.append(f"  func.call @printMemrefI32(%{v}p) : (tensor<*xi32>) -> ()")

    for i, c in enumerate(data()):
        dyn, shape = c.get("dyn", False), c["shape"]
        per_token = c.get("per_token", True)
        sshape = shape[:-1] + (1,) if per_token else (1,) * len(shape)
        xt = ttype(shape, "f32", dyn)
        qt, sT = ttype(shape, "i8", dyn), ttype(sshape, "f32", dyn and per_token)
        const(f"x{i}", c["x"], dyn)
        if c["op"] == "dq":
            a = " {per_token}" if per_token else ""
            if c.get("bits", 8) != 8:
                a = f" {{bits = {c['bits']} : i64{', per_token' if per_token else ''}}}"
            L.append(f"  %q{i}, %s{i} = qquant.dynamic_quantize %x{i}{a} : {xt} -> ({qt}, {sT})")
        elif c["op"] == "rms":
            L.append(f"  %g{i} = arith.constant dense<{fmt(c['g'])}> : tensor<{shape[-1]}xf32>")
            L.append(f"  %q{i}, %s{i} = qquant.rms_norm_quantize %x{i}, %g{i} {{epsilon = {EPS:.1e} : f32}} : "
                     f"({xt}, tensor<{shape[-1]}xf32>) -> ({qt}, {sT})")
        else:
            const(f"u{i}", c["u"], dyn)
            L.append(f"  %q{i}, %s{i} = qquant.silu_mul_quantize %x{i}, %u{i} : ({xt}, {xt}) -> ({qt}, {sT})")
        emit_print(f"q{i}", shape, "i8", dyn, "arith.extsi")
        emit_print(f"s{i}", sshape, "f32", dyn and per_token, "arith.bitcast")
    L += ["  return", "}", "}"]
    print("\n".join(L))


def emulate(c):
    f32 = np.float32
    x = c["x"].astype(f32)
    if c["op"] == "rms":
        n = f32(x.shape[-1])
        ss = (x.astype(np.float64) ** 2).sum(-1, keepdims=True).astype(f32)
        inv = (f32(1) / np.sqrt(ss / n + f32(EPS))).astype(f32)
        y = (x * inv).astype(f32) * c["g"].astype(f32)
    elif c["op"] == "silu":
        y = (x / (f32(1) + np.exp(-x))).astype(f32) * c["u"].astype(f32)
    else:
        y = x
    y = y.astype(f32)
    bits, per_token = c.get("bits", 8), c.get("per_token", True)
    qmax = f32(2 ** (bits - 1) - 1)
    amax = np.abs(y).max(-1, keepdims=True) if per_token else np.abs(y).max().reshape((1,) * y.ndim)
    s = (amax.astype(f32) / qmax).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(s == 0, f32(0), y / s).astype(f32)
    q = np.clip(np.round(d), -qmax, qmax).astype(np.int32)  # np.round: half to even
    return q, s


NUM = re.compile(r"-?\d+")


def parse(path):
    text = open(path).read()
    return [np.array([int(t) for t in NUM.findall(blk.split("data =", 1)[1])], np.int64)
            for blk in text.split("Unranked Memref")[1:]]


def check(out_a, out_b):
    cases = data()
    outs = [parse(out_a), parse(out_b)]
    if any(len(o) != 2 * len(cases) for o in outs):
        print(f"FAIL: expected {2 * len(cases)} printed tensors, got {[len(o) for o in outs]}")
        sys.exit(1)
    ok = True
    for i, c in enumerate(cases):
        q, s = emulate(c)
        exact = c["op"] == "dq"
        msgs = []
        for label, o in zip(("A", "B"), outs):
            gq = o[2 * i].reshape(q.shape)
            gs = o[2 * i + 1].astype(np.uint32).view(np.float32).reshape(s.shape)
            if exact:
                if not (gq == q).all() or not (gs.view(np.uint32) == s.view(np.uint32)).all():
                    msgs.append(f"{label}: not bit-identical")
                continue
            rel = np.abs(gs - s) / np.maximum(np.abs(s), np.float32(1e-30))
            off = np.abs(gq - q)
            if rel.max() > 1e-6 or off.max() > 1 or (off > 0).mean() > 0.01:
                msgs.append(f"{label}: scale rel {rel.max():.2e}, q off {off.max()} "
                            f"({(off > 0).sum()} of {q.size})")
        if msgs:
            ok = False
            print(f"FAIL {c['name']}: " + "; ".join(msgs))
        else:
            print(f"OK {c['name']}: {c['op']} {'x'.join(map(str, c['shape']))}"
                  f"{' exact' if exact else ''}")
    print("OK: all cases" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3])
