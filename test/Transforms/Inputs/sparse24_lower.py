"""Numerics of 2:4 sparse weights (#qquant.scheme<..., sparsity = 2:4>).

  sparse24_lower.py gen STORE > case.mlir
  sparse24_lower.py check < runner-output

Layout (getWeightComponents, QuantAlgorithms.h compress24): of each group of
4 inputs of a row 2 codes are kept; `.codes` holds the kept codes in order
([rows, ceil(cols/2 * bits / 8)], packed like dense codes), `.mask` the
position (0..3) of each in its group, 2 bits per kept code, packed the same
way ([rows, ceil(cols/2 * 2 / 8)]). Kept slot j of row r is input
4 * (j // 2) + pos[r, j]; its scale (and zero point) is that input's.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import w8a8_jit as base  # noqa: E402
from log2_reference import OUTPUTS, check_printed, emit_case, pack  # noqa: E402
from log2_reference import decode as log2_decode  # noqa: E402

F = np.float32
rng = np.random.default_rng(24)
R, K = 24, 64
H = K // 2


def positions():
    """[R, H] positions: each group's two kept inputs, ascending; every pair
    of positions occurs."""
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    pick = rng.integers(0, len(pairs), (R, K // 4))
    pick[0, :6] = np.arange(6)
    pos = np.array(pairs)[pick].reshape(R, H)
    return pos


def expand(vals, pos):
    """[R, H] kept values at `pos` -> dense [R, K] (zeros elsewhere)."""
    W = np.zeros((R, K), F)
    cols = 4 * (np.arange(H) // 2)[None, :] + pos
    W[np.arange(R)[:, None], cols] = vals
    return W, cols


# i4 symmetric groups of 32 (linear, embedding, dequantize_weight).
pa = positions()
ca = rng.integers(-7, 8, (R, H))
ca[0, :15] = np.arange(-7, 8)
sa = rng.uniform(0.05, 2.0, (R, K // 32)).astype(F)
_, cols_a = expand(np.zeros((R, H)), pa)
Wa, _ = expand((ca * sa[np.arange(R)[:, None], cols_a // 32]).astype(F), pa)
# u4 asymmetric per channel (logits).
pb = positions()
cb = rng.integers(0, 16, (R, H))
zb = rng.integers(3, 13, (R, 1)).astype(np.uint8)
sb = rng.uniform(0.05, 2.0, (R, 1)).astype(F)
Wb, _ = expand(((cb - zb.astype(np.int64)) * sb).astype(F), pb)
# log2 i4 groups of 32 (dequantize_weight).
pc = positions()
cc = rng.integers(0, 16, (R, H))
scc = rng.uniform(0.05, 2.0, (R, K // 32)).astype(F)
_, cols_c = expand(np.zeros((R, H)), pc)
# log2 levels scaled by the scale of the kept input's group.
lv = log2_decode(pack(cc, 4), np.ones((R, 1), F), H, 4, 0)
Wc, _ = expand((lv * scc[np.arange(R)[:, None], cols_c // 32]).astype(F), pc)
ids = np.array([[0, 5, 23], [7, 7, 1]], dtype=np.int64)

WaT = "!qquant.weight<24x64xf32, i4, symmetric, group = 32, sparsity = 2:4>"
WbT = "!qquant.weight<24x64xf32, ui4, asymmetric, channel, sparsity = 2:4>"
WcT = "!qquant.weight<24x64xf32, log2 i4, symmetric, group = 32, sparsity = 2:4>"


def refs():
    x = base.x.astype(np.float64)
    lin = np.einsum("btk,nk->btn", x, Wa.astype(np.float64)) + base.bias
    log = np.einsum("btk,nk->btn", x, Wb.astype(np.float64))
    return [("dequantize_weight", Wa), ("dequantize_weight log2", Wc),
            ("linear", lin), ("logits", log), ("embedding", Wa[ids])]


def gen(store):
    from qwen_opt import weight_store
    weight_store.write(store, {
        "a.codes": pack(ca & 15, 4), "a.scales": sa, "a.mask": pack(pa, 2),
        "b.codes": pack(cb, 4), "b.scales": sb, "b.zeros": zb, "b.mask": pack(pb, 2),
        "c.codes": pack(cc, 4), "c.scales": scc, "c.mask": pack(pc, 2)})
    emit_case(store, f'''  %a = qquant.weight @q::@a : {WaT}
  %u = qquant.weight @q::@b : {WbT}
  %c = qquant.weight @q::@c : {WcT}
  %d4 = qquant.dequantize_weight %a : {WaT} -> tensor<24x64xf32>
  %d3 = qquant.dequantize_weight %c : {WcT} -> tensor<24x64xf32>
  %y = qquant.linear %x, %a, %b : (tensor<2x3x64xf32>, {WaT}, tensor<24xf32>) -> tensor<2x3x24xf32>
  %l = qquant.logits %x, %u : (tensor<2x3x64xf32>, {WbT}) -> tensor<2x3x24xf32>
  %e = qquant.embedding %ids, %a : (tensor<2x3xi64>, {WaT}) -> tensor<2x3x64xf32>''', OUTPUTS)


def check():
    check_printed(refs(), ("dequantize_weight", "dequantize_weight log2", "embedding"),
                  "2:4 sparse")


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
