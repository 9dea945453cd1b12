//===- QuantKernels.cpp - fused weight-only quantized linear kernels ------===//
//
// y[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) with W = code * scale
// (signed symmetric 4- or 8-bit codes; per tensor, channel or group), emitted
// on tensors as
//
//   xp = x with K padded to a multiple of the chunk C and, for 4-bit codes,
//        each chunk of 32 reordered [even k | odd k] (so the low and high
//        nibbles of 16 bytes meet 16 contiguous activations each)
//   y  = scf.forall t in [0, ceil(N / NR)) shared_outs(init = bias or 0):
//          for m0 in 0 .. M step MR (then a remainder loop with MR = 1):
//            acc[NR][MR] : vector<16xf32> = 0
//            for g in groups:                    (one group: channel/tensor)
//              s[i] = scale(n0 + i, g)           (broadcast)
//              for c in chunks of the group:     (C = 32 elements for i4, 16 for i8)
//                b  = 16 bytes of row n0 + i      (vector load)
//                i4: v = sext(b) : vector<16xi32>
//                    lo = sitofp(v << 28) * (s * 2^-28)   (the low nibble, exactly)
//                    hi = sitofp(v & -16) * (s * 2^-4)    (the high nibble)
//                    acc[i][j] += xp_even[m0+j] * lo + xp_odd[m0+j] * hi
//                i8: w = sitofp(b) (* s per group);  acc[i][j] += xp[m0+j] * w
//            y[m0 + j, n0 + i] += reduce_add(acc[i][j]) (* s for i8 channel/tensor)
//
// Decode blocks (few accumulators) fold the scales: per group the chunks
// accumulate the unscaled lo / hi (i8: w) products in their own registers and
// acc += sum_lo * s_lo + sum_hi * s_hi once at the group's end.
//
// so every dequantized weight register serves MR tokens (prefill) and the
// f32 weight never exists in memory. The scf.forall becomes an scf.parallel
// (scf-forall-to-parallel) and then OpenMP; the vector ops lower through
// convert-vector-to-llvm, and LLVM legalizes vector<16xf32> to 2 ymm (AVX2)
// or 1 zmm (AVX-512).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/QuantKernels.h"
#include "qwen/Transforms/GPUKernels.h"
#include "qwen/Transforms/KernelSupport.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace qwen {

WeightOnlyParams weightOnlyParamsFor(Operation *op) {
  WeightOnlyParams p;
  // The CPU kernels' vector code has no GPU mapping: a module lowered for a
  // CUDA target keeps the reference lowerings (GPUKernels.cpp fuses those).
  if (gpu::targetsGPU(op)) {
    p.fused = false;
    return p;
  }
  ModuleOp m = op->getParentOfType<ModuleOp>();
  while (m && !m->hasAttr("qwen.quant_kernel") && m->getParentOfType<ModuleOp>())
    m = m->getParentOfType<ModuleOp>();
  auto d = m ? m->getAttrOfType<DictionaryAttr>("qwen.quant_kernel") : DictionaryAttr();
  if (!d)
    return p;
  if (auto a = d.getAs<BoolAttr>("fused"))
    p.fused = a.getValue();
  if (auto a = d.getAs<IntegerAttr>("tile_n"))
    p.tileN = std::max<int64_t>(1, a.getInt());
  if (auto a = d.getAs<IntegerAttr>("tile_n_decode"))
    p.tileNDecode = std::max<int64_t>(1, a.getInt());
  if (auto a = d.getAs<IntegerAttr>("tile_m"))
    p.tileM = std::max<int64_t>(1, a.getInt());
  if (auto a = d.getAs<BoolAttr>("rowwise"))
    p.rowwise = a.getValue();
  if (auto a = d.getAs<IntegerAttr>("buffer_m"))
    p.bufferM = std::max<int64_t>(0, a.getInt());
  if (auto a = d.getAs<BoolAttr>("vnni"))
    p.vnni = a.getValue();
  if (auto a = d.getAs<BoolAttr>("avx512"))
    p.avx512 = a.getValue();
  if (auto a = d.getAs<BoolAttr>("lut_gather"))
    p.lutGather = a.getValue();
  if (auto a = d.getAs<BoolAttr>("avx512bf16"))
    p.avx512bf16 = a.getValue();
  if (auto a = d.getAs<IntegerAttr>("prefetch"))
    p.prefetch = std::max<int64_t>(0, a.getInt());
  return p;
}

namespace {
constexpr int64_t kLanes = 16; // f32 lanes of every vector value
constexpr const char *kDpbf16ps512 = "llvm.x86.avx512bf16.dpbf16ps.512";
constexpr const char *kVpdpwssd512 = "llvm.x86.avx512.vpdpwssd.512";

int64_t chunkOf(const WeightOnlyDesc &q) { return q.bits == 4 ? 2 * kLanes : kLanes; }
} // namespace

Value weightScaleAt(OpBuilder &b, Location l, const WeightOnlyDesc &q, Value row, Value g) {
  auto st = cast<RankedTensorType>(q.scales.getType());
  SmallVector<Value> si;
  if (st.getRank() == 1)
    si.push_back(arith::ConstantIndexOp::create(b, l, 0));
  else
    si = {row, st.getDimSize(1) == 1 ? arith::ConstantIndexOp::create(b, l, 0).getResult() : g};
  Value s = tensor::ExtractOp::create(b, l, q.scales, si);
  return s.getType().isF32() ? s : arith::ExtFOp::create(b, l, b.getF32Type(), s).getResult();
}

bool weightOperandsSupported(const WeightOnlyDesc &q, Value x, Value bias, RankedTensorType rt, Type xElt) {
  auto xt = dyn_cast<RankedTensorType>(x.getType());
  if (!xt || (xElt ? xt.getElementType() != xElt : !xt.getElementType().isF32()) || xt.getRank() < 2 || xt.getShape().back() != q.cols ||
      rt.getRank() != xt.getRank() || rt.getShape().back() != q.rows)
    return false;
  auto codesT = dyn_cast<RankedTensorType>(q.codes.getType());
  auto scalesT = dyn_cast<RankedTensorType>(q.scales.getType());
  if (!codesT || !scalesT || codesT.getRank() != 2 || codesT.getElementType().getIntOrFloatBitWidth() != 8 ||
      !(scalesT.getElementType().isF32() || scalesT.getElementType().isF16()))
    return false;
  if (bias) {
    auto biasT = dyn_cast<RankedTensorType>(bias.getType());
    if (!biasT || biasT.getRank() != 1 || biasT.getShape()[0] != q.rows ||
        !(biasT.getElementType().isF32() || biasT.getElementType().isF16()))
      return false;
  }
  return true;
}

bool weightOnlyKernelSupports(const WeightOnlyDesc &q) {
  if (!(q.bits == 4 || q.bits == 8) || !q.isSigned || !q.symmetric || q.hasZeros)
    return false;
  if (q.rows <= 0 || q.cols <= 0)
    return false;
  if (q.gran == 2 && (q.group <= 0 || q.group % chunkOf(q) != 0 || q.cols % q.group != 0))
    return false;
  return true;
}

FailureOr<Value> lowerWeightOnlyLinear(OpBuilder &b, Location l, const WeightOnlyDesc &q,
                                       Value x, Value bias, RankedTensorType rt,
                                       const WeightOnlyParams &p) {
  if (!p.fused || !weightOnlyKernelSupports(q))
    return failure();
  if (!weightOperandsSupported(q, x, bias, rt))
    return failure();
  // i16Input rounds x per group (groups contiguous in xp: the chunk divides
  // them, weightOnlyKernelSupports).
  if (p.i16Input && q.gran != 2)
    return failure();
  auto codesT = cast<RankedTensorType>(q.codes.getType());
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), i8 = b.getI8Type();
  const int64_t N = q.rows, K = q.cols, C = chunkOf(q), H = kLanes;
  const int64_t Kp = (K + C - 1) / C * C;
  // NR: the tile's rows; set per forall below (decode's tiles are larger).
  int64_t NR = std::min<int64_t>(p.tileN, N);
  const int64_t MR = p.tileM;
  const int64_t G = q.gran == 2 ? q.group : Kp;
  const int64_t NG = q.gran == 2 ? K / q.group : 1, CPG = G / C;
  const bool i4 = q.bits == 4;
  const bool codesInBounds = (q.bits == 4 ? (K % 32 == 0) : (K % 16 == 0));
  auto ci = [&](OpBuilder &nb, Location nl, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(nb, nl, v);
  };
  auto cf = [&](OpBuilder &nb, Location nl, double v) -> Value {
    return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(v));
  };
  auto vf = VectorType::get({H}, f32);
  auto vi = VectorType::get({H}, i32);

  // x as [M, K] (M = the product of the leading dims): no reshape ops, the
  // generics below index x and the result with the flattened token index.
  Tokens tk = flattenTokens(b, l, x);
  Value M = tk.M;


  // bf16 inputs (qquant.linear {bf16_input}) on AVX512-BF16, 4-bit codes:
  // single-token blocks multiply with vdpbf16ps (32 products a step, exact
  // in f32) instead of converting every code to f32. A code n in [-8, 7] as
  // bfloat16 is one integer op: the 16-bit word 0x4300 | (n + 8) is exactly
  // 136 + n (0x43 00 = 128, the low 4 mantissa bits count ones), so
  // 0x4308 ^ (byte & 0xF) and 0x4308 ^ (byte >> 4) are the low and high
  // nibbles' (136 + n). Per group g: sum (136 + n_k) x_k - 136 sum x_k, the
  // second term per token and group from xb below (negT, exact products)
  // and started in lane 0 of the group's accumulator, then * s[row, g].
  // The bf16 rows xb are x packed by 64 [32 even k | 32 odd k], so word j
  // of a 32-byte step's codes (the nibbles of k = 2j, 2j + 1) meets x[2j]
  // in the low half and x[2j + 1] in the high half. Only the tokens that
  // go one by one ([mFull, M): decode's token, a prompt's remainder past
  // the blocks of MR) are packed; row r of xb and negT is token mFull + r.
  const bool bf16Dot = i4 && p.bf16Input && p.avx512bf16 && K % 64 == 0 && (q.gran != 2 || q.group % 64 == 0);
  //
  // Groups (or rows, per channel) of a multiple of 128 take 128 k a step:
  // the 64 code bytes load as 32 16-bit words, word j holding the nibbles
  // of k = 4j .. 4j + 3 at bits 0, 4, 8, 12, so ((w >> 4t) & 0xF) ^ 0x4308
  // is plane t's (136 + n) with no byte-to-word widening (11 integer ops per
  // 128 codes instead of 16), against xb packed by 128 in 4 planes
  // [x(4j) | x(4j + 1) | x(4j + 2) | x(4j + 3)].
  // (bf16Dot has K % 64 == 0, so Kp = K: the groups are G, NG as above.)
  //
  // int16 inputs (qquant.linear {i16_input}) on AVX512-VNNI, 4-bit codes in
  // groups of a multiple of 64: the same steps with integer words. x is
  // quantized to int16 per group here (s_x = amax / 32767, the reference's
  // codes and scale; LowerONNXToLinalg.cpp hands the kernel x itself). A
  // code n in [-8, 7] is
  // ((w >> 4t) & 0xF) ^ 8 = n + 8 in [0, 15], and vpdpwssd sums
  // (n + 8) * xq_k in i32 lanes (exact: |sum| < 2^31 for groups up to 4 K);
  // each group's accumulator starts from -8 sum xq_k (negI, lane 0), is
  // converted once, and scaled once by s_w[row, g] * s_x[g]. Against
  // vdpbf16ps: 3x the dot throughput on Sapphire Rapids and one f32
  // conversion and scale per group; x keeps 15 bits per group instead of
  // bf16's 8 per element.
  // (bf16_input and i16_input exclude each other: the op's verifier. The
  // group divides K: weightOnlyKernelSupports.)
  const bool i16Dot = i4 && p.i16Input && p.vnni && q.gran == 2 && q.group % 64 == 0;
  const bool dot16 = bf16Dot || i16Dot;
  const int64_t BC = G % 128 == 0 ? 128 : 64, CPGB = G / BC;
  // Single tokens are [mFull, M) (row r of xb / xi and their per-group
  // tensors is token mFull + r).
  Value mFull = dot16 ? blockedTokens(b, l, M, MR) : Value();
  Value xb, negT, xi, sxI, negI;
  if (i16Dot) {
    // One vectorized pass per single token and group (the scalar generics it
    // replaces were ~6 % of w4a16-g128-i16's decode, the amax a serial
    // chain): the group's G values of x, their amax, s_x = amax / 32767
    // (sxI), the codes (the reference's quantizeToCode), -8 x their sum
    // (negI), and the codes in the steps' plane order (xi: per BC, element
    // t * 32 + i is k = (BC / 32) * i + t, packActivations' order).
    Type i16 = b.getI16Type();
    Value rowsB = arith::SubIOp::create(b, l, M, mFull);
    auto gT = [&](Type e) { return RankedTensorType::get({ShapedType::kDynamic, NG}, e); };
    auto xiT = RankedTensorType::get({ShapedType::kDynamic, K}, i16);
    Value xi0 = tensor::EmptyOp::create(b, l, xiT, ValueRange{rowsB});
    Value sx0 = tensor::EmptyOp::create(b, l, gT(f32), ValueRange{rowsB});
    Value ng0 = tensor::EmptyOp::create(b, l, gT(i32), ValueRange{rowsB});
    auto vG = VectorType::get({G}, f32), vGi = VectorType::get({G}, i16), vG32 = VectorType::get({G}, i32);
    auto vB = VectorType::get({BC}, i16);
    const int64_t planes = BC / 32;
    SmallVector<int64_t> perm;
    for (int64_t t = 0; t < planes; ++t)
      for (int64_t i = 0; i < 32; ++i)
        perm.push_back(planes * i + t);
    auto rLoop = scf::ForOp::create(
        b, l, ci(b, l, 0), rowsB, ci(b, l, 1), ValueRange{xi0, sx0, ng0},
        [&](OpBuilder &rb, Location rl, Value r, ValueRange rt0) {
          SmallVector<Value> xIdx = tk.unflatten(rb, rl, arith::AddIOp::create(rb, rl, r, mFull));
          auto gLoop = scf::ForOp::create(
              rb, rl, ci(rb, rl, 0), ci(rb, rl, NG), ci(rb, rl, 1), rt0,
              [&](OpBuilder &gb, Location gl, Value g, ValueRange t0) {
                Value k0 = arith::MulIOp::create(gb, gl, g, ci(gb, gl, G));
                SmallVector<Value> idx(xIdx);
                idx.push_back(k0);
                Value xv = vector::TransferReadOp::create(gb, gl, vG, x, idx, cf(gb, gl, 0.0), ArrayRef<bool>{true});
                Value amax = vector::ReductionOp::create(gb, gl, vector::CombiningKind::MAXIMUMF,
                                                         math::AbsFOp::create(gb, gl, xv));
                Value sc = arith::DivFOp::create(gb, gl, amax, cf(gb, gl, 32767.0));
                Value codes = quantizeToCode(gb, gl, xv, sc, 32767.0, vGi);
                Value sum = vector::ReductionOp::create(gb, gl, vector::CombiningKind::ADD,
                                                        arith::ExtSIOp::create(gb, gl, vG32, codes));
                Value neg = arith::MulIOp::create(gb, gl, sum, arith::ConstantOp::create(gb, gl, gb.getI32IntegerAttr(-8)));
                Value xiAcc = t0[0];
                for (int64_t c = 0; c < G / BC; ++c) {
                  SmallVector<int64_t> pc;
                  for (int64_t v : perm)
                    pc.push_back(c * BC + v);
                  Value part = vector::ShuffleOp::create(gb, gl, vB, codes, codes, pc);
                  Value kc = arith::AddIOp::create(gb, gl, k0, ci(gb, gl, c * BC));
                  xiAcc = vector::TransferWriteOp::create(gb, gl, part, xiAcc, ValueRange{r, kc}, ArrayRef<bool>{true})
                              .getResult();
                }
                Value sxT = tensor::InsertOp::create(gb, gl, sc, t0[1], ValueRange{r, g});
                Value ngT = tensor::InsertOp::create(gb, gl, neg, t0[2], ValueRange{r, g});
                scf::YieldOp::create(gb, gl, ValueRange{xiAcc, sxT, ngT});
              });
          scf::YieldOp::create(rb, rl, gLoop.getResults());
        });
    xi = rLoop.getResult(0);
    sxI = rLoop.getResult(1);
    negI = rLoop.getResult(2);
  }
  if (bf16Dot) {
    MLIRContext *ctx = b.getContext();
    xb = packActivations(b, l, x, tk, K, BC, BC / 32, mFull, b.getBF16Type());
    auto id2 = AffineMap::getMultiDimIdentityMap(2, ctx);
    auto tT = RankedTensorType::get({ShapedType::kDynamic, NG}, f32);
    Value rowsB = tensor::DimOp::create(b, l, xb, 0);
    Value t0 = linalg::FillOp::create(b, l, ValueRange{cf(b, l, 0.0)},
                                      ValueRange{tensor::EmptyOp::create(b, l, tT, ValueRange{rowsB}).getResult()})
                   .getResult(0);
    negT = linalg::GenericOp::create(
               b, l, TypeRange{tT}, ValueRange{xb}, ValueRange{t0},
               ArrayRef<AffineMap>{id2, AffineMap::get(2, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx).floorDiv(G)}, ctx)},
               SmallVector<utils::IteratorType>{utils::IteratorType::parallel, utils::IteratorType::reduction},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value xv = arith::ExtFOp::create(nb, nl, f32, a[0]);
                 Value v = arith::MulFOp::create(nb, nl, xv, cf(nb, nl, -136.0));
                 linalg::YieldOp::create(nb, nl, arith::AddFOp::create(nb, nl, a[1], v).getResult());
               })
               .getResult(0);
  }

  // xp: [M, Kp], padded with 0 and (i4) each chunk reordered [even | odd];
  // only the blocks of tokens [0, mFull) where single tokens take dotRow
  // (below bufferM: the buffered prefill takes every token from xp).
  // With i16Input, x quantized to int16 and dequantized per group
  // (qquant.linear {i16_input}'s rounding; the chunks divide the groups, so
  // packing first is the same). The result starts from the bias (or 0).
  Value xpRows;
  if (dot16) {
    xpRows = mFull;
    if (p.bufferM > 0)
      xpRows = arith::SelectOp::create(b, l, arith::CmpIOp::create(b, l, arith::CmpIPredicate::uge, M, ci(b, l, p.bufferM)),
                                       M, mFull);
  }
  Value xp = packActivations(b, l, x, tk, K, C, i4 ? 2 : 1, {}, {}, xpRows);
  if (p.i16Input)
    xp = quantDequantBlocksI16(b, l, xp, G);
  Value init = linearInitMN(b, l, bias, tk, N);

  // Decode's row streams prefetch their codes (rowLoop: dotRow, and accsFor
  // with one row and token).
  RowPrefetcher pf = RowPrefetcher::create(b, l, q.codes, p.prefetch);

  // Tiles of NR output channels; `rows` are the tile's rows clamped into
  // the weight (a last partial tile recomputes row N-1, not written).
  // Decode (M < MR: every token single, singlesOnly) tiles tileNDecode rows
  // where single tokens go row by row; the tile's fixed costs (the result
  // slice, the row loop's set-up and its vector of sums) then spread over
  // more rows. Prefill keeps tileN (its blocks hold NR x MR accumulators).
  bool singlesOnly = false;
  auto body = [&](OpBuilder &b, Location l, Value slice, Value n0, ArrayRef<Value> rows) -> Value {
    auto scaleAt = [&](OpBuilder &nb, Location nl, Value row, Value g) { return weightScaleAt(nb, nl, q, row, g); };
    // The scale of (row, group g) as the vectors the dequantization multiplies
    // by: i4, the low-nibble (v << 28) and high-nibble (v & -16) factors
    // 2^-28 and 2^-4 folded in (lo, hi); i8, the scale itself (lo).
    auto scaleVecs = [&](OpBuilder &nb, Location nl, Value row, Value g, SmallVector<Value> &lo,
                         SmallVector<Value> &hi) {
      Value s = scaleAt(nb, nl, row, g);
      if (i4) {
        lo.push_back(vector::BroadcastOp::create(nb, nl, vf, arith::MulFOp::create(nb, nl, s, cf(nb, nl, std::ldexp(1.0, -28)))));
        hi.push_back(vector::BroadcastOp::create(nb, nl, vf, arith::MulFOp::create(nb, nl, s, cf(nb, nl, 1.0 / 16))));
      } else {
        lo.push_back(vector::BroadcastOp::create(nb, nl, vf, s));
      }
    };
    // Reduce the NR x mr accumulators, (scale,) add into rows mrow of the tile.
    auto writeRows = [&](OpBuilder &ob, Location ol, ValueRange accs, ArrayRef<Value> mrow, int64_t mr,
                         Value tile, bool scaleAfter) -> Value {
      SmallVector<Value> post;
      if (scaleAfter)
        for (int64_t i = 0; i < NR; ++i)
          post.push_back(scaleAt(ob, ol, rows[i], ci(ob, ol, 0)));
      SmallVector<Value> vals;
      for (int64_t i = 0; i < NR; ++i)
        for (int64_t j = 0; j < mr; ++j) {
          Value s = vector::ReductionOp::create(ob, ol, vector::CombiningKind::ADD, accs[i * mr + j]);
          vals.push_back(scaleAfter ? arith::MulFOp::create(ob, ol, s, post[i]).getResult() : s);
        }
      return addToTileRows(ob, ol, tile, vals, mrow, NR);
    };
    auto rowsOf = [&](OpBuilder &ob, Location ol, Value m0, int64_t mr) {
      SmallVector<Value> mrow;
      for (int64_t j = 0; j < mr; ++j)
        mrow.push_back(j == 0 ? m0 : arith::AddIOp::create(ob, ol, m0, ci(ob, ol, j)).getResult());
      return mrow;
    };
    // The NR rows' codes of chunk c of group g, dequantized (times the
    // scale, the i4 nibble factors folded in): i4 -> (even, odd) halves,
    // i8 -> one vector.
    // `lanes` code bytes of `row` from byte kb, as i8.
    auto loadCodeBytes = [&](OpBuilder &cb, Location cl, Value row, Value kb, int64_t lanes, bool inBounds) -> Value {
      auto vt = VectorType::get({lanes}, codesT.getElementType()), vs = VectorType::get({lanes}, i8);
      Value bpad = arith::ConstantOp::create(cb, cl, cb.getI8IntegerAttr(0));
      if (codesT.getElementType() != i8)
        bpad = UnrealizedConversionCastOp::create(cb, cl, TypeRange{codesT.getElementType()}, ValueRange{bpad})
                   .getResult(0);
      Value by = vector::TransferReadOp::create(cb, cl, vt, q.codes, ValueRange{row, kb}, bpad, ArrayRef<bool>{inBounds});
      if (vt != vs)
        by = UnrealizedConversionCastOp::create(cb, cl, TypeRange{vs}, ValueRange{by}).getResult(0);
      return by;
    };
    auto loadCodes = [&](OpBuilder &cb, Location cl, Value row, Value kb) -> Value {
      return arith::ExtSIOp::create(cb, cl, vi, loadCodeBytes(cb, cl, row, kb, H, codesInBounds));
    };
    // Per-element scale inside the loop (i4 always: the nibble factors; i8
    // only per group); else after the reduction.
    const bool scaleInLoop = i4 || q.gran == 2;

    // One block of `mr` tokens from m0: returns the updated tile tensor.
    auto block = [&](OpBuilder &ob, Location ol, Value m0, int64_t mr, Value tile) -> Value {
      Value zero = arith::ConstantOp::create(ob, ol, vf, DenseElementsAttr::get(vf, ob.getF32FloatAttr(0.0f)));
      SmallVector<Value> mrow = rowsOf(ob, ol, m0, mr);
      // The accumulators of the rows `rs` of the tile (rs.size() x mr).
      auto accsFor = [&](OpBuilder &ob, Location ol, ArrayRef<Value> rv) -> SmallVector<Value> {
      const int64_t nr = rv.size();
      // Folded scales: the chunks of a group accumulate the unscaled codes
      // (i4: the low and high nibble factors in two accumulators), and the
      // group's scale multiplies the sums once, at its end; that saves the
      // 2 (i4) or 1 (i8) vmulps per chunk and row that made the decode
      // loop ALU-bound. It needs (i4 ? 3 : 2) x nr x mr live vectors, so
      // only small blocks (decode) fold.
      const bool fold = scaleInLoop && nr * mr * (i4 ? 3 : 2) <= 12;
      const int64_t parts = fold && i4 ? 2 : 1; // inner accumulators per (i, j)
      // One row and token (decode's rowwise GEMV) without folded scales
      // (per channel / tensor: one group, K / 16 chunks): U independent sets
      // of accumulators over the chunks, summed at the end. With one set
      // each FMA waited for the previous one (4 cycles per 16 i8 codes: the
      // i8 LM head ran at ~18 GB/s, latency-bound). Folded groups restart
      // their accumulators every group already; more sets there were slower
      // (register pressure: w4a16-g128 down / gate-up +15 % / +6 % samples).
      const int64_t U = nr * mr > 1 || fold ? 1 : CPG % 4 == 0 ? 4 : CPG % 2 == 0 ? 2 : 1;
      const int64_t S = nr * mr * parts; // accumulators per set
      SmallVector<Value> accInit(nr * mr, zero);
      auto gLoop = scf::ForOp::create(
          ob, ol, ci(ob, ol, 0), ci(ob, ol, NG), ci(ob, ol, 1), accInit,
          [&](OpBuilder &gb, Location gl, Value g, ValueRange gaccs) {
            SmallVector<Value> sLo, sHi;
            if (scaleInLoop)
              for (int64_t i = 0; i < nr; ++i)
                scaleVecs(gb, gl, rv[i], g, sLo, sHi);
            Value gk0 = arith::MulIOp::create(gb, gl, g, ci(gb, gl, G));
            // Set 0 starts from the group's accumulators (unfolded) or 0.
            SmallVector<Value> cInit = fold ? SmallVector<Value>(S, zero)
                                            : SmallVector<Value>(gaccs.begin(), gaccs.end());
            cInit.append((U - 1) * S, zero);
            auto cLoop = scf::ForOp::create(
                gb, gl, ci(gb, gl, 0), ci(gb, gl, CPG), ci(gb, gl, U), cInit,
                [&](OpBuilder &cb, Location cl, Value c0, ValueRange accsU) {
                  SmallVector<Value> nextU(accsU.begin(), accsU.end());
                  for (int64_t u = 0; u < U; ++u) {
                  Value c = u == 0 ? c0 : arith::AddIOp::create(cb, cl, c0, ci(cb, cl, u)).getResult();
                  MutableArrayRef<Value> next(nextU.data() + u * S, S);
                  Value k0 = arith::AddIOp::create(cb, cl, gk0, arith::MulIOp::create(cb, cl, c, ci(cb, cl, C)));
                  Value kb = i4 ? arith::DivUIOp::create(cb, cl, k0, ci(cb, cl, 2)).getResult() : k0;
                  if (nr * mr == 1 && u == 0)
                    pf.at(cb, cl, rv[0], kb);
                  Value fpad = cf(cb, cl, 0.0);
                  SmallVector<Value> xa, xb;
                  for (int64_t j = 0; j < mr; ++j) {
                    xa.push_back(vector::TransferReadOp::create(cb, cl, vf, xp, ValueRange{mrow[j], k0}, fpad,
                                                                ArrayRef<bool>{true}));
                    if (i4)
                      xb.push_back(vector::TransferReadOp::create(
                          cb, cl, vf, xp, ValueRange{mrow[j], arith::AddIOp::create(cb, cl, k0, ci(cb, cl, H))}, fpad,
                          ArrayRef<bool>{true}));
                  }
                  for (int64_t i = 0; i < nr; ++i) {
                    Value v = loadCodes(cb, cl, rv[i], kb);
                    if (i4) {
                      Value c28 = arith::ConstantOp::create(cb, cl, vi, DenseElementsAttr::get(vi, cb.getI32IntegerAttr(28)));
                      Value m16 = arith::ConstantOp::create(cb, cl, vi, DenseElementsAttr::get(vi, cb.getI32IntegerAttr(-16)));
                      Value lo = arith::SIToFPOp::create(cb, cl, vf, arith::ShLIOp::create(cb, cl, v, c28));
                      Value hi = arith::SIToFPOp::create(cb, cl, vf, arith::AndIOp::create(cb, cl, v, m16));
                      if (fold) {
                        for (int64_t j = 0; j < mr; ++j) {
                          int64_t a = (i * mr + j) * 2;
                          next[a] = vector::FMAOp::create(cb, cl, xa[j], lo, next[a]);
                          next[a + 1] = vector::FMAOp::create(cb, cl, xb[j], hi, next[a + 1]);
                        }
                        continue;
                      }
                      lo = arith::MulFOp::create(cb, cl, lo, sLo[i]);
                      hi = arith::MulFOp::create(cb, cl, hi, sHi[i]);
                      for (int64_t j = 0; j < mr; ++j) {
                        Value a = vector::FMAOp::create(cb, cl, xa[j], lo, next[i * mr + j]);
                        next[i * mr + j] = vector::FMAOp::create(cb, cl, xb[j], hi, a);
                      }
                    } else {
                      Value w = arith::SIToFPOp::create(cb, cl, vf, v);
                      if (scaleInLoop && !fold)
                        w = arith::MulFOp::create(cb, cl, w, sLo[i]);
                      for (int64_t j = 0; j < mr; ++j)
                        next[i * mr + j] = vector::FMAOp::create(cb, cl, xa[j], w, next[i * mr + j]);
                    }
                  }
                  }
                  scf::YieldOp::create(cb, cl, nextU);
                });
            // The sets summed (set 0 first, then 1, ...).
            SmallVector<Value> sums(cLoop.getResults().begin(), cLoop.getResults().begin() + S);
            for (int64_t u = 1; u < U; ++u)
              for (int64_t a = 0; a < S; ++a)
                sums[a] = arith::AddFOp::create(gb, gl, sums[a], cLoop.getResult(u * S + a));
            if (!fold) {
              scf::YieldOp::create(gb, gl, sums);
              return;
            }
            SmallVector<Value> next;
            for (int64_t i = 0; i < nr; ++i)
              for (int64_t j = 0; j < mr; ++j) {
                int64_t a = (i * mr + j) * parts;
                Value acc = vector::FMAOp::create(gb, gl, sums[a], sLo[i], gaccs[i * mr + j]);
                if (i4)
                  acc = vector::FMAOp::create(gb, gl, sums[a + 1], sHi[i], acc);
                next.push_back(acc);
              }
            scf::YieldOp::create(gb, gl, next);
          });
      return SmallVector<Value>(gLoop.getResults());
      };
      // The 16-bit dot forms of one token: vdpbf16ps on bf16 words (see
      // bf16Dot; f32 accumulators) or vpdpwssd on int16 words (see i16Dot;
      // i32 accumulators, converted and scaled by s_w * s_x per group). An
      // scf.for over the tile's rows, one row (one stream of codes) at a
      // time, two accumulators per group (planes 0, 2 / 1, 3) and one f32 per
      // row. A loop rather than NR unrolled rows: unrolled, LLVM kept the
      // token's 16-bit rows in registers across the rows and spilled (7 %
      // slower than the f32 kernel); interleaving the NR rows' code streams
      // instead read memory at ~12 GB/s.
      auto dotRow = [&](OpBuilder &rb, Location rl, Value row) -> Value {
        const bool ints = i16Dot;
        Type wt = ints ? Type(rb.getI16Type()) : Type(rb.getBF16Type());
        auto vw = VectorType::get({2 * H}, wt); // a plane of x
        auto vi16 = VectorType::get({2 * H}, rb.getI16Type());
        Value xs = ints ? xi : xb, neg = ints ? negI : negT;
        Value acc0 = ints ? arith::ConstantOp::create(rb, rl, vi, DenseElementsAttr::get(vi, rb.getI32IntegerAttr(0)))
                                .getResult()
                          : zero;
        Value r0 = arith::SubIOp::create(rb, rl, m0, mFull); // m0's row of xs, neg (, sxI)
        auto gLoop = scf::ForOp::create(
            rb, rl, ci(rb, rl, 0), ci(rb, rl, NG), ci(rb, rl, 1), ValueRange{zero},
            [&](OpBuilder &gb, Location gl, Value g, ValueRange gacc) {
              Value t = tensor::ExtractOp::create(gb, gl, neg, ValueRange{r0, g});
              Value start = vector::InsertOp::create(gb, gl, t, acc0, ArrayRef<int64_t>{0});
              Value gk0 = arith::MulIOp::create(gb, gl, g, ci(gb, gl, G));
              auto cLoop = scf::ForOp::create(
                  gb, gl, ci(gb, gl, 0), ci(gb, gl, CPGB), ci(gb, gl, 1), ValueRange{start, acc0},
                  [&](OpBuilder &cb, Location cl, Value c, ValueRange ds) {
                    Value k0 = arith::AddIOp::create(cb, cl, gk0, arith::MulIOp::create(cb, cl, c, ci(cb, cl, BC)));
                    Value kb = arith::DivUIOp::create(cb, cl, k0, ci(cb, cl, 2));
                    pf.at(cb, cl, row, kb);
                    Value wpad = arith::ConstantOp::create(cb, cl, wt, cb.getZeroAttr(wt));
                    // Plane t of the step: xs[r0, k0 + 32 t, +32).
                    auto xPlane = [&](int64_t t) -> Value {
                      Value kt = t == 0 ? k0 : arith::AddIOp::create(cb, cl, k0, ci(cb, cl, 2 * H * t)).getResult();
                      return vector::TransferReadOp::create(cb, cl, vw, xs, ValueRange{r0, kt}, wpad, ArrayRef<bool>{true});
                    };
                    auto splat = [&](int64_t v) -> Value {
                      return arith::ConstantOp::create(cb, cl, vi16, DenseElementsAttr::get(vi16, cb.getI16IntegerAttr(v)));
                    };
                    auto dp = [&](Value acc, Value a, Value xv) -> Value {
                      if (ints)
                        return LLVM::CallIntrinsicOp::create(cb, cl, vi, cb.getStringAttr(kVpdpwssd512),
                                                             ValueRange{acc, a, xv})
                            .getResult(0);
                      Value ab = arith::BitcastOp::create(cb, cl, vw, a);
                      return LLVM::CallIntrinsicOp::create(cb, cl, vf, cb.getStringAttr(kDpbf16ps512),
                                                           ValueRange{acc, ab, xv})
                          .getResult(0);
                    };
                    // (w >> shift) & 0xF as the word of n + 8 (int16) or the
                    // bf16 word of 136 + n (no mask where the shift leaves
                    // only the nibble).
                    auto nib = [&](Value w, int64_t shift, bool mask) -> Value {
                      Value v = shift ? arith::ShRUIOp::create(cb, cl, w, splat(shift)).getResult() : w;
                      if (mask)
                        v = arith::AndIOp::create(cb, cl, v, splat(15));
                      return arith::XOrIOp::create(cb, cl, v, splat(ints ? 8 : 0x4308));
                    };
                    if (BC == 128) {
                      Value w = vector::BitCastOp::create(cb, cl, vi16, loadCodeBytes(cb, cl, row, kb, 4 * H, true));
                      Value d0 = dp(dp(ds[0], nib(w, 0, true), xPlane(0)), nib(w, 8, true), xPlane(2));
                      Value d1 = dp(dp(ds[1], nib(w, 4, true), xPlane(1)), nib(w, 12, false), xPlane(3));
                      scf::YieldOp::create(cb, cl, ValueRange{d0, d1});
                      return;
                    }
                    Value w = arith::ExtUIOp::create(cb, cl, vi16, loadCodeBytes(cb, cl, row, kb, 2 * H, true));
                    scf::YieldOp::create(cb, cl, ValueRange{dp(ds[0], nib(w, 0, true), xPlane(0)), dp(ds[1], nib(w, 4, false), xPlane(1))});
                  });
              Value d = ints ? arith::AddIOp::create(gb, gl, cLoop.getResult(0), cLoop.getResult(1)).getResult()
                             : arith::AddFOp::create(gb, gl, cLoop.getResult(0), cLoop.getResult(1)).getResult();
              Value s = scaleAt(gb, gl, row, g);
              if (ints)
                s = arith::MulFOp::create(gb, gl, s, tensor::ExtractOp::create(gb, gl, sxI, ValueRange{r0, g}));
              Value sv = vector::BroadcastOp::create(gb, gl, vf, s);
              if (ints)
                d = arith::SIToFPOp::create(gb, gl, vf, d);
              scf::YieldOp::create(gb, gl, ValueRange{vector::FMAOp::create(gb, gl, d, sv, gacc[0]).getResult()});
            });
        return gLoop.getResult(0);
      };
      // Single tokens, rows one at a time (p.rowwise; always for bf16Dot, i16Dot):
      // an scf.for over the tile's rows, each row's dot product reduced to
      // its output. A loop rather than NR unrolled rows: unrolled, LLVM kept
      // the token's activation chunks in registers across the rows and
      // spilled them.
      auto rowLoop = [&](Value tile) -> Value {
        auto vnr = VectorType::get({NR}, f32);
        Value sums0 = arith::ConstantOp::create(ob, ol, vnr, DenseElementsAttr::get(vnr, ob.getF32FloatAttr(0.0f)));
        auto rLoop = scf::ForOp::create(
            ob, ol, ci(ob, ol, 0), ci(ob, ol, NR), ci(ob, ol, 1), ValueRange{sums0},
            [&](OpBuilder &rb, Location rl, Value i, ValueRange rsums) {
              Value row = arith::MinSIOp::create(rb, rl, arith::AddIOp::create(rb, rl, n0, i), ci(rb, rl, N - 1));
              Value acc = dot16 ? dotRow(rb, rl, row) : accsFor(rb, rl, ArrayRef<Value>{row})[0];
              Value sum = vector::ReductionOp::create(rb, rl, vector::CombiningKind::ADD, acc);
              if (!scaleInLoop)
                sum = arith::MulFOp::create(rb, rl, sum, scaleAt(rb, rl, row, ci(rb, rl, 0)));
              scf::YieldOp::create(rb, rl, ValueRange{vector::InsertOp::create(rb, rl, sum, rsums[0], ArrayRef<OpFoldResult>{i}).getResult()});
            });
        SmallVector<Value> vals;
        for (int64_t i = 0; i < NR; ++i)
          vals.push_back(vector::ExtractOp::create(ob, ol, rLoop.getResult(0), ArrayRef<int64_t>{i}));
        return addToTileRows(ob, ol, tile, vals, mrow, NR);
      };
      if (mr == 1 && (dot16 || p.rowwise))
        return rowLoop(tile);
      // Blocks of tokens (and single tokens with rowwise = false): the NR
      // rows together.
      return writeRows(ob, ol, accsFor(ob, ol, rows), mrow, mr, tile, !scaleInLoop);
    };

    auto mLoops = [&](OpBuilder &ob, Location ol, Value tile, TokenBlockFn blk) {
      return tokenBlocks(ob, ol, M, singlesOnly ? 1 : MR, tile, blk);
    };
    Value tile = slice;
    if (p.bufferM > 0 && !singlesOnly) {
      // Prefill (M >= bufferM): the tile's NR rows are dequantized once into
      // an f32 [NR, Kp] buffer (in xp's chunk order, scales applied), then an
      // f32 NR x MR register-blocked dot kernel reads it for every block of
      // tokens. Decode (fewer tokens) dequantizes in registers per block.
      Value useBuf = arith::CmpIOp::create(b, l, arith::CmpIPredicate::uge, M, ci(b, l, p.bufferM));
      auto ifOp = scf::IfOp::create(
          b, l, useBuf,
          [&](OpBuilder &ib, Location il) {
            auto bufT = RankedTensorType::get({NR, Kp}, f32);
            Value buf0 = tensor::EmptyOp::create(ib, il, bufT, ValueRange{});
            auto gl = scf::ForOp::create(
                ib, il, ci(ib, il, 0), ci(ib, il, NG), ci(ib, il, 1), ValueRange{buf0},
                [&](OpBuilder &gb, Location gl_, Value g, ValueRange gb0) {
                  SmallVector<Value> sA, sB;
                  for (int64_t i = 0; i < NR; ++i)
                    scaleVecs(gb, gl_, rows[i], g, sA, sB);
                  Value gk0 = arith::MulIOp::create(gb, gl_, g, ci(gb, gl_, G));
                  auto cLoop = scf::ForOp::create(
                      gb, gl_, ci(gb, gl_, 0), ci(gb, gl_, CPG), ci(gb, gl_, 1), gb0,
                      [&](OpBuilder &cb, Location cl, Value c, ValueRange cb0) {
                        Value k0 = arith::AddIOp::create(cb, cl, gk0, arith::MulIOp::create(cb, cl, c, ci(cb, cl, C)));
                        Value kb = i4 ? arith::DivUIOp::create(cb, cl, k0, ci(cb, cl, 2)).getResult() : k0;
                        Value bufc = cb0[0];
                        for (int64_t i = 0; i < NR; ++i) {
                          Value v = loadCodes(cb, cl, rows[i], kb);
                          if (i4) {
                            Value c28 = arith::ConstantOp::create(cb, cl, vi, DenseElementsAttr::get(vi, cb.getI32IntegerAttr(28)));
                            Value m16 = arith::ConstantOp::create(cb, cl, vi, DenseElementsAttr::get(vi, cb.getI32IntegerAttr(-16)));
                            Value lo = arith::MulFOp::create(cb, cl, arith::SIToFPOp::create(cb, cl, vf, arith::ShLIOp::create(cb, cl, v, c28)), sA[i]);
                            Value hi = arith::MulFOp::create(cb, cl, arith::SIToFPOp::create(cb, cl, vf, arith::AndIOp::create(cb, cl, v, m16)), sB[i]);
                            bufc = vector::TransferWriteOp::create(cb, cl, lo, bufc, ValueRange{ci(cb, cl, i), k0}, ArrayRef<bool>{true}).getResult();
                            bufc = vector::TransferWriteOp::create(cb, cl, hi, bufc,
                                                                   ValueRange{ci(cb, cl, i), arith::AddIOp::create(cb, cl, k0, ci(cb, cl, H))},
                                                                   ArrayRef<bool>{true}).getResult();
                          } else {
                            Value w = arith::MulFOp::create(cb, cl, arith::SIToFPOp::create(cb, cl, vf, v), sA[i]);
                            bufc = vector::TransferWriteOp::create(cb, cl, w, bufc, ValueRange{ci(cb, cl, i), k0}, ArrayRef<bool>{true}).getResult();
                          }
                        }
                        scf::YieldOp::create(cb, cl, bufc);
                      });
                  scf::YieldOp::create(gb, gl_, cLoop.getResults());
                });
            Value buf = gl.getResult(0);
            auto blockBuf = [&](OpBuilder &ob, Location ol, Value m0, int64_t mr, Value t) -> Value {
              SmallVector<Value> mrow = rowsOf(ob, ol, m0, mr);
              Value zero = arith::ConstantOp::create(ob, ol, vf, DenseElementsAttr::get(vf, ob.getF32FloatAttr(0.0f)));
              SmallVector<Value> accInit(NR * mr, zero);
              auto kl = scf::ForOp::create(
                  ob, ol, ci(ob, ol, 0), ci(ob, ol, Kp), ci(ob, ol, H), accInit,
                  [&](OpBuilder &kb_, Location kl_, Value k, ValueRange accs) {
                    Value fpad = cf(kb_, kl_, 0.0);
                    SmallVector<Value> xs, ws, next(accs.begin(), accs.end());
                    for (int64_t j = 0; j < mr; ++j)
                      xs.push_back(vector::TransferReadOp::create(kb_, kl_, vf, xp, ValueRange{mrow[j], k}, fpad, ArrayRef<bool>{true}));
                    for (int64_t i = 0; i < NR; ++i) {
                      Value w = vector::TransferReadOp::create(kb_, kl_, vf, buf, ValueRange{ci(kb_, kl_, i), k}, fpad, ArrayRef<bool>{true});
                      for (int64_t j = 0; j < mr; ++j)
                        next[i * mr + j] = vector::FMAOp::create(kb_, kl_, xs[j], w, next[i * mr + j]);
                    }
                    scf::YieldOp::create(kb_, kl_, next);
                  });
              return writeRows(ob, ol, kl.getResults(), mrow, mr, t, false);
            };
            scf::YieldOp::create(ib, il, mLoops(ib, il, tile, blockBuf));
          },
          [&](OpBuilder &eb, Location el) { scf::YieldOp::create(eb, el, mLoops(eb, el, tile, block)); });
      tile = ifOp.getResult(0);
    } else {
      tile = mLoops(b, l, tile, block);
    }
    return tile;
  };
  const int64_t NRD = std::min<int64_t>(std::max<int64_t>(p.tileNDecode, 1), N), NR0 = NR;
  Value y;
  if ((dot16 || p.rowwise) && NRD != NR0 && MR > 1) {
    Value dec = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, M, ci(b, l, MR));
    auto ifOp = scf::IfOp::create(
        b, l, dec,
        [&](OpBuilder &ib, Location il) {
          NR = NRD, singlesOnly = true;
          scf::YieldOp::create(ib, il, forEachChannelTile(ib, il, init, M, N, NR, NR, body));
        },
        [&](OpBuilder &eb, Location el) {
          NR = NR0, singlesOnly = false;
          scf::YieldOp::create(eb, el, forEachChannelTile(eb, el, init, M, N, NR, NR, body));
        });
    y = ifOp.getResult(0);
  } else {
    y = forEachChannelTile(b, l, init, M, N, NR, NR, body);
  }
  return restoreLeading(b, l, y, rt, tk);
}

//===----------------------------------------------------------------------===//
// Int8 activations (W8A8, W4A8)
//===----------------------------------------------------------------------===//

namespace {
constexpr const char *kVpdpbusd512 = "llvm.x86.avx512.vpdpbusd.512";
constexpr const char *kVpdpbusd256 = "llvm.x86.avx512.vpdpbusd.256";

/// The memory effects of llvm.call_intrinsic, which declares none (unknown
/// effects: the buffer deallocation pipeline of qwen-compile refuses such
/// ops): the kernels' intrinsics (isPureKernelIntrinsic) are pure; any other
/// intrinsic conservatively reads and writes memory.
struct CallIntrinsicEffects
    : public MemoryEffectOpInterface::ExternalModel<CallIntrinsicEffects, LLVM::CallIntrinsicOp> {
  void getEffects(Operation *op, SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>> &effects) const {
    StringRef name = cast<LLVM::CallIntrinsicOp>(op).getIntrin();
    if (isPureKernelIntrinsic(name))
      return;
    effects.emplace_back(MemoryEffects::Read::get());
    effects.emplace_back(MemoryEffects::Write::get());
  }
};

struct Int8KernelExtension : public DialectExtension<Int8KernelExtension, LLVM::LLVMDialect> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(Int8KernelExtension)
  void apply(MLIRContext *ctx, LLVM::LLVMDialect *) const final {
    LLVM::CallIntrinsicOp::attachInterface<CallIntrinsicEffects>(*ctx);
  }
};

/// Int8 elements per inner step: 64 (a zmm of bytes), or 32
/// (a ymm) for groups that are not a multiple of 64.
int64_t int8ChunkOf(const WeightOnlyDesc &q) { return q.gran == 2 && q.group % 64 != 0 ? 32 : 64; }
} // namespace

bool isPureKernelIntrinsic(StringRef name) {
  return name == kVpdpbusd512 || name == kVpdpbusd256 || name == kPermps512 || name == kPermps256 ||
         name == kPermt2ps512 || name == kDpbf16ps512 || name == kVpdpwssd512;
}

void registerQuantKernelExtensions(DialectRegistry &registry) {
  // llvm.call_intrinsic; the row prefetch's bufferization.to_buffer and
  // memref.collapse_shape / memref.prefetch (KernelSupport.h RowPrefetcher).
  registry.insert<LLVM::LLVMDialect, bufferization::BufferizationDialect, memref::MemRefDialect>();
  registry.addExtensions<Int8KernelExtension>();
}

bool int8ActKernelSupports(const WeightOnlyDesc &q) {
  if (!q.isSigned || !q.symmetric || q.hasZeros || q.rows <= 0 || q.cols <= 0)
    return false;
  if (q.bits == 8)
    return q.gran != 2;
  return q.bits == 4 && (q.gran != 2 || (q.group > 0 && q.group % 32 == 0 && q.cols % q.group == 0));
}

/// x [..., K] as [M, K] (rank 2: x itself).
static Value flattenTo2D(OpBuilder &b, Location l, Value x) {
  auto xt = cast<RankedTensorType>(x.getType());
  int64_t r = xt.getRank();
  if (r == 2)
    return x;
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < r; ++i)
    lead.push_back(i);
  return tensor::CollapseShapeOp::create(b, l, x, SmallVector<ReassociationIndices>{lead, {r - 1}});
}

FailureOr<Value> lowerInt8ActLinear(OpBuilder &b, Location l, const WeightOnlyDesc &q, Value x,
                                    Value bias, RankedTensorType rt, std::optional<float> staticScale,
                                    const WeightOnlyParams &p, Value preScale) {
  if (!p.fused || !int8ActKernelSupports(q) ||
      !weightOperandsSupported(q, x, bias, rt, preScale ? b.getI8Type() : Type()))
    return failure();
  if (preScale) {
    auto st = dyn_cast<RankedTensorType>(preScale.getType());
    if (!st || !st.getElementType().isF32() || st.getRank() != cast<RankedTensorType>(x.getType()).getRank())
      return failure();
  }
  auto codesT = cast<RankedTensorType>(q.codes.getType());
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), i8 = b.getI8Type();
  const bool i4 = q.bits == 4, grouped = q.gran == 2;
  const int64_t N = q.rows, K = q.cols, C = int8ChunkOf(q), L = C / 4;
  const int64_t Kp = (K + C - 1) / C * C;
  const int64_t G = grouped ? q.group : Kp, NG = grouped ? K / q.group : 1, CPG = G / C;
  const int64_t NR = std::min<int64_t>(p.tileN, N), MR = p.tileM;
  // The weights are vpdpbusd's unsigned operand: code + wb >= 0 (code ^ 0x80
  // for i8 bytes; nibble ^ 8 for i4); x stays signed. Exactly
  //   sum_k x_k code_k = sum_k x_k (code_k + wb) - wb * sum_k x_k.
  const int64_t wb = i4 ? 8 : 128;
  auto ci = [&](OpBuilder &nb, Location nl, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(nb, nl, v);
  };
  auto cf = [&](OpBuilder &nb, Location nl, float v) -> Value {
    return arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(v));
  };
  auto splat8 = [&](OpBuilder &nb, Location nl, int64_t n, int8_t v) -> Value {
    auto t = VectorType::get({n}, i8);
    return arith::ConstantOp::create(nb, nl, t, DenseElementsAttr::get(t, nb.getI8IntegerAttr(v)));
  };
  auto toF32 = [&](OpBuilder &nb, Location nl, Value v) -> Value {
    return v.getType().isF32() ? v : arith::ExtFOp::create(nb, nl, f32, v).getResult();
  };
  auto vC8 = VectorType::get({C}, i8);
  auto vL32 = VectorType::get({L}, i32);

  Tokens tk = flattenTokens(b, l, x);
  Value M = tk.M;
  SmallVector<Value> dynM = tk.dynM();
  AffineMap id2 = AffineMap::getMultiDimIdentityMap(2, ctx);
  auto par = utils::IteratorType::parallel, red = utils::IteratorType::reduction;
  auto xAt = [&](OpBuilder &nb, Location nl, Value m, Value k) -> Value {
    SmallVector<Value> xi = tk.unflatten(nb, nl, m);
    xi.push_back(k);
    return tensor::ExtractOp::create(nb, nl, x, xi);
  };

  // amax[m] = max(0, max_k |x[m, k]|) (dynamic), as the reference reduces.
  Value amax;
  if (!staticScale && !preScale) {
    auto aT = RankedTensorType::get({tk.Ms}, f32);
    Value a0 = linalg::FillOp::create(b, l, ValueRange{cf(b, l, 0.0f)},
                                      ValueRange{tensor::EmptyOp::create(b, l, aT, dynM).getResult()})
                   .getResult(0);
    // The k extent comes from a dummy [K] operand.
    Value kDummy = tensor::EmptyOp::create(b, l, ArrayRef<int64_t>{K}, i8);
    amax = linalg::GenericOp::create(
               b, l, TypeRange{aT}, ValueRange{kDummy}, ValueRange{a0},
               ArrayRef<AffineMap>{AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx),
                                   AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx)},
               SmallVector<utils::IteratorType>{par, red},
               [&](OpBuilder &nb, Location nl, ValueRange a) {
                 Value v = xAt(nb, nl, linalg::IndexOp::create(nb, nl, 0), linalg::IndexOp::create(nb, nl, 1));
                 Value av = math::AbsFOp::create(nb, nl, v);
                 linalg::YieldOp::create(nb, nl, arith::MaximumFOp::create(nb, nl, a[1], av).getResult());
               })
               .getResult(0);
  }
  // s_x of token m: the reference's f32 ops (amax / 127, or the constant).
  auto sxAt = [&](OpBuilder &nb, Location nl, Value m) -> Value {
    if (staticScale)
      return cf(nb, nl, *staticScale);
    if (preScale) {
      SmallVector<Value> si = tk.unflatten(nb, nl, m);
      si.push_back(ci(nb, nl, 0));
      return tensor::ExtractOp::create(nb, nl, preScale, si).getResult();
    }
    Value a = tensor::ExtractOp::create(nb, nl, amax, ValueRange{m});
    return arith::DivFOp::create(nb, nl, a, cf(nb, nl, 127.0f));
  };

  // xq [M, Kp] i8: q_x, 0 past K; for i4 each chunk of C is reordered
  // [even k | odd k] to meet the unpacked [low nibbles | high nibbles].
  // Given q_x (qlinear): used as it is where the layout is the same (8-bit
  // weights, K a multiple of C), else only copied into the layout.
  auto xqT = RankedTensorType::get({tk.Ms, Kp}, i8);
  const bool asIs = preScale && !i4 && Kp == K;
  Value xq = asIs ? flattenTo2D(b, l, x)
                  : linalg::GenericOp::create(
                 b, l, TypeRange{xqT}, ValueRange{}, ValueRange{tensor::EmptyOp::create(b, l, xqT, dynM).getResult()},
                 ArrayRef<AffineMap>{id2}, SmallVector<utils::IteratorType>{par, par},
                 [&](OpBuilder &nb, Location nl, ValueRange) {
                   Value m = linalg::IndexOp::create(nb, nl, 0);
                   Value k = linalg::IndexOp::create(nb, nl, 1);
                   Value src = k;
                   if (i4) {
                     Value w = arith::RemUIOp::create(nb, nl, k, ci(nb, nl, C));
                     Value base = arith::SubIOp::create(nb, nl, k, w);
                     Value isEven = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, w, ci(nb, nl, C / 2));
                     Value ev = arith::MulIOp::create(nb, nl, w, ci(nb, nl, 2));
                     Value od = arith::SubIOp::create(nb, nl, ev, ci(nb, nl, C - 1));
                     src = arith::AddIOp::create(nb, nl, base, arith::SelectOp::create(nb, nl, isEven, ev, od));
                   }
                   Value in;
                   if (Kp != K) {
                     in = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, src, ci(nb, nl, K));
                     src = arith::MinUIOp::create(nb, nl, src, ci(nb, nl, K - 1));
                   }
                   Value v = preScale ? xAt(nb, nl, m, src)
                                      : quantizeToCode(nb, nl, xAt(nb, nl, m, src), sxAt(nb, nl, m), 127.0, i8);
                   if (in)
                     v = arith::SelectOp::create(nb, nl, in, v,
                                                 arith::ConstantOp::create(nb, nl, nb.getI8IntegerAttr(0)));
                   linalg::YieldOp::create(nb, nl, v);
                 })
                 .getResult(0);

  // xsum [M, NG] i32: sum of q_x over each group (the whole row: NG = 1).
  auto xsT = RankedTensorType::get({tk.Ms, NG}, i32);
  Value xs0 = linalg::FillOp::create(b, l, ValueRange{arith::ConstantOp::create(b, l, b.getI32IntegerAttr(0)).getResult()},
                                     ValueRange{tensor::EmptyOp::create(b, l, xsT, dynM).getResult()})
                  .getResult(0);
  Value xsum = linalg::GenericOp::create(
                   b, l, TypeRange{xsT}, ValueRange{xq}, ValueRange{xs0},
                   ArrayRef<AffineMap>{id2, AffineMap::get(2, 0, {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx).floorDiv(G)}, ctx)},
                   SmallVector<utils::IteratorType>{par, red},
                   [&](OpBuilder &nb, Location nl, ValueRange a) {
                     Value v = arith::ExtSIOp::create(nb, nl, i32, a[0]);
                     linalg::YieldOp::create(nb, nl, arith::AddIOp::create(nb, nl, a[1], v).getResult());
                   })
                   .getResult(0);

  // acc + sum over each 4 bytes of u (unsigned) * s (signed), per i32 lane.
  auto dot = [&](OpBuilder &nb, Location nl, Value acc, Value u, Value s) -> Value {
    if (p.vnni) {
      // (<L x i32> acc, <C x i8> unsigned, <C x i8> signed), LLVM 22's form.
      return LLVM::CallIntrinsicOp::create(nb, nl, vL32, nb.getStringAttr(L == 16 ? kVpdpbusd512 : kVpdpbusd256),
                                           ValueRange{acc, u, s})
          .getResult(0);
    }
    // Any x86-64: widened products (LLVM: vpmovzx/vpmovsx + vpmaddwd), the
    // C products folded into L lanes (another lane order than vpdpbusd's:
    // only the lanes' total is used).
    auto vC32 = VectorType::get({C}, i32);
    Value prod = arith::MulIOp::create(nb, nl, arith::ExtUIOp::create(nb, nl, vC32, u),
                                       arith::ExtSIOp::create(nb, nl, vC32, s));
    for (int64_t t = 0; t < 4; ++t)
      acc = arith::AddIOp::create(
          nb, nl, acc,
          vector::ExtractStridedSliceOp::create(nb, nl, prod, ArrayRef<int64_t>{t * L}, ArrayRef<int64_t>{L},
                                                ArrayRef<int64_t>{1}));
    return acc;
  };

  // Decode's row streams prefetch their codes (rowsOut with one row, token).
  RowPrefetcher pf = RowPrefetcher::create(b, l, q.codes, p.prefetch);

  auto yT = RankedTensorType::get({tk.Ms, N}, f32);
  Value yEmpty = tensor::EmptyOp::create(b, l, yT, dynM);
  Value y = forEachChannelTile(b, l, yEmpty, M, N, NR, NR, [&](OpBuilder &b, Location l, Value slice, Value,
                                                               ArrayRef<Value> rows) -> Value {
    auto swAt = [&](OpBuilder &nb, Location nl, Value row, Value g) { return weightScaleAt(nb, nl, q, row, g); };
    // The unsigned weight operand of chunk k0 of `row`.
    auto loadW = [&](OpBuilder &nb, Location nl, Value row, Value k0) -> Value {
      Type et = codesT.getElementType();
      Value pad = arith::ConstantOp::create(nb, nl, nb.getI8IntegerAttr(0));
      if (et != i8)
        pad = UnrealizedConversionCastOp::create(nb, nl, TypeRange{et}, ValueRange{pad}).getResult(0);
      int64_t n = i4 ? C / 2 : C;
      Value kb = i4 ? arith::DivUIOp::create(nb, nl, k0, ci(nb, nl, 2)).getResult() : k0;
      Value by = vector::TransferReadOp::create(nb, nl, VectorType::get({n}, et), q.codes, ValueRange{row, kb}, pad,
                                                ArrayRef<bool>{K % C == 0});
      if (et != i8)
        by = UnrealizedConversionCastOp::create(nb, nl, TypeRange{VectorType::get({n}, i8)}, ValueRange{by})
                 .getResult(0);
      if (!i4)
        return arith::XOrIOp::create(nb, nl, by, splat8(nb, nl, C, int8_t(-128)));
      // Both nibbles + 8 at once (0x88), then [low nibbles | high nibbles].
      by = arith::XOrIOp::create(nb, nl, by, splat8(nb, nl, n, int8_t(0x88 - 256)));
      Value lo = arith::AndIOp::create(nb, nl, by, splat8(nb, nl, n, 15));
      Value hi = arith::ShRUIOp::create(nb, nl, by, splat8(nb, nl, n, 4));
      SmallVector<int64_t> cat;
      for (int64_t e = 0; e < C; ++e)
        cat.push_back(e);
      return vector::ShuffleOp::create(nb, nl, lo, hi, cat);
    };

    // The outputs y[mrow[j], rows[rs[i]]] (index i * mr + j) of the tile's
    // rows `rs` for the tokens mrow.
    auto rowsOut = [&](OpBuilder &ob, Location ol, ArrayRef<int64_t> rs, ArrayRef<Value> mrow) {
      const int64_t nr = rs.size(), mr = mrow.size();
      Value zacc = arith::ConstantOp::create(ob, ol, vL32, DenseElementsAttr::get(vL32, ob.getI32IntegerAttr(0)));
      // Per group: f32 sums (grouped) or the i32 total (one group).
      Value zsum = grouped ? cf(ob, ol, 0.0f) : arith::ConstantOp::create(ob, ol, ob.getI32IntegerAttr(0)).getResult();
      auto gLoop = scf::ForOp::create(
          ob, ol, ci(ob, ol, 0), ci(ob, ol, NG), ci(ob, ol, 1), SmallVector<Value>(nr * mr, zsum),
          [&](OpBuilder &gb, Location gl, Value g, ValueRange sums) {
            Value gk0 = arith::MulIOp::create(gb, gl, g, ci(gb, gl, G));
            auto cLoop = scf::ForOp::create(
                gb, gl, ci(gb, gl, 0), ci(gb, gl, CPG), ci(gb, gl, 1), SmallVector<Value>(nr * mr, zacc),
                [&](OpBuilder &cb, Location cl, Value c, ValueRange accs) {
                  Value k0 = arith::AddIOp::create(cb, cl, gk0, arith::MulIOp::create(cb, cl, c, ci(cb, cl, C)));
                  if (nr * mr == 1)
                    pf.at(cb, cl, rows[rs[0]], i4 ? arith::DivUIOp::create(cb, cl, k0, ci(cb, cl, 2)).getResult() : k0);
                  SmallVector<Value> xv;
                  for (int64_t j = 0; j < mr; ++j)
                    xv.push_back(vector::TransferReadOp::create(
                        cb, cl, vC8, xq, ValueRange{mrow[j], k0},
                        arith::ConstantOp::create(cb, cl, cb.getI8IntegerAttr(0)).getResult(), ArrayRef<bool>{true}));
                  SmallVector<Value> next(accs.begin(), accs.end());
                  for (int64_t i = 0; i < nr; ++i) {
                    Value w = loadW(cb, cl, rows[rs[i]], k0);
                    for (int64_t j = 0; j < mr; ++j)
                      next[i * mr + j] = dot(cb, cl, next[i * mr + j], w, xv[j]);
                  }
                  scf::YieldOp::create(cb, cl, next);
                });
            SmallVector<Value> corr;
            for (int64_t j = 0; j < mr; ++j) {
              Value s = tensor::ExtractOp::create(gb, gl, xsum, ValueRange{mrow[j], g});
              corr.push_back(arith::MulIOp::create(gb, gl, s, arith::ConstantOp::create(gb, gl, gb.getI32IntegerAttr(wb))));
            }
            SmallVector<Value> next;
            for (int64_t i = 0; i < nr; ++i) {
              Value sw = grouped ? swAt(gb, gl, rows[rs[i]], g) : Value();
              for (int64_t j = 0; j < mr; ++j) {
                Value a = vector::ReductionOp::create(gb, gl, vector::CombiningKind::ADD, cLoop.getResult(i * mr + j));
                a = arith::SubIOp::create(gb, gl, a, corr[j]);
                Value prev = sums[i * mr + j];
                next.push_back(grouped ? arith::AddFOp::create(
                                             gb, gl, prev,
                                             arith::MulFOp::create(gb, gl, arith::SIToFPOp::create(gb, gl, f32, a), sw))
                                             .getResult()
                                       : arith::AddIOp::create(gb, gl, prev, a).getResult());
              }
            }
            scf::YieldOp::create(gb, gl, next);
          });
      // Epilogue: the reference's order of f32 operations.
      SmallVector<Value> sx;
      for (int64_t j = 0; j < mr; ++j)
        sx.push_back(sxAt(ob, ol, mrow[j]));
      SmallVector<Value> ys;
      for (int64_t i = 0; i < nr; ++i) {
        Value row = rows[rs[i]];
        Value sw = grouped ? Value() : swAt(ob, ol, row, ci(ob, ol, 0));
        Value bv = bias ? toF32(ob, ol, tensor::ExtractOp::create(ob, ol, bias, ValueRange{row})) : Value();
        for (int64_t j = 0; j < mr; ++j) {
          Value v = gLoop.getResult(i * mr + j);
          Value y = grouped ? arith::MulFOp::create(ob, ol, v, sx[j]).getResult()
                            : arith::MulFOp::create(
                                  ob, ol, arith::MulFOp::create(ob, ol, arith::SIToFPOp::create(ob, ol, f32, v), sx[j]),
                                  sw)
                                  .getResult();
          if (bv)
            y = arith::AddFOp::create(ob, ol, y, bv);
          ys.push_back(y);
        }
      }
      return ys;
    };

    auto block = [&](OpBuilder &ob, Location ol, Value m0, int64_t mr, Value tile) -> Value {
      SmallVector<Value> mrow;
      for (int64_t j = 0; j < mr; ++j)
        mrow.push_back(j == 0 ? m0 : arith::AddIOp::create(ob, ol, m0, ci(ob, ol, j)).getResult());
      SmallVector<Value> ys(NR * mr);
      auto place = [&](ArrayRef<int64_t> rs) {
        SmallVector<Value> part = rowsOut(ob, ol, rs, mrow);
        for (size_t i = 0; i < rs.size(); ++i)
          for (int64_t j = 0; j < mr; ++j)
            ys[rs[i] * mr + j] = part[i * mr + j];
      };
      if (mr == 1 && p.rowwise) {
        // Decode: the rows one after the other (one stream of codes).
        for (int64_t i = 0; i < NR; ++i)
          place({i});
      } else {
        SmallVector<int64_t> all;
        for (int64_t i = 0; i < NR; ++i)
          all.push_back(i);
        place(all);
      }
      auto vnr = VectorType::get({NR}, f32);
      for (int64_t j = 0; j < mr; ++j) {
        SmallVector<Value> vals;
        for (int64_t i = 0; i < NR; ++i)
          vals.push_back(ys[i * mr + j]);
        Value vec = vector::FromElementsOp::create(ob, ol, vnr, vals);
        tile = vector::TransferWriteOp::create(ob, ol, vec, tile, ValueRange{mrow[j], ci(ob, ol, 0)},
                                               ArrayRef<bool>{false})
                   .getResult();
      }
      return tile;
    };
    return tokenBlocks(b, l, M, MR, slice, block);
  });
  return restoreLeading(b, l, y, rt, tk);
}

} // namespace qwen
