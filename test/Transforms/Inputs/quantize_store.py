"""Writes the f32 store the quantize-weights IR tests read: quantize_store.py PATH [LAYERS_DIR]."""
import json
import os
import sys

import numpy as np

from qwen_opt import weight_store

rng = np.random.default_rng(1)
nan = rng.standard_normal((8, 64)).astype(np.float32)
nan[2, 5] = np.nan
weight_store.write(sys.argv[1], {
    "layers.0.q_proj.weight": rng.standard_normal((32, 64)).astype(np.float32),
    "layers.0.k_proj.weight": rng.standard_normal((16, 64)).astype(np.float32),
    "layers.0.down_proj.weight": rng.standard_normal((64, 128)).astype(np.float32),
    "embed.weight": rng.standard_normal((48, 64)).astype(np.float32),
    "nan.weight": nan,
})
if len(sys.argv) > 2:
    d = sys.argv[2]
    os.makedirs(d, exist_ok=True)
    files = {
        "pin.json": {"layers.0.down_proj.weight": {"bits": 8, "granularity": "channel"},
                     "layers.0.k_proj.weight": "fp32"},
        "glob.json": {"layers.0.*_proj.weight": {"bits": 3, "group_size": 32}},
        "unknown.json": {"layers.7.q_proj.weight": "fp32", "nothing.*": {"bits": 8}},
        "badkey.json": {"layers.0.q_proj.weight": {"bits": 4, "clip": 0.9}},
        "ambiguous.json": {"layers.0.q*": {"bits": 8}, "*q_proj*": {"bits": 4}},
        "badbits.json": {"layers.0.q_proj.weight": {"bits": 5}},
        "dyn4.json": {"layers.0.q_proj.weight": {"act": "dynamic", "bits": 3}},
    }
    for name, content in files.items():
        with open(os.path.join(d, name), "w") as f:
            json.dump(content, f)
