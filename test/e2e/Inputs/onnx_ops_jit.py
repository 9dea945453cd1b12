"""Per-op numerical tests of the generic ONNX lowering against onnxruntime.

  onnx_ops_jit.py WORKDIR --pipeline=... --shared-libs=... [CASE...]

Each case is a tiny single-op ONNX model built with onnx.helper (symbolic dims
where marked, so the imported types are dynamic and the actual shapes exercise
run-time broadcasting, negative axes and tails). onnxruntime computes the
reference; the model is imported with qwen-translate, lowered with
`--qwen-onnx-infer-shapes --qwen-lower-model-to-linalg=strict=1` (no raising),
run through the upstream JIT by run_fixture_jit.py, and compared within 1e-5
(|got - ref|.max() / max(1, |ref|.max())). Non-float outputs are cast to float
by an extra Cast node (which is lowered too). Prints `CASE: PASS` per case and
`ALL n PASS`, or exits non-zero.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as h

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1234)
NP2TP = {np.float32: TP.FLOAT, np.int64: TP.INT64, np.int32: TP.INT32, np.bool_: TP.BOOL}

CASES = {}


def case(name):
    def deco(f):
        CASES[name] = f
        return f
    return deco


def f32(*s, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, s).astype(np.float32)


def i64(*s, lo=-5, hi=5):
    return rng.integers(lo, hi, s).astype(np.int64)


def model(nodes, inputs, outputs, dims=None, inits=(), opset=18, ms=False):
    """inputs: {name: array}; dims: {name: [dim or str]} (symbolic dims);
    outputs: {name: onnx elem type}."""
    dims = dims or {}
    vi = []
    for n, a in inputs.items():
        shape = dims.get(n, list(a.shape))
        vi.append(h.make_tensor_value_info(n, NP2TP[a.dtype.type], shape))
    nodes = list(nodes)
    outs = []
    for n, t in outputs.items():
        if t != TP.FLOAT:
            nodes.append(h.make_node("Cast", [n], [n + "_f"], to=TP.FLOAT))
            n = n + "_f"
        outs.append(h.make_tensor_value_info(n, TP.FLOAT, None))
    g = h.make_graph(nodes, "g", vi, outs, initializer=list(inits))
    ops = [h.make_opsetid("", opset)]
    if ms:
        ops.append(h.make_opsetid("com.microsoft", 1))
    m = h.make_model(g, opset_imports=ops)
    m.ir_version = 10
    return m, inputs


def const(name, arr):
    return h.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(arr), name))


def binop(op, a, b, t=TP.FLOAT, dims=None, **attrs):
    return model([h.make_node(op, ["A", "B"], ["Y"], **attrs)], {"A": a, "B": b}, {"Y": t}, dims)


def unop(op, x, t=TP.FLOAT, dims=None, **attrs):
    return model([h.make_node(op, ["X"], ["Y"], **attrs)], {"X": x}, {"Y": t}, dims)


# --- elementwise, broadcasting -------------------------------------------
@case("add_bcast_static")
def _(): return binop("Add", f32(2, 3, 4), f32(4))
@case("sub_runtime_bcast")  # dynamic T is 1 in A and 3 in B
def _(): return binop("Sub", f32(2, 1, 4), f32(2, 3, 4), dims={"A": ["N", "T", 4], "B": ["N", "S", 4]})
@case("mul_scalar_dyn")
def _(): return binop("Mul", f32(3, 5), np.array(1.5, np.float32), dims={"A": ["N", "M"]})
@case("div_float_dyn_rank_bcast")
def _(): return binop("Div", f32(2, 3, 4), f32(3, 1, lo=0.5, hi=2), dims={"A": ["a", "b", "c"], "B": ["b", 1]})
@case("div_int")
def _(): return binop("Div", i64(3, 4, lo=0, hi=50), i64(4, lo=1, hi=7), TP.INT64, dims={"A": ["N", 4]})
@case("add_int_bcast_both")
def _(): return binop("Add", i64(3, 1), i64(1, 4), TP.INT64, dims={"A": ["N", 1], "B": [1, "M"]})
@case("pow")
def _(): return binop("Pow", f32(2, 3, lo=0.1, hi=3), np.array(2.0, np.float32))
@case("pow_int_exp")
def _(): return binop("Pow", f32(2, 3), np.array(3, np.int64))
@case("mod_int")
def _(): return binop("Mod", i64(2, 5, lo=-20, hi=20), np.array([3, -3, 4, -4, 7], np.int64), TP.INT64)
@case("fmod_float")
def _(): return binop("Mod", f32(2, 5, lo=-5, hi=5), f32(5, lo=0.5, hi=2), fmod=1)
@case("equal_int")
def _(): return binop("Equal", i64(3, 4, lo=0, hi=3), i64(4, lo=0, hi=3), TP.BOOL, dims={"A": ["N", 4]})
@case("less_float")
def _(): return binop("Less", f32(3, 4), f32(1, 4), TP.BOOL)
@case("lessorequal_int")
def _(): return binop("LessOrEqual", i64(3, 4), i64(3, 1), TP.BOOL, dims={"A": ["N", "M"], "B": ["N", 1]})
@case("greater_float")
def _(): return binop("Greater", f32(3, 4), np.array(0.0, np.float32), TP.BOOL)
@case("greaterorequal_int")
def _(): return binop("GreaterOrEqual", i64(5), i64(5), TP.BOOL)
@case("and_or_xor_not")
def _():
    a = rng.integers(0, 2, (3, 4)).astype(np.bool_)
    b = rng.integers(0, 2, (4,)).astype(np.bool_)
    return model([h.make_node("And", ["A", "B"], ["t0"]), h.make_node("Or", ["t0", "A"], ["t1"]),
                  h.make_node("Xor", ["t1", "B"], ["t2"]), h.make_node("Not", ["t2"], ["Y"])],
                 {"A": a, "B": b}, {"Y": TP.BOOL}, {"A": ["N", 4]})
@case("max_min_sum_variadic")
def _():
    return model([h.make_node("Max", ["A", "B", "C"], ["m"]), h.make_node("Min", ["A", "B", "C"], ["n"]),
                  h.make_node("Sum", ["m", "n", "C"], ["Y"])],
                 {"A": f32(2, 3), "B": f32(3), "C": f32(2, 1)}, {"Y": TP.FLOAT}, {"A": ["N", 3]})
@case("where_bcast")
def _():
    c = rng.integers(0, 2, (3, 1)).astype(np.bool_)
    return model([h.make_node("Where", ["C", "X", "Z"], ["Y"])],
                 {"C": c, "X": f32(3, 4), "Z": np.array(-1.0, np.float32)}, {"Y": TP.FLOAT},
                 {"C": ["N", 1], "X": ["N", 4]})


# --- unary ---------------------------------------------------------------
for _op, _lo, _hi in [("Neg", -2, 2), ("Abs", -2, 2), ("Sqrt", 0.1, 4), ("Reciprocal", 0.5, 3),
                      ("Exp", -3, 3), ("Log", 0.1, 5), ("Cos", -4, 4), ("Sin", -4, 4),
                      ("Tanh", -5, 5), ("Sigmoid", -6, 6), ("Relu", -2, 2), ("Erf", -3, 3),
                      ("Floor", -3, 3), ("Ceil", -3, 3), ("Softplus", -5, 5), ("Identity", -1, 1)]:
    CASES["unary_" + _op.lower()] = (lambda op, lo, hi: lambda: unop(op, f32(2, 7, lo=lo, hi=hi), dims={"X": ["N", 7]}))(_op, _lo, _hi)
@case("unary_neg_int")
def _(): return unop("Neg", i64(2, 3), TP.INT64)
@case("isnan_isinf")
def _():
    # [1, nan, inf, -inf, 0] computed in the model (the driver writes finite literals only)
    x = np.array([1.0, 0.0, 2.0, -1.0, 0.0], np.float32)
    z = np.array([1.0, 0.0, 0.0, 0.0, 3.0], np.float32)
    return model([h.make_node("Div", ["X", "Z"], ["q"]),
                  h.make_node("IsNaN", ["q"], ["a"]), h.make_node("IsInf", ["q"], ["b"], detect_negative=0),
                  h.make_node("Or", ["a", "b"], ["Y"])], {"X": x, "Z": z}, {"Y": TP.BOOL})


# --- casts ---------------------------------------------------------------
@case("cast_f32_i64")
def _(): return unop("Cast", f32(2, 5, lo=-9, hi=9), TP.INT64, to=TP.INT64)
@case("cast_i64_f32")
def _(): return unop("Cast", i64(2, 5, lo=-1000, hi=1000), to=TP.FLOAT)
@case("cast_f32_f16_f32")
def _():
    return model([h.make_node("Cast", ["X"], ["h"], to=TP.FLOAT16), h.make_node("Cast", ["h"], ["Y"], to=TP.FLOAT)],
                 {"X": f32(3, 4)}, {"Y": TP.FLOAT}, {"X": ["N", 4]})
@case("cast_i64_i32_i8_bool")
def _():
    x = i64(3, 4, lo=-300, hi=300)
    return model([h.make_node("Cast", ["X"], ["a"], to=TP.INT32), h.make_node("Cast", ["a"], ["b"], to=TP.INT8),
                  h.make_node("Cast", ["b"], ["c"], to=TP.FLOAT), h.make_node("Cast", ["X"], ["d"], to=TP.BOOL),
                  h.make_node("Cast", ["d"], ["e"], to=TP.FLOAT), h.make_node("Add", ["c", "e"], ["Y"])],
                 {"X": x}, {"Y": TP.FLOAT})
@case("cast_f32_bool_uint8")
def _():
    x = np.array([[0.0, 1.5, -2.0, 0.0, 200.7]], np.float32)
    return model([h.make_node("Cast", ["X"], ["b"], to=TP.BOOL), h.make_node("Cast", ["b"], ["c"], to=TP.FLOAT),
                  h.make_node("Abs", ["X"], ["ax"]), h.make_node("Cast", ["ax"], ["u"], to=TP.UINT8),
                  h.make_node("Cast", ["u"], ["uf"], to=TP.FLOAT), h.make_node("Add", ["c", "uf"], ["Y"])],
                 {"X": x}, {"Y": TP.FLOAT})


# --- reductions, softmax, norms ------------------------------------------
def reduce(op, x, axes, keepdims=1, noop=0, dims=None, opset=18):
    ins, nodes = ["X"], []
    if axes is not None:
        nodes.append(const("axes", np.array(axes, np.int64)))
        ins.append("axes")
    nodes.append(h.make_node(op, ins, ["Y"], keepdims=keepdims, noop_with_empty_axes=noop))
    return model(nodes, {"X": x}, {"Y": TP.FLOAT if x.dtype == np.float32 else TP.INT64}, dims, opset=opset)
@case("reducesum_last_nokeep_dyn")
def _(): return reduce("ReduceSum", f32(2, 3, 5), [-1], 0, dims={"X": ["a", "b", "c"]})
@case("reducemean_axis1_keep")
def _(): return reduce("ReduceMean", f32(2, 3, 5), [1], 1, dims={"X": ["a", "b", 5]})
@case("reducemax_all")
def _(): return reduce("ReduceMax", f32(2, 3, 5), None, 1)
@case("reducemin_two_axes")
def _(): return reduce("ReduceMin", f32(2, 3, 5), [0, -1], 1)
@case("reducesum_int")
def _(): return reduce("ReduceSum", i64(4, 6), [1], 0, dims={"X": ["N", "M"]})
@case("reducemean_attr_axes_opset17")
def _():
    return model([h.make_node("ReduceMean", ["X"], ["Y"], axes=[-1], keepdims=1)],
                 {"X": f32(2, 3, 8)}, {"Y": TP.FLOAT}, {"X": ["B", "T", 8]}, opset=17)
@case("softmax_last_dyn")
def _(): return unop("Softmax", f32(2, 3, 6, lo=-5, hi=5), dims={"X": ["a", "b", "c"]}, axis=-1)
@case("softmax_axis1")
def _(): return unop("Softmax", f32(2, 4, 3), axis=1)
@case("layernorm_bias")
def _():
    return model([h.make_node("LayerNormalization", ["X", "S", "B"], ["Y"], axis=-1, epsilon=1e-5)],
                 {"X": f32(2, 3, 8), "S": f32(8), "B": f32(8)}, {"Y": TP.FLOAT}, {"X": ["B", "T", 8]})
@case("layernorm_axis1")
def _():
    return model([h.make_node("LayerNormalization", ["X", "S"], ["Y"], axis=1, epsilon=1e-3)],
                 {"X": f32(2, 3, 4), "S": f32(3, 4)}, {"Y": TP.FLOAT})
@case("simplified_layernorm")
def _():
    return model([h.make_node("SimplifiedLayerNormalization", ["X", "S"], ["Y"], axis=-1, epsilon=1e-6)],
                 {"X": f32(2, 3, 8), "S": f32(8)}, {"Y": TP.FLOAT}, {"X": ["B", "T", 8]})
@case("ms_skip_simplified_layernorm")
def _():
    return model([h.make_node("SkipSimplifiedLayerNormalization", ["X", "S", "G"], ["Y", "", "", "sum"],
                              domain="com.microsoft", epsilon=1e-6),
                  h.make_node("Add", ["Y", "sum"], ["Z"])],
                 {"X": f32(2, 3, 8), "S": f32(2, 3, 8), "G": f32(8)}, {"Z": TP.FLOAT},
                 {"X": ["B", "T", 8], "S": ["B", "T", 8]}, ms=True)


# --- linear algebra --------------------------------------------------------
@case("matmul_dyn_2d_weight")
def _(): return binop("MatMul", f32(2, 3, 4), f32(4, 5), dims={"A": ["B", "T", 4]})
@case("matmul_batched_bcast")
def _(): return binop("MatMul", f32(2, 1, 3, 4), f32(5, 4, 6))
@case("matmul_batched_dyn")
def _(): return binop("MatMul", f32(2, 3, 3, 4), f32(2, 3, 4, 5), dims={"A": ["b", "h", "t", 4], "B": ["b", "h", 4, "s"]})
@case("matmul_runtime_batch_bcast")
def _(): return binop("MatMul", f32(1, 3, 4), f32(2, 4, 5), dims={"A": ["b", 3, 4], "B": ["c", 4, 5]})
@case("matmul_vec_left")
def _(): return binop("MatMul", f32(4), f32(2, 4, 3))
@case("matmul_vec_right")
def _(): return binop("MatMul", f32(2, 3, 4), f32(4), dims={"A": ["N", 3, 4]})
@case("gemm_trans_bias")
def _():
    return model([h.make_node("Gemm", ["A", "B", "C"], ["Y"], alpha=0.5, beta=2.0, transA=1, transB=1)],
                 {"A": f32(4, 3), "B": f32(5, 4), "C": f32(5)}, {"Y": TP.FLOAT})
@case("einsum_bhtd_bhsd")
def _():
    return model([h.make_node("Einsum", ["A", "B"], ["Y"], equation="bhtd,bhsd->bhts")],
                 {"A": f32(1, 2, 3, 4), "B": f32(1, 2, 5, 4)}, {"Y": TP.FLOAT})


# --- shapes and data movement --------------------------------------------
@case("reshape_zero_minus1_dyn")
def _():
    return model([const("s", np.array([0, -1, 2], np.int64)), h.make_node("Reshape", ["X", "s"], ["Y"])],
                 {"X": f32(2, 3, 4)}, {"Y": TP.FLOAT}, {"X": ["B", "T", 4]})
@case("reshape_runtime_shape")
def _():
    return model([h.make_node("Shape", ["X"], ["sh"]),
                  const("i", np.array([0], np.int64)), h.make_node("Gather", ["sh", "i"], ["b"]),
                  const("m", np.array([-1], np.int64)), h.make_node("Concat", ["m", "b"], ["s"], axis=0),
                  h.make_node("Reshape", ["X", "s"], ["Y"])],
                 {"X": f32(3, 2, 4)}, {"Y": TP.FLOAT}, {"X": ["B", "T", 4]})
@case("flatten_axis2")
def _(): return unop("Flatten", f32(2, 3, 4, 5), dims={"X": ["a", 3, "c", 5]}, axis=2)
@case("squeeze_unsqueeze_dyn")
def _():
    return model([const("a", np.array([1, -1], np.int64)), h.make_node("Unsqueeze", ["X", "a"], ["u"]),
                  const("b", np.array([-1], np.int64)), h.make_node("Squeeze", ["u", "b"], ["Y"])],
                 {"X": f32(2, 3)}, {"Y": TP.FLOAT}, {"X": ["N", "M"]})
@case("transpose_perm")
def _(): return unop("Transpose", f32(2, 3, 4), dims={"X": ["a", "b", 4]}, perm=[2, 0, 1])
@case("transpose_default")
def _(): return unop("Transpose", f32(2, 3, 4))
@case("concat_neg_axis_dyn")
def _():
    return model([h.make_node("Concat", ["A", "B", "A"], ["Y"], axis=-1)],
                 {"A": f32(2, 3), "B": f32(2, 5)}, {"Y": TP.FLOAT}, {"A": ["N", "a"], "B": ["N", "b"]})
@case("concat_past")
def _():
    return model([h.make_node("Concat", ["A", "B"], ["Y"], axis=2)],
                 {"A": f32(1, 2, 1, 4), "B": f32(1, 2, 3, 4)}, {"Y": TP.FLOAT},
                 {"A": ["b", 2, "p", 4], "B": ["b", 2, "t", 4]})
@case("split_equal_tail")
def _():
    return model([h.make_node("Split", ["X"], ["a", "b", "c"], axis=1, num_outputs=3),
                  h.make_node("Concat", ["c", "b", "a"], ["Y"], axis=1)],
                 {"X": f32(2, 7)}, {"Y": TP.FLOAT}, {"X": ["N", "M"]})
@case("split_sizes")
def _():
    return model([const("s", np.array([1, 3], np.int64)), h.make_node("Split", ["X", "s"], ["a", "b"], axis=-1),
                  h.make_node("ReduceSum", ["b"], ["rb"], keepdims=1),
                  h.make_node("Add", ["a", "rb"], ["Y"])],
                 {"X": f32(2, 4)}, {"Y": TP.FLOAT})
def slice_case(x, starts, ends, axes=None, steps=None, dims=None):
    nodes = [const("st", np.array(starts, np.int64)), const("en", np.array(ends, np.int64))]
    ins = ["X", "st", "en"]
    if axes is not None:
        nodes.append(const("ax", np.array(axes, np.int64)))
        ins.append("ax")
    if steps is not None:
        if axes is None:
            ins.append("")
        nodes.append(const("sp", np.array(steps, np.int64)))
        ins.append("sp")
    nodes.append(h.make_node("Slice", ins, ["Y"]))
    return model(nodes, {"X": x}, {"Y": TP.FLOAT}, dims)
@case("slice_neg_clamped")
def _(): return slice_case(f32(4, 6), [1, -4], [1000, -1], [0, 1], dims={"X": ["N", "M"]})
@case("slice_steps")
def _(): return slice_case(f32(5, 7), [0, 1], [5, 7], [0, 1], [2, 3])
@case("slice_negative_step")
def _(): return slice_case(f32(5, 7), [-1, 10], [-100, 0], [1, 0], [-2, -1], dims={"X": ["a", "b"]})
@case("slice_runtime_starts")
def _():
    return model([h.make_node("Shape", ["X"], ["sh"]), const("i", np.array([1], np.int64)),
                  h.make_node("Gather", ["sh", "i"], ["n"]), const("two", np.array([2], np.int64)),
                  h.make_node("Sub", ["n", "two"], ["s"]), const("big", np.array([2**62], np.int64)),
                  const("ax", np.array([1], np.int64)), h.make_node("Slice", ["X", "s", "big", "ax"], ["Y"])],
                 {"X": f32(3, 6)}, {"Y": TP.FLOAT}, {"X": ["N", "M"]})
@case("gather_axis0_2d_indices_neg")
def _():
    return model([h.make_node("Gather", ["X", "I"], ["Y"], axis=0)],
                 {"X": f32(5, 3), "I": np.array([[0, -1], [2, 4]], np.int64)}, {"Y": TP.FLOAT}, {"X": ["V", 3]})
@case("gather_axis1_scalar")
def _():
    return model([h.make_node("Gather", ["X", "I"], ["Y"], axis=1)],
                 {"X": f32(2, 5, 3), "I": np.array(-2, np.int64)}, {"Y": TP.FLOAT})
@case("gather_int32_indices")
def _():
    return model([h.make_node("Gather", ["X", "I"], ["Y"], axis=-1)],
                 {"X": f32(2, 5), "I": np.array([4, 0, 1], np.int32)}, {"Y": TP.FLOAT})
@case("gatherelements")
def _():
    return model([h.make_node("GatherElements", ["X", "I"], ["Y"], axis=1)],
                 {"X": f32(3, 4), "I": np.array([[0, 3], [-1, 1], [2, 2]], np.int64)}, {"Y": TP.FLOAT})
@case("gathernd_batch")
def _():
    return model([h.make_node("GatherND", ["X", "I"], ["Y"], batch_dims=1)],
                 {"X": f32(2, 3, 4), "I": np.array([[[1], [2]], [[0], [-1]]], np.int64)}, {"Y": TP.FLOAT})
@case("expand_runtime")
def _():
    return model([const("S", np.array([2, 1, 4], np.int64)), h.make_node("Expand", ["X", "S"], ["Y"])],
                 {"X": f32(3, 1)}, {"Y": TP.FLOAT}, {"X": ["N", 1]})
@case("expand_dyn_one")
def _():
    return model([const("S", np.array([4, 3], np.int64)), h.make_node("Expand", ["X", "S"], ["Y"])],
                 {"X": f32(1, 3)}, {"Y": TP.FLOAT}, {"X": ["a", "b"]})
@case("tile")
def _():
    return model([const("R", np.array([2, 3], np.int64)), h.make_node("Tile", ["X", "R"], ["Y"])],
                 {"X": f32(2, 3)}, {"Y": TP.FLOAT})
@case("constantofshape_runtime")
def _():
    return model([h.make_node("Shape", ["X"], ["s"]),
                  h.make_node("ConstantOfShape", ["s"], ["c"], value=onnx.numpy_helper.from_array(np.array([2], np.int64))),
                  h.make_node("Cast", ["c"], ["cf"], to=TP.FLOAT), h.make_node("Add", ["X", "cf"], ["Y"])],
                 {"X": f32(2, 3)}, {"Y": TP.FLOAT}, {"X": ["N", "M"]})
@case("trilu_upper_k1")
def _():
    return model([const("k", np.array(1, np.int64)), h.make_node("Trilu", ["X", "k"], ["Y"], upper=1)],
                 {"X": f32(2, 4, 5)}, {"Y": TP.FLOAT}, {"X": ["b", "r", "c"]})
@case("trilu_lower")
def _(): return unop("Trilu", f32(4, 4), upper=0)
@case("cumsum_excl_rev")
def _():
    return model([const("a", np.array(-1, np.int64)), h.make_node("CumSum", ["X", "a"], ["Y"], exclusive=1, reverse=1)],
                 {"X": f32(2, 5)}, {"Y": TP.FLOAT}, {"X": ["N", "M"]})
@case("cumsum_int")
def _():
    return model([const("a", np.array(0, np.int64)), h.make_node("CumSum", ["X", "a"], ["Y"])],
                 {"X": i64(4, 3)}, {"Y": TP.INT64})
@case("range_float")
def _():
    return model([const("s", np.array(0.5, np.float32)), const("l", np.array(3.2, np.float32)),
                  const("d", np.array(0.7, np.float32)), h.make_node("Range", ["s", "l", "d"], ["Y"])],
                 {}, {"Y": TP.FLOAT})
@case("range_int_runtime")
def _():
    return model([h.make_node("Shape", ["X"], ["sh"], start=-1), h.make_node("Squeeze", ["sh"], ["n"]),
                  const("s", np.array(7, np.int64)), const("d", np.array(-2, np.int64)),
                  h.make_node("Range", ["s", "n", "d"], ["Y"])],
                 {"X": f32(2, 1)}, {"Y": TP.INT64}, {"X": ["a", "b"]})
@case("shape_size")
def _():
    return model([h.make_node("Shape", ["X"], ["s"], start=1), h.make_node("Size", ["X"], ["n"]),
                  h.make_node("Unsqueeze", ["n", "z"], ["n1"]),
                  h.make_node("Concat", ["s", "n1"], ["Y"], axis=0)],
                 {"X": f32(2, 3, 4)}, {"Y": TP.INT64}, {"X": ["a", "b", "c"]},
                 inits=[onnx.numpy_helper.from_array(np.array([0], np.int64), "z")])
@case("dequantizelinear_axis")
def _():
    x = rng.integers(-100, 100, (3, 4)).astype(np.int8)
    return model([h.make_node("Cast", ["X"], ["q"], to=TP.INT8),
                  h.make_node("DequantizeLinear", ["q", "s", "z"], ["Y"], axis=0)],
                 {"X": x.astype(np.int32)}, {"Y": TP.FLOAT},
                 inits=[onnx.numpy_helper.from_array(f32(3, lo=0.01, hi=0.1), "s"),
                        onnx.numpy_helper.from_array(np.array([1, -2, 0], np.int8), "z")])


# --- com.microsoft quantized ----------------------------------------------
def nbits(bits, zp, K=64, N=6, bs=32):
    nb = K // bs
    B = rng.integers(0, 256, (N, nb, bs * bits // 8)).astype(np.uint8)
    inits = [onnx.numpy_helper.from_array(B, "Bq"),
             onnx.numpy_helper.from_array(f32(N * nb, lo=0.01, hi=0.1), "sc")]
    ins = ["A", "Bq", "sc"]
    if zp:
        zb = (nb * bits + 7) // 8
        inits.append(onnx.numpy_helper.from_array(rng.integers(0, 256, (N, zb)).astype(np.uint8), "zp"))
        ins.append("zp")
    node = h.make_node("MatMulNBits", ins, ["Y"], domain="com.microsoft", K=K, N=N, bits=bits,
                       block_size=bs, accuracy_level=0)
    return model([node], {"A": f32(2, 3, K)}, {"Y": TP.FLOAT}, {"A": ["B", "T", K]}, inits=inits, ms=True)
@case("ms_matmulnbits_4bit_zp")
def _(): return nbits(4, True)
@case("ms_matmulnbits_4bit_nozp")
def _(): return nbits(4, False)
@case("ms_matmulnbits_8bit_zp")
def _(): return nbits(8, True)
@case("ms_gatherblockquantized")
def _():
    rows, cols, bs = 10, 64, 32
    data = rng.integers(0, 256, (rows, cols // 2)).astype(np.uint8)
    inits = [onnx.numpy_helper.from_array(data, "d"),
             onnx.numpy_helper.from_array(f32(rows, cols // bs, lo=0.01, hi=0.1), "s"),
             onnx.numpy_helper.from_array(rng.integers(0, 256, (rows, 1)).astype(np.uint8), "z")]
    node = h.make_node("GatherBlockQuantized", ["d", "I", "s", "z"], ["Y"], domain="com.microsoft",
                       bits=4, block_size=bs, gather_axis=0, quantize_axis=1)
    return model([node], {"I": np.array([[1, 9, 0]], np.int64)}, {"Y": TP.FLOAT}, {"I": ["B", "T"]},
                 inits=inits, ms=True)


# --qwen-onnx-infer-shapes leaves these results unranked (1-D MatMul operands,
# GatherND), so the lowering leaves them and strict fails: not run by default.
INFER_SHAPES_GAPS = ["matmul_vec_left", "matmul_vec_right", "gathernd_batch"]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return r.returncode, r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--shared-libs", required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    o = ap.parse_args()
    os.makedirs(o.work, exist_ok=True)
    names = o.cases or [n for n in CASES if n not in INFER_SHAPES_GAPS]
    failed = []
    for name in names:
        m, inputs = CASES[name]()
        d = os.path.join(o.work, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "m.onnx")
        onnx.save(m, path)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, inputs)
        data = dict(inputs)
        for out, v in zip(sess.get_outputs(), outs):
            data[out.name] = np.asarray(v, np.float32)
        np.savez(os.path.join(d, "ref.npz"), **data)
        steps = [["qwen-translate", "--import-onnx", path, "-o", os.path.join(d, "m.mlir")],
                 ["qwen-opt", os.path.join(d, "m.mlir"), "--qwen-onnx-infer-shapes",
                  "--qwen-lower-model-to-linalg=strict=1", "--qwen-internalize-weights",
                  "-o", os.path.join(d, "lowered.mlir")],
                 [sys.executable, os.path.join(HERE, "run_fixture_jit.py"),
                  os.path.join(d, "lowered.mlir"), os.path.join(d, "ref.npz"),
                  "--pipeline=" + o.pipeline, "--shared-libs=" + o.shared_libs,
                  "--work=" + os.path.join(d, "jit"), f"--tol={o.tol}"]]
        ok, log = True, ""
        for cmd in steps:
            rc, out = run(cmd)
            log += out
            if rc:
                ok = False
                break
        errs = [l.split("max_rel_err=")[1] for l in log.splitlines() if "max_rel_err=" in l]
        print(f"{name}: {'PASS' if ok else 'FAIL'} max_rel_err={','.join(errs)}")
        if not ok:
            print("  " + "\n  ".join(log.strip().splitlines()[-15:]))
            failed.append(name)
    if failed:
        print(f"FAILED {len(failed)} of {len(names)}: {' '.join(failed)}")
        sys.exit(1)
    print(f"ALL {len(names)} PASS")


if __name__ == "__main__":
    main()
