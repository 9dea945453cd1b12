"""Numerics of the static per-tensor int8 lowering of qquant.linear/logits
(#qquant.act<static : !quant.uniform<i8:f32, s>>, scales from calibration).

  w8a8_static_jit.py gen STORE > case.mlir
  w8a8_static_jit.py check < runner-output

Same inputs and weights as w8a8_jit.py; the reference is the integer recipe:
  q_x = clamp(rint(x / s), -127, 127) (f32 division), acc = q_x . codes in
  integers, y = f32(acc) * s * s_w (+ bias). The linear's scale clips the
  outlier token (40.0) and nothing else; the logits' scale clips much more.
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import w8a8_jit as base  # noqa: E402

F = np.float32
S_LIN = 2.5 / 127
S_LOG = 1.0 / 127


def ref(codes, scale_of_row, b, s):
    sx = F(s)
    q = np.clip(np.rint(base.x / sx), -127, 127)
    acc = np.einsum("btk,nk->btn", q.astype(np.int64), codes.astype(np.int64))
    y = (acc.astype(F) * sx).astype(F) * scale_of_row
    y = y.astype(F)
    if b is not None:
        y = (y + b).astype(F)
    return y


def gen(store):
    from qwen_opt import weight_store
    weight_store.write(store, {
        "ch.codes": base.cw.view(np.uint8), "ch.scales": base.sw.reshape(24, 1),
        "t.codes": base.ct.view(np.uint8), "t.scales": base.st,
    })
    fmt = base.fmt
    print(f'''qwen.store @q "{store}"
func.func private @printMemrefF32(tensor<*xf32>)
func.func @main() {{
  %x = arith.constant dense<{fmt(base.x)}> : tensor<2x3x64xf32>
  %b = arith.constant dense<{fmt(base.bias)}> : tensor<24xf32>
  %w = qquant.weight @q::@ch : !qquant.weight<24x64xf32, i8, symmetric, channel>
  %t = qquant.weight @q::@t : !qquant.weight<24x64xf32, i8, symmetric, tensor>
  %y = qquant.linear %x, %w, %b {{act = #qquant.act<static : !quant.uniform<i8:f32, {S_LIN!r}>>}} : (tensor<2x3x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>, tensor<24xf32>) -> tensor<2x3x24xf32>
  %l = qquant.logits %x, %t {{act = #qquant.act<static : !quant.uniform<i8:f32, {S_LOG!r}>>}} : (tensor<2x3x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, tensor>) -> tensor<2x3x24xf32>
  %p0 = tensor.cast %y : tensor<2x3x24xf32> to tensor<*xf32>
  func.call @printMemrefF32(%p0) : (tensor<*xf32>) -> ()
  %p1 = tensor.cast %l : tensor<2x3x24xf32> to tensor<*xf32>
  func.call @printMemrefF32(%p1) : (tensor<*xf32>) -> ()
  return
}}''')


def check():
    text = sys.stdin.read()
    blocks = text.split("Unranked Memref")[1:]
    refs = [("linear", ref(base.cw, base.sw, base.bias, S_LIN)),
            ("logits", ref(base.ct, base.st[0], None, S_LOG))]
    if len(blocks) != 2:
        print(f"FAIL: expected 2 printed tensors\n{text}")
        sys.exit(1)
    ok = True
    # The dynamic recipe differs: static scales really are used.
    dyn = base.ref(base.cw, base.sw, base.bias).astype(np.float64).reshape(-1)
    for (name, r), blk in zip(refs, blocks):
        got = np.array([float(t) for t in base.NUM.findall(blk.split("data =", 1)[1])])
        r = r.astype(np.float64).reshape(-1)
        err = np.abs(got - r) / np.maximum(np.abs(r), 1e-3)
        if got.shape != r.shape or err.max() > 1e-5:
            ok = False
            print(f"FAIL {name}: max rel err {err.max():.2e} vs the static integer recipe")
        else:
            print(f"OK {name}: {r.size} values match the static integer recipe "
                  f"(max rel err {err.max():.2e})")
        if name == "linear" and np.abs(got - dyn).max() < 1e-3:
            ok = False
            print("FAIL linear: equals the dynamic recipe")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    gen(sys.argv[2]) if sys.argv[1] == "gen" else check()
