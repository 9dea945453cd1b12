//===- LowerModelToLinalg.cpp - qwen model ops to linalg-on-tensors -------===//
//
// --qwen-lower-model-to-linalg: rewrites qwen.add, silu_mul, linear, logits,
// rms_norm, embedding, rope and attention into linalg.generic / tensor /
// arith / math ops on f32 tensors, onnx.Constant into arith.constant, and
// the position computations (onnx.Shape, Gather, Unsqueeze, Squeeze, Range,
// Expand) into tensor / arith / linalg ops.
// See Passes.td for the exact semantics.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Passes.h"
#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Transforms/DenseKernels.h"
#include "qwen/Transforms/FusedKernels.h"
#include "qwen/Transforms/GPUAttention.h"
#include "qwen/Transforms/GPUKernels.h"
#include "qwen/Transforms/LowerONNXToLinalg.h"
#include "qwen/Transforms/QuantKernels.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_LOWERMODELTOLINALG
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

using utils::IteratorType;
using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

bool isF32Tensor(Type t) {
  auto rt = dyn_cast<RankedTensorType>(t);
  return rt && rt.getElementType().isF32();
}

bool allF32(Operation *op) {
  for (Type t : op->getResultTypes())
    if (!isF32Tensor(t))
      return false;
  for (Value v : op->getOperands())
    if (isa<RankedTensorType>(v.getType()) &&
        isa<FloatType>(cast<RankedTensorType>(v.getType()).getElementType()) &&
        !isF32Tensor(v.getType()))
      return false;
  return true;
}

Value cIdx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}
Value cF32(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr((float)v));
}

/// Size of dimension `i` of `v` as an index value (constant when static).
Value dimOf(OpBuilder &b, Location loc, Value v, int64_t i) {
  auto t = cast<RankedTensorType>(v.getType());
  if (!t.isDynamicDim(i))
    return cIdx(b, loc, t.getDimSize(i));
  return tensor::DimOp::create(b, loc, v, i);
}

/// Casts `v` to `t` when the (compatible) types differ.
Value castTo(OpBuilder &b, Location loc, Value v, Type t) {
  return v.getType() == t ? v : tensor::CastOp::create(b, loc, t, v).getResult();
}

/// tensor.empty of type `t`; `size(i)` gives dim i where it is dynamic.
Value emptyOf(OpBuilder &b, Location loc, RankedTensorType t,
              const std::function<Value(int64_t)> &size) {
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < t.getRank(); ++i)
    if (t.isDynamicDim(i))
      dyn.push_back(size(i));
  return tensor::EmptyOp::create(b, loc, t, dyn);
}

Value fill(OpBuilder &b, Location loc, Value init, double v) {
  return linalg::FillOp::create(b, loc, ValueRange{cF32(b, loc, v)},
                                ValueRange{init})
      .getResult(0);
}

Value generic(OpBuilder &b, Location loc, Type resultType, ValueRange ins,
              Value out, ArrayRef<AffineMap> maps,
              ArrayRef<IteratorType> iters, BodyFn body) {
  auto g = linalg::GenericOp::create(b, loc, TypeRange{resultType}, ins,
                                     ValueRange{out}, maps, iters, body);
  return g.getResult(0);
}

SmallVector<IteratorType> parallel(int64_t n) {
  return SmallVector<IteratorType>(n, IteratorType::parallel);
}

/// Index value as f32.
Value idxToF32(OpBuilder &b, Location loc, Value idx) {
  Value i = arith::IndexCastOp::create(b, loc, b.getI64Type(), idx);
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), i);
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

Value lowerElementwise(OpBuilder &b, Location loc, Value x, Value y,
                       RankedTensorType rt, bool silu) {
  int64_t r = rt.getRank();
  Value init = emptyOf(b, loc, rt, [&](int64_t i) { return dimOf(b, loc, x, i); });
  AffineMap id = b.getMultiDimIdentityMap(r);
  return generic(b, loc, rt, {x, y}, init, {id, id, id}, parallel(r),
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   Value res;
                   if (silu) {
                     // silu(g) * u = g / (1 + exp(-g)) * u
                     Value neg = arith::NegFOp::create(nb, l, a[0]);
                     Value e = math::ExpOp::create(nb, l, neg);
                     Value one = cF32(nb, l, 1.0);
                     Value den = arith::AddFOp::create(nb, l, one, e);
                     Value s = arith::DivFOp::create(nb, l, a[0], den);
                     res = arith::MulFOp::create(nb, l, s, a[1]);
                   } else {
                     res = arith::AddFOp::create(nb, l, a[0], a[1]);
                   }
                   linalg::YieldOp::create(nb, l, res);
                 });
}

//===----------------------------------------------------------------------===//
// Linear / logits: y[..., n] = sum_k x[..., k] * W[n, k] (+ bias[n])
//===----------------------------------------------------------------------===//

Value lowerLinear(OpBuilder &b, Location loc, Value x, Value w, Value bias,
                  RankedTensorType rt) {
  int64_t r = rt.getRank(); // same rank as x
  auto size = [&](int64_t i) {
    return i < r - 1 ? dimOf(b, loc, x, i) : dimOf(b, loc, w, 0);
  };
  Value init = emptyOf(b, loc, rt, size);
  MLIRContext *ctx = b.getContext();
  if (bias) {
    AffineMap id = b.getMultiDimIdentityMap(r);
    AffineMap bm = AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx);
    init = generic(b, loc, rt, {bias}, init, {bm, id}, parallel(r),
                   [&](OpBuilder &nb, Location l, ValueRange a) {
                     linalg::YieldOp::create(nb, l, a[0]);
                   });
  } else {
    init = fill(b, loc, init, 0.0);
  }
  // loops: (n, batch..., k). The output feature is the outermost loop so a
  // weight row is read from memory once and reused for every token of the
  // batch while it sits in cache (prefill), and threads split the weights.
  int64_t nl = r + 1;
  SmallVector<AffineExpr> xe, oe;
  for (int64_t i = 0; i < r - 1; ++i) {
    xe.push_back(getAffineDimExpr(i + 1, ctx));
    oe.push_back(getAffineDimExpr(i + 1, ctx));
  }
  AffineExpr n = getAffineDimExpr(0, ctx), k = getAffineDimExpr(r, ctx);
  xe.push_back(k);
  oe.push_back(n);
  AffineMap xm = AffineMap::get(nl, 0, xe, ctx);
  AffineMap wm = AffineMap::get(nl, 0, {n, k}, ctx);
  AffineMap om = AffineMap::get(nl, 0, oe, ctx);
  SmallVector<IteratorType> iters = parallel(r);
  iters.push_back(IteratorType::reduction);
  return generic(b, loc, rt, {x, w}, init, {xm, wm, om}, iters,
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   Value m = arith::MulFOp::create(nb, l, a[0], a[1]);
                   Value s = arith::AddFOp::create(nb, l, a[2], m);
                   linalg::YieldOp::create(nb, l, s);
                 });
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

FailureOr<Value> lowerRMSNorm(OpBuilder &b, Location loc, qwen::RMSNormOp op) {
  Value x = op.getInput(), w = op.getWeight();
  auto rt = cast<RankedTensorType>(op.getType());
  auto xt = cast<RankedTensorType>(x.getType());
  auto wt = cast<RankedTensorType>(w.getType());
  int64_t r = xt.getRank();
  MLIRContext *ctx = b.getContext();
  bool perHead = op.getPerHead();
  int64_t D = wt.getDimSize(0);
  if (perHead && ShapedType::isDynamic(D))
    return failure();
  // Sum of squares: ss[..., h] (per head) or ss[...] (plain).
  SmallVector<int64_t> ssShape(xt.getShape().drop_back());
  if (perHead) {
    int64_t last = xt.getDimSize(r - 1);
    if (ShapedType::isDynamic(last))
      return failure();
    ssShape.push_back(last / D);
  }
  auto ssType = RankedTensorType::get(ssShape, b.getF32Type());
  Value ssInit = emptyOf(b, loc, ssType, [&](int64_t i) { return dimOf(b, loc, x, i); });
  ssInit = fill(b, loc, ssInit, 0.0);
  int64_t nl = perHead ? r + 1 : r;
  SmallVector<AffineExpr> xe, se;
  for (int64_t i = 0; i < r - 1; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    se.push_back(getAffineDimExpr(i, ctx));
  }
  SmallVector<Value> ins{x};
  SmallVector<AffineMap> maps;
  if (perHead) {
    AffineExpr h = getAffineDimExpr(r - 1, ctx), d = getAffineDimExpr(r, ctx);
    xe.push_back(h * D + d);
    se.push_back(h);
    maps.push_back(AffineMap::get(nl, 0, xe, ctx));
    // The weight only provides the range of d.
    ins.push_back(w);
    maps.push_back(AffineMap::get(nl, 0, {d}, ctx));
  } else {
    xe.push_back(getAffineDimExpr(r - 1, ctx));
    maps.push_back(AffineMap::get(nl, 0, xe, ctx));
  }
  maps.push_back(AffineMap::get(nl, 0, se, ctx));
  SmallVector<IteratorType> iters = parallel(nl - 1);
  iters.push_back(IteratorType::reduction);
  Value ss = generic(b, loc, ssType, ins, ssInit, maps, iters,
                     [&](OpBuilder &nb, Location l, ValueRange a) {
                       Value sq = arith::MulFOp::create(nb, l, a[0], a[0]);
                       Value s = arith::AddFOp::create(nb, l, a.back(), sq);
                       linalg::YieldOp::create(nb, l, s);
                     });
  // Normalise.
  Value n = perHead ? cF32(b, loc, (double)D)
                    : idxToF32(b, loc, dimOf(b, loc, x, r - 1));
  Value eps = cF32(b, loc, op.getEpsilon().convertToDouble());
  Value init = emptyOf(b, loc, rt, [&](int64_t i) { return dimOf(b, loc, x, i); });
  AffineMap id = b.getMultiDimIdentityMap(r);
  SmallVector<AffineExpr> be;
  for (int64_t i = 0; i < r - 1; ++i)
    be.push_back(getAffineDimExpr(i, ctx));
  if (!perHead) {
    AffineMap sm = AffineMap::get(r, 0, be, ctx);
    AffineMap wm = AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx);
    Value norm = generic(b, loc, rt, {x, ss, w}, init, {id, sm, wm, id}, parallel(r),
                   [&](OpBuilder &nb, Location l, ValueRange a) {
                     Value mean = arith::DivFOp::create(nb, l, a[1], n);
                     Value v = arith::AddFOp::create(nb, l, mean, eps);
                     Value inv = math::RsqrtOp::create(nb, l, v);
                     Value y = arith::MulFOp::create(nb, l, a[0], inv);
                     y = arith::MulFOp::create(nb, l, y, a[2]);
                     linalg::YieldOp::create(nb, l, y);
                   });
    // On a CUDA target --qwen-gpu-fused-kernels implements the norm (this
    // generic and the sum of squares it reads) as one kernel per token.
    if (qwen::gpu::targetsGPU(op))
      qwen::gpu::tagRMSNormGPU(b, norm.getDefiningOp(), op.getEpsilon());
    return norm;
  }
  // Per head: loops (b..., j); h = j / D, d = j % D read with tensor.extract.
  return generic(b, loc, rt, {x}, init, {id, id}, parallel(r),
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   SmallVector<Value> idx;
                   for (int64_t i = 0; i < r - 1; ++i)
                     idx.push_back(linalg::IndexOp::create(nb, l, i));
                   Value j = linalg::IndexOp::create(nb, l, r - 1);
                   Value cD = cIdx(nb, l, D);
                   Value h = arith::DivUIOp::create(nb, l, j, cD);
                   Value d = arith::RemUIOp::create(nb, l, j, cD);
                   idx.push_back(h);
                   Value s = tensor::ExtractOp::create(nb, l, ss, idx);
                   Value wv = tensor::ExtractOp::create(nb, l, w, ValueRange{d});
                   Value mean = arith::DivFOp::create(nb, l, s, n);
                   Value v = arith::AddFOp::create(nb, l, mean, eps);
                   Value inv = math::RsqrtOp::create(nb, l, v);
                   Value y = arith::MulFOp::create(nb, l, a[0], inv);
                   y = arith::MulFOp::create(nb, l, y, wv);
                   linalg::YieldOp::create(nb, l, y);
                 });
}

//===----------------------------------------------------------------------===//
// Embedding: out[i..., h] = table[ids[i...], h]
//===----------------------------------------------------------------------===//

Value lowerEmbedding(OpBuilder &b, Location loc, qwen::EmbeddingOp op) {
  Value ids = op.getIds(), table = op.getTable();
  auto rt = cast<RankedTensorType>(op.getType());
  int64_t r = rt.getRank();
  MLIRContext *ctx = b.getContext();
  Value init = emptyOf(b, loc, rt, [&](int64_t i) {
    return i < r - 1 ? dimOf(b, loc, ids, i) : dimOf(b, loc, table, 1);
  });
  SmallVector<AffineExpr> ie;
  for (int64_t i = 0; i < r - 1; ++i)
    ie.push_back(getAffineDimExpr(i, ctx));
  AffineMap im = AffineMap::get(r, 0, ie, ctx);
  AffineMap id = b.getMultiDimIdentityMap(r);
  return generic(b, loc, rt, {ids}, init, {im, id}, parallel(r),
                 [&](OpBuilder &nb, Location l, ValueRange a) {
                   Value row = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[0]);
                   Value col = linalg::IndexOp::create(nb, l, r - 1);
                   Value v = tensor::ExtractOp::create(nb, l, table, ValueRange{row, col});
                   linalg::YieldOp::create(nb, l, v);
                 });
}

//===----------------------------------------------------------------------===//
// RoPE on the flattened [..., H*D] layout
//===----------------------------------------------------------------------===//

Value lowerRoPE(OpBuilder &b, Location loc, qwen::RoPEOp op) {
  Value x = op.getInput(), pos = op.getPositions();
  auto rt = cast<RankedTensorType>(op.getType());
  int64_t r = rt.getRank();
  MLIRContext *ctx = b.getContext();
  int64_t D = op.getHeadDim();
  int64_t rd = op.getEffectiveRotaryDim();
  int64_t half = rd / 2;
  bool interleaved = op.getStyle() == qwen::RoPEStyle::interleaved;
  // inv_freq[i] = theta^(-2i/rd), folded at compile time.
  SmallVector<float> invFreq = qwen::ropeInvFreq(op);
  auto ifType = RankedTensorType::get({std::max<int64_t>(half, 1)}, b.getF32Type());
  if (invFreq.empty())
    invFreq.push_back(0.0f);
  Value invFreqT = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(ifType, ArrayRef<float>(invFreq)));

  Value init = emptyOf(b, loc, rt, [&](int64_t i) { return dimOf(b, loc, x, i); });
  SmallVector<AffineExpr> pe;
  for (int64_t i = 0; i < r - 1; ++i)
    pe.push_back(getAffineDimExpr(i, ctx));
  AffineMap pm = AffineMap::get(r, 0, pe, ctx);
  AffineMap id = b.getMultiDimIdentityMap(r);
  Value rotated = generic(
      b, loc, rt, {x, pos}, init, {id, pm, id}, parallel(r),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        SmallVector<Value> idx;
        for (int64_t i = 0; i < r - 1; ++i)
          idx.push_back(linalg::IndexOp::create(nb, l, i));
        Value j = linalg::IndexOp::create(nb, l, r - 1);
        Value cD = cIdx(nb, l, D);
        Value d = arith::RemUIOp::create(nb, l, j, cD);
        Value base = arith::SubIOp::create(nb, l, j, d);
        Value inRot = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, d,
                                            cIdx(nb, l, rd));
        Value fi, partner, first; // frequency index, partner feature, is first of pair
        if (interleaved) {
          fi = arith::DivUIOp::create(nb, l, d, cIdx(nb, l, 2));
          Value odd = arith::RemUIOp::create(nb, l, d, cIdx(nb, l, 2));
          first = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, odd,
                                        cIdx(nb, l, 0));
          Value up = arith::AddIOp::create(nb, l, d, cIdx(nb, l, 1));
          Value dn = arith::SubIOp::create(nb, l, d, odd); // d-1 when odd
          partner = arith::SelectOp::create(nb, l, first, up, dn);
        } else {
          Value cH = cIdx(nb, l, std::max<int64_t>(half, 1));
          first = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult, d, cH);
          fi = arith::RemUIOp::create(nb, l, d, cH);
          Value up = arith::AddIOp::create(nb, l, d, cH);
          Value dn = arith::SubIOp::create(nb, l, d, cH);
          partner = arith::SelectOp::create(nb, l, first, up, dn);
        }
        // Outside the rotary part: read self (value unused).
        partner = arith::SelectOp::create(nb, l, inRot, partner, d);
        fi = arith::SelectOp::create(nb, l, inRot, fi, cIdx(nb, l, 0));
        SmallVector<Value> pidx(idx);
        pidx.push_back(arith::AddIOp::create(nb, l, base, partner));
        Value xp = tensor::ExtractOp::create(nb, l, x, pidx);
        Value f = tensor::ExtractOp::create(nb, l, invFreqT, ValueRange{fi});
        Value p = arith::SIToFPOp::create(nb, l, nb.getF32Type(), a[1]);
        Value ang = arith::MulFOp::create(nb, l, p, f);
        Value c = math::CosOp::create(nb, l, ang);
        Value s = math::SinOp::create(nb, l, ang);
        Value xc = arith::MulFOp::create(nb, l, a[0], c);
        Value ps = arith::MulFOp::create(nb, l, xp, s);
        Value rot1 = arith::SubFOp::create(nb, l, xc, ps);
        Value rot2 = arith::AddFOp::create(nb, l, xc, ps);
        Value rot = arith::SelectOp::create(nb, l, first, rot1, rot2);
        Value y = arith::SelectOp::create(nb, l, inRot, rot, a[0]);
        linalg::YieldOp::create(nb, l, y);
      });
  // On a CUDA target --qwen-gpu-fused-kernels implements the half-split
  // style over the whole head as a kernel of 4 pairs per thread.
  if (qwen::gpu::targetsGPU(op) && !interleaved && rd == D)
    qwen::gpu::tagRoPEGPU(b, rotated.getDefiningOp(), D);
  return rotated;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// [B, T, KV*D] -> [B, KV, T, D].
Value splitHeads(OpBuilder &b, Location loc, Value v, int64_t H, int64_t D) {
  auto vt = cast<RankedTensorType>(v.getType());
  MLIRContext *ctx = b.getContext();
  auto t = RankedTensorType::get({vt.getDimSize(0), H, vt.getDimSize(1), D},
                                 b.getF32Type());
  Value init = emptyOf(b, loc, t, [&](int64_t i) {
    return dimOf(b, loc, v, i == 0 ? 0 : 1);
  });
  AffineExpr bb = getAffineDimExpr(0, ctx), h = getAffineDimExpr(1, ctx),
             tt = getAffineDimExpr(2, ctx), d = getAffineDimExpr(3, ctx);
  AffineMap im = AffineMap::get(4, 0, {bb, tt, h * D + d}, ctx);
  return generic(b, loc, t, {v}, init, {im, b.getMultiDimIdentityMap(4)},
                 parallel(4), [&](OpBuilder &nb, Location l, ValueRange a) {
                   linalg::YieldOp::create(nb, l, a[0]);
                 });
}

/// concat(past, new) along dim 2 with the result type `rt`.
Value concatKV(OpBuilder &b, Location loc, Value past, Value nw,
               RankedTensorType rt) {
  Value P = dimOf(b, loc, past, 2);
  Value T = dimOf(b, loc, nw, 2);
  Value S = arith::AddIOp::create(b, loc, P, T);
  Value init = emptyOf(b, loc, rt, [&](int64_t i) {
    if (i == 2)
      return S;
    return dimOf(b, loc, nw, i);
  });
  auto sizes = [&](Value v) {
    SmallVector<OpFoldResult> s;
    for (int64_t i = 0; i < 4; ++i)
      s.push_back(tensor::getMixedSize(b, loc, v, i));
    return s;
  };
  SmallVector<OpFoldResult> zero(4, b.getIndexAttr(0)), one(4, b.getIndexAttr(1));
  Value r = tensor::InsertSliceOp::create(b, loc, past, init, zero, sizes(past), one);
  SmallVector<OpFoldResult> off(zero);
  off[2] = getAsOpFoldResult(P);
  return tensor::InsertSliceOp::create(b, loc, nw, r, off, sizes(nw), one);
}

/// The present key/value [B, KV, P+T, D] of an attention (past then new,
/// with the op's result types) and P, the number of past positions.
struct PresentKV {
  Value K, V, P;
};

PresentKV presentKV(OpBuilder &b, Location loc, qwen::AttentionOp op) {
  int64_t KV = op.getNumKvHeads(), D = op.getHeadDim();
  auto pkType = cast<RankedTensorType>(op.getPresentKey().getType());
  auto pvType = cast<RankedTensorType>(op.getPresentValue().getType());
  Value kNew = splitHeads(b, loc, op.getKey(), KV, D);
  Value vNew = splitHeads(b, loc, op.getValue(), KV, D);
  if (op.getPastKey())
    return {concatKV(b, loc, op.getPastKey(), kNew, pkType),
            concatKV(b, loc, op.getPastValue(), vNew, pvType),
            dimOf(b, loc, op.getPastKey(), 2)};
  return {castTo(b, loc, kNew, pkType), castTo(b, loc, vNew, pvType), cIdx(b, loc, 0)};
}

/// The reference: scores [B, H, T, S], masked, softmax, times V.
FailureOr<SmallVector<Value>> lowerAttention(OpBuilder &b, Location loc,
                                             qwen::AttentionOp op) {
  MLIRContext *ctx = b.getContext();
  int64_t NH = op.getNumHeads(), KV = op.getNumKvHeads(), D = op.getHeadDim();
  if (KV <= 0 || NH % KV)
    return failure();
  int64_t G = NH / KV;
  Value q = op.getQuery();
  auto pkType = cast<RankedTensorType>(op.getPresentKey().getType());
  auto oType = cast<RankedTensorType>(op.getResult().getType());
  PresentKV kv = presentKV(b, loc, op);
  Value K = kv.K, V = kv.V, P = kv.P;
  Value Bv = dimOf(b, loc, q, 0), Tv = dimOf(b, loc, q, 1), Sv = dimOf(b, loc, K, 2);
  int64_t Bs = oType.getDimSize(0), Ts = oType.getDimSize(1), Ss = pkType.getDimSize(2);
  auto f32 = b.getF32Type();
  auto sType = RankedTensorType::get({Bs, NH, Ts, Ss}, f32);
  auto sDims = [&](int64_t i) { return i == 0 ? Bv : i == 2 ? Tv : Sv; };

  AffineExpr e0 = getAffineDimExpr(0, ctx), e1 = getAffineDimExpr(1, ctx),
             e2 = getAffineDimExpr(2, ctx), e3 = getAffineDimExpr(3, ctx),
             e4 = getAffineDimExpr(4, ctx);
  // scores[b,h,t,s] = sum_d q[b,t,h*D+d] * K[b,h/G,s,d]   loops (b,h,t,s,d)
  Value sInit = fill(b, loc, emptyOf(b, loc, sType, sDims), 0.0);
  SmallVector<IteratorType> it5 = parallel(4);
  it5.push_back(IteratorType::reduction);
  Value scores = generic(
      b, loc, sType, {q, K}, sInit,
      {AffineMap::get(5, 0, {e0, e2, e1 * D + e4}, ctx),
       AffineMap::get(5, 0, {e0, e1.floorDiv(G), e3, e4}, ctx),
       AffineMap::get(5, 0, {e0, e1, e2, e3}, ctx)},
      it5, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value m = arith::MulFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(nb, l, arith::AddFOp::create(nb, l, a[2], m).getResult());
      });

  // Scale and mask (masked -> -inf).
  Value scale = cF32(b, loc, op.getEffectiveScale());
  Value ninf = cF32(b, loc, -std::numeric_limits<double>::infinity());
  bool causal = op.getCausal();
  Value mask = op.getMask();
  AffineMap id4 = b.getMultiDimIdentityMap(4);
  SmallVector<Value> mIns{scores};
  SmallVector<AffineMap> mMaps{id4};
  if (mask) {
    mIns.push_back(mask);
    mMaps.push_back(AffineMap::get(4, 0, {e0, e3}, ctx));
  }
  mMaps.push_back(id4);
  Value masked = generic(
      b, loc, sType, mIns, emptyOf(b, loc, sType, sDims), mMaps, parallel(4),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value v = arith::MulFOp::create(nb, l, a[0], scale);
        Value keep = arith::ConstantOp::create(nb, l, nb.getBoolAttr(true));
        if (causal) {
          Value t = linalg::IndexOp::create(nb, l, 2);
          Value s = linalg::IndexOp::create(nb, l, 3);
          Value lim = arith::AddIOp::create(nb, l, t, P);
          keep = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ule, s, lim);
        }
        if (mask) {
          Value m = a[1];
          Value z = arith::ConstantOp::create(nb, l, nb.getIntegerAttr(m.getType(), 0));
          Value k = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ne, m, z);
          keep = arith::AndIOp::create(nb, l, keep, k);
        }
        linalg::YieldOp::create(nb, l, arith::SelectOp::create(nb, l, keep, v, ninf).getResult());
      });

  // Row max over s.
  auto rType = RankedTensorType::get({Bs, NH, Ts}, f32);
  auto rDims = [&](int64_t i) { return i == 0 ? Bv : Tv; };
  AffineMap rowMap = AffineMap::get(4, 0, {e0, e1, e2}, ctx);
  SmallVector<IteratorType> it4 = parallel(3);
  it4.push_back(IteratorType::reduction);
  Value mx = generic(b, loc, rType, {masked}, fill(b, loc, emptyOf(b, loc, rType, rDims),
                                                   -std::numeric_limits<double>::infinity()),
                     {id4, rowMap}, it4, [&](OpBuilder &nb, Location l, ValueRange a) {
                       linalg::YieldOp::create(nb, l, arith::MaximumFOp::create(nb, l, a[0], a[1]).getResult());
                     });
  // e = exp(x - max), 0 where masked (also covers fully masked rows).
  Value ex = generic(
      b, loc, sType, {masked, mx}, emptyOf(b, loc, sType, sDims), {id4, rowMap, id4},
      parallel(4), [&](OpBuilder &nb, Location l, ValueRange a) {
        Value isNinf = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ, a[0], ninf);
        Value d = arith::SubFOp::create(nb, l, a[0], a[1]);
        Value e = math::ExpOp::create(nb, l, d);
        Value z = cF32(nb, l, 0.0);
        linalg::YieldOp::create(nb, l, arith::SelectOp::create(nb, l, isNinf, z, e).getResult());
      });
  Value sum = generic(b, loc, rType, {ex}, fill(b, loc, emptyOf(b, loc, rType, rDims), 0.0),
                      {id4, rowMap}, it4, [&](OpBuilder &nb, Location l, ValueRange a) {
                        linalg::YieldOp::create(nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
                      });
  // acc[b,t,h,d] = sum_s e[b,h,t,s] * V[b,h/G,s,d]   loops (b,t,h,d,s)
  auto aType = RankedTensorType::get({Bs, Ts, NH, D}, f32);
  auto aDims = [&](int64_t i) { return i == 0 ? Bv : Tv; };
  Value acc = generic(
      b, loc, aType, {ex, V}, fill(b, loc, emptyOf(b, loc, aType, aDims), 0.0),
      {AffineMap::get(5, 0, {e0, e2, e1, e4}, ctx),
       AffineMap::get(5, 0, {e0, e2.floorDiv(G), e4, e3}, ctx),
       AffineMap::get(5, 0, {e0, e1, e2, e3}, ctx)},
      it5, [&](OpBuilder &nb, Location l, ValueRange a) {
        Value m = arith::MulFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(nb, l, arith::AddFOp::create(nb, l, a[2], m).getResult());
      });
  // Normalise; a zero sum (all keys masked) gives 0.
  Value norm = generic(
      b, loc, aType, {acc, sum}, emptyOf(b, loc, aType, aDims),
      {id4, AffineMap::get(4, 0, {e0, e2, e1}, ctx), id4}, parallel(4),
      [&](OpBuilder &nb, Location l, ValueRange a) {
        Value z = cF32(nb, l, 0.0);
        Value isZero = arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ, a[1], z);
        Value dv = arith::DivFOp::create(nb, l, a[0], a[1]);
        linalg::YieldOp::create(nb, l, arith::SelectOp::create(nb, l, isZero, z, dv).getResult());
      });
  Value out = tensor::CollapseShapeOp::create(
      b, loc, norm, SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
  return SmallVector<Value>{castTo(b, loc, out, oType), K, V};
}

/// The CUDA kernels (GPUAttention.cpp) or the fused CPU kernel
/// (FusedKernels.cpp) where they apply, else the reference.
FailureOr<SmallVector<Value>> lowerAttentionOp(OpBuilder &b, Location loc,
                                               qwen::AttentionOp op) {
  if (qwen::gpu::attentionGPUApplies(op)) {
    PresentKV kv = presentKV(b, loc, op);
    return SmallVector<Value>{
        qwen::gpu::lowerAttentionGPU(b, loc, op, kv.K, kv.V, kv.P), kv.K, kv.V};
  }
  if (!qwen::fusedAttentionApplies(op, qwen::weightOnlyParamsFor(op)))
    return lowerAttention(b, loc, op);
  int64_t KV = op.getNumKvHeads(), D = op.getHeadDim();
  Value K = qwen::lowerFusedPresentKV(b, loc, op.getPastKey(), op.getKey(), KV, D,
                                      cast<RankedTensorType>(op.getPresentKey().getType()));
  Value V = qwen::lowerFusedPresentKV(b, loc, op.getPastValue(), op.getValue(), KV, D,
                                      cast<RankedTensorType>(op.getPresentValue().getType()));
  Value P = op.getPastKey() ? dimOf(b, loc, op.getPastKey(), 2) : cIdx(b, loc, 0);
  return SmallVector<Value>{qwen::lowerFusedAttention(b, loc, op, K, V, P), K, V};
}

//===----------------------------------------------------------------------===//
// Shape computations (onnx.Shape, Gather, Unsqueeze, Squeeze, Range, Expand)
//===----------------------------------------------------------------------===//

/// Integer elements of a constant (onnx.Constant or arith.constant) value.
FailureOr<SmallVector<int64_t>> constInts(Value v) {
  if (!v)
    return failure();
  Attribute a;
  if (auto c = v.getDefiningOp<qwen::onnxir::ConstantOp>())
    a = c.getValue();
  else if (auto c = v.getDefiningOp<arith::ConstantOp>())
    a = c.getValue();
  auto d = dyn_cast_or_null<DenseIntElementsAttr>(a);
  if (!d)
    return failure();
  SmallVector<int64_t> r;
  for (const APInt &x : d.getValues<APInt>())
    r.push_back(x.getSExtValue());
  return r;
}

/// Scalar (0-D) integer tensor element as index.
Value scalarIdx(OpBuilder &b, Location loc, Value v) {
  Value e = tensor::ExtractOp::create(b, loc, v, ValueRange{});
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), e);
}

// onnx.Shape (optional start/end) -> tensor.from_elements of i64 dims.
FailureOr<Value> lowerShape(OpBuilder &b, Location loc, qwen::onnxir::ShapeOp op) {
  auto in = dyn_cast<RankedTensorType>(op.getData().getType());
  auto rt = dyn_cast<RankedTensorType>(op.getType());
  if (!in || !rt)
    return failure();
  int64_t r = in.getRank();
  auto norm = [&](int64_t x) { return std::clamp<int64_t>(x < 0 ? x + r : x, 0, r); };
  int64_t s = norm(op.getStart() ? *op.getStart() : 0);
  int64_t e = norm(op.getEnd() ? *op.getEnd() : r);
  SmallVector<Value> elts;
  for (int64_t i = s; i < e; ++i)
    elts.push_back(arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                              dimOf(b, loc, op.getData(), i)));
  auto t = RankedTensorType::get({(int64_t)elts.size()}, b.getI64Type());
  if (failed(verifyCompatibleShape(t, rt)) || rt.getElementType() != t.getElementType())
    return failure();
  return castTo(b, loc, tensor::FromElementsOp::create(b, loc, t, elts), rt);
}

// onnx.Gather of a 1-D tensor by a scalar index (axis 0) -> tensor.extract.
FailureOr<Value> lowerGather(OpBuilder &b, Location loc, qwen::onnxir::GatherOp op) {
  auto dt = dyn_cast<RankedTensorType>(op.getData().getType());
  auto it = dyn_cast<RankedTensorType>(op.getIndices().getType());
  auto rt = dyn_cast<RankedTensorType>(op.getType());
  if (!dt || !it || !rt || dt.getRank() != 1 || it.getRank() != 0 ||
      rt.getRank() != 0 || op.getAxis() != 0)
    return failure();
  Value idx = scalarIdx(b, loc, op.getIndices());
  Value n = dimOf(b, loc, op.getData(), 0);
  Value zero = cIdx(b, loc, 0);
  Value neg = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, idx, zero);
  Value wrapped = arith::AddIOp::create(b, loc, idx, n);
  idx = arith::SelectOp::create(b, loc, neg, wrapped, idx);
  Value e = tensor::ExtractOp::create(b, loc, op.getData(), ValueRange{idx});
  return tensor::FromElementsOp::create(b, loc, rt, ValueRange{e}).getResult();
}

/// Reassociation grouping the `r` kept dims of a rank-`n` tensor (kept[i] says
/// whether dim i is kept); unit dims join the next kept dim (or the last one).
SmallVector<ReassociationIndices> unitReassoc(ArrayRef<bool> kept) {
  SmallVector<ReassociationIndices> groups;
  ReassociationIndices pending;
  for (int64_t i = 0, n = kept.size(); i < n; ++i) {
    pending.push_back(i);
    if (kept[i]) {
      groups.push_back(pending);
      pending.clear();
    }
  }
  if (!groups.empty())
    groups.back().append(pending.begin(), pending.end());
  return groups;
}

// onnx.Unsqueeze with constant axes -> tensor.expand_shape.
FailureOr<Value> lowerUnsqueeze(OpBuilder &b, Location loc,
                                qwen::onnxir::UnsqueezeOp op) {
  auto in = dyn_cast<RankedTensorType>(op.getData().getType());
  auto rt = dyn_cast<RankedTensorType>(op.getType());
  FailureOr<SmallVector<int64_t>> axes = constInts(op.getAxes());
  if (!in || !rt || failed(axes))
    return failure();
  int64_t n = in.getRank() + axes->size();
  if (rt.getRank() != n)
    return failure();
  SmallVector<bool> kept(n, true);
  for (int64_t a : *axes) {
    a = a < 0 ? a + n : a;
    if (a < 0 || a >= n || !kept[a])
      return failure();
    kept[a] = false;
  }
  SmallVector<int64_t> shape;
  SmallVector<OpFoldResult> outShape;
  for (int64_t i = 0, j = 0; i < n; ++i) {
    if (!kept[i]) {
      shape.push_back(1);
      outShape.push_back(b.getIndexAttr(1));
      continue;
    }
    shape.push_back(in.getDimSize(j));
    if (in.isDynamicDim(j))
      outShape.push_back(tensor::DimOp::create(b, loc, op.getData(), j).getResult());
    else
      outShape.push_back(b.getIndexAttr(in.getDimSize(j)));
    ++j;
  }
  auto t = RankedTensorType::get(shape, in.getElementType());
  if (failed(verifyCompatibleShape(t, rt)))
    return failure();
  Value v = tensor::ExpandShapeOp::create(b, loc, t, op.getData(), unitReassoc(kept),
                                          outShape);
  return castTo(b, loc, v, rt);
}

// onnx.Squeeze with constant (or no) axes of static unit dims ->
// tensor.collapse_shape.
FailureOr<Value> lowerSqueeze(OpBuilder &b, Location loc, qwen::onnxir::SqueezeOp op) {
  auto in = dyn_cast<RankedTensorType>(op.getData().getType());
  auto rt = dyn_cast<RankedTensorType>(op.getType());
  if (!in || !rt)
    return failure();
  int64_t n = in.getRank();
  SmallVector<bool> kept(n, true);
  if (op.getAxes()) {
    FailureOr<SmallVector<int64_t>> axes = constInts(op.getAxes());
    if (failed(axes))
      return failure();
    for (int64_t a : *axes) {
      a = a < 0 ? a + n : a;
      if (a < 0 || a >= n || in.getDimSize(a) != 1)
        return failure();
      kept[a] = false;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (in.isDynamicDim(i))
        return failure(); // might be 1 at run time
      kept[i] = in.getDimSize(i) != 1;
    }
  }
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < n; ++i)
    if (kept[i])
      shape.push_back(in.getDimSize(i));
  auto t = RankedTensorType::get(shape, in.getElementType());
  if (failed(verifyCompatibleShape(t, rt)))
    return failure();
  Value v = tensor::CollapseShapeOp::create(b, loc, t, op.getData(), unitReassoc(kept));
  return castTo(b, loc, v, rt);
}

// onnx.Range of integer scalars -> tensor.generate of start + i * delta with
// max(0, ceil((limit - start) / delta)) elements.
FailureOr<Value> lowerRange(OpBuilder &b, Location loc, qwen::onnxir::RangeOp op) {
  auto rt = dyn_cast<RankedTensorType>(op.getType());
  if (!rt || rt.getRank() != 1 || !isa<IntegerType>(rt.getElementType()))
    return failure();
  for (Value v : {op.getStart(), op.getLimit(), op.getDelta()}) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    if (!t || t.getRank() != 0)
      return failure();
  }
  Type et = rt.getElementType();
  Value start = tensor::ExtractOp::create(b, loc, op.getStart(), ValueRange{});
  Value limit = tensor::ExtractOp::create(b, loc, op.getLimit(), ValueRange{});
  Value delta = tensor::ExtractOp::create(b, loc, op.getDelta(), ValueRange{});
  Value diff = arith::SubIOp::create(b, loc, limit, start);
  Value cnt = arith::CeilDivSIOp::create(b, loc, diff, delta);
  Value zero = arith::ConstantOp::create(b, loc, b.getIntegerAttr(et, 0));
  cnt = arith::MaxSIOp::create(b, loc, cnt, zero);
  Value size = arith::IndexCastOp::create(b, loc, b.getIndexType(), cnt);
  auto t = RankedTensorType::get({ShapedType::kDynamic}, et);
  Value g = tensor::GenerateOp::create(
      b, loc, t, ValueRange{size}, [&](OpBuilder &nb, Location l, ValueRange iv) {
        Value i = arith::IndexCastOp::create(nb, l, et, iv[0]);
        Value m = arith::MulIOp::create(nb, l, i, delta);
        tensor::YieldOp::create(nb, l, arith::AddIOp::create(nb, l, start, m).getResult());
      });
  return castTo(b, loc, g, rt);
}

// onnx.Expand to a 1-D static-length shape tensor -> broadcasting
// linalg.generic. Output dim j is the shape entry s_j where the (right-
// aligned) input dim is a static 1, else the input dim (ONNX/numpy
// broadcasting; dynamic input dims are taken not to broadcast).
FailureOr<Value> lowerExpand(OpBuilder &b, Location loc, qwen::onnxir::ExpandOp op) {
  auto in = dyn_cast<RankedTensorType>(op.getInput().getType());
  auto st = dyn_cast<RankedTensorType>(op.getShape().getType());
  auto rt = dyn_cast<RankedTensorType>(op.getType());
  if (!in || !st || !rt || st.getRank() != 1 || st.isDynamicDim(0))
    return failure();
  int64_t r = in.getRank(), k = st.getDimSize(0), m = std::max(r, k);
  if (rt.getRank() != m)
    return failure();
  MLIRContext *ctx = b.getContext();
  SmallVector<int64_t> shape;
  SmallVector<Value> dyn;
  SmallVector<AffineExpr> inExprs;
  for (int64_t j = 0; j < m; ++j) {
    int64_t i = j - (m - r); // input dim, if >= 0
    bool inBcast = i >= 0 && in.getDimSize(i) == 1;
    if (i >= 0)
      inExprs.push_back(inBcast ? getAffineConstantExpr(0, ctx) : getAffineDimExpr(j, ctx));
    if (i >= 0 && !inBcast) {
      shape.push_back(in.getDimSize(i));
      if (in.isDynamicDim(i))
        dyn.push_back(tensor::DimOp::create(b, loc, op.getInput(), i));
      continue;
    }
    int64_t sj = j - (m - k);
    shape.push_back(rt.getDimSize(j));
    if (rt.isDynamicDim(j)) {
      Value e = tensor::ExtractOp::create(b, loc, op.getShape(), ValueRange{cIdx(b, loc, sj)});
      dyn.push_back(arith::IndexCastOp::create(b, loc, b.getIndexType(), e));
    }
  }
  auto t = RankedTensorType::get(shape, in.getElementType());
  if (failed(verifyCompatibleShape(t, rt)))
    return failure();
  Value init = tensor::EmptyOp::create(b, loc, t, dyn);
  Value g = generic(b, loc, t, {op.getInput()}, init,
                    {AffineMap::get(m, 0, inExprs, ctx), AffineMap::getMultiDimIdentityMap(m, ctx)},
                    parallel(m), [&](OpBuilder &nb, Location l, ValueRange a) {
                      linalg::YieldOp::create(nb, l, a[0]);
                    });
  return castTo(b, loc, g, rt);
}

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

struct LowerModelToLinalgPass
    : qwen::impl::LowerModelToLinalgBase<LowerModelToLinalgPass> {
  using Base::Base;

  // The fused kernels (QuantKernels.cpp) emit scf.forall/for and vector ops
  // besides the dialects of Passes.td, and llvm.call_intrinsic (vpdpbusd).
  void getDependentDialects(DialectRegistry &registry) const override {
    Base::getDependentDialects(registry);
    registry.insert<scf::SCFDialect, vector::VectorDialect>();
    qwen::registerQuantKernelExtensions(registry);
  }

  static bool isModelDialect(Operation *op) {
    return isa<qwen::onnxir::ONNXDialect, qwen::QwenDialect,
               qwen::qquant::QQuantDialect>(op->getDialect());
  }

  void runOnOperation() override {
    IRRewriter rw(&getContext());
    // The fused quantizing producers (--qwen-fuse-act-quant): their fused
    // kernel where it applies, else (and with fused = false) back into the
    // op and a qquant.dynamic_quantize, lowered below.
    SmallVector<Operation *> fusedQuant;
    getOperation().walk([&](Operation *op) {
      if (isa<qwen::qquant::RMSNormQuantizeOp, qwen::qquant::SiluMulQuantizeOp>(op))
        fusedQuant.push_back(op);
    });
    for (Operation *op : fusedQuant) {
      rw.setInsertionPoint(op);
      Location loc = op->getLoc();
      qwen::WeightOnlyParams p = qwen::weightOnlyParamsFor(op);
      FailureOr<SmallVector<Value>> v = failure();
      Value y;
      if (auto o = dyn_cast<qwen::qquant::RMSNormQuantizeOp>(op)) {
        v = qwen::lowerFusedRMSNormQuantize(rw, loc, o, p);
        if (failed(v))
          y = qwen::RMSNormOp::create(rw, loc, o.getInput().getType(), o.getInput(), o.getWeight(),
                                      o.getEpsilonAttr(), UnitAttr());
      } else {
        auto s = cast<qwen::qquant::SiluMulQuantizeOp>(op);
        v = qwen::lowerFusedSiluMulQuantize(rw, loc, s, p);
        if (failed(v))
          y = qwen::SiluMulOp::create(rw, loc, s.getGate().getType(), s.getGate(), s.getUp());
      }
      if (failed(v))
        v = SmallVector<Value>(qwen::qquant::DynamicQuantizeOp::create(rw, loc, op->getResultTypes(), y,
                                                                       rw.getI64IntegerAttr(8), rw.getUnitAttr())
                                   ->getResults());
      rw.replaceOp(op, *v);
    }
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<qwen::onnxir::ONNXDialect>(op->getDialect()))
        ops.push_back(op);
      else if (isa<qwen::qquant::LinearOp, qwen::qquant::EmbeddingOp,
                   qwen::qquant::LogitsOp, qwen::qquant::DequantizeWeightOp,
                   qwen::qquant::QuantizeOp, qwen::qquant::DequantizeOp,
                   qwen::qquant::RequantizeOp, qwen::qquant::IntLinearOp,
                   qwen::qquant::LookupOp, qwen::qquant::IntMulOp,
                   qwen::qquant::IntRMSNormOp, qwen::qquant::QLinearOp,
                   qwen::qquant::DynamicQuantizeOp>(op))
        ops.push_back(op);
      else if (isa<qwen::AddOp, qwen::SiluMulOp, qwen::LinearOp, qwen::LogitsOp,
                   qwen::RMSNormOp, qwen::EmbeddingOp, qwen::RoPEOp,
                   qwen::AttentionOp>(op) &&
               allF32(op))
        ops.push_back(op);
    });
    qwen::WeightStoreCache stores;
    for (Operation *op : ops) {
      rw.setInsertionPoint(op);
      Operation *prev = op->getPrevNode();
      Location loc = op->getLoc();
      FailureOr<SmallVector<Value>> repl = failure();
      auto one = [](Value v) { return FailureOr<SmallVector<Value>>(SmallVector<Value>{v}); };
      auto maybe = [&](FailureOr<Value> v) {
        if (succeeded(v))
          repl = one(*v);
      };
      // The special lowerings first; everything else (and their
      // unsupported forms) through the generic lowering.
      if (auto o = dyn_cast<qwen::onnxir::ConstantOp>(op))
        repl = one(arith::ConstantOp::create(rw, loc, cast<TypedAttr>(o.getValue()))
                       .getResult());
      else if (auto o = dyn_cast<qwen::onnxir::ShapeOp>(op))
        maybe(lowerShape(rw, loc, o));
      else if (auto o = dyn_cast<qwen::onnxir::GatherOp>(op))
        maybe(lowerGather(rw, loc, o));
      else if (auto o = dyn_cast<qwen::onnxir::UnsqueezeOp>(op))
        maybe(lowerUnsqueeze(rw, loc, o));
      else if (auto o = dyn_cast<qwen::onnxir::SqueezeOp>(op))
        maybe(lowerSqueeze(rw, loc, o));
      else if (auto o = dyn_cast<qwen::onnxir::RangeOp>(op))
        maybe(lowerRange(rw, loc, o));
      else if (auto o = dyn_cast<qwen::onnxir::ExpandOp>(op)) {
        // The special form takes dynamic input dims not to broadcast; one
        // that is 1 at run time needs the generic (run-time) broadcast.
        auto in = dyn_cast<RankedTensorType>(o.getInput().getType());
        if (in && in.hasStaticShape())
          maybe(lowerExpand(rw, loc, o));
      } else if (auto o = dyn_cast<qwen::AddOp>(op))
        repl = one(lowerElementwise(rw, loc, o.getLhs(), o.getRhs(),
                                    cast<RankedTensorType>(o.getType()), false));
      else if (auto o = dyn_cast<qwen::qquant::DynamicQuantizeOp>(op)) {
        // The fused row kernel (per token, 8 bits), else the reference
        // (lowerQQuantOp below).
        FailureOr<SmallVector<Value>> v = qwen::lowerFusedDynamicQuantize(rw, loc, o, qwen::weightOnlyParamsFor(op));
        if (succeeded(v))
          repl = v;
      } else if (auto o = dyn_cast<qwen::SiluMulOp>(op)) {
        // The fused kernels (FusedKernels.cpp) where they apply, else (and
        // with qwen.quant_kernel = {fused = false}) the reference.
        FailureOr<Value> v = qwen::lowerFusedSiluMul(rw, loc, o, qwen::weightOnlyParamsFor(op));
        repl = one(succeeded(v) ? *v
                                : lowerElementwise(rw, loc, o.getGate(), o.getUp(),
                                                   cast<RankedTensorType>(o.getType()), true));
      }
      else if (isa<qwen::LinearOp, qwen::LogitsOp>(op)) {
        // The register-blocked kernel (DenseKernels.cpp) where it applies,
        // else (and with qwen.quant_kernel = {fused = false}) the reference.
        auto lo = dyn_cast<qwen::LinearOp>(op);
        Value x = op->getOperand(0), bias = lo ? lo.getBias() : Value();
        Value w = lo ? lo.getWeight() : cast<qwen::LogitsOp>(op).getWeight();
        auto rt = cast<RankedTensorType>(op->getResult(0).getType());
        FailureOr<Value> y = qwen::lowerDenseLinear(
            rw, loc, x, w, bias, rt, qwen::weightOnlyParamsFor(op),
            [&](OpBuilder &nb, Location nl) { return lowerLinear(nb, nl, x, w, bias, rt); });
        repl = one(succeeded(y) ? *y : lowerLinear(rw, loc, x, w, bias, rt));
      }
      else if (auto o = dyn_cast<qwen::RMSNormOp>(op)) {
        FailureOr<Value> v = qwen::lowerFusedRMSNorm(rw, loc, o, qwen::weightOnlyParamsFor(op));
        if (failed(v))
          v = lowerRMSNorm(rw, loc, o);
        if (succeeded(v))
          repl = one(*v);
      } else if (auto o = dyn_cast<qwen::EmbeddingOp>(op))
        repl = one(lowerEmbedding(rw, loc, o));
      else if (auto o = dyn_cast<qwen::RoPEOp>(op)) {
        FailureOr<Value> v = qwen::lowerFusedRoPE(rw, loc, o, qwen::weightOnlyParamsFor(op));
        repl = one(succeeded(v) ? *v : lowerRoPE(rw, loc, o));
      } else if (auto o = dyn_cast<qwen::AttentionOp>(op))
        repl = lowerAttentionOp(rw, loc, o);
      if (failed(repl)) {
        eraseCreated(rw, prev, op);
        rw.setInsertionPoint(op);
        if (isa<qwen::onnxir::ONNXDialect>(op->getDialect()))
          repl = qwen::lowerONNXOpGeneric(rw, op);
        else if (isa<qwen::qquant::QQuantDialect>(op->getDialect()))
          repl = qwen::lowerQQuantOp(rw, op, stores);
      }
      if (failed(repl)) {
        eraseCreated(rw, prev, op);
        continue; // left untouched (e.g. dynamic per-head norm width)
      }
      rw.replaceOp(op, *repl);
    }
    // Quantized weights whose users were all lowered.
    getOperation().walk([&](qwen::qquant::WeightOp w) {
      if (w->use_empty())
        rw.eraseOp(w);
    });
    if (!strict)
      return;
    // Weight references (qwen.weight/store, qquant.weight) are not
    // computations: --qwen-internalize-weights or the bundle writer takes them.
    bool left = false;
    getOperation().walk([&](Operation *op) {
      if (!isModelDialect(op) ||
          isa<qwen::WeightOp, qwen::StoreOp, qwen::qquant::WeightOp>(op))
        return;
      op->emitError("'") << op->getName()
                         << "' has no lowering to linalg for this form";
      left = true;
    });
    if (left)
      signalPassFailure();
  }

  /// Erases the (dead) ops a failed lowering created before `op`.
  static void eraseCreated(IRRewriter &rw, Operation *prev, Operation *op) {
    SmallVector<Operation *> created;
    for (Operation *o = prev ? prev->getNextNode() : &op->getBlock()->front();
         o && o != op; o = o->getNextNode())
      created.push_back(o);
    for (Operation *o : llvm::reverse(created))
      rw.eraseOp(o);
  }
};

} // namespace
