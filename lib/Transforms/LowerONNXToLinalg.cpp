//===- LowerONNXToLinalg.cpp - generic onnx/qquant -> linalg --------------===//
//
// The generic part of --qwen-lower-model-to-linalg (see LowerONNXToLinalg.h
// and Passes.td). Conventions:
//
// - Multidirectional (numpy) broadcasting with dynamic dims: an operand dim
//   that is a static 1 is read at index 0; a static non-1 dim, or a dynamic
//   dim that no other operand can broadcast against, is read through the
//   indexing map; a dynamic dim that might be 1 at run time while the output
//   is larger is read with `tensor.extract` at `select(dim == 1, 0, i)`.
//   Output dims are folded as `select(cur == 1, d, cur)`.
// - Integer element types with a sign (ui8, si8 ...) are viewed as signless
//   inside the bodies through `builtin.unrealized_conversion_cast`, which the
//   LLVM conversion reconciles.
// - Reshape-like ops use `tensor.reshape` with a shape tensor of index dims.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/LowerONNXToLinalg.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/GPUKernels.h"
#include "qwen/Transforms/KernelSupport.h"
#include "qwen/Transforms/QuantKernels.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <limits>

using namespace mlir;
namespace ox = qwen::onnxir;
namespace qq = qwen::qquant;

namespace {

using utils::IteratorType;
using Scalars = ArrayRef<Value>;
using ScalarFn = function_ref<Value(OpBuilder &, Location, Scalars)>;
using Result = FailureOr<SmallVector<Value>>;

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

Result one(Value v) { return SmallVector<Value>{v}; }
Result one(FailureOr<Value> v) {
  if (failed(v))
    return failure();
  return SmallVector<Value>{*v};
}

RankedTensorType ranked(Value v) {
  return v ? dyn_cast<RankedTensorType>(v.getType()) : RankedTensorType();
}
Type eltOf(Value v) { return cast<RankedTensorType>(v.getType()).getElementType(); }

Value cIdx(OpBuilder &b, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(b, l, v);
}
/// Signless view of a type (ui8 -> i8).
Type signless(Type t) {
  if (auto i = dyn_cast<IntegerType>(t); i && !i.isSignless())
    return IntegerType::get(t.getContext(), i.getWidth());
  return t;
}
bool isUnsigned(Type t) {
  auto i = dyn_cast<IntegerType>(t);
  return i && (i.isUnsigned() || i.getWidth() == 1);
}
bool isFloat(Type t) { return isa<FloatType>(t); }
bool isInt(Type t) { return isa<IntegerType>(t); }
bool supportedElt(Type t) { return isFloat(t) || isInt(t) || isa<IndexType>(t); }

Value toSL(OpBuilder &b, Location l, Value v) {
  Type s = signless(v.getType());
  if (s == v.getType())
    return v;
  return UnrealizedConversionCastOp::create(b, l, TypeRange{s}, ValueRange{v}).getResult(0);
}
Value fromSL(OpBuilder &b, Location l, Value v, Type t) {
  if (v.getType() == t)
    return v;
  return UnrealizedConversionCastOp::create(b, l, TypeRange{t}, ValueRange{v}).getResult(0);
}

/// Scalar constant of (signless view of) `t`.
Value cst(OpBuilder &b, Location l, Type t, double v) {
  t = signless(t);
  if (auto f = dyn_cast<FloatType>(t))
    return arith::ConstantOp::create(b, l, b.getFloatAttr(f, v));
  if (isa<IndexType>(t))
    return cIdx(b, l, (int64_t)v);
  auto it = cast<IntegerType>(t);
  if (it.getWidth() == 1)
    return arith::ConstantOp::create(b, l, b.getIntegerAttr(it, v != 0 ? 1 : 0));
  return arith::ConstantOp::create(b, l, b.getIntegerAttr(it, (int64_t)v));
}

/// Converts the signless scalar `v` holding a `from` value to `to` (ONNX Cast).
Value convert(OpBuilder &b, Location l, Value v, Type from, Type to) {
  Type sf = signless(from), st = signless(to);
  if (isFloat(from) && isFloat(to)) {
    unsigned wf = cast<FloatType>(from).getWidth(), wt = cast<FloatType>(to).getWidth();
    if (from == to)
      return v;
    if (wf < wt || (wf == wt))
      return wf == wt ? arith::TruncFOp::create(b, l, st, arith::ExtFOp::create(b, l, b.getF64Type(), v)).getResult()
                      : arith::ExtFOp::create(b, l, st, v).getResult();
    return arith::TruncFOp::create(b, l, st, v);
  }
  if (isInt(from) && isFloat(to))
    return isUnsigned(from) ? arith::UIToFPOp::create(b, l, st, v).getResult()
                            : arith::SIToFPOp::create(b, l, st, v).getResult();
  if (isFloat(from) && isInt(to)) {
    if (cast<IntegerType>(st).getWidth() == 1)
      return arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNE, v, cst(b, l, sf, 0));
    return isUnsigned(to) ? arith::FPToUIOp::create(b, l, st, v).getResult()
                          : arith::FPToSIOp::create(b, l, st, v).getResult();
  }
  if (isa<IndexType>(from) || isa<IndexType>(to)) {
    if (isFloat(to)) {
      Value i = arith::IndexCastOp::create(b, l, b.getI64Type(), v);
      return arith::SIToFPOp::create(b, l, st, i);
    }
    return arith::IndexCastOp::create(b, l, st, v);
  }
  unsigned wf = cast<IntegerType>(sf).getWidth(), wt = cast<IntegerType>(st).getWidth();
  if (wt == 1 && wf != 1)
    return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, v, cst(b, l, sf, 0));
  if (wf == wt)
    return v;
  if (wf < wt)
    return isUnsigned(from) ? arith::ExtUIOp::create(b, l, st, v).getResult()
                            : arith::ExtSIOp::create(b, l, st, v).getResult();
  return arith::TruncIOp::create(b, l, st, v);
}

Value dimOf(OpBuilder &b, Location l, Value v, int64_t i) {
  auto t = cast<RankedTensorType>(v.getType());
  if (!t.isDynamicDim(i))
    return cIdx(b, l, t.getDimSize(i));
  return tensor::DimOp::create(b, l, v, i);
}
SmallVector<Value> dimsOf(OpBuilder &b, Location l, Value v) {
  SmallVector<Value> d;
  for (int64_t i = 0, r = ranked(v).getRank(); i < r; ++i)
    d.push_back(dimOf(b, l, v, i));
  return d;
}
std::optional<int64_t> constIdx(Value v) {
  if (auto c = getConstantIntValue(v))
    return *c;
  return std::nullopt;
}
Value selectIdx(OpBuilder &b, Location l, Value c, Value x, Value y) {
  return arith::SelectOp::create(b, l, c, x, y);
}
Value eqIdx(OpBuilder &b, Location l, Value x, int64_t v) {
  return arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, x, cIdx(b, l, v));
}
/// Broadcast of two dims: `a == 1 ? b : a` (folded for constants).
Value bcastDim(OpBuilder &b, Location l, Value x, Value y) {
  auto cx = constIdx(x), cy = constIdx(y);
  if (cx && *cx != 1)
    return x;
  if (cy && *cy != 1)
    return y;
  if (cx && *cx == 1)
    return y;
  if (cy && *cy == 1)
    return x;
  return selectIdx(b, l, eqIdx(b, l, x, 1), y, x);
}

Value emptyWith(OpBuilder &b, Location l, RankedTensorType t, ArrayRef<Value> dims) {
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < t.getRank(); ++i)
    if (t.isDynamicDim(i))
      dyn.push_back(dims[i]);
  return tensor::EmptyOp::create(b, l, t, dyn);
}
Value castTo(OpBuilder &b, Location l, Value v, Type t) {
  return v.getType() == t ? v : tensor::CastOp::create(b, l, t, v).getResult();
}

SmallVector<IteratorType> parallel(int64_t n) {
  return SmallVector<IteratorType>(n, IteratorType::parallel);
}

Value fillT(OpBuilder &b, Location l, RankedTensorType t, ArrayRef<Value> dims, Value s) {
  Value e = emptyWith(b, l, t, dims);
  return linalg::FillOp::create(b, l, ValueRange{s}, ValueRange{e}).getResult(0);
}

/// `in` reshaped (row-major) to `t` with the given dims: a copy whose body
/// linearizes the output index and unravels it over the input dims
/// (`tensor.reshape` / multi-dynamic expand_shape do not lower through the
/// upstream LLVM pipeline).
Value reshapeTo(OpBuilder &b, Location l, Value in, RankedTensorType t,
                ArrayRef<Value> dims) {
  if (in.getType() == t && t.hasStaticShape())
    return in;
  auto it = ranked(in);
  int64_t R = t.getRank(), r = it.getRank();
  SmallVector<Value> idims;
  for (int64_t i = 0; i < r; ++i)
    idims.push_back(it.isDynamicDim(i) ? tensor::DimOp::create(b, l, in, i).getResult()
                                       : cIdx(b, l, it.getDimSize(i)));
  Value init = tensor::EmptyOp::create(b, l, t, [&] {
    SmallVector<Value> dyn;
    for (int64_t i = 0; i < R; ++i)
      if (t.isDynamicDim(i))
        dyn.push_back(dims[i]);
    return dyn;
  }());
  MLIRContext *ctx = b.getContext();
  return linalg::GenericOp::create(
             b, l, TypeRange{t}, ValueRange{}, ValueRange{init},
             {AffineMap::getMultiDimIdentityMap(R, ctx)},
             SmallVector<IteratorType>(R, IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange) {
               Value lin = cIdx(nb, nl, 0);
               for (int64_t i = 0; i < R; ++i)
                 lin = arith::AddIOp::create(
                     nb, nl, arith::MulIOp::create(nb, nl, lin, dims[i]),
                     linalg::IndexOp::create(nb, nl, i));
               SmallVector<Value> idx(r);
               for (int64_t i = r - 1; i >= 0; --i) {
                 idx[i] = arith::RemUIOp::create(nb, nl, lin, idims[i]);
                 lin = arith::DivUIOp::create(nb, nl, lin, idims[i]);
               }
               linalg::YieldOp::create(nb, nl, tensor::ExtractOp::create(nb, nl, in, idx).getResult());
             })
      .getResult(0);
}

/// Integer elements of a constant value.
std::optional<SmallVector<int64_t>> constInts(Value v) {
  if (!v)
    return std::nullopt;
  Attribute a;
  if (auto c = v.getDefiningOp<ox::ConstantOp>())
    a = c.getValue();
  else if (auto c = v.getDefiningOp<arith::ConstantOp>())
    a = c.getValue();
  auto d = dyn_cast_or_null<DenseIntElementsAttr>(a);
  if (!d)
    return std::nullopt;
  SmallVector<int64_t> r;
  for (const APInt &x : d.getValues<APInt>())
    r.push_back(x.getSExtValue());
  return r;
}

/// Element `i` of a 1-D (or 0-D when i < 0) integer tensor as index.
Value elemIdx(OpBuilder &b, Location l, Value t, int64_t i) {
  SmallVector<Value> idx;
  if (i >= 0)
    idx.push_back(cIdx(b, l, i));
  Value e = toSL(b, l, tensor::ExtractOp::create(b, l, t, idx));
  return arith::IndexCastOp::create(b, l, b.getIndexType(), e);
}

//===----------------------------------------------------------------------===//
// Broadcasting elementwise map
//===----------------------------------------------------------------------===//

/// Output dims of the numpy broadcast of `ins` to rank of `rt`.
SmallVector<Value> broadcastDims(OpBuilder &b, Location l, ValueRange ins,
                                 RankedTensorType rt) {
  int64_t R = rt.getRank();
  SmallVector<Value> out;
  for (int64_t j = 0; j < R; ++j) {
    if (!rt.isDynamicDim(j)) {
      out.push_back(cIdx(b, l, rt.getDimSize(j)));
      continue;
    }
    Value cur;
    for (Value v : ins) {
      auto t = ranked(v);
      int64_t i = j - (R - t.getRank());
      if (i < 0)
        continue;
      Value d = dimOf(b, l, v, i);
      cur = cur ? bcastDim(b, l, cur, d) : d;
    }
    out.push_back(cur ? cur : cIdx(b, l, 1));
  }
  return out;
}

/// linalg.generic over the output `rt` (dims `outDims`) reading each of `ins`
/// broadcast (right-aligned) to it; `fn` gets signless scalars and returns
/// the signless result. With `runtime`, every dynamic input dim is read
/// through the run-time broadcast path.
Value mapInto(OpBuilder &b, Location l, RankedTensorType rt,
              ArrayRef<Value> outDims, ValueRange ins, ScalarFn fn,
              bool runtime = false) {
  MLIRContext *ctx = b.getContext();
  int64_t R = rt.getRank();
  SmallVector<Value> mapIns;
  SmallVector<AffineMap> maps;
  // For each input: index into mapIns or -1 (read by extract), and dims.
  SmallVector<int64_t> slot;
  SmallVector<SmallVector<Value>> exDims, exIsOne;
  for (Value v : ins) {
    auto t = ranked(v);
    int64_t r = t.getRank(), off = R - r;
    bool ambiguous = false;
    SmallVector<AffineExpr> ex;
    for (int64_t i = 0; i < r; ++i) {
      int64_t j = i + off;
      if (t.getDimSize(i) == 1) {
        ex.push_back(getAffineConstantExpr(0, ctx));
        continue;
      }
      ex.push_back(getAffineDimExpr(j, ctx));
      if (!t.isDynamicDim(i))
        continue;
      if (runtime) {
        ambiguous = true;
        continue;
      }
      if (auto c = constIdx(outDims[j]); c && *c == 1) {
        ex.back() = getAffineConstantExpr(0, ctx);
        continue;
      }
      for (Value o : ins) {
        if (o == v)
          continue;
        auto ot = ranked(o);
        int64_t oi = j - (R - ot.getRank());
        if (oi >= 0 && ot.getDimSize(oi) != 1)
          ambiguous = true;
      }
      if (!ins.empty() && ins.size() == 1 && !rt.isDynamicDim(j))
        ambiguous = true; // static output, dynamic input: might broadcast
    }
    SmallVector<Value> dims, ones;
    if (ambiguous) {
      for (int64_t i = 0; i < r; ++i) {
        Value d = dimOf(b, l, v, i);
        dims.push_back(d);
        ones.push_back(t.isDynamicDim(i) ? eqIdx(b, l, d, 1) : Value());
      }
      slot.push_back(-1);
    } else {
      slot.push_back(mapIns.size());
      mapIns.push_back(v);
      maps.push_back(AffineMap::get(R, 0, ex, ctx));
    }
    exDims.push_back(dims);
    exIsOne.push_back(ones);
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(R, ctx));
  Value init = emptyWith(b, l, rt, outDims);
  Type relt = rt.getElementType();
  auto g = linalg::GenericOp::create(
      b, l, TypeRange{rt}, mapIns, ValueRange{init}, maps, parallel(R),
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        SmallVector<Value> sc;
        for (auto [k, v] : llvm::enumerate(ins)) {
          if (slot[k] >= 0) {
            sc.push_back(toSL(nb, nl, a[slot[k]]));
            continue;
          }
          auto t = ranked(v);
          int64_t r = t.getRank(), off = R - r;
          SmallVector<Value> idx;
          for (int64_t i = 0; i < r; ++i) {
            if (t.getDimSize(i) == 1) {
              idx.push_back(cIdx(nb, nl, 0));
              continue;
            }
            Value iv = linalg::IndexOp::create(nb, nl, i + off);
            if (t.isDynamicDim(i))
              iv = selectIdx(nb, nl, exIsOne[k][i], cIdx(nb, nl, 0), iv);
            idx.push_back(iv);
          }
          sc.push_back(toSL(nb, nl, tensor::ExtractOp::create(nb, nl, v, idx)));
        }
        Value res = fn(nb, nl, sc);
        linalg::YieldOp::create(nb, nl, fromSL(nb, nl, res, relt));
      });
  return g.getResult(0);
}

/// Elementwise op over broadcast operands with result type of `op`.
FailureOr<Value> elementwise(OpBuilder &b, Location l, Operation *op,
                             ValueRange ins, ScalarFn fn) {
  auto rt = ranked(op->getResult(0));
  if (!rt || !supportedElt(rt.getElementType()))
    return failure();
  for (Value v : ins) {
    auto t = ranked(v);
    if (!t || t.getRank() > rt.getRank() || !supportedElt(t.getElementType()))
      return failure();
  }
  SmallVector<Value> dims = broadcastDims(b, l, ins, rt);
  return mapInto(b, l, rt, dims, ins, fn);
}

//===----------------------------------------------------------------------===//
// Scalar bodies
//===----------------------------------------------------------------------===//

Value sigmoid(OpBuilder &b, Location l, Value x) {
  Type t = x.getType();
  Value n = arith::NegFOp::create(b, l, x);
  Value e = math::ExpOp::create(b, l, n);
  Value d = arith::AddFOp::create(b, l, cst(b, l, t, 1.0), e);
  return arith::DivFOp::create(b, l, cst(b, l, t, 1.0), d);
}
Value tanhF(OpBuilder &b, Location l, Value x) {
  // 1 - 2 / (exp(2x) + 1): saturates to +-1 without NaN.
  Type t = x.getType();
  Value x2 = arith::AddFOp::create(b, l, x, x);
  Value e = math::ExpOp::create(b, l, x2);
  Value d = arith::AddFOp::create(b, l, e, cst(b, l, t, 1.0));
  Value q = arith::DivFOp::create(b, l, cst(b, l, t, 2.0), d);
  return arith::SubFOp::create(b, l, cst(b, l, t, 1.0), q);
}
Value erfF(OpBuilder &b, Location l, Value x) {
  // Abramowitz & Stegun 7.1.26 in f64 (|error| <= 1.5e-7).
  Type t = x.getType();
  Type f64 = b.getF64Type();
  Value xd = t == f64 ? x : arith::ExtFOp::create(b, l, f64, x).getResult();
  Value ax = math::AbsFOp::create(b, l, xd);
  auto c = [&](double v) { return cst(b, l, f64, v); };
  Value tt = arith::DivFOp::create(
      b, l, c(1.0), arith::AddFOp::create(b, l, c(1.0), arith::MulFOp::create(b, l, c(0.3275911), ax)));
  double as[] = {1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592};
  Value p = c(as[0]);
  for (int i = 1; i < 5; ++i)
    p = arith::AddFOp::create(b, l, arith::MulFOp::create(b, l, p, tt), c(as[i]));
  p = arith::MulFOp::create(b, l, p, tt);
  Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, arith::MulFOp::create(b, l, ax, ax)));
  Value y = arith::SubFOp::create(b, l, c(1.0), arith::MulFOp::create(b, l, p, e));
  Value neg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, xd, c(0.0));
  y = arith::SelectOp::create(b, l, neg, arith::NegFOp::create(b, l, y), y);
  return t == f64 ? y : arith::TruncFOp::create(b, l, t, y).getResult();
}

enum class Bin { Add, Sub, Mul, Div, Pow, Mod, FMod, Eq, Lt, Le, Gt, Ge, And, Or, Xor, Max, Min };

/// `x op y` on signless scalars of the ONNX element type `et`.
Value binary(OpBuilder &b, Location l, Bin k, Value x, Value y, Type et) {
  bool f = isFloat(et), u = isUnsigned(et);
  switch (k) {
  case Bin::Add:
    return f ? arith::AddFOp::create(b, l, x, y).getResult() : arith::AddIOp::create(b, l, x, y).getResult();
  case Bin::Sub:
    return f ? arith::SubFOp::create(b, l, x, y).getResult() : arith::SubIOp::create(b, l, x, y).getResult();
  case Bin::Mul:
    return f ? arith::MulFOp::create(b, l, x, y).getResult() : arith::MulIOp::create(b, l, x, y).getResult();
  case Bin::Div:
    if (f)
      return arith::DivFOp::create(b, l, x, y);
    return u ? arith::DivUIOp::create(b, l, x, y).getResult() : arith::DivSIOp::create(b, l, x, y).getResult();
  case Bin::FMod:
    if (f)
      return arith::RemFOp::create(b, l, x, y);
    return u ? arith::RemUIOp::create(b, l, x, y).getResult() : arith::RemSIOp::create(b, l, x, y).getResult();
  case Bin::Mod: {
    if (u)
      return arith::RemUIOp::create(b, l, x, y);
    // Python-style: the result takes the sign of the divisor.
    Value r = f ? arith::RemFOp::create(b, l, x, y).getResult() : arith::RemSIOp::create(b, l, x, y).getResult();
    Value z = cst(b, l, x.getType(), 0);
    Value rNeg, yNeg, rNz;
    if (f) {
      rNeg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, r, z);
      yNeg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, y, z);
      rNz = arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNE, r, z);
    } else {
      rNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, z);
      yNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, y, z);
      rNz = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, r, z);
    }
    Value diff = arith::XOrIOp::create(b, l, rNeg, yNeg);
    Value fix = arith::AndIOp::create(b, l, diff, rNz);
    Value ry = f ? arith::AddFOp::create(b, l, r, y).getResult() : arith::AddIOp::create(b, l, r, y).getResult();
    return arith::SelectOp::create(b, l, fix, ry, r);
  }
  case Bin::Pow:
    return math::PowFOp::create(b, l, x, y);
  case Bin::Eq:
  case Bin::Lt:
  case Bin::Le:
  case Bin::Gt:
  case Bin::Ge: {
    if (f) {
      arith::CmpFPredicate p = k == Bin::Eq ? arith::CmpFPredicate::OEQ
                               : k == Bin::Lt ? arith::CmpFPredicate::OLT
                               : k == Bin::Le ? arith::CmpFPredicate::OLE
                               : k == Bin::Gt ? arith::CmpFPredicate::OGT
                                              : arith::CmpFPredicate::OGE;
      return arith::CmpFOp::create(b, l, p, x, y);
    }
    arith::CmpIPredicate p =
        k == Bin::Eq ? arith::CmpIPredicate::eq
        : k == Bin::Lt ? (u ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt)
        : k == Bin::Le ? (u ? arith::CmpIPredicate::ule : arith::CmpIPredicate::sle)
        : k == Bin::Gt ? (u ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt)
                       : (u ? arith::CmpIPredicate::uge : arith::CmpIPredicate::sge);
    return arith::CmpIOp::create(b, l, p, x, y);
  }
  case Bin::And:
    return arith::AndIOp::create(b, l, x, y);
  case Bin::Or:
    return arith::OrIOp::create(b, l, x, y);
  case Bin::Xor:
    return arith::XOrIOp::create(b, l, x, y);
  case Bin::Max:
    if (f)
      return arith::MaximumFOp::create(b, l, x, y);
    return u ? arith::MaxUIOp::create(b, l, x, y).getResult() : arith::MaxSIOp::create(b, l, x, y).getResult();
  case Bin::Min:
    if (f)
      return arith::MinimumFOp::create(b, l, x, y);
    return u ? arith::MinUIOp::create(b, l, x, y).getResult() : arith::MinSIOp::create(b, l, x, y).getResult();
  }
  llvm_unreachable("bin");
}

FailureOr<Value> lowerBinary(OpBuilder &b, Location l, Operation *op, Bin k) {
  Value A = op->getOperand(0), B = op->getOperand(1);
  auto at = ranked(A), bt = ranked(B);
  if (!at || !bt)
    return failure();
  Type ea = at.getElementType(), eb = bt.getElementType();
  if (k == Bin::Pow) {
    if (!isFloat(ea))
      return failure();
    return elementwise(b, l, op, {A, B}, [&](OpBuilder &nb, Location nl, Scalars s) {
      Value y = isFloat(eb) ? convert(nb, nl, s[1], eb, ea) : convert(nb, nl, s[1], eb, ea);
      return binary(nb, nl, k, s[0], y, ea);
    });
  }
  if ((k == Bin::And || k == Bin::Or || k == Bin::Xor) && !isInt(ea))
    return failure();
  return elementwise(b, l, op, {A, B}, [&](OpBuilder &nb, Location nl, Scalars s) {
    return binary(nb, nl, k, s[0], s[1], ea);
  });
}

FailureOr<Value> lowerVariadic(OpBuilder &b, Location l, Operation *op, Bin k) {
  if (op->getNumOperands() == 0)
    return failure();
  Type et = eltOf(op->getResult(0));
  return elementwise(b, l, op, op->getOperands(), [&](OpBuilder &nb, Location nl, Scalars s) {
    Value acc = s[0];
    for (Value v : s.drop_front())
      acc = binary(nb, nl, k, acc, v, et);
    return acc;
  });
}

FailureOr<Value> lowerUnary(OpBuilder &b, Location l, Operation *op) {
  Value x = op->getOperand(0);
  auto xt = ranked(x);
  if (!xt)
    return failure();
  Type et = xt.getElementType();
  bool f = isFloat(et);
  StringRef name = op->getName().stripDialect();
  static const char *floatOnly[] = {"Sqrt", "Reciprocal", "Exp", "Log", "Cos", "Sin", "Tanh",
                                    "Sigmoid", "Erf", "Floor", "Ceil", "Softplus", "IsNaN", "IsInf"};
  for (const char *n : floatOnly)
    if (name == n && !f)
      return failure();
  if (name == "Not" && !(isInt(et) && cast<IntegerType>(et).getWidth() == 1))
    return failure();
  if (name == "Identity")
    return x;
  int64_t detNeg = 1, detPos = 1;
  if (auto o = dyn_cast<ox::IsInfOp>(op)) {
    detNeg = o.getDetectNegative();
    detPos = o.getDetectPositive();
  }
  return elementwise(b, l, op, {x}, [&](OpBuilder &nb, Location nl, Scalars s) -> Value {
    Value v = s[0];
    Type t = v.getType();
    if (name == "Neg")
      return f ? arith::NegFOp::create(nb, nl, v).getResult()
               : arith::SubIOp::create(nb, nl, cst(nb, nl, t, 0), v).getResult();
    if (name == "Abs")
      return f ? math::AbsFOp::create(nb, nl, v).getResult()
               : (isUnsigned(et) ? v : math::AbsIOp::create(nb, nl, v).getResult());
    if (name == "Sqrt")
      return math::SqrtOp::create(nb, nl, v);
    if (name == "Reciprocal")
      return arith::DivFOp::create(nb, nl, cst(nb, nl, t, 1.0), v);
    if (name == "Exp")
      return math::ExpOp::create(nb, nl, v);
    if (name == "Log")
      return math::LogOp::create(nb, nl, v);
    if (name == "Cos")
      return math::CosOp::create(nb, nl, v);
    if (name == "Sin")
      return math::SinOp::create(nb, nl, v);
    if (name == "Tanh")
      return tanhF(nb, nl, v);
    if (name == "Sigmoid")
      return sigmoid(nb, nl, v);
    if (name == "Erf")
      return erfF(nb, nl, v);
    if (name == "Floor")
      return math::FloorOp::create(nb, nl, v);
    if (name == "Ceil")
      return math::CeilOp::create(nb, nl, v);
    if (name == "Relu")
      return f ? arith::MaximumFOp::create(nb, nl, v, cst(nb, nl, t, 0)).getResult()
               : arith::MaxSIOp::create(nb, nl, v, cst(nb, nl, t, 0)).getResult();
    if (name == "Softplus") {
      // log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|))
      Value ax = math::AbsFOp::create(nb, nl, v);
      Value e = math::ExpOp::create(nb, nl, arith::NegFOp::create(nb, nl, ax));
      Value lg = math::Log1pOp::create(nb, nl, e);
      Value m = arith::MaximumFOp::create(nb, nl, v, cst(nb, nl, t, 0));
      return arith::AddFOp::create(nb, nl, m, lg);
    }
    if (name == "Not")
      return arith::XOrIOp::create(nb, nl, v, cst(nb, nl, t, 1));
    if (name == "IsNaN")
      return arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::UNO, v, v);
    if (name == "IsInf") {
      Value inf = cst(nb, nl, t, std::numeric_limits<double>::infinity());
      Value ninf = cst(nb, nl, t, -std::numeric_limits<double>::infinity());
      Value r = cst(nb, nl, nb.getI1Type(), 0);
      if (detPos)
        r = arith::OrIOp::create(nb, nl, r, arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, v, inf));
      if (detNeg)
        r = arith::OrIOp::create(nb, nl, r, arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OEQ, v, ninf));
      return r;
    }
    return Value();
  });
}

FailureOr<Value> lowerCast(OpBuilder &b, Location l, Operation *op, Value x, Type to) {
  auto xt = ranked(x);
  if (!xt || !supportedElt(xt.getElementType()) || !supportedElt(to) ||
      eltOf(op->getResult(0)) != to)
    return failure();
  Type from = xt.getElementType();
  if (from == to && op->getResult(0).getType() == x.getType())
    return x;
  return elementwise(b, l, op, {x}, [&](OpBuilder &nb, Location nl, Scalars s) {
    return convert(nb, nl, s[0], from, to);
  });
}

//===----------------------------------------------------------------------===//
// Reductions, softmax, normalizations
//===----------------------------------------------------------------------===//

/// Reduces `x` over the dims with `red[i]` into a tensor of the kept dims.
Value reduce(OpBuilder &b, Location l, Value x, ArrayRef<bool> red, Value init,
             function_ref<Value(OpBuilder &, Location, Value, Value)> comb) {
  MLIRContext *ctx = b.getContext();
  auto xt = ranked(x);
  int64_t r = xt.getRank();
  SmallVector<int64_t> shape;
  SmallVector<Value> dims;
  SmallVector<AffineExpr> oe;
  SmallVector<IteratorType> it;
  for (int64_t i = 0; i < r; ++i) {
    it.push_back(red[i] ? IteratorType::reduction : IteratorType::parallel);
    if (red[i])
      continue;
    shape.push_back(xt.getDimSize(i));
    dims.push_back(dimOf(b, l, x, i));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  auto t = RankedTensorType::get(shape, signless(xt.getElementType()));
  Value acc = fillT(b, l, t, dims, init);
  auto g = linalg::GenericOp::create(
      b, l, TypeRange{t}, ValueRange{x}, ValueRange{acc},
      {AffineMap::getMultiDimIdentityMap(r, ctx), AffineMap::get(r, 0, oe, ctx)}, it,
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        linalg::YieldOp::create(nb, nl, comb(nb, nl, a[1], toSL(nb, nl, a[0])));
      });
  return g.getResult(0);
}

/// Reads the reduced tensor `red` (kept dims of `full`'s rank) inside a
/// mapInto body: the map drops the reduced dims.
Value mapWithReduced(OpBuilder &b, Location l, RankedTensorType rt, ArrayRef<Value> dims,
                     Value full, ArrayRef<Value> reduced, ArrayRef<bool> red,
                     function_ref<Value(OpBuilder &, Location, Value, ArrayRef<Value>)> fn) {
  MLIRContext *ctx = b.getContext();
  int64_t R = rt.getRank();
  SmallVector<AffineExpr> ke;
  for (int64_t i = 0; i < R; ++i)
    if (!red[i])
      ke.push_back(getAffineDimExpr(i, ctx));
  SmallVector<Value> ins{full};
  SmallVector<AffineMap> maps{AffineMap::getMultiDimIdentityMap(R, ctx)};
  for (Value v : reduced) {
    ins.push_back(v);
    maps.push_back(AffineMap::get(R, 0, ke, ctx));
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(R, ctx));
  Value init = emptyWith(b, l, rt, dims);
  Type relt = rt.getElementType();
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ins, ValueRange{init}, maps, parallel(R),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               SmallVector<Value> rs = llvm::to_vector(a.drop_front().drop_back());
               linalg::YieldOp::create(nb, nl, fromSL(nb, nl, fn(nb, nl, toSL(nb, nl, a[0]), rs), relt));
             })
      .getResult(0);
}

Value maxInit(OpBuilder &b, Location l, Type t, bool isMax) {
  t = signless(t);
  if (auto ft = dyn_cast<FloatType>(t))
    return cst(b, l, t, isMax ? -std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::infinity());
  unsigned w = cast<IntegerType>(t).getWidth();
  APInt v = isMax ? APInt::getSignedMinValue(w) : APInt::getSignedMaxValue(w);
  return arith::ConstantOp::create(b, l, b.getIntegerAttr(t, v));
}

FailureOr<Value> lowerReduce(OpBuilder &b, Location l, Operation *op, Value data,
                             Value axesV, int64_t keepdims, int64_t noop, StringRef kind) {
  auto xt = ranked(data), rt = ranked(op->getResult(0));
  if (!xt || !rt)
    return failure();
  Type et = xt.getElementType();
  if (!isFloat(et) && !(isInt(et) && !isUnsigned(et)))
    return failure();
  if (kind == "Mean" && !isFloat(et))
    return failure();
  int64_t r = xt.getRank();
  SmallVector<int64_t> axes;
  if (axesV) {
    auto c = constInts(axesV);
    if (!c)
      return failure();
    axes = *c;
  }
  if (axes.empty() && noop)
    return castTo(b, l, data, rt);
  SmallVector<bool> red(r, axes.empty());
  for (int64_t a : axes) {
    a = a < 0 ? a + r : a;
    if (a < 0 || a >= r)
      return failure();
    red[a] = true;
  }
  bool isMax = kind == "Max";
  Value init = kind == "Max" || kind == "Min" ? maxInit(b, l, et, isMax) : cst(b, l, et, 0);
  bool f = isFloat(et);
  Value s = reduce(b, l, data, red, init, [&](OpBuilder &nb, Location nl, Value acc, Value v) {
    if (kind == "Max")
      return binary(nb, nl, Bin::Max, acc, v, et);
    if (kind == "Min")
      return binary(nb, nl, Bin::Min, acc, v, et);
    return f ? arith::AddFOp::create(nb, nl, acc, v).getResult() : arith::AddIOp::create(nb, nl, acc, v).getResult();
  });
  SmallVector<Value> keptDims, outDims;
  for (int64_t i = 0; i < r; ++i) {
    if (!red[i])
      keptDims.push_back(dimOf(b, l, data, i));
    if (!red[i] || keepdims)
      outDims.push_back(red[i] ? cIdx(b, l, 1) : dimOf(b, l, data, i));
  }
  if (kind == "Mean") {
    Value n = cIdx(b, l, 1);
    for (int64_t i = 0; i < r; ++i)
      if (red[i])
        n = arith::MulIOp::create(b, l, n, dimOf(b, l, data, i));
    Value nf = convert(b, l, n, b.getIndexType(), et);
    auto st = cast<RankedTensorType>(s.getType());
    s = mapInto(b, l, st, keptDims, {s}, [&](OpBuilder &nb, Location nl, Scalars v) {
      return arith::DivFOp::create(nb, nl, v[0], nf).getResult();
    });
  }
  if ((int64_t)outDims.size() != rt.getRank())
    return failure();
  if (signless(et) != et)
    return failure();
  return reshapeTo(b, l, s, rt, outDims);
}

FailureOr<Value> lowerSoftmax(OpBuilder &b, Location l, ox::SoftmaxOp op) {
  Value x = op.getInput();
  auto xt = ranked(x);
  if (!xt || !isFloat(xt.getElementType()) || xt.getRank() == 0)
    return failure();
  int64_t r = xt.getRank(), ax = op.getAxis();
  ax = ax < 0 ? ax + r : ax;
  SmallVector<bool> red(r, false);
  red[ax] = true;
  Type et = xt.getElementType();
  Value mx = reduce(b, l, x, red, maxInit(b, l, et, true), [&](OpBuilder &nb, Location nl, Value a, Value v) {
    return arith::MaximumFOp::create(nb, nl, a, v).getResult();
  });
  SmallVector<Value> dims = dimsOf(b, l, x);
  Value e = mapWithReduced(b, l, xt, dims, x, {mx}, red, [&](OpBuilder &nb, Location nl, Value v, ArrayRef<Value> rs) {
    // exp(-inf - -inf) of a fully -inf row is NaN, as in onnxruntime.
    return math::ExpOp::create(nb, nl, arith::SubFOp::create(nb, nl, v, rs[0])).getResult();
  });
  Value sum = reduce(b, l, e, red, cst(b, l, et, 0), [&](OpBuilder &nb, Location nl, Value a, Value v) {
    return arith::AddFOp::create(nb, nl, a, v).getResult();
  });
  return mapWithReduced(b, l, xt, dims, e, {sum}, red, [&](OpBuilder &nb, Location nl, Value v, ArrayRef<Value> rs) {
    return arith::DivFOp::create(nb, nl, v, rs[0]).getResult();
  });
}

/// (x - mean) * rsqrt(var + eps) [simplified: x * rsqrt(mean(x^2) + eps)]
/// over dims [axis, r), times scale (and + bias), scale/bias broadcast from
/// the right. Returns {Y, inv_std (keepdims shape over the reduced dims)}.
FailureOr<std::pair<Value, Value>> normalize(OpBuilder &b, Location l, Value x,
                                             Value scale, Value bias, int64_t axis,
                                             double eps, bool simplified,
                                             RankedTensorType yType) {
  auto xt = ranked(x);
  if (!xt || !isFloat(xt.getElementType()) || !ranked(scale) ||
      ranked(scale).getElementType() != xt.getElementType() ||
      (bias && (!ranked(bias) || ranked(bias).getElementType() != xt.getElementType())) ||
      !yType || yType.getElementType() != xt.getElementType())
    return failure();
  int64_t r = xt.getRank();
  axis = axis < 0 ? axis + r : axis;
  if (axis < 0 || axis >= r || ranked(scale).getRank() > r - axis ||
      (bias && ranked(bias).getRank() > r - axis))
    return failure();
  Type et = xt.getElementType();
  SmallVector<bool> red(r, false);
  for (int64_t i = axis; i < r; ++i)
    red[i] = true;
  Value n = cIdx(b, l, 1);
  for (int64_t i = axis; i < r; ++i)
    n = arith::MulIOp::create(b, l, n, dimOf(b, l, x, i));
  Value nf = convert(b, l, n, b.getIndexType(), et);
  SmallVector<Value> dims = dimsOf(b, l, x);
  Value centered = x;
  if (!simplified) {
    Value sum = reduce(b, l, x, red, cst(b, l, et, 0), [&](OpBuilder &nb, Location nl, Value a, Value v) {
      return arith::AddFOp::create(nb, nl, a, v).getResult();
    });
    centered = mapWithReduced(b, l, xt, dims, x, {sum}, red, [&](OpBuilder &nb, Location nl, Value v, ArrayRef<Value> rs) {
      Value mean = arith::DivFOp::create(nb, nl, rs[0], nf);
      return arith::SubFOp::create(nb, nl, v, mean).getResult();
    });
  }
  Value ss = reduce(b, l, centered, red, cst(b, l, et, 0), [&](OpBuilder &nb, Location nl, Value a, Value v) {
    return arith::AddFOp::create(nb, nl, a, arith::MulFOp::create(nb, nl, v, v)).getResult();
  });
  Value epsV = cst(b, l, et, eps);
  SmallVector<Value> keptDims(dims.begin(), dims.begin() + axis);
  auto sst = cast<RankedTensorType>(ss.getType());
  Value inv = mapInto(b, l, sst, keptDims, {ss}, [&](OpBuilder &nb, Location nl, Scalars s) {
    Value m = arith::DivFOp::create(nb, nl, s[0], nf);
    return math::RsqrtOp::create(nb, nl, arith::AddFOp::create(nb, nl, m, epsV)).getResult();
  });
  Value normed = mapWithReduced(b, l, xt, dims, centered, {inv}, red, [&](OpBuilder &nb, Location nl, Value v, ArrayRef<Value> rs) {
    return arith::MulFOp::create(nb, nl, v, rs[0]).getResult();
  });
  SmallVector<Value> ins{normed, scale};
  if (bias)
    ins.push_back(bias);
  Value y = mapInto(b, l, yType, dims, ins, [&](OpBuilder &nb, Location nl, Scalars s) {
    Value v = arith::MulFOp::create(nb, nl, s[0], s[1]);
    return bias ? arith::AddFOp::create(nb, nl, v, s[2]).getResult() : v;
  });
  SmallVector<int64_t> kshape(xt.getShape().take_front(axis));
  SmallVector<Value> kdims(keptDims);
  for (int64_t i = axis; i < r; ++i) {
    kshape.push_back(1);
    kdims.push_back(cIdx(b, l, 1));
  }
  Value invK = reshapeTo(b, l, inv, RankedTensorType::get(kshape, et), kdims);
  return std::make_pair(y, invK);
}

//===----------------------------------------------------------------------===//
// MatMul, Gemm, Einsum
//===----------------------------------------------------------------------===//

/// Y[batch..., m, n] = sum_k A[batchA..., m, k] * B[batchB..., k, n] with
/// numpy batch broadcasting; A and B have rank >= 2. Ambiguous dynamic batch
/// dims are first materialized by broadcasting.
Value batchedMatmul(OpBuilder &b, Location l, Value A, Value B, Type et) {
  MLIRContext *ctx = b.getContext();
  auto at = ranked(A), bt = ranked(B);
  int64_t ra = at.getRank(), rb = bt.getRank();
  int64_t nb = std::max(ra, rb) - 2;
  SmallVector<Value> bdims;
  SmallVector<int64_t> bshape;
  bool ambiguous = false;
  for (int64_t j = 0; j < nb; ++j) {
    int64_t ia = j - (nb - (ra - 2)), ib = j - (nb - (rb - 2));
    int64_t sa = ia >= 0 ? at.getDimSize(ia) : 1, sb = ib >= 0 ? bt.getDimSize(ib) : 1;
    if ((ShapedType::isDynamic(sa) && ib >= 0 && sb != 1) ||
        (ShapedType::isDynamic(sb) && ia >= 0 && sa != 1))
      ambiguous = true;
    Value d;
    if (ia >= 0)
      d = dimOf(b, l, A, ia);
    if (ib >= 0)
      d = d ? bcastDim(b, l, d, dimOf(b, l, B, ib)) : dimOf(b, l, B, ib);
    bdims.push_back(d);
    bshape.push_back(sa != 1 && !ShapedType::isDynamic(sa) ? sa
                     : sb != 1 && !ShapedType::isDynamic(sb) ? sb
                     : (sa == 1 && sb == 1) ? 1 : ShapedType::kDynamic);
  }
  auto expand = [&](Value v) {
    auto t = ranked(v);
    int64_t r = t.getRank();
    SmallVector<int64_t> s(bshape);
    s.push_back(t.getDimSize(r - 2));
    s.push_back(t.getDimSize(r - 1));
    SmallVector<Value> d(bdims);
    d.push_back(dimOf(b, l, v, r - 2));
    d.push_back(dimOf(b, l, v, r - 1));
    return mapInto(b, l, RankedTensorType::get(s, t.getElementType()), d, {v},
                   [](OpBuilder &, Location, Scalars x) { return x[0]; }, true);
  };
  if (ambiguous) {
    A = expand(A);
    B = expand(B);
    at = ranked(A);
    bt = ranked(B);
    ra = rb = nb + 2;
  }
  int64_t nl = nb + 3;
  AffineExpr m = getAffineDimExpr(nb, ctx), n = getAffineDimExpr(nb + 1, ctx),
             k = getAffineDimExpr(nb + 2, ctx);
  auto batchExprs = [&](RankedTensorType t) {
    SmallVector<AffineExpr> e;
    int64_t r = t.getRank() - 2;
    for (int64_t i = 0; i < r; ++i)
      e.push_back(t.getDimSize(i) == 1 ? getAffineConstantExpr(0, ctx)
                                       : getAffineDimExpr(i + nb - r, ctx));
    return e;
  };
  SmallVector<AffineExpr> ae = batchExprs(at), be = batchExprs(bt), oe;
  ae.append({m, k});
  be.append({k, n});
  for (int64_t i = 0; i < nb; ++i)
    oe.push_back(getAffineDimExpr(i, ctx));
  oe.append({m, n});
  SmallVector<int64_t> oshape(bshape);
  oshape.push_back(at.getDimSize(ra - 2));
  oshape.push_back(bt.getDimSize(rb - 1));
  SmallVector<Value> odims(bdims);
  odims.push_back(dimOf(b, l, A, ra - 2));
  odims.push_back(dimOf(b, l, B, rb - 1));
  Type slt = signless(et);
  auto ot = RankedTensorType::get(oshape, slt);
  Value acc = fillT(b, l, ot, odims, cst(b, l, slt, 0));
  SmallVector<IteratorType> it = parallel(nb + 2);
  it.push_back(IteratorType::reduction);
  bool f = isFloat(et);
  return linalg::GenericOp::create(
             b, l, TypeRange{ot}, ValueRange{A, B}, ValueRange{acc},
             {AffineMap::get(nl, 0, ae, ctx), AffineMap::get(nl, 0, be, ctx),
              AffineMap::get(nl, 0, oe, ctx)},
             it,
             [&](OpBuilder &nb2, Location l2, ValueRange a) {
               Value x = toSL(nb2, l2, a[0]), y = toSL(nb2, l2, a[1]);
               Value p = f ? arith::MulFOp::create(nb2, l2, x, y).getResult()
                           : arith::MulIOp::create(nb2, l2, x, y).getResult();
               Value s = f ? arith::AddFOp::create(nb2, l2, a[2], p).getResult()
                           : arith::AddIOp::create(nb2, l2, a[2], p).getResult();
               linalg::YieldOp::create(nb2, l2, s);
             })
      .getResult(0);
}

FailureOr<Value> lowerMatMul(OpBuilder &b, Location l, ox::MatMulOp op) {
  Value A = op.getA(), B = op.getB();
  auto at = ranked(A), bt = ranked(B), rt = ranked(op.getY());
  if (!at || !bt || !rt || at.getRank() == 0 || bt.getRank() == 0)
    return failure();
  Type et = at.getElementType();
  if (signless(et) != et || !supportedElt(et))
    return failure();
  bool aVec = at.getRank() == 1, bVec = bt.getRank() == 1;
  if (aVec)
    A = reshapeTo(b, l, A, RankedTensorType::get({1, at.getDimSize(0)}, et),
                  {cIdx(b, l, 1), dimOf(b, l, A, 0)});
  if (bVec)
    B = reshapeTo(b, l, B, RankedTensorType::get({bt.getDimSize(0), 1}, et),
                  {dimOf(b, l, B, 0), cIdx(b, l, 1)});
  Value y = batchedMatmul(b, l, A, B, et);
  auto yt = ranked(y);
  int64_t ry = yt.getRank();
  SmallVector<Value> dims;
  for (int64_t i = 0; i < ry; ++i) {
    if ((aVec && i == ry - 2) || (bVec && i == ry - 1))
      continue;
    dims.push_back(dimOf(b, l, y, i));
  }
  if ((int64_t)dims.size() != rt.getRank())
    return failure();
  if (!aVec && !bVec)
    return castTo(b, l, y, rt);
  return reshapeTo(b, l, y, rt, dims);
}

Value transpose2D(OpBuilder &b, Location l, Value v) {
  auto t = ranked(v);
  auto tt = RankedTensorType::get({t.getDimSize(1), t.getDimSize(0)}, t.getElementType());
  MLIRContext *ctx = b.getContext();
  Value init = emptyWith(b, l, tt, {dimOf(b, l, v, 1), dimOf(b, l, v, 0)});
  return linalg::GenericOp::create(
             b, l, TypeRange{tt}, ValueRange{v}, ValueRange{init},
             {AffineMap::get(2, 0, {getAffineDimExpr(1, ctx), getAffineDimExpr(0, ctx)}, ctx),
              AffineMap::getMultiDimIdentityMap(2, ctx)},
             parallel(2),
             [](OpBuilder &nb, Location nl, ValueRange a) { linalg::YieldOp::create(nb, nl, a[0]); })
      .getResult(0);
}

FailureOr<Value> lowerGemm(OpBuilder &b, Location l, ox::GemmOp op) {
  Value A = op.getA(), B = op.getB(), C = op.getC();
  auto at = ranked(A), bt = ranked(B), rt = ranked(op.getY());
  if (!at || !bt || !rt || at.getRank() != 2 || bt.getRank() != 2 || rt.getRank() != 2 ||
      !isFloat(at.getElementType()) || (C && !ranked(C)))
    return failure();
  Type et = at.getElementType();
  if (op.getTransA())
    A = transpose2D(b, l, A);
  if (op.getTransB())
    B = transpose2D(b, l, B);
  Value y = batchedMatmul(b, l, A, B, et);
  double alpha = op.getAlpha().convertToDouble(), beta = op.getBeta().convertToDouble();
  SmallVector<Value> ins{y};
  if (C)
    ins.push_back(C);
  SmallVector<Value> dims = dimsOf(b, l, y);
  return mapInto(b, l, rt, dims, ins, [&](OpBuilder &nb, Location nl, Scalars s) {
    Value v = arith::MulFOp::create(nb, nl, s[0], cst(nb, nl, et, alpha));
    if (C)
      v = arith::AddFOp::create(nb, nl, v, arith::MulFOp::create(nb, nl, s[1], cst(nb, nl, et, beta)));
    return v;
  });
}

/// Einsum without ellipsis: one generic over all letters.
FailureOr<Value> lowerEinsum(OpBuilder &b, Location l, ox::EinsumOp op) {
  std::string eq;
  for (char c : op.getEquation())
    if (c != ' ')
      eq.push_back(c);
  size_t arrow = eq.find("->");
  if (arrow == std::string::npos || eq.find("...") != std::string::npos)
    return failure();
  SmallVector<StringRef> ins;
  StringRef(eq).substr(0, arrow).split(ins, ',');
  std::string out = eq.substr(arrow + 2);
  auto rt = ranked(op.getOutput());
  if (ins.size() != op.getInputs().size() || !rt || (int64_t)out.size() != rt.getRank())
    return failure();
  Type et = rt.getElementType();
  if (!isFloat(et))
    return failure();
  std::string letters = out;
  for (StringRef s : ins) {
    for (char c : s)
      if (letters.find(c) == std::string::npos)
        letters.push_back(c);
  }
  MLIRContext *ctx = b.getContext();
  int64_t n = letters.size();
  SmallVector<AffineMap> maps;
  SmallVector<Value> dimOfLetter(n);
  for (auto [k, s] : llvm::enumerate(ins)) {
    Value v = op.getInputs()[k];
    auto t = ranked(v);
    if (!t || t.getRank() != (int64_t)s.size() || t.getElementType() != et)
      return failure();
    SmallVector<AffineExpr> e;
    for (auto [i, c] : llvm::enumerate(s)) {
      int64_t p = letters.find(c);
      e.push_back(getAffineDimExpr(p, ctx));
      if (!dimOfLetter[p] || t.getDimSize(i) != 1)
        dimOfLetter[p] = dimOf(b, l, v, i);
    }
    maps.push_back(AffineMap::get(n, 0, e, ctx));
  }
  SmallVector<AffineExpr> oe;
  SmallVector<Value> odims;
  for (int64_t i = 0; i < (int64_t)out.size(); ++i) {
    oe.push_back(getAffineDimExpr(i, ctx));
    if (!dimOfLetter[i])
      return failure();
    odims.push_back(dimOfLetter[i]);
  }
  maps.push_back(AffineMap::get(n, 0, oe, ctx));
  SmallVector<IteratorType> it = parallel(out.size());
  for (int64_t i = out.size(); i < n; ++i)
    it.push_back(IteratorType::reduction);
  Value acc = fillT(b, l, rt, odims, cst(b, l, et, 0));
  return linalg::GenericOp::create(b, l, TypeRange{rt}, op.getInputs(), ValueRange{acc}, maps, it,
                                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                                     Value p = a[0];
                                     for (Value v : a.drop_front().drop_back())
                                       p = arith::MulFOp::create(nb, nl, p, v);
                                     linalg::YieldOp::create(nb, nl, arith::AddFOp::create(nb, nl, a.back(), p).getResult());
                                   })
      .getResult(0);
}

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

/// Generic over `rt` whose body computes each element from the output
/// indices (reads go through tensor.extract).
Value generate(OpBuilder &b, Location l, RankedTensorType rt, ArrayRef<Value> dims,
               function_ref<Value(OpBuilder &, Location, ArrayRef<Value>)> fn) {
  int64_t R = rt.getRank();
  MLIRContext *ctx = b.getContext();
  Value init = emptyWith(b, l, rt, dims);
  Type relt = rt.getElementType();
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ValueRange{}, ValueRange{init},
             {AffineMap::getMultiDimIdentityMap(R, ctx)}, parallel(R),
             [&](OpBuilder &nb, Location nl, ValueRange) {
               SmallVector<Value> iv;
               for (int64_t i = 0; i < R; ++i)
                 iv.push_back(linalg::IndexOp::create(nb, nl, i));
               Value v = fn(nb, nl, iv);
               linalg::YieldOp::create(nb, nl, v.getType() == relt ? v : fromSL(nb, nl, v, relt));
             })
      .getResult(0);
}

/// Wraps a negative index `i` by `n` (index values).
Value wrapIdx(OpBuilder &b, Location l, Value i, Value n) {
  Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, cIdx(b, l, 0));
  return arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, i, n), i);
}

FailureOr<Value> lowerReshape(OpBuilder &b, Location l, ox::ReshapeOp op) {
  Value x = op.getData(), s = op.getShape();
  auto xt = ranked(x), st = ranked(s), rt = ranked(op.getReshaped());
  if (!xt || !st || !rt || st.getRank() != 1 || st.getDimSize(0) != rt.getRank())
    return failure();
  int64_t R = rt.getRank();
  std::optional<SmallVector<int64_t>> cs = constInts(s);
  Value total = cIdx(b, l, 1);
  for (int64_t i = 0; i < xt.getRank(); ++i)
    total = arith::MulIOp::create(b, l, total, dimOf(b, l, x, i));
  SmallVector<Value> v;
  for (int64_t j = 0; j < R; ++j) {
    Value e;
    if (cs) {
      int64_t c = (*cs)[j];
      if (c == 0 && !op.getAllowzero())
        e = j < xt.getRank() ? dimOf(b, l, x, j) : cIdx(b, l, 0);
      else
        e = cIdx(b, l, c);
    } else {
      e = elemIdx(b, l, s, j);
      if (!op.getAllowzero() && j < xt.getRank())
        e = selectIdx(b, l, eqIdx(b, l, e, 0), dimOf(b, l, x, j), e);
    }
    v.push_back(e);
  }
  Value known = cIdx(b, l, 1);
  for (Value e : v)
    known = arith::MulIOp::create(b, l, known, selectIdx(b, l, eqIdx(b, l, e, -1), cIdx(b, l, 1), e));
  Value inferred = arith::DivUIOp::create(b, l, total, arith::MaxUIOp::create(b, l, known, cIdx(b, l, 1)));
  for (Value &e : v)
    e = selectIdx(b, l, eqIdx(b, l, e, -1), inferred, e);
  return reshapeTo(b, l, x, rt, v);
}

FailureOr<Value> lowerFlatten(OpBuilder &b, Location l, ox::FlattenOp op) {
  Value x = op.getInput();
  auto xt = ranked(x), rt = ranked(op.getOutput());
  if (!xt || !rt || rt.getRank() != 2)
    return failure();
  int64_t r = xt.getRank(), ax = op.getAxis();
  ax = ax < 0 ? ax + r : ax;
  Value d0 = cIdx(b, l, 1), d1 = cIdx(b, l, 1);
  for (int64_t i = 0; i < r; ++i)
    (i < ax ? d0 : d1) = arith::MulIOp::create(b, l, i < ax ? d0 : d1, dimOf(b, l, x, i));
  return reshapeTo(b, l, x, rt, {d0, d1});
}

FailureOr<Value> lowerSqueezeLike(OpBuilder &b, Location l, Operation *op, Value x,
                                  Value axesV, bool unsqueeze) {
  auto xt = ranked(x), rt = ranked(op->getResult(0));
  if (!xt || !rt)
    return failure();
  int64_t r = xt.getRank();
  SmallVector<int64_t> axes;
  if (axesV) {
    auto c = constInts(axesV);
    if (!c)
      return failure();
    axes = *c;
  }
  SmallVector<Value> dims;
  if (unsqueeze) {
    int64_t n = r + axes.size();
    SmallVector<bool> unit(n, false);
    for (int64_t a : axes) {
      a = a < 0 ? a + n : a;
      if (a < 0 || a >= n)
        return failure();
      unit[a] = true;
    }
    for (int64_t i = 0, j = 0; i < n; ++i)
      dims.push_back(unit[i] ? cIdx(b, l, 1) : dimOf(b, l, x, j++));
  } else {
    SmallVector<bool> drop(r, false);
    if (!axesV) {
      for (int64_t i = 0; i < r; ++i) {
        if (xt.isDynamicDim(i))
          return failure();
        drop[i] = xt.getDimSize(i) == 1;
      }
    }
    for (int64_t a : axes) {
      a = a < 0 ? a + r : a;
      if (a < 0 || a >= r)
        return failure();
      drop[a] = true;
    }
    for (int64_t i = 0; i < r; ++i)
      if (!drop[i])
        dims.push_back(dimOf(b, l, x, i));
  }
  if ((int64_t)dims.size() != rt.getRank())
    return failure();
  return reshapeTo(b, l, x, rt, dims);
}

FailureOr<Value> lowerTranspose(OpBuilder &b, Location l, ox::TransposeOp op) {
  Value x = op.getData();
  auto xt = ranked(x), rt = ranked(op.getTransposed());
  if (!xt || !rt)
    return failure();
  int64_t r = xt.getRank();
  SmallVector<int64_t> perm;
  if (op.getPerm())
    perm.assign(op.getPerm()->begin(), op.getPerm()->end());
  else
    for (int64_t i = r - 1; i >= 0; --i)
      perm.push_back(i);
  if ((int64_t)perm.size() != r)
    return failure();
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineExpr> ie(r);
  SmallVector<Value> dims;
  for (int64_t j = 0; j < r; ++j) {
    ie[perm[j]] = getAffineDimExpr(j, ctx);
    dims.push_back(dimOf(b, l, x, perm[j]));
  }
  Value init = emptyWith(b, l, rt, dims);
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ValueRange{x}, ValueRange{init},
             {AffineMap::get(r, 0, ie, ctx), AffineMap::getMultiDimIdentityMap(r, ctx)},
             parallel(r),
             [](OpBuilder &nb, Location nl, ValueRange a) { linalg::YieldOp::create(nb, nl, a[0]); })
      .getResult(0);
}

FailureOr<Value> lowerConcat(OpBuilder &b, Location l, ox::ConcatOp op) {
  auto rt = ranked(op.getConcatResult());
  if (!rt || op.getInputs().empty())
    return failure();
  int64_t r = rt.getRank(), ax = op.getAxis();
  ax = ax < 0 ? ax + r : ax;
  for (Value v : op.getInputs())
    if (!ranked(v) || ranked(v).getRank() != r)
      return failure();
  Value first = op.getInputs()[0];
  SmallVector<Value> dims = dimsOf(b, l, first);
  Value total = cIdx(b, l, 0);
  for (Value v : op.getInputs())
    total = arith::AddIOp::create(b, l, total, dimOf(b, l, v, ax));
  dims[ax] = total;
  for (int64_t i = 0; i < r; ++i)
    if (!rt.isDynamicDim(i))
      dims[i] = cIdx(b, l, rt.getDimSize(i));
  Value acc = emptyWith(b, l, rt, dims);
  Value off = cIdx(b, l, 0);
  for (Value v : op.getInputs()) {
    SmallVector<OpFoldResult> offs(r, b.getIndexAttr(0)), sizes, strides(r, b.getIndexAttr(1));
    offs[ax] = getAsOpFoldResult(off);
    for (int64_t i = 0; i < r; ++i)
      sizes.push_back(tensor::getMixedSize(b, l, v, i));
    acc = tensor::InsertSliceOp::create(b, l, v, acc, offs, sizes, strides);
    off = arith::AddIOp::create(b, l, off, dimOf(b, l, v, ax));
  }
  return acc;
}

Result lowerSplit(OpBuilder &b, Location l, ox::SplitOp op) {
  Value x = op.getInput();
  auto xt = ranked(x);
  if (!xt)
    return failure();
  int64_t r = xt.getRank(), ax = op.getAxis(), n = op.getNumResults();
  ax = ax < 0 ? ax + r : ax;
  if (ax < 0 || ax >= r)
    return failure();
  Value len = dimOf(b, l, x, ax);
  SmallVector<Value> sizes;
  if (op.getSplit()) {
    auto st = ranked(op.getSplit());
    if (!st || st.getRank() != 1)
      return failure();
    for (int64_t i = 0; i < n; ++i)
      sizes.push_back(elemIdx(b, l, op.getSplit(), i));
  } else {
    // ceil(len / n) each, the last one the rest.
    Value chunk = arith::CeilDivUIOp::create(b, l, len, cIdx(b, l, n));
    Value used = cIdx(b, l, 0);
    for (int64_t i = 0; i < n; ++i) {
      Value rest = arith::SubIOp::create(b, l, len, used);
      Value s = arith::MinUIOp::create(b, l, chunk, rest);
      sizes.push_back(s);
      used = arith::AddIOp::create(b, l, used, s);
    }
  }
  SmallVector<Value> outs;
  Value off = cIdx(b, l, 0);
  for (int64_t i = 0; i < n; ++i) {
    auto rt = ranked(op.getResult(i));
    if (!rt)
      return failure();
    SmallVector<OpFoldResult> offs(r, b.getIndexAttr(0)), sz, strides(r, b.getIndexAttr(1));
    offs[ax] = getAsOpFoldResult(off);
    for (int64_t k = 0; k < r; ++k)
      sz.push_back(k == ax ? getAsOpFoldResult(sizes[i]) : tensor::getMixedSize(b, l, x, k));
    auto slice = tensor::ExtractSliceOp::create(b, l, x, offs, sz, strides);
    outs.push_back(castTo(b, l, slice, rt));
    off = arith::AddIOp::create(b, l, off, sizes[i]);
  }
  return outs;
}

FailureOr<Value> lowerSlice(OpBuilder &b, Location l, ox::SliceOp op) {
  Value x = op.getData();
  auto xt = ranked(x), rt = ranked(op.getOutput()), st = ranked(op.getStarts());
  if (!xt || !rt || !st || st.getRank() != 1 || st.isDynamicDim(0))
    return failure();
  int64_t r = xt.getRank(), k = st.getDimSize(0);
  SmallVector<int64_t> axes;
  if (op.getAxes()) {
    auto c = constInts(op.getAxes());
    if (!c)
      return failure();
    axes = *c;
  } else {
    for (int64_t i = 0; i < k; ++i)
      axes.push_back(i);
  }
  if ((int64_t)axes.size() != k)
    return failure();
  // Per dim: start and step (index), size.
  SmallVector<Value> start(r), step(r), size(r);
  for (int64_t i = 0; i < r; ++i) {
    start[i] = cIdx(b, l, 0);
    step[i] = cIdx(b, l, 1);
    size[i] = dimOf(b, l, x, i);
  }
  Type i64 = b.getI64Type();
  auto c64 = [&](int64_t v) { return arith::ConstantOp::create(b, l, b.getI64IntegerAttr(v)).getResult(); };
  auto elem64 = [&](Value t, int64_t i) {
    Value e = tensor::ExtractOp::create(b, l, t, ValueRange{cIdx(b, l, i)});
    return e.getType() == i64 ? e : arith::ExtSIOp::create(b, l, i64, e).getResult();
  };
  auto clamp = [&](Value v, Value lo, Value hi) {
    return arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, v, lo), hi).getResult();
  };
  for (int64_t j = 0; j < k; ++j) {
    int64_t a = axes[j] < 0 ? axes[j] + r : axes[j];
    if (a < 0 || a >= r)
      return failure();
    Value n = arith::IndexCastOp::create(b, l, i64, dimOf(b, l, x, a));
    Value s = elem64(op.getStarts(), j), e = elem64(op.getEnds(), j);
    Value stp = op.getSteps() ? elem64(op.getSteps(), j) : c64(1);
    Value zero = c64(0), one = c64(1), m1 = c64(-1);
    Value pos = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sgt, stp, zero);
    auto norm = [&](Value v) {
      Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, v, zero);
      return arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, v, n), v).getResult();
    };
    s = norm(s);
    e = norm(e);
    Value nm1 = arith::SubIOp::create(b, l, n, one);
    s = arith::SelectOp::create(b, l, pos, clamp(s, zero, n), clamp(s, zero, nm1));
    e = arith::SelectOp::create(b, l, pos, clamp(e, zero, n), clamp(e, m1, nm1));
    // size = max(0, ceil((e - s) / step))
    Value diff = arith::SubIOp::create(b, l, e, s);
    Value cnt = arith::CeilDivSIOp::create(b, l, diff, stp);
    cnt = arith::MaxSIOp::create(b, l, cnt, zero);
    start[a] = arith::IndexCastOp::create(b, l, b.getIndexType(), s);
    step[a] = arith::IndexCastOp::create(b, l, b.getIndexType(), stp);
    size[a] = arith::IndexCastOp::create(b, l, b.getIndexType(), cnt);
  }
  if (rt.getRank() != r)
    return failure();
  return generate(b, l, rt, size, [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    SmallVector<Value> idx;
    for (int64_t i = 0; i < r; ++i)
      idx.push_back(arith::AddIOp::create(nb, nl, start[i], arith::MulIOp::create(nb, nl, iv[i], step[i])));
    return tensor::ExtractOp::create(nb, nl, x, idx).getResult();
  });
}

FailureOr<Value> lowerGather(OpBuilder &b, Location l, ox::GatherOp op) {
  Value data = op.getData(), ind = op.getIndices();
  auto dt = ranked(data), it = ranked(ind), rt = ranked(op.getOutput());
  if (!dt || !it || !rt || dt.getRank() == 0)
    return failure();
  int64_t r = dt.getRank(), q = it.getRank(), ax = op.getAxis();
  ax = ax < 0 ? ax + r : ax;
  if (rt.getRank() != r - 1 + q)
    return failure();
  SmallVector<Value> dims;
  for (int64_t i = 0; i < ax; ++i)
    dims.push_back(dimOf(b, l, data, i));
  for (int64_t i = 0; i < q; ++i)
    dims.push_back(dimOf(b, l, ind, i));
  for (int64_t i = ax + 1; i < r; ++i)
    dims.push_back(dimOf(b, l, data, i));
  Value n = dimOf(b, l, data, ax);
  return generate(b, l, rt, dims, [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    SmallVector<Value> ii(iv.begin() + ax, iv.begin() + ax + q);
    Value e = toSL(nb, nl, tensor::ExtractOp::create(nb, nl, ind, ii));
    Value k = wrapIdx(nb, nl, arith::IndexCastOp::create(nb, nl, nb.getIndexType(), e), n);
    SmallVector<Value> di(iv.begin(), iv.begin() + ax);
    di.push_back(k);
    di.append(iv.begin() + ax + q, iv.end());
    return tensor::ExtractOp::create(nb, nl, data, di).getResult();
  });
}

FailureOr<Value> lowerGatherElements(OpBuilder &b, Location l, ox::GatherElementsOp op) {
  Value data = op.getData(), ind = op.getIndices();
  auto dt = ranked(data), it = ranked(ind), rt = ranked(op.getOutput());
  if (!dt || !it || !rt || dt.getRank() != it.getRank())
    return failure();
  int64_t r = dt.getRank(), ax = op.getAxis();
  ax = ax < 0 ? ax + r : ax;
  Value n = dimOf(b, l, data, ax);
  return generate(b, l, rt, dimsOf(b, l, ind), [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    Value e = toSL(nb, nl, tensor::ExtractOp::create(nb, nl, ind, iv));
    Value k = wrapIdx(nb, nl, arith::IndexCastOp::create(nb, nl, nb.getIndexType(), e), n);
    SmallVector<Value> di(iv);
    di[ax] = k;
    return tensor::ExtractOp::create(nb, nl, data, di).getResult();
  });
}

FailureOr<Value> lowerGatherND(OpBuilder &b, Location l, ox::GatherNDOp op) {
  Value data = op.getData(), ind = op.getIndices();
  auto dt = ranked(data), it = ranked(ind), rt = ranked(op.getOutput());
  if (!dt || !it || !rt || it.getRank() == 0 || it.isDynamicDim(it.getRank() - 1))
    return failure();
  int64_t r = dt.getRank(), q = it.getRank(), bd = op.getBatchDims();
  int64_t k = it.getDimSize(q - 1);
  if (bd + k > r || rt.getRank() != q - 1 + r - k - bd)
    return failure();
  SmallVector<Value> dims;
  for (int64_t i = 0; i < q - 1; ++i)
    dims.push_back(dimOf(b, l, ind, i));
  for (int64_t i = bd + k; i < r; ++i)
    dims.push_back(dimOf(b, l, data, i));
  SmallVector<Value> dd = dimsOf(b, l, data);
  return generate(b, l, rt, dims, [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    SmallVector<Value> di(iv.begin(), iv.begin() + bd);
    SmallVector<Value> ii(iv.begin(), iv.begin() + q - 1);
    for (int64_t j = 0; j < k; ++j) {
      SmallVector<Value> e(ii);
      e.push_back(cIdx(nb, nl, j));
      Value x = toSL(nb, nl, tensor::ExtractOp::create(nb, nl, ind, e));
      di.push_back(wrapIdx(nb, nl, arith::IndexCastOp::create(nb, nl, nb.getIndexType(), x), dd[bd + j]));
    }
    di.append(iv.begin() + q - 1, iv.end());
    return tensor::ExtractOp::create(nb, nl, data, di).getResult();
  });
}

FailureOr<Value> lowerExpand(OpBuilder &b, Location l, ox::ExpandOp op) {
  Value x = op.getInput(), s = op.getShape();
  auto xt = ranked(x), st = ranked(s), rt = ranked(op.getOutput());
  if (!xt || !st || !rt || st.getRank() != 1 || st.isDynamicDim(0))
    return failure();
  int64_t r = xt.getRank(), k = st.getDimSize(0), m = std::max(r, k);
  if (rt.getRank() != m)
    return failure();
  SmallVector<Value> dims;
  for (int64_t j = 0; j < m; ++j) {
    int64_t i = j - (m - r), sj = j - (m - k);
    Value d = i >= 0 ? dimOf(b, l, x, i) : Value();
    Value e = sj >= 0 ? elemIdx(b, l, s, sj) : Value();
    dims.push_back(!d ? e : !e ? d : bcastDim(b, l, d, e));
  }
  return mapInto(b, l, rt, dims, {x}, [](OpBuilder &, Location, Scalars v) { return v[0]; },
                 /*runtime=*/true);
}

FailureOr<Value> lowerTile(OpBuilder &b, Location l, ox::TileOp op) {
  Value x = op.getInput();
  auto xt = ranked(x), rt = ranked(op.getOutput());
  if (!xt || !rt || xt.getRank() != rt.getRank())
    return failure();
  int64_t r = xt.getRank();
  SmallVector<Value> dims, xd = dimsOf(b, l, x);
  for (int64_t i = 0; i < r; ++i)
    dims.push_back(arith::MulIOp::create(b, l, xd[i], elemIdx(b, l, op.getRepeats(), i)));
  return generate(b, l, rt, dims, [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    SmallVector<Value> idx;
    for (int64_t i = 0; i < r; ++i)
      idx.push_back(arith::RemUIOp::create(nb, nl, iv[i], xd[i]));
    return tensor::ExtractOp::create(nb, nl, x, idx).getResult();
  });
}

FailureOr<Value> lowerTrilu(OpBuilder &b, Location l, ox::TriluOp op) {
  Value x = op.getInput();
  auto xt = ranked(x), rt = ranked(op.getOutput());
  if (!xt || !rt || xt.getRank() < 2 || !supportedElt(xt.getElementType()))
    return failure();
  int64_t r = xt.getRank();
  Value k = op.getK() ? elemIdx(b, l, op.getK(), ranked(op.getK()).getRank() == 0 ? -1 : 0)
                      : cIdx(b, l, 0);
  bool upper = op.getUpper();
  Type et = xt.getElementType();
  SmallVector<Value> dims = dimsOf(b, l, x);
  return mapInto(b, l, rt, dims, {x}, [&](OpBuilder &nb, Location nl, Scalars v) {
    Value i = linalg::IndexOp::create(nb, nl, r - 2), j = linalg::IndexOp::create(nb, nl, r - 1);
    Value d = arith::SubIOp::create(nb, nl, j, i);
    Value keep = arith::CmpIOp::create(nb, nl, upper ? arith::CmpIPredicate::sge : arith::CmpIPredicate::sle, d, k);
    return arith::SelectOp::create(nb, nl, keep, v[0], cst(nb, nl, et, 0)).getResult();
  });
}

FailureOr<Value> lowerCumSum(OpBuilder &b, Location l, ox::CumSumOp op) {
  Value x = op.getX();
  auto xt = ranked(x), rt = ranked(op.getY());
  auto axes = constInts(op.getAxis());
  if (!xt || !rt || !axes || axes->size() != 1 || xt.getRank() == 0)
    return failure();
  Type et = xt.getElementType();
  if (signless(et) != et)
    return failure();
  int64_t r = xt.getRank(), ax = (*axes)[0];
  ax = ax < 0 ? ax + r : ax;
  bool excl = op.getExclusive(), rev = op.getReverse(), f = isFloat(et);
  MLIRContext *ctx = b.getContext();
  // loops (out dims..., t): y[..i..] += x[..t..] where t is in the window.
  SmallVector<AffineExpr> xe, oe;
  for (int64_t i = 0; i < r; ++i) {
    oe.push_back(getAffineDimExpr(i, ctx));
    xe.push_back(i == ax ? getAffineDimExpr(r, ctx) : getAffineDimExpr(i, ctx));
  }
  SmallVector<Value> dims = dimsOf(b, l, x);
  Value acc = fillT(b, l, rt, dims, cst(b, l, et, 0));
  SmallVector<IteratorType> it = parallel(r);
  it.push_back(IteratorType::reduction);
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ValueRange{x}, ValueRange{acc},
             {AffineMap::get(r + 1, 0, xe, ctx), AffineMap::get(r + 1, 0, oe, ctx)}, it,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value i = linalg::IndexOp::create(nb, nl, ax), t = linalg::IndexOp::create(nb, nl, r);
               arith::CmpIPredicate p = rev ? (excl ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::uge)
                                            : (excl ? arith::CmpIPredicate::ult : arith::CmpIPredicate::ule);
               Value in = arith::CmpIOp::create(nb, nl, p, t, i);
               Value v = arith::SelectOp::create(nb, nl, in, a[0], cst(nb, nl, et, 0));
               Value s = f ? arith::AddFOp::create(nb, nl, a[1], v).getResult()
                           : arith::AddIOp::create(nb, nl, a[1], v).getResult();
               linalg::YieldOp::create(nb, nl, s);
             })
      .getResult(0);
}

FailureOr<Value> lowerConstantOfShape(OpBuilder &b, Location l, ox::ConstantOfShapeOp op) {
  auto rt = ranked(op.getOutput()), st = ranked(op.getInput());
  if (!rt || !st || st.getRank() != 1 || st.getDimSize(0) != rt.getRank())
    return failure();
  Type et = rt.getElementType();
  double v = 0;
  if (auto a = op.getValueAttr()) {
    auto d = dyn_cast<DenseElementsAttr>(a);
    if (!d || d.getNumElements() != 1 || d.getElementType() != et)
      return failure();
    if (isFloat(et))
      v = (*d.getValues<APFloat>().begin()).convertToDouble();
    else if (isUnsigned(et))
      v = (double)(*d.getValues<APInt>().begin()).getZExtValue();
    else
      v = (double)(*d.getValues<APInt>().begin()).getSExtValue();
  }
  if (!supportedElt(et))
    return failure();
  SmallVector<Value> dims;
  for (int64_t i = 0; i < rt.getRank(); ++i)
    dims.push_back(elemIdx(b, l, op.getInput(), i));
  return generate(b, l, rt, dims, [&](OpBuilder &nb, Location nl, ArrayRef<Value>) {
    return cst(nb, nl, et, v);
  });
}

FailureOr<Value> lowerShapeOp(OpBuilder &b, Location l, ox::ShapeOp op) {
  auto in = ranked(op.getData()), rt = ranked(op->getResult(0));
  if (!in || !rt)
    return failure();
  int64_t r = in.getRank();
  auto norm = [&](int64_t x) { return std::clamp<int64_t>(x < 0 ? x + r : x, 0, r); };
  int64_t s = norm(op.getStart() ? *op.getStart() : 0), e = norm(op.getEnd() ? *op.getEnd() : r);
  SmallVector<Value> elts;
  for (int64_t i = s; i < e; ++i)
    elts.push_back(arith::IndexCastOp::create(b, l, b.getI64Type(), dimOf(b, l, op.getData(), i)));
  auto t = RankedTensorType::get({(int64_t)elts.size()}, b.getI64Type());
  return castTo(b, l, tensor::FromElementsOp::create(b, l, t, elts), rt);
}

FailureOr<Value> lowerSize(OpBuilder &b, Location l, ox::SizeOp op) {
  auto in = ranked(op.getData()), rt = ranked(op.getSize());
  if (!in || !rt || rt.getRank() != 0)
    return failure();
  Value n = cIdx(b, l, 1);
  for (int64_t i = 0; i < in.getRank(); ++i)
    n = arith::MulIOp::create(b, l, n, dimOf(b, l, op.getData(), i));
  Value e = arith::IndexCastOp::create(b, l, b.getI64Type(), n);
  return tensor::FromElementsOp::create(b, l, rt, ValueRange{e}).getResult();
}

FailureOr<Value> lowerRange(OpBuilder &b, Location l, ox::RangeOp op) {
  auto rt = ranked(op.getOutput());
  if (!rt || rt.getRank() != 1)
    return failure();
  for (Value v : {op.getStart(), op.getLimit(), op.getDelta()})
    if (!ranked(v) || ranked(v).getRank() != 0)
      return failure();
  Type et = rt.getElementType();
  if (signless(et) != et || !supportedElt(et))
    return failure();
  Value st = tensor::ExtractOp::create(b, l, op.getStart(), ValueRange{});
  Value li = tensor::ExtractOp::create(b, l, op.getLimit(), ValueRange{});
  Value de = tensor::ExtractOp::create(b, l, op.getDelta(), ValueRange{});
  Value cnt;
  if (isFloat(et)) {
    Value q = arith::DivFOp::create(b, l, arith::SubFOp::create(b, l, li, st), de);
    q = math::CeilOp::create(b, l, q);
    q = arith::MaximumFOp::create(b, l, q, cst(b, l, et, 0));
    cnt = arith::FPToSIOp::create(b, l, b.getI64Type(), q);
    cnt = arith::IndexCastOp::create(b, l, b.getIndexType(), cnt);
  } else {
    Value d = arith::CeilDivSIOp::create(b, l, arith::SubIOp::create(b, l, li, st), de);
    d = arith::MaxSIOp::create(b, l, d, cst(b, l, et, 0));
    cnt = arith::IndexCastOp::create(b, l, b.getIndexType(), d);
  }
  return generate(b, l, rt, {cnt}, [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    Value i = convert(nb, nl, iv[0], nb.getIndexType(), et);
    return isFloat(et) ? arith::AddFOp::create(nb, nl, st, arith::MulFOp::create(nb, nl, i, de)).getResult()
                       : arith::AddIOp::create(nb, nl, st, arith::MulIOp::create(nb, nl, i, de)).getResult();
  });
}

FailureOr<Value> lowerWhere(OpBuilder &b, Location l, ox::WhereOp op) {
  return elementwise(b, l, op, {op.getCondition(), op.getX(), op.getY()},
                     [](OpBuilder &nb, Location nl, Scalars s) {
                       return arith::SelectOp::create(nb, nl, s[0], s[1], s[2]).getResult();
                     });
}

FailureOr<Value> lowerDequantizeLinear(OpBuilder &b, Location l, ox::DequantizeLinearOp op) {
  Value x = op.getX(), s = op.getXScale(), z = op.getXZeroPoint();
  auto xt = ranked(x), st = ranked(s), rt = ranked(op.getY());
  if (!xt || !st || !rt || !isInt(xt.getElementType()) || !isFloat(st.getElementType()) ||
      (z && !ranked(z)) || rt.getElementType() != st.getElementType())
    return failure();
  int64_t r = xt.getRank(), ax = op.getAxis(), bs = op.getBlockSize();
  ax = ax < 0 ? ax + r : ax;
  bool perTensor = st.getRank() == 0 || (st.getRank() == 1 && st.getDimSize(0) == 1);
  if (!perTensor && st.getRank() != 1 && bs == 0)
    return failure();
  Type xe = xt.getElementType(), se = st.getElementType(), ze = z ? eltOf(z) : Type();
  SmallVector<Value> dims = dimsOf(b, l, x);
  return mapInto(b, l, rt, dims, {x}, [&](OpBuilder &nb, Location nl, Scalars v) {
    SmallVector<Value> si;
    if (!perTensor) {
      Value i = linalg::IndexOp::create(nb, nl, ax);
      if (bs > 0) {
        // blocked: scale has x's shape with axis divided by block size.
        SmallVector<Value> idx;
        for (int64_t k = 0; k < r; ++k)
          idx.push_back(k == ax ? arith::DivUIOp::create(nb, nl, i, cIdx(nb, nl, bs)).getResult()
                                : linalg::IndexOp::create(nb, nl, k).getResult());
        si = idx;
      } else {
        si.push_back(i);
      }
    } else if (st.getRank() == 1) {
      si.push_back(cIdx(nb, nl, 0));
    }
    Value sc = tensor::ExtractOp::create(nb, nl, s, si);
    Value q = convert(nb, nl, v[0], xe, se);
    if (z) {
      SmallVector<Value> zi(si);
      if (ranked(z).getRank() == 0)
        zi.clear();
      Value zp = convert(nb, nl, toSL(nb, nl, tensor::ExtractOp::create(nb, nl, z, zi)), ze, se);
      q = arith::SubFOp::create(nb, nl, q, zp);
    }
    return arith::MulFOp::create(nb, nl, q, sc).getResult();
  });
}

//===----------------------------------------------------------------------===//
// Weight dequantization (qquant, MatMulNBits, GatherBlockQuantized)
//===----------------------------------------------------------------------===//

struct QuantDesc {
  Value codes;            // [rows, rowBytes] (u)i8, codes packed LSB first
  Value scales;           // [1] (tensor) or [rows, perRow]
  Value zeros;            // same shape as scales, or packed [rows, bytes]
  int64_t bits = 4;
  bool isSigned = false;
  bool symmetric = true;
  int gran = 2;           // 0 tensor, 1 channel, 2 group
  int64_t group = 0;
  int64_t rowBytes = 0;
  int64_t zeroBits = 0;   // 0: one zero point per element; else packed
  bool log2 = false;      // log2 grid (see log2Level)
  bool codebook = false;  // codebook grid: `scales` is [books, 2^bits]
  int64_t perRow = 1;     // codebooks per row (group granularity)
  Value mask;             // 2:4 sparse: [rows, maskBytes] 2-bit positions of
                          // the kept codes (`codes` holds cols / 2 per row)
  int64_t maskBytes = 0;
};

/// Extracts the `bits`-bit field `j` of row `r` of the packed byte tensor.
Value unpackField(OpBuilder &b, Location l, Value packed, int64_t rowBytes, Value r,
                  Value j, int64_t bits) {
  Type i32 = b.getI32Type();
  Value bit = arith::MulIOp::create(b, l, j, cIdx(b, l, bits));
  Value byte = arith::DivUIOp::create(b, l, bit, cIdx(b, l, 8));
  Value sh = arith::RemUIOp::create(b, l, bit, cIdx(b, l, 8));
  Value next = arith::MinUIOp::create(b, l, arith::AddIOp::create(b, l, byte, cIdx(b, l, 1)),
                                      cIdx(b, l, rowBytes - 1));
  auto rd = [&](Value c) {
    Value v = toSL(b, l, tensor::ExtractOp::create(b, l, packed, ValueRange{r, c}));
    return arith::ExtUIOp::create(b, l, i32, v).getResult();
  };
  Value lo = rd(byte), hi = rd(next);
  Value w = arith::OrIOp::create(b, l, lo, arith::ShLIOp::create(b, l, hi, cst(b, l, i32, 8)));
  w = arith::ShRUIOp::create(b, l, w, arith::IndexCastOp::create(b, l, i32, sh));
  return arith::AndIOp::create(b, l, w, cst(b, l, i32, (double)((1 << bits) - 1)));
}

/// The code of element (r, c) as i32 (sign-extended for signed codes).
Value codeAt(OpBuilder &b, Location l, const QuantDesc &q, Value r, Value c) {
  Type i32 = b.getI32Type();
  Value v = unpackField(b, l, q.codes, q.rowBytes, r, c, q.bits);
  if (q.isSigned) {
    Value half = cst(b, l, i32, (double)(1 << (q.bits - 1)));
    Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::uge, v, half);
    v = arith::SelectOp::create(b, l, neg, arith::SubIOp::create(b, l, v, cst(b, l, i32, (double)(1 << q.bits))), v);
  }
  return v;
}

/// The unscaled level of a log2-grid code (#qquant.scheme<log2 iB, ...>):
/// the B-bit field c (unsigned), sign = bit B-1 (1 = negative),
/// m = c & (2^(B-1) - 1); level = 0 if m == 0 else (sign ? -1 : 1) * 2^-(m-1).
/// 2^-(m-1) is built exactly from its IEEE bits ((128 - m) << 23; m <= 127
/// keeps it normal).
Value log2Level(OpBuilder &b, Location l, Value c, int64_t bits) {
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  Value m = arith::AndIOp::create(b, l, c, cst(b, l, i32, (double)((1 << (bits - 1)) - 1)));
  Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne,
                                    arith::AndIOp::create(b, l, c, cst(b, l, i32, (double)(1 << (bits - 1)))),
                                    cst(b, l, i32, 0));
  Value isZero = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, m, cst(b, l, i32, 0));
  Value expBits = arith::ShLIOp::create(b, l, arith::SubIOp::create(b, l, cst(b, l, i32, 128), m),
                                        cst(b, l, i32, 23));
  Value signBit = arith::SelectOp::create(b, l, neg, cst(b, l, i32, (double)INT32_MIN), cst(b, l, i32, 0));
  Value fbits = arith::OrIOp::create(b, l, expBits, signBit);
  Value v = arith::BitcastOp::create(b, l, f32, fbits);
  return arith::SelectOp::create(b, l, isZero, cst(b, l, f32, 0.0), v);
}

/// The f32 value of code `ci` of row `r` whose logical input is `c` (its
/// scale block); ci == c except for 2:4 sparse weights (ci is the kept slot).
Value dequantSlot(OpBuilder &b, Location l, const QuantDesc &q, Value r, Value c, Value ci) {
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  if (q.codebook) {
    // Table lookup: the unsigned index selects a centroid of the row's (or
    // group's, or the tensor's) codebook.
    Value code = unpackField(b, l, q.codes, q.rowBytes, r, ci, q.bits);
    Value book = q.gran == 0   ? cIdx(b, l, 0)
                 : q.gran == 1 ? r
                               : arith::AddIOp::create(
                                     b, l, arith::MulIOp::create(b, l, r, cIdx(b, l, q.perRow)),
                                     arith::DivUIOp::create(b, l, c, cIdx(b, l, q.group)))
                                     .getResult();
    Value ci = arith::IndexCastOp::create(b, l, b.getIndexType(), code);
    Value v = tensor::ExtractOp::create(b, l, q.scales, ValueRange{book, ci});
    if (!v.getType().isF32())
      v = arith::ExtFOp::create(b, l, f32, v);
    return v;
  }
  if (q.log2) {
    Value code = unpackField(b, l, q.codes, q.rowBytes, r, ci, q.bits);
    Value lv = log2Level(b, l, code, q.bits);
    SmallVector<Value> si;
    if (q.gran == 0)
      si.push_back(cIdx(b, l, 0));
    else
      si = {r, q.gran == 1 ? cIdx(b, l, 0)
                           : arith::DivUIOp::create(b, l, c, cIdx(b, l, q.group)).getResult()};
    Value s = tensor::ExtractOp::create(b, l, q.scales, si);
    if (!s.getType().isF32())
      s = arith::ExtFOp::create(b, l, f32, s);
    return arith::MulFOp::create(b, l, lv, s);
  }
  Value v = codeAt(b, l, q, r, ci);
  SmallVector<Value> si;
  Value g;
  if (q.gran == 0) {
    si.push_back(cIdx(b, l, 0));
  } else {
    g = q.gran == 1 ? cIdx(b, l, 0) : arith::DivUIOp::create(b, l, c, cIdx(b, l, q.group)).getResult();
    si = {r, g};
  }
  Value zp;
  if (!q.symmetric) {
    if (q.zeroBits) {
      zp = unpackField(b, l, q.zeros, ranked(q.zeros).getDimSize(1), r, g, q.zeroBits);
    } else {
      Value z = toSL(b, l, tensor::ExtractOp::create(b, l, q.zeros, si));
      Type zt = eltOf(q.zeros);
      zp = isUnsigned(zt) ? arith::ExtUIOp::create(b, l, i32, z).getResult()
                          : arith::ExtSIOp::create(b, l, i32, z).getResult();
    }
  } else {
    zp = cst(b, l, i32, q.isSigned ? 0.0 : (double)(1 << (q.bits - 1)));
  }
  Value d = arith::SIToFPOp::create(b, l, f32, arith::SubIOp::create(b, l, v, zp));
  Value s = tensor::ExtractOp::create(b, l, q.scales, si);
  if (!s.getType().isF32())
    s = arith::ExtFOp::create(b, l, f32, s);
  return arith::MulFOp::create(b, l, d, s);
}

/// The input (column) of the kept slot `j` of row `r` of a 2:4 weight:
/// 4 * (j / 2) + its 2-bit position.
Value sparseCol(OpBuilder &b, Location l, const QuantDesc &q, Value r, Value j) {
  Value pos = unpackField(b, l, q.mask, q.maskBytes, r, j, 2);
  Value base = arith::MulIOp::create(b, l, arith::DivUIOp::create(b, l, j, cIdx(b, l, 2)), cIdx(b, l, 4));
  return arith::AddIOp::create(b, l, base, arith::IndexCastOp::create(b, l, b.getIndexType(), pos));
}

/// The f32 value of element (r, c) of a quantized weight (0 where a 2:4
/// weight was pruned).
Value dequantAt(OpBuilder &b, Location l, const QuantDesc &q, Value r, Value c) {
  if (!q.mask)
    return dequantSlot(b, l, q, r, c, c);
  // Group c / 4 keeps slots 2g and 2g + 1; c is kept if one of them points
  // at it.
  Value s0 = arith::MulIOp::create(b, l, arith::DivUIOp::create(b, l, c, cIdx(b, l, 4)), cIdx(b, l, 2));
  Value s1 = arith::AddIOp::create(b, l, s0, cIdx(b, l, 1));
  Value at0 = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, sparseCol(b, l, q, r, s0), c);
  Value at1 = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, sparseCol(b, l, q, r, s1), c);
  Value slot = arith::SelectOp::create(b, l, at0, s0, s1);
  Value v = dequantSlot(b, l, q, r, c, slot);
  Value kept = arith::OrIOp::create(b, l, at0, at1);
  return arith::SelectOp::create(b, l, kept, v, cst(b, l, b.getF32Type(), 0.0));
}

/// The whole weight [rows, cols] as f32.
Value dequantAll(OpBuilder &b, Location l, const QuantDesc &q, int64_t rows, int64_t cols) {
  auto t = RankedTensorType::get({rows, cols}, b.getF32Type());
  return generate(b, l, t, {cIdx(b, l, rows), cIdx(b, l, cols)},
                  [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
                    return dequantAt(nb, nl, q, iv[0], iv[1]);
                  });
}

/// The accumulator of a linear op: bias[n] broadcast, or zeros, shaped like
/// x's leading dims and `n` outputs.
Value linearInit(OpBuilder &b, Location l, Value x, Value n, Value bias, RankedTensorType rt) {
  int64_t r = rt.getRank();
  SmallVector<Value> dims;
  for (int64_t i = 0; i < r - 1; ++i)
    dims.push_back(dimOf(b, l, x, i));
  dims.push_back(n);
  if (bias)
    return mapInto(b, l, rt, dims, {bias}, [&](OpBuilder &nb, Location nl, Scalars s) {
      return s[0].getType() == nb.getF32Type() ? s[0] : arith::ExtFOp::create(nb, nl, nb.getF32Type(), s[0]).getResult();
    });
  return fillT(b, l, rt, dims, cst(b, l, b.getF32Type(), 0));
}

/// y[..., n] = sum_j x[..., col(n, j)] * value(n, j) (+ bias[n]) over the
/// cols / 2 kept slots j of a 2:4 sparse weight: half the multiply-adds of
/// the dense product, the pruned weights never read (the x elements are
/// gathered by the kept positions).
Value linearSparse24(OpBuilder &b, Location l, const QuantDesc &q, Value x, Value bias,
                     RankedTensorType rt, int64_t rows, int64_t cols) {
  MLIRContext *ctx = b.getContext();
  int64_t r = rt.getRank();
  Value init = linearInit(b, l, x, cIdx(b, l, rows), bias, rt);
  SmallVector<AffineExpr> oe;
  for (int64_t i = 0; i < r; ++i)
    oe.push_back(getAffineDimExpr(i, ctx));
  SmallVector<IteratorType> it = parallel(r);
  it.push_back(IteratorType::reduction);
  // The reduction dim's extent comes from an input indexed by it: the kept
  // slots of row 0 of the codes would do, but a constant-shaped dummy is
  // simpler: an empty tensor [cols / 2] read by (j).
  Value slots = tensor::EmptyOp::create(b, l, ArrayRef<int64_t>{cols / 2}, b.getI8Type());
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ValueRange{slots}, ValueRange{init},
             {AffineMap::get(r + 1, 0, {getAffineDimExpr(r, ctx)}, ctx),
              AffineMap::get(r + 1, 0, oe, ctx)},
             it,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               SmallVector<Value> iv;
               for (int64_t i = 0; i <= r; ++i)
                 iv.push_back(linalg::IndexOp::create(nb, nl, i));
               Value n = iv[r - 1], j = iv[r];
               Value col = sparseCol(nb, nl, q, n, j);
               SmallVector<Value> xi(iv.begin(), iv.begin() + (r - 1));
               xi.push_back(col);
               Value xv = tensor::ExtractOp::create(nb, nl, x, xi);
               Value wv = dequantSlot(nb, nl, q, n, col, j);
               Value m = arith::MulFOp::create(nb, nl, xv, wv);
               linalg::YieldOp::create(nb, nl, arith::AddFOp::create(nb, nl, a[1], m).getResult());
             })
      .getResult(0);
}

/// y[..., n] = sum_k x[..., k] * W[n, k] (+ bias[n]); x f32, W f32.
Value linearNT(OpBuilder &b, Location l, Value x, Value w, Value bias, RankedTensorType rt) {
  MLIRContext *ctx = b.getContext();
  int64_t r = rt.getRank();
  Value init = linearInit(b, l, x, dimOf(b, l, w, 0), bias, rt);
  SmallVector<AffineExpr> xe, oe;
  for (int64_t i = 0; i < r - 1; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  AffineExpr n = getAffineDimExpr(r - 1, ctx), k = getAffineDimExpr(r, ctx);
  xe.push_back(k);
  oe.push_back(n);
  SmallVector<IteratorType> it = parallel(r);
  it.push_back(IteratorType::reduction);
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ValueRange{x, w}, ValueRange{init},
             {AffineMap::get(r + 1, 0, xe, ctx), AffineMap::get(r + 1, 0, {n, k}, ctx),
              AffineMap::get(r + 1, 0, oe, ctx)},
             it,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value m = arith::MulFOp::create(nb, nl, a[0], a[1]);
               linalg::YieldOp::create(nb, nl, arith::AddFOp::create(nb, nl, a[2], m).getResult());
             })
      .getResult(0);
}

/// qquant.dynamic_quantize: per token (last dim) or per tensor,
///   amax = max(0, max |x|), s = amax / qmax (f32), qmax = 2^(bits-1) - 1
///   q = clamp(roundeven(x / s), -qmax, qmax) (0 where s == 0)
/// also the activation quantization of linearDynI8 (dynamic). Returns (q, s),
/// s with x's shape and the reduced dims 1.
std::pair<Value, Value> dynamicQuantizeRef(OpBuilder &b, Location l, Value x, int64_t bits, bool perToken) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type(), i8 = b.getI8Type();
  auto xt = ranked(x);
  int64_t r = xt.getRank();
  SmallVector<bool> red(r, !perToken);
  red[r - 1] = true;
  Value amax = reduce(b, l, x, red, cst(b, l, f32, 0.0), [](OpBuilder &nb, Location nl, Value acc, Value v) {
    return arith::MaximumFOp::create(nb, nl, acc, math::AbsFOp::create(nb, nl, v)).getResult();
  });
  const double qmax = double((1 << (bits - 1)) - 1);
  // The kept dims of x (reduce's result) and the scale's [..., 1] shape.
  SmallVector<AffineExpr> kept, sE;
  SmallVector<int64_t> sShape;
  SmallVector<Value> xdims = dimsOf(b, l, x), sDims;
  for (int64_t i = 0; i < r; ++i) {
    sShape.push_back(red[i] ? 1 : xt.getDimSize(i));
    if (!red[i]) {
      kept.push_back(getAffineDimExpr(i, ctx));
      if (xt.isDynamicDim(i))
        sDims.push_back(xdims[i]);
    }
    sE.push_back(red[i] ? getAffineConstantExpr(0, ctx) : getAffineDimExpr(i, ctx));
  }
  AffineMap idR = AffineMap::getMultiDimIdentityMap(r, ctx), keptR = AffineMap::get(r, 0, kept, ctx);
  auto sT = RankedTensorType::get(sShape, f32);
  Value scale = linalg::GenericOp::create(
                    b, l, TypeRange{sT}, ValueRange{amax},
                    ValueRange{tensor::EmptyOp::create(b, l, sT, sDims).getResult()}, {keptR, idR}, parallel(r),
                    [&](OpBuilder &nb, Location nl, ValueRange a) {
                      linalg::YieldOp::create(nb, nl, arith::DivFOp::create(nb, nl, a[0], cst(nb, nl, f32, qmax))
                                                          .getResult());
                    })
                    .getResult(0);
  auto qT = RankedTensorType::get(xt.getShape(), i8);
  Value q = linalg::GenericOp::create(
                b, l, TypeRange{qT}, ValueRange{x, scale}, ValueRange{emptyWith(b, l, qT, xdims)},
                {idR, AffineMap::get(r, 0, sE, ctx), idR}, parallel(r),
                [&](OpBuilder &nb, Location nl, ValueRange a) {
                  linalg::YieldOp::create(nb, nl, qwen::quantizeToCode(nb, nl, a[0], a[1], qmax, i8));
                })
                .getResult(0);
  return {q, scale};
}

/// y[..., n] = x[..., :] * W[n, :] with dynamic per-token int8 activations
/// (#qquant.act<dynamic, i8, per_token>) on signed symmetric 8-bit weights
/// (per tensor or per channel):
///   s_x = max_k |x[..., k]| / 127            (f32, one per token)
///   q_x = clamp(roundeven(x / s_x), -127, 127) as i8 (0 where s_x == 0)
///   acc = sum_k q_x[..., k] * code(W[n, k])  (i32)
///   y   = f32(acc) * s_x * s_w[n] (+ bias[n])
///
/// With `staticScale` (#qquant.act<static : !quant.uniform<i8:f32, s>>, from
/// calibration) s_x = s for every token, no reduction:
///   q_x = clamp(roundeven(x / s), -127, 127), y = f32(acc) * s * s_w[n] (+ bias)
///
/// W4A8: signed symmetric 4-bit codes (sign-extended to i8) per tensor or
/// channel take the path above; per group of G inputs the products
/// accumulate exactly in i32 per group and the groups are scaled in f32:
///   acc[..., n, g] = sum_{j<G} q_x[..., gG+j] * code(W[n, gG+j])   (i32)
///   y = (sum_g f32(acc[..., n, g]) * s_w[n, g]) * s_x (+ bias[n])  (g ascending)
///
/// With `preScale` (qquant.qlinear) `x` is q_x itself (i8) and `preScale`
/// ([..., 1] f32) holds s_x per token: the same arithmetic from q_x on.
Value linearDynI8(OpBuilder &b, Location l, const QuantDesc &q, Value x,
                  Value bias, RankedTensorType rt, int64_t rows, int64_t cols,
                  std::optional<float> staticScale = std::nullopt, Value preScale = {}) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), i8 = b.getI8Type();
  auto xt = ranked(x);
  int64_t r = xt.getRank();
  SmallVector<AffineExpr> tok, xk, wk, on, ion;
  for (int64_t i = 0; i < r - 1; ++i)
    tok.push_back(getAffineDimExpr(i, ctx));
  SmallVector<Value> xdims = dimsOf(b, l, x);
  AffineMap idR = AffineMap::getMultiDimIdentityMap(r, ctx);
  // q_x: [..., K] i8, and s_x per token ([..., 1]; none when static: the
  // constant s). Dynamic: qquant.dynamic_quantize's reference, the same f32
  // operations (s_x = amax / 127).
  Value qx = x;
  if (!preScale && !staticScale) {
    std::tie(qx, preScale) = dynamicQuantizeRef(b, l, x, 8, /*perToken=*/true);
  } else if (staticScale) {
    auto qxT = RankedTensorType::get(xt.getShape(), i8);
    qx = linalg::GenericOp::create(
             b, l, TypeRange{qxT}, ValueRange{x}, ValueRange{emptyWith(b, l, qxT, xdims)},
             ArrayRef<AffineMap>{idR, idR}, parallel(r),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               linalg::YieldOp::create(
                   nb, nl, qwen::quantizeToCode(nb, nl, a[0], cst(nb, nl, f32, *staticScale), 127.0, i8));
             })
             .getResult(0);
  }
  // Weight codes: [N, K] i8.
  auto qwT = RankedTensorType::get({rows, cols}, i8);
  Value qw = generate(b, l, qwT, {cIdx(b, l, rows), cIdx(b, l, cols)},
                      [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
                        Value c = codeAt(nb, nl, q, iv[0], iv[1]);
                        return arith::TruncIOp::create(nb, nl, nb.getI8Type(), c).getResult();
                      });
  SmallVector<Value> odims(xdims.begin(), xdims.end() - 1);
  odims.push_back(cIdx(b, l, rows));
  AffineExpr n = getAffineDimExpr(r - 1, ctx), k = getAffineDimExpr(r, ctx);
  auto toF32 = [&](OpBuilder &nb, Location nl, Value v) {
    return v.getType().isF32() ? v : arith::ExtFOp::create(nb, nl, f32, v).getResult();
  };
  // s_x: the constant, or the epilogue's per-token operand [..., 1].
  auto sxOf = [&](OpBuilder &nb, Location nl, ValueRange a, unsigned sxIdx) {
    return staticScale ? cst(nb, nl, f32, *staticScale) : a[sxIdx];
  };
  Value sxT = preScale;
  SmallVector<AffineExpr> tok1(tok);
  tok1.push_back(getAffineConstantExpr(0, ctx));
  AffineMap sxMap = AffineMap::get(r, 0, tok1, ctx);
  auto macI32 = [&](OpBuilder &nb, Location nl, ValueRange a) {
    Value u = arith::ExtSIOp::create(nb, nl, i32, a[0]);
    Value v = arith::ExtSIOp::create(nb, nl, i32, a[1]);
    Value m = arith::MulIOp::create(nb, nl, u, v);
    linalg::YieldOp::create(nb, nl, arith::AddIOp::create(nb, nl, a[2], m).getResult());
  };
  if (q.gran == 2) {
    // Groups (W4A8-g): acc[..., n, g] = sum_{j<G} qx[..., g*G+j] * qw[n, g*G+j]
    // exactly in i32, then y = sum_g f32(acc[..., n, g]) * s_w[n, g] in f32
    // (g ascending), y = y * s_x (+ bias).
    int64_t G = q.group, ng = cols / G;
    SmallVector<int64_t> accShape(rt.getShape().begin(), rt.getShape().end());
    accShape.push_back(ng);
    auto accT = RankedTensorType::get(accShape, i32);
    SmallVector<Value> adims(odims);
    adims.push_back(cIdx(b, l, ng));
    Value acc0 = fillT(b, l, accT, adims, cst(b, l, i32, 0));
    // [..., K] -> [..., ng, G] and [N, K] -> [N, ng, G] (tensor.expand_shape).
    SmallVector<ReassociationIndices> xre;
    SmallVector<OpFoldResult> xshape;
    SmallVector<int64_t> xgShape(xt.getShape().begin(), xt.getShape().end() - 1);
    for (int64_t i = 0; i < r - 1; ++i) {
      xre.push_back({i});
      xshape.push_back(xt.isDynamicDim(i) ? OpFoldResult(xdims[i]) : OpFoldResult(b.getIndexAttr(xt.getDimSize(i))));
    }
    xre.push_back({r - 1, r});
    xshape.push_back(b.getIndexAttr(ng));
    xshape.push_back(b.getIndexAttr(G));
    xgShape.push_back(ng);
    xgShape.push_back(G);
    Value qxg = tensor::ExpandShapeOp::create(b, l, RankedTensorType::get(xgShape, i8), qx, xre, xshape);
    Value qwg = tensor::ExpandShapeOp::create(
        b, l, RankedTensorType::get({rows, ng, G}, i8), qw,
        SmallVector<ReassociationIndices>{{0}, {1, 2}},
        SmallVector<OpFoldResult>{b.getIndexAttr(rows), b.getIndexAttr(ng), b.getIndexAttr(G)});
    // dims: tok (r-1), n, g, j
    AffineExpr gE = getAffineDimExpr(r, ctx), jE = getAffineDimExpr(r + 1, ctx);
    SmallVector<AffineExpr> xm(tok), om(tok);
    xm.push_back(gE);
    xm.push_back(jE);
    om.push_back(n);
    om.push_back(gE);
    SmallVector<IteratorType> it = parallel(r + 1);
    it.push_back(IteratorType::reduction);
    Value acc = linalg::GenericOp::create(
                    b, l, TypeRange{accT}, ValueRange{qxg, qwg}, ValueRange{acc0},
                    {AffineMap::get(r + 2, 0, xm, ctx), AffineMap::get(r + 2, 0, {n, gE, jE}, ctx),
                     AffineMap::get(r + 2, 0, om, ctx)},
                    it, macI32)
                    .getResult(0);
    // ys[..., n] = sum_g f32(acc[..., n, g]) * s_w[n, g]
    auto ysT = RankedTensorType::get(rt.getShape(), f32);
    Value ys0 = fillT(b, l, ysT, odims, cst(b, l, f32, 0.0));
    SmallVector<AffineExpr> am(tok), ym(tok);
    am.push_back(n);
    am.push_back(k);
    ym.push_back(n);
    SmallVector<IteratorType> it2 = parallel(r);
    it2.push_back(IteratorType::reduction);
    Value ys = linalg::GenericOp::create(
                   b, l, TypeRange{ysT}, ValueRange{acc, q.scales}, ValueRange{ys0},
                   {AffineMap::get(r + 1, 0, am, ctx), AffineMap::get(r + 1, 0, {n, k}, ctx),
                    AffineMap::get(r + 1, 0, ym, ctx)},
                   it2,
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     Value v = arith::SIToFPOp::create(nb, nl, f32, a[0]);
                     v = arith::MulFOp::create(nb, nl, v, toF32(nb, nl, a[1]));
                     linalg::YieldOp::create(nb, nl, arith::AddFOp::create(nb, nl, a[2], v).getResult());
                   })
                   .getResult(0);
    SmallVector<Value> ins{ys};
    SmallVector<AffineMap> maps{idR};
    if (!staticScale) {
      ins.push_back(sxT);
      maps.push_back(sxMap);
    }
    if (bias) {
      ins.push_back(bias);
      maps.push_back(AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx));
    }
    maps.push_back(idR);
    unsigned biasIdx = staticScale ? 1 : 2;
    Value yInit = emptyWith(b, l, rt, odims);
    return linalg::GenericOp::create(
               b, l, TypeRange{rt}, ins, ValueRange{yInit}, maps, parallel(r),
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value y = arith::MulFOp::create(nb, nl, a[0], sxOf(nb, nl, a, 1));
                 if (bias)
                   y = arith::AddFOp::create(nb, nl, y, toF32(nb, nl, a[biasIdx]));
                 linalg::YieldOp::create(nb, nl, y);
               })
        .getResult(0);
  }
  // acc[..., n] = sum_k qx[..., k] * qw[n, k] in i32.
  auto accT = RankedTensorType::get(rt.getShape(), i32);
  Value acc0 = fillT(b, l, accT, odims, cst(b, l, i32, 0));
  xk = tok;
  on = tok;
  xk.push_back(k);
  on.push_back(n);
  SmallVector<IteratorType> it = parallel(r);
  it.push_back(IteratorType::reduction);
  Value acc = linalg::GenericOp::create(
                  b, l, TypeRange{accT}, ValueRange{qx, qw}, ValueRange{acc0},
                  {AffineMap::get(r + 1, 0, xk, ctx), AffineMap::get(r + 1, 0, {n, k}, ctx),
                   AffineMap::get(r + 1, 0, on, ctx)},
                  it, macI32)
                  .getResult(0);
  // y = f32(acc) * s_x * s_w (+ bias).
  AffineMap wsMap = q.gran == 0 ? AffineMap::get(r, 0, {getAffineConstantExpr(0, ctx)}, ctx)
                                : AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx),
                                                        getAffineConstantExpr(0, ctx)}, ctx);
  SmallVector<Value> ins{acc};
  SmallVector<AffineMap> maps{idR};
  if (!staticScale) {
    ins.push_back(sxT);
    maps.push_back(sxMap);
  }
  ins.push_back(q.scales);
  maps.push_back(wsMap);
  unsigned wsIdx = staticScale ? 1 : 2;
  if (bias) {
    ins.push_back(bias);
    maps.push_back(AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx));
  }
  maps.push_back(idR);
  Value yInit = emptyWith(b, l, rt, odims);
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ins, ValueRange{yInit}, maps, parallel(r),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value y = arith::SIToFPOp::create(nb, nl, f32, a[0]);
               y = arith::MulFOp::create(nb, nl, y, sxOf(nb, nl, a, 1));
               y = arith::MulFOp::create(nb, nl, y, toF32(nb, nl, a[wsIdx]));
               if (bias)
                 y = arith::AddFOp::create(nb, nl, y, toF32(nb, nl, a[wsIdx + 1]));
               linalg::YieldOp::create(nb, nl, y);
             })
      .getResult(0);
}

/// out[ids..., c] = dequant(ids, c).
Value embedQ(OpBuilder &b, Location l, const QuantDesc &q, Value ids, int64_t cols,
             RankedTensorType rt) {
  SmallVector<Value> dims = dimsOf(b, l, ids);
  dims.push_back(cIdx(b, l, cols));
  int64_t r = rt.getRank();
  return generate(b, l, rt, dims, [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
    SmallVector<Value> ii(iv.begin(), iv.begin() + r - 1);
    Value id = toSL(nb, nl, tensor::ExtractOp::create(nb, nl, ids, ii));
    Value row = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), id);
    return dequantAt(nb, nl, q, row, iv[r - 1]);
  });
}

Value reshapeStatic(OpBuilder &b, Location l, Value v, ArrayRef<int64_t> shape) {
  auto t = RankedTensorType::get(shape, eltOf(v));
  SmallVector<Value> dims;
  for (int64_t s : shape)
    dims.push_back(cIdx(b, l, s));
  return reshapeTo(b, l, v, t, dims);
}

FailureOr<Value> lowerMatMulNBits(OpBuilder &b, Location l, ox::MSMatMulNBitsOp op) {
  int64_t bits = op.getBits(), bs = op.getBlockSize(), N = op.getN(), K = op.getK();
  auto at = ranked(op.getA()), rt = ranked(op.getY()), bt = ranked(op.getB());
  if (!at || !rt || !bt || !at.getElementType().isF32() || !rt.getElementType().isF32() ||
      bits < 2 || bits > 8 || bs <= 0 || op.getGIdx() || !bt.hasStaticShape() ||
      !bt.getElementType().isUnsignedInteger(8) || !ranked(op.getScales()) ||
      !ranked(op.getScales()).hasStaticShape())
    return failure();
  int64_t nb = (K + bs - 1) / bs, blob = bs * bits / 8;
  if (bt.getNumElements() != N * nb * blob || ranked(op.getScales()).getNumElements() != N * nb)
    return failure();
  QuantDesc q;
  q.bits = bits;
  q.isSigned = false;
  q.gran = 2;
  q.group = bs;
  q.rowBytes = nb * blob;
  q.codes = reshapeStatic(b, l, op.getB(), {N, q.rowBytes});
  q.scales = reshapeStatic(b, l, op.getScales(), {N, nb});
  if (Value z = op.getZeroPoints()) {
    auto zt = ranked(z);
    int64_t zb = (nb * bits + 7) / 8;
    if (!zt || !zt.hasStaticShape() || !zt.getElementType().isUnsignedInteger(8) ||
        zt.getNumElements() != N * zb)
      return failure(); // float zero points are not supported
    q.symmetric = false;
    q.zeroBits = bits;
    q.zeros = reshapeStatic(b, l, z, {N, zb});
  }
  Value w = dequantAll(b, l, q, N, K);
  return linearNT(b, l, op.getA(), w, op.getBias(), rt);
}

FailureOr<Value> lowerGatherBlockQuantized(OpBuilder &b, Location l, ox::MSGatherBlockQuantizedOp op) {
  auto dt = ranked(op.getData()), rt = ranked(op.getOutput());
  int64_t bits = op.getBits(), bs = op.getBlockSize();
  if (!dt || !rt || dt.getRank() != 2 || !dt.hasStaticShape() || op.getGatherAxis() != 0 ||
      op.getQuantizeAxis() != 1 || !dt.getElementType().isUnsignedInteger(8) ||
      !rt.getElementType().isF32() || (bits != 4 && bits != 8) || !ranked(op.getScales()) ||
      !ranked(op.getScales()).hasStaticShape() || !ranked(op.getIndices()))
    return failure();
  int64_t rows = dt.getDimSize(0), cols = dt.getDimSize(1) * 8 / bits;
  int64_t nb = (cols + bs - 1) / bs;
  if (ranked(op.getScales()).getNumElements() != rows * nb)
    return failure();
  QuantDesc q;
  q.bits = bits;
  q.gran = 2;
  q.group = bs;
  q.rowBytes = dt.getDimSize(1);
  q.codes = op.getData();
  q.scales = reshapeStatic(b, l, op.getScales(), {rows, nb});
  if (!eltOf(q.scales).isF32() && !eltOf(q.scales).isF16())
    return failure();
  if (Value z = op.getZeroPoints()) {
    auto zt = ranked(z);
    int64_t zb = (nb * bits + 7) / 8;
    if (!zt || !zt.hasStaticShape() || !zt.getElementType().isUnsignedInteger(8) ||
        zt.getNumElements() != rows * zb)
      return failure();
    q.symmetric = false;
    q.zeroBits = bits;
    q.zeros = reshapeStatic(b, l, z, {rows, zb});
  }
  return embedQ(b, l, q, op.getIndices(), cols, rt);
}

//===----------------------------------------------------------------------===//
// com.microsoft normalizations
//===----------------------------------------------------------------------===//

Result lowerSkipSimplifiedLN(OpBuilder &b, Location l, ox::MSSkipSimplifiedLayerNormalizationOp op) {
  auto rt = ranked(op.getOutput());
  auto it = ranked(op.getInput());
  if (!rt || !it || !isFloat(it.getElementType()) || it.getRank() == 0)
    return failure();
  auto opt = op.getOptionalOutputs();
  // mean (index 0) is not produced by the simplified form.
  if (!opt.empty() && !opt[0].use_empty())
    return failure();
  SmallVector<Value> ins{op.getInput(), op.getSkip()};
  if (op.getBias())
    ins.push_back(op.getBias());
  Value sum = mapInto(b, l, it, dimsOf(b, l, op.getInput()), ins, [&](OpBuilder &nb, Location nl, Scalars s) {
    Value v = arith::AddFOp::create(nb, nl, s[0], s[1]);
    return s.size() > 2 ? arith::AddFOp::create(nb, nl, v, s[2]).getResult() : v;
  });
  auto n = normalize(b, l, sum, op.getGamma(), Value(), -1,
                     op.getEpsilon().convertToDouble(), true, rt);
  if (failed(n))
    return failure();
  SmallVector<Value> res{n->first};
  for (auto [i, v] : llvm::enumerate(opt)) {
    if (i <= 1) // mean (unused, checked above) has inv_std_var's shape
      res.push_back(castTo(b, l, n->second, v.getType()));
    else
      res.push_back(castTo(b, l, sum, v.getType()));
  }
  return res;
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<Value>> qwen::lowerONNXOpGeneric(OpBuilder &b, Operation *op) {
  Location l = op->getLoc();
  // Every operand and result must be a ranked tensor.
  for (Value v : op->getOperands())
    if (!ranked(v))
      return failure();
  for (Value v : op->getResults())
    if (!ranked(v))
      return failure();
  if (auto o = dyn_cast<ox::ConstantOp>(op)) {
    auto ta = dyn_cast<TypedAttr>(o.getValue());
    if (!ta)
      return failure();
    return one(arith::ConstantOp::create(b, l, ta).getResult());
  }
  if (isa<ox::AddOp>(op)) return one(lowerBinary(b, l, op, Bin::Add));
  if (isa<ox::SubOp>(op)) return one(lowerBinary(b, l, op, Bin::Sub));
  if (isa<ox::MulOp>(op)) return one(lowerBinary(b, l, op, Bin::Mul));
  if (isa<ox::DivOp>(op)) return one(lowerBinary(b, l, op, Bin::Div));
  if (isa<ox::PowOp>(op)) return one(lowerBinary(b, l, op, Bin::Pow));
  if (auto o = dyn_cast<ox::ModOp>(op)) return one(lowerBinary(b, l, op, o.getFmod() ? Bin::FMod : Bin::Mod));
  if (isa<ox::EqualOp>(op)) return one(lowerBinary(b, l, op, Bin::Eq));
  if (isa<ox::LessOp>(op)) return one(lowerBinary(b, l, op, Bin::Lt));
  if (isa<ox::LessOrEqualOp>(op)) return one(lowerBinary(b, l, op, Bin::Le));
  if (isa<ox::GreaterOp>(op)) return one(lowerBinary(b, l, op, Bin::Gt));
  if (isa<ox::GreaterOrEqualOp>(op)) return one(lowerBinary(b, l, op, Bin::Ge));
  if (isa<ox::AndOp>(op)) return one(lowerBinary(b, l, op, Bin::And));
  if (isa<ox::OrOp>(op)) return one(lowerBinary(b, l, op, Bin::Or));
  if (isa<ox::XorOp>(op)) return one(lowerBinary(b, l, op, Bin::Xor));
  if (isa<ox::MaxOp>(op)) return one(lowerVariadic(b, l, op, Bin::Max));
  if (isa<ox::MinOp>(op)) return one(lowerVariadic(b, l, op, Bin::Min));
  if (isa<ox::SumOp>(op)) return one(lowerVariadic(b, l, op, Bin::Add));
  if (auto o = dyn_cast<ox::WhereOp>(op)) return one(lowerWhere(b, l, o));
  if (isa<ox::NegOp, ox::AbsOp, ox::SqrtOp, ox::ReciprocalOp, ox::ExpOp, ox::LogOp,
          ox::CosOp, ox::SinOp, ox::TanhOp, ox::SigmoidOp, ox::ReluOp, ox::ErfOp,
          ox::FloorOp, ox::CeilOp, ox::SoftplusOp, ox::NotOp, ox::IdentityOp,
          ox::IsNaNOp, ox::IsInfOp>(op))
    return one(lowerUnary(b, l, op));
  if (auto o = dyn_cast<ox::CastOp>(op)) return one(lowerCast(b, l, op, o.getInput(), o.getTo()));
  if (auto o = dyn_cast<ox::CastLikeOp>(op))
    return one(lowerCast(b, l, op, o.getInput(), eltOf(o.getTargetType())));
  if (auto o = dyn_cast<ox::ConstantOfShapeOp>(op)) return one(lowerConstantOfShape(b, l, o));
  if (auto o = dyn_cast<ox::ShapeOp>(op)) return one(lowerShapeOp(b, l, o));
  if (auto o = dyn_cast<ox::SizeOp>(op)) return one(lowerSize(b, l, o));
  if (auto o = dyn_cast<ox::RangeOp>(op)) return one(lowerRange(b, l, o));
  if (auto o = dyn_cast<ox::ReshapeOp>(op)) return one(lowerReshape(b, l, o));
  if (auto o = dyn_cast<ox::FlattenOp>(op)) return one(lowerFlatten(b, l, o));
  if (auto o = dyn_cast<ox::SqueezeOp>(op))
    return one(lowerSqueezeLike(b, l, op, o.getData(), o.getAxes(), false));
  if (auto o = dyn_cast<ox::UnsqueezeOp>(op))
    return one(lowerSqueezeLike(b, l, op, o.getData(), o.getAxes(), true));
  if (auto o = dyn_cast<ox::TransposeOp>(op)) return one(lowerTranspose(b, l, o));
  if (auto o = dyn_cast<ox::ConcatOp>(op)) return one(lowerConcat(b, l, o));
  if (auto o = dyn_cast<ox::SplitOp>(op)) return lowerSplit(b, l, o);
  if (auto o = dyn_cast<ox::SliceOp>(op)) return one(lowerSlice(b, l, o));
  if (auto o = dyn_cast<ox::GatherOp>(op)) return one(lowerGather(b, l, o));
  if (auto o = dyn_cast<ox::GatherElementsOp>(op)) return one(lowerGatherElements(b, l, o));
  if (auto o = dyn_cast<ox::GatherNDOp>(op)) return one(lowerGatherND(b, l, o));
  if (auto o = dyn_cast<ox::ExpandOp>(op)) return one(lowerExpand(b, l, o));
  if (auto o = dyn_cast<ox::TileOp>(op)) return one(lowerTile(b, l, o));
  if (auto o = dyn_cast<ox::TriluOp>(op)) return one(lowerTrilu(b, l, o));
  if (auto o = dyn_cast<ox::CumSumOp>(op)) return one(lowerCumSum(b, l, o));
  if (auto o = dyn_cast<ox::MatMulOp>(op)) return one(lowerMatMul(b, l, o));
  if (auto o = dyn_cast<ox::GemmOp>(op)) return one(lowerGemm(b, l, o));
  if (auto o = dyn_cast<ox::EinsumOp>(op)) return one(lowerEinsum(b, l, o));
  if (auto o = dyn_cast<ox::SoftmaxOp>(op)) return one(lowerSoftmax(b, l, o));
  if (auto o = dyn_cast<ox::ReduceMeanOp>(op))
    return one(lowerReduce(b, l, op, o.getData(), o.getAxes(), o.getKeepdims(), o.getNoopWithEmptyAxes(), "Mean"));
  if (auto o = dyn_cast<ox::ReduceSumOp>(op))
    return one(lowerReduce(b, l, op, o.getData(), o.getAxes(), o.getKeepdims(), o.getNoopWithEmptyAxes(), "Sum"));
  if (auto o = dyn_cast<ox::ReduceMaxOp>(op))
    return one(lowerReduce(b, l, op, o.getData(), o.getAxes(), o.getKeepdims(), o.getNoopWithEmptyAxes(), "Max"));
  if (auto o = dyn_cast<ox::ReduceMinOp>(op))
    return one(lowerReduce(b, l, op, o.getData(), o.getAxes(), o.getKeepdims(), o.getNoopWithEmptyAxes(), "Min"));
  if (auto o = dyn_cast<ox::LayerNormalizationOp>(op)) {
    auto n = normalize(b, l, o.getX(), o.getScale(), o.getB(), o.getAxis(),
                       o.getEpsilon().convertToDouble(), false, ranked(o.getY()));
    if (failed(n))
      return failure();
    return one(n->first);
  }
  if (auto o = dyn_cast<ox::RMSNormalizationOp>(op)) {
    auto n = normalize(b, l, o.getX(), o.getScale(), Value(), o.getAxis(),
                       o.getEpsilon().convertToDouble(), true, ranked(o.getY()));
    if (failed(n))
      return failure();
    return one(n->first);
  }
  if (auto o = dyn_cast<ox::MSSimplifiedLayerNormalizationOp>(op)) {
    auto n = normalize(b, l, o.getX(), o.getScale(), Value(), o.getAxis(),
                       o.getEpsilon().convertToDouble(), true, ranked(o.getY()));
    if (failed(n))
      return failure();
    SmallVector<Value> res{n->first};
    if (Value inv = o.getInvStdVar())
      res.push_back(castTo(b, l, n->second, inv.getType()));
    return res;
  }
  if (auto o = dyn_cast<ox::MSSkipSimplifiedLayerNormalizationOp>(op))
    return lowerSkipSimplifiedLN(b, l, o);
  if (auto o = dyn_cast<ox::DequantizeLinearOp>(op)) return one(lowerDequantizeLinear(b, l, o));
  if (auto o = dyn_cast<ox::MSMatMulNBitsOp>(op)) return one(lowerMatMulNBits(b, l, o));
  if (auto o = dyn_cast<ox::MSGatherBlockQuantizedOp>(op)) return one(lowerGatherBlockQuantized(b, l, o));
  return failure();
}

namespace {

//===----------------------------------------------------------------------===//
// Integer-only qquant ops (see QQuantOps.td for the exact arithmetic)
//===----------------------------------------------------------------------===//

/// An elementwise linalg.generic over same-shaped `ins` (plus 1-D tensors in
/// `chan`, indexed by the last dimension) into `rt`.
Value elementwise(OpBuilder &b, Location l, RankedTensorType rt, ValueRange ins,
                  ValueRange chan,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> fn) {
  MLIRContext *ctx = b.getContext();
  int64_t r = rt.getRank();
  AffineMap id = AffineMap::getMultiDimIdentityMap(r, ctx);
  SmallVector<AffineMap> maps(ins.size(), id);
  for (Value c : chan)
    maps.push_back(ranked(c).getDimSize(0) == 1 && (r == 0 || rt.getShape().back() != 1)
                       ? AffineMap::get(r, 0, {getAffineConstantExpr(0, ctx)}, ctx)
                       : AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx));
  maps.push_back(id);
  SmallVector<Value> all(ins.begin(), ins.end());
  all.append(chan.begin(), chan.end());
  Value init = emptyWith(b, l, rt, dimsOf(b, l, ins[0]));
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, all, ValueRange{init}, maps, parallel(r),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               linalg::YieldOp::create(nb, nl, fn(nb, nl, a.drop_back()));
             })
      .getResult(0);
}

template <typename T>
Value constVec(OpBuilder &b, Location l, ArrayRef<T> v, Type et) {
  auto t = RankedTensorType::get({int64_t(v.size())}, et);
  return arith::ConstantOp::create(b, l, DenseElementsAttr::get(t, v));
}

/// gemmlowp: clamp(RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x,
/// m), e) + zp, -127, 127) as i8; x, m, e i32. m < 2^31, so the saturating
/// case (x == m == INT32_MIN) cannot occur.
Value requantizeScalar(OpBuilder &b, Location l, Value x, Value m, Value e, int32_t zp) {
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  Value ab = arith::MulIOp::create(b, l, arith::ExtSIOp::create(b, l, i64, x),
                                   arith::ExtSIOp::create(b, l, i64, m));
  Value nonNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, ab, cst(b, l, i64, 0));
  Value nudge = arith::SelectOp::create(b, l, nonNeg, cst(b, l, i64, double(1 << 30)),
                                        cst(b, l, i64, double(1 - (1 << 30))));
  Value hi = arith::DivSIOp::create(b, l, arith::AddIOp::create(b, l, ab, nudge),
                                    cst(b, l, i64, 2147483648.0));
  hi = arith::TruncIOp::create(b, l, i32, hi);
  Value one = cst(b, l, i32, 1);
  Value mask = arith::SubIOp::create(b, l, arith::ShLIOp::create(b, l, one, e), one);
  Value rem = arith::AndIOp::create(b, l, hi, mask);
  Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, hi, cst(b, l, i32, 0));
  Value thr = arith::AddIOp::create(b, l, arith::ShRSIOp::create(b, l, mask, one),
                                    arith::ExtUIOp::create(b, l, i32, neg));
  Value up = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sgt, rem, thr);
  Value y = arith::AddIOp::create(b, l, arith::ShRSIOp::create(b, l, hi, e),
                                  arith::ExtUIOp::create(b, l, i32, up));
  y = arith::AddIOp::create(b, l, y, cst(b, l, i32, zp));
  y = arith::MaxSIOp::create(b, l, y, cst(b, l, i32, -127));
  y = arith::MinSIOp::create(b, l, y, cst(b, l, i32, 127));
  return arith::TruncIOp::create(b, l, b.getI8Type(), y);
}

/// The weight as the fused kernels (QuantKernels.h) see it.
qwen::WeightOnlyDesc weightOnlyDesc(const QuantDesc &q, int64_t rows, int64_t cols) {
  qwen::WeightOnlyDesc d;
  d.codes = q.codes;
  d.scales = q.scales;
  d.bits = q.bits;
  d.rows = rows;
  d.cols = cols;
  d.gran = q.gran;
  d.group = q.group;
  d.isSigned = q.isSigned;
  d.symmetric = q.symmetric;
  d.hasZeros = bool(q.zeros);
  d.log2 = q.log2;
  d.codebook = q.codebook;
  d.perRow = q.perRow;
  d.mask = q.mask;
  return d;
}

/// acc[..., n] = sum_k qx[..., k] * code(W[n, k]) in i32.
Value intMatmul(OpBuilder &b, Location l, const QuantDesc &q, Value qx,
                RankedTensorType accT, int64_t rows, int64_t cols) {
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type(), i8 = b.getI8Type();
  int64_t r = accT.getRank();
  auto qwT = RankedTensorType::get({rows, cols}, i8);
  Value qw = generate(b, l, qwT, {cIdx(b, l, rows), cIdx(b, l, cols)},
                      [&](OpBuilder &nb, Location nl, ArrayRef<Value> iv) {
                        Value c = codeAt(nb, nl, q, iv[0], iv[1]);
                        return arith::TruncIOp::create(nb, nl, i8, c).getResult();
                      });
  SmallVector<Value> odims = dimsOf(b, l, qx);
  odims.back() = cIdx(b, l, rows);
  Value acc0 = fillT(b, l, accT, odims, cst(b, l, i32, 0));
  SmallVector<AffineExpr> xk, on;
  for (int64_t i = 0; i < r - 1; ++i) {
    xk.push_back(getAffineDimExpr(i, ctx));
    on.push_back(getAffineDimExpr(i, ctx));
  }
  AffineExpr n = getAffineDimExpr(r - 1, ctx), k = getAffineDimExpr(r, ctx);
  xk.push_back(k);
  on.push_back(n);
  SmallVector<IteratorType> it = parallel(r);
  it.push_back(IteratorType::reduction);
  return linalg::GenericOp::create(
             b, l, TypeRange{accT}, ValueRange{qx, qw}, ValueRange{acc0},
             {AffineMap::get(r + 1, 0, xk, ctx), AffineMap::get(r + 1, 0, {n, k}, ctx),
              AffineMap::get(r + 1, 0, on, ctx)},
             it,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value u = arith::ExtSIOp::create(nb, nl, i32, a[0]);
               Value v = arith::ExtSIOp::create(nb, nl, i32, a[1]);
               Value m = arith::MulIOp::create(nb, nl, u, v);
               linalg::YieldOp::create(nb, nl, arith::AddIOp::create(nb, nl, a[2], m).getResult());
             })
      .getResult(0);
}

/// The elementwise integer-only ops (int_linear needs the weight store and
/// is handled by lowerQQuantOp).
FailureOr<SmallVector<Value>> lowerIntegerElementwise(OpBuilder &b, Operation *op) {
  Location l = op->getLoc();
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), i8 = b.getI8Type();
  auto one = [](Value v) { return FailureOr<SmallVector<Value>>(SmallVector<Value>{v}); };
  auto rt = ranked(op->getResult(0));
  if (!rt)
    return failure();
  if (auto o = dyn_cast<qq::QuantizeOp>(op)) {
    float s = float(o.getScale().convertToDouble());
    Type qt = rt.getElementType();
    double lim = qt.isInteger(16) ? 32767.0 : 127.0;
    return one(elementwise(b, l, rt, {o.getInput()}, {}, [&](OpBuilder &nb, Location nl, ValueRange a) {
      Value x = a[0].getType().isF32() ? a[0] : arith::ExtFOp::create(nb, nl, f32, a[0]).getResult();
      Value d = arith::DivFOp::create(nb, nl, x, cst(nb, nl, f32, s));
      d = math::RoundEvenOp::create(nb, nl, d);
      d = arith::MaximumFOp::create(nb, nl, d, cst(nb, nl, f32, -lim));
      d = arith::MinimumFOp::create(nb, nl, d, cst(nb, nl, f32, lim));
      return arith::FPToSIOp::create(nb, nl, qt, d).getResult();
    }));
  }
  if (auto o = dyn_cast<qq::IntRMSNormOp>(op)) {
    MLIRContext *ctx = b.getContext();
    Type i64 = b.getI64Type();
    Value x = o.getInput();
    int64_t r = rt.getRank();
    // v[...] = eps + sum_k x^2 (i64).
    SmallVector<int64_t> vShape(rt.getShape().begin(), rt.getShape().end() - 1);
    SmallVector<Value> xd = dimsOf(b, l, x), vd(xd.begin(), xd.end() - 1);
    auto vT = RankedTensorType::get(vShape, i64);
    Value v0 = fillT(b, l, vT, vd, cst(b, l, i64, double(o.getEpsAttr().getInt())));
    SmallVector<AffineExpr> tok;
    for (int64_t i = 0; i + 1 < r; ++i)
      tok.push_back(getAffineDimExpr(i, ctx));
    SmallVector<IteratorType> it = parallel(r - 1);
    it.push_back(IteratorType::reduction);
    AffineMap id = AffineMap::getMultiDimIdentityMap(r, ctx), tokM = AffineMap::get(r, 0, tok, ctx);
    Value v = linalg::GenericOp::create(
                  b, l, TypeRange{vT}, ValueRange{x}, ValueRange{v0}, {id, tokM}, it,
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    Value e = arith::ExtSIOp::create(nb, nl, i64, a[0]);
                    Value sq = arith::MulIOp::create(nb, nl, e, e);
                    linalg::YieldOp::create(nb, nl, arith::AddIOp::create(nb, nl, a[1], sq).getResult());
                  })
                  .getResult(0);
    Value gain = constVec(b, l, o.getGain(), i64);
    Value init = emptyWith(b, l, rt, xd);
    return one(linalg::GenericOp::create(
                   b, l, TypeRange{rt}, ValueRange{x, v, gain}, ValueRange{init},
                   {id, tokM, AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx), id},
                   parallel(r),
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     auto c = [&](int64_t k) { return cst(nb, nl, i64, double(k)); };
                     Value vv = a[1];
                     // isqrt(v): r0 = 2^ceil(bitlen(v) / 2), 8 Newton steps.
                     Value bl = arith::SubIOp::create(nb, nl, c(64), math::CountLeadingZerosOp::create(nb, nl, vv));
                     Value e0 = arith::ShRUIOp::create(nb, nl, arith::AddIOp::create(nb, nl, bl, c(1)), c(1));
                     Value rr = arith::ShLIOp::create(nb, nl, c(1), e0);
                     for (int i = 0; i < 8; ++i) {
                       Value d = arith::MaxSIOp::create(nb, nl, rr, c(1));
                       Value nx = arith::DivSIOp::create(nb, nl, arith::AddIOp::create(nb, nl, rr, arith::DivSIOp::create(nb, nl, vv, d)), c(2));
                       rr = arith::MinSIOp::create(nb, nl, rr, nx);
                     }
                     Value n = arith::MulIOp::create(nb, nl, arith::ExtSIOp::create(nb, nl, i64, a[0]), a[2]);
                     Value den = arith::ShLIOp::create(nb, nl, arith::MaxSIOp::create(nb, nl, rr, c(1)), c(16));
                     Value neg = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt, n, c(0));
                     Value an = arith::SelectOp::create(nb, nl, neg, arith::SubIOp::create(nb, nl, c(0), n), n);
                     Value q = arith::DivUIOp::create(nb, nl, arith::AddIOp::create(nb, nl, an, arith::ShRUIOp::create(nb, nl, den, c(1))), den);
                     q = arith::SelectOp::create(nb, nl, neg, arith::SubIOp::create(nb, nl, c(0), q), q);
                     q = arith::MaxSIOp::create(nb, nl, q, c(-127));
                     q = arith::MinSIOp::create(nb, nl, q, c(127));
                     Value zero = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, rr, c(0));
                     q = arith::SelectOp::create(nb, nl, zero, c(0), q);
                     linalg::YieldOp::create(nb, nl, arith::TruncIOp::create(nb, nl, i8, q).getResult());
                   })
                   .getResult(0));
  }
  if (auto o = dyn_cast<qq::DequantizeOp>(op)) {
    SmallVector<Value> chan{constVec(b, l, o.getScale(), f32)};
    if (Value bias = o.getBias())
      chan.push_back(bias);
    bool hasBias = bool(o.getBias());
    return one(elementwise(b, l, rt, {o.getInput()}, chan, [&](OpBuilder &nb, Location nl, ValueRange a) {
      Value y = arith::MulFOp::create(nb, nl, arith::SIToFPOp::create(nb, nl, f32, a[0]), a[1]);
      if (hasBias) {
        Value bv = a[2].getType().isF32() ? a[2] : arith::ExtFOp::create(nb, nl, f32, a[2]).getResult();
        y = arith::AddFOp::create(nb, nl, y, bv);
      }
      return y;
    }));
  }
  if (auto o = dyn_cast<qq::RequantizeOp>(op)) {
    Value m = constVec(b, l, o.getMultiplier(), i32);
    Value e = constVec(b, l, o.getShift(), i32);
    int32_t zp = o.getZeroPoint();
    return one(elementwise(b, l, rt, {o.getInput()}, {m, e}, [&](OpBuilder &nb, Location nl, ValueRange a) {
      return requantizeScalar(nb, nl, a[0], a[1], a[2], zp);
    }));
  }
  if (auto o = dyn_cast<qq::LookupOp>(op)) {
    Value table = constVec(b, l, o.getTable(), i8);
    return one(elementwise(b, l, rt, {o.getInput()}, {}, [&](OpBuilder &nb, Location nl, ValueRange a) {
      Value i = arith::AddIOp::create(nb, nl, arith::ExtSIOp::create(nb, nl, i32, a[0]), cst(nb, nl, i32, 128));
      Value idx = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), i);
      return tensor::ExtractOp::create(nb, nl, table, ValueRange{idx}).getResult();
    }));
  }
  if (auto o = dyn_cast<qq::IntMulOp>(op)) {
    return one(elementwise(b, l, rt, {o.getLhs(), o.getRhs()}, {}, [&](OpBuilder &nb, Location nl, ValueRange a) {
      return arith::MulIOp::create(nb, nl, arith::ExtSIOp::create(nb, nl, i32, a[0]),
                                   arith::ExtSIOp::create(nb, nl, i32, a[1])).getResult();
    }));
  }
  return failure();
}

} // namespace

FailureOr<SmallVector<Value>> qwen::lowerQQuantOp(OpBuilder &b, Operation *op,
                                                  WeightStoreCache &stores) {
  Location l = op->getLoc();
  if (isa<qq::QuantizeOp, qq::DequantizeOp, qq::RequantizeOp, qq::LookupOp, qq::IntMulOp,
          qq::IntRMSNormOp>(op))
    return lowerIntegerElementwise(b, op);
  if (auto o = dyn_cast<qq::DynamicQuantizeOp>(op)) {
    auto xt = ranked(o.getInput());
    if (!xt || !xt.getElementType().isF32())
      return failure();
    auto [q, sc] = dynamicQuantizeRef(b, l, o.getInput(), o.getBits(), o.getPerToken());
    return SmallVector<Value>{q, sc};
  }
  Value wv;
  qq::ActivationAttr act;
  // qquant.qlinear: the dynamic per-token int8 path from q_x and s_x on.
  auto ql = dyn_cast<qq::QLinearOp>(op);
  if (ql)
    wv = ql.getWeight();
  else if (auto o = dyn_cast<qq::LinearOp>(op)) {
    act = o.getActAttr();
    wv = o.getWeight();
  } else if (auto o = dyn_cast<qq::LogitsOp>(op)) {
    act = o.getActAttr();
    wv = o.getWeight();
  } else if (auto o = dyn_cast<qq::EmbeddingOp>(op)) {
    wv = o.getTable();
  } else if (auto o = dyn_cast<qq::DequantizeWeightOp>(op)) {
    wv = o.getWeight();
  } else if (auto o = dyn_cast<qq::IntLinearOp>(op)) {
    wv = o.getWeight();
  } else {
    return failure();
  }
  auto wop = wv.getDefiningOp<qq::WeightOp>();
  auto rt = ranked(op->getResult(0));
  bool intLinear = isa<qq::IntLinearOp>(op);
  if (!wop || !rt || (!intLinear && !rt.getElementType().isF32()))
    return failure();
  for (Value v : op->getOperands())
    if (isa<TensorType>(v.getType()) && (!ranked(v) || (!isa<IntegerType>(eltOf(v)) && !eltOf(v).isF32())))
      return failure();
  auto wt = cast<qq::WeightType>(wv.getType());
  qq::SchemeAttr s = wt.getScheme();
  bool log2 = s.getGrid() == qq::Grid::log2;
  bool codebook = s.getGrid() == qq::Grid::codebook;
  bool sparse24 = s.getSparsity() == qq::Sparsity::s2_4;
  if ((s.getSparsity() != qq::Sparsity::dense && !sparse24) || s.getBits() < 2 || s.getBits() > 8)
    return failure();
  if (sparse24 && (act || intLinear || codebook))
    return op->emitOpError("2:4 sparse weights have a weight-only lowering for uniform and "
                           "log2 grids (float activations), got ")
               << wt,
           failure();
  if ((log2 || codebook) && (act || intLinear))
    return op->emitOpError("int8 activations need uniform integer weights; a ")
               << (log2 ? "log2 grid" : "codebook") << " has a weight-only lowering, got " << wt,
           failure();
  std::optional<float> staticScale;
  if (act && act.getMode() == qq::ActMode::static_) {
    quant::UniformQuantizedType st = act.getStaticType();
    if (act.getBits() != 8 || !st.isSigned() || st.getZeroPoint() != 0 ||
        !st.getExpressedType().isF32() || !(st.getScale() > 0))
      return op->emitOpError("only static per-tensor symmetric int8 activations "
                             "(#qquant.act<static : !quant.uniform<i8:f32, s>> with "
                             "zero point 0 and s > 0) have a lowering, got ")
                 << act,
             failure();
    staticScale = float(st.getScale());
  } else if (act) {
    if (act.getMode() != qq::ActMode::dynamic || act.getBits() != 8 || !act.getPerToken())
      return op->emitOpError("only dynamic per-token int8 activations "
                             "(#qquant.act<dynamic, i8, per_token>) or static "
                             "per-tensor int8 ones have a lowering"),
             failure();
  }
  if (act || ql) {
    if ((s.getBits() != 8 && s.getBits() != 4) || !s.getIsSigned() || !s.getSymmetric() ||
        (s.getBits() == 8 && s.getGranularity() == qq::Granularity::group))
      return op->emitOpError(staticScale ? "static " : "dynamic ")
                 << "int8 activations need signed symmetric 8-bit weights per "
                    "tensor or per channel (w8a8) or 4-bit ones per tensor, "
                    "channel or group (w4a8), got "
                 << wt,
             failure();
  }
  int64_t rows = wt.getRows(), cols = wt.getCols();
  // The components as qwen.weight ops (dtypes from the store's index).
  SymbolRefAttr ref = wop.getRef();
  SmallVector<Value> comps;
  for (const WeightComponent &c : getWeightComponents(wt)) {
    const ws::Entry *e = stores.find(wop, ref, c.suffix);
    if (!e)
      return failure();
    Type et = fromStoreDType(b.getContext(), e->dtype);
    auto t = RankedTensorType::get(c.shape, et);
    if (ArrayRef<int64_t>(e->shape) != ArrayRef<int64_t>(c.shape) ||
        !llvm::is_contained(c.dtypes, e->dtype))
      return wop.emitOpError("store entry '") << e->name << "' does not match the weight's scheme",
             failure();
    auto leaf = FlatSymbolRefAttr::get(b.getStringAttr(ref.getLeafReference().getValue() + c.suffix));
    auto cref = SymbolRefAttr::get(ref.getRootReference(), {leaf});
    comps.push_back(qwen::WeightOp::create(b, l, t, cref).getResult());
  }
  QuantDesc q;
  q.codes = comps[0];
  q.scales = comps[1];
  q.zeros = s.hasZeroPoints() ? comps[2] : Value();
  q.bits = s.getBits();
  q.isSigned = s.getIsSigned();
  q.symmetric = s.getSymmetric();
  q.gran = s.getGranularity() == qq::Granularity::tensor ? 0
           : s.getGranularity() == qq::Granularity::channel ? 1 : 2;
  q.group = s.getGroupSize();
  q.rowBytes = ranked(q.codes).getDimSize(1);
  q.log2 = log2;
  q.codebook = codebook;
  q.perRow = s.getScalesPerRow(cols);
  if (sparse24) {
    q.mask = comps.back();
    q.maskBytes = ranked(q.mask).getDimSize(1);
  }
  if (q.gran == 2 && (q.group <= 0 || cols % q.group != 0))
    return failure();
  if (intLinear)
    return one(intMatmul(b, l, q, op->getOperand(0), rt, rows, cols));
  if (ql) {
    Value xq = ql.getInput(), sx = ql.getInputScale(), bias = ql.getBias();
    if (bias && !ranked(bias))
      return failure();
    FailureOr<Value> y = lowerInt8ActLinear(b, l, weightOnlyDesc(q, rows, cols), xq, bias, rt, std::nullopt,
                                            weightOnlyParamsFor(op), sx);
    if (succeeded(y))
      return one(*y);
    return one(linearDynI8(b, l, q, xq, bias, rt, rows, cols, std::nullopt, sx));
  }
  if (act) {
    Value x = op->getOperand(0);
    Value bias = isa<qq::LinearOp>(op) ? cast<qq::LinearOp>(op).getBias() : Value();
    if (!ranked(x) || !eltOf(x).isF32() || (bias && !ranked(bias)))
      return failure();
    // The fused kernel (QuantKernels.cpp: vpdpbusd where the target has
    // VNNI) computes exactly what linearDynI8 does; linearDynI8 stays the
    // reference (`qwen.quant_kernel = {fused = false}`) and takes the forms
    // the kernel does not.
    FailureOr<Value> y = lowerInt8ActLinear(b, l, weightOnlyDesc(q, rows, cols), x, bias, rt,
                                            staticScale, weightOnlyParamsFor(op));
    if (succeeded(y))
      return one(*y);
    return one(linearDynI8(b, l, q, x, bias, rt, rows, cols, staticScale));
  }
  if (auto o = dyn_cast<qq::EmbeddingOp>(op))
    return one(embedQ(b, l, q, o.getIds(), cols, rt));
  // The float input of the weight-only paths below; `bf16_input` rounds it
  // to bfloat16 first (every kernel then computes on the rounded values; the
  // x86 4-bit kernel multiplies them with vdpbf16ps).
  Value xIn = op->getNumOperands() ? op->getOperand(0) : Value();
  bool bf16In = false;
  if (qq::hasBf16Input(op)) {
    auto xt = ranked(xIn);
    if (!xt)
      return failure();
    bf16In = true;
    xIn = elementwise(b, l, xt, ValueRange{xIn}, ValueRange{}, [](OpBuilder &nb, Location nl, ValueRange a) -> Value {
      Value h = arith::TruncFOp::create(nb, nl, nb.getBF16Type(), a[0]);
      return arith::ExtFOp::create(nb, nl, nb.getF32Type(), h);
    });
  }
  // `i16_input` quantizes it to int16 per weight group and dequantizes
  // (quantDequantBlocksI16) on every path but the CPU kernel's, which takes
  // x itself and `i16Input` (QuantKernels.cpp: the int16 codes for
  // vpdpwssd come from x; the f32 paths dequantize only their tokens).
  bool i16In = false;
  // The forms the weight-only kernels below take (GPU and CPU).
  const bool weightOnlyKernel = isa<qq::LinearOp, qq::LogitsOp>(op) && !q.log2 && !q.codebook && !sparse24;
  const bool cpuKernel = weightOnlyKernel && !qwen::gpu::targetsGPU(op);
  Value xRaw = xIn;
  if (qq::hasI16Input(op)) {
    auto xt = ranked(xIn);
    if (!xt || !xt.getElementType().isF32() || q.gran != 2 || q.group <= 0 || xt.isDynamicDim(xt.getRank() - 1) ||
        xt.getDimSize(xt.getRank() - 1) % q.group != 0)
      return failure();
    i16In = true;
    if (!cpuKernel)
      xIn = qwen::quantDequantBlocksI16(b, l, xIn, q.group);
  }
  if (sparse24 && isa<qq::LinearOp, qq::LogitsOp>(op)) {
    auto lo = dyn_cast<qq::LinearOp>(op);
    Value x = xIn, bias = lo ? lo.getBias() : Value();
    if (!ranked(x) || (bias && !ranked(bias)))
      return failure();
    // CUDA targets: the tagged generic of the fused sparse kernels
    // (GPUKernels.cpp: GEMV over the kept codes, mma.sp) where they take
    // the scheme; the reference below is what they compute.
    if (qwen::gpu::targetsGPU(op) && !q.log2 && !q.codebook) {
      FailureOr<Value> y = qwen::gpu::lowerSparse24LinearGPU(
          b, l, weightOnlyDesc(q, rows, cols), q.mask, x, bias, rt);
      if (succeeded(y))
        return one(*y);
    }
    // The fused CPU kernel (SparseLutKernels.cpp) where it handles the form;
    // linearSparse24 is the reference (`qwen.quant_kernel = {fused = false}`).
    FailureOr<Value> y = lowerSparse24Linear(b, l, weightOnlyDesc(q, rows, cols), x, bias, rt, weightOnlyParamsFor(op));
    if (succeeded(y))
      return one(*y);
    return one(linearSparse24(b, l, q, x, bias, rt, rows, cols));
  }
  // Weight-only linear / logits: the fused kernel (QuantKernels.cpp) where it
  // handles the scheme (signed symmetric 4/8-bit per tensor, channel or group
  // of 32/64/128); it dequantizes in registers. Else, and with
  // `qwen.quant_kernel = {fused = false}` on the module, the reference below.
  if (weightOnlyKernel) {
    Value bias = isa<qq::LinearOp>(op) ? cast<qq::LinearOp>(op).getBias() : Value();
    WeightOnlyDesc d = weightOnlyDesc(q, rows, cols);
    // CUDA targets: the generic that --qwen-gpu-fused-kernels implements
    // with the fused GEMV (GPUKernels.cpp); the CPU kernel's vector code
    // has no GPU mapping.
    if (qwen::gpu::targetsGPU(op)) {
      FailureOr<Value> y = qwen::gpu::lowerWeightOnlyLinearGPU(b, l, d, xIn, bias, rt);
      if (succeeded(y))
        return one(*y);
    }
    WeightOnlyParams wp = weightOnlyParamsFor(op);
    wp.bf16Input = bf16In;
    wp.i16Input = i16In;
    FailureOr<Value> y = lowerWeightOnlyLinear(b, l, d, xIn, bias, rt, wp);
    if (succeeded(y))
      return one(*y);
    if (i16In) // the reference below
      xIn = qwen::quantDequantBlocksI16(b, l, xRaw, q.group);
  }
  // CUDA targets: 4-bit codebooks as the tagged generic of the fused
  // codebook GEMV (GPUKernels.cpp) where it handles the form.
  if (isa<qq::LinearOp, qq::LogitsOp>(op) && q.codebook && q.bits == 4 &&
      !sparse24 && qwen::gpu::targetsGPU(op)) {
    Value bias = isa<qq::LinearOp>(op) ? cast<qq::LinearOp>(op).getBias() : Value();
    FailureOr<Value> y = qwen::gpu::lowerCodebookLinearGPU(
        b, l, q.codes, q.scales, q.gran, q.group, q.perRow, xIn, bias, rt);
    if (succeeded(y))
      return one(*y);
  }
  // CPU: codebooks looked up in registers (SparseLutKernels.cpp) where the
  // kernel handles the form; else, and with fused = false, the reference.
  if (isa<qq::LinearOp, qq::LogitsOp>(op) && q.codebook && !sparse24) {
    Value bias = isa<qq::LinearOp>(op) ? cast<qq::LinearOp>(op).getBias() : Value();
    FailureOr<Value> y = lowerCodebookLinear(b, l, weightOnlyDesc(q, rows, cols), xIn, bias, rt,
                                             weightOnlyParamsFor(op));
    if (succeeded(y))
      return one(*y);
  }
  Value w = dequantAll(b, l, q, rows, cols);
  if (isa<qq::DequantizeWeightOp>(op))
    return one(castTo(b, l, w, rt));
  auto lo = dyn_cast<qq::LinearOp>(op);
  return one(linearNT(b, l, xIn, w, lo ? lo.getBias() : Value(), rt));
}
