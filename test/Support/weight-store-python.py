# RUN: %python %s %t.qws
# RUN: sed -e 's|STORE|%t.qws|' %S/Inputs/all-dtypes.mlir | qwen-opt --qwen-verify-weights --qwen-internalize-weights | FileCheck %s
#
# A store written by Python is read by the C++ tools (and back by Python),
# for every dtype the store supports.
# CHECK-NOT: qwen.store
# CHECK-LITERAL: dense<[[0.000000e+00, 2.500000e-01, 5.000000e-01], [7.500000e-01, 1.000000e+00, 1.250000e+00]]> : tensor<2x3xf32>
# CHECK: dense<[1.500000e+00, -2.000000e+00]> : tensor<2xf16>
# CHECK-LITERAL: dense<[[-128, 0, 127]]> : tensor<1x3xi8>
# CHECK: dense<[0, 255]> : tensor<2xui8>
# CHECK: dense<7> : tensor<1xi32>
# CHECK-LITERAL: dense<[[1, -2], [3, 4]]> : tensor<2x2xi64>
# CHECK: dense<[true, false, true]> : tensor<3xi1>
# CHECK: dense<3.250000e+00> : tensor<f64>
import sys

import numpy as np

from qwen_opt import weight_store

path = sys.argv[1]
tensors = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "f16": np.array([1.5, -2.0], dtype=np.float16),
    "i8": np.array([[-128, 0, 127]], dtype=np.int8),
    "u8": np.array([0, 255], dtype=np.uint8),
    "i32": np.array([7], dtype=np.int32),
    "i64": np.array([[1, -2], [3, 4]], dtype=np.int64),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.25, dtype=np.float64),
}
weight_store.write(path, tensors)
back = weight_store.read(path)
assert list(back) == list(tensors), list(back)
for name, array in tensors.items():
    assert back[name].dtype == array.dtype and back[name].shape == array.shape, name
    assert np.array_equal(back[name], array), name
print("ok")
