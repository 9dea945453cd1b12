"""Reads the store --qwen-share-weights wrote (python/qwen_opt/weight_store.py)
and compares each shared weight with kmeans_reference.py run on the float
store's weight: codebooks, packed indices bit for bit.

usage: share_weights_check.py FLOAT_STORE SHARED_STORE GRAN BITS GROUP [f16]"""
import os
import sys

import numpy as np

from qwen_opt import weight_store

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmeans_reference as ref  # noqa: E402

src, dst, gran, bits, group = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
dtype = np.float16 if sys.argv[6:] == ["f16"] else np.float32
f, s = weight_store.read(src), weight_store.read(dst)
for k in sorted(s):
    if k.startswith("layers.0.q_proj"):
        print(k, s[k].dtype.name, s[k].shape)
n = 0
bad = []
for k in sorted(s):
    if not k.endswith(".codes"):
        continue
    name = k[: -len(".codes")]
    w = np.asarray(f[name], np.float32)
    _, _, books, packed = ref.quantize(w, bits, gran, group, dtype=dtype)
    stored = np.asarray(s[name + ".codebook"])
    if not (stored.dtype == dtype and
            np.array_equal(stored.astype(np.float32), books)
            and np.array_equal(np.asarray(s[k]), packed)):
        bad.append(name)
    n += 1
if bad:
    print("FAIL", bad)
    sys.exit(1)
print("OK %d weights equal the numpy k-means bit for bit" % n)
