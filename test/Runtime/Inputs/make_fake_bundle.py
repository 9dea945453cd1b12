"""Writes a bundle around the fake model.so (unittests/Runtime/FakeModel.c).

usage: make_fake_bundle.py OUT --model SO [--no-kv] [--vocab N]
         [--tokenizer JSON] [--eos ID,...] [--feature NAME]... [--scale X]

The manifest follows include/qwen/Runtime/BundleABI.h: weights.bin is a weight
store (python/qwen_opt/weight_store.py) and every file is listed with its size
and sha256.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct

import numpy as np

from qwen_opt import weight_store


def store_index(path):
    """name -> (offset, bytes) from a weight store's index."""
    with open(path, "rb") as f:
        data = f.read()
    _, _, _, count, index_offset, _, _ = weight_store.HEADER.unpack_from(data, 0)
    pos, out = index_offset, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        name = data[pos:pos + n].decode()
        pos += n
        _, rank, _ = struct.unpack_from("<BBH", data, pos)
        pos += 4 + 8 * rank
        offset, nbytes = struct.unpack_from("<QQ", data, pos)
        pos += 16
        out[name] = (offset, nbytes)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--model", required=True)
    p.add_argument("--no-kv", action="store_true")
    p.add_argument("--vocab", type=int, default=16)
    p.add_argument("--tokenizer")
    p.add_argument("--eos", default="")
    p.add_argument("--feature", action="append", default=[])
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    shutil.copyfile(a.model, os.path.join(a.out, "model.so"))
    wpath = os.path.join(a.out, "weights.bin")
    weight_store.write(wpath, {
        "fake.pad": np.zeros(100, np.uint8),
        "fake.config": np.array([a.vocab, 0], np.int64),
        "fake.scale": np.array([a.scale], np.float32),
    })
    index = store_index(wpath)
    files = ["model.so", "weights.bin"]
    if a.tokenizer:
        shutil.copyfile(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
        files.append("tokenizer.json")

    kv = not a.no_kv
    seq = {"dtype": "i64", "shape": [1, -1]}
    cache = {"dtype": "f32", "shape": [1, 1, -1, 2], "layer": 0}
    inputs = [
        {"name": "input_ids", "role": "input_ids", **seq},
        {"name": "attention_mask", "role": "attention_mask", **seq},
        {"name": "position_ids", "role": "position_ids", **seq},
    ]
    outputs = [{"name": "logits", "role": "logits", "dtype": "f32",
                "shape": [1, -1, a.vocab]}]
    if kv:
        inputs += [{"name": "past.0.key", "role": "past_key", **cache},
                   {"name": "past.0.value", "role": "past_value", **cache}]
        outputs += [{"name": "present.0.key", "role": "present_key", **cache},
                    {"name": "present.0.value", "role": "present_value", **cache}]
    for name, dtype, shape in (("fake.config", "i64", [2]),
                               ("fake.scale", "f32", [1])):
        off, nbytes = index[name]
        inputs.append({"name": name, "role": "weight", "dtype": dtype,
                       "shape": shape, "offset": off, "bytes": nbytes})

    def listing(name):
        path = os.path.join(a.out, name)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        return {"path": name, "bytes": os.path.getsize(path), "sha256": digest}

    manifest = {
        "format": "qwen-bundle", "format_version": 1,
        "compiler": "make_fake_bundle.py",
        "source": {"file": "fake.onnx", "sha256": "0" * 64},
        "model": {"architecture": "unknown", "num_layers": 1,
                  "num_attention_heads": 1, "num_kv_heads": 1, "head_dim": 2,
                  "hidden_size": 2, "vocab_size": a.vocab, "kv_cache": kv,
                  "eos_token_ids": [int(x) for x in a.eos.split(",") if x]},
        "recipe": {"name": "fp32"},
        "target": {"name": "fake-target", "triple": "x86_64-unknown-linux-gnu",
                   "cpu": "generic", "features": a.feature},
        "entry": {"library": "model.so", "symbol": "qwen_model_forward",
                  "abi_version": 1},
        "inputs": inputs,
        "outputs": outputs,
        "files": [listing(f) for f in files],
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
