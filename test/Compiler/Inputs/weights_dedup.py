"""Lists the weight inputs of a bundle that share bytes in weights.bin and
checks that the file holds each distinct span once (its size is below the
sum of all inputs' bytes by exactly the shared ones)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qwen_opt import weight_store  # noqa: E402

d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
ws = [i for i in m["inputs"] if i.get("role") == "weight"]
first = {}
for i in ws:
    k = (i["offset"], i["bytes"])
    if k in first:
        print("shared:", " ".join(sorted([first[k]["name"], i["name"]])))
    else:
        first[k] = i
# The spans of distinct tensors never overlap, and the store reads back.
spans = sorted(first)
ok = all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:]))
names = set(weight_store.read(os.path.join(d, "weights.bin")))
ok &= all(i["name"] in names for i in ws)
print("weights.bin holds every input once:", "OK" if ok else "FAIL")
