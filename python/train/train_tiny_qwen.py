#!/usr/bin/env python3
"""Train a small Qwen2 language model on the Python documentation and export it to ONNX.

A model worth measuring on for the quantization work: real (if small) weights, its own byte-level
BPE tokenizer, a calibration text and a held-out text kept apart from the training text, and the
fp32 held-out perplexity every quantized variant is compared with.

Usage (from the repository root; the defaults take ~6-10 min on 2 quiet cores, ~30 min on 2 cores
shared with builds):

    apt-get install -y python3.11-doc          # the training data (Debian package)
    nice -n 5 .venv-fixtures/bin/python python/train/train_tiny_qwen.py --out models/tiny-qwen2-docs

(.venv-fixtures is created by scripts/make-fixtures.sh from python/fixtures/requirements.txt;
QWEN_FIXTURES_VENV=/work/fixenv or any venv with the same pins works too.)

Steps:
  1. data: the reST sources of the Python 3.11 documentation (/usr/share/doc/python3.11/html/_sources),
     markup stripped to prose, files in sorted order. Split by FILE (ranked by sha256 of the
     relative path): held-out (~150 KB) and calibration (~75 KB) first, all others train.
  2. tokenizer: byte-level BPE (HF `tokenizers`, ByteLevel pre-tokenizer / decoder as GPT-2 and
     Qwen), 4096 tokens, `<|endoftext|>` = id 0, trained on the training files only.
  3. model: transformers Qwen2ForCausalLM (hidden 256, 4 layers, 8 q / 2 kv heads, MLP 704, tied
     embeddings, rope theta 1e4, 512 positions), AdamW + warmup + cosine, random 256-token windows
     of the training stream (documents separated by <|endoftext|>).
  4. eval: token-level perplexity of heldout.txt (and calib.txt) in non-overlapping 256-token windows,
     scoring the second half of each window (as llama.cpp's perplexity) and every position.
  5. export: TorchScript exporter with a KV cache exactly like the *-torchscript-kvcache fixtures
     (python/fixtures/make_fixtures.py), checked against torch with onnxruntime.

Deterministic: fixed seeds, torch.use_deterministic_algorithms(True), a fixed thread count; the
same command gives the same weights (the sha256 of the state dict is in metrics.json).
Writes into --out: model.onnx, tokenizer.json, config.json, calib.txt, heldout.txt, metrics.json.
The training text and a checkpoint go to --work (not for committing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

try:
    import numpy as np
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
except ImportError as e:  # pragma: no cover - environment message
    venv = os.environ.get("QWEN_FIXTURES_VENV", ".venv-fixtures")
    vpy = Path(venv if os.path.isabs(venv) else REPO / venv) / "bin" / "python"
    if vpy.is_file() and not os.environ.get("QWEN_TRAIN_REEXEC"):
        os.environ["QWEN_TRAIN_REEXEC"] = "1"
        os.execv(str(vpy), [str(vpy), *sys.argv])
    sys.exit(
        f"train_tiny_qwen.py needs torch, transformers, tokenizers, onnx, onnxruntime ({e}).\n"
        f"Create the fixtures venv with scripts/make-fixtures.sh, or:\n"
        f"  python3 -m venv {venv} && {venv}/bin/pip install -r python/fixtures/requirements.txt"
    )

sys.path.insert(0, str(REPO / "python" / "fixtures"))
import make_fixtures as mf  # noqa: E402  (KVCacheWrapper, export_torchscript, kv_names, ...)

DOCS_PACKAGE = "python3.11-doc"
DOCS_DIR = Path("/usr/share/doc/python3.11/html/_sources")
# Folders of the docs used (c-api: mostly C declarations; distutils: deprecated; includes: snippets).
SKIP_DIRS = {"c-api", "distutils", "includes"}
HELDOUT_BYTES = 150_000
CALIB_BYTES = 75_000
SPLIT_MAX_FILE_BYTES = 40_000  # held-out / calibration take only files up to this size (variety)

VOCAB = 4096
EOS = "<|endoftext|>"
MODEL = dict(
    vocab_size=VOCAB,
    hidden_size=256,
    intermediate_size=704,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
EVAL_WINDOW = 256


def log(msg: str) -> None:
    print(f"[train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------
# Data: reST -> prose
# --------------------------------------------------------------------------------------

# Directives whose whole body is dropped (code, tables, indexes, navigation).
_DROP_DIRECTIVES = {
    "code-block", "sourcecode", "code", "doctest", "testcode", "testoutput", "testsetup",
    "testcleanup", "productionlist", "toctree", "highlight", "index", "sectionauthor",
    "moduleauthor", "literalinclude", "image", "figure", "raw", "csv-table", "list-table",
    "table", "tabularcolumns", "audit-event", "audit-event-table", "include", "digraph",
    "graphviz", "availability", "impl-detail", "opcode", "cmdoption", "option", "envvar",
    "program", "currentmodule", "module", "default-role", "role", "c:function", "c:type",
    "c:macro", "c:member", "c:var", "c:data", "limited-api-list", "miscnews", "unicode",
    "only", "literalinclude", "pdb-command", "2to3fixer", "productionlist", "rst-class",
    "container", "glossary",
}
# Object descriptions: the signature becomes its own line, the body is kept.
_SIGNATURE_DIRECTIVES = {
    "function", "method", "class", "attribute", "data", "exception", "decorator",
    "decoratormethod", "classmethod", "staticmethod", "coroutinefunction", "coroutinemethod",
    "abstractmethod", "describe", "property",
}
_VERSION_TEXT = {"versionadded": "New in version", "versionchanged": "Changed in version",
                 "deprecated": "Deprecated since version", "deprecated-removed": "Deprecated since version"}

_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
_COMMENT = re.compile(r"^(\s*)\.\.(\s|$)")
_ADORN = re.compile(r"^\s*([=\-~^*#+\"'`.:_])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:-]+:`([^`]*)`")
_LINK = re.compile(r"`([^`<]*?)\s*<[^>`]*>`_{1,2}")
_REF = re.compile(r"`([^`]+)`_{1,2}")
_LIT = re.compile(r"``(.+?)``")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EMPH = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
_INTERP = re.compile(r"`([^`]+)`")
_SUBST = re.compile(r"\|(\w[\w ]*)\|")
_FOOTREF = re.compile(r"\s*\[(#\w*|\d+)\]_")


def _role_text(m: re.Match) -> str:
    t = m.group(1)
    t = t.lstrip("!")
    mm = re.match(r"^(.*?)\s*<[^>]*>$", t, re.S)
    if mm and mm.group(1):
        return mm.group(1)
    if t.startswith("~"):
        return t[1:].split(".")[-1]
    return t


def inline(text: str) -> str:
    text = _ROLE.sub(_role_text, text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _REF.sub(lambda m: m.group(1), text)
    text = _LIT.sub(lambda m: m.group(1), text)
    text = _STRONG.sub(lambda m: m.group(1), text)
    text = _EMPH.sub(lambda m: m.group(1), text)
    text = _INTERP.sub(lambda m: m.group(1), text)
    text = _SUBST.sub(lambda m: m.group(1), text)
    text = _FOOTREF.sub("", text)
    text = text.replace("\\ ", "").replace("\\*", "*").replace("\\", "")
    return re.sub(r"[ \t]+", " ", text).strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rst_to_prose(src: str) -> str:
    """Reasonable reST -> plain paragraphs (one paragraph per line, blank line between)."""
    lines = src.expandtabs(8).splitlines()
    out: list[str] = []  # logical lines ("" = paragraph break)
    i, n = 0, len(lines)
    skip_indent = None  # drop lines indented more than this (bodies of dropped blocks)
    while i < n:
        line = lines[i].rstrip()
        ind = _indent(line)
        if skip_indent is not None:
            if not line.strip() or ind > skip_indent:
                i += 1
                continue
            skip_indent = None
            out.append("")
        if not line.strip():
            out.append("")
            i += 1
            continue
        s = line.strip()
        m = _DIRECTIVE.match(line)
        if m:
            name, arg = m.group(2), m.group(3)
            # skip the option lines ("   :noindex:") right after the directive
            j = i + 1
            while j < n and lines[j].strip().startswith(":") and _indent(lines[j]) > ind and lines[j].strip():
                if re.match(r"^:[\w-]+:(\s|$)", lines[j].strip()):
                    j += 1
                else:
                    break
            base = name.split(":")[-1]
            if name in _DROP_DIRECTIVES or base in _DROP_DIRECTIVES:
                skip_indent = ind
            elif base in _SIGNATURE_DIRECTIVES or name.startswith("py:"):
                if arg:
                    out += ["", inline(arg), ""]
                # continued signature lines (indented, non-blank, directly after)
            elif name in _VERSION_TEXT:
                ver = arg.split(",")[0].split()[0] if arg.split() else ""
                rest = arg[len(arg.split()[0]):].strip() if arg.split() else ""
                out += ["", f"{_VERSION_TEXT[name]} {ver}." + (f" {inline(rest)}" if rest else "")]
            elif arg and name in {"note", "warning", "seealso", "important", "tip", "caution",
                                  "attention", "danger", "hint", "topic", "rubric", "admonition"}:
                out += ["", inline(arg)]
            i = j
            continue
        if _COMMENT.match(line):  # comments, link targets, footnotes, substitutions
            if re.match(r"^\s*\.\.\s+\[(#\w*|\d+)\]\s+", line):  # footnote: keep its text
                out += ["", inline(re.sub(r"^\s*\.\.\s+\[(#\w*|\d+)\]\s+", "", line))]
                i += 1
                continue
            skip_indent = ind
            i += 1
            continue
        if _ADORN.match(line):
            i += 1
            continue
        if s.startswith((">>>", "... ", "+--", "+==", "|")) or s == "...":
            i += 1
            continue
        if re.match(r"^=+(\s+=+)+$", s):  # simple table borders
            skip_indent = ind - 1  # drop the table: everything up to the next blank line
            j = i + 1
            while j < n and lines[j].strip():
                j += 1
            i = j
            skip_indent = None
            continue
        # literal block introduced by "::"
        if s.endswith("::"):
            txt = s[:-2].rstrip()
            if txt:
                out.append(inline(txt) + ":")
            j = i + 1
            while j < n and not lines[j].strip():
                j += 1
            if j < n and _indent(lines[j]) > ind:
                skip_indent = ind
            i += 1
            continue
        # list items / field lists start a new paragraph
        if re.match(r"^([*+-]|#\.|\d+\.)\s+", s) or re.match(r"^:[\w -]+:(\s|$)", s):
            out.append("")
            s = re.sub(r"^:([\w -]+):(\s|$)", r"\1: ", s)
        out.append(inline(s))
        i += 1
    # join logical lines into paragraphs
    paras, cur = [], []
    for l in out:
        if l:
            cur.append(l)
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    keep = []
    for p in paras:
        p = p.strip()
        letters = sum(c.isalpha() for c in p)
        if len(p) < 3 or letters < 0.5 * len(p):  # leftover code / symbols
            continue
        keep.append(p)
    return "\n\n".join(keep) + "\n"


def package_version(name: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def load_docs(docs: Path) -> list[tuple[str, str]]:
    if not docs.is_dir():
        sys.exit(f"{docs} not found: install the training data with `apt-get install -y {DOCS_PACKAGE}`")
    files = sorted(p for p in docs.rglob("*.txt") if p.relative_to(docs).parts[0] not in SKIP_DIRS)
    out = []
    for p in files:
        rel = p.relative_to(docs).as_posix()
        text = rst_to_prose(p.read_text(encoding="utf-8"))
        if len(text) > 200:
            out.append((rel, text))
    return out


def split_docs(docs: list[tuple[str, str]]):
    """By file: rank by sha256(path); held-out first, then calibration, the rest is train."""
    ranked = sorted(docs, key=lambda d: hashlib.sha256(d[0].encode()).hexdigest())
    held, calib, used = [], [], set()
    for target, dst in ((HELDOUT_BYTES, held), (CALIB_BYTES, calib)):
        size = 0
        for rel, text in ranked:
            if size >= target:
                break
            b = len(text.encode())
            if rel in used or b > SPLIT_MAX_FILE_BYTES or size + b > target * 1.3:
                continue
            dst.append((rel, text))
            used.add(rel)
            size += b
    train = [d for d in docs if d[0] not in used]  # sorted order
    held.sort()
    calib.sort()
    return train, calib, held


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id(EOS) == 0 and tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    return tok


# --------------------------------------------------------------------------------------
# Model, training, evaluation
# --------------------------------------------------------------------------------------


def set_determinism(seed: int, threads: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def make_config(attn: str) -> transformers.Qwen2Config:
    cfg = transformers.Qwen2Config(
        **MODEL,
        hidden_act="silu",
        use_sliding_window=False,
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,
        torch_dtype="float32",
    )
    cfg._attn_implementation = attn
    return cfg


def state_hash(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def lr_at(step: int, steps: int, peak: float, warmup: int, floor: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return floor * peak + (1 - floor) * peak * 0.5 * (1 + math.cos(math.pi * t))


def train(model, ids: np.ndarray, a) -> dict:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False,
    )
    data = torch.from_numpy(ids.astype(np.int64))
    gen = torch.Generator().manual_seed(a.seed + 1)
    hi = len(data) - a.seq - 1
    losses, curve = [], []
    t0 = time.time()
    model.train()
    for step in range(a.steps):
        lr = lr_at(step, a.steps, a.lr, a.warmup, 0.1)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, hi, (a.batch,), generator=gen)
        x = torch.stack([data[s : s + a.seq + 1] for s in starts.tolist()])
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % a.log_every == 0 or step + 1 == a.steps:
            m = float(np.mean(losses[-a.log_every :]))
            el = time.time() - t0
            curve.append({"step": step + 1, "loss": round(m, 4), "lr": round(lr, 6), "elapsed_s": round(el, 1)})
            log(f"step {step + 1}/{a.steps} loss {m:.4f} lr {lr:.2e} {el:.0f}s "
                f"({(step + 1) * a.batch * a.seq / el:.0f} tok/s)")
    model.eval()
    return {"wall_s": round(time.time() - t0, 1), "curve": curve, "final_loss": curve[-1]["loss"] if curve else None}


@torch.no_grad()
def perplexity(model, ids: np.ndarray, window: int = EVAL_WINDOW) -> dict:
    """Non-overlapping windows; 'half' scores the second half of each window (llama.cpp style)."""
    model.eval()
    n_win = len(ids) // window
    nll_half = nll_full = 0.0
    cnt_half = cnt_full = 0
    for w in range(n_win):
        x = torch.from_numpy(ids[w * window : (w + 1) * window].astype(np.int64))[None]
        logits = model(input_ids=x, use_cache=False).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        tok_nll = -lp.gather(1, x[0, 1:, None]).squeeze(1)  # predicts positions 1..window-1
        nll_full += tok_nll.sum().item()
        cnt_full += tok_nll.numel()
        half = tok_nll[window // 2 - 1 :]  # predictions of positions window/2 .. window-1
        nll_half += half.sum().item()
        cnt_half += half.numel()
    return {
        "tokens": int(len(ids)),
        "windows": n_win,
        "window": window,
        "ppl_second_half": round(math.exp(nll_half / cnt_half), 4),
        "scored_second_half": cnt_half,
        "ppl_full_window": round(math.exp(nll_full / cnt_full), 4),
        "scored_full_window": cnt_full,
    }


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


def export_onnx(model, path: Path) -> dict:
    cfg = model.config
    # make_fixtures' module globals drive the example inputs and the KV names of its export.
    mf.VOCAB = cfg.vocab_size
    mf.HIDDEN = cfg.hidden_size
    mf.INTERMEDIATE = cfg.intermediate_size
    mf.LAYERS = cfg.num_hidden_layers
    mf.HEADS = cfg.num_attention_heads
    mf.KV_HEADS = cfg.num_key_value_heads
    mf.HEAD_DIM = cfg.hidden_size // cfg.num_attention_heads
    mf.MAX_POS = cfg.max_position_embeddings
    model.config._attn_implementation = "eager"
    mf.export_torchscript(model, path, with_cache=True)
    # onnxruntime vs torch: a prefill with a past (random ids and KV, like the fixtures) ...
    wrapper = mf.KVCacheWrapper(model).eval()
    feeds = mf.make_inputs(1, 8, 5, True)
    ref = mf.torch_reference(wrapper, feeds, True)
    _, got = mf.run_ort(path, feeds)
    d_past = max(mf.max_diff(got, ref).values())
    # ... and a real prompt from an empty cache against the plain model
    ids = np.array([[17, 345, 1000, 88, 2048, 4095, 3, 777, 1234, 0, 42]], np.int64)
    past_names, _ = mf.kv_names(mf.LAYERS)
    f2 = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(ids.shape[1])[None]}
    for nm in past_names:
        f2[nm] = np.zeros((1, mf.KV_HEADS, 0, mf.HEAD_DIM), np.float32)
    _, got2 = mf.run_ort(path, f2)
    with torch.no_grad():
        ref2 = model(input_ids=torch.from_numpy(ids), use_cache=False).logits.numpy()
    d_empty = float(np.max(np.abs(got2["logits"] - ref2)))
    return {"ort_vs_torch_max_abs_diff_with_past": d_past, "ort_vs_torch_max_abs_logits_diff_empty_cache": d_empty,
            "onnx_bytes": path.stat().st_size, "opset": mf.TS_OPSET, "exporter": "torch.onnx TorchScript (dynamo=False)"}


@torch.no_grad()
def greedy(model, tok: Tokenizer, prompt: str, n: int) -> str:
    ids = tok.encode(prompt).ids
    for _ in range(n):
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        nxt = int(torch.argmax(logits))
        if nxt == 0:
            break
        ids.append(nxt)
    return tok.decode(ids)


# --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "tiny-qwen2-docs")
    ap.add_argument("--work", type=Path, default=REPO / "out" / "tiny-qwen2-docs-work",
                    help="training text, token cache and checkpoint (not for committing)")
    ap.add_argument("--docs", type=Path, default=DOCS_DIR)
    ap.add_argument("--steps", type=int, default=720)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=40)
    ap.add_argument("--no-export", action="store_true", help="stop after training + evaluation")
    a = ap.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    transformers.logging.set_verbosity_error()
    set_determinism(a.seed, a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    t_all = time.time()

    # 1. data
    docs = load_docs(a.docs)
    train_docs, calib_docs, held_docs = split_docs(docs)
    calib_txt = "\n".join(t for _, t in calib_docs)
    held_txt = "\n".join(t for _, t in held_docs)
    (a.out / "calib.txt").write_text(calib_txt, encoding="utf-8")
    (a.out / "heldout.txt").write_text(held_txt, encoding="utf-8")
    (a.work / "train.txt").write_text(f"\n{EOS}\n".join(t for _, t in train_docs), encoding="utf-8")
    train_bytes = sum(len(t.encode()) for _, t in train_docs)
    log(f"docs: {len(docs)} files; train {len(train_docs)} ({train_bytes} B), calib {len(calib_docs)} "
        f"({len(calib_txt.encode())} B), held-out {len(held_docs)} ({len(held_txt.encode())} B)")

    # 2. tokenizer (training files only)
    tok = train_tokenizer([t for _, t in train_docs])
    tok.save(str(a.out / "tokenizer.json"))
    tok_hash = hashlib.sha256((a.out / "tokenizer.json").read_bytes()).hexdigest()
    for name, txt in (("calib", calib_txt), ("heldout", held_txt)):
        assert tok.decode(tok.encode(txt).ids) == txt, f"{name}: tokenizer round trip failed"
    train_ids = []
    for i, (_, t) in enumerate(train_docs):
        if i:
            train_ids.append(0)
        train_ids.extend(tok.encode(t).ids)
    train_ids = np.array(train_ids, np.uint16)
    calib_ids = np.array(tok.encode(calib_txt).ids, np.uint16)
    held_ids = np.array(tok.encode(held_txt).ids, np.uint16)
    log(f"tokenizer: {tok.get_vocab_size()} tokens; train {len(train_ids)} tokens "
        f"({train_bytes / len(train_ids):.2f} B/token), calib {len(calib_ids)}, held-out {len(held_ids)}")

    # 3. model + training
    set_determinism(a.seed, a.threads)
    model = transformers.Qwen2ForCausalLM(make_config("sdpa")).float()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params} parameters; {a.steps} steps x {a.batch} x {a.seq} tokens "
        f"({a.steps * a.batch * a.seq / len(train_ids):.2f} epochs)")
    tr = train(model, train_ids, a)
    digest = state_hash(model)
    log(f"trained in {tr['wall_s']}s; state dict sha256 {digest}")
    torch.save(model.state_dict(), a.work / "model.pt")

    # 4. eval (eager attention, the exported form)
    model.config._attn_implementation = "eager"
    t_eval = time.time()
    ev = {"heldout": perplexity(model, held_ids), "calib": perplexity(model, calib_ids)}
    log(f"held-out ppl {ev['heldout']['ppl_second_half']} (second half), "
        f"{ev['heldout']['ppl_full_window']} (full window); calib {ev['calib']['ppl_second_half']} "
        f"({time.time() - t_eval:.0f}s)")
    samples = {p: greedy(model, tok, p, 40) for p in ("The list type", "In Python,", "The module")}
    for p, s in samples.items():
        log(f"greedy: {s!r}")

    # 5. export
    exp = {}
    if not a.no_export:
        exp = export_onnx(model, a.out / "model.onnx")
        log(f"exported {a.out / 'model.onnx'} ({exp['onnx_bytes']} B); ort vs torch "
            f"{exp['ort_vs_torch_max_abs_diff_with_past']:.2e} / {exp['ort_vs_torch_max_abs_logits_diff_empty_cache']:.2e}")
    cfg = make_config("eager")
    d = cfg.to_dict()
    d["architectures"] = ["Qwen2ForCausalLM"]
    (a.out / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")

    curve = tr["curve"]
    pick = sorted({0, len(curve) // 4, len(curve) // 2, 3 * len(curve) // 4, len(curve) - 1}) if curve else []
    metrics = {
        "model": {"architecture": "Qwen2ForCausalLM", "parameters": n_params, **MODEL},
        "data": {
            "package": DOCS_PACKAGE,
            "package_version": package_version(DOCS_PACKAGE),
            "source": str(a.docs),
            "folders_skipped": sorted(SKIP_DIRS),
            "split": "by file, ranked by sha256(relative path): held-out first, then calibration, the rest train",
            "train_files": len(train_docs),
            "train_bytes": train_bytes,
            "train_tokens": int(len(train_ids)),
            "calib_files": [r for r, _ in calib_docs],
            "calib_bytes": len(calib_txt.encode()),
            "calib_tokens": int(len(calib_ids)),
            "heldout_files": [r for r, _ in held_docs],
            "heldout_bytes": len(held_txt.encode()),
            "heldout_tokens": int(len(held_ids)),
        },
        "tokenizer": {"type": "byte-level BPE (HF tokenizers)", "vocab_size": tok.get_vocab_size(),
                      "special_tokens": {EOS: 0}, "sha256": tok_hash},
        "training": {
            "steps": a.steps, "batch": a.batch, "seq_len": a.seq,
            "tokens_seen": a.steps * a.batch * a.seq,
            "epochs": round(a.steps * a.batch * a.seq / len(train_ids), 3),
            "optimizer": "AdamW(betas=(0.9, 0.95), eps=1e-8), weight decay on matrices, grad clip 1.0",
            "lr_peak": a.lr, "warmup_steps": a.warmup, "schedule": "linear warmup, cosine to 10% of peak",
            "weight_decay": a.weight_decay, "seed": a.seed, "threads": a.threads,
            "wall_s": tr["wall_s"],
            "loss_first": curve[0]["loss"] if curve else None,
            "loss_final": tr["final_loss"],
            "loss_curve": [curve[i] for i in pick],
            "loss_curve_every": a.log_every,
            "loss_curve_full": [c["loss"] for c in curve],
            "state_dict_sha256": digest,
        },
        "eval_fp32": ev,
        "greedy_samples_torch": samples,
        "export": exp,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "tokenizers": __import__("tokenizers").__version__,
                     "onnx": __import__("onnx").__version__, "onnxruntime": __import__("onnxruntime").__version__},
        "command": "python/train/train_tiny_qwen.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "total_wall_s": round(time.time() - t_all, 1),
    }
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"wrote {a.out}: {', '.join(sorted(p.name for p in a.out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
