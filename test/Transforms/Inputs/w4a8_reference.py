"""Numerics of W4A8: signed symmetric 4-bit weights (per channel or groups of
32) with int8 activations (dynamic per token, or static per tensor).

  w4a8_reference.py gen STORE > case.mlir
  w4a8_reference.py check < runner-output

The reference is the integer recipe of the lowering, in numpy:
  q_x = clamp(rint(x / s_x), -127, 127) with s_x = max|x| / 127 per token
  (dynamic; 0 where s_x == 0) or the calibrated s (static);
  channel: acc = q_x . codes (integers), y = f32(acc) * s_x * s_w[n] (+ b);
  groups:  acc[n, g] = sum over the group of q_x * codes (integers),
           y = (sum_g f32(acc[n, g]) * s_w[n, g]) * s_x (+ b), g ascending.
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import w8a8_jit as base  # noqa: E402
from log2_reference import pack  # noqa: E402

F = np.float32
S_STATIC = 2.5 / 127
G = 32
w = base.w
# i4 symmetric: scale = max|w| / 7 per group / channel, codes in [-7, 7].
sg = (np.abs(w.reshape(24, 2, G)).max(-1) / F(7)).astype(F)
cg = np.clip(np.rint(w / np.repeat(sg, G, 1)), -7, 7).astype(np.int64)
sc = (np.abs(w).max(1, keepdims=True) / F(7)).astype(F)
cc = np.clip(np.rint(w / sc), -7, 7).astype(np.int64)
WG = "!qquant.weight<24x64xf32, i4, symmetric, group = 32>"
WC = "!qquant.weight<24x64xf32, i4, symmetric, channel>"
DYN = "#qquant.act<dynamic, i8, per_token>"
STAT = f"#qquant.act<static : !quant.uniform<i8:f32, {S_STATIC!r}>>"


def quant_x(static):
    x = base.x
    if static:
        sx = np.full(x.shape[:-1], F(S_STATIC), F)
    else:
        sx = (np.abs(x).max(-1) / F(127)).astype(F)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(sx[..., None] == 0, 0, np.clip(np.rint(x / sx[..., None]), -127, 127))
    return q.astype(np.int64), sx


def ref(group, static, bias):
    q, sx = quant_x(static)
    if group:
        acc = np.einsum("btgj,ngj->btng", q.reshape(2, 3, 2, G), cg.reshape(24, 2, G))
        ys = np.zeros((2, 3, 24), F)
        for g in range(2):
            ys = (ys + (acc[..., g].astype(F) * sg[:, g]).astype(F)).astype(F)
        y = (ys * sx[..., None]).astype(F)
    else:
        acc = np.einsum("btk,nk->btn", q, cc)
        y = ((acc.astype(F) * sx[..., None]).astype(F) * sc[:, 0]).astype(F)
    if bias:
        y = (y + base.bias).astype(F)
    return y


CASES = [("group dynamic", True, False, True), ("group static", True, True, False),
         ("channel dynamic", False, False, False), ("channel static", False, True, True)]


def gen(store):
    from qwen_opt import weight_store
    weight_store.write(store, {"g.codes": pack(cg & 15, 4), "g.scales": sg,
                               "c.codes": pack(cc & 15, 4), "c.scales": sc})
    print(f'''qwen.store @q "{store}"
func.func private @printMemrefF32(tensor<*xf32>)
func.func @main() {{
  %x = arith.constant dense<{base.fmt(base.x)}> : tensor<2x3x64xf32>
  %b = arith.constant dense<{base.fmt(base.bias)}> : tensor<24xf32>
  %g = qquant.weight @q::@g : {WG}
  %c = qquant.weight @q::@c : {WC}''')
    for i, (name, group, static, bias) in enumerate(CASES):
        wv, wt, act = ("%g", WG, STAT if static else DYN) if group else ("%c", WC, STAT if static else DYN)
        if bias:
            print(f"  %y{i} = qquant.linear %x, {wv}, %b {{act = {act}}} : (tensor<2x3x64xf32>, {wt}, tensor<24xf32>) -> tensor<2x3x24xf32>")
        else:
            print(f"  %y{i} = qquant.logits %x, {wv} {{act = {act}}} : (tensor<2x3x64xf32>, {wt}) -> tensor<2x3x24xf32>")
        print(f"  %p{i} = tensor.cast %y{i} : tensor<2x3x24xf32> to tensor<*xf32>")
        print(f"  func.call @printMemrefF32(%p{i}) : (tensor<*xf32>) -> ()")
    print("  return\n}")


def check():
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    if len(blocks) != len(CASES):
        print(f"FAIL: expected {len(CASES)} printed tensors\n{text}")
        sys.exit(1)
    ok = True
    for (name, group, static, bias), blk in zip(CASES, blocks):
        got = np.array([float(t) for t in base.NUM.findall(blk.split("data =", 1)[1])])
        r = ref(group, static, bias).astype(np.float64).reshape(-1)
        err = np.abs(got - r) / np.maximum(np.abs(r), 1e-3) if got.shape == r.shape else np.array([np.inf])
        if err.max() > 1e-5:
            ok = False
            print(f"FAIL {name}: max rel err {err.max():.2e} vs the W4A8 integer recipe")
        else:
            print(f"OK {name}: {r.size} values match the W4A8 integer recipe")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
