"""Quantizes an ONNX model with onnxruntime's own tools, as users do before
they hand it to us:  quantize_model.py KIND IN.onnx OUT.onnx
  dynamic: quantize_dynamic (DynamicQuantizeLinear + MatMulInteger)
  qdq:     quantize_static in QDQ format, per-channel int8 weights
           (QuantizeLinear / DequantizeLinear pairs)"""
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                      QuantType, quantize_dynamic,
                                      quantize_static)

kind, src, dst = sys.argv[1:4]

if kind == "dynamic":
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
elif kind == "qdq":
    m = onnx.load(src)
    names = [i.name for i in m.graph.input]

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.data = iter([{"input_ids": rng.integers(0, 256, (1, 8), dtype=np.int64),
                               "attention_mask": np.ones((1, 8), np.int64)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    assert names == ["input_ids", "attention_mask"], names
    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    op_types_to_quantize=["MatMul"])
else:
    sys.exit(f"unknown kind {kind}")
