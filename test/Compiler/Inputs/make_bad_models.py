"""Writes small ONNX models that qwen-compile must refuse, into DIR.

  no_role.onnx      an input named "x" (the runtime would not know what to feed)
  no_logits.onnx    input_ids in, but no "logits" output
  unsupported.onnx  a node of an operator the importer does not know (Det)
"""
import sys

import onnx
from onnx import TensorProto, helper

d = sys.argv[1]


def save(name, nodes, inputs, outputs):
    g = helper.make_graph(nodes, name, inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, f"{d}/{name}.onnx")


f32 = TensorProto.FLOAT
i64 = TensorProto.INT64
save("no_role", [helper.make_node("Identity", ["x"], ["logits"], name="id")],
     [helper.make_tensor_value_info("x", f32, [1, "s", 8])],
     [helper.make_tensor_value_info("logits", f32, [1, "s", 8])])
save("no_logits", [helper.make_node("Cast", ["input_ids"], ["y"], to=f32, name="cast")],
     [helper.make_tensor_value_info("input_ids", i64, [1, "s"])],
     [helper.make_tensor_value_info("y", f32, [1, "s"])])
save("unsupported", [helper.make_node("Cast", ["input_ids"], ["f"], to=f32, name="cast"),
                     helper.make_node("Det", ["f"], ["logits"], name="the_det")],
     [helper.make_tensor_value_info("input_ids", i64, [2, 2])],
     [helper.make_tensor_value_info("logits", f32, [])])
