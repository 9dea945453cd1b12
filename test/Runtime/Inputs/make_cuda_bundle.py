"""Turns a CPU bundle into one with a CUDA manifest, for runtime tests.

usage: make_cuda_bundle.py IN OUT --arch sm_XY[,sm_XY...] [--ptx sm_XY]
                           [--archs JSON] [--model SO] [--no-binary-file]

The runtime's CUDA open path (driver, device, arch check, weight upload) is
tested without a GPU and without the CUDA compiler: OUT is IN with the
"target" of include/qwen/Runtime/BundleABI.h's CUDA section ("kind": "cuda",
"arch", "binary": "model.cubin"), a model.cubin file (placeholder bytes: the
runtime only checksums it), model.so replaced by --model when given, and the
size and sha256 of every listed file recomputed. --no-binary-file leaves
model.cubin out of "files" (a malformed bundle). Several archs (a fat
binary's manifest) become "archs", with "ptx" when --ptx is given; --archs
writes that JSON value as "archs" verbatim (malformed manifests).
"""

import argparse
import hashlib
import json
import os
import shutil


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--arch", required=True)
    p.add_argument("--ptx")
    p.add_argument("--archs")
    p.add_argument("--model")
    p.add_argument("--no-binary-file", action="store_true")
    a = p.parse_args()

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    shutil.copytree(a.input, a.out)
    if a.model:
        shutil.copyfile(a.model, os.path.join(a.out, "model.so"))
    with open(os.path.join(a.out, "model.cubin"), "wb") as f:
        f.write(b"placeholder kernels for " + a.arch.encode() + b"\n")

    mpath = os.path.join(a.out, "manifest.json")
    with open(mpath) as f:
        m = json.load(f)
    archs = a.arch.split(",")
    t = {"name": a.arch, "kind": "cuda"}
    if a.archs is not None:
        t["archs"] = json.loads(a.archs)
    elif len(archs) == 1:
        t["arch"] = archs[0]
    else:
        t["archs"] = archs
    if a.ptx:
        t["ptx"] = a.ptx
    t.update({"triple": "x86_64-unknown-linux-gnu",
              "device_triple": "nvptx64-nvidia-cuda",
              "binary": "model.cubin"})
    m["target"] = t
    paths = [f["path"] for f in m["files"] if f["path"] != "model.cubin"]
    if not a.no_binary_file:
        paths.append("model.cubin")
    m["files"] = [{"path": q, "bytes": os.path.getsize(os.path.join(a.out, q)),
                   "sha256": sha256(os.path.join(a.out, q))} for q in paths]
    with open(mpath, "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
