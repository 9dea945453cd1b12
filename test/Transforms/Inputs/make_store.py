"""Writes the weight stores the Transforms tests read: make_store.py KIND PATH."""
import sys

import numpy as np

from qwen_opt import weight_store

kind, path = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
f16 = np.float16

if kind == "float":
    stores = {
        "w": np.arange(8, dtype=np.float32).reshape(2, 4),
        "big": np.zeros((64, 64), dtype=np.float32),
        "nan": np.array([1.0, np.nan, 2.0], dtype=np.float32),
        "inf16": np.array([1.0, np.inf], dtype=f16),
        "ids": np.array([1, 2, 3], dtype=np.int64),
    }
elif kind == "quant":
    # Components of 96x64 weights, laid out as getWeightComponents() says.
    stores = {
        # i4 symmetric group 32: codes [96, 64*4/8], scales [96, 2]
        "sym.codes": rng.integers(0, 255, (96, 32), dtype=np.uint8),
        "sym.scales": np.ones((96, 2), dtype=f16),
        # ui4 asymmetric channel: + zeros [96, 1]
        "asym.codes": rng.integers(0, 255, (96, 32), dtype=np.uint8),
        "asym.scales": np.ones((96, 1), dtype=np.float32),
        "asym.zeros": np.full((96, 1), 8, dtype=np.uint8),
        # codebook 3, tensor: codes [96, 24], codebook [1, 8]
        "cb.codes": rng.integers(0, 255, (96, 24), dtype=np.uint8),
        "cb.codebook": np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8),
        # i4 group 32, 2:4: codes [96, 32*4/8], scales [96, 2], mask [96, 8]
        "sp.codes": rng.integers(0, 255, (96, 16), dtype=np.uint8),
        "sp.scales": np.ones((96, 2), dtype=f16),
        "sp.mask": rng.integers(0, 255, (96, 8), dtype=np.uint8),
        # scales with the wrong shape / dtype, and a NaN scale
        "badshape.codes": rng.integers(0, 255, (96, 32), dtype=np.uint8),
        "badshape.scales": np.ones((96, 4), dtype=f16),
        "baddtype.codes": rng.integers(0, 255, (96, 32), dtype=np.uint8),
        "baddtype.scales": np.ones((96, 2), dtype=np.int32),
        "nan.codes": rng.integers(0, 255, (96, 32), dtype=np.uint8),
        "nan.scales": np.full((96, 2), np.nan, dtype=f16),
    }
else:
    sys.exit(f"unknown kind {kind}")
weight_store.write(path, stores)
