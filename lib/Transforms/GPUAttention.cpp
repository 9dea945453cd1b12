//===- GPUAttention.cpp - qwen.attention as CUDA kernels ------------------===//
//
// See include/qwen/Transforms/GPUAttention.h. The math is the CPU fused
// attention's (FusedKernels.cpp): an online softmax per query row, partial
// states (m = running max, l = sum of exp, acc = weighted sum of V rows)
// merged as
//
//   M = max_i m_i,  w_i = exp(m_i - M) (0 for a state that saw no key),
//   L = sum_i l_i w_i,  out = sum_i acc_i w_i / L   (0 when L = 0, i.e.
//   every key masked, as the reference lowering)
//
// A key s of query t is kept when s <= t + P (causal; P = S - T past
// positions) and mask[b, s] != 0. Blocks are 4 warps. A lane holds
// E = ceil(D / 32) features (D a multiple of E; lanes past D / E repeat the
// last lane's features and store the same values).
//
// Decode (T <= kDecodeMaxTokens), flash-decoding:
//   kernel 1, grid (split, query t x head-row group, b x kv head): the
//     block owns up to kDecodeMaxRows query heads of one kv head (its GQA
//     group) and the keys [s0, s1) of its split. Warp w takes keys
//     s0 + w, s0 + w + 4, ...: each lane reads E features of the K and V
//     rows (vector loads, a row per warp: coalesced), so every K/V row is
//     read once per kv head for all its query heads. Per row: the dot with
//     each query head (FMAs, butterfly shuffle sum), one online-softmax
//     step. The 4 warps' states merge through shared memory; the block
//     writes one partial (m, l, acc) per head to a scratch buffer.
//   kernel 2, a warp per (b, t, head): merges the splits, divides, stores.
//   Splits: enough blocks for kTargetBlocks (two per SM of an H100), at
//   least kMinSplitKeys keys each.
// Prefill on tensor cores (quantized recipes, D % 16 == 0), grid
//   (64-query tile, head, b), 16 queries per warp: per 32-key tile K and V
//   in shared memory, S = Q K^T and O += P V by mma.sync.m16n8k16 (f16
//   inputs, f32 accumulation and softmax), see emitPrefillMmaBlock.
// Prefill on CUDA cores (fp32), grid (16-query tile, head, b): the tile's
//   queries in shared memory; per 32-key tile K (rows padded to D + 1
//   floats: lane j reads row j without bank conflicts) and V in shared
//   memory, lane j scores key j against the warp's 4 queries, warp max /
//   sum by shuffles, then acc[d = 32 e + lane] += p_j V[j, d] with p_j
//   broadcast by shuffle.
// Either prefill never reads the key tiles after its last query (causal).
//
// One launch runs either path: the grid is chosen on the host, the path
// again in the kernel (uniform per launch), as the linear kernels do; the
// combine launch is one idle block in prefill. No host-side scf.if: the
// function keeps one stream (gpu-async-region).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/GPUAttention.h"
#include "qwen/Transforms/GPUKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;

namespace qwen::gpu {

namespace {

constexpr int64_t kWarp = 32;
constexpr int64_t kWarps = 4; ///< warps per block, every kernel
constexpr int64_t kThreads = kWarp * kWarps;
/// Head dims the kernels take at most (shared memory, registers).
constexpr int64_t kMaxHeadDim = 128;
/// Query tokens up to which the split-K decode path runs.
constexpr int64_t kDecodeMaxTokens = 8;
/// Query heads one decode block keeps in registers (q and acc: 2 E each).
constexpr int64_t kDecodeMaxRows = 8;
/// Decode blocks wanted (two per SM of a 132-SM H100), and the fewest keys
/// of a split (8 per warp).
constexpr int64_t kTargetBlocks = 264;
constexpr int64_t kMinSplitKeys = 32;
/// Prefill: queries per block (kQueriesPerWarp per warp), keys per tile
/// (one per lane).
constexpr int64_t kQueryTile = 16;
constexpr int64_t kQueriesPerWarp = kQueryTile / kWarps;
constexpr int64_t kKeyTile = kWarp;
/// Prefill on tensor cores: queries per block (16 per warp, the m of
/// mma.m16n8k16), and the padding of the K / V tile rows in shared memory
/// (floats; rows of D + 4 spread a fragment's loads over the banks).
constexpr int64_t kMmaQueryTile = kWarps * 16;
constexpr int64_t kMmaPad = 4;

const float kNegInf = -std::numeric_limits<float>::infinity();

/// Scalar / index arithmetic and memory accesses in kernels. Nested scf
/// builders hand their body this same OpBuilder, so `b` is always at the
/// current insertion point.
struct KB {
  OpBuilder &b;
  Location l;

  Value c(int64_t v) { return arith::ConstantIndexOp::create(b, l, v); }
  Value f(float v) {
    return arith::ConstantFloatOp::create(b, l, b.getF32Type(), APFloat(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, l, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, l, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, l, x, y); }
  Value div(Value x, Value y) { return arith::DivUIOp::create(b, l, x, y); }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, l, x, y); }
  Value ceilDiv(Value x, Value y) {
    return arith::CeilDivUIOp::create(b, l, x, y);
  }
  Value min(Value x, Value y) { return arith::MinUIOp::create(b, l, x, y); }
  Value max(Value x, Value y) { return arith::MaxUIOp::create(b, l, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, l, p, x, y);
  }
  Value lt(Value x, Value y) { return cmp(arith::CmpIPredicate::ult, x, y); }
  Value le(Value x, Value y) { return cmp(arith::CmpIPredicate::ule, x, y); }
  Value land(Value x, Value y) { return arith::AndIOp::create(b, l, x, y); }
  Value sel(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, l, c, x, y);
  }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, l, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, l, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, l, x, y); }
  Value fdiv(Value x, Value y) { return arith::DivFOp::create(b, l, x, y); }
  Value fmax(Value x, Value y) { return arith::MaximumFOp::create(b, l, x, y); }
  Value fma(Value x, Value y, Value acc) {
    return math::FmaOp::create(b, l, x, y, acc);
  }
  Value feq(Value x, Value y) {
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, x, y);
  }
  Value exp(Value x) { return math::ExpOp::create(b, l, x); }
  Value splat(Value s, int64_t n) {
    return vector::BroadcastOp::create(b, l, VectorType::get({n}, s.getType()),
                                       s);
  }
  Value lane(Value v, int64_t i) {
    return vector::ExtractOp::create(b, l, v, i);
  }

  Value load(Value m, ValueRange ix) {
    return memref::LoadOp::create(b, l, m, ix);
  }
  void store(Value v, Value m, ValueRange ix) {
    memref::StoreOp::create(b, l, v, m, ix);
  }
  /// n consecutive f32 at ix along the last dim of a global buffer (row
  /// starts are 4 n-byte aligned when n is a power of two: D and the
  /// offsets are multiples of n).
  Value vload(Value m, ValueRange ix, int64_t n) {
    return vector::LoadOp::create(b, l, VectorType::get({n}, b.getF32Type()), m,
                                  ix, /*nontemporal=*/false,
                                  llvm::MaybeAlign(alignOf(n)));
  }
  void vstore(Value v, Value m, ValueRange ix) {
    int64_t n = cast<VectorType>(v.getType()).getNumElements();
    vector::StoreOp::create(b, l, v, m, ix, /*nontemporal=*/false,
                            llvm::MaybeAlign(alignOf(n)));
  }
  static uint64_t alignOf(int64_t n) {
    return llvm::isPowerOf2_64(n) ? 4 * n : 4;
  }

  /// scf.for lo..hi step st; `body(iv, args)` returns the next args.
  SmallVector<Value>
  loop(Value lo, Value hi, Value st, ValueRange init,
       function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto f = scf::ForOp::create(
        b, l, lo, hi, st, init,
        [&](OpBuilder &, Location, Value iv, ValueRange args) {
          scf::YieldOp::create(b, l, body(iv, args));
        });
    return SmallVector<Value>(f.getResults());
  }
  /// Leaves the insertion point in the then-block of `if (cond)`.
  void enterIf(Value cond) {
    b.setInsertionPointToStart(
        scf::IfOp::create(b, l, cond, /*withElse=*/false).thenBlock());
  }

  /// Combines v over the warp by butterfly shuffles (max or sum): every
  /// lane ends with the result.
  Value warpAll(Value v, bool isMax) {
    for (int32_t off = kWarp / 2; off >= 1; off /= 2) {
      Value o = mlir::gpu::ShuffleOp::create(b, l, v, off, kWarp,
                                             mlir::gpu::ShuffleMode::XOR)
                    .getShuffleResult();
      v = isMax ? fmax(v, o) : fadd(v, o);
    }
    return v;
  }
  /// v of lane `src` (an index) in every lane.
  Value fromLane(Value v, Value src) {
    Value i = arith::IndexCastOp::create(b, l, b.getI32Type(), src);
    Value w = arith::ConstantIntOp::create(b, l, b.getI32Type(), kWarp);
    return mlir::gpu::ShuffleOp::create(
               b, l, v, i, w,
               mlir::gpu::ShuffleModeAttr::get(b.getContext(),
                                               mlir::gpu::ShuffleMode::IDX))
        .getShuffleResult();
  }

  /// The factor exp(m - mn) that rescales a state of max m to the new max
  /// mn >= m: 1 when unchanged, 0 while the state is empty (m = -inf); no
  /// exp sees -inf (the kernels' polynomial exp need not map it to 0).
  Value rescale(Value m, Value mn) {
    return sel(feq(m, mn), f(1.0f),
               sel(feq(m, f(kNegInf)), f(0.0f), exp(fsub(m, mn))));
  }
  /// exp(x - mn) for a kept score, else 0.
  Value weight(Value keep, Value x, Value mn) {
    return sel(keep, exp(fsub(x, mn)), f(0.0f));
  }
};

/// A partial softmax state of one query row: max, sum of exp, and the
/// accumulator's lanes (a vector<E>) of this thread.
struct State {
  Value m, l, acc;
};

/// Merges n states (n an index) of one row: `maxOf(i)` is state i's max,
/// `stateOf(i)` the whole state.
State mergeStates(KB &k, Value n, int64_t E, function_ref<Value(Value)> maxOf,
                  function_ref<State(Value)> stateOf) {
  Value z = k.c(0), one = k.c(1);
  Value M =
      k.loop(z, n, one, ValueRange{k.f(kNegInf)}, [&](Value i, ValueRange a) {
        return SmallVector<Value>{k.fmax(a[0], maxOf(i))};
      })[0];
  SmallVector<Value> init{k.f(0.0f), k.splat(k.f(0.0f), E)};
  SmallVector<Value> r = k.loop(z, n, one, init, [&](Value i, ValueRange a) {
    State s = stateOf(i);
    Value w = k.rescale(s.m, M);
    return SmallVector<Value>{k.fma(s.l, w, a[0]),
                              k.fma(k.splat(w, E), s.acc, a[1])};
  });
  return {M, r[0], r[1]};
}

/// acc / l, 0 where l = 0 (every key masked).
Value normalize(KB &k, const State &s, int64_t E) {
  Value zero = k.f(0.0f);
  return k.sel(k.feq(s.l, zero), k.splat(zero, E),
               k.fdiv(s.acc, k.splat(s.l, E)));
}

/// The operands of a tagged attention generic (buffers) and its shape;
/// B, T, S, P are index values of the host, used in the kernels too.
struct Attention {
  Value q, K, V, mask, out;
  int64_t NH, KV, D, G, E, activeLanes;
  float scale;
  bool causal;
  bool mma; ///< prefill on tensor cores (else CUDA cores)
  Value B, T, S, P;
};

/// Decode blocks: `rows` query heads each, `groups` blocks per kv head and
/// query; NS splits of `chunk` keys; the partials' scratch.
struct DecodePlan {
  int64_t rows, groups;
  Value NS, chunk, acc, ml;
};

DecodePlan planDecode(const Attention &a) {
  DecodePlan d;
  d.groups = (a.G + kDecodeMaxRows - 1) / kDecodeMaxRows;
  d.rows = (a.G + d.groups - 1) / d.groups;
  return d;
}

/// Shared memory (floats) of each path.
int64_t decodeSharedFloats(const Attention &a, const DecodePlan &d) {
  return kWarps * d.rows * (a.D + 2);
}
int64_t prefillSharedFloats(const Attention &a) {
  if (a.mma)
    return 2 * kKeyTile * (a.D + kMmaPad);
  return kKeyTile * (2 * a.D + 1) + kQueryTile * a.D;
}
/// Queries per prefill block.
int64_t prefillQueries(const Attention &a) {
  return a.mma ? kMmaQueryTile : kQueryTile;
}

/// Loads / stores of the shared buffer `sm` (flat f32) at element `off`.
Value smLoad(KB &k, Value sm, Value off) { return k.load(sm, {off}); }
void smStore(KB &k, Value v, Value sm, Value off) { k.store(v, sm, {off}); }

/// The first of the E features of `lane` in the decode kernels.
Value laneColumn(KB &k, const Attention &a, Value lane) {
  return k.mul(k.min(lane, k.c(a.activeLanes - 1)), k.c(a.E));
}

/// Split-K decode block (see the file comment); `blk` = block ids, `tid`
/// the thread id, `sm` the shared buffer.
void emitDecodeBlock(KB &k, const Attention &a, const DecodePlan &d,
                     mlir::gpu::KernelDim3 blk, Value tid, Value sm) {
  const int64_t E = a.E, D = a.D, RB = d.rows;
  Value sp = blk.x;
  Value t = k.div(blk.y, k.c(d.groups)), rg = k.rem(blk.y, k.c(d.groups));
  Value bb = k.div(blk.z, k.c(a.KV)), kvh = k.rem(blk.z, k.c(a.KV));
  k.enterIf(k.land(k.lt(t, a.T), k.lt(bb, a.B))); // uniform per block
  Value lane = k.rem(tid, k.c(kWarp)), w = k.div(tid, k.c(kWarp));
  Value col0 = laneColumn(k, a, lane);
  // Query heads of the block: g = rg RB + r; past G (a last, partial group)
  // a row computes head G - 1 again and is not stored. Lanes past D / E
  // take q = 0: they add nothing to the dot products.
  SmallVector<Value> qs;
  Value gBase = k.mul(rg, k.c(RB));
  for (int64_t r = 0; r < RB; ++r) {
    Value g = k.min(k.add(gBase, k.c(r)), k.c(a.G - 1));
    Value h = k.add(k.mul(kvh, k.c(a.G)), g);
    Value qv = k.vload(a.q, {bb, t, k.add(k.mul(h, k.c(D)), col0)}, E);
    if (a.activeLanes < kWarp)
      qv = k.sel(k.lt(lane, k.c(a.activeLanes)), qv, k.splat(k.f(0.0f), E));
    qs.push_back(qv);
  }
  Value s0 = k.mul(sp, d.chunk);
  Value s1 = k.min(a.S, k.add(s0, d.chunk));
  Value lim = a.causal ? k.min(s1, k.add(k.add(t, a.P), k.c(1))) : s1;
  Value ninf = k.f(kNegInf), zero = k.f(0.0f);
  SmallVector<Value> init;
  for (int64_t r = 0; r < RB; ++r)
    init.append({ninf, zero, k.splat(zero, E)});
  SmallVector<Value> st = k.loop(
      k.add(s0, w), lim, k.c(kWarps), init, [&](Value s, ValueRange cur) {
        Value kv = k.vload(a.K, {bb, kvh, s, col0}, E);
        Value vv = k.vload(a.V, {bb, kvh, s, col0}, E);
        Value keep = arith::ConstantIntOp::create(k.b, k.l, k.b.getI1Type(), 1);
        if (a.mask) {
          Value mv = k.load(a.mask, {bb, s});
          Value z = arith::ConstantOp::create(
              k.b, k.l, k.b.getIntegerAttr(mv.getType(), 0));
          keep = k.cmp(arith::CmpIPredicate::ne, mv, z);
        }
        SmallVector<Value> next;
        for (int64_t r = 0; r < RB; ++r) {
          Value m = cur[3 * r], l = cur[3 * r + 1], acc = cur[3 * r + 2];
          Value dot = zero;
          for (int64_t e = 0; e < E; ++e)
            dot = k.fma(k.lane(qs[r], e), k.lane(kv, e), dot);
          Value x = k.fmul(k.warpAll(dot, /*isMax=*/false), k.f(a.scale));
          Value mn = k.fmax(m, k.sel(keep, x, ninf));
          Value alpha = k.rescale(m, mn), p = k.weight(keep, x, mn);
          next.push_back(mn);
          next.push_back(k.fma(l, alpha, p));
          next.push_back(
              k.fma(k.splat(p, E), vv, k.fmul(acc, k.splat(alpha, E))));
        }
        return next;
      });
  // The warps' states to shared memory: acc at ((w RB + r) D + col),
  // (m, l) after all of them. Every lane holds the same m and l: they all
  // store them (the same value).
  Value mlBase = k.c(kWarps * RB * D);
  auto slot = [&](Value wi, Value r) { return k.add(k.mul(wi, k.c(RB)), r); };
  for (int64_t r = 0; r < RB; ++r) {
    Value sl = slot(w, k.c(r));
    Value accOff = k.add(k.mul(sl, k.c(D)), col0);
    for (int64_t e = 0; e < E; ++e)
      smStore(k, k.lane(st[3 * r + 2], e), sm, k.add(accOff, k.c(e)));
    Value mlOff = k.add(mlBase, k.mul(sl, k.c(2)));
    smStore(k, st[3 * r], sm, mlOff);
    smStore(k, st[3 * r + 1], sm, k.add(mlOff, k.c(1)));
  }
  mlir::gpu::BarrierOp::create(k.b, k.l);
  // Warp w merges rows w, w + 4, ... over the warps and writes the block's
  // partial of each head.
  (void)k.loop(w, k.c(RB), k.c(kWarps), ValueRange{}, [&](Value r, ValueRange) {
    auto mlOff = [&](Value wi) {
      return k.add(mlBase, k.mul(slot(wi, r), k.c(2)));
    };
    auto maxOf = [&](Value wi) { return smLoad(k, sm, mlOff(wi)); };
    State s = mergeStates(k, k.c(kWarps), E, maxOf, [&](Value wi) {
      Value sl = slot(wi, r);
      Value accOff = k.add(k.mul(sl, k.c(D)), col0);
      SmallVector<Value> lanes;
      for (int64_t e = 0; e < E; ++e)
        lanes.push_back(smLoad(k, sm, k.add(accOff, k.c(e))));
      Value acc = vector::FromElementsOp::create(
          k.b, k.l, VectorType::get({E}, k.b.getF32Type()), lanes);
      return State{maxOf(wi), smLoad(k, sm, k.add(mlOff(wi), k.c(1))), acc};
    });
    Value g = k.add(gBase, r);
    OpBuilder::InsertionGuard ig(k.b);
    k.enterIf(k.lt(g, k.c(a.G)));
    Value h = k.add(k.mul(kvh, k.c(a.G)), g);
    Value row = k.add(k.mul(k.add(k.mul(bb, a.T), t), k.c(a.NH)), h);
    Value pr = k.add(k.mul(row, d.NS), sp);
    k.vstore(s.acc, d.acc, {pr, col0});
    k.store(s.m, d.ml, {pr, k.c(0)});
    k.store(s.l, d.ml, {pr, k.c(1)});
    return SmallVector<Value>{};
  });
}

/// The combine of the decode splits: warp w of block x owns the output row
/// o = (b T + t) NH + h.
void emitCombineBlock(KB &k, const Attention &a, const DecodePlan &d, Value bx,
                      Value tid) {
  Value lane = k.rem(tid, k.c(kWarp)), w = k.div(tid, k.c(kWarp));
  Value o = k.add(k.mul(bx, k.c(kWarps)), w);
  k.enterIf(k.lt(o, k.mul(k.mul(a.B, a.T), k.c(a.NH))));
  Value col0 = laneColumn(k, a, lane);
  Value base = k.mul(o, d.NS);
  auto maxOf = [&](Value i) { return k.load(d.ml, {k.add(base, i), k.c(0)}); };
  State s = mergeStates(k, d.NS, a.E, maxOf, [&](Value i) {
    Value pr = k.add(base, i);
    return State{maxOf(i), k.load(d.ml, {pr, k.c(1)}),
                 k.vload(d.acc, {pr, col0}, a.E)};
  });
  Value bt = k.div(o, k.c(a.NH)), h = k.rem(o, k.c(a.NH));
  Value bb = k.div(bt, a.T), t = k.rem(bt, a.T);
  k.vstore(normalize(k, s, a.E), a.out,
           {bb, t, k.add(k.mul(h, k.c(a.D)), col0)});
}

/// Copies `rows` rows of D floats as 16-byte chunks, thread tid taking
/// chunks tid, tid + 128, ...: `src(row, col)` loads the chunk at column
/// col (a vector<4xf32>), `put(v, row, col)` stores it.
void copyRows(KB &k, Value tid, int64_t rows, int64_t D,
              function_ref<Value(Value, Value)> src,
              function_ref<void(Value, Value, Value)> put) {
  int64_t perRow = D / 4, chunks = rows * perRow;
  for (int64_t i = 0; i * kThreads < chunks; ++i) {
    OpBuilder::InsertionGuard ig(k.b);
    Value ch = k.add(tid, k.c(i * kThreads));
    if ((i + 1) * kThreads > chunks)
      k.enterIf(k.lt(ch, k.c(chunks)));
    Value row = k.div(ch, k.c(perRow));
    Value col = k.mul(k.rem(ch, k.c(perRow)), k.c(4));
    put(src(row, col), row, col);
  }
}

/// Prefill block on CUDA cores (see the file comment).
void emitPrefillBlock(KB &k, const Attention &a, mlir::gpu::KernelDim3 blk,
                      Value tid, Value sm) {
  const int64_t D = a.D, E = a.E, QW = kQueriesPerWarp;
  Value t0 = k.mul(blk.x, k.c(kQueryTile)), h = blk.y, bb = blk.z;
  k.enterIf(k.land(k.lt(t0, a.T), k.lt(bb, a.B))); // uniform per block
  Value kvh = k.div(h, k.c(a.G));
  Value lane = k.rem(tid, k.c(kWarp)), w = k.div(tid, k.c(kWarp));
  // Shared: K tile [kKeyTile][D + 1], V tile [kKeyTile][D], Q [16][D].
  const int64_t kStride = D + 1;
  Value vBase = k.c(kKeyTile * kStride);
  Value qBase = k.c(kKeyTile * (kStride + D));
  Value tLast = k.sub(a.T, k.c(1)), sLast = k.sub(a.S, k.c(1));
  auto copyTile = [&](int64_t rows, function_ref<Value(Value, Value)> src,
                      function_ref<void(Value, Value, Value)> put) {
    copyRows(k, tid, rows, D, src, [&](Value v, Value row, Value col) {
      for (int64_t j = 0; j < 4; ++j)
        put(k.lane(v, j), row, k.add(col, k.c(j)));
    });
  };
  Value hCol = k.mul(h, k.c(D));
  copyTile(
      kQueryTile,
      [&](Value row, Value col) {
        Value t = k.min(k.add(t0, row), tLast); // rows past T: T - 1 again
        return k.vload(a.q, {bb, t, k.add(hCol, col)}, 4);
      },
      [&](Value v, Value row, Value col) {
        smStore(k, v, sm, k.add(qBase, k.add(k.mul(row, k.c(D)), col)));
      });
  // This warp's queries t0 + 4 w + i.
  SmallVector<Value> ts, qRows;
  for (int64_t i = 0; i < QW; ++i) {
    Value qi = k.add(k.mul(w, k.c(QW)), k.c(i));
    ts.push_back(k.add(t0, qi));
    qRows.push_back(k.add(qBase, k.mul(qi, k.c(D))));
  }
  // The accumulator's features d = 32 e + lane; lanes past D repeat D - 1
  // (and store the same value).
  SmallVector<Value> cols;
  for (int64_t e = 0; e < E; ++e)
    cols.push_back(k.min(k.add(lane, k.c(e * kWarp)), k.c(D - 1)));
  // Causal: no key after the tile's last query.
  Value tEnd = k.min(k.add(t0, k.c(kQueryTile)), a.T);
  Value kEnd = a.causal ? k.min(a.S, k.add(tEnd, a.P)) : a.S;
  Value ninf = k.f(kNegInf), zero = k.f(0.0f);
  SmallVector<Value> init;
  for (int64_t i = 0; i < QW; ++i) {
    init.append({ninf, zero});
    init.append(E, zero);
  }
  const int64_t per = 2 + E; // state values per query: m, l, acc lanes
  SmallVector<Value> st =
      k.loop(k.c(0), kEnd, k.c(kKeyTile), init, [&](Value k0, ValueRange cur) {
        // The previous tile is consumed before this one overwrites it.
        mlir::gpu::BarrierOp::create(k.b, k.l);
        copyTile(
            kKeyTile,
            [&](Value row, Value col) {
              return k.vload(a.K, {bb, kvh, k.min(k.add(k0, row), sLast), col},
                             4);
            },
            [&](Value v, Value row, Value col) {
              smStore(k, v, sm, k.add(k.mul(row, k.c(kStride)), col));
            });
        copyTile(
            kKeyTile,
            [&](Value row, Value col) {
              return k.vload(a.V, {bb, kvh, k.min(k.add(k0, row), sLast), col},
                             4);
            },
            [&](Value v, Value row, Value col) {
              smStore(k, v, sm, k.add(vBase, k.add(k.mul(row, k.c(D)), col)));
            });
        mlir::gpu::BarrierOp::create(k.b, k.l);
        // Lane j: key s = k0 + j against the warp's queries.
        Value s = k.add(k0, lane);
        Value keepS = k.lt(s, a.S);
        if (a.mask) {
          Value mv = k.load(a.mask, {bb, k.min(s, sLast)});
          Value z = arith::ConstantOp::create(
              k.b, k.l, k.b.getIntegerAttr(mv.getType(), 0));
          keepS = k.land(keepS, k.cmp(arith::CmpIPredicate::ne, mv, z));
        }
        Value kRow = k.mul(lane, k.c(kStride));
        SmallVector<Value> dots =
            k.loop(k.c(0), k.c(D), k.c(1), SmallVector<Value>(QW, zero),
                   [&](Value dd, ValueRange acc) {
                     Value kd = smLoad(k, sm, k.add(kRow, dd));
                     SmallVector<Value> next;
                     for (int64_t i = 0; i < QW; ++i)
                       next.push_back(k.fma(smLoad(k, sm, k.add(qRows[i], dd)),
                                            kd, acc[i]));
                     return next;
                   });
        SmallVector<Value> ms, ls, ps, alphas;
        for (int64_t i = 0; i < QW; ++i) {
          Value keep = keepS;
          if (a.causal)
            keep = k.land(keep, k.le(s, k.add(ts[i], a.P)));
          Value x = k.fmul(dots[i], k.f(a.scale));
          Value m = cur[per * i], l = cur[per * i + 1];
          Value mn = k.fmax(m, k.warpAll(k.sel(keep, x, ninf), /*isMax=*/true));
          Value alpha = k.rescale(m, mn), p = k.weight(keep, x, mn);
          ms.push_back(mn);
          ls.push_back(k.fma(l, alpha, k.warpAll(p, /*isMax=*/false)));
          ps.push_back(p);
          alphas.push_back(alpha);
        }
        // acc[d = 32 e + lane] = acc alpha + sum_j p_j V[j, d].
        SmallVector<Value> accInit;
        for (int64_t i = 0; i < QW; ++i)
          for (int64_t e = 0; e < E; ++e)
            accInit.push_back(k.fmul(cur[per * i + 2 + e], alphas[i]));
        SmallVector<Value> acc =
            k.loop(k.c(0), k.c(kKeyTile), k.c(1), accInit,
                   [&](Value j, ValueRange av) {
                     SmallVector<Value> vs, nx;
                     Value vRow = k.add(vBase, k.mul(j, k.c(D)));
                     for (int64_t e = 0; e < E; ++e)
                       vs.push_back(smLoad(k, sm, k.add(vRow, cols[e])));
                     for (int64_t i = 0; i < QW; ++i) {
                       Value pj = k.fromLane(ps[i], j);
                       for (int64_t e = 0; e < E; ++e)
                         nx.push_back(k.fma(pj, vs[e], av[i * E + e]));
                     }
                     return nx;
                   });
        SmallVector<Value> next;
        for (int64_t i = 0; i < QW; ++i) {
          next.append({ms[i], ls[i]});
          next.append(acc.begin() + i * E, acc.begin() + (i + 1) * E);
        }
        return next;
      });
  for (int64_t i = 0; i < QW; ++i) {
    OpBuilder::InsertionGuard ig(k.b);
    k.enterIf(k.lt(ts[i], a.T));
    Value l = st[per * i + 1];
    Value isZero = k.feq(l, zero);
    for (int64_t e = 0; e < E; ++e) {
      Value v = k.sel(isZero, zero, k.fdiv(st[per * i + 2 + e], l));
      k.store(v, a.out, {bb, ts[i], k.add(hCol, cols[e])});
    }
  }
}

/// The four f32 results of mma.sync.m16n8k16 (f16 A, B; f32 C).
SmallVector<Value> mmaF16(KB &k, ArrayRef<Value> A, ArrayRef<Value> B,
                          ArrayRef<Value> C) {
  Type f32 = k.b.getF32Type();
  auto resT =
      LLVM::LLVMStructType::getLiteral(k.b.getContext(), {f32, f32, f32, f32});
  Value d = NVVM::MmaOp::create(
      k.b, k.l, resT, A, B, C, {16, 8, 16}, std::nullopt, std::nullopt,
      std::array{NVVM::MMATypes::f16, NVVM::MMATypes::f16},
      std::array{NVVM::MMALayout::row, NVVM::MMALayout::col});
  SmallVector<Value> r;
  for (int64_t i = 0; i < 4; ++i)
    r.push_back(LLVM::ExtractValueOp::create(k.b, k.l, d, i));
  return r;
}

/// Prefill block on tensor cores: 64 queries, 16 per warp. With the PTX
/// ISA's fragment layouts of mma.m16n8k16 (gid = lane / 4, tig = lane % 4;
/// A: rows gid, gid + 8 x columns 2 tig (+1, +8, +9); B: rows 2 tig (+1,
/// +8, +9) x column gid; C: rows gid, gid + 8 x columns 2 tig, 2 tig + 1):
///   Q's A fragments (f16) stay in registers for the whole block;
///   per 32-key tile (K, V in shared memory as f32, rows of D + 4):
///   S = Q K^T, 4 tiles of 8 keys (B = K rows); scale, mask; per row the
///   max and sum over the quad of lanes (shuffles xor 1, 2); the online
///   softmax; O = O alpha + P V with P's A fragments taken from S's C
///   fragments (keys 2 tig, 2 tig + 1 of two adjacent tiles) and V's B
///   fragments (keys 2 tig (+1, +8, +9) x feature gid). f16 inputs, f32
///   accumulation and softmax.
void emitPrefillMmaBlock(KB &k, const Attention &a, mlir::gpu::KernelDim3 blk,
                         Value tid, Value sm) {
  const int64_t D = a.D, stride = D + kMmaPad, ND = D / 8;
  OpBuilder &b = k.b;
  Location l = k.l;
  Type f16 = b.getF16Type(), f32 = b.getF32Type();
  auto h2 = VectorType::get({2}, f16), f2 = VectorType::get({2}, f32);
  Value t0 = k.mul(blk.x, k.c(kMmaQueryTile)), h = blk.y, bb = blk.z;
  k.enterIf(k.land(k.lt(t0, a.T), k.lt(bb, a.B))); // uniform per block
  Value kvh = k.div(h, k.c(a.G));
  Value lane = k.rem(tid, k.c(kWarp)), w = k.div(tid, k.c(kWarp));
  Value gid = k.div(lane, k.c(4)), tig2 = k.mul(k.rem(lane, k.c(4)), k.c(2));
  Value tLast = k.sub(a.T, k.c(1)), sLast = k.sub(a.S, k.c(1));
  Value hCol = k.mul(h, k.c(D));
  // This thread's queries: rows gid and gid + 8 of the warp's 16.
  Value q0 = k.add(t0, k.mul(w, k.c(16)));
  Value rows[2] = {k.add(q0, gid), k.add(q0, k.add(gid, k.c(8)))};
  auto toF16 = [&](Value v2) { return arith::TruncFOp::create(b, l, h2, v2); };
  auto pack = [&](Value x, Value y) {
    return toF16(vector::FromElementsOp::create(b, l, f2, ValueRange{x, y}));
  };
  // Q's A fragments for each k step of 16 (rows past T: T - 1 again).
  SmallVector<Value> qa;
  for (int64_t ks = 0; ks < D / 16; ++ks)
    for (int64_t r = 0; r < 4; ++r) {
      Value t = k.min(rows[r & 1], tLast);
      Value col = k.add(hCol, k.add(k.c(ks * 16 + (r >= 2 ? 8 : 0)), tig2));
      qa.push_back(toF16(k.vload(a.q, {bb, t, col}, 2)));
    }
  Value vBase = k.c(kKeyTile * stride);
  Value tEnd = k.min(k.add(t0, k.c(kMmaQueryTile)), a.T);
  Value kEnd = a.causal ? k.min(a.S, k.add(tEnd, a.P)) : a.S;
  Value ninf = k.f(kNegInf), zero = k.f(0.0f);
  // State: m and l of both rows, then the output's ND tiles (C layout).
  SmallVector<Value> init{ninf, ninf, zero, zero};
  init.append(4 * ND, zero);
  auto quadAll = [&](Value v, bool isMax) {
    for (int32_t off : {1, 2}) {
      Value o = mlir::gpu::ShuffleOp::create(b, l, v, off, kWarp,
                                             mlir::gpu::ShuffleMode::XOR)
                    .getShuffleResult();
      v = isMax ? k.fmax(v, o) : k.fadd(v, o);
    }
    return v;
  };
  SmallVector<Value> st =
      k.loop(k.c(0), kEnd, k.c(kKeyTile), init, [&](Value k0, ValueRange cur) {
        // The previous tile is consumed before this one overwrites it.
        mlir::gpu::BarrierOp::create(b, l);
        for (auto [src, base] : {std::pair{a.K, k.c(0)}, std::pair{a.V, vBase}})
          copyRows(
              k, tid, kKeyTile, D,
              [&](Value row, Value col) {
                return k.vload(src,
                               {bb, kvh, k.min(k.add(k0, row), sLast), col}, 4);
              },
              [&](Value v, Value row, Value col) {
                k.vstore(v, sm,
                         {k.add(base, k.add(k.mul(row, k.c(stride)), col))});
              });
        mlir::gpu::BarrierOp::create(b, l);
        // S = Q K^T: tile nt covers keys k0 + 8 nt .. + 7.
        SmallVector<Value> sc;
        for (int64_t nt = 0; nt < kKeyTile / 8; ++nt) {
          Value kRow = k.mul(k.add(k.c(nt * 8), gid), k.c(stride));
          SmallVector<Value> c(4, zero);
          for (int64_t ks = 0; ks < D / 16; ++ks) {
            Value off = k.add(kRow, k.add(k.c(ks * 16), tig2));
            Value b0 = toF16(k.vload(sm, {off}, 2));
            Value b1 = toF16(k.vload(sm, {k.add(off, k.c(8))}, 2));
            c = mmaF16(k, ArrayRef<Value>(qa).slice(ks * 4, 4), {b0, b1}, c);
          }
          sc.append(c);
        }
        // This thread's keys s = k0 + 8 nt + 2 tig + j: in range, unmasked.
        SmallVector<Value> keys, keyOk;
        for (int64_t nt = 0; nt < kKeyTile / 8; ++nt)
          for (int64_t j = 0; j < 2; ++j) {
            Value s = k.add(k0, k.add(k.c(nt * 8 + j), tig2));
            Value ok = k.lt(s, a.S);
            if (a.mask) {
              Value mv = k.load(a.mask, {bb, k.min(s, sLast)});
              Value z = arith::ConstantOp::create(
                  b, l, b.getIntegerAttr(mv.getType(), 0));
              ok = k.land(ok, k.cmp(arith::CmpIPredicate::ne, mv, z));
            }
            keys.push_back(s);
            keyOk.push_back(ok);
          }
        SmallVector<Value> next(4), p(sc.size()), alpha(2);
        for (int64_t r = 0; r < 2; ++r) {
          SmallVector<Value> xs, keep;
          Value tmax = ninf;
          for (int64_t nt = 0; nt < kKeyTile / 8; ++nt)
            for (int64_t j = 0; j < 2; ++j) {
              Value kp = keyOk[nt * 2 + j];
              if (a.causal)
                kp = k.land(kp, k.le(keys[nt * 2 + j], k.add(rows[r], a.P)));
              Value x = k.fmul(sc[nt * 4 + r * 2 + j], k.f(a.scale));
              tmax = k.fmax(tmax, k.sel(kp, x, ninf));
              xs.push_back(x);
              keep.push_back(kp);
            }
          Value mn = k.fmax(cur[r], quadAll(tmax, /*isMax=*/true));
          alpha[r] = k.rescale(cur[r], mn);
          Value sum = zero;
          for (int64_t nt = 0; nt < kKeyTile / 8; ++nt)
            for (int64_t j = 0; j < 2; ++j) {
              Value pv = k.weight(keep[nt * 2 + j], xs[nt * 2 + j], mn);
              p[nt * 4 + r * 2 + j] = pv;
              sum = k.fadd(sum, pv);
            }
          next[r] = mn;
          next[2 + r] =
              k.fma(cur[2 + r], alpha[r], quadAll(sum, /*isMax=*/false));
        }
        SmallVector<Value> o;
        for (int64_t i = 0; i < 4 * ND; ++i)
          o.push_back(k.fmul(cur[4 + i], alpha[(i % 4) / 2]));
        // O += P V over the tile's two k steps of 16 keys.
        for (int64_t kb = 0; kb < kKeyTile / 16; ++kb) {
          int64_t t = 2 * kb;
          SmallVector<Value> pa{pack(p[t * 4], p[t * 4 + 1]),
                                pack(p[t * 4 + 2], p[t * 4 + 3]),
                                pack(p[t * 4 + 4], p[t * 4 + 5]),
                                pack(p[t * 4 + 6], p[t * 4 + 7])};
          Value vRow =
              k.add(vBase, k.mul(k.add(k.c(kb * 16), tig2), k.c(stride)));
          for (int64_t nd = 0; nd < ND; ++nd) {
            Value col = k.add(k.c(nd * 8), gid);
            auto v = [&](int64_t kr) {
              return smLoad(k, sm, k.add(vRow, k.add(k.c(kr * stride), col)));
            };
            SmallVector<Value> c(o.begin() + nd * 4, o.begin() + nd * 4 + 4);
            c = mmaF16(k, pa, {pack(v(0), v(1)), pack(v(8), v(9))}, c);
            std::copy(c.begin(), c.end(), o.begin() + nd * 4);
          }
        }
        next.append(o);
        return next;
      });
  for (int64_t r = 0; r < 2; ++r) {
    OpBuilder::InsertionGuard ig(b);
    k.enterIf(k.lt(rows[r], a.T));
    Value lr = st[2 + r];
    Value isZero = k.feq(lr, zero);
    for (int64_t nd = 0; nd < ND; ++nd)
      for (int64_t j = 0; j < 2; ++j) {
        Value v = k.sel(isZero, zero, k.fdiv(st[4 + nd * 4 + r * 2 + j], lr));
        Value col = k.add(hCol, k.add(k.c(nd * 8 + j), tig2));
        k.store(v, a.out, {bb, rows[r], col});
      }
  }
}

/// Whether the split-K decode path runs (on the host for the grid, in the
/// kernels for the path: the same comparison, uniform).
Value isDecode(KB &k, const Attention &a) {
  return k.le(a.T, k.c(kDecodeMaxTokens));
}

/// A gpu.launch of 128-thread blocks over `grid` with a flat f32 shared
/// buffer of `sharedFloats` (none if 0); leaves `b` in its body.
mlir::gpu::LaunchOp launchBlocks(KB &k, std::array<Value, 3> grid,
                                 int64_t sharedFloats) {
  SmallVector<Type> wg;
  if (sharedFloats > 0)
    wg.push_back(MemRefType::get(
        {sharedFloats}, k.b.getF32Type(), MemRefLayoutAttrInterface(),
        mlir::gpu::AddressSpaceAttr::get(k.b.getContext(),
                                         mlir::gpu::AddressSpace::Workgroup)));
  Value one = k.c(1);
  auto launch = mlir::gpu::LaunchOp::create(
      k.b, k.l, grid[0], grid[1], grid[2], k.c(kThreads), one, one,
      /*dynamicSharedMemorySize=*/nullptr, /*asyncTokenType=*/nullptr,
      /*asyncDependencies=*/{}, wg);
  Block &body = launch.getBody().front();
  k.b.setInsertionPointToEnd(&body);
  auto term = mlir::gpu::TerminatorOp::create(k.b, k.l);
  k.b.setInsertionPoint(term);
  return launch;
}

int64_t featuresPerLane(int64_t D) { return (D + kWarp - 1) / kWarp; }

/// 16-byte rows (the prefill tiles' loads), at most kMaxHeadDim, split
/// evenly over the lanes.
bool headDimSupported(int64_t D) {
  return D > 0 && D % 4 == 0 && D <= kMaxHeadDim && D % featuresPerLane(D) == 0;
}

/// The boolean `key` of the enclosing qwen.quant_kernel dictionary, true
/// when absent.
bool kernelOption(Operation *op, StringRef key) {
  for (Operation *p = op; p; p = p->getParentOp())
    if (auto d = p->getAttrOfType<DictionaryAttr>("qwen.quant_kernel"))
      if (auto a = d.getAs<BoolAttr>(key))
        return a.getValue();
  return true;
}

} // namespace

bool attentionGPUApplies(AttentionOp op) {
  const int64_t NH = op.getNumHeads(), KV = op.getNumKvHeads(),
                D = op.getHeadDim();
  if (!targetsGPU(op) || !kernelOption(op, "gpu_attention") || KV <= 0 ||
      NH % KV || !headDimSupported(D))
    return false;
  auto rows = [](Value v, int64_t width) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    return t && t.getRank() == 3 && t.getElementType().isF32() &&
           t.getShape()[2] == width;
  };
  auto past = [](Value v) {
    auto t = v ? dyn_cast<RankedTensorType>(v.getType()) : RankedTensorType();
    return !v || (t && t.getRank() == 4 && t.getElementType().isF32());
  };
  auto mt = op.getMask() ? dyn_cast<RankedTensorType>(op.getMask().getType())
                         : RankedTensorType();
  return rows(op.getQuery(), NH * D) && rows(op.getKey(), KV * D) &&
         rows(op.getValue(), KV * D) && past(op.getPastKey()) &&
         past(op.getPastValue()) && rows(op.getResult(), NH * D) &&
         (!op.getMask() || (mt && mt.getRank() == 2));
}

Value lowerAttentionGPU(OpBuilder &b, Location l, AttentionOp op, Value K,
                        Value V, Value P) {
  const int64_t NH = op.getNumHeads(), KV = op.getNumKvHeads(),
                D = op.getHeadDim(), G = NH / KV;
  MLIRContext *ctx = b.getContext();
  Value q = op.getQuery(), mask = op.getMask();
  auto ot = cast<RankedTensorType>(op.getResult().getType());
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < 2; ++i)
    if (ot.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, l, q, i));
  Value init = tensor::EmptyOp::create(b, l, ot, dyn);
  // Loops (b, t, n), n = h D + d. K, V and the mask are read inside the
  // body; as operands (at key 0) they name the buffers the kernels take.
  AffineExpr e0 = getAffineDimExpr(0, ctx), e2 = getAffineDimExpr(2, ctx);
  AffineExpr z = getAffineConstantExpr(0, ctx);
  AffineMap id = AffineMap::getMultiDimIdentityMap(3, ctx);
  AffineMap kvMap =
      AffineMap::get(3, 0, {e0, e2.floorDiv(G * D), z, e2 % D}, ctx);
  SmallVector<Value> ins{q, K, V};
  SmallVector<AffineMap> maps{id, kvMap, kvMap};
  if (mask) {
    ins.push_back(mask);
    maps.push_back(AffineMap::get(3, 0, {e0, z}, ctx));
  }
  maps.push_back(id);
  const bool causal = op.getCausal();
  const float scale = (float)op.getEffectiveScale();
  auto body = [&](OpBuilder &nb, Location nl, ValueRange) {
    KB k{nb, nl};
    Value bb = linalg::IndexOp::create(nb, nl, 0);
    Value t = linalg::IndexOp::create(nb, nl, 1);
    Value n = linalg::IndexOp::create(nb, nl, 2);
    Value h = k.div(n, k.c(D)), d = k.rem(n, k.c(D));
    Value kvh = k.div(h, k.c(G));
    Value S = tensor::DimOp::create(nb, nl, K, 2);
    Value lim = causal ? k.add(k.add(t, P), k.c(1)) : S;
    auto at = [&](Value tns, ValueRange ix) {
      return tensor::ExtractOp::create(nb, nl, tns, ix).getResult();
    };
    SmallVector<Value> init{k.f(kNegInf), k.f(0.0f), k.f(0.0f)};
    SmallVector<Value> st =
        k.loop(k.c(0), lim, k.c(1), init, [&](Value s, ValueRange cur) {
          Value dot =
              k.loop(k.c(0), k.c(D), k.c(1), ValueRange{k.f(0.0f)},
                     [&](Value dd, ValueRange a) {
                       Value qv = at(q, {bb, t, k.add(k.mul(h, k.c(D)), dd)});
                       Value kv = at(K, {bb, kvh, s, dd});
                       return SmallVector<Value>{k.fma(qv, kv, a[0])};
                     })[0];
          Value x = k.fmul(dot, k.f(scale));
          Value keep = arith::ConstantIntOp::create(nb, nl, nb.getI1Type(), 1);
          if (mask) {
            Value mv = at(mask, {bb, s});
            Value zi = arith::ConstantOp::create(
                nb, nl, nb.getIntegerAttr(mv.getType(), 0));
            keep = k.cmp(arith::CmpIPredicate::ne, mv, zi);
          }
          Value mn = k.fmax(cur[0], k.sel(keep, x, k.f(kNegInf)));
          Value alpha = k.rescale(cur[0], mn), p = k.weight(keep, x, mn);
          Value acc = k.fma(p, at(V, {bb, kvh, s, d}), k.fmul(cur[2], alpha));
          return SmallVector<Value>{mn, k.fma(cur[1], alpha, p), acc};
        });
    Value zero = k.f(0.0f);
    Value r = k.sel(k.feq(st[1], zero), zero, k.fdiv(st[2], st[1]));
    linalg::YieldOp::create(nb, nl, r);
  };
  auto g = linalg::GenericOp::create(
      b, l, TypeRange{ot}, ins, ValueRange{init}, maps,
      SmallVector<utils::IteratorType>(3, utils::IteratorType::parallel), body);
  g->setAttr(kKernelAttrName,
             b.getDictionaryAttr(
                 {b.getNamedAttr("kind", b.getStringAttr("attention")),
                  b.getNamedAttr("num_heads", b.getI64IntegerAttr(NH)),
                  b.getNamedAttr("num_kv_heads", b.getI64IntegerAttr(KV)),
                  b.getNamedAttr("head_dim", b.getI64IntegerAttr(D)),
                  b.getNamedAttr("scale", b.getF32FloatAttr(scale)),
                  b.getNamedAttr("causal", b.getBoolAttr(causal)),
                  b.getNamedAttr(
                      "mma_prefill",
                      b.getBoolAttr(D % 16 == 0 &&
                                    kernelOption(op, "gpu_attention_mma")))}));
  return g.getResult(0);
}

LogicalResult emitAttentionGPU(OpBuilder &b, linalg::GenericOp g) {
  auto attr = g->getAttrOfType<DictionaryAttr>(kKernelAttrName);
  auto nh = attr.getAs<IntegerAttr>("num_heads");
  auto kv = attr.getAs<IntegerAttr>("num_kv_heads");
  auto hd = attr.getAs<IntegerAttr>("head_dim");
  auto sc = attr.getAs<FloatAttr>("scale");
  auto causal = attr.getAs<BoolAttr>("causal");
  auto mma = attr.getAs<BoolAttr>("mma_prefill");
  unsigned nIn = g.getNumDpsInputs();
  if (!nh || !kv || !hd || !sc || !causal || !mma || (nIn != 3 && nIn != 4) ||
      g.getNumDpsInits() != 1)
    return failure();
  Attention a;
  a.q = g.getDpsInputs()[0];
  a.K = g.getDpsInputs()[1];
  a.V = g.getDpsInputs()[2];
  a.mask = nIn == 4 ? g.getDpsInputs()[3] : Value();
  a.out = g.getDpsInits()[0];
  a.NH = nh.getInt();
  a.KV = kv.getInt();
  a.D = hd.getInt();
  a.scale = (float)sc.getValueAsDouble();
  a.causal = causal.getValue();
  a.mma = mma.getValue();
  if (a.KV <= 0 || a.NH % a.KV || !headDimSupported(a.D) || (a.mma && a.D % 16))
    return failure();
  a.G = a.NH / a.KV;
  a.E = featuresPerLane(a.D);
  a.activeLanes = a.D / a.E;
  for (Value v : {a.q, a.K, a.V, a.mask, a.out}) {
    auto t = v ? dyn_cast<MemRefType>(v.getType()) : MemRefType();
    if (v && (!t || !t.getLayout().isIdentity()))
      return failure(); // the generic stays: correct, slow
  }
  Location l = g.getLoc();
  b.setInsertionPoint(g);
  KB hk{b, l};
  a.B = memref::DimOp::create(b, l, a.q, 0);
  a.T = memref::DimOp::create(b, l, a.q, 1);
  a.S = memref::DimOp::create(b, l, a.K, 2);
  a.P = hk.sub(a.S, a.T);
  DecodePlan d = planDecode(a);
  Value one = hk.c(1);
  Value decode = isDecode(hk, a);
  // Splits: about kTargetBlocks blocks, at least kMinSplitKeys keys each.
  Value perSplit =
      hk.max(one, hk.mul(hk.mul(hk.mul(a.B, hk.c(a.KV)), a.T), hk.c(d.groups)));
  Value want = hk.ceilDiv(hk.c(kTargetBlocks), perSplit);
  Value most = hk.max(one, hk.ceilDiv(a.S, hk.c(kMinSplitKeys)));
  Value ns0 = hk.max(one, hk.min(want, most));
  d.chunk = hk.max(one, hk.ceilDiv(a.S, ns0));
  d.NS = hk.max(one, hk.ceilDiv(a.S, d.chunk));
  Value rowsBT = hk.mul(hk.mul(a.B, a.T), hk.c(a.NH));
  // Scratch of the splits' partials; one row in prefill (never read).
  Value parts = hk.max(one, hk.sel(decode, hk.mul(rowsBT, d.NS), one));
  Type f32 = b.getF32Type();
  d.acc = memref::AllocOp::create(
      b, l, MemRefType::get({ShapedType::kDynamic, a.D}, f32),
      ValueRange{parts});
  d.ml = memref::AllocOp::create(
      b, l, MemRefType::get({ShapedType::kDynamic, 2}, f32), ValueRange{parts});
  auto grid = [&](Value dec, Value pre) {
    return hk.max(one, hk.sel(decode, dec, pre));
  };
  {
    OpBuilder::InsertionGuard ig(b);
    mlir::gpu::LaunchOp launch = launchBlocks(
        hk,
        {grid(d.NS, hk.ceilDiv(a.T, hk.c(prefillQueries(a)))),
         grid(hk.mul(a.T, hk.c(d.groups)), hk.c(a.NH)),
         grid(hk.mul(a.B, hk.c(a.KV)), a.B)},
        std::max(decodeSharedFloats(a, d), prefillSharedFloats(a)));
    KB k{b, l};
    Value sm = launch.getWorkgroupAttributions()[0];
    auto path = scf::IfOp::create(b, l, isDecode(k, a), /*withElse=*/true);
    b.setInsertionPointToStart(path.thenBlock());
    emitDecodeBlock(k, a, d, launch.getBlockIds(), launch.getThreadIds().x, sm);
    b.setInsertionPointToStart(path.elseBlock());
    if (a.mma)
      emitPrefillMmaBlock(k, a, launch.getBlockIds(), launch.getThreadIds().x,
                          sm);
    else
      emitPrefillBlock(k, a, launch.getBlockIds(), launch.getThreadIds().x, sm);
  }
  {
    OpBuilder::InsertionGuard ig(b);
    mlir::gpu::LaunchOp launch = launchBlocks(
        hk, {grid(hk.ceilDiv(rowsBT, hk.c(kWarps)), one), one, one}, 0);
    KB k{b, l};
    k.enterIf(isDecode(k, a));
    emitCombineBlock(k, a, d, launch.getBlockIds().x, launch.getThreadIds().x);
  }
  memref::DeallocOp::create(b, l, d.acc);
  memref::DeallocOp::create(b, l, d.ml);
  g.erase();
  return success();
}

} // namespace qwen::gpu
