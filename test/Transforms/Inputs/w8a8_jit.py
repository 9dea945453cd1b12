"""Numerics of the dynamic per-token int8 lowering of qquant.linear/logits.

  w8a8_jit.py gen STORE > case.mlir      # writes STORE, prints the program
  w8a8_jit.py check < runner-output

The reference is the exact integer recipe the lowering implements, in numpy:
  s_x = max|x| / 127 (f32, per token), q_x = clamp(rint(x / s_x), -127, 127)
  (0 where s_x == 0), acc = q_x . codes (integers), y = f32(acc) * s_x * s_w
  (+ bias), against a float reference it differs from by the quantization.
"""
import re
import sys

import numpy as np

F = np.float32
rng = np.random.default_rng(3)
x = rng.standard_normal((2, 3, 64)).astype(F)
x[0, 1] = 0                               # a zero token: scale 0
x[1, 2, 7] = 40.0                          # an outlier token
x[1, 0] = np.float32(127.0 / 4) * np.round(x[1, 0] * 2) / np.float32(127.0 / 4) / 2  # ties
w = rng.standard_normal((24, 64)).astype(F)
bias = rng.standard_normal(24).astype(F)
# Weights: i8 symmetric per channel (linear) and per tensor (logits).
sw = (np.abs(w).max(1) / F(127)).astype(F)
cw = np.clip(np.rint(w / sw[:, None]), -127, 127).astype(np.int8)
st = (np.abs(w).max() / F(127)).astype(F).reshape(1)
ct = np.clip(np.rint(w / st[0]), -127, 127).astype(np.int8)


def ref(codes, scale_of_row, b):
    amax = np.abs(x).max(-1)
    sx = (amax / F(127)).astype(F)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(sx[..., None] == 0, 0, np.clip(np.rint(x / sx[..., None]), -127, 127))
    acc = np.einsum("btk,nk->btn", q.astype(np.int64), codes.astype(np.int64))
    y = (acc.astype(F) * sx[..., None]).astype(F) * scale_of_row
    y = y.astype(F)
    if b is not None:
        y = (y + b).astype(F)
    return y


def fmt(a):
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(fmt(v) for v in a) + "]"


def gen(store):
    sys.path.insert(0, "")
    from qwen_opt import weight_store
    weight_store.write(store, {
        "ch.codes": cw.view(np.uint8), "ch.scales": sw.reshape(24, 1),
        "t.codes": ct.view(np.uint8), "t.scales": st,
    })
    print(f'''qwen.store @q "{store}"
func.func private @printMemrefF32(tensor<*xf32>)
func.func @main() {{
  %x = arith.constant dense<{fmt(x)}> : tensor<2x3x64xf32>
  %b = arith.constant dense<{fmt(bias)}> : tensor<24xf32>
  %w = qquant.weight @q::@ch : !qquant.weight<24x64xf32, i8, symmetric, channel>
  %t = qquant.weight @q::@t : !qquant.weight<24x64xf32, i8, symmetric, tensor>
  %y = qquant.linear %x, %w, %b {{act = #qquant.act<dynamic, i8, per_token>}} : (tensor<2x3x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>, tensor<24xf32>) -> tensor<2x3x24xf32>
  %l = qquant.logits %x, %t {{act = #qquant.act<dynamic, i8, per_token>}} : (tensor<2x3x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, tensor>) -> tensor<2x3x24xf32>
  %p0 = tensor.cast %y : tensor<2x3x24xf32> to tensor<*xf32>
  func.call @printMemrefF32(%p0) : (tensor<*xf32>) -> ()
  %p1 = tensor.cast %l : tensor<2x3x24xf32> to tensor<*xf32>
  func.call @printMemrefF32(%p1) : (tensor<*xf32>) -> ()
  return
}}''')


NUM = re.compile(r"-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")


def check():
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    refs = [("linear", ref(cw, sw, bias)), ("logits", ref(ct, st[0], None))]
    if len(blocks) != 2:
        print(f"FAIL: expected 2 printed tensors\n{text}")
        sys.exit(1)
    ok = True
    for (name, r), blk in zip(refs, blocks):
        got = np.array([float(t) for t in NUM.findall(blk.split("data =", 1)[1])])
        r = r.astype(np.float64).reshape(-1)
        err = np.abs(got - r) / np.maximum(np.abs(r), 1e-3)
        # Float reference (no activation quantization): the int8 error.
        fl = np.einsum("btk,nk->btn", x.astype(np.float64),
                       (cw if name == "linear" else ct).astype(np.float64) *
                       (sw[:, None] if name == "linear" else st[0]))
        if name == "linear":
            fl = fl + bias
        qerr = np.abs(got - fl.reshape(-1)).max() / np.abs(fl).max()
        if got.shape != r.shape or err.max() > 1e-5:
            ok = False
            print(f"FAIL {name}: max rel err {err.max():.2e} vs the integer recipe")
        else:
            print(f"OK {name}: {r.size} values match the integer recipe (max rel err "
                  f"{err.max():.2e}); vs float activations {qerr:.2e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
