"""Checks that qquant weights materialized from onnxruntime's MatMulNBits and
GatherBlockQuantized mean the same numbers: x @ dequant(W)^T computed from our
store must equal onnxruntime running the original operator on the original
initializers.   check_nbits.py MODEL.onnx DERIVED.qws"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from qwen_opt import weight_store

model_path, store_path = sys.argv[1], sys.argv[2]
m = onnx.load(model_path)
inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
store = weight_store.read(store_path)


def dequant(base, rows, cols, block):
    codes = store[base + ".codes"]
    q = np.stack([codes & 0xF, codes >> 4], axis=-1).reshape(rows, cols).astype(np.float32)
    scales = store[base + ".scales"].astype(np.float32).reshape(rows, cols // block)
    zeros = store.get(base + ".zeros")
    zp = 8.0 if zeros is None else zeros.astype(np.float32).reshape(rows, cols // block)
    zp = np.broadcast_to(zp, scales.shape)
    return (q - np.repeat(zp, block, axis=1)) * np.repeat(scales, block, axis=1)


rng = np.random.default_rng(0)
checked = 0
for node in m.graph.node:
    if node.op_type == "MatMulNBits":
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        # accuracy_level 4 makes onnxruntime quantize x to int8 itself; the
        # weight's meaning is what fp32 accumulation (level 0) computes.
        a["accuracy_level"] = 0
        n, k, bs = a["N"], a["K"], a["block_size"]
        base = node.input[1]
        w = dequant(base, n, k, bs)
        x = rng.standard_normal((3, k)).astype(np.float32)
        ins = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, k])]
        g = helper.make_graph(
            [helper.make_node("MatMulNBits", ["x"] + list(node.input[1:]), ["y"], domain="com.microsoft", **a)],
            "g", ins, [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, n])],
            [numpy_helper.from_array(inits[i], i) for i in node.input[1:] if i])
        mm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
        y = ort.InferenceSession(mm.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        err = np.abs(y - x @ w.T).max() / max(1.0, np.abs(y).max())
        assert err < 1e-5, (node.name, err)
        checked += 1
    if node.op_type == "GatherBlockQuantized":
        data = node.input[0]
        # The fixture reshapes the (tied) head weight for the gather.
        src = next(n2 for n2 in m.graph.node if data in n2.output) if data not in inits else None
        base = src.input[0] if src is not None else data
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        bs = a.get("block_size", 128)
        scales = inits[node.input[2]]
        rows, cols = scales.shape[0], scales.shape[1] * bs
        w = dequant(base, rows, cols, bs)
        ids = np.array([[0, 5, 255, 17]], np.int64)
        table = inits[base].reshape(rows, cols // 2)
        g = helper.make_graph(
            [helper.make_node("GatherBlockQuantized", ["t", "ids", "s"], ["y"], domain="com.microsoft", **a)],
            "g", [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [1, 4])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, cols])],
            [numpy_helper.from_array(table, "t"), numpy_helper.from_array(scales, "s")])
        mm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
        y = ort.InferenceSession(mm.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
        assert np.abs(y - w[ids]).max() < 1e-6, node.name
        checked += 1
print(f"checked {checked} quantized operators")
