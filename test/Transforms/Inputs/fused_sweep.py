"""Numerics of the fused attention / RMSNorm / RoPE / SwiGLU kernels
(lib/Transforms/FusedKernels.cpp).

  fused_sweep.py gen fused|ref|gpu > case.mlir   # prints the program
  fused_sweep.py check FUSED_OUT REF_OUT     # the runner outputs of both

Attention: head_dim 40 (a masked tail chunk), 48 and 64; GQA groups 1, 2 and
7; S = 1, 5, 33, 130 (several splits of the keys); T = 1, 3, 17 (17 = one
query block of 16 plus one); causal or not, a [B, S] padding mask or none, a
row whose keys are all masked (output 0), batch 2; every shape dynamic but
the feature dims, as in the bundles. RMSNorm plain and per head, RoPE
rotate-half (full, partial rotary, a tail chunk) and interleaved (the
reference), SwiGLU with a tail chunk. `fused` lowers with the kernels, `ref`
with `qwen.quant_kernel = {fused = false}`; both are compared with float64
numpy (lower_linalg_jit.py's formulas) and with each other. `gpu` lowers as
for a CUDA target (the attention as GPUAttention.cpp's tagged generic, run
here on the CPU) and is checked as `fused` is.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lower_linalg_jit import attention, fmt, rms, rope, ttype  # noqa: E402
from woq_sweep import parse  # noqa: E402

F = np.float32
RTOL, ATOL = 2e-5, 2e-5

# name, B, T, P (past; None = no cache), NH, KV, D, causal, mask ("none",
# "pad": the first keys masked, "holes": scattered zeros)
ATTN = [
    ("d64 g1 S=1 T=1", 1, 1, None, 2, 2, 64, True, "none"),
    ("d48 g2 S=5 T=1", 1, 1, 4, 4, 2, 48, True, "holes"),
    ("d64 g7 S=33 T=1", 1, 1, 32, 7, 1, 64, True, "pad"),
    ("d48 g7 S=130 T=1", 1, 1, 129, 14, 2, 48, True, "none"),
    ("d64 g2 S=33 T=3", 1, 3, 30, 4, 2, 64, True, "holes"),
    ("d48 g1 S=17 T=17", 1, 17, None, 2, 2, 48, True, "none"),
    ("d64 g2 S=130 T=17", 1, 17, 113, 4, 2, 64, True, "pad"),
    ("d40 g2 S=5 T=3 noncausal", 2, 3, 2, 4, 2, 40, False, "holes"),
    ("d40 g7 S=3 T=3 masked row", 1, 3, None, 7, 1, 40, True, "pad"),
]
# name, shape of x, per-head width (0 = plain)
RMS = [("plain 3x80", (1, 3, 80), 0), ("plain 2x5x40", (2, 5, 40), 0),
       ("per head 4x48", (1, 3, 192), 48), ("per head 3x40 M=17", (17, 120), 40)]
# name, B, T, NH, D, rotary dim, style, first position
ROPE = [("half d64", 1, 5, 3, 64, 64, "half", 100), ("partial d48 rd32", 2, 3, 2, 48, 32, "half", 0),
        ("half d40 T=17", 1, 17, 2, 40, 40, "half", 7), ("interleaved d16", 1, 3, 2, 16, 16, "interleaved", 3)]
SILU = [("silu 3x100", (1, 3, 100)), ("silu 17x64", (17, 64)), ("silu 2x1x48", (2, 1, 48))]


def dyn(shape, keep):
    """Type string of `shape` with dims not in `keep` dynamic."""
    return "tensor<" + "x".join(str(d) if i in keep else "?" for i, d in enumerate(shape)) + "xf32>"


def data():
    rng = np.random.default_rng(9)
    cases = []
    for name, B, T, P, NH, KV, D, causal, mk in ATTN:
        S = T + (P or 0)
        c = dict(kind="attn", name=name, B=B, T=T, P=P, NH=NH, KV=KV, D=D, causal=causal,
                 q=rng.standard_normal((B, T, NH * D)).astype(F),
                 k=rng.standard_normal((B, T, KV * D)).astype(F), v=rng.standard_normal((B, T, KV * D)).astype(F))
        if P is not None:
            c["pk"] = rng.standard_normal((B, KV, P, D)).astype(F)
            c["pv"] = rng.standard_normal((B, KV, P, D)).astype(F)
        if mk == "pad":
            m = np.ones((B, S), np.int64)
            m[:, :max(1, S // 3)] = 0
            c["mask"] = m
        elif mk == "holes":
            c["mask"] = (rng.random((B, S)) > 0.3).astype(np.int64)
        cases.append(c)
    for name, shape, hd in RMS:
        cases.append(dict(kind="rms", name=name, x=rng.standard_normal(shape).astype(F),
                          w=rng.standard_normal(hd or shape[-1]).astype(F), hd=hd))
    for name, B, T, NH, D, rd, style, p0 in ROPE:
        pos = (p0 + np.arange(T)[None, :] + 5 * np.arange(B)[:, None]).astype(np.int64)
        cases.append(dict(kind="rope", name=name, x=rng.standard_normal((B, T, NH * D)).astype(F), pos=pos,
                          NH=NH, D=D, rd=rd, style=style))
    for name, shape in SILU:
        cases.append(dict(kind="silu", name=name, g=(3 * rng.standard_normal(shape)).astype(F),
                          u=rng.standard_normal(shape).astype(F)))
    return cases


def const(lines, name, a):
    lines.append(f"  %{name} = arith.constant dense<{fmt(a)}> : {ttype(a)}")


def gen(mode):
    attr = {"fused": "", "ref": " attributes {qwen.quant_kernel = {fused = false}}",
            "gpu": ' attributes {qwen.gpu_target = "sm_80"}'}[mode]
    lines = [f"module{attr} {{", "func.func private @printMemrefF32(tensor<*xf32>)"]
    main = ["func.func @main() {"]

    def emit(v, a, keep):
        """Casts constant %v to its dynamic type; returns (value, type)."""
        t = dyn(a.shape, keep)
        main.append(f"  %{v}d = tensor.cast %{v} : {ttype(a)} to {t}")
        return f"%{v}d", t

    def show(v, t):
        main.append(f"  %{v[1:]}p = tensor.cast {v} : {t} to tensor<*xf32>")
        main.append(f"  func.call @printMemrefF32(%{v[1:]}p) : (tensor<*xf32>) -> ()")

    for i, c in enumerate(data()):
        if c["kind"] == "attn":
            names = ["q", "k", "v"] + (["pk", "pv"] if c["P"] is not None else []) + (["mask"] if "mask" in c else [])
            args, types = [], []
            for n in names:
                const(main, f"{n}{i}", c[n])
                if n == "mask":
                    args.append(f"%{n}{i}")
                    types.append(ttype(c[n]))
                else:
                    v, t = emit(f"{n}{i}", c[n], {2} if n in ("q", "k", "v") else {1, 3})
                    args.append(v)
                    types.append(t)
            NH, KV, D = c["NH"], c["KV"], c["D"]
            ot, kt = f"tensor<?x?x{NH * D}xf32>", f"tensor<?x{KV}x?x{D}xf32>"
            past = f" past {args[3]}, {args[4]}" if c["P"] is not None else ""
            mask = f" mask {args[-1]}" if "mask" in c else ""
            attrs = f"num_heads = {NH} : i64, num_kv_heads = {KV} : i64, head_dim = {D} : i64" + \
                (", causal" if c["causal"] else "")
            main.append(f"  %o{i}, %K{i}, %V{i} = qwen.attention {args[0]}, {args[1]}, {args[2]}{past}{mask} "
                        f"{{{attrs}}} : ({', '.join(types)}) -> ({ot}, {kt}, {kt})")
            show(f"%o{i}", ot)
            show(f"%K{i}", kt)
            show(f"%V{i}", kt)
        elif c["kind"] == "rms":
            const(main, f"x{i}", c["x"])
            const(main, f"w{i}", c["w"])
            v, t = emit(f"x{i}", c["x"], {c["x"].ndim - 1})
            ph = ", per_head" if c["hd"] else ""
            main.append(f"  %y{i} = qwen.rms_norm {v}, %w{i} {{epsilon = 1.0e-06 : f32{ph}}} : "
                        f"({t}, {ttype(c['w'])}) -> {t}")
            show(f"%y{i}", t)
        elif c["kind"] == "rope":
            const(main, f"x{i}", c["x"])
            const(main, f"pos{i}", c["pos"])
            v, t = emit(f"x{i}", c["x"], {2})
            main.append(f"  %pos{i}d = tensor.cast %pos{i} : {ttype(c['pos'])} to tensor<?x?xi64>")
            style = ", style = #qwen.rope_style<interleaved>" if c["style"] == "interleaved" else ""
            main.append(f"  %y{i} = qwen.rope {v}, %pos{i}d {{num_heads = {c['NH']} : i64, head_dim = {c['D']} : i64, "
                        f"theta = 1.0e+06 : f64, rotary_dim = {c['rd']} : i64{style}}} : ({t}, tensor<?x?xi64>) -> {t}")
            show(f"%y{i}", t)
        else:
            const(main, f"g{i}", c["g"])
            const(main, f"u{i}", c["u"])
            keep = {c["g"].ndim - 1}
            g, t = emit(f"g{i}", c["g"], keep)
            u, _ = emit(f"u{i}", c["u"], keep)
            main.append(f"  %y{i} = qwen.silu_mul {g}, {u} : {t}")
            show(f"%y{i}", t)
    main += ["  return", "}"]
    print("\n".join(lines + main + ["}"]))


def expected(c):
    """float64 results of a case, in printing order."""
    if c["kind"] == "attn":
        o, K, V = attention(c["q"], c["k"], c["v"], c.get("pk"), c.get("pv"), c.get("mask"),
                            c["NH"], c["KV"], c["D"], c["causal"])
        return [o, K, V]
    if c["kind"] == "rms":
        return [rms(c["x"], c["w"], 1e-6, c["hd"] or c["x"].shape[-1])]
    if c["kind"] == "rope":
        return [rope(c["x"], c["pos"], c["NH"], c["D"], 1e6, c["rd"], c["style"])]
    g = c["g"].astype(np.float64)
    return [g / (1 + np.exp(-g)) * c["u"]]


def check(fused_out, ref_out):
    cases = data()
    fu, re_ = parse(fused_out), parse(ref_out)
    want = sum(3 if c["kind"] == "attn" else 1 for c in cases)
    if len(fu) != want or len(re_) != want:
        print(f"FAIL: expected {want} printed tensors, got {len(fu)} fused, {len(re_)} reference")
        sys.exit(1)
    ok, i = True, 0
    for c in cases:
        case_ok = True
        for e in expected(c):
            e = e.reshape(-1)
            for label, a, r in (("fused", fu[i], e), ("reference", re_[i], e), ("fused vs reference", fu[i], re_[i])):
                if a.size != r.size or not (np.abs(a - r) <= ATOL + RTOL * np.abs(r)).all():
                    case_ok = False
                    err = np.abs(a - r).max() if a.size == r.size else "size"
                    print(f"FAIL {c['kind']} {c['name']} output {i} {label}: max err {err}")
            i += 1
        ok &= case_ok
        if case_ok:
            print(f"OK {c['kind']} {c['name']}")
    print(f"{'OK' if ok else 'FAIL'}: {i} tensors")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3])
