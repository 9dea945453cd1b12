"""Numerics of the log2-grid dequantization (#qquant.scheme<log2 iB, ...>).

  log2_reference.py gen STORE > case.mlir
  log2_reference.py check < runner-output

Format (shared with --qwen-quantize-weights): code c is B bits (B in {3, 4})
packed little-endian like uniform codes (column c occupies bits
[c*B, c*B+B) of its row's bytes); sign = bit B-1 of c (1 = negative);
m = c & (2^(B-1) - 1); value = 0 if m == 0 else (sign ? -1 : 1) * scale *
2^-(m-1), scale = the group's / channel's f32 entry of `.scales` [rows,
perRow]. No zero points. Every code value of both widths occurs.
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import w8a8_jit as base  # noqa: E402

F = np.float32
rng = np.random.default_rng(11)
R, K = 24, 64
NUM = re.compile(r"-?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)")


def pack(codes, bits):
    """[rows, cols] codes in [0, 2^bits) -> [rows, ceil(cols*bits/8)] u8."""
    rows, cols = codes.shape
    b = ((codes[..., None] >> np.arange(bits)) & 1).astype(np.uint8)
    b = b.reshape(rows, cols * bits)
    nbytes = (cols * bits + 7) // 8
    b = np.pad(b, ((0, 0), (0, nbytes * 8 - cols * bits)))
    return np.packbits(b, axis=1, bitorder="little")


def unpack(packed, cols, bits):
    b = np.unpackbits(packed, axis=1, bitorder="little")[:, : cols * bits]
    b = b.reshape(packed.shape[0], cols, bits).astype(np.int64)
    return (b << np.arange(bits)).sum(-1)


def decode(packed, scales, cols, bits, group):
    c = unpack(packed, cols, bits)
    m = c & ((1 << (bits - 1)) - 1)
    sign = np.where((c >> (bits - 1)) & 1, F(-1), F(1))
    lvl = np.where(m == 0, F(0), sign * np.ldexp(F(1), (-(m - 1)).astype(np.int32)).astype(F))
    s = np.repeat(scales, group, axis=1) if group else np.repeat(scales, cols, axis=1)
    return (lvl.astype(F) * s).astype(F)


# i4 groups of 32 (linear, embedding) and i3 per channel (logits).
c4 = rng.integers(0, 16, (R, K))
c4[0, :16] = np.arange(16)
c3 = rng.integers(0, 8, (R, K))
c3[0, :8] = np.arange(8)
s4 = rng.uniform(0.05, 2.0, (R, K // 32)).astype(F)
s3 = rng.uniform(0.05, 2.0, (R, 1)).astype(F)
p4, p3 = pack(c4, 4), pack(c3, 3)
W4 = decode(p4, s4, K, 4, 32)
W3 = decode(p3, s3, K, 3, 0)
ids = np.array([[0, 5, 23], [7, 7, 1]], dtype=np.int64)

W4T = "!qquant.weight<24x64xf32, log2 i4, symmetric, group = 32>"
W3T = "!qquant.weight<24x64xf32, log2 i3, symmetric, channel>"


def refs():
    x = base.x.astype(np.float64)
    lin = np.einsum("btk,nk->btn", x, W4.astype(np.float64)) + base.bias
    log = np.einsum("btk,nk->btn", x, W3.astype(np.float64))
    return [("dequantize_weight", W4), ("dequantize_weight i3", W3),
            ("linear", lin), ("logits", log), ("embedding", W4[ids])]


def emit_case(store, body, outputs):
    """Prints a JIT case: the store, the print declarations, %x [2,3,64],
    %b [24] and %ids [2,3] (w8a8_jit's and `ids`), `body` (the weights and
    ops), then each (value, shape) of `outputs`: the 2x3x24 products as f32,
    exact results (dequantized weights, embedding rows) as IEEE bits (i32)."""
    fmt = base.fmt
    print(f'''qwen.store @q "{store}"
func.func private @printMemrefF32(tensor<*xf32>)
func.func private @printMemrefI32(tensor<*xi32>)
func.func @main() {{
  %x = arith.constant dense<{fmt(base.x)}> : tensor<2x3x64xf32>
  %b = arith.constant dense<{fmt(base.bias)}> : tensor<24xf32>
  %ids = arith.constant dense<{fmt(ids).replace('.0', '')}> : tensor<2x3xi64>''')
    print(body)
    for i, (v, t) in enumerate(outputs):
        if t == "2x3x24":
            print(f"  %p{i} = tensor.cast {v} : tensor<{t}xf32> to tensor<*xf32>")
            print(f"  func.call @printMemrefF32(%p{i}) : (tensor<*xf32>) -> ()")
        else:
            print(f"  %i{i} = arith.bitcast {v} : tensor<{t}xf32> to tensor<{t}xi32>")
            print(f"  %p{i} = tensor.cast %i{i} : tensor<{t}xi32> to tensor<*xi32>")
            print(f"  func.call @printMemrefI32(%p{i}) : (tensor<*xi32>) -> ()")
    print("  return\n}")


OUTPUTS = [("%d4", "24x64"), ("%d3", "24x64"), ("%y", "2x3x24"), ("%l", "2x3x24"),
           ("%e", "2x3x64")]


def gen(store):
    from qwen_opt import weight_store
    weight_store.write(store, {"g.codes": p4, "g.scales": s4,
                               "c.codes": p3, "c.scales": s3})
    emit_case(store, f'''  %g = qquant.weight @q::@g : {W4T}
  %c = qquant.weight @q::@c : {W3T}
  %d4 = qquant.dequantize_weight %g : {W4T} -> tensor<24x64xf32>
  %d3 = qquant.dequantize_weight %c : {W3T} -> tensor<24x64xf32>
  %y = qquant.linear %x, %g, %b : (tensor<2x3x64xf32>, {W4T}, tensor<24xf32>) -> tensor<2x3x24xf32>
  %l = qquant.logits %x, %c : (tensor<2x3x64xf32>, {W3T}) -> tensor<2x3x24xf32>
  %e = qquant.embedding %ids, %g : (tensor<2x3xi64>, {W4T}) -> tensor<2x3x64xf32>''', OUTPUTS)


def check_printed(rs, exact_names, what):
    """Compares the tensors mlir-runner printed (stdin) with `rs`, a list of
    (name, reference); the ones named in `exact_names` were printed as IEEE
    bits and must match exactly. Exits 0 when all match."""
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    if len(blocks) != len(rs):
        print(f"FAIL: expected {len(rs)} printed tensors\n{text}")
        sys.exit(1)
    ok = True
    for (name, r), blk in zip(rs, blocks):
        exact = name in exact_names
        got = np.array([float(t) for t in NUM.findall(blk.split("data =", 1)[1])])
        if exact:  # IEEE bits of f32 values
            got = got.astype(np.int64).astype(np.int32).view(F).astype(np.float64)
        r = np.asarray(r, np.float64).reshape(-1)
        # f32 sums in another order than the f64 reference, printed to 6
        # digits: errors relative to the largest output.
        err = np.abs(got - r) / np.abs(r).max() if got.shape == r.shape else np.array([np.inf])
        if (exact and not np.array_equal(got, r)) or err.max() > 1e-5:
            ok = False
            print(f"FAIL {name}: max rel err {err.max():.2e}")
        else:
            print(f"OK {name}: {r.size} values match the {what} reference"
                  + (" exactly" if exact else f" (max rel err {err.max():.1e})"))
    sys.exit(0 if ok else 1)


def check():
    check_printed(refs(), ("dequantize_weight", "dequantize_weight i3", "embedding"), "log2")


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
