#!/usr/bin/env python3
"""`gen`: a module applying math.exp to 16000 f32 inputs (a sweep of the
whole finite range of exp, a dense sweep of [-5, 5] and random values) as
a vector<16xf32> loop and printing the results' bit patterns; `check OUT
MAX_ULP`: the distance in f32 ulps to exp in float64 rounded to f32, over
the inputs whose exp is a normal f32 (and exact 0 / inf beyond)."""

import re
import sys

import numpy as np


def inputs():
    r = np.random.default_rng(1)
    return np.concatenate([np.linspace(-87.3, 88.7, 4000), np.linspace(-5, 5, 4000),
                           r.standard_normal(7984) * 10, [0, -0.0, 1, -1, 88.8, 89, -104, -200,
                                                          1e-7, -1e-7, 0.5, -0.5, 30, -30, 60, -60]]).astype(np.float32)


def gen():
    xs = inputs()
    n = len(xs)
    hexs = "0x" + "".join(f"{int(v):08X}" for v in xs.view(np.uint32).byteswap())
    print("\n".join([
        "func.func private @printMemrefI32(tensor<*xi32>)",
        "func.func @main() {",
        f'  %x = arith.constant dense<"{hexs}"> : tensor<{n}xf32>',
        "  %c0 = arith.constant 0 : index",
        "  %c16 = arith.constant 16 : index",
        f"  %cn = arith.constant {n} : index",
        "  %pad = arith.constant 0.0 : f32",
        f"  %e = tensor.empty() : tensor<{n}xi32>",
        f"  %r = scf.for %i = %c0 to %cn step %c16 iter_args(%t = %e) -> (tensor<{n}xi32>) {{",
        f"    %v = vector.transfer_read %x[%i], %pad {{in_bounds = [true]}} : tensor<{n}xf32>, vector<16xf32>",
        "    %y = math.exp %v : vector<16xf32>",
        "    %b = arith.bitcast %y : vector<16xf32> to vector<16xi32>",
        f"    %t2 = vector.transfer_write %b, %t[%i] {{in_bounds = [true]}} : vector<16xi32>, tensor<{n}xi32>",
        f"    scf.yield %t2 : tensor<{n}xi32>",
        "  }",
        f"  %c = tensor.cast %r : tensor<{n}xi32> to tensor<*xi32>",
        "  func.call @printMemrefI32(%c) : (tensor<*xi32>) -> ()",
        "  return",
        "}"]))


def check(out, max_ulp):
    xs = inputs()
    text = open(out).read().split("data =", 1)[1]
    got = np.array([int(t) for t in re.findall(r"-?\d+", text)], np.int64).astype(np.uint32).view(np.float32)
    if got.size != xs.size:
        print(f"FAIL: {got.size} results for {xs.size} inputs")
        sys.exit(1)
    ref = np.exp(xs.astype(np.float64))
    normal = (ref >= np.finfo(np.float32).tiny) & (ref <= np.finfo(np.float32).max)
    with np.errstate(over="ignore"):
        r32 = ref.astype(np.float32)
    ulp = np.abs(got.view(np.int32).astype(np.int64) - r32.view(np.int32).astype(np.int64))
    worst = int(ulp[normal].max())
    bad = []
    if worst > max_ulp:
        i = np.argmax(np.where(normal, ulp, -1))
        bad.append(f"{worst} ulp at x={xs[i]!r}: {got[i]!r} vs {r32[i]!r}")
    over = ref > np.finfo(np.float32).max
    if not np.all(np.isinf(got[over])):
        bad.append("exp of x > 88.73 is not inf")
    if not np.all(got[ref < 1e-45] == 0):
        bad.append("exp of x < -103.3 is not 0")
    if not np.isfinite(got[normal]).all():
        bad.append("non-finite result in the normal range")
    print(f"inputs={xs.size} normal={int(normal.sum())} max_ulp={worst} "
          f"mean_ulp={ulp[normal].mean():.3f} exact={(ulp[normal] == 0).mean():.3f}")
    print("FAIL: " + "; ".join(bad) if bad else "OK")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen()
    else:
        check(sys.argv[2], int(sys.argv[3]))
