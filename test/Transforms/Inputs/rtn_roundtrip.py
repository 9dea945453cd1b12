"""Round trip of --qwen-quantize-weights against the numpy mirror, for every
bit width, symmetric / asymmetric, signed / unsigned and granularity.

  rtn_roundtrip.py QWEN_OPT WORKDIR

For each configuration: qwen-opt quantizes a module with a linear, an LM head
and an embedding (and verifies the result with --qwen-verify-weights); the
written store is read with python/qwen_opt/weight_store.py and its codes,
scales and zero points must equal rtn_reference.py's bit for bit; the codes
unpacked independently and dequantized must be within half a step of the
original weights (one step for asymmetric, where the zero point is rounded).
Prints one line per configuration and PASS.
"""
import itertools
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import rtn_reference as ref  # noqa: E402
from qwen_opt import weight_store  # noqa: E402

qwen_opt, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(5)


def weights():
    lin = rng.standard_normal((16, 256)).astype(np.float32)
    lin[3] = 0                       # all-zero row (channel) / groups
    lin[5, 40] = 25.0                # an outlier
    lin[7] = 0.75                    # constant positive row (asym lo = 0)
    lin[8] = -np.abs(lin[8])         # all negative
    lin[9, 64:96] = 0                # an all-zero group of 32
    head = (rng.standard_normal((8, 96)) * 0.02).astype(np.float32)  # 96: group 128/64 fall back to 32
    emb = rng.uniform(-3, 1, (12, 64)).astype(np.float32)
    return {"lin.weight": lin, "head.weight": head, "emb.weight": emb}


W = weights()
src = os.path.join(work, "src.qws")
weight_store.write(src, W)
module = f'''
qwen.store @w "{src}"
func.func @main(%x: tensor<2x256xf32>, %h: tensor<2x96xf32>, %ids: tensor<2xi64>)
    -> (tensor<2x16xf32>, tensor<2x8xf32>, tensor<2x64xf32>) {{
  %a = qwen.weight @w::@"lin.weight" : tensor<16x256xf32>
  %b = qwen.weight @w::@"head.weight" : tensor<8x96xf32>
  %c = qwen.weight @w::@"emb.weight" : tensor<12x64xf32>
  %y = qwen.linear %x, %a : (tensor<2x256xf32>, tensor<16x256xf32>) -> tensor<2x16xf32>
  %l = qwen.logits %h, %b : (tensor<2x96xf32>, tensor<8x96xf32>) -> tensor<2x8xf32>
  %e = qwen.embedding %ids, %c : (tensor<2xi64>, tensor<12x64xf32>) -> tensor<2x64xf32>
  return %y, %l, %e : tensor<2x16xf32>, tensor<2x8xf32>, tensor<2x64xf32>
}}
'''
mpath = os.path.join(work, "in.mlir")
open(mpath, "w").write(module)

TYPE = re.compile(r'qquant\.weight @q::@"?([\w.]+)"? : !qquant\.weight<(\d+)x(\d+)xf32, (u?i)(\d), '
                  r'(symmetric|asymmetric), (tensor|channel|group = (\d+))>')

grans = [("tensor", 0), ("channel", 0), ("group", 32), ("group", 64), ("group", 128)]
fails = []
n = 0
for bits, sym, signed, (gran, gs) in itertools.product([2, 3, 4, 8], [True, False], [True, False], grans):
    name = f"b{bits}-{'sym' if sym else 'asym'}-{'i' if signed else 'u'}-{gran}{gs or ''}"
    qpath = os.path.join(work, name + ".qws")
    opts = (f"bits={bits} mode={'symmetric' if sym else 'asymmetric'} granularity={gran} "
            f"group-size={gs or 128} signed={'true' if signed else 'false'} "
            f"ops=linear,logits,embedding store={qpath} store-name=q")
    r = subprocess.run([qwen_opt, mpath, f"--qwen-quantize-weights={opts}",
                        "--qwen-verify-weights=check-finite=true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fails.append(f"{name}: qwen-opt failed: {r.stderr.strip()}")
        continue
    types = {m.group(1): m for m in TYPE.finditer(r.stdout)}
    if set(types) != set(W):
        fails.append(f"{name}: quantized weights {sorted(types)}")
        continue
    store = weight_store.read(qpath)
    worst = 0.0
    for wname, w in W.items():
        m = types[wname]
        rows, cols = int(m.group(2)), int(m.group(3))
        got_signed, got_bits = m.group(4) == "i", int(m.group(5))
        got_gran = m.group(7).split(" ")[0]
        got_gs = int(m.group(8)) if m.group(8) else 0
        exp_gs = gs
        if gran == "group":
            while exp_gs >= 32 and cols % exp_gs:
                exp_gs //= 2
        exp_gran = gran if (gran != "group" or exp_gs >= 32) else "channel"
        if (got_signed, got_bits, m.group(6) == "symmetric", got_gran, got_gs) != \
                (signed, bits, sym, exp_gran, exp_gs if exp_gran == "group" else 0):
            fails.append(f"{name}: {wname} has type {m.group(0)}")
            continue
        codes, scales, zeros = ref.rtn(w, bits, sym, signed, exp_gran, exp_gs)
        packed = ref.pack(codes, bits)
        got_codes = store[wname + ".codes"]
        got_scales = store[wname + ".scales"]
        if got_codes.dtype != np.uint8 or not np.array_equal(got_codes, packed):
            fails.append(f"{name}: {wname}.codes differ from numpy "
                         f"({int((got_codes != packed).sum())} bytes)")
            continue
        if got_scales.dtype != np.float32 or got_scales.shape != scales.shape or \
                not np.array_equal(got_scales.view(np.uint32), scales.view(np.uint32)):
            fails.append(f"{name}: {wname}.scales differ from numpy")
            continue
        if sym:
            if wname + ".zeros" in store:
                fails.append(f"{name}: {wname}.zeros written for a symmetric scheme")
                continue
        else:
            got_zeros = store[wname + ".zeros"]
            if got_zeros.dtype != (np.int8 if signed else np.uint8) or \
                    not np.array_equal(got_zeros.astype(np.int64), zeros):
                fails.append(f"{name}: {wname}.zeros differ from numpy")
                continue
        # Independent unpack + dequantize: within half a step (a step).
        un = ref.unpack(got_codes, cols, bits, signed)
        if not np.array_equal(un, codes):
            fails.append(f"{name}: {wname} codes do not unpack to the numpy codes")
            continue
        deq = ref.dequant(un, got_scales, None if sym else store[wname + ".zeros"],
                          bits, sym, signed, exp_gran, exp_gs)
        if exp_gran == "tensor":
            step = np.full(w.shape, got_scales[0])
        else:
            step = np.repeat(got_scales, cols // got_scales.shape[1], axis=1)
        err = np.abs(deq.astype(np.float64) - w)
        bound = step * (0.5 if sym else 1.0) * (1 + 1e-5) + 1e-12
        if (err > bound).any():
            i = np.unravel_index(np.argmax(err - bound), err.shape)
            fails.append(f"{name}: {wname} dequantized error {err[i]:.3g} > bound {bound[i]:.3g} at {i}")
            continue
        zero_rows = np.all(w == 0, axis=1)
        if zero_rows.any() and np.abs(deq[zero_rows]).max() != 0:
            fails.append(f"{name}: {wname} all-zero rows do not dequantize to 0")
            continue
        worst = max(worst, float((err / np.maximum(np.abs(w).max(), 1e-30)).max()))
    n += 1
    print(f"{name}: ok (max |w - deq| / max |w| = {worst:.3e})")

if fails:
    print("FAIL:\n  " + "\n  ".join(fails))
    sys.exit(1)
print(f"{n} configurations PASS")
