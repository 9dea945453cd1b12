"""--qwen-quantize-weights grid=log2 (the quantizer) against the log2
lowering (the dequantizer): they must agree on the format.

  log2_roundtrip.py gen DIR BITS GRAN > case.mlir   # DIR/src.qws: float weights
  log2_roundtrip.py check DIR < runner-output

The module multiplies the 64x64 identity by the quantized weight, so the JIT
prints W^T exactly (IEEE bits); it must equal log2_reference.decode of the
.codes / .scales the quantizer wrote (read back from its store), and every
weight must sit on one of the levels {0, +-s, +-s/2, ...} nearest to it.
"""
import glob
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from log2_reference import decode  # noqa: E402

F = np.float32
R, K = 24, 64
rng = np.random.default_rng(13)
W = (rng.standard_normal((R, K)) * 0.1).astype(F)
W[2] = 0                  # an all-zero row
W[5, 3] = 2.0             # an outlier


def gen(d, bits, gran):
    from qwen_opt import weight_store
    os.makedirs(d, exist_ok=True)
    weight_store.write(os.path.join(d, "src.qws"), {"w": W})
    eye = np.eye(K, dtype=F)
    rows = ", ".join("[" + ", ".join(repr(float(v)) for v in r) + "]" for r in eye)
    print(f'''qwen.store @s "{os.path.join(d, 'src.qws')}"
func.func private @printMemrefI32(tensor<*xi32>)
func.func @main() {{
  %x = arith.constant dense<[{rows}]> : tensor<{K}x{K}xf32>
  %w = qwen.weight @s::@w : tensor<{R}x{K}xf32>
  %y = qwen.linear %x, %w : (tensor<{K}x{K}xf32>, tensor<{R}x{K}xf32>) -> tensor<{K}x{R}xf32>
  %i = arith.bitcast %y : tensor<{K}x{R}xf32> to tensor<{K}x{R}xi32>
  %p = tensor.cast %i : tensor<{K}x{R}xi32> to tensor<*xi32>
  func.call @printMemrefI32(%p) : (tensor<*xi32>) -> ()
  return
}}''')


def check(d, bits, group):
    from qwen_opt import weight_store
    st = weight_store.read(os.path.join(d, "q.qws"))
    codes = next(v for k, v in st.items() if k.endswith(".codes"))
    scales = next(v for k, v in st.items() if k.endswith(".scales")).astype(F)
    text = sys.stdin.read()
    blk = text.split("Unranked Memref")[1].split("data =", 1)[1]
    got = np.array([int(t) for t in re.findall(r"-?\d+", blk)], np.int64).astype(np.int32).view(F)
    got = got.reshape(K, R).T
    ref = decode(codes, scales.reshape(R, -1), K, bits, group)
    ok = np.array_equal(got.view(np.int32), ref.view(np.int32))
    # Nearest level: no other level of the block is closer than the chosen one.
    s = np.repeat(scales.reshape(R, -1), group or K, axis=1)
    lv = np.concatenate([[0], 2.0 ** -np.arange((1 << (bits - 1)) - 1)])
    dist = np.abs(np.abs(W)[..., None] - s[..., None] * lv).min(-1)
    near = np.all(np.abs(np.abs(W) - np.abs(ref)) <= dist + 1e-7)
    print(("OK" if ok else "FAIL") + f" log2 i{bits}: lowering == numpy decode of the quantizer's store"
          + ("" if ok else f" ({np.sum(got != ref)} differ)"))
    print(("OK" if near else "FAIL") + " every weight on its nearest level")
    sys.exit(0 if ok and near else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        check(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
