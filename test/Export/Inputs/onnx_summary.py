"""The structure of an exported ONNX model (qwen-translate --export-onnx).

  onnx_summary.py EXPORTED.onnx SOURCE.onnx

onnx.checker must pass. Prints
  io: same          the graph inputs and outputs (names, types, shapes) are
                    the source's (else the difference)
  ops: ...          counts of the op types the exporter writes
  nbits: ...        MatMulNBits by (bits, block_size, zero_points)
  weights: ...      initializers of >= 1024 elements by data type
  opsets: ...       the model's opset imports
"""
import collections
import sys

import onnx


def sig(vs):
    out = []
    for v in vs:
        t = v.type.tensor_type
        out.append((v.name, t.elem_type,
                    tuple(d.dim_param or d.dim_value for d in t.shape.dim)))
    return out


def main():
    path, src_path = sys.argv[1:3]
    onnx.checker.check_model(path)
    m = onnx.load(path)
    src = onnx.load(src_path, load_external_data=False)
    src_inits = {i.name for i in src.graph.initializer}
    same = (sig([i for i in m.graph.input if i.name not in src_inits]) ==
            sig([i for i in src.graph.input if i.name not in src_inits]) and
            sig(m.graph.output) == sig(src.graph.output))
    print("io: " + ("same" if same else "DIFFERENT"))
    ops = collections.Counter(n.op_type for n in m.graph.node)
    watched = ["MatMulNBits", "DequantizeLinear", "QuantizeLinear", "Clip", "Round",
               "ReduceMax", "MatMul", "Transpose", "Gather"]
    print("ops: " + " ".join(f"{k}={ops.get(k, 0)}" for k in watched))
    nb = collections.Counter()
    for n in m.graph.node:
        if n.op_type == "MatMulNBits":
            a = {x.name: x.i for x in n.attribute}
            nb[(a["bits"], a["block_size"], len(n.input) > 3 and n.input[3] != "",
                a.get("accuracy_level", 0))] += 1
    print("nbits: " + " ".join(f"bits={b}/block={s}/zp={int(z)}/acc={l}:{c}"
                               for (b, s, z, l), c in sorted(nb.items())))
    w = collections.Counter()
    for t in m.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n >= 1024:
            w[onnx.TensorProto.DataType.Name(t.data_type)] += 1
    print("weights: " + " ".join(f"{k}={v}" for k, v in sorted(w.items())))
    print("opsets: " + " ".join(f"{o.domain or 'ai.onnx'}={o.version}"
                                for o in sorted(m.opset_import, key=lambda o: o.domain)))


if __name__ == "__main__":
    main()
