"""Recomputes a fixture's onnxruntime reference with MatMulNBits in fp32.

  ort_reference.py MODEL.onnx FIXTURE.npz OUT.npz

onnxruntime's CPU MatMulNBits with accuracy_level=4 quantizes the activations
to int8 before the product, so its outputs are not those of an exact
dequantize-then-f32-matmul. This copies the model with every MatMulNBits'
accuracy_level set to 0 (fp32 compute of the dequantized weight), runs it on
the fixture's inputs and writes inputs + outputs to OUT.npz, the layout that
run_fixture_jit.py reads.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, npz_path, out_path = sys.argv[1:4]
model = onnx.load(model_path)
n = 0
for node in model.graph.node:
    if node.op_type == "MatMulNBits":
        for a in node.attribute:
            if a.name == "accuracy_level":
                a.i = 0
        n += 1
ref = np.load(npz_path)
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
feeds = {i.name: ref[i.name] for i in sess.get_inputs()}
outs = sess.run(None, feeds)
data = dict(feeds)
for o, v in zip(sess.get_outputs(), outs):
    data[o.name] = v
np.savez(out_path, **data)
print(f"MatMulNBits set to accuracy_level=0: {n}")
