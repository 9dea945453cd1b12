"""A copy of an ONNX model whose embedding row TOKEN starts with +inf, so the
first RMS norm of that token gives inf * 0 = NaN and every later activation
of it is NaN (qwen-calibrate must name the first layer that sees it).

  make_inf_model.py IN.onnx OUT.onnx TOKEN
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

src, dst, token = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = onnx.load(src)
inits = {i.name: i for i in m.graph.initializer}
gather = next(n for n in m.graph.node if n.op_type == "Gather" and n.input[0] in inits
              and len(numpy_helper.to_array(inits[n.input[0]]).shape) == 2)
init = inits[gather.input[0]]
table = numpy_helper.to_array(init).copy()
table[token, 0] = np.inf
init.CopyFrom(numpy_helper.from_array(table, init.name))
onnx.save(m, dst)
print(f"{init.name}[{token}, 0] = inf")
