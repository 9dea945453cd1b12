//===- KernelSupport.cpp - pieces shared by the CPU linear kernels --------===//

#include "qwen/Transforms/KernelSupport.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

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
  MLIRContext *ctx = b.getContext();
  const int64_t r = t.rank;
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < r - 1; ++i)
    if (rt.isDynamicDim(i))
      dyn.push_back(t.lead[i]);
  Value e = tensor::EmptyOp::create(b, l, rt, dyn);
  return linalg::GenericOp::create(
             b, l, TypeRange{rt}, ValueRange{}, ValueRange{e},
             ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(r, ctx)},
             SmallVector<utils::IteratorType>(r, utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location nl, ValueRange) {
               Value m = linalg::IndexOp::create(nb, nl, 0);
               for (int64_t i = 1; i < r - 1; ++i)
                 m = arith::AddIOp::create(nb, nl, arith::MulIOp::create(nb, nl, m, t.lead[i]),
                                           linalg::IndexOp::create(nb, nl, i));
               Value n = linalg::IndexOp::create(nb, nl, r - 1);
               linalg::YieldOp::create(nb, nl, tensor::ExtractOp::create(nb, nl, y, ValueRange{m, n}).getResult());
             })
      .getResult(0);
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
