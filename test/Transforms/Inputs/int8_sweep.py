"""Numerics of the fused int8-activation kernels (lib/Transforms/QuantKernels.cpp,
lowerInt8ActLinear) against the reference lowering (LowerONNXToLinalg.cpp,
linearDynI8), bit for bit.

  int8_sweep.py gen STORE ref|portable|vnni > case.mlir  # writes STORE, prints the program
  int8_sweep.py check OUT_A OUT_B                       # the runner outputs of two modes

`ref` lowers with `qwen.quant_kernel = {fused = false}` (linearDynI8),
`portable` with the kernel's target-independent inner product (what x86-64-v3
and x86-64-v4 get), `vnni` with vpdpbusd (`vnni = true`; needs a CPU with
AVX-512 VNNI to run). The program prints every result as its f32 bit
patterns (i32), and `check` requires both outputs to equal, bit for bit, a
numpy emulation of linearDynI8's documented numerics (f32 operations in the
same order, exact integer sums).

Odd shapes: N not a multiple of the 4-channel tile, K not a multiple of the
64-byte chunk, M = 1, 3, 17 (blocks of 4 tokens plus remainders), dynamic M
and rank-3 inputs, all-zero tokens (s_x = 0), i8 codes of -128 and i4 codes
of -8 (the extremes of the unsigned bias), W8A8 per tensor / channel, W4A8
per tensor / channel / group of 32, 64 and 128 (f32 and f16 scales), dynamic
and static activations, with and without bias, qquant.linear and logits.
The `acc*` cases use unit scales and integer activations, so their outputs
are the i32 accumulators themselves (|acc| < 2^24).
"""
import re
import sys

import numpy as np

F = np.float32
rng = np.random.default_rng(7)

# name, bits, granularity, group, N, K, M list, bias, scale dtype, op, act
# (act: "dyn" or a static scale)
CASES = [
    ("ch8", 8, "channel", 0, 45, 77, [1, 3, 17], True, F, "linear", "dyn"),
    ("t8", 8, "tensor", 0, 9, 64, [1, 17], False, F, "logits", "dyn"),
    ("ch8s", 8, "channel", 0, 50, 200, [1, 3], False, F, "linear", 0.02),
    ("ch8b", 8, "channel", 0, 19, 896, [1, 5], True, np.float16, "linear", "dyn"),
    ("ch4", 4, "channel", 0, 29, 100, [1, 3, 17], True, F, "linear", "dyn"),
    ("t4s", 4, "tensor", 0, 9, 130, [1, 17], False, F, "logits", 0.03),
    ("g32", 4, "group", 32, 37, 96, [1, 3, 17], True, F, "linear", "dyn"),
    ("g64", 4, "group", 64, 70, 192, [1, 3, 17], False, F, "linear", "dyn"),
    ("g128", 4, "group", 128, 131, 384, [1, 3], True, np.float16, "linear", 0.025),
    ("acc8", 8, "channel", 0, 33, 1000, [1, 6], False, F, "linear", 1.0),
    ("acc4", 4, "group", 64, 21, 320, [1, 6], False, F, "logits", 1.0),
]


def weights(name, bits, gran, group, n, k, sdt):
    qmax = 2 ** (bits - 1) - 1
    codes = rng.integers(-qmax - 1, qmax + 1, size=(n, k))
    codes[0, :] = -qmax - 1  # the most negative code everywhere in row 0
    if name.startswith("acc"):
        s = np.ones((n, k // group) if gran == "group" else (n, 1), F)
        if gran == "tensor":
            s = np.ones(1, F)
        return codes, s.astype(sdt)
    if gran == "tensor":
        s = np.array([0.013], F)
    elif gran == "channel":
        s = rng.uniform(0.001, 0.02, size=(n, 1)).astype(F)
    else:
        s = rng.uniform(0.001, 0.02, size=(n, k // group)).astype(F)
    return codes, s.astype(sdt)


def pack(codes, bits):
    n, k = codes.shape
    u = (codes & ((1 << bits) - 1)).astype(np.uint8)
    if bits == 8:
        return u
    out = np.zeros((n, (k * bits + 7) // 8), np.uint8)
    for j in range(k):
        out[:, j // 2] |= (u[:, j] << (4 * (j % 2))).astype(np.uint8)
    return out


def data():
    out = []
    for name, bits, gran, group, n, k, ms, has_b, sdt, op, act in CASES:
        codes, s = weights(name, bits, gran, group, n, k, sdt)
        b = rng.standard_normal(n).astype(F) if has_b else None
        xs = []
        for m in ms:
            if name.startswith("acc"):
                x = rng.integers(-127, 128, size=(m, k)).astype(F)
                x[0, :] = 127.0
            else:
                x = rng.standard_normal((m, k)).astype(F)
                if m > 2:
                    x[1, :] = 0.0  # s_x = 0 (dynamic); q_x = 0
            xs.append(x)
        out.append(dict(name=name, bits=bits, gran=gran, group=group, n=n, k=k, codes=codes, s=s, b=b, xs=xs,
                        op=op, act=act))
    return out


def emulate(c, x):
    """linearDynI8's numerics in numpy (f32 operations in its order)."""
    m = x.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        if c["act"] == "dyn":
            amax = np.maximum(np.abs(x).max(1), F(0)).astype(F)
            sx = (amax / F(127)).astype(F)
        else:
            sx = np.full(m, F(c["act"]), F)
        d = (x / sx[:, None]).astype(F)
        d = np.where(sx[:, None] == 0, F(0), d)
    q = np.clip(np.rint(d), -127, 127).astype(np.int64)
    codes, s = c["codes"], c["s"].astype(F)
    if c["gran"] == "group":
        g = c["group"]
        ys = np.zeros((m, c["n"]), F)
        for j in range(c["k"] // g):
            acc = q[:, j * g:(j + 1) * g] @ codes[:, j * g:(j + 1) * g].T
            ys = (ys + (acc.astype(F) * s[:, j][None, :]).astype(F)).astype(F)
        y = (ys * sx[:, None]).astype(F)
    else:
        acc = q @ codes.T
        sw = s.reshape(-1)[0] if c["gran"] == "tensor" else s[:, 0][None, :]
        y = ((acc.astype(F) * sx[:, None]).astype(F) * sw).astype(F)
    if c["b"] is not None:
        y = (y + c["b"][None, :]).astype(F)
    return y


def fmt(a):
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(fmt(v) for v in a) + "]"


def wtype(c):
    g = {"tensor": "tensor", "channel": "channel", "group": f"group = {c['group']}"}[c["gran"]]
    return f"!qquant.weight<{c['n']}x{c['k']}xf32, i{c['bits']}, symmetric, {g}>"


def act_attr(c):
    if c["act"] == "dyn":
        return "#qquant.act<dynamic, i8, per_token>"
    return f"#qquant.act<static : !quant.uniform<i8:f32, {float(c['act'])!r}>>"


def gen(store, mode):
    sys.path.insert(0, "")
    from qwen_opt import weight_store
    cases = data()
    entries = {}
    for c in cases:
        entries[c["name"] + ".codes"] = pack(c["codes"], c["bits"])
        entries[c["name"] + ".scales"] = c["s"]
    weight_store.write(store, entries)
    attr = {"ref": " attributes {qwen.quant_kernel = {fused = false}}", "portable": "",
            "vnni": " attributes {qwen.quant_kernel = {vnni = true}}"}[mode]
    lines = [f"module{attr} {{", f'qwen.store @q "{store}"', "func.func private @printMemrefI32(tensor<*xi32>)",
             "func.func @main() {"]
    for v, c in enumerate(cases):
        n, k, t = c["n"], c["k"], wtype(c)
        lines.append(f"  %w{v} = qquant.weight @q::@{c['name']} : {t}")
        if c["b"] is not None:
            lines.append(f"  %b{v} = arith.constant dense<{fmt(c['b'])}> : tensor<{n}xf32>")
        for i, x in enumerate(c["xs"]):
            m = x.shape[0]
            if i % 2 == 1:
                lines.append(f"  %x{v}_{i} = arith.constant dense<{fmt(x[None])}> : tensor<1x{m}x{k}xf32>")
                xt, yt, st = f"tensor<1x{m}x{k}xf32>", f"tensor<1x{m}x{n}xf32>", f"tensor<1x{m}x{n}xf32>"
                maps = "affine_map<(a, b, c) -> (a, b, c)>"
                its = '"parallel", "parallel", "parallel"'
                it = f"tensor<1x{m}x{n}xi32>"
            else:  # dynamic M
                lines.append(f"  %xs{v}_{i} = arith.constant dense<{fmt(x)}> : tensor<{m}x{k}xf32>")
                lines.append(f"  %x{v}_{i} = tensor.cast %xs{v}_{i} : tensor<{m}x{k}xf32> to tensor<?x{k}xf32>")
                xt, yt, st = f"tensor<?x{k}xf32>", f"tensor<?x{n}xf32>", f"tensor<{m}x{n}xf32>"
                maps = "affine_map<(a, b) -> (a, b)>"
                its = '"parallel", "parallel"'
                it = f"tensor<{m}x{n}xi32>"
            xv, a = f"%x{v}_{i}", act_attr(c)
            if c["op"] == "linear" and c["b"] is not None:
                lines.append(f"  %y{v}_{i} = qquant.linear {xv}, %w{v}, %b{v} {{act = {a}}} : "
                             f"({xt}, {t}, tensor<{n}xf32>) -> {yt}")
            elif c["op"] == "linear":
                lines.append(f"  %y{v}_{i} = qquant.linear {xv}, %w{v} {{act = {a}}} : ({xt}, {t}) -> {yt}")
            else:
                lines.append(f"  %y{v}_{i} = qquant.logits {xv}, %w{v} {{act = {a}}} : ({xt}, {t}) -> {yt}")
            lines.append(f"  %c{v}_{i} = tensor.cast %y{v}_{i} : {yt} to {st}")
            lines.append(f"  %e{v}_{i} = tensor.empty() : {it}")
            lines.append(f"  %i{v}_{i} = linalg.generic {{indexing_maps = [{maps}, {maps}], iterator_types = [{its}]}}"
                         f" ins(%c{v}_{i} : {st}) outs(%e{v}_{i} : {it}) {{")
            lines.append("  ^bb0(%in: f32, %out: i32):")
            lines.append("    %bits = arith.bitcast %in : f32 to i32")
            lines.append("    linalg.yield %bits : i32")
            lines.append(f"  }} -> {it}")
            lines.append(f"  %p{v}_{i} = tensor.cast %i{v}_{i} : {it} to tensor<*xi32>")
            lines.append(f"  func.call @printMemrefI32(%p{v}_{i}) : (tensor<*xi32>) -> ()")
    lines += ["  return", "}", "}"]
    print("\n".join(lines))


NUM = re.compile(r"-?\d+")


def parse(path):
    text = open(path).read()
    return [np.array([int(t) for t in NUM.findall(blk.split("data =", 1)[1])], np.int64).astype(np.uint32)
            for blk in text.split("Unranked Memref")[1:]]


def check(out_a, out_b):
    cases = data()
    outs = [parse(out_a), parse(out_b)]
    want = sum(len(c["xs"]) for c in cases)
    if any(len(o) != want for o in outs):
        print(f"FAIL: expected {want} printed tensors, got {[len(o) for o in outs]}")
        sys.exit(1)
    ok, i = True, 0
    for c in cases:
        case_ok = True
        for x in c["xs"]:
            exact = emulate(c, x).reshape(-1).view(np.uint32)
            for label, o in zip((out_a, out_b), outs):
                got = o[i]
                if got.size != exact.size or not (got == exact).all():
                    case_ok = False
                    bad = "wrong size" if got.size != exact.size else f"{int((got != exact).sum())} of {exact.size} differ"
                    print(f"FAIL {c['name']} M={x.shape[0]} {label}: {bad}")
            i += 1
        ok &= case_ok
        if case_ok:
            g = "" if c["gran"] != "group" else " " + str(c["group"])
            act = "dynamic" if c["act"] == "dyn" else "static"
            print(f"OK {c['name']}: w{c['bits']}a8 {c['gran']}{g} {act} N={c['n']} K={c['k']} "
                  f"M={','.join(str(x.shape[0]) for x in c['xs'])} {c['op']}")
    print(f"{'OK' if ok else 'FAIL'}: {i} products bit-identical")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3])
