//===- KernelSupport.cpp - pieces shared by the CPU linear kernels --------===//

#include "qwen/Transforms/KernelSupport.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace qwen {

SmallVector<Value> Tokens::unflatten(OpBuilder &b, Location l, Value m) const {
  SmallVector<Value> iv(rank - 1);
  for (int64_t i = rank - 2; i > 0; --i) {
    iv[i] = arith::RemUIOp::create(b, l, m, lead[i]);
    m = arith::DivUIOp::create(b, l, m, lead[i]);
  }
  iv[0] = m;
  return iv;
}

SmallVector<Value> Tokens::dynM() const {
  return ShapedType::isDynamic(Ms) ? SmallVector<Value>{M} : SmallVector<Value>{};
}

Tokens flattenTokens(OpBuilder &b, Location l, Value x) {
  auto xt = cast<RankedTensorType>(x.getType());
  Tokens t;
  t.rank = xt.getRank();
  for (int64_t i = 0; i < t.rank - 1; ++i) {
    t.lead.push_back(xt.isDynamicDim(i) ? tensor::DimOp::create(b, l, x, i).getResult()
                                        : arith::ConstantIndexOp::create(b, l, xt.getDimSize(i)).getResult());
    t.Ms = (t.Ms == ShapedType::kDynamic || xt.isDynamicDim(i)) ? ShapedType::kDynamic
                                                                : t.Ms * xt.getDimSize(i);
  }
  t.M = t.lead[0];
  for (int64_t i = 1; i < t.rank - 1; ++i)
    t.M = arith::MulIOp::create(b, l, t.M, t.lead[i]);
  return t;
}

Value restoreLeading(OpBuilder &b, Location l, Value y, RankedTensorType rt, const Tokens &t) {
  if (t.rank <= 2)
    return y;
  // A reshape (a view of the same buffer once bufferized), not a copy.
  const int64_t r = t.rank;
  ReassociationIndices lead;
  SmallVector<OpFoldResult> shape;
  for (int64_t i = 0; i < r - 1; ++i) {
    lead.push_back(i);
    shape.push_back(rt.isDynamicDim(i) ? OpFoldResult(t.lead[i]) : OpFoldResult(b.getIndexAttr(rt.getDimSize(i))));
  }
  shape.push_back(b.getIndexAttr(rt.getShape().back()));
  auto yt = cast<RankedTensorType>(y.getType());
  auto outT = RankedTensorType::get(rt.getShape(), yt.getElementType());
  int64_t dynLead = llvm::count_if(ArrayRef<int64_t>(rt.getShape()).drop_back(), ShapedType::isDynamic);
  Value out;
  if (dynLead <= 1) {
    out = tensor::ExpandShapeOp::create(b, l, outT, y, SmallVector<ReassociationIndices>{lead, {r - 1}}, shape);
  } else {
    // LLVM 22's expand-strided-metadata crashes on a memref.expand_shape
    // with two dynamic sizes in one group; tensor.reshape (memref.reshape
    // of the same buffer) takes the sizes as a shape tensor instead.
    SmallVector<Value> dims;
    for (OpFoldResult f : shape)
      dims.push_back(getValueOrCreateConstantIndexOp(b, l, f));
    Value st = tensor::FromElementsOp::create(b, l, RankedTensorType::get({r}, b.getIndexType()), dims);
    out = tensor::ReshapeOp::create(b, l, outT, y, st);
  }
  return out.getType() == rt ? out : tensor::CastOp::create(b, l, rt, out).getResult();
}

Value packActivations(OpBuilder &b, Location l, Value x, const Tokens &t, int64_t K, int64_t chunk,
                      int64_t planes, Value firstRow, Type elt, Value rowEnd) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  const int64_t Kp = (K + chunk - 1) / chunk * chunk, P = chunk / planes;
  auto ci = [](OpBuilder &nb, Location nl, int64_t v) -> Value { return arith::ConstantIndexOp::create(nb, nl, v); };
  // Rows [firstRow or 0, rowEnd or M): dynamic unless both are absent.
  const bool allRows = !firstRow && !rowEnd;
  auto xpT = RankedTensorType::get({allRows ? t.Ms : ShapedType::kDynamic, Kp}, elt ? elt : f32);
  Value end = rowEnd ? rowEnd : t.M;
  Value init = allRows ? tensor::EmptyOp::create(b, l, xpT, t.dynM())
                       : tensor::EmptyOp::create(b, l, xpT, ValueRange{firstRow ? arith::SubIOp::create(b, l, end, firstRow).getResult() : end});
  return linalg::GenericOp::create(
             b, l, TypeRange{xpT}, ValueRange{}, ValueRange{init},
             ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(2, ctx)},
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange) {
               Value m = linalg::IndexOp::create(nb, nl, 0);
               if (firstRow)
                 m = arith::AddIOp::create(nb, nl, m, firstRow);
               Value src = linalg::IndexOp::create(nb, nl, 1);
               if (planes > 1) {
                 // k = base + t * P + i  ->  base + planes * i + t.
                 Value w = arith::RemUIOp::create(nb, nl, src, ci(nb, nl, chunk));
                 Value base = arith::SubIOp::create(nb, nl, src, w);
                 Value tp = arith::DivUIOp::create(nb, nl, w, ci(nb, nl, P));
                 Value i = arith::RemUIOp::create(nb, nl, w, ci(nb, nl, P));
                 src = arith::AddIOp::create(
                     nb, nl, base, arith::AddIOp::create(nb, nl, arith::MulIOp::create(nb, nl, i, ci(nb, nl, planes)), tp));
               }
               SmallVector<Value> xi = t.unflatten(nb, nl, m);
               Value v;
               if (Kp == K) {
                 xi.push_back(src);
                 v = tensor::ExtractOp::create(nb, nl, x, xi);
               } else {
                 Value in = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, src, ci(nb, nl, K));
                 xi.push_back(arith::MinUIOp::create(nb, nl, src, ci(nb, nl, K - 1)));
                 Value e = tensor::ExtractOp::create(nb, nl, x, xi);
                 v = arith::SelectOp::create(nb, nl, in, e, arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0)));
               }
               if (elt && elt != f32)
                 v = arith::TruncFOp::create(nb, nl, elt, v);
               linalg::YieldOp::create(nb, nl, v);
             })
      .getResult(0);
}

Value quantDequantBlocksI16(OpBuilder &b, Location l, Value x, int64_t G) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type(), i16 = b.getI16Type();
  auto xt = cast<RankedTensorType>(x.getType());
  const int64_t r = xt.getRank(), K = xt.getDimSize(r - 1);
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < r - 1; ++i)
    if (xt.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, l, x, i));
  SmallVector<int64_t> sShape(xt.getShape());
  sShape[r - 1] = K / G;
  SmallVector<AffineExpr> blk;
  for (int64_t i = 0; i < r; ++i)
    blk.push_back(i == r - 1 ? getAffineDimExpr(i, ctx).floorDiv(G) : getAffineDimExpr(i, ctx));
  AffineMap idR = AffineMap::getMultiDimIdentityMap(r, ctx), blkR = AffineMap::get(r, 0, blk, ctx);
  auto sT = RankedTensorType::get(sShape, f32);
  SmallVector<utils::IteratorType> it(r, utils::IteratorType::parallel);
  Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0));
  Value s0 = linalg::FillOp::create(b, l, ValueRange{zero}, ValueRange{tensor::EmptyOp::create(b, l, sT, dyn).getResult()})
                 .getResult(0);
  it[r - 1] = utils::IteratorType::reduction;
  Value amax = linalg::GenericOp::create(
                   b, l, TypeRange{sT}, ValueRange{x}, ValueRange{s0}, ArrayRef<AffineMap>{idR, blkR}, it,
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     Value v = math::AbsFOp::create(nb, nl, a[0]);
                     linalg::YieldOp::create(nb, nl, arith::MaximumFOp::create(nb, nl, a[1], v).getResult());
                   })
                   .getResult(0);
  it[r - 1] = utils::IteratorType::parallel;
  return linalg::GenericOp::create(
             b, l, TypeRange{xt}, ValueRange{x, amax}, ValueRange{tensor::EmptyOp::create(b, l, xt, dyn).getResult()},
             ArrayRef<AffineMap>{idR, blkR, idR}, it,
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value sc = arith::DivFOp::create(nb, nl, a[1], arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(32767)));
               Value c = quantizeToCode(nb, nl, a[0], sc, 32767.0, i16);
               Value v = arith::SIToFPOp::create(nb, nl, f32, c);
               linalg::YieldOp::create(nb, nl, arith::MulFOp::create(nb, nl, v, sc).getResult());
             })
      .getResult(0);
}

RowPrefetcher RowPrefetcher::create(OpBuilder &b, Location l, Value weight, int64_t aheadBytes) {
  RowPrefetcher p;
  auto t = dyn_cast<RankedTensorType>(weight.getType());
  if (aheadBytes <= 0 || !t || t.getRank() != 2 || !t.hasStaticShape())
    return p;
  // read_only: the buffer is the tensor's own (no copy); prefetches do not
  // write it (memref.prefetch declares a write only to stay ordered).
  auto mt = MemRefType::get(t.getShape(), t.getElementType());
  Value buf = bufferization::ToBufferOp::create(b, l, mt, weight, /*read_only=*/true);
  p.flat = memref::CollapseShapeOp::create(b, l, buf, SmallVector<ReassociationIndices>{{0, 1}});
  p.cols = t.getDimSize(1);
  p.total = t.getDimSize(0) * p.cols;
  p.ahead = aheadBytes * 8 / std::max<int64_t>(8, t.getElementTypeBitWidth());
  return p;
}

void RowPrefetcher::at(OpBuilder &b, Location l, Value row, Value col) const {
  if (!flat)
    return;
  auto ci = [&](int64_t v) -> Value { return arith::ConstantIndexOp::create(b, l, v); };
  Value i = arith::AddIOp::create(b, l, arith::MulIOp::create(b, l, row, ci(cols)), col);
  i = arith::MinUIOp::create(b, l, arith::AddIOp::create(b, l, i, ci(ahead)), ci(total - 1));
  // Locality 2 (prefetcht1): into L2, where the stream has room that far
  // ahead; the L1 prefetcher brings the lines the last step. Against
  // prefetcht0 it was 3-5 % faster, prefetchnta halved the speed.
  memref::PrefetchOp::create(b, l, flat, ValueRange{i}, /*isWrite=*/false, /*localityHint=*/2, /*isDataCache=*/true);
}

Value quantizeToCode(OpBuilder &b, Location l, Value v, Value s, double qmax, Type codeType) {
  auto cst = [&](double c) -> Value {
    Value f = arith::ConstantOp::create(b, l, b.getF32FloatAttr(c));
    return isa<VectorType>(v.getType()) ? vector::BroadcastOp::create(b, l, v.getType(), f).getResult() : f;
  };
  Value zero = cst(0.0);
  Value isZero = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, s,
                                       arith::ConstantOp::create(b, l, b.getF32FloatAttr(0)));
  Value sv = isa<VectorType>(v.getType()) ? vector::BroadcastOp::create(b, l, v.getType(), s).getResult() : s;
  Value d = arith::DivFOp::create(b, l, v, sv);
  d = arith::SelectOp::create(b, l, isZero, zero, d);
  d = math::RoundEvenOp::create(b, l, d);
  d = arith::MaximumFOp::create(b, l, d, cst(-qmax));
  d = arith::MinimumFOp::create(b, l, d, cst(qmax));
  return arith::FPToSIOp::create(b, l, codeType, d);
}

Value linearInitMN(OpBuilder &b, Location l, Value bias, const Tokens &t, int64_t N) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  auto yT = RankedTensorType::get({t.Ms, N}, f32);
  Value yEmpty = tensor::EmptyOp::create(b, l, yT, t.dynM());
  if (!bias)
    return linalg::FillOp::create(b, l, ValueRange{arith::ConstantOp::create(b, l, b.getF32FloatAttr(0)).getResult()},
                                  ValueRange{yEmpty})
        .getResult(0);
  AffineMap bm = AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx);
  return linalg::GenericOp::create(
             b, l, TypeRange{yT}, ValueRange{bias}, ValueRange{yEmpty},
             ArrayRef<AffineMap>{bm, AffineMap::getMultiDimIdentityMap(2, ctx)},
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value v = a[0].getType().isF32() ? a[0] : arith::ExtFOp::create(nb, nl, f32, a[0]).getResult();
               linalg::YieldOp::create(nb, nl, v);
             })
      .getResult(0);
}

SmallVector<Value> rowBlockAccumulators(int64_t NR, int64_t mr, bool rowwise,
                                        function_ref<SmallVector<Value>(ArrayRef<int64_t>)> accsFor) {
  if (mr != 1 || !rowwise)
    return accsFor(llvm::to_vector(llvm::seq<int64_t>(0, NR)));
  SmallVector<Value> accs;
  for (int64_t i = 0; i < NR; ++i)
    llvm::append_range(accs, accsFor({i}));
  return accs;
}

Value blockedTokens(OpBuilder &b, Location l, Value M, int64_t MR) {
  if (MR <= 1)
    return arith::ConstantIndexOp::create(b, l, 0);
  Value mr = arith::ConstantIndexOp::create(b, l, MR);
  return arith::MulIOp::create(b, l, arith::DivUIOp::create(b, l, M, mr), mr);
}

Value tokenBlocks(OpBuilder &b, Location l, Value M, int64_t MR, Value tile, TokenBlockFn blk) {
  auto ci = [&](int64_t v) -> Value { return arith::ConstantIndexOp::create(b, l, v); };
  Value mFull = blockedTokens(b, l, M, MR);
  if (MR > 1) {
    auto main = scf::ForOp::create(b, l, ci(0), mFull, ci(MR), ValueRange{tile},
                                   [&](OpBuilder &nb, Location nl, Value m0, ValueRange it) {
                                     scf::YieldOp::create(nb, nl, blk(nb, nl, m0, MR, it[0]));
                                   });
    tile = main.getResult(0);
  }
  auto rest = scf::ForOp::create(b, l, mFull, M, ci(1), ValueRange{tile},
                                 [&](OpBuilder &nb, Location nl, Value m0, ValueRange it) {
                                   scf::YieldOp::create(nb, nl, blk(nb, nl, m0, 1, it[0]));
                                 });
  return rest.getResult(0);
}

Value addToTileRows(OpBuilder &b, Location l, Value tile, ArrayRef<Value> vals, ArrayRef<Value> mrow, int64_t NR) {
  auto vnr = VectorType::get({NR}, b.getF32Type());
  const int64_t mr = mrow.size();
  Value c0 = arith::ConstantIndexOp::create(b, l, 0);
  Value pad = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0));
  for (int64_t j = 0; j < mr; ++j) {
    SmallVector<Value> row;
    for (int64_t i = 0; i < NR; ++i)
      row.push_back(vals[i * mr + j]);
    Value vec = vector::FromElementsOp::create(b, l, vnr, row);
    Value old = vector::TransferReadOp::create(b, l, vnr, tile, ValueRange{mrow[j], c0}, pad, ArrayRef<bool>{false});
    tile = vector::TransferWriteOp::create(b, l, arith::AddFOp::create(b, l, old, vec).getResult(), tile,
                                           ValueRange{mrow[j], c0}, ArrayRef<bool>{false})
               .getResult();
  }
  return tile;
}

Value forEachChannelTile(OpBuilder &b, Location l, Value init, Value M, int64_t N, int64_t tileRows,
                         int64_t clampRows, ChannelTileBody body) {
  auto ci = [&](int64_t v) -> Value { return arith::ConstantIndexOp::create(b, l, v); };
  const int64_t tiles = (N + tileRows - 1) / tileRows;
  auto forall = scf::ForallOp::create(b, l, ArrayRef<OpFoldResult>{b.getIndexAttr(tiles)}, ValueRange{init},
                                      std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value out = forall.getRegionIterArgs()[0];
  Value n0 = arith::MulIOp::create(b, l, forall.getInductionVars()[0], ci(tileRows));
  Value sz = arith::MinSIOp::create(b, l, ci(tileRows), arith::SubIOp::create(b, l, ci(N), n0));
  SmallVector<OpFoldResult> offs{b.getIndexAttr(0), n0}, sizes{M, sz}, strides{b.getIndexAttr(1), b.getIndexAttr(1)};
  auto elt = cast<RankedTensorType>(init.getType()).getElementType();
  auto sliceT = RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic}, elt);
  Value slice = tensor::ExtractSliceOp::create(b, l, sliceT, out, offs, sizes, strides);
  SmallVector<Value> rows;
  for (int64_t i = 0; i < clampRows; ++i)
    rows.push_back(arith::MinSIOp::create(b, l, arith::AddIOp::create(b, l, n0, ci(i)), ci(N - 1)));
  Value tile = body(b, l, slice, n0, rows);
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(b, l, tile, out, offs, sizes, strides);
  return forall.getResult(0);
}

} // namespace qwen
