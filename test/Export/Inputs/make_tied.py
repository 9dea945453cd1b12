"""The qwen2-torchscript-kvcache fixture with a tied LM head: its MatMul reads
Transpose(model.model.embed_tokens.weight) instead of its own initializer.

  make_tied.py SOURCE.onnx OUT.onnx
"""
import onnx, sys
from onnx import helper
m = onnx.load(sys.argv[1])
g = m.graph
for n in g.node:
    if n.op_type == "MatMul" and "lm_head" in n.name:
        old = n.input[1]
        t = helper.make_node("Transpose", ["model.model.embed_tokens.weight"], ["lm_head_tied_T"], name="/lm_head/Transpose_tied", perm=[1, 0])
        n.input[1] = "lm_head_tied_T"
        idx = list(g.node).index(n)
        g.node.insert(idx, t)
        keep = [i for i in g.initializer if i.name != old]
        del g.initializer[:]
        g.initializer.extend(keep)
        break
onnx.save(m, sys.argv[2])
