"""Whole-model numerical end-to-end check of a lowered ONNX fixture.

  run_fixture_jit.py LOWERED.mlir FIXTURE.npz --shared-libs=LIBS \
      --pipeline="--one-shot-bufferize=... --convert-to-llvm ..." [--work=PREFIX]

LOWERED.mlir is a fixture after import, raising, weight materialization and
internalization, and --qwen-lower-model-to-linalg: one @main whose arguments
and results carry onnx.name attributes (dynamically shaped tensors). @main is
renamed to @model and a new @main() is appended that materializes each .npz
input as an arith.constant with its static shape, tensor.casts it to the
argument type, calls @model and prints every result with printMemrefF32. The
module is lowered with `qwen-opt PIPELINE`, run with `mlir-runner` (both
found on PATH unless --qwen-opt / --mlir-runner are given), and every printed
output is compared with the same-named onnxruntime output in the .npz:

  max_rel_err = |got - ref|.max() / max(1, |ref|.max())  must be <= TOL (1e-4)

Also checks that the greedy next token (argmax of the last position's logits)
matches onnxruntime's. Prints `name: max_rel_err=...` per output and PASS, or
exits non-zero listing the worst offenders.
"""
import argparse
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np

TOL = 1e-4

ELT = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64",
       np.dtype(np.int32): "i32", np.dtype(np.bool_): "i1"}


def fmt(a):
    flat = a.reshape(-1)
    if a.dtype == np.float32:
        vals = [repr(float(x)) for x in flat]
    elif a.dtype == np.bool_:
        vals = ["true" if x else "false" for x in flat]
    else:
        vals = [str(int(x)) for x in flat]

    def nest(vals, shape):
        if not shape:
            return vals[0]
        step = len(vals) // shape[0] if shape[0] else 0
        return "[" + ", ".join(nest(vals[i * step:(i + 1) * step], shape[1:])
                               for i in range(shape[0])) + "]"
    return nest(vals, list(a.shape))


def ttype(a):
    return "tensor<" + "".join(f"{d}x" for d in a.shape) + ELT[a.dtype] + ">"


def split_top(s):
    """Splits s at top-level commas (outside <>, (), [], {}, quotes)."""
    parts, depth, cur, q = [], 0, "", False
    for ch in s:
        if ch == '"':
            q = not q
        elif not q and ch in "<([{":
            depth += 1
        elif not q and ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0 and not q:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def signature(text):
    """Returns ([(onnx name, type)] args, [(onnx name, type)] results) of @main."""
    m = re.search(r"func\.func @main\(", text)
    if not m:
        raise SystemExit("no func.func @main in the lowered module")
    i, depth = m.end(), 1
    while depth:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    args_s = text[m.end():i - 1]
    rest = text[i:text.index("{\n", i)] if "{\n" in text[i:] else text[i:]
    rest = rest.strip()
    assert rest.startswith("->"), rest[:80]
    rest = rest[2:].strip()
    if rest.startswith("("):
        rest = rest[1:rest.rindex(")")]
    name = re.compile(r'onnx\.name = "([^"]*)"')

    def ty(p):
        return re.match(r"(tensor<[^>]*>)", p).group(1)
    args = []
    for p in split_top(args_s):
        t = p.split(":", 1)[1].strip()
        args.append((name.search(p).group(1), ty(t)))
    results = [(name.search(p).group(1), ty(p)) for p in split_top(rest)]
    return args, results


def build(text, npz):
    args, results = signature(text)
    text = re.sub(r"func\.func @main\(", "func.func @model(", text, count=1)
    body = ["func.func private @printMemrefF32(tensor<*xf32>)",
            "func.func @main() {"]
    ins = []
    for i, (n, t) in enumerate(args):
        a = npz[n]
        body.append(f"  %c{i} = arith.constant dense<{fmt(a)}> : {ttype(a)}")
        body.append(f"  %a{i} = tensor.cast %c{i} : {ttype(a)} to {t}")
        ins.append(f"%a{i}")
    rts = ", ".join(t for _, t in results)
    outs = ", ".join(f"%r{i}" for i in range(len(results)))
    body.append(f"  {outs} = func.call @model({', '.join(ins)}) : "
                f"({', '.join(t for _, t in args)}) -> ({rts})")
    for i, (n, t) in enumerate(results):
        if not t.endswith("xf32>"):
            raise SystemExit(f"result {n} is not f32: {t}")
        body.append(f"  %p{i} = tensor.cast %r{i} : {t} to tensor<*xf32>")
        body.append(f"  func.call @printMemrefF32(%p{i}) : (tensor<*xf32>) -> ()")
    body += ["  return", "}"]
    # Append the driver inside the module's closing brace.
    end = text.rstrip().rindex("}")
    return text[:end] + "\n".join("  " + l for l in body) + "\n}\n", results


NUM = re.compile(r"-?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")


def parse(out, n):
    blocks = out.split("Unranked Memref")[1:]
    if len(blocks) != n:
        raise SystemExit(f"FAIL: expected {n} printed tensors, got {len(blocks)}\n{out[:2000]}")
    vals = []
    for blk in blocks:
        head, data = blk.split("data =", 1)
        sizes = [int(x) for x in re.search(r"sizes = \[([^\]]*)\]", head).group(1).split(",") if x.strip()]
        got = np.array([float(t) for t in NUM.findall(data)], np.float64)
        vals.append(got.reshape(sizes) if got.size == int(np.prod(sizes)) else got)
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lowered")
    ap.add_argument("npz")
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--shared-libs", required=True)
    ap.add_argument("--qwen-opt", default=shutil.which("qwen-opt"))
    ap.add_argument("--mlir-runner", default=shutil.which("mlir-runner"))
    ap.add_argument("--work", help="path prefix to keep the driver module and runner output")
    ap.add_argument("--tol", type=float, default=TOL,
                    help=f"max relative error (default {TOL})")
    o = ap.parse_args()
    tol = o.tol

    npz = np.load(o.npz)
    src, results = build(open(o.lowered).read(), npz)
    if o.work:
        open(o.work + ".driver.mlir", "w").write(src)
    llvm = subprocess.run([o.qwen_opt, "-"] + shlex.split(o.pipeline), input=src,
                          capture_output=True, text=True)
    if llvm.returncode:
        sys.stderr.write(llvm.stderr)
        raise SystemExit("FAIL: qwen-opt lowering to LLVM failed")
    run = subprocess.run([o.mlir_runner, "-e", "main", "-entry-point-result=void",
                          "-shared-libs=" + o.shared_libs],
                         input=llvm.stdout, capture_output=True, text=True)
    if o.work:
        open(o.work + ".runner.txt", "w").write(run.stdout)
    if run.returncode:
        sys.stderr.write(run.stderr)
        raise SystemExit("FAIL: mlir-runner failed")
    got = parse(run.stdout, len(results))

    bad = []
    for (n, _), g in zip(results, got):
        ref = npz[n].astype(np.float64)
        if g.shape != ref.shape:
            print(f"{n}: shape {g.shape} != reference {ref.shape}")
            bad.append((np.inf, n, None))
            continue
        err = np.abs(g - ref)
        rel = err.max() / max(1.0, np.abs(ref).max()) if err.size else 0.0
        if not np.isfinite(rel):
            rel = np.inf
        print(f"{n}: max_rel_err={rel:.3e}")
        if rel > tol:
            worst = np.argsort(err.reshape(-1))[::-1][:5]
            bad.append((rel, n, [f"at {tuple(int(i) for i in np.unravel_index(k, ref.shape))}: "
                                 f"got {g.reshape(-1)[k]:.6g} expected {ref.reshape(-1)[k]:.6g}"
                                 for k in worst]))
    names = [n for n, _ in results]
    if "logits" in names:
        lg = got[names.index("logits")]
        ref = npz["logits"]
        tok, ref_tok = int(np.argmax(lg[0, -1])), int(np.argmax(ref[0, -1]))
        print(f"next_token: {tok} (onnxruntime {ref_tok})")
        if tok != ref_tok:
            bad.append((np.inf, "next_token", [f"got {tok} expected {ref_tok}"]))
    if bad:
        print(f"FAIL (tolerance {tol}); worst offenders:")
        for rel, n, w in sorted(bad, key=lambda b: -b[0]):
            print(f"  {n}: max_rel_err={rel:.3e}")
            for x in w or []:
                print(f"    {x}")
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
