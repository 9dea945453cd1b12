//===- SparseLutKernels.cpp - codebook (LUT) and 2:4 sparse linear kernels ===//
//
// y[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) for two weight-only forms
// the uniform kernel (QuantKernels.cpp) does not take, on the same skeleton:
//
//   xp = x padded to a multiple of the chunk C (packActivations)
//   y  = scf.forall over tiles of NR output channels (forEachChannelTile):
//          for blocks of MR tokens (decode, M = 1: one row at a time):
//            acc[NR][MR] : vector<16xf32> = 0
//            for g in groups:      state(row, g)   (centroid table / scale)
//              for c in chunks:    xs[j] = the C / 16 vectors of xp[m0 + j]
//                                  per row: acc[i][j] += products of chunk c
//            y[m0 + j, n0 + i] += reduce_add(acc[i][j])
//
// Codebook (grid = codebook, B = 2 .. 8 bits): for B = 2, 4, 8 (8 / B codes
// a byte) a chunk is 16 bytes = 16 * 8 / B inputs; xp holds each chunk as
// 8 / B planes of 16 (plane t = the inputs whose code is the t-th field of
// its byte), so field t of the 16 bytes, zero-extended to i32 lanes, indexes
// the 16 centroids of plane t. For B = 3, 5, 6, 7 (and 2, 4 in groups
// smaller than their 64 / 32-input chunk) a chunk is 16 codes in 2 * B
// bytes; lane i takes the two bytes around bit B * i (byte shuffles) and
// shifts its code down. The book (2^B f32 centroids of the tensor / row /
// group, f16 ones widened) is held in ceil(2^B / 16) vector registers per
// (row, group); the lookup is a lane permute: AVX-512 vpermps zmm (B <= 4)
// or vpermt2ps on each pair of registers merged by selects on index bits
// 5-7; AVX2 vpermps on the ymm parts of the book merged by selects on index
// bits 3-4 (B <= 5), a gather from the table row (B >= 6). Permutes beat
// gathers: one GEMV 4864 x 896 on one thread (AMD EPYC, AVX-512; median of 5
// alternated runs, machine loaded): 4-bit books 0.36 ms permuted (zmm) vs
// 1.82 ms gathered (AVX2 permutes: 1.1-1.3 ms); 8-bit 1.79 vs 3.15 ms; the
// reference (dequantize, then matmul) 20-40 ms.
//
// 2:4 sparse (sparsity = 2:4: per 4 inputs 2 kept codes and their 2-bit
// positions): a chunk is 16 kept codes = 32 inputs; the two vectors of x the
// chunk covers are read once per token, and the 16 activations the kept codes
// multiply are picked by a two-source lane permute (AVX-512 vpermt2ps; AVX2:
// vpermps on the four ymm quarters and selects on index bits 3-4) with
// indices 4 * (s / 2) + position(s) from the unpacked positions; the kept
// codes (uniform i4 / i8, or log2 i4) become f32 in registers times the
// scale of the group. cols / 2 multiply-adds per output.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/KernelSupport.h"
#include "qwen/Transforms/QuantKernels.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace qwen {
namespace {
constexpr int64_t kLanes = 16; // f32 lanes of every vector value

Value cIndex(OpBuilder &b, Location l, int64_t v) { return arith::ConstantIndexOp::create(b, l, v); }

/// A constant vector<n x i32> with lanes f(0) .. f(n - 1).
Value laneConst(OpBuilder &b, Location l, int64_t n, function_ref<int32_t(int64_t)> f) {
  auto t = VectorType::get({n}, b.getI32Type());
  SmallVector<int32_t> v;
  for (int64_t i = 0; i < n; ++i)
    v.push_back(f(i));
  return arith::ConstantOp::create(b, l, t, DenseElementsAttr::get(t, ArrayRef<int32_t>(v)));
}

/// `n` bytes of row `row` of the packed byte tensor from byte `col` as
/// vector<n x i8> (0 past the row's end unless inBounds).
Value readBytes(OpBuilder &b, Location l, Value packed, Value row, Value col, int64_t n, bool inBounds) {
  Type et = cast<RankedTensorType>(packed.getType()).getElementType(), i8 = b.getI8Type();
  Value pad = arith::ConstantOp::create(b, l, b.getI8IntegerAttr(0));
  if (et != i8)
    pad = UnrealizedConversionCastOp::create(b, l, TypeRange{et}, ValueRange{pad}).getResult(0);
  Value v = vector::TransferReadOp::create(b, l, VectorType::get({n}, et), packed, ValueRange{row, col}, pad,
                                           ArrayRef<bool>{inBounds});
  if (et != i8)
    v = UnrealizedConversionCastOp::create(b, l, TypeRange{VectorType::get({n}, i8)}, ValueRange{v}).getResult(0);
  return v;
}

/// Byte byteOf(i) of `bytes` in lane i of a vector<16xi32>, zero- or
/// sign-extended.
Value spreadBytes(OpBuilder &b, Location l, Value bytes, function_ref<int64_t(int64_t)> byteOf, bool sext) {
  SmallVector<int64_t> m;
  for (int64_t i = 0; i < kLanes; ++i)
    m.push_back(byteOf(i));
  Value v = vector::ShuffleOp::create(b, l, bytes, bytes, m);
  auto vi = VectorType::get({kLanes}, b.getI32Type());
  return sext ? arith::ExtSIOp::create(b, l, vi, v).getResult() : arith::ExtUIOp::create(b, l, vi, v).getResult();
}

Value callIntrinsic(OpBuilder &b, Location l, Type t, const char *name, ValueRange args) {
  return LLVM::CallIntrinsicOp::create(b, l, t, b.getStringAttr(name), args).getResult(0);
}

/// parts[idx >> shift] per lane (parts and idx of n lanes): a select chain.
Value selectPart(OpBuilder &b, Location l, ArrayRef<Value> parts, Value idx, int32_t shift, int64_t n) {
  Value r = parts[0];
  if (parts.size() == 1)
    return r;
  Value part = arith::ShRUIOp::create(b, l, idx, laneConst(b, l, n, [&](int64_t) { return shift; }));
  for (int64_t s = 1; s < (int64_t)parts.size(); ++s) {
    Value at = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, part,
                                     laneConst(b, l, n, [&](int64_t) { return int32_t(s); }));
    r = arith::SelectOp::create(b, l, at, parts[s], r);
  }
  return r;
}

/// The lanes of the concatenated `tables` (vector<16xf32> each) that idx
/// (vector<16xi32>, values < `entries` <= 16 * tables.size()) picks.
/// AVX-512: vpermps (one table) or vpermt2ps (each pair of tables: 32
/// entries, idx's low 5 bits), pairs merged by selects on idx >> 5. AVX2:
/// per 8-lane half of idx, vpermps (idx's low 3 bits) on each 8-lane part of
/// the tables the entries reach, merged by selects on idx >> 3.
Value permuteLanes(OpBuilder &b, Location l, ArrayRef<Value> tables, Value idx, int64_t entries, bool avx512) {
  auto vf = VectorType::get({kLanes}, b.getF32Type());
  if (avx512) {
    SmallVector<Value> pairs;
    for (int64_t s = 0; 2 * s < (int64_t)tables.size() && s * 2 * kLanes < entries; ++s)
      pairs.push_back(2 * s + 1 < (int64_t)tables.size()
                          ? callIntrinsic(b, l, vf, kPermt2ps512, {tables[2 * s], idx, tables[2 * s + 1]})
                          : callIntrinsic(b, l, vf, kPermps512, {tables[2 * s], idx}));
    return selectPart(b, l, pairs, idx, 5, kLanes);
  }
  const int64_t H = kLanes / 2;
  auto half = [&](Value v, int64_t h) -> Value {
    return vector::ExtractStridedSliceOp::create(b, l, v, ArrayRef<int64_t>{h * H}, ArrayRef<int64_t>{H},
                                                 ArrayRef<int64_t>{1});
  };
  SmallVector<Value> parts;
  for (int64_t s = 0; s * H < entries; ++s)
    parts.push_back(half(tables[s / 2], s % 2));
  auto v8f = VectorType::get({H}, b.getF32Type());
  SmallVector<Value> out;
  for (int64_t h = 0; h < 2; ++h) {
    Value ih = half(idx, h);
    SmallVector<Value> picked;
    for (Value part : parts)
      picked.push_back(callIntrinsic(b, l, v8f, kPermps256, {part, ih}));
    out.push_back(selectPart(b, l, picked, ih, 3, H));
  }
  SmallVector<int64_t> cat;
  for (int64_t i = 0; i < kLanes; ++i)
    cat.push_back(i);
  return vector::ShuffleOp::create(b, l, out[0], out[1], cat);
}

/// Loop-invariant values of (row, group g): the centroid table, the scale.
using GroupStateFn = function_ref<SmallVector<Value>(OpBuilder &, Location, Value row, Value g)>;
/// accs[j] += the products of the row's chunk at input k0 with xs[j], the
/// C / 16 activation vectors of token j.
using ChunkFn = function_ref<void(OpBuilder &, Location, Value row, Value k0, ArrayRef<Value> state,
                                  ArrayRef<SmallVector<Value>> xs, MutableArrayRef<Value> accs)>;

/// The shared skeleton (file comment): chunks of C inputs (a multiple of
/// 16), xp packed with `planes` planes per chunk, `group` inputs per group
/// state (a multiple of C; 0: one group).
Value chunkedLinear(OpBuilder &b, Location l, const WeightOnlyDesc &q, Value x, Value bias, RankedTensorType rt,
                    const WeightOnlyParams &p, int64_t C, int64_t planes, int64_t group, GroupStateFn groupState,
                    ChunkFn chunk) {
  Type f32 = b.getF32Type();
  auto vf = VectorType::get({kLanes}, f32);
  const int64_t N = q.rows, K = q.cols, Kp = (K + C - 1) / C * C, V = C / kLanes;
  const int64_t G = group ? group : Kp, NG = Kp / G, CPG = G / C;
  const int64_t NR = std::min<int64_t>(p.tileN, N), MR = p.tileM;
  Tokens tk = flattenTokens(b, l, x);
  Value xp = packActivations(b, l, x, tk, K, C, planes);
  Value init = linearInitMN(b, l, bias, tk, N);
  Value y = forEachChannelTile(b, l, init, tk.M, N, NR, NR, [&](OpBuilder &b, Location l, Value slice, Value,
                                                                ArrayRef<Value> rows) -> Value {
    auto block = [&](OpBuilder &ob, Location ol, Value m0, int64_t mr, Value tile) -> Value {
      SmallVector<Value> mrow;
      for (int64_t j = 0; j < mr; ++j)
        mrow.push_back(j == 0 ? m0 : arith::AddIOp::create(ob, ol, m0, cIndex(ob, ol, j)).getResult());
      Value zero = arith::ConstantOp::create(ob, ol, vf, DenseElementsAttr::get(vf, ob.getF32FloatAttr(0.0f)));
      // The rs.size() x mr accumulators of the tile's rows rs.
      auto accsFor = [&](ArrayRef<int64_t> rs) -> SmallVector<Value> {
        const int64_t nr = rs.size();
        auto gLoop = scf::ForOp::create(
            ob, ol, cIndex(ob, ol, 0), cIndex(ob, ol, NG), cIndex(ob, ol, 1), SmallVector<Value>(nr * mr, zero),
            [&](OpBuilder &gb, Location gl, Value g, ValueRange gaccs) {
              SmallVector<SmallVector<Value>> state;
              for (int64_t i = 0; i < nr; ++i)
                state.push_back(groupState(gb, gl, rows[rs[i]], g));
              Value gk0 = arith::MulIOp::create(gb, gl, g, cIndex(gb, gl, G));
              auto cLoop = scf::ForOp::create(
                  gb, gl, cIndex(gb, gl, 0), cIndex(gb, gl, CPG), cIndex(gb, gl, 1), gaccs,
                  [&](OpBuilder &cb, Location cl, Value c, ValueRange accs) {
                    Value k0 = arith::AddIOp::create(cb, cl, gk0, arith::MulIOp::create(cb, cl, c, cIndex(cb, cl, C)));
                    Value fpad = arith::ConstantOp::create(cb, cl, cb.getF32FloatAttr(0.0f));
                    SmallVector<SmallVector<Value>> xs(mr);
                    for (int64_t j = 0; j < mr; ++j)
                      for (int64_t t = 0; t < V; ++t) {
                        Value kt = t == 0 ? k0 : arith::AddIOp::create(cb, cl, k0, cIndex(cb, cl, t * kLanes)).getResult();
                        xs[j].push_back(vector::TransferReadOp::create(cb, cl, vf, xp, ValueRange{mrow[j], kt}, fpad,
                                                                       ArrayRef<bool>{true}));
                      }
                    SmallVector<Value> next(accs.begin(), accs.end());
                    for (int64_t i = 0; i < nr; ++i)
                      chunk(cb, cl, rows[rs[i]], k0, state[i], xs, MutableArrayRef<Value>(next).slice(i * mr, mr));
                    scf::YieldOp::create(cb, cl, next);
                  });
              scf::YieldOp::create(gb, gl, cLoop.getResults());
            });
        return SmallVector<Value>(gLoop.getResults());
      };
      SmallVector<Value> accs = rowBlockAccumulators(NR, mr, p.rowwise, accsFor);
      SmallVector<Value> vals;
      for (Value a : accs)
        vals.push_back(vector::ReductionOp::create(ob, ol, vector::CombiningKind::ADD, a));
      return addToTileRows(ob, ol, tile, vals, mrow, NR);
    };
    return tokenBlocks(b, l, tk.M, MR, slice, block);
  });
  return restoreLeading(b, l, y, rt, tk);
}

/// The planes of a codebook chunk: the codes a byte holds for widths that
/// divide 8 (a chunk is then 16 bytes) where the groups are multiples of
/// that chunk; else 1 (a chunk is 16 codes, 2 * bits bytes, a code possibly
/// spanning two of them).
int64_t codebookPlanes(const WeightOnlyDesc &q) {
  const int64_t planes = 8 % q.bits == 0 ? 8 / q.bits : 1;
  return q.gran != 2 || q.group % (kLanes * planes) == 0 ? planes : 1;
}
int64_t codebookChunk(const WeightOnlyDesc &q) { return kLanes * codebookPlanes(q); }

/// The log2-grid levels of 4-bit codes c (vector<16xi32>, LowerONNXToLinalg.cpp
/// log2Level): 0 if c & 7 == 0, else (c & 8 ? -1 : 1) * 2^-((c & 7) - 1),
/// built from its IEEE bits.
Value log2Levels(OpBuilder &b, Location l, Value c) {
  auto k = [&](int32_t v) { return laneConst(b, l, kLanes, [&](int64_t) { return v; }); };
  Value m = arith::AndIOp::create(b, l, c, k(7));
  Value sign = arith::ShLIOp::create(b, l, arith::AndIOp::create(b, l, c, k(8)), k(28));
  Value expBits = arith::ShLIOp::create(b, l, arith::SubIOp::create(b, l, k(128), m), k(23));
  Value v = arith::BitcastOp::create(b, l, VectorType::get({kLanes}, b.getF32Type()),
                                     arith::OrIOp::create(b, l, expBits, sign));
  Value isZero = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, m, k(0));
  auto vf = VectorType::get({kLanes}, b.getF32Type());
  return arith::SelectOp::create(b, l, isZero,
                                 arith::ConstantOp::create(b, l, vf, DenseElementsAttr::get(vf, b.getF32FloatAttr(0))),
                                 v);
}
} // namespace

bool codebookKernelSupports(const WeightOnlyDesc &q) {
  if (!q.codebook || q.mask || q.bits < 2 || q.bits > 8 || q.rows <= 0 || q.cols <= 0)
    return false;
  return q.gran != 2 || (q.group > 0 && q.group % kLanes == 0 && q.cols % q.group == 0);
}

FailureOr<Value> lowerCodebookLinear(OpBuilder &b, Location l, const WeightOnlyDesc &q, Value x, Value bias,
                                     RankedTensorType rt, const WeightOnlyParams &p) {
  if (!p.fused || !codebookKernelSupports(q) || !weightOperandsSupported(q, x, bias, rt))
    return failure();
  auto st = cast<RankedTensorType>(q.scales.getType());
  if (st.getRank() != 2 || st.getDimSize(1) != (1 << q.bits))
    return failure();
  Type f32 = b.getF32Type(), et = st.getElementType();
  auto vf = VectorType::get({kLanes}, f32);
  const int64_t F = codebookPlanes(q), C = codebookChunk(q), B = q.bits, E = int64_t(1) << B;
  // A book of up to 256 centroids is ceil(E / 16) zmm registers, permuted
  // pairwise with vpermt2ps; AVX2 permutes up to 32 (four ymm parts) and
  // gathers larger books.
  const bool gather = p.lutGather || (!p.avx512 && E > 32);
  const int64_t T = (E + kLanes - 1) / kLanes; // table vectors of a book
  const bool codesInBounds = q.cols % C == 0;
  auto widen = [&](OpBuilder &nb, Location nl, Value v) -> Value {
    return et.isF32() ? v : arith::ExtFOp::create(nb, nl, vf, v).getResult();
  };
  // The book of (row, g): its index (gather), or its centroids in lanes
  // 0 .. E - 1 (permute).
  auto groupState = [&](OpBuilder &nb, Location nl, Value row, Value g) -> SmallVector<Value> {
    Value book = q.gran == 0   ? cIndex(nb, nl, 0)
                 : q.gran == 1 ? row
                               : arith::AddIOp::create(nb, nl, arith::MulIOp::create(nb, nl, row, cIndex(nb, nl, q.perRow)), g)
                                     .getResult();
    if (gather)
      return {book};
    Value pad = arith::ConstantOp::create(nb, nl, nb.getFloatAttr(et, 0.0));
    SmallVector<Value> tables;
    for (int64_t t = 0; t < T; ++t)
      tables.push_back(widen(nb, nl,
                             vector::TransferReadOp::create(nb, nl, VectorType::get({kLanes}, et), q.scales,
                                                            ValueRange{book, cIndex(nb, nl, t * kLanes)}, pad,
                                                            ArrayRef<bool>{E >= kLanes})));
    return tables;
  };
  auto chunk = [&](OpBuilder &nb, Location nl, Value row, Value k0, ArrayRef<Value> state,
                   ArrayRef<SmallVector<Value>> xs, MutableArrayRef<Value> accs) {
    auto lanes = [&](function_ref<int32_t(int64_t)> f) { return laneConst(nb, nl, kLanes, f); };
    Value codes;
    if (F > 1 || B == 8) {
      // 16 bytes: field t of byte i is the code of input F * i + t.
      Value kb = arith::DivUIOp::create(nb, nl, k0, cIndex(nb, nl, F));
      codes = spreadBytes(nb, nl, readBytes(nb, nl, q.codes, row, kb, kLanes, codesInBounds),
                          [](int64_t i) { return i; }, false);
    } else {
      // 16 codes in 2 * B bytes: code i at bit B * i, read from its byte and
      // the next (clamped to the chunk: a code ending the chunk ends a byte).
      const int64_t nbytes = 2 * B;
      Value kb = arith::MulIOp::create(nb, nl, arith::DivUIOp::create(nb, nl, k0, cIndex(nb, nl, kLanes)),
                                       cIndex(nb, nl, nbytes));
      Value bytes = readBytes(nb, nl, q.codes, row, kb, nbytes, codesInBounds);
      Value lo = spreadBytes(nb, nl, bytes, [&](int64_t i) { return B * i / 8; }, false);
      Value hi = spreadBytes(nb, nl, bytes, [&](int64_t i) { return std::min(B * i / 8 + 1, nbytes - 1); }, false);
      codes = arith::OrIOp::create(nb, nl, lo, arith::ShLIOp::create(nb, nl, hi, lanes([](int64_t) { return 8; })));
      codes = arith::ShRUIOp::create(nb, nl, codes, lanes([&](int64_t i) { return int32_t(B * i % 8); }));
    }
    for (int64_t t = 0; t < F; ++t) {
      Value idx = codes;
      if (t > 0)
        idx = arith::ShRUIOp::create(nb, nl, idx, lanes([&](int64_t) { return int32_t(t * B); }));
      if (B < 8)
        idx = arith::AndIOp::create(nb, nl, idx, lanes([&](int64_t) { return int32_t(E - 1); }));
      Value w;
      if (gather) {
        auto vt = VectorType::get({kLanes}, et);
        auto mt = VectorType::get({kLanes}, nb.getI1Type());
        Value all = arith::ConstantOp::create(nb, nl, mt, DenseElementsAttr::get(mt, true));
        Value pass = arith::ConstantOp::create(nb, nl, vt, DenseElementsAttr::get(vt, nb.getFloatAttr(et, 0.0)));
        w = widen(nb, nl,
                  vector::GatherOp::create(nb, nl, vt, q.scales, ValueRange{state[0], cIndex(nb, nl, 0)}, idx, all, pass));
      } else {
        w = permuteLanes(nb, nl, state, idx, E, p.avx512);
      }
      for (size_t j = 0; j < accs.size(); ++j)
        accs[j] = vector::FMAOp::create(nb, nl, xs[j][t], w, accs[j]);
    }
  };
  return chunkedLinear(b, l, q, x, bias, rt, p, C, F, q.gran == 2 ? q.group : 0, groupState, chunk);
}

bool sparse24KernelSupports(const WeightOnlyDesc &q) {
  if (!q.mask || q.codebook || q.hasZeros || q.rows <= 0 || q.cols <= 0 || q.cols % 4 != 0)
    return false;
  if (q.log2 ? q.bits != 4 : !((q.bits == 4 || q.bits == 8) && q.isSigned && q.symmetric))
    return false;
  return q.gran != 2 || (q.group > 0 && q.group % 32 == 0 && q.cols % q.group == 0);
}

FailureOr<Value> lowerSparse24Linear(OpBuilder &b, Location l, const WeightOnlyDesc &q, Value x, Value bias,
                                     RankedTensorType rt, const WeightOnlyParams &p) {
  if (!p.fused || !sparse24KernelSupports(q) || !weightOperandsSupported(q, x, bias, rt))
    return failure();
  auto mt = dyn_cast<RankedTensorType>(q.mask.getType());
  if (!mt || mt.getRank() != 2 || mt.getElementType().getIntOrFloatBitWidth() != 8)
    return failure();
  auto vf = VectorType::get({kLanes}, b.getF32Type());
  // A chunk: 16 kept slots s (8 or 16 code bytes, 4 position bytes) = 32
  // inputs.
  const int64_t C = 2 * kLanes;
  const bool inBounds = q.cols % C == 0, i4 = q.bits == 4;
  auto groupState = [&](OpBuilder &nb, Location nl, Value row, Value g) -> SmallVector<Value> {
    return {vector::BroadcastOp::create(nb, nl, vf, weightScaleAt(nb, nl, q, row, g))};
  };
  auto chunk = [&](OpBuilder &nb, Location nl, Value row, Value k0, ArrayRef<Value> state,
                   ArrayRef<SmallVector<Value>> xs, MutableArrayRef<Value> accs) {
    auto lanes = [&](function_ref<int32_t(int64_t)> f) { return laneConst(nb, nl, kLanes, f); };
    // The kept codes: slot s of the chunk in lane s.
    Value kb = arith::DivUIOp::create(nb, nl, k0, cIndex(nb, nl, i4 ? 4 : 2));
    Value bytes = readBytes(nb, nl, q.codes, row, kb, i4 ? kLanes / 2 : kLanes, inBounds);
    Value w;
    if (q.log2) {
      // Unsigned nibbles: low for even slots, high for odd ones.
      Value v = spreadBytes(nb, nl, bytes, [](int64_t s) { return s / 2; }, false);
      v = arith::ShRUIOp::create(nb, nl, v, lanes([](int64_t s) { return int32_t(4 * (s % 2)); }));
      w = log2Levels(nb, nl, arith::AndIOp::create(nb, nl, v, lanes([](int64_t) { return 15; })));
    } else if (i4) {
      // The nibble to the top of the lane, then an arithmetic shift back.
      Value v = spreadBytes(nb, nl, bytes, [](int64_t s) { return s / 2; }, true);
      v = arith::ShLIOp::create(nb, nl, v, lanes([](int64_t s) { return int32_t(28 - 4 * (s % 2)); }));
      v = arith::ShRSIOp::create(nb, nl, v, lanes([](int64_t) { return 28; }));
      w = arith::SIToFPOp::create(nb, nl, vf, v);
    } else {
      w = arith::SIToFPOp::create(nb, nl, vf, spreadBytes(nb, nl, bytes, [](int64_t s) { return s; }, true));
    }
    w = arith::MulFOp::create(nb, nl, w, state[0]);
    // The input of slot s within the chunk: 4 * (s / 2) + its position.
    Value mb = arith::DivUIOp::create(nb, nl, k0, cIndex(nb, nl, 8));
    Value pos = spreadBytes(nb, nl, readBytes(nb, nl, q.mask, row, mb, kLanes / 4, inBounds),
                            [](int64_t s) { return s / 4; }, false);
    pos = arith::ShRUIOp::create(nb, nl, pos, lanes([](int64_t s) { return int32_t(2 * (s % 4)); }));
    pos = arith::AndIOp::create(nb, nl, pos, lanes([](int64_t) { return 3; }));
    Value idx = arith::AddIOp::create(nb, nl, pos, lanes([](int64_t s) { return int32_t(4 * (s / 2)); }));
    for (size_t j = 0; j < accs.size(); ++j)
      accs[j] = vector::FMAOp::create(nb, nl, permuteLanes(nb, nl, xs[j], idx, C, p.avx512), w, accs[j]);
  };
  return chunkedLinear(b, l, q, x, bias, rt, p, C, 1, q.gran == 2 ? q.group : 0, groupState, chunk);
}

} // namespace qwen
