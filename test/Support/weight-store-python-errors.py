# RUN: %python %s %t
#
# The Python reader refuses what the C++ reader refuses: truncated files,
# wrong magic, and tensors that do not fit their declared shapes.
import sys

import numpy as np

from qwen_opt import weight_store as ws

base = sys.argv[1]
good = base + ".good.qws"
ws.write(good, {"a": np.arange(16, dtype=np.float32)})
data = open(good, "rb").read()


def refused(name, blob):
    path = f"{base}.{name}.qws"
    open(path, "wb").write(blob)
    try:
        ws.read(path)
    except ws.WeightStoreError as e:
        assert path in str(e), e
        return
    raise AssertionError(f"{name}: accepted a bad store")


refused("empty", b"")
refused("truncated", data[:-1])
refused("magic", b"X" + data[1:])
try:
    ws.write(base + ".bad.qws", {"": np.zeros(1, np.float32)})
    raise AssertionError("empty name accepted")
except ws.WeightStoreError:
    pass
try:
    ws.write(base + ".bad.qws", {"c": np.zeros(1, np.complex64)})
    raise AssertionError("complex accepted")
except ws.WeightStoreError:
    pass
import os
assert not os.path.exists(base + ".bad.qws") and not os.path.exists(base + ".bad.qws.tmp")
print("ok")
