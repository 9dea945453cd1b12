# Driven by ../python-binding.test.
import sys

import numpy as np

from qwen_opt import runtime

b = runtime.Bundle(sys.argv[1])
print("vocab", b.vocab_size, "layers", b.num_layers, "kv", b.has_kv_cache,
      "tokenizer", b.has_tokenizer, "eos", b.eos_ids)
s = b.session(64)
logits = s.prefill([1, 2, 3])
print("prefill", logits.shape, "greedy", int(logits[-1].argmax()))
row = s.decode(8)
print("decode", row.shape, "greedy", int(row.argmax()))
full = runtime.Bundle(sys.argv[2]).session(64)
ref = full.prefill([1, 2, 3, 8])
print("kv equals recompute", bool(np.array_equal(ref[-1], row)))
text = "Hello world, again"
print("roundtrip", b.detokenize(b.tokenize(text)) == text)
try:
    s.decode(5000)
except RuntimeError as e:
    print("error RuntimeError:", e)
print("length", s.length)
try:
    runtime.Bundle(sys.argv[1] + "/missing")
except RuntimeError as e:
    print("open error RuntimeError:", e)
l = np.array([0.0, 3.0, 3.0, 1.0], np.float32)
st1, st2 = [11], [11]
a = [runtime.sample(l, 1.0, 0, 1.0, st1) for _ in range(20)]
c = [runtime.sample(l, 1.0, 0, 1.0, st2) for _ in range(20)]
print("sample greedy", runtime.sample(l), "seeded-equal", a == c)
print("cpu sse3", runtime.cpu_has_feature("sse3"), "unknown",
      runtime.cpu_has_feature("avx9000"))
