"""Numerics of the codebook-grid lookup (#qquant.scheme<codebook B, ...>).

  codebook_lower.py gen STORE > case.mlir
  codebook_lower.py check < runner-output

Format (shared with --qwen-share-weights, getWeightComponents): index c is
B bits packed little-endian like uniform codes (column c occupies bits
[c*B, c*B+B) of its row's bytes), unsigned; value = codebook[book, c] with
`.codebook` [books, 2^B] (f32 or f16), book = 0 per tensor, the row per
channel, row * (cols / group) + col / group per group. Every index of each
width occurs.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import w8a8_jit as base  # noqa: E402
from log2_reference import OUTPUTS, check_printed, emit_case, pack, unpack  # noqa: E402

F = np.float32
rng = np.random.default_rng(12)
R, K = 24, 64


def decode(packed, books, cols, bits, gran, group=0):
    c = unpack(packed, cols, bits)
    rows = packed.shape[0]
    if gran == "tensor":
        return books[0][c].astype(F)
    per = cols // group if gran == "group" else 1
    blk = group if gran == "group" else cols
    book = np.arange(rows)[:, None] * per + np.arange(cols)[None, :] // blk
    return books[book, c].astype(F)


# cb4 groups of 32 (linear, embedding), cb3 per channel with an f16
# codebook (logits), cb2 per tensor (dequantize_weight).
c4 = rng.integers(0, 16, (R, K))
c4[0, :16] = np.arange(16)
c3 = rng.integers(0, 8, (R, K))
c3[0, :8] = np.arange(8)
c2 = rng.integers(0, 4, (R, K))
b4 = np.sort(rng.standard_normal((R * 2, 16)), axis=1).astype(F)
b3 = np.sort(rng.standard_normal((R, 8)), axis=1).astype(np.float16)
b2 = np.array([[-0.75, -0.1, 0.2, 1.5]], F)
p4, p3, p2 = pack(c4, 4), pack(c3, 3), pack(c2, 2)
W4 = decode(p4, b4, K, 4, "group", 32)
W3 = decode(p3, b3.astype(F), K, 3, "channel")
W2 = decode(p2, b2, K, 2, "tensor")
ids = np.array([[0, 5, 23], [7, 7, 1]], dtype=np.int64)

W4T = "!qquant.weight<24x64xf32, codebook 4, group = 32>"
W3T = "!qquant.weight<24x64xf32, codebook 3, channel>"
W2T = "!qquant.weight<24x64xf32, codebook 2, tensor>"


def refs():
    x = base.x.astype(np.float64)
    lin = np.einsum("btk,nk->btn", x, W4.astype(np.float64)) + base.bias
    log = np.einsum("btk,nk->btn", x, W3.astype(np.float64))
    return [("dequantize_weight", W4), ("dequantize_weight cb2 tensor", W2),
            ("linear", lin), ("logits", log), ("embedding", W4[ids])]


def gen(store):
    from qwen_opt import weight_store
    weight_store.write(store, {"g.codes": p4, "g.codebook": b4,
                               "c.codes": p3, "c.codebook": b3,
                               "t.codes": p2, "t.codebook": b2})
    emit_case(store, f'''  %g = qquant.weight @q::@g : {W4T}
  %c = qquant.weight @q::@c : {W3T}
  %t = qquant.weight @q::@t : {W2T}
  %d4 = qquant.dequantize_weight %g : {W4T} -> tensor<24x64xf32>
  %d3 = qquant.dequantize_weight %t : {W2T} -> tensor<24x64xf32>
  %y = qquant.linear %x, %g, %b : (tensor<2x3x64xf32>, {W4T}, tensor<24xf32>) -> tensor<2x3x24xf32>
  %l = qquant.logits %x, %c : (tensor<2x3x64xf32>, {W3T}) -> tensor<2x3x24xf32>
  %e = qquant.embedding %ids, %g : (tensor<2x3xi64>, {W4T}) -> tensor<2x3x64xf32>''', OUTPUTS)


def check():
    check_printed(refs(), ("dequantize_weight", "dequantize_weight cb2 tensor", "embedding"),
                  "codebook")


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
