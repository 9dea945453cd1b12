"""Writes small ONNX models (good and bad) for the importer tests:
    make_models.py KIND OUT.onnx
Built with onnx.helper so the tests need neither torch nor an exporter."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

kind, out = sys.argv[1], sys.argv[2]
F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=17, value_info=(), extra_opsets=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    return helper.make_model(g, opset_imports=ops, producer_name="qwen-opt-tests")


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def linear(opset=17, big=True):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 16) if big else (2, 2)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.arange(16 if big else 2, dtype=np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"], name="mm"),
             helper.make_node("Add", ["xw", "b"], ["y"], name="add")]
    n_in = 8 if big else 2
    return model(nodes, [vi("x", F, ["batch", "seq", n_in])], [vi("y", F, ["batch", "seq", 16 if big else 2])],
                 [w, b], opset=opset)


m = None
if kind == "linear":
    m = linear()
elif kind == "external":
    m = linear()
    onnx.save(m, out, save_as_external_data=True, all_tensors_to_one_file=True,
              location=os.path.basename(out) + ".data", size_threshold=0)
    sys.exit(0)
elif kind in ("external-short", "external-escape", "external-missing", "external-absolute", "external-symlink"):
    m = linear()
    data = os.path.basename(out) + ".data"
    onnx.save(m, out, save_as_external_data=True, all_tensors_to_one_file=True, location=data, size_threshold=0)
    m = onnx.load(out, load_external_data=False)
    t = m.graph.initializer[0]
    if kind == "external-short":
        with open(os.path.join(os.path.dirname(out), data), "r+b") as f:
            f.truncate(100)
        sys.exit(0)
    loc = {"external-escape": "../../etc/passwd", "external-missing": "nothere.bin",
           "external-absolute": "/etc/passwd", "external-symlink": "link.bin"}[kind]
    for kv in t.external_data:
        if kv.key == "location":
            kv.value = loc
    onnx.save(m, out)
    sys.exit(0)
elif kind == "unsupported-op":
    m = model([helper.make_node("NonMaxSuppression", ["x", "x"], ["y"], name="nms")],
              [vi("x", F, [1, 4])], [vi("y", TensorProto.INT64, [1, 3])])
elif kind == "unsupported-domain":
    m = model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob", domain="com.example")],
              [vi("x", F, [4])], [vi("y", F, [4])], extra_opsets=[("com.example", 1)])
elif kind == "old-opset":
    m = linear(opset=11)
elif kind == "shape-mismatch":
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"], name="bad_matmul")],
              [vi("x", F, [2, 3]), vi("w", F, [4, 5])], [vi("y", F, [2, 5])])
elif kind == "string-dtype":
    m = model([helper.make_node("Identity", ["x"], ["y"], name="id")],
              [vi("x", TensorProto.STRING, [2])], [vi("y", TensorProto.STRING, [2])])
elif kind == "cycle":
    m = model([helper.make_node("Add", ["x", "b"], ["a"], name="first"),
               helper.make_node("Neg", ["a"], ["b"], name="second")],
              [vi("x", F, [2])], [vi("a", F, [2])])
elif kind == "undefined-input":
    m = model([helper.make_node("Neg", ["ghost"], ["y"], name="haunted")],
              [vi("x", F, [2])], [vi("y", F, [2])])
elif kind == "blocked-int4-dq":
    # A GPTQ/QAT-style weight: int4 values, one f32 scale per block of 32
    # inputs, dequantized in the graph (opset 21 blocked DequantizeLinear).
    rng = np.random.default_rng(0)
    q = rng.integers(-8, 8, (64, 16), dtype=np.int8)
    packed = ((q.reshape(-1)[0::2] & 0xF) | ((q.reshape(-1)[1::2] & 0xF) << 4)).astype(np.uint8)
    w = helper.make_tensor("w_q", TensorProto.INT4, [64, 16], packed.tobytes(), raw=True)
    s = numpy_helper.from_array(rng.random((2, 16)).astype(np.float32), "w_scale")
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], axis=0, block_size=32, name="dq"),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    m = model(nodes, [vi("x", F, [1, 4, 64])], [vi("y", F, [1, 4, 16])], [w, s], opset=21)
elif kind == "bad-attr-kind":
    m = model([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1.5)],
              [vi("x", F, [2, 3])], [vi("y", F, [2, 3])])
elif kind == "short-initializer":
    t = helper.make_tensor("w", F, [4, 4], vals=np.zeros(16, np.float32).tobytes(), raw=True)
    t.raw_data = t.raw_data[:20]
    m = model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
              [vi("x", F, [2, 4])], [vi("y", F, [2, 4])], [t])
elif kind == "ops":
    # A sample of ops with attributes of every kind, optional inputs and
    # opset-17 reductions with axes as attributes.
    nodes = [
        helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Constant", [], ["axes"], value_ints=[-1], name="c_axes"),
        helper.make_node("Constant", [], ["two"], value_float=2.0, name="c_two"),
        helper.make_node("Pow", ["x", "two"], ["sq"], name="pow"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[-1], keepdims=1, name="mean"),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1], name="tr"),
        helper.make_node("Softmax", ["x"], ["sm"], axis=-1, name="softmax"),
        helper.make_node("Unsqueeze", ["ms", "axes"], ["ms4"], name="unsq"),
        helper.make_node("Split", ["x"], ["s0", "s1"], axis=2, num_outputs=2, name="split") if False else
        helper.make_node("Split", ["x", "split"], ["s0", "s1"], axis=2, name="split"),
        helper.make_node("Slice", ["x", "starts", "ends", "", "steps"], ["sl"], name="slice"),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"],
                         value=helper.make_tensor("v", TensorProto.INT64, [1], [7]), name="cos"),
        helper.make_node("Trilu", ["sq"], ["tri"], upper=1, name="trilu"),
    ]
    inits = [numpy_helper.from_array(np.array([2, 2], np.int64), "split"),
             numpy_helper.from_array(np.array([0], np.int64), "starts"),
             numpy_helper.from_array(np.array([3], np.int64), "ends"),
             numpy_helper.from_array(np.array([1], np.int64), "steps"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "shape")]
    m = model(nodes, [vi("x", F, [1, 3, 4]), vi("ids", TensorProto.INT64, [1, 3])],
              [vi("idsf", F, None), vi("ms4", F, None), vi("xt", F, None), vi("sm", F, None),
               vi("s0", F, None), vi("sl", F, None), vi("zeros", TensorProto.INT64, None),
               vi("tri", F, None)], inits)
elif kind == "typed-fields":
    # Initializers in typed fields rather than raw_data, incl. int4 and f16.
    inits = [helper.make_tensor("f", F, [2], [1.5, -2.0]),
             helper.make_tensor("i64", TensorProto.INT64, [2], [7, -8]),
             helper.make_tensor("i8", TensorProto.INT8, [3], [-1, 0, 1]),
             # make_tensor stores f16 values as their bit patterns in int32_data.
             helper.make_tensor("h", TensorProto.FLOAT16, [1], [1.0]),
             helper.make_tensor("b", TensorProto.BOOL, [2], [True, False])]
    nodes = [helper.make_node("Identity", [n], [n + "_out"], name="id_" + n) for n in ("f", "i64", "i8", "h", "b")]
    m = model(nodes, [], [vi(n + "_out", t, s) for n, t, s in
                          (("f", F, [2]), ("i64", TensorProto.INT64, [2]), ("i8", TensorProto.INT8, [3]),
                           ("h", TensorProto.FLOAT16, [1]), ("b", TensorProto.BOOL, [2]))], inits)
else:
    sys.exit(f"unknown kind {kind}")
onnx.save(m, out)
