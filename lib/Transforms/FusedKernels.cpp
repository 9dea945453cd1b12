//===- FusedKernels.cpp - fused CPU kernels for attention and norms -------===//
//
// The non-matmul ops of a Qwen layer, emitted on tensors as scf.forall over
// work items with scf.for loops of 1-D vector<16xf32> ops inside (the style
// of DenseKernels.cpp / QuantKernels.cpp). A head or row width that is not a
// multiple of 16 ends in a masked chunk.
//
// Attention (flash-decoding; the same kernel serves prefill):
//
//   NS  = splits of the S keys, so that B * KV * ceil(T / QB) * NS >= 32
//         work items where there are keys for it (chunks of whole key blocks)
//   forall (b, kv head, block of QB = 16 queries, split):
//     for each query head h of the kv head's group (its K/V rows stay in
//     L1/L2 across the group) and each query t of the block:
//       q = q[b, t, h] in NC = ceil(D / 16) registers
//       for key blocks of 16 in [s0, min(s1, t + P + 1)):   (causal: later
//                                          keys, and blocks, are never read)
//         x_j = (q . K[s_j]) * scale, -inf where masked
//         m' = max(m, max_j x_j); p_j = exp(x_j - m') (0 where masked)
//         a = exp(m - m'); l = l a + sum p_j; acc = acc a + sum_j p_j V[s_j]
//       part[b, h, t, split] = (acc, m, l)
//   forall (b, t): out[b, t, h] = sum_i acc_i w_i / sum_i l_i w_i,
//                  w_i = exp(m_i - max_i m_i)  (0 for an empty split; a row
//                  with every key masked gives 0, as the reference)
//
// so the [B, H, T, S] scores of the reference lowering never exist: the
// partials are [B, H, T, NS, D] (NS = 1 in a 512-token prefill of
// Qwen2.5-0.5B: 64 items without splitting). The present K/V the op returns
// (past then new) is one vectorized row copy per (batch, kv head): the
// runtime passes the cache in and takes it out, so the copy itself stays.
//
// RMSNorm, RoPE and SwiGLU: forall over blocks of 4 tokens (along the last
// leading dim; one item per index of the others); RMSNorm reads each row (each head's part per head) twice
// (sum of squares, then x * rsqrt(ss / n + eps) * w); RoPE computes cos/sin
// of the rotate-half frequencies once per token and rotates every head with
// them; SwiGLU is g / (1 + exp(-g)) * u chunk by chunk. Each computes the
// reference's formula in the same order (only the sum of squares is
// reassociated).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/FusedKernels.h"
#include "qwen/Transforms/KernelSupport.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace qwen {

SmallVector<float> ropeInvFreq(RoPEOp op) {
  int64_t rd = op.getEffectiveRotaryDim();
  double theta = op.getTheta().convertToDouble();
  SmallVector<float> f;
  for (int64_t i = 0; i < rd / 2; ++i)
    f.push_back((float)std::pow(theta, -2.0 * (double)i / (double)rd));
  return f;
}

namespace {
constexpr int64_t kLanes = 16;       // f32 lanes of every vector value
constexpr int64_t kRowsPerItem = 4;  // tokens per work item (norm, rope, swiglu)
constexpr int64_t kQueryBlock = 16;  // queries per attention work item
constexpr int64_t kKeyBlock = 16;    // keys per online-softmax step
constexpr int64_t kTargetItems = 32; // attention work items for 2..16 threads

/// The builder, location and the few helpers every kernel uses. Nested
/// scf builders hand their body the same OpBuilder, so `b` is always at the
/// current insertion point.
struct Emitter {
  OpBuilder &b;
  Location l;
  VectorType vf;

  Emitter(OpBuilder &b, Location l) : b(b), l(l), vf(VectorType::get({kLanes}, b.getF32Type())) {}

  Value ci(int64_t v) { return arith::ConstantIndexOp::create(b, l, v); }
  Value cf(double v) { return arith::ConstantOp::create(b, l, b.getF32FloatAttr(v)); }
  Value splat(Value s) { return vector::BroadcastOp::create(b, l, vf, s); }
  Value splat(double v) { return splat(cf(v)); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, l, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, l, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, l, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, l, x, y); }
  Value ceilDiv(Value x, Value y) { return arith::CeilDivSIOp::create(b, l, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, l, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, l, x, y); }
  Value fma(Value x, Value y, Value acc) { return vector::FMAOp::create(b, l, x, y, acc); }
  Value reduce(vector::CombiningKind k, Value v) { return vector::ReductionOp::create(b, l, k, v); }
  Value dim(Value t, int64_t i) {
    auto rt = cast<RankedTensorType>(t.getType());
    return rt.isDynamicDim(i) ? tensor::DimOp::create(b, l, t, i).getResult() : ci(rt.getDimSize(i));
  }

  /// Lanes [0, n) of src[idx...] along its last dim, 0 beyond (n <= 16).
  Value read(Value src, ValueRange idx, int64_t n = kLanes) {
    if (n >= kLanes)
      return vector::TransferReadOp::create(b, l, vf, src, idx, cf(0.0), ArrayRef<bool>{true});
    auto rank = cast<RankedTensorType>(src.getType()).getRank();
    return vector::TransferReadOp::create(
        b, l, vf, src, idx, AffineMapAttr::get(AffineMap::getMinorIdentityMap(rank, 1, b.getContext())),
        cf(0.0), mask(n), b.getBoolArrayAttr({false}));
  }
  /// dst with lanes [0, n) of v written at idx.
  Value write(Value v, Value dst, ValueRange idx, int64_t n = kLanes) {
    if (n >= kLanes)
      return vector::TransferWriteOp::create(b, l, v, dst, idx, ArrayRef<bool>{true}).getResult();
    auto rank = cast<RankedTensorType>(dst.getType()).getRank();
    return vector::TransferWriteOp::create(
               b, l, dst.getType(), v, dst, idx,
               AffineMapAttr::get(AffineMap::getMinorIdentityMap(rank, 1, b.getContext())), mask(n),
               b.getBoolArrayAttr({false}))
        .getResult();
  }
  Value mask(int64_t n) {
    return vector::CreateMaskOp::create(b, l, VectorType::get({kLanes}, b.getI1Type()), ValueRange{ci(n)});
  }

  /// scf.for lo..hi step st; `body(iv, args)` returns the next args.
  SmallVector<Value> loop(Value lo, Value hi, Value st, ValueRange init,
                          function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto f = scf::ForOp::create(b, l, lo, hi, st, init, [&](OpBuilder &, Location, Value iv, ValueRange args) {
      scf::YieldOp::create(b, l, body(iv, args));
    });
    return SmallVector<Value>(f.getResults());
  }
  Value loop1(Value lo, Value hi, Value init, function_ref<Value(Value, Value)> body) {
    return loop(lo, hi, ci(1), init, [&](Value iv, ValueRange a) { return SmallVector<Value>{body(iv, a[0])}; })[0];
  }
  /// Chunks of 16 of a static width: an scf.for over the full ones, then the
  /// masked tail; `body(offset, lanes, args)` returns the next args.
  SmallVector<Value> chunks(int64_t width, ValueRange init,
                            function_ref<SmallVector<Value>(Value, int64_t, ValueRange)> body) {
    SmallVector<Value> cur(init);
    int64_t full = width / kLanes * kLanes;
    if (full > 0)
      cur = loop(ci(0), ci(full), ci(kLanes), cur, [&](Value off, ValueRange a) { return body(off, kLanes, a); });
    if (full < width)
      cur = body(ci(full), width - full, cur);
    return cur;
  }

  /// scf.forall over `n` items with shared outputs; `body(i, tiles)` returns
  /// the tiles to insert at the offsets / sizes that `tileOf(i)` gives (the
  /// last size is each output's own last dim).
  using Tile = std::pair<SmallVector<OpFoldResult>, SmallVector<OpFoldResult>>;
  SmallVector<Value> forall(Value n, ValueRange init, function_ref<Tile(Value)> tileOf,
                            function_ref<SmallVector<Value>(Value, ArrayRef<Value>)> body) {
    auto op = scf::ForallOp::create(b, l, ArrayRef<OpFoldResult>{n}, init, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(op.getBody());
    Value i = op.getInductionVars()[0];
    auto [offs, sizes] = tileOf(i);
    SmallVector<OpFoldResult> ones(offs.size(), b.getIndexAttr(1));
    SmallVector<SmallVector<OpFoldResult>> outSizes;
    SmallVector<Value> tiles;
    for (Value out : op.getRegionIterArgs()) {
      outSizes.push_back(sizes);
      outSizes.back().back() = b.getIndexAttr(cast<RankedTensorType>(out.getType()).getShape().back());
      tiles.push_back(tensor::ExtractSliceOp::create(b, l, out, offs, outSizes.back(), ones));
    }
    SmallVector<Value> res = body(i, tiles);
    b.setInsertionPointToStart(op.getTerminator().getBody());
    for (auto [r, out, sz] : llvm::zip(res, op.getRegionIterArgs(), outSizes))
      tensor::ParallelInsertSliceOp::create(b, l, r, out, offs, sz, ones);
    return SmallVector<Value>(op.getResults());
  }
};

/// An f32 tensor [lead..., W] (W static) seen as rows of W features.
struct Rows {
  Value x;
  int64_t W;
  SmallVector<Value> lead; ///< the leading dims
};

FailureOr<Rows> asRows(Emitter &e, Value x) {
  auto xt = dyn_cast<RankedTensorType>(x.getType());
  if (!xt || !xt.getElementType().isF32() || xt.getRank() < 2 || xt.isDynamicDim(xt.getRank() - 1))
    return failure();
  Rows rows{x, xt.getShape().back(), {}};
  for (int64_t i = 0; i + 1 < xt.getRank(); ++i)
    rows.lead.push_back(e.dim(x, i));
  return rows;
}

/// The results of types `rts` (x's shape, or x's with another last dim)
/// row by row: a forall over blocks of kRowsPerItem rows along the last
/// leading dim (one item per index of the others); `row(xIdx, tIdx, tiles)`
/// fills the row at leading indices xIdx of x, tIdx of the tiles, and
/// returns the tiles.
SmallVector<Value> forRowsN(Emitter &e, const Rows &rows, ArrayRef<RankedTensorType> rts,
                            function_ref<SmallVector<Value>(ArrayRef<Value>, ArrayRef<Value>, ArrayRef<Value>)> row) {
  int64_t nl = rows.lead.size();
  SmallVector<Value> inits;
  for (RankedTensorType rt : rts) {
    SmallVector<Value> dyn;
    for (int64_t i = 0; i < nl; ++i)
      if (rt.isDynamicDim(i))
        dyn.push_back(rows.lead[i]);
    inits.push_back(tensor::EmptyOp::create(e.b, e.l, rt, dyn));
  }
  Value blocks = e.ceilDiv(rows.lead.back(), e.ci(kRowsPerItem));
  Value items = blocks;
  for (int64_t i = 0; i + 1 < nl; ++i)
    items = e.mul(items, rows.lead[i]);
  // Leading indices of item i's first row.
  auto firstRow = [&](Value i) {
    SmallVector<Value> idx(nl);
    idx[nl - 1] = e.mul(arith::RemUIOp::create(e.b, e.l, i, blocks), e.ci(kRowsPerItem));
    Value rest = arith::DivUIOp::create(e.b, e.l, i, blocks);
    for (int64_t d = nl - 2; d >= 0; --d) {
      idx[d] = arith::RemUIOp::create(e.b, e.l, rest, rows.lead[d]);
      rest = arith::DivUIOp::create(e.b, e.l, rest, rows.lead[d]);
    }
    return idx;
  };
  auto tileOf = [&](Value i) -> Emitter::Tile {
    SmallVector<Value> idx = firstRow(i);
    Emitter::Tile t;
    for (int64_t d = 0; d < nl; ++d) {
      t.first.push_back(idx[d]);
      t.second.push_back(e.b.getIndexAttr(1));
    }
    t.second.back() = e.min(e.ci(kRowsPerItem), arith::SubIOp::create(e.b, e.l, rows.lead.back(), idx.back()));
    t.first.push_back(e.b.getIndexAttr(0));
    t.second.push_back(e.b.getIndexAttr(rows.W));
    return t;
  };
  return e.forall(items, inits, tileOf, [&](Value i, ArrayRef<Value> tiles) {
    SmallVector<Value> xIdx = firstRow(i);
    Value t0 = xIdx.back();
    SmallVector<Value> tIdx(nl, e.ci(0));
    return e.loop(e.ci(0), e.dim(tiles[0], nl - 1), e.ci(1), tiles, [&](Value mm, ValueRange ts) {
      xIdx.back() = e.add(t0, mm);
      tIdx.back() = mm;
      return row(xIdx, tIdx, SmallVector<Value>(ts));
    });
  });
}

/// forRowsN with the one result of type `rt`.
Value forRows(Emitter &e, const Rows &rows, RankedTensorType rt,
              function_ref<Value(ArrayRef<Value>, ArrayRef<Value>, Value)> row) {
  return forRowsN(e, rows, {rt}, [&](ArrayRef<Value> xi, ArrayRef<Value> ti, ArrayRef<Value> tiles) {
    return SmallVector<Value>{row(xi, ti, tiles[0])};
  })[0];
}

/// idx followed by `last`.
SmallVector<Value> at(ArrayRef<Value> idx, Value last) {
  SmallVector<Value> r(idx);
  r.push_back(last);
  return r;
}

} // namespace

namespace {
/// RMSNorm's row factor, rsqrt(sum x^2 / n + eps) over the N features of x
/// at row xi from column base (sums by chunks), splat to a vector.
Value rmsInvVec(Emitter &e, Value x, ArrayRef<Value> xi, Value base, int64_t N, Value n, Value eps) {
  Value acc = e.chunks(N, ValueRange{e.splat(0.0)}, [&](Value off, int64_t k, ValueRange a) {
    Value xv = e.read(x, at(xi, e.add(base, off)), k);
    return SmallVector<Value>{e.fma(xv, xv, a[0])};
  })[0];
  Value ss = e.reduce(vector::CombiningKind::ADD, acc);
  return e.splat(math::RsqrtOp::create(e.b, e.l, e.fadd(arith::DivFOp::create(e.b, e.l, ss, n), eps)));
}

/// SwiGLU's lanes [0, k) at column off of row xi: g / (1 + exp(-g)) * u
/// (`one` a splat of 1).
Value siluMulChunk(Emitter &e, Value g, Value u, ArrayRef<Value> xi, Value off, int64_t k, Value one) {
  Value gv = e.read(g, at(xi, off), k), uv = e.read(u, at(xi, off), k);
  Value den = arith::AddFOp::create(e.b, e.l, one, math::ExpOp::create(e.b, e.l, arith::NegFOp::create(e.b, e.l, gv)));
  return e.fmul(arith::DivFOp::create(e.b, e.l, gv, den), uv);
}
} // namespace

FailureOr<Value> lowerFusedRMSNorm(OpBuilder &b, Location l, RMSNormOp op, const WeightOnlyParams &p) {
  if (!p.fused)
    return failure();
  Emitter e(b, l);
  auto wt = dyn_cast<RankedTensorType>(op.getWeight().getType());
  auto rt = cast<RankedTensorType>(op.getType());
  auto xt = dyn_cast<RankedTensorType>(op.getInput().getType());
  if (!wt || !wt.hasStaticShape() || !wt.getElementType().isF32() || !xt || xt.getRank() < 2 ||
      xt.isDynamicDim(xt.getRank() - 1))
    return failure();
  // A norm over N features, `heads` of them per token.
  int64_t W = xt.getShape().back(), N = op.getPerHead() ? wt.getDimSize(0) : W;
  if (N <= 0 || W % N != 0 || wt.getDimSize(0) != N)
    return failure();
  FailureOr<Rows> rows = asRows(e, op.getInput());
  if (failed(rows))
    return failure();
  Value x = rows->x, w = op.getWeight();
  Value n = e.cf((double)N), eps = e.cf(op.getEpsilon().convertToDouble());
  return forRows(e, *rows, rt, [&](ArrayRef<Value> xi, ArrayRef<Value> ti, Value tile) {
    return e.loop1(e.ci(0), e.ci(W / N), tile, [&](Value h, Value t) {
      Value base = e.mul(h, e.ci(N));
      Value invV = rmsInvVec(e, x, xi, base, N, n, eps);
      return e.chunks(N, ValueRange{t}, [&](Value off, int64_t k, ValueRange a) {
        Value col = e.add(base, off);
        Value yv = e.fmul(e.fmul(e.read(x, at(xi, col), k), invV), e.read(w, {off}, k));
        return SmallVector<Value>{e.write(yv, a[0], at(ti, col), k)};
      })[0];
    });
  });
}

FailureOr<Value> lowerFusedSiluMul(OpBuilder &b, Location l, SiluMulOp op, const WeightOnlyParams &p) {
  if (!p.fused)
    return failure();
  Emitter e(b, l);
  FailureOr<Rows> g = asRows(e, op.getGate()), u = asRows(e, op.getUp());
  if (failed(g) || failed(u))
    return failure();
  Value one = e.splat(1.0);
  return forRows(e, *g, cast<RankedTensorType>(op.getType()), [&](ArrayRef<Value> xi, ArrayRef<Value> ti, Value tile) {
    return e.chunks(g->W, ValueRange{tile}, [&](Value off, int64_t k, ValueRange a) {
      Value yv = siluMulChunk(e, g->x, u->x, xi, off, k, one);
      return SmallVector<Value>{e.write(yv, a[0], at(ti, off), k)};
    })[0];
  });
}

namespace {

/// The per-token int8 quantization of rows y of x's shape (see
/// FusedKernels.h): `rowInit(xi)` runs once per row first (a norm's 1/rms),
/// `chunk(xi, off, k)` gives lanes [0, k) of y at column off (0 beyond).
FailureOr<SmallVector<Value>> quantizeRows(Emitter &e, const Rows &rows, function_ref<void(ArrayRef<Value>)> rowInit,
                                           function_ref<Value(ArrayRef<Value>, Value, int64_t)> chunk) {
  OpBuilder &b = e.b;
  Location l = e.l;
  auto xt = cast<RankedTensorType>(rows.x.getType());
  auto qT = RankedTensorType::get(xt.getShape(), b.getI8Type());
  SmallVector<int64_t> sShape(xt.getShape());
  sShape.back() = 1;
  auto sT = RankedTensorType::get(sShape, b.getF32Type());
  auto vq = VectorType::get({kLanes}, b.getI8Type());
  Value zeroV = e.splat(0.0);
  SmallVector<Value> res = forRowsN(e, rows, {qT, sT}, [&](ArrayRef<Value> xi, ArrayRef<Value> ti, ArrayRef<Value> tiles) {
    rowInit(xi);
    Value amaxV = e.chunks(rows.W, ValueRange{zeroV}, [&](Value off, int64_t k, ValueRange a) {
      Value av = math::AbsFOp::create(b, l, chunk(xi, off, k));
      return SmallVector<Value>{arith::MaximumFOp::create(b, l, a[0], av).getResult()};
    })[0];
    Value amax = e.reduce(vector::CombiningKind::MAXIMUMF, amaxV);
    Value sc = arith::DivFOp::create(b, l, amax, e.cf(127.0));
    Value qTile = e.chunks(rows.W, ValueRange{tiles[0]}, [&](Value off, int64_t k, ValueRange a) {
      Value qv = quantizeToCode(b, l, chunk(xi, off, k), sc, 127.0, vq);
      return SmallVector<Value>{e.write(qv, a[0], at(ti, off), k)};
    })[0];
    Value sTile = tensor::InsertOp::create(b, l, sc, tiles[1], at(ti, e.ci(0)));
    return SmallVector<Value>{qTile, sTile};
  });
  return res;
}

} // namespace

FailureOr<SmallVector<Value>> lowerFusedDynamicQuantize(OpBuilder &b, Location l, qquant::DynamicQuantizeOp op,
                                                        const WeightOnlyParams &p) {
  if (!p.fused || op.getBits() != 8 || !op.getPerToken())
    return failure();
  Emitter e(b, l);
  FailureOr<Rows> rows = asRows(e, op.getInput());
  if (failed(rows))
    return failure();
  Value x = rows->x;
  return quantizeRows(e, *rows, [](ArrayRef<Value>) {}, [&](ArrayRef<Value> xi, Value off, int64_t k) {
    return e.read(x, at(xi, off), k);
  });
}

FailureOr<SmallVector<Value>> lowerFusedRMSNormQuantize(OpBuilder &b, Location l, qquant::RMSNormQuantizeOp op,
                                                        const WeightOnlyParams &p) {
  if (!p.fused)
    return failure();
  Emitter e(b, l);
  auto wt = dyn_cast<RankedTensorType>(op.getWeight().getType());
  FailureOr<Rows> rows = asRows(e, op.getInput());
  if (failed(rows) || !wt || !wt.hasStaticShape() || wt.getDimSize(0) != rows->W)
    return failure();
  Value x = rows->x, w = op.getWeight();
  const int64_t N = rows->W;
  Value n = e.cf((double)N), eps = e.cf(op.getEpsilon().convertToDouble());
  Value invV;
  // lowerFusedRMSNorm's arithmetic: ss by chunks, x * rsqrt(ss / n + eps) * w.
  auto rowInit = [&](ArrayRef<Value> xi) { invV = rmsInvVec(e, x, xi, e.ci(0), N, n, eps); };
  return quantizeRows(e, *rows, rowInit, [&](ArrayRef<Value> xi, Value off, int64_t k) {
    return e.fmul(e.fmul(e.read(x, at(xi, off), k), invV), e.read(w, {off}, k));
  });
}

FailureOr<SmallVector<Value>> lowerFusedSiluMulQuantize(OpBuilder &b, Location l, qquant::SiluMulQuantizeOp op,
                                                        const WeightOnlyParams &p) {
  if (!p.fused)
    return failure();
  Emitter e(b, l);
  FailureOr<Rows> g = asRows(e, op.getGate()), u = asRows(e, op.getUp());
  if (failed(g) || failed(u) || g->W != u->W)
    return failure();
  Value one = e.splat(1.0);
  // lowerFusedSiluMul's arithmetic: g / (1 + exp(-g)) * u.
  return quantizeRows(e, *g, [](ArrayRef<Value>) {}, [&](ArrayRef<Value> xi, Value off, int64_t k) {
    return siluMulChunk(e, g->x, u->x, xi, off, k, one);
  });
}

FailureOr<Value> lowerFusedRoPE(OpBuilder &b, Location l, RoPEOp op, const WeightOnlyParams &p) {
  if (!p.fused || op.getStyle() != RoPEStyle::half)
    return failure();
  Emitter e(b, l);
  auto xt = dyn_cast<RankedTensorType>(op.getInput().getType());
  auto pt = dyn_cast<RankedTensorType>(op.getPositions().getType());
  int64_t D = op.getHeadDim(), rd = op.getEffectiveRotaryDim(), half = rd / 2;
  if (!xt || !pt || xt.getRank() < 2 || pt.getRank() != xt.getRank() - 1 || xt.isDynamicDim(xt.getRank() - 1) ||
      D <= 0 || xt.getShape().back() % D != 0 || rd > D || rd % 2 != 0)
    return failure();
  FailureOr<Rows> rows = asRows(e, op.getInput());
  if (failed(rows))
    return failure();
  Value pos = op.getPositions();
  SmallVector<float> f = ropeInvFreq(op);
  Value freq;
  if (half > 0)
    freq = arith::ConstantOp::create(b, l, DenseElementsAttr::get(RankedTensorType::get({half}, b.getF32Type()),
                                                                  ArrayRef<float>(f)));
  int64_t NC = (half + kLanes - 1) / kLanes;
  auto lanes = [&](int64_t c, int64_t width) { return std::min(kLanes, width - c * kLanes); };
  Value x = rows->x;
  return forRows(e, *rows, cast<RankedTensorType>(op.getType()), [&](ArrayRef<Value> xi, ArrayRef<Value> ti,
                                                                      Value tile) {
    // cos/sin of this token's angles, once for all heads.
    Value pf = arith::SIToFPOp::create(b, l, b.getF32Type(), tensor::ExtractOp::create(b, l, pos, xi));
    SmallVector<Value> cs, sn;
    for (int64_t c = 0; c < NC; ++c) {
      Value ang = e.fmul(e.splat(pf), e.read(freq, {e.ci(c * kLanes)}, lanes(c, half)));
      cs.push_back(math::CosOp::create(b, l, ang));
      sn.push_back(math::SinOp::create(b, l, ang));
    }
    return e.loop1(e.ci(0), e.ci(rows->W / D), tile, [&](Value h, Value t) {
      Value base = e.mul(h, e.ci(D));
      for (int64_t c = 0; c < NC; ++c) {
        int64_t k = lanes(c, half);
        Value i1 = e.add(base, e.ci(c * kLanes)), i2 = e.add(base, e.ci(half + c * kLanes));
        Value x1 = e.read(x, at(xi, i1), k), x2 = e.read(x, at(xi, i2), k);
        Value y1 = arith::SubFOp::create(b, l, e.fmul(x1, cs[c]), e.fmul(x2, sn[c]));
        Value y2 = e.fadd(e.fmul(x2, cs[c]), e.fmul(x1, sn[c]));
        t = e.write(y1, t, at(ti, i1), k);
        t = e.write(y2, t, at(ti, i2), k);
      }
      // Features past the rotary part pass through.
      for (int64_t c = rd; c < D; c += kLanes) {
        Value i = e.add(base, e.ci(c));
        t = e.write(e.read(x, at(xi, i), std::min(kLanes, D - c)), t, at(ti, i), std::min(kLanes, D - c));
      }
      return t;
    });
  });
}

bool fusedAttentionApplies(AttentionOp op, const WeightOnlyParams &p) {
  const int64_t NH = op.getNumHeads(), KV = op.getNumKvHeads(), D = op.getHeadDim();
  auto rows = [](Value v, int64_t width) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    return t && t.getRank() == 3 && t.getElementType().isF32() && t.getShape()[2] == width;
  };
  auto past = [&](Value v) {
    auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : RankedTensorType();
    return !v || (t && t.getRank() == 4 && t.getElementType().isF32());
  };
  auto mt = op.getMask() ? dyn_cast<RankedTensorType>(op.getMask().getType()) : RankedTensorType();
  return p.fused && KV > 0 && D > 0 && NH % KV == 0 && rows(op.getQuery(), NH * D) && rows(op.getKey(), KV * D) &&
         rows(op.getValue(), KV * D) && past(op.getPastKey()) && past(op.getPastValue()) &&
         (!op.getMask() || (mt && mt.getRank() == 2));
}

Value lowerFusedPresentKV(OpBuilder &b, Location l, Value past, Value nw, int64_t KV, int64_t D,
                          RankedTensorType rt) {
  Emitter e(b, l);
  const int64_t NC = (D + kLanes - 1) / kLanes;
  auto lanes = [&](int64_t c) { return std::min(kLanes, D - c * kLanes); };
  Value Bv = e.dim(nw, 0), Tv = e.dim(nw, 1), Pv = past ? e.dim(past, 2) : e.ci(0);
  Value Sv = e.add(Pv, Tv);
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < 4; ++i)
    if (rt.isDynamicDim(i))
      dyn.push_back(i == 0 ? Bv : i == 1 ? e.ci(KV) : i == 2 ? Sv : e.ci(D));
  Value init = tensor::EmptyOp::create(b, l, rt, dyn);
  auto headOf = [&](Value i) {
    return std::pair<Value, Value>{arith::DivUIOp::create(b, l, i, e.ci(KV)),
                                   arith::RemUIOp::create(b, l, i, e.ci(KV))};
  };
  auto tileOf = [&](Value i) -> Emitter::Tile {
    auto [bb, h] = headOf(i);
    return {{bb, h, b.getIndexAttr(0), b.getIndexAttr(0)},
            {b.getIndexAttr(1), b.getIndexAttr(1), Sv, b.getIndexAttr(D)}};
  };
  return e.forall(e.mul(Bv, e.ci(KV)), init, tileOf, [&](Value i, ArrayRef<Value> tiles) {
    Value bb, h;
    std::tie(bb, h) = headOf(i);
    Value z = e.ci(0);
    // Row by row: D contiguous floats from the past, then from the new
    // token's head slice.
    auto copyRows = [&](Value t, Value n, function_ref<SmallVector<Value>(Value, Value)> src, Value dst0) {
      return e.loop1(z, n, t, [&](Value r, Value tt) {
        for (int64_t c = 0; c < NC; ++c) {
          SmallVector<Value> si = src(r, e.ci(c * kLanes));
          tt = e.write(e.read(si[0], ArrayRef<Value>(si).drop_front(), lanes(c)), tt,
                       {z, z, e.add(dst0, r), e.ci(c * kLanes)}, lanes(c));
        }
        return tt;
      });
    };
    Value t = tiles[0];
    if (past)
      t = copyRows(t, Pv, [&](Value r, Value c) { return SmallVector<Value>{past, bb, h, r, c}; }, z);
    t = copyRows(t, Tv, [&](Value r, Value c) {
      return SmallVector<Value>{nw, bb, r, e.add(e.mul(h, e.ci(D)), c)};
    }, Pv);
    return SmallVector<Value>{t};
  })[0];
}

Value lowerFusedAttention(OpBuilder &b, Location l, AttentionOp op, Value K, Value V, Value P) {
  const int64_t NH = op.getNumHeads(), KV = op.getNumKvHeads(), D = op.getHeadDim();
  const int64_t G = NH / KV, NC = (D + kLanes - 1) / kLanes;
  Value q = op.getQuery(), mask = op.getMask();
  auto ot = cast<RankedTensorType>(op.getResult().getType());
  Emitter e(b, l);
  Type f32 = b.getF32Type();
  const bool causal = op.getCausal();
  auto lanes = [&](int64_t c) { return std::min(kLanes, D - c * kLanes); };
  Value Bv = e.dim(q, 0), Tv = e.dim(q, 1), Sv = e.dim(K, 2);
  Value scale = e.cf(op.getEffectiveScale());
  Value ninf = e.cf(-std::numeric_limits<double>::infinity());

  // Work: (b, kv head, query block, split); the split count gives the
  // threads work in decode (one query), whole key blocks each.
  Value tBlocks = e.ceilDiv(Tv, e.ci(kQueryBlock));
  Value items0 = e.max(e.ci(1), e.mul(e.mul(Bv, e.ci(KV)), tBlocks));
  Value keyBlocks = e.ceilDiv(Sv, e.ci(kKeyBlock));
  Value ns0 = e.max(e.ci(1), e.min(keyBlocks, e.ceilDiv(e.ci(kTargetItems), items0)));
  Value chunk = e.max(e.ci(kKeyBlock), e.mul(e.ceilDiv(keyBlocks, ns0), e.ci(kKeyBlock)));
  Value NS = e.ceilDiv(Sv, chunk);
  Value items = e.mul(e.mul(e.mul(Bv, e.ci(KV)), tBlocks), NS);

  int64_t dyn = ShapedType::kDynamic;
  auto partT = RankedTensorType::get({dyn, NH, dyn, dyn, D}, f32);
  auto mlT = RankedTensorType::get({dyn, NH, dyn, dyn, 2}, f32);
  Value part0 = tensor::EmptyOp::create(b, l, partT, ValueRange{Bv, Tv, NS});
  Value ml0 = tensor::EmptyOp::create(b, l, mlT, ValueRange{Bv, Tv, NS});
  struct Item {
    Value b, kvh, t0, sp;
  };
  auto itemOf = [&](Value i) {
    Value sp = arith::RemUIOp::create(b, l, i, NS);
    Value r = arith::DivUIOp::create(b, l, i, NS);
    Value tb = arith::RemUIOp::create(b, l, r, tBlocks);
    r = arith::DivUIOp::create(b, l, r, tBlocks);
    return Item{arith::DivUIOp::create(b, l, r, e.ci(KV)), arith::RemUIOp::create(b, l, r, e.ci(KV)),
                e.mul(tb, e.ci(kQueryBlock)), sp};
  };
  auto tileOf = [&](Value i) -> Emitter::Tile {
    Item it = itemOf(i);
    Value tn = e.min(e.ci(kQueryBlock), arith::SubIOp::create(b, l, Tv, it.t0));
    auto I = [&](int64_t v) -> OpFoldResult { return b.getIndexAttr(v); };
    return {{it.b, e.mul(it.kvh, e.ci(G)), it.t0, it.sp, I(0)}, {I(1), I(G), tn, I(1), I(D)}};
  };
  auto partials = e.forall(items, ValueRange{part0, ml0}, tileOf, [&](Value i, ArrayRef<Value> tiles) {
    Item it = itemOf(i);
    Value tn = e.dim(tiles[0], 2);
    Value s0 = e.mul(it.sp, chunk);
    Value s1 = e.min(Sv, e.add(s0, chunk));
    Value sLast = arith::SubIOp::create(b, l, Sv, e.ci(1));
    return e.loop(e.ci(0), e.ci(G), e.ci(1), tiles, [&](Value g, ValueRange gt) {
      Value h = e.add(e.mul(it.kvh, e.ci(G)), g);
      return e.loop(e.ci(0), tn, e.ci(1), gt, [&](Value tt, ValueRange ts) {
        Value t = e.add(it.t0, tt);
        SmallVector<Value> qc;
        for (int64_t c = 0; c < NC; ++c)
          qc.push_back(e.read(q, {it.b, t, e.add(e.mul(h, e.ci(D)), e.ci(c * kLanes))}, lanes(c)));
        Value lim = causal ? e.min(s1, e.add(e.add(t, P), e.ci(1))) : s1;
        SmallVector<Value> init{ninf, e.cf(0.0)};
        init.append(NC, e.splat(0.0));
        SmallVector<Value> st = e.loop(s0, lim, e.ci(kKeyBlock), init, [&](Value sb, ValueRange a) {
          Value m = a[0], sum = a[1];
          SmallVector<Value> scores, keep, rows;
          for (int64_t j = 0; j < kKeyBlock; ++j) {
            Value s = e.add(sb, e.ci(j));
            Value row = e.min(s, sLast); // lanes past the split are dropped
            Value ok = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, s, lim);
            if (mask) {
              Value mv = tensor::ExtractOp::create(b, l, mask, ValueRange{it.b, row});
              Value z = arith::ConstantOp::create(b, l, b.getIntegerAttr(mv.getType(), 0));
              ok = arith::AndIOp::create(b, l, ok, arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, mv, z));
            }
            Value dot = e.splat(0.0);
            for (int64_t c = 0; c < NC; ++c)
              dot = e.fma(qc[c], e.read(K, {it.b, it.kvh, row, e.ci(c * kLanes)}, lanes(c)), dot);
            scores.push_back(e.fmul(e.reduce(vector::CombiningKind::ADD, dot), scale));
            keep.push_back(ok);
            rows.push_back(row);
          }
          Value keepV = vector::FromElementsOp::create(b, l, VectorType::get({kKeyBlock}, b.getI1Type()), keep);
          Value x = arith::SelectOp::create(b, l, keepV, vector::FromElementsOp::create(b, l, e.vf, scores),
                                            e.splat(ninf));
          Value mn = arith::MaximumFOp::create(b, l, m, e.reduce(vector::CombiningKind::MAXIMUMF, x));
          // Masked lanes (and a block with every key masked, mn = -inf)
          // weigh 0; alpha = 1 while nothing was kept (acc, sum are 0).
          Value pv = arith::SelectOp::create(
              b, l, keepV, math::ExpOp::create(b, l, arith::SubFOp::create(b, l, x, e.splat(mn))), e.splat(0.0));
          Value same = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, m, mn);
          Value alpha =
              arith::SelectOp::create(b, l, same, e.cf(1.0), math::ExpOp::create(b, l, arith::SubFOp::create(b, l, m, mn)));
          SmallVector<Value> next{mn, e.fadd(e.fmul(sum, alpha), e.reduce(vector::CombiningKind::ADD, pv))};
          Value alphaV = e.splat(alpha);
          for (int64_t c = 0; c < NC; ++c)
            next.push_back(e.fmul(a[2 + c], alphaV));
          for (int64_t j = 0; j < kKeyBlock; ++j) {
            Value pj = e.splat(vector::ExtractOp::create(b, l, pv, ArrayRef<int64_t>{j}));
            for (int64_t c = 0; c < NC; ++c)
              next[2 + c] = e.fma(pj, e.read(V, {it.b, it.kvh, rows[j], e.ci(c * kLanes)}, lanes(c)), next[2 + c]);
          }
          return next;
        });
        Value z = e.ci(0);
        Value accT = ts[0];
        for (int64_t c = 0; c < NC; ++c)
          accT = e.write(st[2 + c], accT, {z, g, tt, z, e.ci(c * kLanes)}, lanes(c));
        Value mlv = vector::FromElementsOp::create(b, l, VectorType::get({2}, f32), ValueRange{st[0], st[1]});
        Value mlOut = vector::TransferWriteOp::create(b, l, mlv, ts[1], ValueRange{z, g, tt, z, z},
                                                      ArrayRef<bool>{true})
                          .getResult();
        return SmallVector<Value>{accT, mlOut};
      });
    });
  });
  Value part = partials[0], ml = partials[1];

  // Combine the splits of each (b, t, h).
  SmallVector<Value> oDyn;
  if (ot.isDynamicDim(0))
    oDyn.push_back(Bv);
  if (ot.isDynamicDim(1))
    oDyn.push_back(Tv);
  Value out0 = tensor::EmptyOp::create(b, l, ot, oDyn);
  auto rowOf = [&](Value i) -> Emitter::Tile {
    Value bb = arith::DivUIOp::create(b, l, i, Tv), t = arith::RemUIOp::create(b, l, i, Tv);
    return {{bb, t, b.getIndexAttr(0)}, {b.getIndexAttr(1), b.getIndexAttr(1), b.getIndexAttr(NH * D)}};
  };
  return e.forall(e.mul(Bv, Tv), ValueRange{out0}, rowOf, [&](Value i, ArrayRef<Value> tiles) {
    Value bb = arith::DivUIOp::create(b, l, i, Tv), t = arith::RemUIOp::create(b, l, i, Tv);
    Value z = e.ci(0);
    return SmallVector<Value>{e.loop1(e.ci(0), e.ci(NH), tiles[0], [&](Value h, Value row) {
      auto stat = [&](Value sp, int64_t k) {
        return tensor::ExtractOp::create(b, l, ml, ValueRange{bb, h, t, sp, e.ci(k)}).getResult();
      };
      Value M = e.loop1(e.ci(0), NS, ninf, [&](Value sp, Value m) {
        return arith::MaximumFOp::create(b, l, m, stat(sp, 0));
      });
      SmallVector<Value> init{e.cf(0.0)};
      init.append(NC, e.splat(0.0));
      SmallVector<Value> acc = e.loop(e.ci(0), NS, e.ci(1), init, [&](Value sp, ValueRange a) {
        Value mi = stat(sp, 0);
        Value empty = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, mi, ninf);
        Value w = arith::SelectOp::create(b, l, empty, e.cf(0.0),
                                          math::ExpOp::create(b, l, arith::SubFOp::create(b, l, mi, M)));
        SmallVector<Value> next{e.fadd(a[0], e.fmul(stat(sp, 1), w))};
        for (int64_t c = 0; c < NC; ++c)
          next.push_back(e.fma(e.splat(w), e.read(part, {bb, h, t, sp, e.ci(c * kLanes)}, lanes(c)), a[1 + c]));
        return next;
      });
      // A zero sum (every key masked) gives 0.
      Value isZero = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, acc[0], e.cf(0.0));
      Value den = e.splat(acc[0]);
      for (int64_t c = 0; c < NC; ++c) {
        Value v = arith::SelectOp::create(b, l, isZero, e.splat(0.0), arith::DivFOp::create(b, l, acc[1 + c], den));
        row = e.write(v, row, {z, z, e.add(e.mul(h, e.ci(D)), e.ci(c * kLanes))}, lanes(c));
      }
      return row;
    })};
  })[0];
}

} // namespace qwen
