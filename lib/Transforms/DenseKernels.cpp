//===- DenseKernels.cpp - register-blocked f32 linear kernel --------------===//
//
// y[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) for f32 W [N, K], emitted on
// tensors as
//
//   y = scf.forall t in [0, ceil(N / NT)) shared_outs(init = bias or 0):
//         (NT = GT * NR rows of W: the tile a thread owns, GT groups of NR)
//         for m0 in 0 .. M step MR (then a remainder loop, one token each):
//           for g in 0 .. GT:
//             acc[NR][MR] : vector<16xf32> = 0
//             for k in 0 .. K step 16:
//               xs[j] = x[m0 + j, k : k+16]; w = W[n0 + g NR + i, k : k+16]
//               acc[i][j] = fma(xs[j], w, acc[i][j])
//             y[m0 + j, n0 + g NR + i] += reduce_add(acc[i][j])
//
// so each loaded weight vector serves MR tokens and each activation vector
// NR rows. The reference lowering (a linalg.generic with loops n, m, k) reads
// all of x from memory for every output channel: with 512 tokens it streams
// ~N x 2 MB per matmul and runs at decode speed (8.5 tokens/s, Qwen2.5-0.5B,
// one thread). Here the MR tokens' rows of x stay in L1 across the GT groups
// and the NT x K weight tile in L2 across the token blocks.
//
// The tokens left after the blocks of MR (decode's one token: all of them)
// go one at a time: an scf.for over the tile's NT rows, each row one
// sequential stream of W reduced with 4 independent accumulators (64
// elements per step), its sum inserted into a vector<NT> that is added to
// the token's row of the tile once. With qwen.quant_kernel {rowwise = false}
// fewer than MR tokens take the caller's reference lowering instead,
// chosen at run time (see DenseKernels.h).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/DenseKernels.h"
#include "qwen/Transforms/KernelSupport.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace qwen {

namespace {
constexpr int64_t kLanes = 16;   // f32 lanes of every vector value
constexpr int64_t kGroups = 4;   // NR-row groups per thread tile
constexpr int64_t kUnroll = 4;   // GEMV accumulators per row
} // namespace

FailureOr<Value> lowerDenseLinear(OpBuilder &b, Location l, Value x, Value w, Value bias,
                                  RankedTensorType rt, const WeightOnlyParams &p,
                                  function_ref<Value(OpBuilder &, Location)> fewTokens) {
  if (!p.fused)
    return failure();
  auto xt = dyn_cast<RankedTensorType>(x.getType());
  auto wt = dyn_cast<RankedTensorType>(w.getType());
  if (!xt || !wt || !xt.getElementType().isF32() || !wt.getElementType().isF32() || xt.getRank() < 2 ||
      wt.getRank() != 2 || !wt.hasStaticShape())
    return failure();
  const int64_t N = wt.getDimSize(0), K = wt.getDimSize(1), H = kLanes;
  if (K % H != 0 || xt.getShape().back() != K || rt.getRank() != xt.getRank() || rt.getShape().back() != N ||
      !rt.getElementType().isF32())
    return failure();
  if (bias) {
    auto bt = dyn_cast<RankedTensorType>(bias.getType());
    if (!bt || bt.getRank() != 1 || bt.getDimSize(0) != N || !bt.getElementType().isF32())
      return failure();
  }
  Type f32 = b.getF32Type();
  const int64_t NR = std::min<int64_t>(p.tileN, N), MR = p.tileM;
  const int64_t GT = std::min<int64_t>(kGroups, (N + NR - 1) / NR), NT = GT * NR;
  const int64_t U = K % (kUnroll * H) == 0 ? kUnroll : 1;
  auto ci = [](OpBuilder &nb, Location nl, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(nb, nl, v);
  };
  auto cf = [](OpBuilder &nb, Location nl, double v) -> Value {
    return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(v));
  };
  auto vf = VectorType::get({H}, f32);
  auto vnr = VectorType::get({NR}, f32);

  // Tokens: M = the product of x's leading dims; token m's indices into x.
  Tokens tk = flattenTokens(b, l, x);
  // Fewer than MR tokens (decode): `fewTokens` (see the header).
  auto castTo = [&](OpBuilder &nb, Location nl, Value v) -> Value {
    return v.getType() == rt ? v : tensor::CastOp::create(nb, nl, rt, v).getResult();
  };
  if (!p.rowwise && ShapedType::isStatic(tk.Ms) && tk.Ms < MR)
    return castTo(b, l, fewTokens(b, l));
  scf::IfOp dispatch;
  OpBuilder::InsertionGuard dispatchGuard(b);
  if (!p.rowwise && !ShapedType::isStatic(tk.Ms)) {
    Value many = arith::CmpIOp::create(b, l, arith::CmpIPredicate::uge, tk.M,
                                       arith::ConstantIndexOp::create(b, l, MR));
    dispatch = scf::IfOp::create(b, l, TypeRange{rt}, many, /*withElseRegion=*/true);
    b.setInsertionPointToStart(&dispatch.getElseRegion().front());
    scf::YieldOp::create(b, l, castTo(b, l, fewTokens(b, l)));
    b.setInsertionPointToStart(&dispatch.getThenRegion().front());
  }
  Value M = tk.M;
  auto xIndex = [&](OpBuilder &nb, Location nl, Value m, Value k) {
    SmallVector<Value> iv = tk.unflatten(nb, nl, m);
    iv.push_back(k);
    return iv;
  };

  // init: [M, N] = bias (broadcast over tokens) or 0.
  Value init = linearInitMN(b, l, bias, tk, N);

  // The single-token row loop prefetches W (one line per vector<16xf32>).
  RowPrefetcher pf = RowPrefetcher::create(b, l, w, p.prefetch);

  Value y = forEachChannelTile(b, l, init, M, N, NT, 0, [&](OpBuilder &b, Location l, Value tile, Value n0,
                                                            ArrayRef<Value>) -> Value {

    // Row i of group g, clamped into W: the lanes of a last partial tile
    // recompute row N-1 and are masked off when written.
    auto rowOf = [&](OpBuilder &nb, Location nl, Value g, int64_t i) -> Value {
      Value n = arith::AddIOp::create(nb, nl, n0,
                                      arith::AddIOp::create(nb, nl, arith::MulIOp::create(nb, nl, g, ci(nb, nl, NR)),
                                                            ci(nb, nl, i)));
      return arith::MinSIOp::create(nb, nl, n, ci(nb, nl, N - 1));
    };
    auto load = [&](OpBuilder &nb, Location nl, Value src, ValueRange iv) -> Value {
      return vector::TransferReadOp::create(nb, nl, vf, src, iv, cf(nb, nl, 0.0), ArrayRef<bool>{true});
    };
    // tile[m, g NR .. g NR + NR) += sums (columns past the tile are masked).
    auto addRow = [&](OpBuilder &nb, Location nl, Value t, Value m, Value g, ArrayRef<Value> sums) -> Value {
      Value col = arith::MulIOp::create(nb, nl, g, ci(nb, nl, NR));
      Value vec = vector::FromElementsOp::create(nb, nl, vnr, sums);
      Value old = vector::TransferReadOp::create(nb, nl, vnr, t, ValueRange{m, col}, cf(nb, nl, 0.0),
                                                 ArrayRef<bool>{false});
      return vector::TransferWriteOp::create(nb, nl, arith::AddFOp::create(nb, nl, old, vec), t,
                                             ValueRange{m, col}, ArrayRef<bool>{false})
          .getResult();
    };
    auto reduce = [](OpBuilder &nb, Location nl, Value v) -> Value {
      return vector::ReductionOp::create(nb, nl, vector::CombiningKind::ADD, v);
    };
    auto zeros = [&](OpBuilder &nb, Location nl, int64_t n) {
      Value z = arith::ConstantOp::create(nb, nl, vf, DenseElementsAttr::get(vf, nb.getF32FloatAttr(0.0f)));
      return SmallVector<Value>(n, z);
    };
    auto forGroups = [&](OpBuilder &nb, Location nl, Value t,
                         function_ref<Value(OpBuilder &, Location, Value, Value)> body) -> Value {
      return scf::ForOp::create(nb, nl, ci(nb, nl, 0), ci(nb, nl, GT), ci(nb, nl, 1), ValueRange{t},
                                [&](OpBuilder &gb, Location gl, Value g, ValueRange it) {
                                  scf::YieldOp::create(gb, gl, body(gb, gl, g, it[0]));
                                })
          .getResult(0);
    };

    // MR tokens from m0: an NR x MR register block per group.
    auto block = [&](OpBuilder &ob, Location ol, Value m0, Value t) -> Value {
      SmallVector<Value> ms;
      for (int64_t j = 0; j < MR; ++j)
        ms.push_back(arith::AddIOp::create(ob, ol, m0, ci(ob, ol, j)));
      return forGroups(ob, ol, t, [&](OpBuilder &gb, Location gl, Value g, Value tg) {
        SmallVector<Value> rows;
        for (int64_t i = 0; i < NR; ++i)
          rows.push_back(rowOf(gb, gl, g, i));
        auto kl = scf::ForOp::create(
            gb, gl, ci(gb, gl, 0), ci(gb, gl, K), ci(gb, gl, H), zeros(gb, gl, NR * MR),
            [&](OpBuilder &kb, Location kl_, Value k, ValueRange accs) {
              SmallVector<Value> xs, next(accs.begin(), accs.end());
              for (int64_t j = 0; j < MR; ++j)
                xs.push_back(load(kb, kl_, x, xIndex(kb, kl_, ms[j], k)));
              for (int64_t i = 0; i < NR; ++i) {
                Value wv = load(kb, kl_, w, ValueRange{rows[i], k});
                for (int64_t j = 0; j < MR; ++j)
                  next[i * MR + j] = vector::FMAOp::create(kb, kl_, xs[j], wv, next[i * MR + j]);
              }
              scf::YieldOp::create(kb, kl_, next);
            });
        Value cur = tg;
        for (int64_t j = 0; j < MR; ++j) {
          SmallVector<Value> sums;
          for (int64_t i = 0; i < NR; ++i)
            sums.push_back(reduce(gb, gl, kl.getResult(i * MR + j)));
          cur = addRow(gb, gl, cur, ms[j], g, sums);
        }
        return cur;
      });
    };
    // One token: the tile's NT rows one at a time in an scf.for (one
    // sequential stream of W, U accumulators), each row's sum inserted into
    // a vector<NT> that is added to the token's row of the tile once. A loop
    // rather than unrolled rows: unrolled, the rows' streams interleave and
    // LLVM holds the token's activations across them (spills).
    auto vnt = VectorType::get({NT}, f32);
    auto single = [&](OpBuilder &ob, Location ol, Value m, Value t) -> Value {
      Value sums0 = arith::ConstantOp::create(ob, ol, vnt, DenseElementsAttr::get(vnt, ob.getF32FloatAttr(0.0f)));
      auto rl = scf::ForOp::create(
          ob, ol, ci(ob, ol, 0), ci(ob, ol, NT), ci(ob, ol, 1), ValueRange{sums0},
          [&](OpBuilder &rb, Location rl_, Value r, ValueRange rs) {
            Value row = arith::MinSIOp::create(rb, rl_, arith::AddIOp::create(rb, rl_, n0, r), ci(rb, rl_, N - 1));
            auto kl = scf::ForOp::create(
                rb, rl_, ci(rb, rl_, 0), ci(rb, rl_, K), ci(rb, rl_, U * H), zeros(rb, rl_, U),
                [&](OpBuilder &kb, Location kl_, Value k, ValueRange accs) {
                  SmallVector<Value> next;
                  for (int64_t u = 0; u < U; ++u) {
                    Value ku = u == 0 ? k : arith::AddIOp::create(kb, kl_, k, ci(kb, kl_, u * H)).getResult();
                    pf.at(kb, kl_, row, ku);
                    next.push_back(vector::FMAOp::create(kb, kl_, load(kb, kl_, x, xIndex(kb, kl_, m, ku)),
                                                         load(kb, kl_, w, ValueRange{row, ku}), accs[u]));
                  }
                  scf::YieldOp::create(kb, kl_, next);
                });
            Value acc = kl.getResult(0);
            for (int64_t u = 1; u < U; ++u)
              acc = arith::AddFOp::create(rb, rl_, acc, kl.getResult(u));
            Value sum = reduce(rb, rl_, acc);
            scf::YieldOp::create(rb, rl_, ValueRange{vector::InsertOp::create(rb, rl_, sum, rs[0],
                                                                              ArrayRef<OpFoldResult>{r})
                                                         .getResult()});
          });
      Value old = vector::TransferReadOp::create(ob, ol, vnt, t, ValueRange{m, ci(ob, ol, 0)}, cf(ob, ol, 0.0),
                                                 ArrayRef<bool>{false});
      return vector::TransferWriteOp::create(ob, ol, arith::AddFOp::create(ob, ol, old, rl.getResult(0)), t,
                                             ValueRange{m, ci(ob, ol, 0)}, ArrayRef<bool>{false})
          .getResult();
    };

    return tokenBlocks(b, l, M, MR, tile, [&](OpBuilder &nb, Location nl, Value m0, int64_t mr, Value t) {
      return mr == MR ? block(nb, nl, m0, t) : single(nb, nl, m0, t);
    });
  });
  y = castTo(b, l, restoreLeading(b, l, y, rt, tk));
  if (!dispatch)
    return y;
  scf::YieldOp::create(b, l, y);
  return dispatch.getResult(0);
}

} // namespace qwen
