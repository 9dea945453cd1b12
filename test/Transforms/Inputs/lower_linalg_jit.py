"""Numerical end-to-end check of --qwen-lower-model-to-linalg.

  lower_linalg_jit.py gen CASE    > case.mlir   # inputs as constants + printMemrefF32
  lower_linalg_jit.py check CASE  < runner-output

Inputs are seeded random f32 values; the reference is numpy in float64 on
the same f32 inputs. printMemrefF32 prints 6 significant digits, so results
are compared with rtol = 1e-5 and atol = 1e-5.
"""
import re
import sys

import numpy as np

RTOL = 1e-5
ATOL = 1e-5


def fmt(a):
    if a.ndim == 0:
        v = a.item()
        return repr(float(v)) if isinstance(v, float) else str(int(v))
    return "[" + ", ".join(fmt(x) for x in a) + "]"


def ttype(a):
    elt = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64",
           np.dtype(np.int32): "i32"}[a.dtype]
    return "tensor<" + "x".join(str(d) for d in a.shape) + "x" + elt + ">"


def rnd(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def rms(x, w, eps, d):
    x = x.astype(np.float64)
    xs = x.reshape(x.shape[:-1] + (x.shape[-1] // d, d))
    y = xs / np.sqrt((xs * xs).mean(-1, keepdims=True) + eps) * w.astype(np.float64)
    return y.reshape(x.shape)


def rope(x, pos, nh, hd, theta, rd, style):
    x = x.astype(np.float64)
    B, T, _ = x.shape
    xs = x.reshape(B, T, nh, hd).copy()
    half = rd // 2
    inv = np.array([np.float32(theta ** (-2.0 * i / rd)) for i in range(half)], np.float64)
    ang = pos.astype(np.float64)[:, :, None] * inv  # [B,T,half]
    c, s = np.cos(ang)[:, :, None, :], np.sin(ang)[:, :, None, :]
    out = xs.copy()
    if style == "half":
        a, b = xs[..., :half], xs[..., half:rd]
        out[..., :half] = a * c - b * s
        out[..., half:rd] = b * c + a * s
    else:
        a, b = xs[..., 0:rd:2], xs[..., 1:rd:2]
        out[..., 0:rd:2] = a * c - b * s
        out[..., 1:rd:2] = b * c + a * s
    return out.reshape(B, T, nh * hd)


def attention(q, k, v, pk, pv, mask, nh, kv, d, causal):
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    B, T, _ = q.shape
    kn = k.reshape(B, T, kv, d).transpose(0, 2, 1, 3)
    vn = v.reshape(B, T, kv, d).transpose(0, 2, 1, 3)
    if pk is not None:
        K = np.concatenate([pk.astype(np.float64), kn], 2)
        V = np.concatenate([pv.astype(np.float64), vn], 2)
    else:
        K, V = kn, vn
    P = K.shape[2] - T
    S = K.shape[2]
    g = nh // kv
    qh = q.reshape(B, T, nh, d).transpose(0, 2, 1, 3)
    Kh = np.repeat(K, g, axis=1)
    Vh = np.repeat(V, g, axis=1)
    sc = qh @ Kh.transpose(0, 1, 3, 2) / np.sqrt(d)
    keep = np.ones((B, 1, T, S), bool)
    if causal:
        keep &= (np.arange(S)[None, :] <= np.arange(T)[:, None] + P)[None, None]
    if mask is not None:
        keep &= (mask != 0)[:, None, None, :]
    sc = np.where(keep, sc, -np.inf)
    m = sc.max(-1, keepdims=True)
    e = np.where(keep, np.exp(sc - np.where(np.isfinite(m), m, 0)), 0.0)
    ssum = e.sum(-1, keepdims=True)
    p = np.where(ssum > 0, e / np.where(ssum > 0, ssum, 1), 0.0)
    o = (p @ Vh).transpose(0, 2, 1, 3).reshape(B, T, nh * d)
    return o, K, V


def case(name):
    """Returns (list of (name, array) inputs, body lines, list of (value, type, reference))."""
    rng = np.random.default_rng(sum(map(ord, name)))  # deterministic per case
    if name == "linear":
        x, w, b = rnd(rng, 2, 3, 8), rnd(rng, 5, 8), rnd(rng, 5)
        ref = x.astype(np.float64) @ w.astype(np.float64).T + b
        ref2 = x.astype(np.float64) @ w.astype(np.float64).T
        body = ["%r0 = qwen.linear %x, %w, %b : (tensor<2x3x8xf32>, tensor<5x8xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>",
                "%r1 = qwen.logits %x, %w : (tensor<2x3x8xf32>, tensor<5x8xf32>) -> tensor<2x3x5xf32>",
                "%xd = tensor.cast %x : tensor<2x3x8xf32> to tensor<?x?x8xf32>",
                "%r2d = func.call @dyn_linear(%xd, %w, %b) : (tensor<?x?x8xf32>, tensor<5x8xf32>, tensor<5xf32>) -> tensor<?x?x5xf32>",
                "%r2 = tensor.cast %r2d : tensor<?x?x5xf32> to tensor<2x3x5xf32>"]
        extra = ["func.func @dyn_linear(%x: tensor<?x?x8xf32>, %w: tensor<5x8xf32>, %b: tensor<5xf32>) -> tensor<?x?x5xf32> {",
                 "  %y = qwen.linear %x, %w, %b : (tensor<?x?x8xf32>, tensor<5x8xf32>, tensor<5xf32>) -> tensor<?x?x5xf32>",
                 "  return %y : tensor<?x?x5xf32>", "}"]
        return [("x", x), ("w", w), ("b", b)], body, [("%r0", ref), ("%r1", ref2), ("%r2", ref)], extra
    if name == "rms_norm":
        x, w, wh = rnd(rng, 2, 3, 8), rnd(rng, 8), rnd(rng, 4)
        body = ["%r0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<2x3x8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>",
                "%r1 = qwen.rms_norm %x, %wh {epsilon = 1.0e-06 : f32, per_head} : (tensor<2x3x8xf32>, tensor<4xf32>) -> tensor<2x3x8xf32>"]
        eps = float(np.float32(1e-6))
        return [("x", x), ("w", w), ("wh", wh)], body, [("%r0", rms(x, w, eps, 8)), ("%r1", rms(x, wh, eps, 4))], []
    if name == "elementwise":
        g, u = rnd(rng, 2, 3, 8), rnd(rng, 2, 3, 8)
        gd, ud = g.astype(np.float64), u.astype(np.float64)
        body = ["%r0 = qwen.silu_mul %g, %u : tensor<2x3x8xf32>",
                "%r1 = qwen.add %g, %u : tensor<2x3x8xf32>"]
        return [("g", g), ("u", u)], body, [("%r0", gd / (1 + np.exp(-gd)) * ud), ("%r1", gd + ud)], []
    if name == "embedding":
        t = rnd(rng, 10, 6)
        ids = np.array([[3, 0, 9, 3]], np.int64)
        ids32 = np.array([[7], [1]], np.int32)
        body = ["%r0 = qwen.embedding %ids, %t : (tensor<1x4xi64>, tensor<10x6xf32>) -> tensor<1x4x6xf32>",
                "%r1 = qwen.embedding %ids32, %t : (tensor<2x1xi32>, tensor<10x6xf32>) -> tensor<2x1x6xf32>"]
        return [("t", t), ("ids", ids), ("ids32", ids32)], body, [("%r0", t[ids].astype(np.float64)), ("%r1", t[ids32].astype(np.float64))], []
    if name == "rope":
        x = rnd(rng, 2, 3, 16)
        pos = np.array([[0, 1, 2], [5, 9, 13]], np.int64)
        pos32 = pos.astype(np.int32)
        body = ["%r0 = qwen.rope %x, %pos {num_heads = 2 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64} : (tensor<2x3x16xf32>, tensor<2x3xi64>) -> tensor<2x3x16xf32>",
                "%r1 = qwen.rope %x, %pos32 {num_heads = 2 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64, style = #qwen.rope_style<interleaved>} : (tensor<2x3x16xf32>, tensor<2x3xi32>) -> tensor<2x3x16xf32>",
                "%r2 = qwen.rope %x, %pos {num_heads = 2 : i64, head_dim = 8 : i64, theta = 1.0e+06 : f64, rotary_dim = 4 : i64} : (tensor<2x3x16xf32>, tensor<2x3xi64>) -> tensor<2x3x16xf32>"]
        return [("x", x), ("pos", pos), ("pos32", pos32)], body, [
            ("%r0", rope(x, pos, 2, 8, 1e4, 8, "half")),
            ("%r1", rope(x, pos, 2, 8, 1e4, 8, "interleaved")),
            ("%r2", rope(x, pos, 2, 8, 1e6, 4, "half"))], []
    if name == "attention":
        B, T, P, NH, KV, D = 2, 3, 2, 4, 2, 4
        q, k, v = rnd(rng, B, T, NH * D), rnd(rng, B, T, KV * D), rnd(rng, B, T, KV * D)
        pk, pv = rnd(rng, B, KV, P, D), rnd(rng, B, KV, P, D)
        mask = np.array([[1, 1, 1, 1, 1], [0, 1, 1, 0, 1]], np.int64)
        o0, K0, V0 = attention(q, k, v, pk, pv, None, NH, KV, D, True)
        o1, _, _ = attention(q, k, v, pk, pv, mask, NH, KV, D, True)
        o2, K2, V2 = attention(q, k, v, None, None, None, NH, KV, D, False)
        # mask [0, x, x]: query 0 of batch 1 sees no key when causal without past.
        mask2 = np.array([[1, 1, 1], [0, 1, 1]], np.int64)
        o3, _, _ = attention(q, k, v, None, None, mask2, NH, KV, D, True)
        ty = "tensor<2x3x16xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>"
        pt = "tensor<2x2x2x4xf32>, tensor<2x2x2x4xf32>"
        rt = "tensor<2x3x16xf32>, tensor<2x2x5x4xf32>, tensor<2x2x5x4xf32>"
        rt0 = "tensor<2x3x16xf32>, tensor<2x2x3x4xf32>, tensor<2x2x3x4xf32>"
        attrs = "{num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64"
        body = [f"%r0, %r1, %r2 = qwen.attention %q, %k, %v past %pk, %pv {attrs}, causal}} : ({ty}, {pt}) -> ({rt})",
                f"%r3, %u1, %u2 = qwen.attention %q, %k, %v past %pk, %pv mask %m {attrs}, causal}} : ({ty}, {pt}, tensor<2x5xi64>) -> ({rt})",
                f"%r4, %r5, %r6 = qwen.attention %q, %k, %v {attrs}}} : ({ty}) -> ({rt0})",
                f"%r7, %u3, %u4 = qwen.attention %q, %k, %v mask %m2 {attrs}, causal}} : ({ty}, tensor<2x3xi64>) -> ({rt0})",
                # dynamic B/T/P
                "%qd = tensor.cast %q : tensor<2x3x16xf32> to tensor<?x?x16xf32>",
                "%kd = tensor.cast %k : tensor<2x3x8xf32> to tensor<?x?x8xf32>",
                "%vd = tensor.cast %v : tensor<2x3x8xf32> to tensor<?x?x8xf32>",
                "%pkd = tensor.cast %pk : tensor<2x2x2x4xf32> to tensor<?x2x?x4xf32>",
                "%pvd = tensor.cast %pv : tensor<2x2x2x4xf32> to tensor<?x2x?x4xf32>",
                "%md = tensor.cast %m : tensor<2x5xi64> to tensor<?x?xi64>",
                "%r8d, %r9d, %r10d = func.call @dyn_attn(%qd, %kd, %vd, %pkd, %pvd, %md) : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>, tensor<?x?xi64>) -> (tensor<?x?x16xf32>, tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>)",
                "%r8 = tensor.cast %r8d : tensor<?x?x16xf32> to tensor<2x3x16xf32>",
                "%r9 = tensor.cast %r9d : tensor<?x2x?x4xf32> to tensor<2x2x5x4xf32>"]
        dt = "tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>"
        drt = "tensor<?x?x16xf32>, tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>"
        extra = [f"func.func @dyn_attn(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %pk: tensor<?x2x?x4xf32>, %pv: tensor<?x2x?x4xf32>, %m: tensor<?x?xi64>) -> ({drt}) {{",
                 f"  %o, %a, %b = qwen.attention %q, %k, %v past %pk, %pv mask %m {attrs}, causal}} : ({dt}, tensor<?x?xi64>) -> ({drt})",
                 f"  return %o, %a, %b : {drt}", "}"]
        return ([("q", q), ("k", k), ("v", v), ("pk", pk), ("pv", pv), ("m", mask), ("m2", mask2)], body,
                [("%r0", o0), ("%r1", K0), ("%r2", V0), ("%r3", o1), ("%r4", o2), ("%r5", K2), ("%r6", V2),
                 ("%r7", o3), ("%r8", o1), ("%r9", K0)], extra)
    raise SystemExit("unknown case " + name)


def gen(name):
    ins, body, outs, extra = case(name)
    lines = ["func.func private @printMemrefF32(tensor<*xf32>)"] + extra + ["func.func @main() {"]
    for n, a in ins:
        lines.append(f"  %{n} = arith.constant dense<{fmt(a)}> : {ttype(a)}")
    lines += ["  " + l for l in body]
    for i, (val, ref, ) in enumerate((o[0], o[1]) for o in outs):
        t = "tensor<" + "x".join(map(str, ref.shape)) + "xf32>"
        lines.append(f"  %p{i} = tensor.cast {val} : {t} to tensor<*xf32>")
        lines.append(f"  func.call @printMemrefF32(%p{i}) : (tensor<*xf32>) -> ()")
    lines += ["  return", "}"]
    print("\n".join(lines))


NUM = re.compile(r"-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")


def check(name):
    _, _, outs, _ = case(name)
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    if len(blocks) != len(outs):
        print(f"FAIL {name}: expected {len(outs)} printed tensors, got {len(blocks)}")
        print(text)
        sys.exit(1)
    ok = True
    for (val, ref), blk in zip(outs, blocks):
        data = blk.split("data =", 1)[1]
        got = np.array([float(t) for t in NUM.findall(data)], np.float64)
        ref = np.asarray(ref, np.float64).reshape(-1)
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=RTOL, atol=ATOL):
            ok = False
            print(f"FAIL {name} {val}: got {got} expected {ref}")
        else:
            print(f"OK {name} {val} ({ref.size} values, max abs err {np.abs(got - ref).max():.2e})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1]](sys.argv[2])
