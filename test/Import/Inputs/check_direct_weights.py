"""Checks that every model-level op reads its weight directly from a store
entry or a constant (after --qwen-materialize-weights): prints
`direct=N indirect=M` and lists the indirect ones."""
import re
import sys

text = open(sys.argv[1]).read()
defs = {}
for m in re.finditer(r"^\s*(%[\w#]+)(?::\d+)? = ([\w.]+)", text, re.M):
    defs[m.group(1)] = m.group(2)
direct = indirect = 0
for m in re.finditer(r"= (qwen\.(?:linear|logits|embedding|rms_norm)|qquant\.(?:linear|logits|embedding)) (%[\w#]+), (%[\w#]+)", text):
    op, a, w = m.groups()
    weight = w  # (ids, table), (x, weight, ...), (x, norm weight)
    kind = defs.get(weight, "block-argument")
    if kind in ("qwen.weight", "qquant.weight", "onnx.Constant"):
        direct += 1
    else:
        indirect += 1
        print(f"indirect: {op} reads {weight} from {kind}")
print(f"direct={direct} indirect={indirect}")
