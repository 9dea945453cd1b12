#!/usr/bin/env python3
"""Build a random-weight Qwen2 model of a real shape and export it to ONNX with KV cache.

Usage (from the repository root):

    $QWEN_FIXTURES_VENV/bin/python bench/make_model.py --config qwen2.5-0.5b --out bench/out/qwen2.5-0.5b/
    $QWEN_FIXTURES_VENV/bin/python bench/make_model.py --config tiny --out bench/out/tiny/

Needs torch + transformers + onnx (+ onnxruntime for the check).  They live in the fixtures venv
(QWEN_FIXTURES_VENV, default .venv-fixtures; a python without torch re-runs the script with that
venv's python when it exists), which `scripts/make-fixtures.sh` creates from
python/fixtures/requirements.txt; or create it by hand:

    python3 -m venv .venv-fixtures && .venv-fixtures/bin/pip install -r python/fixtures/requirements.txt

The export is the one of our `*-torchscript-kvcache` fixtures (python/fixtures/make_fixtures.py:
torch.onnx TorchScript exporter, opset 17, eager attention, DynamicCache built from flat past
tensors): inputs input_ids, attention_mask, position_ids, past_key_values.N.key/value; outputs
logits, present.N.key/value.  Weights: transformers' default init (normal, std =
initializer_range, biases 0, norms 1) with a fixed seed, rounded through bf16 like a real
checkpoint upcast to fp32 (--no-bf16-round keeps the raw fp32 draw).  The 0.5B model (~2 GB fp32)
is written as model.onnx + one external data file model.onnx.data; `tiny` as one file.

Writes into --out: model.onnx (+ model.onnx.data), config.json (the HF config), meta.json
(parameter / initializer counts, export time, versions).  Takes a few minutes and ~6-8 GB RAM
for 0.5B on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

try:
    import numpy as np
    import onnx
    import torch
    import transformers
except ImportError as e:  # pragma: no cover - environment message
    venv = os.environ.get("QWEN_FIXTURES_VENV", ".venv-fixtures")
    vpy = Path(venv if os.path.isabs(venv) else REPO / venv) / "bin" / "python"
    if vpy.is_file() and not os.environ.get("QWEN_BENCH_REEXEC"):  # run again under the fixtures venv
        os.environ["QWEN_BENCH_REEXEC"] = "1"
        os.execv(str(vpy), [str(vpy), *sys.argv])
    sys.exit(
        f"bench/make_model.py needs torch, transformers and onnx ({e}).\n"
        f"Run it with the fixtures venv: {venv}/bin/python bench/make_model.py ...\n"
        f"Create that venv with scripts/make-fixtures.sh (it installs python/fixtures/requirements.txt), or:\n"
        f"  python3 -m venv {venv} && {venv}/bin/pip install -r python/fixtures/requirements.txt\n"
        f"(QWEN_FIXTURES_VENV selects another venv, e.g. QWEN_FIXTURES_VENV=/work/fixenv)"
    )

sys.path.insert(0, str(REPO / "python" / "fixtures"))
import make_fixtures as mf  # noqa: E402  (KVCacheWrapper, kv_names, torchscript_mask_patch)

# Shapes from /work/shared/TECHNIQUES.md and the public HF configs.
CONFIGS = {
    "qwen2.5-0.5b": dict(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151643,
    ),
    "qwen2.5-1.5b": dict(
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151643,
    ),
    # Untied embedding and LM head (152064 x 3584 each): ~30 GB of fp32 weights, so ~60 GB of RAM
    # to build and export; bench/bench_gpu.py passes --no-check.
    "qwen2.5-7b": dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
        bos_token_id=151643,
        eos_token_id=151643,
    ),
    # The shape of test/fixtures/onnx/qwen2-torchscript-kvcache.onnx (default init, though).
    "tiny": dict(
        vocab_size=mf.VOCAB,
        hidden_size=mf.HIDDEN,
        intermediate_size=mf.INTERMEDIATE,
        num_hidden_layers=mf.LAYERS,
        num_attention_heads=mf.HEADS,
        num_key_value_heads=mf.KV_HEADS,
        max_position_embeddings=mf.MAX_POS,
        rms_norm_eps=mf.RMS_EPS,
        rope_theta=mf.ROPE_THETA,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    ),
}

# Example shapes for tracing (batch 2 like the fixtures: batch 1 gets specialised).
EXPORT_BATCH, EXPORT_SEQ, EXPORT_PAST = 2, 8, 5


def log(msg: str) -> None:
    print(f"[make_model {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_model(name: str, seed: int, bf16_round: bool):
    kw = dict(CONFIGS[name])
    cfg = transformers.Qwen2Config(
        **kw,
        hidden_act="silu",
        use_sliding_window=False,
        attention_dropout=0.0,
        pad_token_id=None,
        torch_dtype="float32",
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = transformers.Qwen2ForCausalLM(cfg)  # transformers' own _init_weights, seeded
    model = model.float().eval()
    if bf16_round:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.config._attn_implementation = "eager"
    return model, cfg


def export(model, cfg, onnx_path: Path, work: Path) -> None:
    layers = cfg.num_hidden_layers
    kvh = cfg.num_key_value_heads
    hd = cfg.hidden_size // cfg.num_attention_heads
    wrapper = mf.KVCacheWrapper(model).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (EXPORT_BATCH, EXPORT_SEQ), generator=g)
    mask = torch.ones(EXPORT_BATCH, EXPORT_PAST + EXPORT_SEQ, dtype=torch.int64)
    pos = torch.arange(EXPORT_PAST, EXPORT_PAST + EXPORT_SEQ).repeat(EXPORT_BATCH, 1)
    past_names, present_names = mf.kv_names(layers)
    past = tuple(torch.randn(EXPORT_BATCH, kvh, EXPORT_PAST, hd, generator=g) for _ in past_names)
    dyn = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for n in past_names:
        dyn[n] = {0: "batch_size", 2: "past_sequence_length"}
    for n in present_names:
        dyn[n] = {0: "batch_size", 2: "total_sequence_length"}
    raw = work / "raw.onnx"
    with mf.torchscript_mask_patch(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask, pos, past),
            str(raw),
            dynamo=False,
            opset_version=mf.TS_OPSET,
            input_names=["input_ids", "attention_mask", "position_ids", *past_names],
            output_names=["logits", *present_names],
            dynamic_axes=dyn,
            do_constant_folding=True,
        )
    log(f"exported (raw files in the work folder: {len(list(work.iterdir()))})")
    # Whatever the exporter wrote (one file, or >2 GB: one file per tensor), rewrite it as
    # model.onnx + one external data file (or one self-contained file when small).
    m = mf._scrub(onnx.load(str(raw), load_external_data=True))
    total = sum(t.ByteSize() for t in m.graph.initializer)
    loc = onnx_path.name + ".data"
    for f in (onnx_path, onnx_path.parent / loc):
        f.unlink(missing_ok=True)
    if total > (256 << 20):
        onnx.save_model(
            m,
            str(onnx_path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=loc,
            size_threshold=1024,
        )
    else:
        onnx.save_model(m, str(onnx_path), save_as_external_data=False)
    del m


def count_initializers(onnx_path: Path) -> dict:
    m = onnx.load(str(onnx_path), load_external_data=False)
    n_params = 0
    for t in m.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            n_params += int(np.prod(t.dims, dtype=np.int64))
    return dict(initializers=len(m.graph.initializer), initializer_f32_elements=n_params, nodes=len(m.graph.node))


def check_with_ort(model, cfg, onnx_path: Path) -> float:
    """Max |ORT - torch| of the logits for a short prompt (no past), as a sanity check."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    layers = cfg.num_hidden_layers
    kvh = cfg.num_key_value_heads
    hd = cfg.hidden_size // cfg.num_attention_heads
    ids = np.random.RandomState(1).randint(0, cfg.vocab_size, size=(1, 6)).astype(np.int64)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones((1, 6), np.int64),
        "position_ids": np.arange(6, dtype=np.int64)[None],
    }
    past_names, _ = mf.kv_names(layers)
    for n in past_names:
        feeds[n] = np.zeros((1, kvh, 0, hd), np.float32)
    got = sess.run(["logits"], feeds)[0]
    del sess
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), use_cache=False).logits.numpy()
    return float(np.max(np.abs(got - ref)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
    ap.add_argument("--out", required=True, type=Path, help="output folder (model.onnx goes there)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-bf16-round", action="store_true", help="keep the fp32 init (no rounding through bf16)")
    ap.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-torch logits check")
    args = ap.parse_args(argv)

    torch.set_num_threads(os.cpu_count() or 1)
    transformers.logging.set_verbosity_error()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"

    t0 = time.time()
    log(f"building {args.config} (seed {args.seed}, bf16 round {not args.no_bf16_round})")
    model, cfg = build_model(args.config, args.seed, not args.no_bf16_round)
    n_torch = sum(p.numel() for p in model.parameters())  # tied weights counted once
    log(f"model: {n_torch / 1e6:.1f} M parameters ({4 * n_torch / 2**30:.2f} GiB fp32)")
    t1 = time.time()
    with tempfile.TemporaryDirectory(prefix="qwen_bench_export_", dir=out) as tmp:
        export(model, cfg, onnx_path, Path(tmp))
    t_export = time.time() - t1
    log(f"wrote {onnx_path} in {t_export:.0f}s")
    cfg.save_pretrained(out)  # config.json
    info = count_initializers(onnx_path)
    diff = None
    if not args.no_check:
        diff = check_with_ort(model, cfg, onnx_path)
        log(f"check: max |onnxruntime - torch| logits = {diff:.2e}")
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file() and p.name.startswith("model.onnx")}
    meta = dict(
        config=args.config,
        seed=args.seed,
        bf16_round=not args.no_bf16_round,
        torch_parameters=n_torch,
        **info,
        files=files,
        logits_max_abs_diff_ort_vs_torch=diff,
        export_seconds=round(t_export, 1),
        total_seconds=round(time.time() - t0, 1),
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, onnx=onnx.__version__),
    )
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"done: {json.dumps(files)}; initializers {info['initializers']} "
        f"({info['initializer_f32_elements'] / 1e6:.1f} M f32 elements), {info['nodes']} nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
