"""Numerics of the register-blocked f32 linear kernel (lib/Transforms/DenseKernels.cpp).

  dense_sweep.py gen fused|ref|rowwise0 > case.mlir   # prints the program
  dense_sweep.py check FUSED_OUT REF_OUT     # the runner outputs of both

Shapes around the kernel's blocking (NR x MR register block, GT = 4 groups of
NR rows per thread tile, 4 GEMV accumulators when K % 64 == 0): N below one
tile, N not a multiple of the tile, K a multiple of 16 but not of 64, M = 1,
3, 17 (17 = 4 blocks of 4 plus a remainder), rank-2 (dynamic M) and rank-3
inputs, bias or not, qwen.linear and qwen.logits; and K = 100 (not a multiple
of 16: the reference lowering is kept). `fused` lowers with the kernel, `ref`
with `qwen.quant_kernel = {fused = false}`, `rowwise0` with the kernel from
tile_m tokens on and the reference below (`{rowwise = false}`). Both are compared with float64
numpy, and with each other, with woq_sweep.py's tolerance.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from woq_sweep import fmt, parse  # noqa: E402

F = np.float32
rng = np.random.default_rng(5)

# name, N, K, M list, bias, op
CASES = [
    ("small", 5, 64, [1, 3, 17], True, "linear"),
    ("odd", 37, 96, [1, 3, 17], False, "linear"),
    ("tiles", 70, 128, [1, 3, 17], True, "linear"),
    ("wide", 131, 256, [1, 17], True, "linear"),
    ("logits", 9, 48, [1, 3], False, "logits"),
    ("k100", 11, 100, [1, 3], True, "linear"),
]


def data():
    out = []
    for name, n, k, ms, has_b, op in CASES:
        w = rng.standard_normal((n, k)).astype(F)
        b = rng.standard_normal(n).astype(F) if has_b else None
        xs = [rng.standard_normal((m, k)).astype(F) for m in ms]
        out.append(dict(name=name, n=n, k=k, w=w, b=b, xs=xs, op=op))
    return out


def gen(mode):
    attr = {"fused": "", "ref": " attributes {qwen.quant_kernel = {fused = false}}",
            "rowwise0": " attributes {qwen.quant_kernel = {rowwise = false}}"}[mode]
    lines = [f"module{attr} {{", "func.func private @printMemrefF32(tensor<*xf32>)", "func.func @main() {"]
    for v, c in enumerate(data()):
        n, k = c["n"], c["k"]
        wt = f"tensor<{n}x{k}xf32>"
        lines.append(f"  %w{v} = arith.constant dense<{fmt(c['w'])}> : {wt}")
        if c["b"] is not None:
            lines.append(f"  %b{v} = arith.constant dense<{fmt(c['b'])}> : tensor<{n}xf32>")
        for i, x in enumerate(c["xs"]):
            m = x.shape[0]
            if i % 2 == 1:
                lines.append(f"  %x{v}_{i} = arith.constant dense<{fmt(x[None])}> : tensor<1x{m}x{k}xf32>")
                xt, yt = f"tensor<1x{m}x{k}xf32>", f"tensor<1x{m}x{n}xf32>"
            else:  # dynamic M
                lines.append(f"  %xs{v}_{i} = arith.constant dense<{fmt(x)}> : tensor<{m}x{k}xf32>")
                lines.append(f"  %x{v}_{i} = tensor.cast %xs{v}_{i} : tensor<{m}x{k}xf32> to tensor<?x{k}xf32>")
                xt, yt = f"tensor<?x{k}xf32>", f"tensor<?x{n}xf32>"
            if c["op"] == "linear" and c["b"] is not None:
                lines.append(f"  %y{v}_{i} = qwen.linear %x{v}_{i}, %w{v}, %b{v} : ({xt}, {wt}, tensor<{n}xf32>) -> {yt}")
            else:
                lines.append(f"  %y{v}_{i} = qwen.{c['op']} %x{v}_{i}, %w{v} : ({xt}, {wt}) -> {yt}")
            lines.append(f"  %p{v}_{i} = tensor.cast %y{v}_{i} : {yt} to tensor<*xf32>")
            lines.append(f"  func.call @printMemrefF32(%p{v}_{i}) : (tensor<*xf32>) -> ()")
    lines += ["  return", "}", "}"]
    print("\n".join(lines))


def check(fused_out, ref_out):
    cases = data()
    fu, re_ = parse(fused_out), parse(ref_out)
    want = sum(len(c["xs"]) for c in cases)
    if len(fu) != want or len(re_) != want:
        print(f"FAIL: expected {want} printed tensors, got {len(fu)} fused, {len(re_)} reference")
        sys.exit(1)
    ok, i = True, 0
    for c in cases:
        case_ok = True
        for x in c["xs"]:
            x64, w64 = x.astype(np.float64), c["w"].astype(np.float64)
            exact = x64 @ w64.T + (c["b"].astype(np.float64) if c["b"] is not None else 0)
            tol = 2e-5 * (np.abs(x64) @ np.abs(w64).T) + 2e-6 * np.abs(exact)
            for label, got in (("fused", fu[i]), ("reference", re_[i]), ("fused vs reference", None)):
                a = (got if got is not None else fu[i]).reshape(-1)
                e = (exact if got is not None else re_[i]).reshape(-1)
                if a.size != e.size or not (np.abs(a - e) <= tol.reshape(-1)).all():
                    case_ok = False
                    print(f"FAIL {c['name']} M={x.shape[0]} {label}")
            i += 1
        ok &= case_ok
        if case_ok:
            print(f"OK {c['name']}: N={c['n']} K={c['k']} M={','.join(str(x.shape[0]) for x in c['xs'])} {c['op']}"
                  f"{' bias' if c['b'] is not None else ''}")
    print(f"{'OK' if ok else 'FAIL'}: {i} products")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3])
