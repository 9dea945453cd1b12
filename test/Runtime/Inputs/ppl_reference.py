"""Independent chunked perplexity of an ONNX model with onnxruntime, for
checking qwen-eval.

    ppl_reference.py MODEL.onnx BUNDLE TEXT [--ctx N] [--chunks N]
                     [--compare QWEN_EVAL.json] [--rtol R]

The ids come from BUNDLE's tokenizer through the runtime's Python binding
(python/qwen_opt/runtime.py, no `tokenizers` package); the logits come from
onnxruntime running MODEL.onnx (one forward of each whole chunk, empty past
key/values). The scoring is llama.cpp's `perplexity`: chunks of ctx tokens,
the logits at positions ctx/2 .. ctx-2 predicting the next token, NLL from a
log-softmax in float64, perplexity = exp(mean NLL).

With --compare, the tokens scored must equal the JSON's "tokens_scored" and
the perplexity must agree with its "perplexity" within --rtol (relative);
prints PASS or FAIL (exit 1).
"""

import argparse
import json
import math
import sys

import numpy as np
import onnxruntime as ort

from qwen_opt.runtime import Bundle


def feeds_for(sess, ids):
    n = len(ids)
    feeds = {}
    for inp in sess.get_inputs():
        name = inp.name
        if name == "input_ids":
            feeds[name] = np.asarray([ids], dtype=np.int64)
        elif name == "attention_mask":
            feeds[name] = np.ones((1, n), dtype=np.int64)
        elif name == "position_ids":
            feeds[name] = np.arange(n, dtype=np.int64).reshape(1, n)
        elif name.startswith("past_key_values"):
            # [batch, kv_heads, past_seq, head_dim] with batch 1, past 0.
            shape = [d if isinstance(d, int) else 0 for d in inp.shape]
            shape[0] = 1
            feeds[name] = np.zeros(shape, dtype=np.float32)
        else:
            sys.exit(f"ppl_reference.py: unexpected model input '{name}'")
    return feeds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("bundle")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--compare")
    ap.add_argument("--rtol", type=float, default=1e-4)
    a = ap.parse_args()

    with open(a.text, "rb") as f:
        text = f.read().decode("utf-8")
    ids = Bundle(a.bundle).tokenize(text)
    n_chunks = len(ids) // a.ctx
    if a.chunks > 0:
        n_chunks = min(n_chunks, a.chunks)
    if n_chunks < 1:
        sys.exit("ppl_reference.py: not even one chunk")

    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    logits_name = next(o.name for o in sess.get_outputs() if o.name == "logits")
    first = a.ctx // 2
    nll_sum, scored = 0.0, 0
    for c in range(n_chunks):
        chunk = ids[c * a.ctx:(c + 1) * a.ctx]
        (logits,) = sess.run([logits_name], feeds_for(sess, chunk))
        x = logits[0, first:a.ctx - 1].astype(np.float64)  # [n, V]
        m = x.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
        targets = np.asarray(chunk[first + 1:a.ctx])
        nll = lse - x[np.arange(len(targets)), targets]
        nll_sum += float(nll.sum())
        scored += len(targets)
    ppl = math.exp(nll_sum / scored)
    print(f"tokens: {len(ids)}")
    print(f"chunks: {n_chunks}")
    print(f"tokens scored: {scored}")
    print(f"onnxruntime perplexity: {ppl:.9f}")

    if a.compare:
        with open(a.compare) as f:
            got = json.load(f)
        rel = abs(got["perplexity"] - ppl) / ppl
        print(f"qwen-eval perplexity: {got['perplexity']:.9f}")
        print(f"relative difference: {rel:.3e}")
        ok = got["tokens_scored"] == scored and rel <= a.rtol
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
