#!/usr/bin/env python3
"""The peers of bench_quant.py, built from the same ONNX file (same weights):

- onnxruntime dynamic int8: `quantize_dynamic` (int8 weights per channel, int8 activations per
  tensor at run time: ORT's DynamicQuantizeMatMul / MatMulInteger);
- onnxruntime 4-bit: `MatMulNBitsQuantizer` (symmetric int4 blocks, accuracy_level 4 = int8
  activations in the kernel's dot products, ORT's fastest CPU path);
- llama.cpp: a GGUF file written from the ONNX initializers with the `gguf` package (F32), then
  quantized by llama.cpp's own quantizer (`llama_model_quantize`, through llama-cpp-python) to
  Q8_0 and Q4_0, and run by llama-cpp-python in a child process.

The ONNX graph of a Qwen2 export (TorchScript or dynamo, HF module names in the node names) is
read for the role of every initializer: `/model/layers.N/self_attn/q_proj/MatMul` etc. MatMul
weights are stored [in, out] in ONNX, [out, in] in GGUF. Exporters share equal initializers
(all-ones norms, zero biases) between layers through Identity nodes; those are followed.

Used by bench_quant.py; `python bench/peers.py --gguf MODEL.onnx OUT.gguf` writes the F32 GGUF alone.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# ONNX -> GGUF (llama.cpp's "qwen2" architecture)
# --------------------------------------------------------------------------------------

# HF module path (as it appears in node names) -> GGUF tensor name (blk.N.<name>)
_LAYER_ROLES = {
    ("self_attn/q_proj", "MatMul"): "attn_q.weight",
    ("self_attn/k_proj", "MatMul"): "attn_k.weight",
    ("self_attn/v_proj", "MatMul"): "attn_v.weight",
    ("self_attn/o_proj", "MatMul"): "attn_output.weight",
    ("self_attn/q_proj", "Add"): "attn_q.bias",
    ("self_attn/k_proj", "Add"): "attn_k.bias",
    ("self_attn/v_proj", "Add"): "attn_v.bias",
    ("mlp/gate_proj", "MatMul"): "ffn_gate.weight",
    ("mlp/up_proj", "MatMul"): "ffn_up.weight",
    ("mlp/down_proj", "MatMul"): "ffn_down.weight",
    ("input_layernorm", "Mul"): "attn_norm.weight",
    ("post_attention_layernorm", "Mul"): "ffn_norm.weight",
}
_NODE = re.compile(r"layers\.(\d+)/(self_attn/[qkvo]_proj|mlp/(?:gate|up|down)_proj|input_layernorm|post_attention_layernorm)/")


def onnx_roles(model_path: Path) -> tuple[dict, dict]:
    """({gguf tensor name: numpy array in GGUF's [out, in] order}, HF config as far as the graph tells)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model_path), load_external_data=True)
    inits = {i.name: i for i in m.graph.initializer}
    src = {n: n for n in inits}
    for n in m.graph.node:  # exporters alias shared initializers through Identity
        if n.op_type == "Identity" and n.input and n.input[0] in src:
            src[n.output[0]] = src[n.input[0]]
    out: dict[str, np.ndarray] = {}

    def put(name, init_name, transpose=False):
        a = numpy_helper.to_array(inits[src[init_name]]).astype(np.float32)
        a = np.ascontiguousarray(a.T if transpose else a)
        if name in out and not np.array_equal(out[name], a):
            raise ValueError(f"{model_path}: two different tensors for GGUF '{name}'")
        out[name] = a

    for n in m.graph.node:
        consts = [x for x in n.input if x in src]
        if not consts:
            continue
        if n.op_type == "Gather" and "embed_tokens" in n.name:
            put("token_embd.weight", consts[0])
        elif n.op_type == "MatMul" and "lm_head" in n.name:
            put("output.weight", consts[0], transpose=True)
        elif n.op_type == "Mul" and re.search(r"/norm/Mul", n.name) and "layers." not in n.name:
            put("output_norm.weight", consts[0])
        else:
            mm = _NODE.search(n.name)
            if not mm:
                continue
            role = _LAYER_ROLES.get((mm.group(2), n.op_type))
            if role is None:
                continue
            a = numpy_helper.to_array(inits[src[consts[0]]])
            if role.endswith("norm.weight") and a.ndim != 1:
                continue  # the RMSNorm's other Mul (x * rsqrt) has no weight initializer
            put(f"blk.{mm.group(1)}.{role}", consts[0], transpose=n.op_type == "MatMul")
    layers = sorted({int(k.split(".")[1]) for k in out if k.startswith("blk.")})
    if not layers or "token_embd.weight" not in out:
        raise ValueError(f"{model_path}: no Qwen2 layers found by node names (need an HF-module-named export)")
    missing = [f"blk.{l}.{r}" for l in layers for r in _LAYER_ROLES.values() if f"blk.{l}.{r}" not in out]
    if missing:
        raise ValueError(f"{model_path}: tensors not found in the graph: {', '.join(missing[:6])}")
    cfg_path = model_path.parent / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    return out, cfg


def write_gguf(model_path: Path, gguf_path: Path) -> None:
    """An F32 GGUF of the ONNX model (llama.cpp arch qwen2), with a synthetic vocabulary of the
    right size (byte tokens, then <tN>): the benchmark feeds token ids, never text."""
    import gguf

    t, cfg = onnx_roles(model_path)
    vocab, hidden = t["token_embd.weight"].shape
    n_layers = 1 + max(int(k.split(".")[1]) for k in t if k.startswith("blk."))
    kv_dim = t["blk.0.attn_k.weight"].shape[0]
    n_heads = int(cfg.get("num_attention_heads", 0))
    n_kv = int(cfg.get("num_key_value_heads", 0))
    if not n_heads or not n_kv or hidden // n_heads * n_kv != kv_dim:
        raise ValueError(f"{model_path}: config.json next to it must give num_attention_heads / num_key_value_heads")
    w = gguf.GGUFWriter(str(gguf_path), "qwen2")
    w.add_name(model_path.parent.name)
    w.add_context_length(int(cfg.get("max_position_embeddings", 32768)))
    w.add_embedding_length(hidden)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(t["blk.0.ffn_up.weight"].shape[0])
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 1e6)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = [f"<0x{i:02X}>".encode() for i in range(256)] + [f"<t{i}>".encode() for i in range(256, vocab)]
    types = [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (vocab - 256)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types(types)
    w.add_bos_token_id(int(cfg.get("bos_token_id", vocab - 1)) % vocab)
    w.add_eos_token_id(int(cfg.get("eos_token_id", vocab - 1)) % vocab)
    for name in sorted(t, key=lambda k: (k.startswith("blk."), k)):
        w.add_tensor(name, t[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_quantize(f32_gguf: Path, out: Path, ftype: str) -> None:
    """llama.cpp's quantizer (the `llama-quantize` defaults: Q4_0 keeps output.weight in Q6_K)."""
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[ftype]
    p.nthread = 0
    rc = llama_cpp.llama_model_quantize(str(f32_gguf).encode(), str(out).encode(), p)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({f32_gguf} -> {ftype}) returned {rc}")


def prepare_llama(model_path: Path, out_dir: Path, kinds) -> dict:
    """{kind: gguf path} for kinds among F32, Q8_0, Q4_0 (written once, then reused)."""
    f32 = out_dir / "model-f32.gguf"
    if not f32.is_file():
        log(f"[peers] writing {f32} ...")
        tmp = f32.with_suffix(".tmp")
        write_gguf(model_path, tmp)
        tmp.rename(f32)
    paths = {"F32": f32}
    for k in kinds:
        if k == "F32":
            continue
        p = out_dir / f"model-{k.lower()}.gguf"
        if not p.is_file():
            log(f"[peers] llama.cpp quantize {k} ...")
            tmp = p.with_suffix(".tmp")
            llama_quantize(f32, tmp, k)
            tmp.rename(p)
        paths[k] = p
    return {k: paths[k] for k in kinds}


def llama_worker(spec: dict) -> dict:
    """Child process: greedy generation with llama-cpp-python, timings like ort_worker's."""
    import llama_cpp

    t0 = time.perf_counter()
    n_ctx = len(spec["prompt_ids"]) + spec["new_tokens"] + 8
    llm = llama_cpp.Llama(model_path=spec["model"], n_ctx=n_ctx, n_batch=max(512, len(spec["prompt_ids"])),
                          n_ubatch=max(512, len(spec["prompt_ids"])), n_threads=spec["threads"],
                          n_threads_batch=spec["threads"], logits_all=False, verbose=False, use_mmap=True)
    load_s = time.perf_counter() - t0
    N = spec["new_tokens"]
    n_vocab = llm.n_vocab()

    def next_id():  # greedy on the last position's logits (Llama.scores is only kept with logits_all)
        p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(p, shape=(n_vocab,))))

    def one_run():
        llm.reset()  # n_tokens = 0: the next eval overwrites the KV cache from position 0
        t = time.perf_counter()
        llm.eval(spec["prompt_ids"])
        t_prefill = time.perf_counter() - t
        ids = [next_id()]
        t = time.perf_counter()
        for _ in range(1, N):
            llm.eval([ids[-1]])
            ids.append(next_id())
        return dict(prefill_s=t_prefill, decode_s=time.perf_counter() - t, decode_steps=N - 1, ids=ids)

    runs = []
    for i in range(spec["warmup"] + spec["runs"]):
        r = one_run()
        r["warmup"] = i < spec["warmup"]
        runs.append(r)
        log(f"  llama.cpp run {i}{' (warm-up)' if r['warmup'] else ''}: prefill {r['prefill_s'] * 1e3:.0f} ms, "
            f"decode {r['decode_s'] * 1e3:.0f} ms / {r['decode_steps']} steps")
    return dict(load_s=load_s, runs=runs, version=getattr(llama_cpp, "__version__", "?"), threads=spec["threads"])


# --------------------------------------------------------------------------------------
# onnxruntime quantized models
# --------------------------------------------------------------------------------------


def prepare_ort(model_path: Path, out_dir: Path, kind: str, nbits_block: int = 32) -> Path:
    """The int8 (dynamic) or 4-bit (MatMulNBits, accuracy_level 4) ONNX model, written once."""
    import onnx

    name = {"int8": "model-ort-int8.onnx", "nbits": f"model-ort-int4-b{nbits_block}.onnx"}[kind]
    out = out_dir / name
    if out.is_file():
        return out
    log(f"[peers] onnxruntime {kind} model -> {out} ...")
    if kind == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(model_path), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], use_external_data_format=True)
    else:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        q = MatMulNBitsQuantizer(onnx.load(str(model_path)), block_size=nbits_block, is_symmetric=True,
                                 accuracy_level=4)
        q.process()
        q.model.save_model_to_file(str(out), use_external_data_format=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--gguf":
        write_gguf(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--_llama-worker":
        print(json.dumps(llama_worker(json.loads(sys.argv[2]))))
    else:
        sys.exit(__doc__)
