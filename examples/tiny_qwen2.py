"""Writes a one-layer Qwen2-shaped model at the model level (qwen dialect)
with its weights inline as dense constants, the way an importer's first
output looks before `--qwen-externalize-weights` moves them to a store.

    python examples/tiny_qwen2.py OUT.mlir [--hidden 64 --heads 4 --kv-heads 2 --ffn 128 --vocab 256 --seq 8]
"""
import argparse

import numpy as np


def dense(a: np.ndarray) -> str:
    body = np.array2string(a.astype(np.float32), separator=", ", threshold=1 << 30,
                           max_line_width=1 << 30, formatter={"float_kind": lambda v: f"{v:.6e}"})
    return f"dense<{body}> : tensor<{'x'.join(map(str, a.shape))}xf32>"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=128)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--seq", type=int, default=8)
    a = p.parse_args()
    H, nh, nkv, F, V, T = a.hidden, a.heads, a.kv_heads, a.ffn, a.vocab, a.seq
    hd = H // nh
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) * 0.02).astype(np.float32)
    ones = lambda n: np.ones(n, dtype=np.float32)
    consts = {
        "model.embed_tokens.weight": w(V, H),
        "model.layers.0.input_layernorm.weight": ones(H),
        "model.layers.0.self_attn.q_proj.weight": w(nh * hd, H),
        "model.layers.0.self_attn.q_proj.bias": w(nh * hd),
        "model.layers.0.self_attn.k_proj.weight": w(nkv * hd, H),
        "model.layers.0.self_attn.k_proj.bias": w(nkv * hd),
        "model.layers.0.self_attn.v_proj.weight": w(nkv * hd, H),
        "model.layers.0.self_attn.v_proj.bias": w(nkv * hd),
        "model.layers.0.self_attn.o_proj.weight": w(H, nh * hd),
        "model.layers.0.post_attention_layernorm.weight": ones(H),
        "model.layers.0.mlp.gate_proj.weight": w(F, H),
        "model.layers.0.mlp.up_proj.weight": w(F, H),
        "model.layers.0.mlp.down_proj.weight": w(H, F),
        "model.norm.weight": ones(H),
    }
    t = lambda *s: f"tensor<{'x'.join(map(str, s))}xf32>"
    lines = [f"func.func @forward(%ids: tensor<1x{T}xi64>, %pos: tensor<1x{T}xi64>) -> {t(1, T, V)} {{"]
    names = {}
    for i, (name, value) in enumerate(consts.items()):
        names[name] = f"%c{i}"
        lines.append(f"  %c{i} = arith.constant {dense(value)} loc(\"{name}\")")
    c = lambda n: names["model." + n]
    L = "layers.0."
    attn = "{num_heads = %d : i64, num_kv_heads = %d : i64, head_dim = %d : i64, causal}" % (nh, nkv, hd)
    lines += [
        f"  %h = qwen.embedding %ids, {c('embed_tokens.weight')} : (tensor<1x{T}xi64>, {t(V, H)}) -> {t(1, T, H)}",
        f"  %n1 = qwen.rms_norm %h, {c(L + 'input_layernorm.weight')} {{epsilon = 1.0e-6 : f32}} : ({t(1, T, H)}, {t(H)}) -> {t(1, T, H)}",
    ]
    for proj, n in (("q", nh), ("k", nkv), ("v", nkv)):
        lines.append(
            f"  %{proj} = qwen.linear %n1, {c(L + f'self_attn.{proj}_proj.weight')}, {c(L + f'self_attn.{proj}_proj.bias')}"
            f" : ({t(1, T, H)}, {t(n * hd, H)}, {t(n * hd)}) -> {t(1, T, n * hd)}")
    lines += [
        f"  %qr = qwen.rope %q, %pos {{num_heads = {nh} : i64, head_dim = {hd} : i64, theta = 1.0e6 : f64}} : ({t(1, T, nh * hd)}, tensor<1x{T}xi64>) -> {t(1, T, nh * hd)}",
        f"  %kr = qwen.rope %k, %pos {{num_heads = {nkv} : i64, head_dim = {hd} : i64, theta = 1.0e6 : f64}} : ({t(1, T, nkv * hd)}, tensor<1x{T}xi64>) -> {t(1, T, nkv * hd)}",
        f"  %a, %pk, %pv = qwen.attention %qr, %kr, %v {attn} : ({t(1, T, nh * hd)}, {t(1, T, nkv * hd)}, {t(1, T, nkv * hd)})"
        f" -> ({t(1, T, nh * hd)}, {t(1, nkv, T, hd)}, {t(1, nkv, T, hd)})",
        f"  %o = qwen.linear %a, {c(L + 'self_attn.o_proj.weight')} : ({t(1, T, nh * hd)}, {t(H, nh * hd)}) -> {t(1, T, H)}",
        f"  %h1 = qwen.add %h, %o : {t(1, T, H)}",
        f"  %n2 = qwen.rms_norm %h1, {c(L + 'post_attention_layernorm.weight')} {{epsilon = 1.0e-6 : f32}} : ({t(1, T, H)}, {t(H)}) -> {t(1, T, H)}",
        f"  %g = qwen.linear %n2, {c(L + 'mlp.gate_proj.weight')} : ({t(1, T, H)}, {t(F, H)}) -> {t(1, T, F)}",
        f"  %u = qwen.linear %n2, {c(L + 'mlp.up_proj.weight')} : ({t(1, T, H)}, {t(F, H)}) -> {t(1, T, F)}",
        f"  %s = qwen.silu_mul %g, %u : {t(1, T, F)}",
        f"  %d = qwen.linear %s, {c(L + 'mlp.down_proj.weight')} : ({t(1, T, F)}, {t(H, F)}) -> {t(1, T, H)}",
        f"  %h2 = qwen.add %h1, %d : {t(1, T, H)}",
        f"  %n3 = qwen.rms_norm %h2, {c('norm.weight')} {{epsilon = 1.0e-6 : f32}} : ({t(1, T, H)}, {t(H)}) -> {t(1, T, H)}",
        f"  %logits = qwen.logits %n3, {c('embed_tokens.weight')} {{tied}} : ({t(1, T, H)}, {t(V, H)}) -> {t(1, T, V)}",
        f"  return %logits : {t(1, T, V)}",
        "}",
    ]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
