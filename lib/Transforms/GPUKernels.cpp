//===- GPUKernels.cpp - the model function onto CUDA kernels --------------===//
//
// See include/qwen/Transforms/GPUKernels.h.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/GPUKernels.h"
#include "qwen/Transforms/GPUAttention.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;

namespace qwen::gpu {

namespace {

/// Threads per block of a mapped loop nest, and warps per block (one output
/// channel each) of the fused GEMV.
constexpr int64_t kBlockThreads = 256;
constexpr int64_t kGemvWarps = 4;
constexpr int64_t kWarp = 32;
/// Bytes of packed codes one lane reads per step: one 128-bit load.
constexpr int64_t kLaneBytes = 16;

Value idx(OpBuilder &b, Location l, int64_t v) {
  return arith::ConstantIndexOp::create(b, l, v);
}
Value i32c(OpBuilder &b, Location l, int32_t v) {
  return arith::ConstantIntOp::create(b, l, b.getI32Type(), v);
}
Value f32c(OpBuilder &b, Location l, float v) {
  return arith::ConstantFloatOp::create(b, l, b.getF32Type(), APFloat(v));
}
Value ceilDiv(OpBuilder &b, Location l, Value a, Value d) {
  return arith::CeilDivUIOp::create(b, l, a, d);
}

/// A gpu.launch of grid x block, its body ready for ops (before the
/// terminator).
mlir::gpu::LaunchOp makeLaunch(OpBuilder &b, Location l,
                               std::array<Value, 3> grid,
                               std::array<Value, 3> block,
                               TypeRange workgroup = {},
                               Value dynamicSharedBytes = nullptr) {
  auto launch = mlir::gpu::LaunchOp::create(
      b, l, grid[0], grid[1], grid[2], block[0], block[1], block[2],
      dynamicSharedBytes, /*asyncTokenType=*/nullptr,
      /*asyncDependencies=*/{}, workgroup);
  Block &body = launch.getBody().front();
  if (body.empty() || !body.back().hasTrait<OpTrait::IsTerminator>()) {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToEnd(&body);
    mlir::gpu::TerminatorOp::create(b, l);
  }
  return launch;
}

/// The global-memory address of element 0 of an identity-layout memref, in
/// a kernel: read-only loads through it become ld.global.nc.
Value globalBase(OpBuilder &b, Location l, Value memref) {
  MLIRContext *ctx = b.getContext();
  Value p = memref::ExtractAlignedPointerAsIndexOp::create(b, l, memref);
  p = arith::IndexCastOp::create(b, l, b.getI64Type(), p);
  p = LLVM::IntToPtrOp::create(b, l, LLVM::LLVMPointerType::get(ctx), p);
  return LLVM::AddrSpaceCastOp::create(b, l, LLVM::LLVMPointerType::get(ctx, 1),
                                       p);
}

bool isIdentityMemRef(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  return t && t.getLayout().isIdentity();
}

/// Collapses an identity-layout memref [d0, ..., dn-1, last] to [M, last].
Value collapseTo2D(OpBuilder &b, Location l, Value v) {
  auto t = cast<MemRefType>(v.getType());
  if (t.getRank() == 2)
    return v;
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < t.getRank(); ++i)
    lead.push_back(i);
  return memref::CollapseShapeOp::create(
      b, l, v, SmallVector<ReassociationIndices>{lead, {t.getRank() - 1}});
}

//===----------------------------------------------------------------------===//
// Fused quantized linear kernels
//===----------------------------------------------------------------------===//

/// Token counts from which the tensor-core GEMM replaces the GEMV (which
/// reads the weight once per token).
constexpr int64_t kMmaMinTokens = 16;

/// Index / address arithmetic inside a kernel.
struct KernelBuilder {
  OpBuilder &b;
  Location l;
  Value c(int64_t v) { return idx(b, l, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, l, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, l, x, y); }
  Value div(Value x, Value y) { return arith::DivUIOp::create(b, l, x, y); }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, l, x, y); }
  Value min(Value x, Value y) { return arith::MinUIOp::create(b, l, x, y); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, x, y);
  }
  /// `if (lane == 0)`: the lane that writes a warp's result.
  scf::IfOp ifLaneZero(Value lane) {
    return scf::IfOp::create(
        b, l, arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, lane, c(0)),
        /*withElse=*/false);
  }
  Value i64(Value x) {
    return arith::IndexCastOp::create(b, l, b.getI64Type(), x);
  }
  /// The address `off` bytes (index) after `base` (any address space).
  Value gep(Value base, Value off) {
    return LLVM::GEPOp::create(b, l, base.getType(), b.getI8Type(), base,
                               ValueRange{i64(off)});
  }
  /// A load of `t` at byte offset `off` (index) from a base pointer;
  /// invariant (read-only during the kernel) unless said otherwise.
  Value load(Value base, Value off, Type t, unsigned align,
             bool invariant = true) {
    return LLVM::LoadOp::create(b, l, t, gep(base, off), align,
                                /*isVolatile=*/false,
                                /*isNonTemporal=*/false, invariant);
  }
  /// A store of `v` at byte offset `off` (index) from a base pointer.
  void store(Value v, Value base, Value off, unsigned align) {
    LLVM::StoreOp::create(b, l, v, gep(base, off), align);
  }
  /// Element `i` of a 32-bit word as a sign-extended `bits`-wide field.
  Value field(Value word, int64_t i, int64_t bits) {
    Value v =
        arith::ShLIOp::create(b, l, word, i32c(b, l, 32 - bits - bits * i));
    return arith::ShRSIOp::create(b, l, v, i32c(b, l, 32 - bits));
  }
};

/// A 1-D launch of one thread per item, blocks of kBlockThreads: leaves `b`
/// inside the kernel's `lin < items` guard and returns lin, the thread's
/// item.
Value launchPerItem(OpBuilder &b, Location l, Value items) {
  Value one = idx(b, l, 1), block = idx(b, l, kBlockThreads);
  Value grid = arith::MaxUIOp::create(b, l, ceilDiv(b, l, items, block), one);
  mlir::gpu::LaunchOp launch = makeLaunch(b, l, {grid, one, one}, {block, one, one});
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  KernelBuilder kb{b, l};
  Value lin = kb.add(kb.mul(launch.getBlockIds().x, kb.c(kBlockThreads)), launch.getThreadIds().x);
  b.setInsertionPointToStart(scf::IfOp::create(b, l, kb.lt(lin, items), /*withElse=*/false).thenBlock());
  return lin;
}

/// The operands of a fused linear kernel as 2-D views: x [M, K] (f32, or
/// i8 for int8 activations), codes [N, rowBytes] (packed codes, or i8),
/// scales (weight-only), out [M, N]; M is dynamic, N and K static.
struct LinearOperands {
  Value x, codes, scales, out, M;
  int64_t N, K, rowBytes;
};

/// A scale (f32 or f16) as f32.
Value toF32(OpBuilder &b, Location l, Value s) {
  return s.getType().isF32()
             ? s
             : arith::ExtFOp::create(b, l, b.getF32Type(), s).getResult();
}

/// A scale of the weight for output channel `n` and input column block
/// `col` (ignored per tensor), as f32.
Value loadScale(OpBuilder &b, Location l, Value scales, Value n, Value col) {
  SmallVector<Value> ix;
  if (cast<MemRefType>(scales.getType()).getRank() == 1)
    ix.push_back(idx(b, l, 0));
  else
    ix = {n, col};
  return toF32(b, l, memref::LoadOp::create(b, l, scales, ix));
}

/// out[m, n] += v (out holds the bias or zero).
void accumulateOut(OpBuilder &b, Location l, Value out, Value m, Value n,
                   Value v) {
  Value prev = memref::LoadOp::create(b, l, out, ValueRange{m, n});
  Value sum = isa<FloatType>(v.getType())
                  ? arith::AddFOp::create(b, l, prev, v).getResult()
                  : arith::AddIOp::create(b, l, prev, v).getResult();
  memref::StoreOp::create(b, l, sum, out, ValueRange{m, n});
}

/// Sum over the warp by butterfly shuffles (shfl.sync.bfly): every lane
/// ends with the total.
Value warpSum(OpBuilder &b, Location l, Value v) {
  for (int32_t off = kWarp / 2; off >= 1; off /= 2) {
    auto sh = mlir::gpu::ShuffleOp::create(b, l, v, i32c(b, l, off),
                                           i32c(b, l, kWarp),
                                           mlir::gpu::ShuffleMode::XOR);
    v = isa<FloatType>(v.getType())
            ? arith::AddFOp::create(b, l, v, sh.getShuffleResult()).getResult()
            : arith::AddIOp::create(b, l, v, sh.getShuffleResult()).getResult();
  }
  return v;
}

/// The frame of a warp-per-(token m, channel n) GEMV: lane L takes the
/// `perLane`-column blocks k0 = perLane (L + 32 i) of row n; `block(k0)`
/// returns a block's unscaled dot product (a block lies in one scale group,
/// as groups are multiples of 32 >= perLane), scaled by its group's scale
/// and summed per lane; a butterfly shuffle reduction, and lane 0 applies
/// a per-channel / per-tensor scale and adds into out[m, n].
void emitGemvFrame(KernelBuilder &kb, const LinearOperands &o, Value n, Value m,
                   Value lane, int64_t perLane, int64_t group,
                   llvm::function_ref<Value(Value k0)> block) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  auto ifOp = scf::IfOp::create(b, l, kb.lt(n, kb.c(o.N)), /*withElse=*/false);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  auto loop =
      scf::ForOp::create(b, l, kb.mul(lane, kb.c(perLane)), kb.c(o.K),
                         kb.c(perLane * kWarp), ValueRange{f32c(b, l, 0)});
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = loop.getInductionVar();
    Value sum = block(k0);
    Value acc = loop.getRegionIterArgs()[0];
    acc = group > 0
              ? math::FmaOp::create(
                    b, l, sum,
                    loadScale(b, l, o.scales, n, kb.div(k0, kb.c(group))), acc)
                    .getResult()
              : arith::AddFOp::create(b, l, acc, sum).getResult();
    scf::YieldOp::create(b, l, acc);
  }
  Value acc = warpSum(b, l, loop.getResult(0));
  auto store = kb.ifLaneZero(lane);
  b.setInsertionPointToStart(store.thenBlock());
  if (group == 0)
    acc =
        arith::MulFOp::create(b, l, acc, loadScale(b, l, o.scales, n, kb.c(0)));
  accumulateOut(b, l, o.out, m, n, acc);
}

/// Decode (few tokens): one warp per output channel n of token m. Each lane
/// owns 16-byte blocks of W[n, :] (32 4-bit / 16 8-bit codes, all in one
/// scale group since groups are multiples of 32): ld.global.nc.v4 of the
/// codes, v4 loads of the matching x, sign extension in registers (bfe),
/// f32 FMAs into a partial sum scaled by its group's scale; then a warp
/// shuffle reduction, and lane 0 applies a per-channel / per-tensor scale.
void emitGemvBody(KernelBuilder &kb, const LinearOperands &o, Value n, Value m,
                  Value lane, int64_t bits, int64_t group) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  Value codeBase = globalBase(b, l, o.codes), xBase = globalBase(b, l, o.x);
  Value codeRow = kb.mul(n, kb.c(o.rowBytes));
  Value xRow = kb.mul(m, kb.c(o.K * 4));
  int64_t perLane = kLaneBytes * 8 / bits;
  emitGemvFrame(kb, o, n, m, lane, perLane, group, [&](Value k0) {
    Value words = kb.load(
        codeBase, kb.add(codeRow, kb.div(kb.mul(k0, kb.c(bits)), kb.c(8))),
        VectorType::get({4}, i32), 16);
    Value xOff = kb.add(xRow, kb.mul(k0, kb.c(4)));
    int64_t perWord = 32 / bits;
    // Two partial sums so consecutive FMAs do not wait on each other.
    Value part[2] = {f32c(b, l, 0), f32c(b, l, 0)};
    for (int64_t w = 0; w < 4; ++w) {
      Value word = vector::ExtractOp::create(b, l, words, w);
      for (int64_t q = 0; q < perWord; q += 4) {
        Value xv = kb.load(xBase, kb.add(xOff, kb.c((w * perWord + q) * 4)),
                           VectorType::get({4}, f32), 16);
        for (int64_t j = q; j < q + 4; ++j) {
          Value cf =
              arith::SIToFPOp::create(b, l, f32, kb.field(word, j, bits));
          Value xs = vector::ExtractOp::create(b, l, xv, j - q);
          part[j & 1] = math::FmaOp::create(b, l, cf, xs, part[j & 1]);
        }
      }
    }
    return arith::AddFOp::create(b, l, part[0], part[1]).getResult();
  });
}

/// Coordinates of a thread in an mma.sync m16n8kK tile: groupID (lane / 4)
/// and threadID_in_group (lane % 4) of the PTX ISA's fragment layouts.
struct MmaLane {
  Value gid, tig;
};

/// The rows of the 16 x 8 accumulator tile a thread holds (c0, c1: row
/// gid; c2, c3: gid + 8) and its columns (2 tig + {0, 1}).
void storeMmaTile(KernelBuilder &kb, const LinearOperands &o, MmaLane ml,
                  Value m0, Value n0, ArrayRef<Value> acc,
                  llvm::function_ref<Value(Value n, Value v)> epilogue) {
  OpBuilder &b = kb.b;
  for (int64_t i = 0; i < 4; ++i) {
    Value m = kb.add(m0, kb.add(ml.gid, kb.c(i >= 2 ? 8 : 0)));
    Value n = kb.add(n0, kb.add(kb.mul(ml.tig, kb.c(2)), kb.c(i & 1)));
    Value ok =
        arith::AndIOp::create(b, kb.l, kb.lt(m, o.M), kb.lt(n, kb.c(o.N)));
    auto ifOp = scf::IfOp::create(b, kb.l, ok, /*withElse=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    accumulateOut(b, kb.l, o.out, m, n, epilogue(n, acc[i]));
  }
}

/// The four results of an mma.sync (an LLVM struct) as values.
SmallVector<Value> mmaResults(OpBuilder &b, Location l, Value d) {
  SmallVector<Value> r;
  for (int64_t i = 0; i < 4; ++i)
    r.push_back(LLVM::ExtractValueOp::create(b, l, d, i));
  return r;
}

/// Prefill (many tokens), W4A16 / W8A16 on tensor cores: each warp computes
/// a 16-token x 8-channel tile with mma.sync.aligned.m16n8k16 (f16 inputs,
/// f32 accumulation). Per k step of 16 a thread builds its fragments in
/// registers (PTX ISA fragment layouts): A = x rows gid / gid + 8, columns
/// 2 tig (+1, +8, +9), rounded to f16; B = the codes of channel n0 + gid at
/// the same columns, exact in f16 (|code| <= 127). The f32 result of each
/// step is scaled by the step's group scale per column (a step lies in one
/// group), per-channel / per-tensor scales at the end. Out-of-range tokens
/// and channels read a clamped row (finite) and are not stored.
void emitMmaA16Body(KernelBuilder &kb, const LinearOperands &o, Value n0,
                    Value m0, MmaLane ml, int64_t bits, int64_t group) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  MLIRContext *ctx = b.getContext();
  Type f16 = b.getF16Type(), f32 = b.getF32Type(), i32 = b.getI32Type();
  auto h2 = VectorType::get({2}, f16);
  Value codeBase = globalBase(b, l, o.codes), xBase = globalBase(b, l, o.x);
  Value mLast = arith::SubIOp::create(b, l, o.M, kb.c(1));
  Value rowA[2] = {kb.min(kb.add(m0, ml.gid), mLast),
                   kb.min(kb.add(m0, kb.add(ml.gid, kb.c(8))), mLast)};
  Value nB = kb.min(kb.add(n0, ml.gid), kb.c(o.N - 1));
  Value nCol[2] = {kb.min(kb.add(n0, kb.mul(ml.tig, kb.c(2))), kb.c(o.N - 1)),
                   kb.min(kb.add(n0, kb.add(kb.mul(ml.tig, kb.c(2)), kb.c(1))),
                          kb.c(o.N - 1))};
  Value zero = f32c(b, l, 0);
  auto loop = scf::ForOp::create(b, l, kb.c(0), kb.c(o.K), kb.c(16),
                                 ValueRange{zero, zero, zero, zero});
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = loop.getInductionVar();
    Value col = kb.add(k0, kb.mul(ml.tig, kb.c(2)));
    SmallVector<Value> a, bf;
    // a0: (gid, col), a1: (gid + 8, col), a2: (gid, col + 8), a3: (gid + 8, col
    // + 8)
    for (int64_t r = 0; r < 4; ++r) {
      Value off = kb.mul(kb.add(kb.mul(rowA[r & 1], kb.c(o.K)),
                                kb.add(col, kb.c(r >= 2 ? 8 : 0))),
                         kb.c(4));
      Value xv = kb.load(xBase, off, VectorType::get({2}, f32), 8);
      a.push_back(arith::TruncFOp::create(b, l, h2, xv));
    }
    // b0: rows (k) col, col + 1 of channel nB; b1: col + 8, col + 9.
    for (int64_t r = 0; r < 2; ++r) {
      Value k = kb.add(col, kb.c(r * 8));
      Value off = kb.add(kb.mul(nB, kb.c(o.rowBytes)),
                         kb.div(kb.mul(k, kb.c(bits)), kb.c(8)));
      // Both codes in one byte (4-bit, k even) or two bytes (8-bit).
      Type t = bits == 4 ? Type(b.getI8Type()) : Type(b.getI16Type());
      Value word = arith::ExtUIOp::create(
          b, l, i32, kb.load(codeBase, off, t, bits == 4 ? 1 : 2));
      Value c0 = kb.field(word, 0, bits), c1 = kb.field(word, 1, bits);
      Value pair = vector::FromElementsOp::create(
          b, l, h2,
          ValueRange{arith::SIToFPOp::create(b, l, f16, c0),
                     arith::SIToFPOp::create(b, l, f16, c1)});
      bf.push_back(pair);
    }
    SmallVector<Value> c0(4, zero);
    auto resT = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
    Value d = NVVM::MmaOp::create(
        b, l, resT, a, bf, c0, {16, 8, 16}, std::nullopt, std::nullopt,
        std::array{NVVM::MMATypes::f16, NVVM::MMATypes::f16},
        std::array{NVVM::MMALayout::row, NVVM::MMALayout::col});
    SmallVector<Value> part = mmaResults(b, l, d), acc;
    for (int64_t i = 0; i < 4; ++i) {
      Value prev = loop.getRegionIterArgs()[i];
      acc.push_back(
          group > 0 ? math::FmaOp::create(b, l, part[i],
                                          loadScale(b, l, o.scales, nCol[i & 1],
                                                    kb.div(k0, kb.c(group))),
                                          prev)
                          .getResult()
                    : arith::AddFOp::create(b, l, prev, part[i]).getResult());
    }
    scf::YieldOp::create(b, l, acc);
  }
  SmallVector<Value> accs(loop.getResults());
  storeMmaTile(kb, o, ml, m0, n0, accs, [&](Value n, Value v) {
    return group > 0 ? v
                     : arith::MulFOp::create(
                           b, l, v, loadScale(b, l, o.scales, n, kb.c(0)))
                           .getResult();
  });
}

//===----------------------------------------------------------------------===//
// Tiled tensor-core prefill GEMM
//===----------------------------------------------------------------------===//
//
// A block of kTileThreads = 4 warps computes a kTileM x kTileN (64 tokens x
// 64 channels) tile of out; warp w owns the 32 x 32 quarter at rows
// 32 (w / 2), columns 32 (w % 2): 2 x 4 mma tiles of 16 x 8, 32 f32 / i32
// accumulators a thread. 64 x 64 x 4 warps: N of every Qwen projection is
// a multiple of 64 (896, 4864, 128, 151936), the four warps share the same
// 128 threads as the decode GEMV of the launch, each k step of a warp reads
// 2 + 2 ldmatrix.x4 for 8 mma, and the shared memory (37-40 KB for A16,
// 30 KB for W8A8) stays under the 48 KB a block may have without the
// dynamic-shared-memory opt-in, leaving room for 4 (sm_80, 164 KB) to 5
// (sm_90, 228 KB) blocks an SM. The same tile on every arch: more stages
// or 128-token tiles on sm_90 are a tuning step that needs measurements on
// the GPU (the runtime's mgpuLaunchKernel already opts in above 48 KB).
//
// K advances by stages (64 inputs for W8A8, 32 for A16: 64 bytes of an
// operand row either way once in the mma's type): cp.async (16 bytes, .cg,
// zero-filled outside M, N and K) stages the next kStages - 1 stages while
// the current one is consumed (cp.async.commit_group / wait_group).
//
// W4A16 / W8A16: x is f32 and the codes are packed, so neither can feed
// ldmatrix as it lands. Once per stage the block converts both into f16
// tiles in shared memory (x rounded to f16; a weight code times its group's
// scale, in f32 and then rounded once): each weight is dequantized once per
// block (not once per warp, as dequantizing in registers after ldmatrix of
// the codes would: both warps of a column half need the same B fragments),
// and then A and B fragments come from ldmatrix like any f16 GEMM.
// W8A8: q_x and the codes are already the mma's s8 operands: ldmatrix reads
// them straight from the cp.async stages.
//
// Both operand tiles keep K contiguous in a row (x [m][k], W [n][k]): the
// "row" A and "col" B layouts of mma.sync, so ldmatrix needs no .trans.
// Rows that ldmatrix reads are padded to kTilePitch = 80 bytes: the 8 rows
// of an 8 x 8 matrix start 20 banks apart (0, 20, 8, 28, 16, 4, 24, 12) and
// their 16-byte segments cover the 32 banks once (no conflict).

constexpr int64_t kTileM = 64, kTileN = 64, kTileThreads = 128;
constexpr int64_t kWarpTileM = 32, kWarpTileN = 32;
constexpr int64_t kStages = 3;
/// Bytes of a stage's row of codes (W8A8: 64 k, two m16n8k32 steps) or of
/// f16 operand (A16: 32 k, two m16n8k16 steps), and their padded pitch.
constexpr int64_t kStageBytes = 64, kTilePitch = kStageBytes + 16;
/// K of one stage of the A16 GEMM (f16: 2 bytes each).
constexpr int64_t kA16StageK = kStageBytes / 2;

/// Which prefill kernel --qwen-gpu-fused-kernels emits for the fused
/// linears (option gemm=): the tiled GEMM above, or the older one where each
/// warp loads its fragments straight from global memory (kept to check the
/// tiled one against on a GPU).
enum class GemmKind { Direct, Tiled };

/// The shared-memory address (llvm.ptr<3>) of a workgroup memref.
Value sharedBase(OpBuilder &b, Location l, Value memref) {
  Value p = memref::ExtractAlignedPointerAsIndexOp::create(b, l, memref);
  p = arith::IndexCastOp::create(b, l, b.getI64Type(), p);
  return LLVM::IntToPtrOp::create(
      b, l, LLVM::LLVMPointerType::get(b.getContext(), 3), p);
}

/// Stages rows [r0, r0 + rows) x bytes [c0, c0 + rowBytes) of a row-major
/// global matrix (`srcPitch` bytes a row) into shared memory at `dst` (row
/// pitch `dstPitch`), one cp.async per `chunk` bytes (16: .cg, L2 only; 4
/// or 8: .ca, the only forms of those sizes), chunk c of the tile to
/// thread c mod kTileThreads (neighbouring threads: neighbouring chunks of
/// a row). Chunks of rows >= rowEnd or at bytes >= byteEnd (the M / N and K
/// tails; byteEnd is a multiple of `chunk`) read nothing and are
/// zero-filled (src-size 0), so the mma adds zeros for them; their source
/// address is clamped to the matrix's start.
void copyTileAsync(KernelBuilder &kb, Value tid, Value src, int64_t srcPitch,
                   Value r0, Value rowEnd, Value c0, int64_t byteEnd, Value dst,
                   int64_t dstPitch, int64_t rows, int64_t rowBytes,
                   int64_t chunk = 16) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  int64_t perRow = rowBytes / chunk, chunks = rows * perRow;
  for (int64_t first = 0; first < chunks; first += kTileThreads) {
    OpBuilder::InsertionGuard g(b);
    Value c = kb.add(tid, kb.c(first));
    if (first + kTileThreads > chunks)
      b.setInsertionPointToStart(
          scf::IfOp::create(b, l, kb.lt(c, kb.c(chunks)), false).thenBlock());
    Value row = kb.div(c, kb.c(perRow));
    Value col = kb.mul(kb.rem(c, kb.c(perRow)), kb.c(chunk));
    Value gr = kb.add(r0, row), gc = kb.add(c0, col);
    Value valid = arith::AndIOp::create(b, l, kb.lt(gr, rowEnd),
                                        kb.lt(gc, kb.c(byteEnd)));
    Value off = arith::SelectOp::create(
        b, l, valid, kb.add(kb.mul(gr, kb.c(srcPitch)), gc), kb.c(0));
    Value bytes =
        arith::SelectOp::create(b, l, valid, i32c(b, l, chunk), i32c(b, l, 0));
    NVVM::CpAsyncOp::create(
        b, l, kb.gep(dst, kb.add(kb.mul(row, kb.c(dstPitch)), col)),
        kb.gep(src, off), chunk,
        chunk == 16 ? NVVM::LoadCacheModifierKind::CG
                    : NVVM::LoadCacheModifierKind::CA,
        bytes);
  }
}

/// ldmatrix.sync.aligned.m8n8.x4.shared.b16 (PTX ISA, "Warp-level matrix
/// load instruction: ldmatrix"): lane L gives the address of row L % 8 of
/// matrix L / 8 (16 contiguous bytes); register i of lane T receives the
/// 32 bits at row T / 4, bytes 4 (T % 4) .. 4 (T % 4) + 3 of matrix i.
SmallVector<Value> ldmatrixX4(KernelBuilder &kb, Value addr) {
  OpBuilder &b = kb.b;
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type();
  auto resT = LLVM::LLVMStructType::getLiteral(ctx, {i32, i32, i32, i32});
  Value r = NVVM::LdMatrixOp::create(
      b, kb.l, resT, addr, b.getI32IntegerAttr(4),
      NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::row),
      NVVM::LdStMatrixShapeAttr::get(ctx, 8, 8),
      NVVM::LdStMatrixEltTypeAttr::get(ctx, NVVM::LdStMatrixEltType::B16));
  return mmaResults(b, kb.l, r);
}

/// Where lane L points ldmatrix.x4 for the A fragment of the 16-row tile
/// at `row0` and the k step at byte `kByte` (tile rows: K contiguous, pitch
/// `pitch`): row row0 + L % 16, byte kByte + 16 (L / 16). Matrices 0..3
/// are then (rows 0-7, k lo), (rows 8-15, k lo), (rows 0-7, k hi), (rows
/// 8-15, k hi), and thread T = 4 gid + tig receives A[gid (+8)][2 tig (+8)]
/// (f16 pairs) or A[gid (+8)][4 tig (+16)] (s8 quads): registers a0..a3 of
/// the PTX ISA's "Matrix Fragments for mma.m16n8k16 with floating point
/// type" and "Matrix Fragments for mma.m16n8k32" (integer) tables.
Value aFragmentAddr(KernelBuilder &kb, Value tile, Value row0, Value kByte,
                    Value lane, int64_t pitch = kTilePitch) {
  Value row = kb.add(row0, kb.rem(lane, kb.c(16)));
  Value col = kb.add(kByte, kb.mul(kb.div(lane, kb.c(16)), kb.c(16)));
  return kb.gep(tile, kb.add(kb.mul(row, kb.c(pitch)), col));
}

/// Where lane L points ldmatrix.x4 for the B fragments of the two 8-channel
/// tiles at `row0` (W tile rows: one channel, K contiguous): channel row0 +
/// 8 (L / 16) + L % 8, byte kByte + 16 ((L / 8) % 2). Matrices 0..3 are
/// (channels 0-7, k lo), (0-7, k hi), (8-15, k lo), (8-15, k hi): thread T
/// receives B[k = 2 tig (+8)][n = gid] (f16) or B[k = 4 tig (+16)][n = gid]
/// (s8), registers b0, b1 of the first tile then of the second (same PTX
/// ISA tables, B fragment, "col" layout).
Value bFragmentAddr(KernelBuilder &kb, Value tile, Value row0, Value kByte,
                    Value lane) {
  Value row = kb.add(row0, kb.add(kb.mul(kb.div(lane, kb.c(16)), kb.c(8)),
                                  kb.rem(lane, kb.c(8))));
  Value col =
      kb.add(kByte, kb.mul(kb.rem(kb.div(lane, kb.c(8)), kb.c(2)), kb.c(16)));
  return kb.gep(tile, kb.add(kb.mul(row, kb.c(kTilePitch)), col));
}

/// One k step (16 f16 or 32 s8: 32 bytes of a tile row) of a warp's 32 x 32
/// tile: two ldmatrix.x4 for the A fragments of its two 16-row tiles, two
/// for the B fragments of its four 8-channel tiles, eight mma.sync.
/// acc[4 (4 mi + ni) + i] is accumulator ci of mma tile (mi, ni).
void warpMmaStep(KernelBuilder &kb, Value aTile, Value bTile, Value aRow0,
                 Value bRow0, Value kByte, Value lane, bool s8,
                 MutableArrayRef<Value> acc) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  MLIRContext *ctx = b.getContext();
  auto h2 = VectorType::get({2}, b.getF16Type());
  Type accT = s8 ? Type(b.getI32Type()) : Type(b.getF32Type());
  auto asOperand = [&](Value r) {
    return s8 ? r : LLVM::BitcastOp::create(b, l, h2, r).getResult();
  };
  SmallVector<Value> a[2], bf[4];
  for (int64_t mi = 0; mi < 2; ++mi)
    for (Value r :
         ldmatrixX4(kb, aFragmentAddr(kb, aTile, kb.add(aRow0, kb.c(16 * mi)),
                                      kByte, lane)))
      a[mi].push_back(asOperand(r));
  for (int64_t p = 0; p < 2; ++p) {
    SmallVector<Value> r = ldmatrixX4(
        kb, bFragmentAddr(kb, bTile, kb.add(bRow0, kb.c(16 * p)), kByte, lane));
    for (int64_t i = 0; i < 4; ++i)
      bf[2 * p + i / 2].push_back(asOperand(r[i]));
  }
  auto resT = LLVM::LLVMStructType::getLiteral(ctx, {accT, accT, accT, accT});
  for (int64_t mi = 0; mi < 2; ++mi)
    for (int64_t ni = 0; ni < 4; ++ni) {
      MutableArrayRef<Value> c = acc.slice(4 * (4 * mi + ni), 4);
      Value d = s8 ? NVVM::MmaOp::create(
                         b, l, resT, a[mi], bf[ni], c, {16, 8, 32},
                         std::nullopt, NVVM::MMAIntOverflow::wrapped,
                         std::array{NVVM::MMATypes::s8, NVVM::MMATypes::s8},
                         std::array{NVVM::MMALayout::row, NVVM::MMALayout::col})
                         .getResult()
                   : NVVM::MmaOp::create(
                         b, l, resT, a[mi], bf[ni], c, {16, 8, 16},
                         std::nullopt, std::nullopt,
                         std::array{NVVM::MMATypes::f16, NVVM::MMATypes::f16},
                         std::array{NVVM::MMALayout::row, NVVM::MMALayout::col})
                         .getResult();
      llvm::copy(mmaResults(b, l, d), c.begin());
    }
}

/// The multistage K loop of the tiled GEMM over `numK` stages: the
/// prologue issues stages 0 .. kStages - 2; iteration kt waits until stage
/// kt has landed (cp.async.wait_group kStages - 2: at most the younger
/// stages in flight) and for every thread (bar.sync: the stage is
/// complete, and every thread is done with iteration kt - 1, whose stage
/// buffer (kt - 1) mod kStages is refilled next), issues stage kt +
/// kStages - 1, then `compute`s stage kt. Every iteration commits one group
/// (empty past the last stage) so the wait count holds to the end.
/// `compute(kt, buffer, iters)` returns the next iteration's values.
SmallVector<Value>
emitPipelinedKLoop(KernelBuilder &kb, int64_t numK, ValueRange init,
                   llvm::function_ref<void(Value kt, Value buffer)> issue,
                   llvm::function_ref<SmallVector<Value>(Value kt, Value buffer,
                                                         ValueRange iters)>
                       compute) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  for (int64_t s = 0; s + 1 < kStages; ++s) {
    if (s < numK)
      issue(kb.c(s), kb.c(s));
    NVVM::CpAsyncCommitGroupOp::create(b, l);
  }
  auto loop = scf::ForOp::create(b, l, kb.c(0), kb.c(numK), kb.c(1), init);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(loop.getBody());
  Value kt = loop.getInductionVar();
  NVVM::CpAsyncWaitGroupOp::create(b, l, kStages - 2);
  mlir::gpu::BarrierOp::create(b, l);
  Value next = kb.add(kt, kb.c(kStages - 1));
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(
        scf::IfOp::create(b, l, kb.lt(next, kb.c(numK)), false).thenBlock());
    issue(next, kb.rem(next, kb.c(kStages)));
  }
  NVVM::CpAsyncCommitGroupOp::create(b, l);
  scf::YieldOp::create(
      b, l, compute(kt, kb.rem(kt, kb.c(kStages)), loop.getRegionIterArgs()));
  return SmallVector<Value>(loop.getResults());
}

/// The block's warp position: row and column of its 32 x 32 quarter.
struct WarpTile {
  Value row0, col0, lane;
};

WarpTile warpTileOf(KernelBuilder &kb, Value tid) {
  Value warp = kb.div(tid, kb.c(kWarp));
  return {kb.mul(kb.div(warp, kb.c(2)), kb.c(kWarpTileM)),
          kb.mul(kb.rem(warp, kb.c(2)), kb.c(kWarpTileN)),
          kb.rem(tid, kb.c(kWarp))};
}

/// Adds the warp's 32 accumulators into out (guarded at the M / N tails).
void storeWarpTile(KernelBuilder &kb, const LinearOperands &o, Value m0,
                   Value n0, const WarpTile &wt, ArrayRef<Value> acc,
                   llvm::function_ref<Value(Value n, Value v)> epilogue) {
  MmaLane ml{kb.div(wt.lane, kb.c(4)), kb.rem(wt.lane, kb.c(4))};
  for (int64_t mi = 0; mi < 2; ++mi)
    for (int64_t ni = 0; ni < 4; ++ni)
      storeMmaTile(kb, o, ml, kb.add(m0, kb.add(wt.row0, kb.c(16 * mi))),
                   kb.add(n0, kb.add(wt.col0, kb.c(8 * ni))),
                   acc.slice(4 * (4 * mi + ni), 4), epilogue);
}

/// Shared memory of the A16 GEMM: kStages raw stages of x (f32, 64 x 32,
/// unpadded: only the conversion reads them, row by row) and of the codes,
/// then the f16 tiles of x and of W (64 rows of kTilePitch).
struct A16Shared {
  int64_t xStage, wStage, wRaw, xHalf, wHalf, bytes;
  explicit A16Shared(int64_t bits)
      : xStage(kTileM * kA16StageK * 4), wStage(kTileN * kA16StageK * bits / 8),
        wRaw(kStages * xStage), xHalf(wRaw + kStages * wStage),
        wHalf(xHalf + kTileM * kTilePitch), bytes(wHalf + kTileN * kTilePitch) {
  }
};

/// x stage (f32 [64][32]) -> f16 tile: thread t rounds the 4-float chunks
/// t, t + 128, ... (row c / 8, columns 4 (c % 8)): a v4 shared load, one
/// cvt per pair, an 8-byte shared store.
void convertXStage(KernelBuilder &kb, Value tid, Value raw, Value half) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  int64_t perRow = kA16StageK / 4;
  for (int64_t first = 0; first < kTileM * perRow; first += kTileThreads) {
    Value c = kb.add(tid, kb.c(first));
    Value row = kb.div(c, kb.c(perRow)), col = kb.rem(c, kb.c(perRow));
    Value v = kb.load(
        raw, kb.add(kb.mul(row, kb.c(kA16StageK * 4)), kb.mul(col, kb.c(16))),
        VectorType::get({4}, b.getF32Type()), 16,
        /*invariant=*/false);
    v = arith::TruncFOp::create(b, l, VectorType::get({4}, b.getF16Type()), v);
    kb.store(v, half,
             kb.add(kb.mul(row, kb.c(kTilePitch)), kb.mul(col, kb.c(8))), 8);
  }
}

/// A codes stage (64 rows of `2 perThread` codes of `bits`, unpadded) ->
/// f16 tile (row pitch `pitch`): thread t takes the `perThread` (16 or 8)
/// codes of row t / 2 from code perThread (t % 2), sign extends them (low
/// field first: the even code is the low nibble), multiplies by `scale`
/// (f32, the row's group scale; null: per-channel / tensor scales come after
/// the GEMM) and rounds once to f16; 16-byte stores.
void dequantStage(KernelBuilder &kb, Value tid, Value raw, Value half,
                  int64_t pitch, int64_t bits, int64_t perThread, Value scale) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  Type i32 = b.getI32Type(), f32 = b.getF32Type(), f16 = b.getF16Type();
  Value row = kb.div(tid, kb.c(2));
  Value k0 = kb.mul(kb.rem(tid, kb.c(2)), kb.c(perThread));
  int64_t words = perThread * bits / 32;
  Value v = kb.load(raw,
                    kb.add(kb.mul(row, kb.c(2 * perThread * bits / 8)),
                           kb.div(kb.mul(k0, kb.c(bits)), kb.c(8))),
                    VectorType::get({words}, i32), 4 * words,
                    /*invariant=*/false);
  SmallVector<Value> codes;
  for (int64_t w = 0; w < words; ++w) {
    Value word = vector::ExtractOp::create(b, l, v, w);
    for (int64_t j = 0; j < 32 / bits; ++j)
      codes.push_back(kb.field(word, j, bits));
  }
  Value rowOff = kb.add(kb.mul(row, kb.c(pitch)), kb.mul(k0, kb.c(2)));
  auto v8i = VectorType::get({8}, i32);
  for (int64_t h = 0; h < perThread / 8; ++h) {
    Value ci = vector::FromElementsOp::create(
        b, l, v8i, ArrayRef<Value>(codes).slice(8 * h, 8));
    Value w;
    if (scale) {
      Value cf = arith::SIToFPOp::create(b, l, VectorType::get({8}, f32), ci);
      cf = arith::MulFOp::create(
          b, l, cf,
          vector::BroadcastOp::create(b, l, VectorType::get({8}, f32), scale));
      w = arith::TruncFOp::create(b, l, VectorType::get({8}, f16), cf);
    } else {
      w = arith::SIToFPOp::create(b, l, VectorType::get({8}, f16), ci);
    }
    kb.store(w, half, kb.add(rowOff, kb.c(16 * h)), 16);
  }
}

/// The group scale of the channel this thread dequantizes (dequantStage:
/// row tid / 2 of the block's channels) for stages of `stageK` inputs,
/// carried through emitPipelinedKLoop as its last value and loaded one stage
/// ahead, so its latency hides behind the stage's mma.
struct StageScale {
  KernelBuilder &kb;
  const LinearOperands &o;
  Value myN;
  int64_t stageK, group, numK;

  StageScale(KernelBuilder &kb, const LinearOperands &o, Value n0, Value tid,
             int64_t stageK, int64_t group, int64_t numK)
      : kb(kb), o(o),
        myN(kb.min(kb.add(n0, kb.div(tid, kb.c(2))), kb.c(o.N - 1))),
        stageK(stageK), group(group), numK(numK) {}
  Value at(Value kt) {
    return loadScale(kb.b, kb.l, o.scales, myN,
                     kb.div(kb.mul(kt, kb.c(stageK)), kb.c(group)));
  }
  /// 32 zero f32 accumulators, then (groups) the first stage's scale.
  SmallVector<Value> init() {
    SmallVector<Value> v(32, f32c(kb.b, kb.l, 0));
    if (group > 0)
      v.push_back(at(kb.c(0)));
    return v;
  }
  /// Stage kt's scale (null per channel / tensor); the last of `next`
  /// becomes the next stage's.
  Value advance(Value kt, ValueRange iters, SmallVector<Value> &next) {
    if (group <= 0)
      return Value();
    next.back() = at(kb.min(kb.add(kt, kb.c(1)), kb.c(numK - 1)));
    return iters.back();
  }
};

/// The A16 tiled GEMM body of block (bx, by) (layout and pipeline above).
/// Per group (group > 0) the scale folds into the f16 weights; the next
/// stage's scale is loaded one iteration ahead (a loop-carried register) so
/// its latency hides behind the stage's mma. Per channel / tensor the
/// codes stay exact and the scale multiplies the f32 results.
void emitTiledA16Body(KernelBuilder &kb, const LinearOperands &o, Value bx,
                      Value by, Value tid, Value smem, int64_t bits,
                      int64_t group) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  A16Shared sh(bits);
  int64_t numK = (o.K + kA16StageK - 1) / kA16StageK;
  Value n0 = kb.mul(bx, kb.c(kTileN)), m0 = kb.mul(by, kb.c(kTileM));
  Value xBase = globalBase(b, l, o.x), codeBase = globalBase(b, l, o.codes);
  Value xHalf = kb.gep(smem, kb.c(sh.xHalf)),
        wHalf = kb.gep(smem, kb.c(sh.wHalf));
  WarpTile wt = warpTileOf(kb, tid);
  StageScale ss(kb, o, n0, tid, kA16StageK, group, numK);
  SmallVector<Value> acc = emitPipelinedKLoop(
      kb, numK, ss.init(),
      [&](Value kt, Value buf) {
        copyTileAsync(kb, tid, xBase, o.K * 4, m0, o.M,
                      kb.mul(kt, kb.c(kA16StageK * 4)), o.K * 4,
                      kb.gep(smem, kb.mul(buf, kb.c(sh.xStage))),
                      kA16StageK * 4, kTileM, kA16StageK * 4);
        copyTileAsync(
            kb, tid, codeBase, o.rowBytes, n0, kb.c(o.N),
            kb.mul(kt, kb.c(kA16StageK * bits / 8)), o.rowBytes,
            kb.gep(smem, kb.add(kb.c(sh.wRaw), kb.mul(buf, kb.c(sh.wStage)))),
            kA16StageK * bits / 8, kTileN, kA16StageK * bits / 8);
      },
      [&](Value kt, Value buf, ValueRange iters) {
        SmallVector<Value> next(iters);
        Value scale = ss.advance(kt, iters, next);
        convertXStage(kb, tid, kb.gep(smem, kb.mul(buf, kb.c(sh.xStage))),
                      xHalf);
        dequantStage(
            kb, tid,
            kb.gep(smem, kb.add(kb.c(sh.wRaw), kb.mul(buf, kb.c(sh.wStage)))),
            wHalf, kTilePitch, bits, /*perThread=*/16, scale);
        // The f16 tiles are complete before any warp reads them; the next
        // iteration's first barrier orders these reads before the next
        // conversion overwrites them.
        mlir::gpu::BarrierOp::create(b, l);
        MutableArrayRef<Value> a(next.data(), 32);
        for (int64_t ks = 0; ks < kStageBytes; ks += 32)
          warpMmaStep(kb, xHalf, wHalf, wt.row0, wt.col0, kb.c(ks), wt.lane,
                      /*s8=*/false, a);
        return next;
      });
  acc.resize(32);
  storeWarpTile(kb, o, m0, n0, wt, acc, [&](Value n, Value v) {
    return group > 0 ? v
                     : arith::MulFOp::create(
                           b, l, v, loadScale(b, l, o.scales, n, kb.c(0)))
                           .getResult();
  });
}

/// The W8A8 tiled GEMM body of block (bx, by): stages of q_x [64][64] and
/// codes [64][64] (s8, rows padded to kTilePitch) feed ldmatrix directly;
/// two m16n8k32 steps a stage; out += the exact i32 sums.
void emitTiledI8Body(KernelBuilder &kb, const LinearOperands &o, Value bx,
                     Value by, Value tid, Value smem) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  int64_t stage = kTileM * kTilePitch, wOff = kStages * stage;
  int64_t numK = (o.K + kStageBytes - 1) / kStageBytes;
  Value n0 = kb.mul(bx, kb.c(kTileN)), m0 = kb.mul(by, kb.c(kTileM));
  Value xBase = globalBase(b, l, o.x), wBase = globalBase(b, l, o.codes);
  WarpTile wt = warpTileOf(kb, tid);
  auto xTile = [&](Value buf) {
    return kb.gep(smem, kb.mul(buf, kb.c(stage)));
  };
  auto wTile = [&](Value buf) {
    return kb.gep(smem, kb.add(kb.c(wOff), kb.mul(buf, kb.c(stage))));
  };
  SmallVector<Value> init(
      32, arith::ConstantIntOp::create(b, l, b.getI32Type(), 0));
  SmallVector<Value> acc = emitPipelinedKLoop(
      kb, numK, init,
      [&](Value kt, Value buf) {
        Value c0 = kb.mul(kt, kb.c(kStageBytes));
        copyTileAsync(kb, tid, xBase, o.K, m0, o.M, c0, o.K, xTile(buf),
                      kTilePitch, kTileM, kStageBytes);
        copyTileAsync(kb, tid, wBase, o.K, n0, kb.c(o.N), c0, o.K, wTile(buf),
                      kTilePitch, kTileN, kStageBytes);
      },
      [&](Value, Value buf, ValueRange iters) {
        SmallVector<Value> next(iters);
        for (int64_t ks = 0; ks < kStageBytes; ks += 32)
          warpMmaStep(kb, xTile(buf), wTile(buf), wt.row0, wt.col0, kb.c(ks),
                      wt.lane, /*s8=*/true, next);
        return next;
      });
  storeWarpTile(kb, o, m0, n0, wt, acc, [](Value, Value v) { return v; });
}

/// The prefill side of a fused linear's launch: the block's output tile
/// (tokens x channels), the dynamic shared memory it needs, and the block
/// body (block ids, thread id, the shared memory's address or null).
struct MmaLaunch {
  int64_t tileM, tileN, sharedBytes;
  llvm::function_ref<void(KernelBuilder &, Value bx, Value by, Value tid,
                          Value smem)>
      body;
};

/// The direct (gemm=direct) prefill: 4 warps a block, each a 16 x 8 tile,
/// (block tile 16 tokens x 32 channels), fragments from global memory.
void emitDirectMma(
    KernelBuilder &kb, Value bx, Value by, Value tid,
    llvm::function_ref<void(KernelBuilder &, Value n0, Value m0, MmaLane)>
        mma) {
  Value warp = kb.div(tid, kb.c(kWarp)), lane = kb.rem(tid, kb.c(kWarp));
  mma(kb, kb.add(kb.mul(bx, kb.c(8 * kGemvWarps)), kb.mul(warp, kb.c(8))),
      kb.mul(by, kb.c(16)),
      MmaLane{kb.div(lane, kb.c(4)), kb.rem(lane, kb.c(4))});
}

/// One launch of 4-warp blocks that runs the GEMV (M < kMmaMinTokens, grid
/// [ceil(N / 4), M], no shared memory) or the tensor-core GEMM (grid
/// [ceil(N / tileN), ceil(M / tileM)], its dynamic shared memory): the
/// branch is uniform, chosen on the host for the grid and the shared
/// memory size and again in the kernel, so decode pays for one launch
/// and the GEMM's shared memory does not limit the GEMV's occupancy. Its
/// registers do: the kernel's allocation is the larger branch's (the tiled
/// GEMMs take 60 to 96 registers a thread against the GEMV's ~32). Two
/// kernels picked by the host (scf.if on M) would avoid that, but
/// gpu-async-region leaves launches inside scf.if unchained (gpu-to-llvm
/// then rejects them).
void emitLinearLaunch(
    OpBuilder &b, Location l, const LinearOperands &o,
    llvm::function_ref<void(KernelBuilder &, Value n, Value m, Value lane)>
        gemv,
    const MmaLaunch &mma) {
  KernelBuilder hk{b, l};
  Value small = hk.lt(o.M, hk.c(kMmaMinTokens));
  Value gx = arith::SelectOp::create(b, l, small,
                                     hk.c((o.N + kGemvWarps - 1) / kGemvWarps),
                                     hk.c((o.N + mma.tileN - 1) / mma.tileN));
  Value gy = arith::SelectOp::create(b, l, small, o.M,
                                     ceilDiv(b, l, o.M, hk.c(mma.tileM)));
  gy = arith::MaxUIOp::create(b, l, gy, hk.c(1));
  Value shared;
  if (mma.sharedBytes > 0)
    shared = arith::SelectOp::create(b, l, small, i32c(b, l, 0),
                                     i32c(b, l, mma.sharedBytes));
  Value one = hk.c(1);
  mlir::gpu::LaunchOp launch =
      makeLaunch(b, l, {gx, gy, one}, {hk.c(kGemvWarps * kWarp), one, one},
                 /*workgroup=*/{}, shared);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  KernelBuilder kb{b, l};
  Value tid = launch.getThreadIds().x;
  Value bx = launch.getBlockIds().x, by = launch.getBlockIds().y;
  auto ifOp = scf::IfOp::create(b, l, kb.lt(o.M, kb.c(kMmaMinTokens)),
                                /*withElse=*/true);
  b.setInsertionPointToStart(ifOp.thenBlock());
  // No token (M = 0) still launches one block row: it does nothing.
  auto hasToken = scf::IfOp::create(b, l, kb.lt(by, o.M), /*withElse=*/false);
  b.setInsertionPointToStart(hasToken.thenBlock());
  Value warp = kb.div(tid, kb.c(kWarp)), lane = kb.rem(tid, kb.c(kWarp));
  gemv(kb, kb.add(kb.mul(bx, kb.c(kGemvWarps)), warp), by, lane);
  b.setInsertionPointToStart(ifOp.elseBlock());
  Value smem;
  if (mma.sharedBytes > 0) {
    MLIRContext *ctx = b.getContext();
    auto t = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                             MemRefLayoutAttrInterface(),
                             mlir::gpu::AddressSpaceAttr::get(
                                 ctx, mlir::gpu::AddressSpace::Workgroup));
    smem = sharedBase(b, l, mlir::gpu::DynamicSharedMemoryOp::create(b, l, t));
  }
  mma.body(kb, bx, by, tid, smem);
}

LogicalResult emitWeightOnlyLinear(OpBuilder &b, linalg::GenericOp g,
                                   GemmKind gemm) {
  Location l = g.getLoc();
  auto attr = g->getAttrOfType<DictionaryAttr>(kKernelAttrName);
  int64_t bits = cast<IntegerAttr>(attr.get("bits")).getInt();
  int64_t group = cast<IntegerAttr>(attr.get("group")).getInt();
  Value x = g.getDpsInputs()[0], codes = g.getDpsInputs()[1],
        scales = g.getDpsInputs()[2], out = g.getDpsInits()[0];
  if (!llvm::all_of(ValueRange{x, codes, scales, out}, isIdentityMemRef))
    return failure(); // the generic itself stays (correct, slower)
  auto codesT = cast<MemRefType>(codes.getType());
  b.setInsertionPoint(g);
  LinearOperands o;
  o.x = collapseTo2D(b, l, x);
  o.out = collapseTo2D(b, l, out);
  o.codes = codes;
  o.scales = scales;
  o.M = memref::DimOp::create(b, l, o.x, 0);
  o.N = codesT.getDimSize(0);
  o.rowBytes = codesT.getDimSize(1);
  o.K = cast<MemRefType>(x.getType()).getShape().back();
  auto direct = [&](KernelBuilder &kb, Value bx, Value by, Value tid, Value) {
    emitDirectMma(kb, bx, by, tid,
                  [&](KernelBuilder &ik, Value n0, Value m0, MmaLane ml) {
                    emitMmaA16Body(ik, o, n0, m0, ml, bits, group);
                  });
  };
  auto tiled = [&](KernelBuilder &kb, Value bx, Value by, Value tid,
                   Value smem) {
    emitTiledA16Body(kb, o, bx, by, tid, smem, bits, group);
  };
  emitLinearLaunch(
      b, l, o,
      [&](KernelBuilder &kb, Value n, Value m, Value lane) {
        emitGemvBody(kb, o, n, m, lane, bits, group);
      },
      gemm == GemmKind::Direct
          ? MmaLaunch{16, 8 * kGemvWarps, 0, direct}
          : MmaLaunch{kTileM, kTileN, A16Shared(bits).bytes, tiled});
  g.erase();
  return success();
}

//===----------------------------------------------------------------------===//
// 2:4 sparse weights
//===----------------------------------------------------------------------===//
//
// Layout (LowerONNXToLinalg.cpp, linearSparse24): row n keeps cols / 2
// codes ("slots"), slot j packed LSB first in codes[n] like a dense row of
// cols / 2 codes, and its 2-bit position in mask[n] (4 a byte, LSB first):
// slot j is input 4 (j / 2) + pos(j). The quantizer (compress24) writes the
// two positions of a group of 4 distinct and ascending, as mma.sp needs.
//
// Where it pays: the codes and the positions are (bits / 2 + 1) / bits of
// the dense codes' bytes (5/8 at 4 bits, 9/16 at 8 bits), so the decode
// GEMV, bound by the weight bytes it reads, reads that much less; mma.sp
// m16n8k32 covers 32 inputs with the operand registers and issue slot of a
// dense m16n8k16 (half the tensor-core math of the dense product), and a
// prefill stage dequantizes half the weights. Where it does not: the GEMV
// still reads the whole x row (x is small and shared by the warps of a
// block, in L1) and selects x by position (three selects a weight, ALU the
// dense GEMV does not spend); the prefill's x tile, its conversion to f16
// and its B fragments are the same as dense, so a block's shared-memory
// traffic falls by a quarter, not a half, and at a few dozen tokens the
// GEMM is bound by the weight bytes anyway.

/// x[4 g + pos] from the v4 `xg` = x[4 g .. 4 g + 3], pos an i32 in 0..3: a
/// select chain (a dynamic vector index would spill the vector to local
/// memory).
Value selectByPos(OpBuilder &b, Location l, Value xg, Value pos) {
  Value v = vector::ExtractOp::create(b, l, xg, 0);
  for (int64_t i = 1; i < 4; ++i)
    v = arith::SelectOp::create(b, l,
                                arith::CmpIOp::create(b, l,
                                                      arith::CmpIPredicate::eq,
                                                      pos, i32c(b, l, i)),
                                vector::ExtractOp::create(b, l, xg, i), v);
  return v;
}

/// Decode on a 2:4 weight: the dense GEMV's frame (a warp per channel n of
/// token m) over blocks of 32 inputs = 16 slots a lane: 8 (4-bit) or 16
/// (8-bit) bytes of kept codes and 4 bytes of positions (read-only loads),
/// the 32 inputs of x as eight v4 loads, and per slot the code times x at
/// its position.
void emitSparseGemvBody(KernelBuilder &kb, const LinearOperands &o, Value mask,
                        Value n, Value m, Value lane, int64_t bits,
                        int64_t group) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  Value codeBase = globalBase(b, l, o.codes), xBase = globalBase(b, l, o.x),
        maskBase = globalBase(b, l, mask);
  Value codeRow = kb.mul(n, kb.c(o.rowBytes));
  Value maskRow = kb.mul(n, kb.c(o.K / 8));
  Value xRow = kb.mul(m, kb.c(o.K * 4));
  int64_t words = 16 * bits / 32, perWord = 32 / bits;
  emitGemvFrame(kb, o, n, m, lane, /*perLane=*/32, group, [&](Value k0) {
    // Slot k0 / 2: codes at byte k0 / 2 * bits / 8, positions at k0 / 8.
    Value cw = kb.load(
        codeBase, kb.add(codeRow, kb.div(kb.mul(k0, kb.c(bits)), kb.c(16))),
        VectorType::get({words}, i32), 4 * words);
    Value pw = kb.load(maskBase, kb.add(maskRow, kb.div(k0, kb.c(8))), i32, 4);
    Value xOff = kb.add(xRow, kb.mul(k0, kb.c(4)));
    Value part[2] = {f32c(b, l, 0), f32c(b, l, 0)};
    Value xg;
    for (int64_t j = 0; j < 16; ++j) {
      if (j % 2 == 0)
        xg = kb.load(xBase, kb.add(xOff, kb.c(j / 2 * 16)),
                     VectorType::get({4}, f32), 16);
      Value word = vector::ExtractOp::create(b, l, cw, j / perWord);
      Value cf =
          arith::SIToFPOp::create(b, l, f32, kb.field(word, j % perWord, bits));
      Value pos = arith::AndIOp::create(
          b, l, arith::ShRUIOp::create(b, l, pw, i32c(b, l, 2 * j)),
          i32c(b, l, 3));
      part[j & 1] = math::FmaOp::create(b, l, cf, selectByPos(b, l, xg, pos),
                                        part[j & 1]);
    }
    return arith::AddFOp::create(b, l, part[0], part[1]).getResult();
  });
}

/// Channels and tokens of a block of the mma.sp prefill: 4 warps, each 16
/// channels x 16 tokens.
constexpr int64_t kSpTileN = 64, kSpTileM = 16;

/// Prefill on a 2:4 weight with mma.sp.sync.aligned.m16n8k32.row.col f32
/// .f16.f16.f32: out^T = W x^T with the weight as the sparse A operand (16
/// channels x 32 inputs, 2:4 along the inputs as the hardware wants) and x^T
/// as B (32 inputs x 8 tokens). A warp computes 16 channels (n0 + gid,
/// + 8) x 16 tokens (two mma.sp sharing A and the metadata) per k step of
/// 32 inputs = 16 slots. Fragments (PTX ISA, "Matrix Fragments for sparse
/// mma.m16n8k32 with .f16 type" and its metadata figure):
///  * A (the 16 x 16 kept values): as the dense m16n8k16 A, registers a0..a3
///    = slots 2 tig (+1) of rows gid, gid + 8, then slots 2 tig + 8 (+9):
///    the codes as f16 (exact), times the group scale (rounded once) when
///    scaled per group;
///  * metadata: a row's 16 two-bit positions of a k step are the 32 mask
///    bits at byte k0 / 8 of the row; with sparsity selector 0 threads tig
///    = 0, 1 supply them, thread (gid, tig) the 16 bits of half tig of row
///    gid (low half-word) and of row gid + 8 (high);
///  * B: registers b0..b3 = x[token gid][k0 + 2 tig + 8 i (+1)], rounded;
///  * C / D: c0, c1 = channel gid, tokens 2 tig (+1); c2, c3 = channel gid
///    + 8.
/// Out-of-range channels and tokens read a clamped row and are not stored.
void emitSparseMmaBody(KernelBuilder &kb, const LinearOperands &o, Value mask,
                       Value bx, Value by, Value tid, int64_t bits,
                       int64_t group) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  MLIRContext *ctx = b.getContext();
  Type f16 = b.getF16Type(), f32 = b.getF32Type(), i32 = b.getI32Type();
  auto h2 = VectorType::get({2}, f16);
  Value warp = kb.div(tid, kb.c(kWarp)), lane = kb.rem(tid, kb.c(kWarp));
  MmaLane ml{kb.div(lane, kb.c(4)), kb.rem(lane, kb.c(4))};
  Value n0 = kb.add(kb.mul(bx, kb.c(kSpTileN)), kb.mul(warp, kb.c(16)));
  Value m0 = kb.mul(by, kb.c(kSpTileM));
  Value codeBase = globalBase(b, l, o.codes), xBase = globalBase(b, l, o.x),
        maskBase = globalBase(b, l, mask);
  Value mLast = arith::SubIOp::create(b, l, o.M, kb.c(1));
  Value rowA[2] = {kb.min(kb.add(n0, ml.gid), kb.c(o.N - 1)),
                   kb.min(kb.add(n0, kb.add(ml.gid, kb.c(8))), kb.c(o.N - 1))};
  Value tokB[2] = {kb.min(kb.add(m0, ml.gid), mLast),
                   kb.min(kb.add(m0, kb.add(ml.gid, kb.c(8))), mLast)};
  Value half = kb.rem(ml.tig, kb.c(2));
  Value zero = f32c(b, l, 0);
  auto loop = scf::ForOp::create(b, l, kb.c(0), kb.c(o.K), kb.c(32),
                                 SmallVector<Value>(8, zero));
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = loop.getInductionVar();
    Value slot0 = kb.add(kb.div(k0, kb.c(2)), kb.mul(ml.tig, kb.c(2)));
    SmallVector<Value> a;
    for (int64_t r = 0; r < 4; ++r) {
      Value row = rowA[r & 1];
      Value slot = kb.add(slot0, kb.c(r >= 2 ? 8 : 0));
      // Both codes of the slot pair in one byte (4-bit) or two (8-bit).
      Type t = bits == 4 ? Type(b.getI8Type()) : Type(b.getI16Type());
      Value word = arith::ExtUIOp::create(
          b, l, i32,
          kb.load(codeBase,
                  kb.add(kb.mul(row, kb.c(o.rowBytes)),
                         kb.div(kb.mul(slot, kb.c(bits)), kb.c(8))),
                  t, bits == 4 ? 1 : 2));
      Value pair = vector::FromElementsOp::create(
          b, l, VectorType::get({2}, i32),
          ValueRange{kb.field(word, 0, bits), kb.field(word, 1, bits)});
      if (group > 0) {
        Value s = loadScale(b, l, o.scales, row, kb.div(k0, kb.c(group)));
        Value pf =
            arith::SIToFPOp::create(b, l, VectorType::get({2}, f32), pair);
        pf = arith::MulFOp::create(
            b, l, pf,
            vector::BroadcastOp::create(b, l, VectorType::get({2}, f32), s));
        a.push_back(arith::TruncFOp::create(b, l, h2, pf));
      } else {
        a.push_back(arith::SIToFPOp::create(b, l, h2, pair));
      }
    }
    Value meta;
    for (int64_t r = 0; r < 2; ++r) {
      Value hw = arith::ExtUIOp::create(
          b, l, i32,
          kb.load(maskBase,
                  kb.add(kb.mul(rowA[r], kb.c(o.K / 8)),
                         kb.add(kb.div(k0, kb.c(8)), kb.mul(half, kb.c(2)))),
                  b.getI16Type(), 2));
      meta = r == 0 ? hw
                    : arith::OrIOp::create(
                          b, l, meta,
                          arith::ShLIOp::create(b, l, hw, i32c(b, l, 16)))
                          .getResult();
    }
    auto resT = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
    SmallVector<Value> next;
    for (int64_t ti = 0; ti < 2; ++ti) {
      SmallVector<Value> bf;
      for (int64_t i = 0; i < 4; ++i) {
        Value off = kb.mul(
            kb.add(kb.mul(tokB[ti], kb.c(o.K)),
                   kb.add(k0, kb.add(kb.mul(ml.tig, kb.c(2)), kb.c(8 * i)))),
            kb.c(4));
        bf.push_back(arith::TruncFOp::create(
            b, l, h2, kb.load(xBase, off, VectorType::get({2}, f32), 8)));
      }
      Value d = NVVM::MmaSpOp::create(
          b, l, resT, a, bf, loop.getRegionIterArgs().slice(4 * ti, 4), meta,
          i32c(b, l, 0), {16, 8, 32}, std::nullopt,
          std::array{NVVM::MMATypes::f16, NVVM::MMATypes::f16});
      llvm::append_range(next, mmaResults(b, l, d));
    }
    scf::YieldOp::create(b, l, next);
  }
  for (int64_t ti = 0; ti < 2; ++ti)
    for (int64_t i = 0; i < 4; ++i) {
      Value m = kb.add(m0, kb.add(kb.c(8 * ti), kb.add(kb.mul(ml.tig, kb.c(2)),
                                                       kb.c(i & 1))));
      Value n = kb.add(n0, kb.add(ml.gid, kb.c(i >= 2 ? 8 : 0)));
      Value ok =
          arith::AndIOp::create(b, l, kb.lt(m, o.M), kb.lt(n, kb.c(o.N)));
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(
          scf::IfOp::create(b, l, ok, /*withElse=*/false).thenBlock());
      Value v = loop.getResult(4 * ti + i);
      if (group == 0)
        v = arith::MulFOp::create(b, l, v,
                                  loadScale(b, l, o.scales, n, kb.c(0)));
      accumulateOut(b, l, o.out, m, n, v);
    }
}

/// Row pitch (bytes) of the f16 tile of a stage's 16 kept slots a channel:
/// 32 bytes + 16 of padding, so the 8 rows of an ldmatrix matrix start 12
/// banks apart (0, 12, 24, 4, 16, 28, 8, 20): no bank conflict.
constexpr int64_t kSlotPitch = 48;

/// Shared memory of the tiled mma.sp GEMM: kStages raw stages of x (f32,
/// 64 tokens x 32 inputs), of the kept codes (64 channels x 16 slots) and of
/// their positions (64 x 4 bytes), then the f16 tiles of x (kTilePitch) and
/// of the kept values (kSlotPitch).
struct SparseShared {
  int64_t xStage, cStage, mStage, cRaw, mRaw, xHalf, aHalf, bytes;
  explicit SparseShared(int64_t bits)
      : xStage(kTileM * 32 * 4), cStage(kTileN * 16 * bits / 8),
        mStage(kTileN * 4), cRaw(kStages * xStage),
        mRaw(cRaw + kStages * cStage), xHalf(mRaw + kStages * mStage),
        aHalf(xHalf + kTileM * kTilePitch), bytes(aHalf + kTileN * kSlotPitch) {
  }
};

/// Where lane L points ldmatrix.x4 for the B fragment of mma.sp m16n8k32
/// (x^T: 32 inputs x 8 tokens) of the tokens at `row0` of the x tile:
/// token row0 + L % 8, byte 16 (L / 8): matrix i = inputs 8 i .. 8 i + 7,
/// so thread T receives x[token gid][2 tig + 8 i (+1)] = register b_i.
Value spBFragmentAddr(KernelBuilder &kb, Value tile, Value row0, Value lane) {
  Value row = kb.add(row0, kb.rem(lane, kb.c(8)));
  return kb.gep(tile, kb.add(kb.mul(row, kb.c(kTilePitch)),
                             kb.mul(kb.div(lane, kb.c(8)), kb.c(16))));
}

/// The tiled prefill on a 2:4 weight (gemm=tiled): the dense tiled GEMM's
/// block (64 channels x 64 tokens, 4 warps of 32 x 32, the cp.async
/// pipeline) with the roles of the operands swapped for mma.sp: the
/// channels are the mma's M (the sparse A: the kept values), the tokens its
/// N (B = x^T). A stage is 32 inputs = 16 slots; per stage the block rounds
/// x into its f16 tile and dequantizes the kept codes (times the group
/// scale) into a 64 x 16 f16 tile; a warp then loads A with ldmatrix.x4
/// (the compressed 16 x 16 tile has the dense m16n8k16 A layout), B with
/// ldmatrix.x4 of 8 tokens x 32 inputs, the metadata (16 bits of half tig
/// of rows gid, gid + 8: emitSparseMmaBody) from the staged positions, and
/// issues 8 mma.sp.
void emitTiledSparseBody(KernelBuilder &kb, const LinearOperands &o, Value mask,
                         Value bx, Value by, Value tid, Value smem,
                         int64_t bits, int64_t group) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto h2 = VectorType::get({2}, b.getF16Type());
  SparseShared sh(bits);
  int64_t numK = o.K / 32, slotBytes = 16 * bits / 8;
  Value n0 = kb.mul(bx, kb.c(kTileN)), m0 = kb.mul(by, kb.c(kTileM));
  Value xBase = globalBase(b, l, o.x), codeBase = globalBase(b, l, o.codes),
        maskBase = globalBase(b, l, mask);
  Value xHalf = kb.gep(smem, kb.c(sh.xHalf)),
        aHalf = kb.gep(smem, kb.c(sh.aHalf));
  // Warp (w / 2, w % 2): channels row0 .. row0 + 31, tokens col0 .. + 31.
  WarpTile wt = warpTileOf(kb, tid);
  MmaLane ml{kb.div(wt.lane, kb.c(4)), kb.rem(wt.lane, kb.c(4))};
  StageScale ss(kb, o, n0, tid, /*stageK=*/32, group, numK);
  auto stageOf = [&](int64_t base, int64_t size, Value buf) {
    return kb.gep(smem, kb.add(kb.c(base), kb.mul(buf, kb.c(size))));
  };
  SmallVector<Value> acc = emitPipelinedKLoop(
      kb, numK, ss.init(),
      [&](Value kt, Value buf) {
        copyTileAsync(kb, tid, xBase, o.K * 4, m0, o.M,
                      kb.mul(kt, kb.c(32 * 4)), o.K * 4,
                      stageOf(0, sh.xStage, buf), 32 * 4, kTileM, 32 * 4);
        copyTileAsync(kb, tid, codeBase, o.rowBytes, n0, kb.c(o.N),
                      kb.mul(kt, kb.c(slotBytes)), o.rowBytes,
                      stageOf(sh.cRaw, sh.cStage, buf), slotBytes, kTileN,
                      slotBytes, /*chunk=*/slotBytes);
        copyTileAsync(kb, tid, maskBase, o.K / 8, n0, kb.c(o.N),
                      kb.mul(kt, kb.c(4)), o.K / 8,
                      stageOf(sh.mRaw, sh.mStage, buf), 4, kTileN, 4,
                      /*chunk=*/4);
      },
      [&](Value kt, Value buf, ValueRange iters) {
        SmallVector<Value> next(iters);
        Value scale = ss.advance(kt, iters, next);
        convertXStage(kb, tid, stageOf(0, sh.xStage, buf), xHalf);
        dequantStage(kb, tid, stageOf(sh.cRaw, sh.cStage, buf), aHalf,
                     kSlotPitch, bits, /*perThread=*/8, scale);
        mlir::gpu::BarrierOp::create(b, l);
        Value masks = stageOf(sh.mRaw, sh.mStage, buf);
        SmallVector<Value> a[2], meta;
        for (int64_t mi = 0; mi < 2; ++mi) {
          Value r0 = kb.add(wt.row0, kb.c(16 * mi));
          for (Value r : ldmatrixX4(kb, aFragmentAddr(kb, aHalf, r0, kb.c(0),
                                                      wt.lane, kSlotPitch)))
            a[mi].push_back(LLVM::BitcastOp::create(b, l, h2, r));
          Value m;
          for (int64_t h = 0; h < 2; ++h) {
            Value off =
                kb.add(kb.mul(kb.add(r0, kb.add(ml.gid, kb.c(8 * h))), kb.c(4)),
                       kb.mul(kb.rem(ml.tig, kb.c(2)), kb.c(2)));
            Value hw = arith::ExtUIOp::create(
                b, l, i32,
                kb.load(masks, off, b.getI16Type(), 2, /*invariant=*/false));
            m = h == 0 ? hw
                       : arith::OrIOp::create(
                             b, l, m,
                             arith::ShLIOp::create(b, l, hw, i32c(b, l, 16)))
                             .getResult();
          }
          meta.push_back(m);
        }
        auto resT = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
        for (int64_t ni = 0; ni < 4; ++ni) {
          SmallVector<Value> bf;
          for (Value r : ldmatrixX4(
                   kb, spBFragmentAddr(kb, xHalf, kb.add(wt.col0, kb.c(8 * ni)),
                                       wt.lane)))
            bf.push_back(LLVM::BitcastOp::create(b, l, h2, r));
          for (int64_t mi = 0; mi < 2; ++mi) {
            MutableArrayRef<Value> c =
                MutableArrayRef<Value>(next).slice(4 * (4 * mi + ni), 4);
            Value d = NVVM::MmaSpOp::create(
                b, l, resT, a[mi], bf, c, meta[mi], i32c(b, l, 0), {16, 8, 32},
                std::nullopt,
                std::array{NVVM::MMATypes::f16, NVVM::MMATypes::f16});
            llvm::copy(mmaResults(b, l, d), c.begin());
          }
        }
        return next;
      });
  // c_i of tile (mi, ni): channel gid (+8 for i >= 2), token 2 tig + i % 2.
  for (int64_t mi = 0; mi < 2; ++mi)
    for (int64_t ni = 0; ni < 4; ++ni)
      for (int64_t i = 0; i < 4; ++i) {
        Value n = kb.add(
            n0,
            kb.add(wt.row0, kb.add(kb.c(16 * mi + (i >= 2 ? 8 : 0)), ml.gid)));
        Value m = kb.add(m0, kb.add(wt.col0, kb.add(kb.c(8 * ni + (i & 1)),
                                                    kb.mul(ml.tig, kb.c(2)))));
        Value ok =
            arith::AndIOp::create(b, l, kb.lt(m, o.M), kb.lt(n, kb.c(o.N)));
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(
            scf::IfOp::create(b, l, ok, /*withElse=*/false).thenBlock());
        Value v = acc[4 * (4 * mi + ni) + i];
        if (group == 0)
          v = arith::MulFOp::create(b, l, v,
                                    loadScale(b, l, o.scales, n, kb.c(0)));
        accumulateOut(b, l, o.out, m, n, v);
      }
}

/// The 2:4 linear tagged by lowerSparse24LinearGPU: the sparse GEMV (M <
/// kMmaMinTokens) or the mma.sp prefill (tiled, or with fragments from
/// global memory for gemm=direct), one launch. x is the memref the
/// generic's body reads (it gathers x at the kept inputs); identity layouts
/// only, else the generic stays.
LogicalResult emitSparse24Linear(OpBuilder &b, linalg::GenericOp g,
                                 GemmKind gemm) {
  auto attr = g->getAttrOfType<DictionaryAttr>(kKernelAttrName);
  int64_t bits = cast<IntegerAttr>(attr.get("bits")).getInt();
  int64_t group = cast<IntegerAttr>(attr.get("group")).getInt();
  if (g.getNumDpsInputs() != 4 || g.getNumDpsInits() != 1)
    return failure();
  Value x;
  for (auto ld : g.getRegion().getOps<memref::LoadOp>())
    x = ld.getMemRef();
  Value codes = g.getDpsInputs()[1], mask = g.getDpsInputs()[2],
        scales = g.getDpsInputs()[3], out = g.getDpsInits()[0];
  if (!x ||
      !llvm::all_of(ValueRange{x, codes, mask, scales, out}, isIdentityMemRef))
    return failure();
  Location l = g.getLoc();
  b.setInsertionPoint(g);
  LinearOperands o;
  o.x = collapseTo2D(b, l, x);
  o.out = collapseTo2D(b, l, out);
  o.codes = codes;
  o.scales = scales;
  o.M = memref::DimOp::create(b, l, o.x, 0);
  o.N = cast<MemRefType>(codes.getType()).getDimSize(0);
  o.rowBytes = cast<MemRefType>(codes.getType()).getDimSize(1);
  o.K = cast<MemRefType>(x.getType()).getShape().back();
  auto direct = [&](KernelBuilder &kb, Value bx, Value by, Value tid, Value) {
    emitSparseMmaBody(kb, o, mask, bx, by, tid, bits, group);
  };
  auto tiled = [&](KernelBuilder &kb, Value bx, Value by, Value tid,
                   Value smem) {
    emitTiledSparseBody(kb, o, mask, bx, by, tid, smem, bits, group);
  };
  emitLinearLaunch(
      b, l, o,
      [&](KernelBuilder &kb, Value n, Value m, Value lane) {
        emitSparseGemvBody(kb, o, mask, n, m, lane, bits, group);
      },
      gemm == GemmKind::Direct
          ? MmaLaunch{kSpTileM, kSpTileN, 0, direct}
          : MmaLaunch{kTileM, kTileN, SparseShared(bits).bytes, tiled});
  g.erase();
  return success();
}

/// Shared memory of one block of the codebook GEMV at most (the books of
/// its warps' rows).
constexpr int64_t kLutMaxSharedBytes = 32 * 1024;

/// The codebook linear tagged by lowerCodebookLinearGPU as one launch of
/// 4-warp blocks, a warp per output channel n of token m (grid [ceil(N /
/// 4), M]): the warp copies its row's books (one, or one per group) into
/// its slice of shared memory as f32 and syncs (bar.warp.sync); each lane
/// then takes 16-byte blocks of the row's codes (ld.global.nc.v4, 32
/// codes, in one group) and of x, looks each nibble up in shared memory
/// and accumulates with FMAs; a butterfly shuffle reduction, lane 0 adds
/// into out[m, n] (the bias or zero). Prefill runs the same GEMV per token.
LogicalResult emitLutGemv(OpBuilder &b, linalg::GenericOp g) {
  auto attr = g->getAttrOfType<DictionaryAttr>(kKernelAttrName);
  auto get = [&](StringRef name) {
    auto a = dyn_cast_or_null<IntegerAttr>(attr.get(name));
    return a ? a.getInt() : int64_t(-1);
  };
  int64_t gran = get("gran"), group = get("group"), perRow = get("books_per_row");
  if (gran < 0 || g.getNumDpsInputs() != 2 || g.getNumDpsInits() != 1)
    return failure();
  Value x = g.getDpsInputs()[0], codes = g.getDpsInputs()[1],
        out = g.getDpsInits()[0];
  Value table;
  for (auto ld : g.getRegion().getOps<memref::LoadOp>())
    table = ld.getMemRef();
  int64_t books = gran == 2 ? perRow : 1;
  int64_t entries = books * 16;
  if (!table || entries * 4 * kGemvWarps > kLutMaxSharedBytes ||
      !llvm::all_of(ValueRange{x, codes, out, table}, isIdentityMemRef))
    return failure();
  Location l = g.getLoc();
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  auto codesT = cast<MemRefType>(codes.getType());
  int64_t N = codesT.getDimSize(0), rowBytes = codesT.getDimSize(1),
          K = rowBytes * 2;
  b.setInsertionPoint(g);
  KernelBuilder hk{b, l};
  Value x2 = collapseTo2D(b, l, x), out2 = collapseTo2D(b, l, out);
  Value M = memref::DimOp::create(b, l, x2, 0);
  Value one = hk.c(1);
  auto shared = MemRefType::get(
      {kGemvWarps, entries}, f32, MemRefLayoutAttrInterface(),
      mlir::gpu::AddressSpaceAttr::get(ctx,
                                       mlir::gpu::AddressSpace::Workgroup));
  mlir::gpu::LaunchOp launch = makeLaunch(
      b, l,
      {hk.c((N + kGemvWarps - 1) / kGemvWarps),
       arith::MaxUIOp::create(b, l, M, one), one},
      {hk.c(kGemvWarps * kWarp), one, one}, TypeRange{shared});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  KernelBuilder kb{b, l};
  Value lut = launch.getWorkgroupAttributions()[0];
  Value tid = launch.getThreadIds().x;
  Value warp = kb.div(tid, kb.c(kWarp)), lane = kb.rem(tid, kb.c(kWarp));
  Value n = kb.add(kb.mul(launch.getBlockIds().x, kb.c(kGemvWarps)), warp);
  Value m = launch.getBlockIds().y;
  // Warp-uniform: the warp sync below is reached by all lanes or none.
  Value ok = arith::AndIOp::create(b, l, kb.lt(m, M), kb.lt(n, kb.c(N)));
  b.setInsertionPointToStart(
      scf::IfOp::create(b, l, ok, /*withElse=*/false).thenBlock());
  Value firstBook = gran == 0   ? kb.c(0)
                    : gran == 1 ? n
                                : kb.mul(n, kb.c(perRow));
  auto stage = scf::ForOp::create(b, l, lane, kb.c(entries), kb.c(kWarp));
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(stage.getBody());
    Value e = stage.getInductionVar();
    Value v = memref::LoadOp::create(
        b, l, table,
        ValueRange{kb.add(firstBook, kb.div(e, kb.c(16))),
                   kb.rem(e, kb.c(16))});
    if (!v.getType().isF32())
      v = arith::ExtFOp::create(b, l, f32, v);
    memref::StoreOp::create(b, l, v, lut, ValueRange{warp, e});
  }
  NVVM::SyncWarpOp::create(b, l, i32c(b, l, -1));
  Value codeBase = globalBase(b, l, codes), xBase = globalBase(b, l, x2);
  Value codeRow = kb.mul(n, kb.c(rowBytes)), xRow = kb.mul(m, kb.c(K * 4));
  auto loop = scf::ForOp::create(b, l, kb.mul(lane, kb.c(32)), kb.c(K),
                                 kb.c(32 * kWarp), ValueRange{f32c(b, l, 0)});
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = loop.getInductionVar();
    Value words = kb.load(codeBase, kb.add(codeRow, kb.div(k0, kb.c(2))),
                          VectorType::get({4}, i32), 16);
    Value bookOff =
        gran == 2 ? kb.mul(kb.div(k0, kb.c(group)), kb.c(16)) : kb.c(0);
    Value xOff = kb.add(xRow, kb.mul(k0, kb.c(4)));
    // Two partial sums so consecutive FMAs do not wait on each other.
    Value part[2] = {f32c(b, l, 0), f32c(b, l, 0)};
    for (int64_t w = 0; w < 4; ++w) {
      Value word = vector::ExtractOp::create(b, l, words, w);
      for (int64_t q = 0; q < 8; q += 4) {
        Value xv = kb.load(xBase, kb.add(xOff, kb.c((w * 8 + q) * 4)),
                           VectorType::get({4}, f32), 16);
        for (int64_t j = q; j < q + 4; ++j) {
          Value code = arith::AndIOp::create(
              b, l, arith::ShRUIOp::create(b, l, word, i32c(b, l, 4 * j)),
              i32c(b, l, 15));
          Value ci = arith::IndexCastOp::create(b, l, b.getIndexType(), code);
          Value wv = memref::LoadOp::create(b, l, lut,
                                            ValueRange{warp, kb.add(bookOff, ci)});
          Value xs = vector::ExtractOp::create(b, l, xv, j - q);
          part[j & 1] = math::FmaOp::create(b, l, wv, xs, part[j & 1]);
        }
      }
    }
    Value sum = arith::AddFOp::create(b, l, part[0], part[1]);
    scf::YieldOp::create(
        b, l, arith::AddFOp::create(b, l, loop.getRegionIterArgs()[0], sum)
                  .getResult());
  }
  Value acc = warpSum(b, l, loop.getResult(0));
  b.setInsertionPointToStart(kb.ifLaneZero(lane).thenBlock());
  accumulateOut(b, l, out2, m, n, acc);
  g.erase();
  return success();
}

/// Whether `g` is the i8 x i8 -> i32 matmul of dynamic / static int8
/// activations (LowerONNXToLinalg.cpp, linearDynI8): ins(qx [..., K] i8,
/// qw [N, K] i8) outs(acc [..., N] i32), maps (t.., n, k) -> (t.., k),
/// (n, k), (t.., n), body acc + extsi(a) * extsi(b).
bool isInt8Matmul(linalg::GenericOp g) {
  if (g.getNumDpsInputs() != 2 || g.getNumDpsInits() != 1 ||
      !g.hasPureBufferSemantics())
    return false;
  auto xt = dyn_cast<MemRefType>(g.getDpsInputs()[0].getType());
  auto wt = dyn_cast<MemRefType>(g.getDpsInputs()[1].getType());
  auto ot = dyn_cast<MemRefType>(g.getDpsInits()[0].getType());
  if (!xt || !wt || !ot || !xt.getElementType().isInteger(8) ||
      !wt.getElementType().isInteger(8) || !ot.getElementType().isInteger(32) ||
      wt.getRank() != 2 || !wt.hasStaticShape() || xt.getRank() < 2 ||
      ot.getRank() != xt.getRank() || xt.getShape().back() != wt.getDimSize(1))
    return false;
  int64_t r = xt.getRank();
  MLIRContext *ctx = g.getContext();
  SmallVector<AffineExpr> xe, oe;
  for (int64_t i = 0; i + 1 < r; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  AffineExpr n = getAffineDimExpr(r - 1, ctx), k = getAffineDimExpr(r, ctx);
  xe.push_back(k);
  oe.push_back(n);
  SmallVector<AffineMap> want = {AffineMap::get(r + 1, 0, xe, ctx),
                                 AffineMap::get(r + 1, 0, {n, k}, ctx),
                                 AffineMap::get(r + 1, 0, oe, ctx)};
  if (g.getIndexingMapsArray() != want || g.getNumReductionLoops() != 1 ||
      g.getIteratorTypesArray().back() != utils::IteratorType::reduction)
    return false;
  Block &body = g.getRegion().front();
  auto ops = llvm::map_to_vector(body.without_terminator(),
                                 [](Operation &op) { return &op; });
  if (ops.size() != 4)
    return false;
  auto e0 = dyn_cast<arith::ExtSIOp>(ops[0]),
       e1 = dyn_cast<arith::ExtSIOp>(ops[1]);
  auto mul = dyn_cast<arith::MulIOp>(ops[2]);
  auto add = dyn_cast<arith::AddIOp>(ops[3]);
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  return e0 && e1 && mul && add && e0.getIn() == body.getArgument(0) &&
         e1.getIn() == body.getArgument(1) &&
         ((mul.getLhs() == e0 && mul.getRhs() == e1) ||
          (mul.getLhs() == e1 && mul.getRhs() == e0)) &&
         ((add.getLhs() == body.getArgument(2) && add.getRhs() == mul) ||
          (add.getRhs() == body.getArgument(2) && add.getLhs() == mul)) &&
         yield.getValues().size() == 1 && yield.getValues()[0] == add;
}

/// Decode, int8 activations: one warp per output channel n of token m; each
/// lane takes 16-byte blocks of q_x[m, :] and of the codes q_w[n, :]
/// (ld.global.nc.v4) and accumulates four dp4a (s8 x s8 -> s32); a warp
/// shuffle reduction; lane 0 adds into acc[m, n].
void emitGemvI8Body(KernelBuilder &kb, const LinearOperands &o, Value n,
                    Value m, Value lane) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  Type i32 = b.getI32Type();
  auto ifOp = scf::IfOp::create(b, l, kb.lt(n, kb.c(o.N)), /*withElse=*/false);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  Value wBase = globalBase(b, l, o.codes), xBase = globalBase(b, l, o.x);
  Value wRow = kb.mul(n, kb.c(o.K)), xRow = kb.mul(m, kb.c(o.K));
  auto loop = scf::ForOp::create(
      b, l, kb.mul(lane, kb.c(kLaneBytes)), kb.c(o.K), kb.c(kLaneBytes * kWarp),
      ValueRange{arith::ConstantIntOp::create(b, l, i32, 0)});
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = loop.getInductionVar();
    auto v4 = VectorType::get({4}, i32),
         b4 = VectorType::get({4}, b.getI8Type());
    Value wv = kb.load(wBase, kb.add(wRow, k0), v4, 16);
    Value xv = kb.load(xBase, kb.add(xRow, k0), v4, 16);
    Value acc = loop.getRegionIterArgs()[0];
    auto s8 = NVVM::DotAccumulateTypeAttr::get(b.getContext(),
                                               NVVM::DotAccumulateType::SIGNED);
    for (int64_t w = 0; w < 4; ++w) {
      Value a = LLVM::BitcastOp::create(b, l, b4,
                                        vector::ExtractOp::create(b, l, xv, w));
      Value c = LLVM::BitcastOp::create(b, l, b4,
                                        vector::ExtractOp::create(b, l, wv, w));
      acc = NVVM::DotAccumulate4WayOp::create(b, l, i32, a, s8, c, s8, acc);
    }
    scf::YieldOp::create(b, l, acc);
  }
  Value acc = warpSum(b, l, loop.getResult(0));
  auto store = kb.ifLaneZero(lane);
  b.setInsertionPointToStart(store.thenBlock());
  accumulateOut(b, l, o.out, m, n, acc);
}

/// Prefill, int8 activations on tensor cores: a warp per 16-token x
/// 8-channel tile, mma.sync.aligned.m16n8k32 s8 x s8 -> s32 (exact). The
/// fragments are 32-bit loads of 4 consecutive bytes (PTX ISA layouts):
/// A = q_x rows gid / gid + 8 at columns 4 tig (+16), B = q_w row n0 + gid at
/// the same columns.
void emitMmaI8Body(KernelBuilder &kb, const LinearOperands &o, Value n0,
                   Value m0, MmaLane ml) {
  OpBuilder &b = kb.b;
  Location l = kb.l;
  Type i32 = b.getI32Type();
  Value wBase = globalBase(b, l, o.codes), xBase = globalBase(b, l, o.x);
  Value mLast = arith::SubIOp::create(b, l, o.M, kb.c(1));
  Value rowA[2] = {kb.min(kb.add(m0, ml.gid), mLast),
                   kb.min(kb.add(m0, kb.add(ml.gid, kb.c(8))), mLast)};
  Value nB = kb.min(kb.add(n0, ml.gid), kb.c(o.N - 1));
  Value zero = arith::ConstantIntOp::create(b, l, i32, 0);
  auto loop = scf::ForOp::create(b, l, kb.c(0), kb.c(o.K), kb.c(32),
                                 ValueRange{zero, zero, zero, zero});
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    Value col = kb.add(loop.getInductionVar(), kb.mul(ml.tig, kb.c(4)));
    SmallVector<Value> a, bf;
    for (int64_t r = 0; r < 4; ++r)
      a.push_back(kb.load(xBase,
                          kb.add(kb.mul(rowA[r & 1], kb.c(o.K)),
                                 kb.add(col, kb.c(r >= 2 ? 16 : 0))),
                          i32, 4));
    for (int64_t r = 0; r < 2; ++r)
      bf.push_back(kb.load(
          wBase, kb.add(kb.mul(nB, kb.c(o.K)), kb.add(col, kb.c(r * 16))), i32,
          4));
    auto resT =
        LLVM::LLVMStructType::getLiteral(b.getContext(), {i32, i32, i32, i32});
    Value d = NVVM::MmaOp::create(
        b, l, resT, a, bf, loop.getRegionIterArgs(), {16, 8, 32}, std::nullopt,
        NVVM::MMAIntOverflow::wrapped,
        std::array{NVVM::MMATypes::s8, NVVM::MMATypes::s8},
        std::array{NVVM::MMALayout::row, NVVM::MMALayout::col});
    scf::YieldOp::create(b, l, mmaResults(b, l, d));
  }
  SmallVector<Value> accs(loop.getResults());
  storeMmaTile(kb, o, ml, m0, n0, accs, [](Value, Value v) { return v; });
}

/// The int8 matmul as the GEMV / tensor-core launch (K a multiple of 32 and
/// identity layouts; else the generic stays).
LogicalResult emitInt8Matmul(OpBuilder &b, linalg::GenericOp g, GemmKind gemm) {
  Value x = g.getDpsInputs()[0], w = g.getDpsInputs()[1],
        out = g.getDpsInits()[0];
  auto wt = cast<MemRefType>(w.getType());
  if (!llvm::all_of(ValueRange{x, w, out}, isIdentityMemRef) ||
      wt.getDimSize(1) % 32 != 0)
    return failure();
  Location l = g.getLoc();
  b.setInsertionPoint(g);
  LinearOperands o;
  o.x = collapseTo2D(b, l, x);
  o.out = collapseTo2D(b, l, out);
  o.codes = w;
  o.M = memref::DimOp::create(b, l, o.x, 0);
  o.N = wt.getDimSize(0);
  o.K = o.rowBytes = wt.getDimSize(1);
  auto direct = [&](KernelBuilder &kb, Value bx, Value by, Value tid, Value) {
    emitDirectMma(kb, bx, by, tid,
                  [&](KernelBuilder &ik, Value n0, Value m0, MmaLane ml) {
                    emitMmaI8Body(ik, o, n0, m0, ml);
                  });
  };
  auto tiled = [&](KernelBuilder &kb, Value bx, Value by, Value tid,
                   Value smem) { emitTiledI8Body(kb, o, bx, by, tid, smem); };
  emitLinearLaunch(
      b, l, o,
      [&](KernelBuilder &kb, Value n, Value m, Value lane) {
        emitGemvI8Body(kb, o, n, m, lane);
      },
      gemm == GemmKind::Direct
          ? MmaLaunch{16, 8 * kGemvWarps, 0, direct}
          : MmaLaunch{kTileM, kTileN, 2 * kStages * kTileM * kTilePitch,
                      tiled});
  g.erase();
  return success();
}

/// Warps per block of a mapped reduction (one output element per warp).
constexpr int64_t kReduceWarps = 8;

/// The combiner of a reduction generic: the yielded value is
/// `comb(out, expr)` with `out` (the init's block argument) used nowhere
/// else, and comb one of add / max / min; its identity element.
struct Combiner {
  Operation *op = nullptr;
  Value expr;
  TypedAttr identity;
};

std::optional<Combiner> matchCombiner(linalg::GenericOp g) {
  Block &body = g.getRegion().front();
  BlockArgument out = body.getArgument(g.getNumDpsInputs());
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (yield.getValues().size() != 1 || !out.hasOneUse())
    return std::nullopt;
  Operation *op = yield.getValues()[0].getDefiningOp();
  if (!op || op->getBlock() != &body || op->getNumOperands() != 2 ||
      !llvm::is_contained(op->getOperands(), Value(out)))
    return std::nullopt;
  Type t = out.getType();
  Builder b(g.getContext());
  Combiner c;
  c.op = op;
  c.expr = op->getOperand(0) == out ? op->getOperand(1) : op->getOperand(0);
  if (t.isF32()) {
    const llvm::fltSemantics &sem = APFloat::IEEEsingle();
    if (isa<arith::AddFOp>(op))
      c.identity = b.getF32FloatAttr(0);
    else if (isa<arith::MaximumFOp, arith::MaxNumFOp>(op))
      c.identity = b.getFloatAttr(t, APFloat::getInf(sem, /*Negative=*/true));
    else if (isa<arith::MinimumFOp, arith::MinNumFOp>(op))
      c.identity = b.getFloatAttr(t, APFloat::getInf(sem, /*Negative=*/false));
  } else if (t.isSignlessInteger(32)) {
    if (isa<arith::AddIOp>(op))
      c.identity = b.getI32IntegerAttr(0);
    else if (isa<arith::MaxSIOp>(op))
      c.identity = b.getI32IntegerAttr(INT32_MIN);
    else if (isa<arith::MinSIOp>(op))
      c.identity = b.getI32IntegerAttr(INT32_MAX);
  }
  if (!c.identity)
    return std::nullopt;
  return c;
}

/// comb(a, b) as a clone of the combiner op.
Value combine(OpBuilder &b, const Combiner &c, Value x, Value y) {
  IRMapping map;
  map.map(c.op->getOperand(0), x);
  map.map(c.op->getOperand(1), y);
  return b.clone(*c.op, map)->getResult(0);
}

/// A generic whose only reduction is its innermost loop (matmuls, norms,
/// softmax sums and maxima, attention scores): one warp per output element.
/// The lanes stride over the reduction (neighbouring lanes read neighbouring
/// elements of row-major operands), each folds its share into a private
/// accumulator starting at the combiner's identity, a butterfly shuffle
/// combines the warp, and lane 0 folds in the output's initial value. The
/// float sum is reassociated (as the CPU path does with --fp-reassociate).
LogicalResult emitWarpReduction(OpBuilder &b, linalg::GenericOp g) {
  int64_t nLoops = g.getNumLoops();
  if (g.getNumDpsInits() != 1 || g.getNumReductionLoops() != 1 || nLoops < 2 ||
      g.getIteratorTypesArray().back() != utils::IteratorType::reduction ||
      g.getMatchingIndexingMap(g.getDpsInitOperand(0))
          .isFunctionOfDim(nLoops - 1))
    return failure();
  SmallVector<int64_t> static_ = g.getStaticLoopRanges();
  if (!ShapedType::isDynamic(static_.back()) && static_.back() < kWarp)
    return failure(); // too short to share among 32 lanes
  std::optional<Combiner> comb = matchCombiner(g);
  if (!comb)
    return failure();
  Location l = g.getLoc();
  b.setInsertionPoint(g);
  KernelBuilder hk{b, l};
  SmallVector<Value> sizes;
  for (Range r :
       cast<linalg::LinalgOp>(g.getOperation()).createLoopRanges(b, l))
    sizes.push_back(getValueOrCreateConstantIndexOp(b, l, r.size));
  Value outputs = hk.c(1);
  for (int64_t i = 0; i + 1 < nLoops; ++i)
    outputs = hk.mul(outputs, sizes[i]);
  Value grid = arith::MaxUIOp::create(
      b, l, ceilDiv(b, l, outputs, hk.c(kReduceWarps)), hk.c(1));
  Value one = hk.c(1);
  mlir::gpu::LaunchOp launch = makeLaunch(
      b, l, {grid, one, one}, {hk.c(kReduceWarps * kWarp), one, one});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  KernelBuilder kb{b, l};
  Value tid = launch.getThreadIds().x;
  Value lane = kb.rem(tid, kb.c(kWarp));
  Value lin = kb.add(kb.mul(launch.getBlockIds().x, kb.c(kReduceWarps)),
                     kb.div(tid, kb.c(kWarp)));
  auto ifOp = scf::IfOp::create(b, l, kb.lt(lin, outputs), /*withElse=*/false);
  b.setInsertionPointToStart(ifOp.thenBlock());
  SmallVector<Value> ivs(nLoops);
  Value rest = lin;
  for (int64_t i = nLoops - 2; i >= 0; --i) {
    ivs[i] = i == 0 ? rest : kb.rem(rest, sizes[i]);
    if (i > 0)
      rest = kb.div(rest, sizes[i]);
  }
  auto at = [&](OpBuilder &nb, AffineMap map, ValueRange all) {
    SmallVector<Value> ix;
    for (AffineExpr e : map.getResults())
      ix.push_back(affine::AffineApplyOp::create(
          nb, l, AffineMap::get(nLoops, 0, e), all));
    return ix;
  };
  Value init = arith::ConstantOp::create(b, l, comb->identity);
  auto loop = scf::ForOp::create(b, l, lane, sizes.back(), kb.c(kWarp),
                                 ValueRange{init});
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(loop.getBody());
    SmallVector<Value> all(ivs);
    all.back() = loop.getInductionVar();
    Block &body = g.getRegion().front();
    IRMapping map;
    for (OpOperand *in : g.getDpsInputOperands()) {
      Value v = in->get();
      if (isa<MemRefType>(v.getType()))
        v = memref::LoadOp::create(b, l, v,
                                   at(b, g.getMatchingIndexingMap(in), all));
      map.map(body.getArgument(in->getOperandNumber()), v);
    }
    for (Operation &op : body.without_terminator()) {
      if (&op == comb->op)
        continue;
      if (auto ix = dyn_cast<linalg::IndexOp>(op)) {
        map.map(ix.getResult(), all[ix.getDim()]);
        continue;
      }
      b.clone(op, map);
    }
    scf::YieldOp::create(b, l,
                         combine(b, *comb, loop.getRegionIterArgs()[0],
                                 map.lookupOrDefault(comb->expr)));
  }
  Value acc = loop.getResult(0);
  for (int32_t off = kWarp / 2; off >= 1; off /= 2) {
    auto sh = mlir::gpu::ShuffleOp::create(b, l, acc, i32c(b, l, off),
                                           i32c(b, l, kWarp),
                                           mlir::gpu::ShuffleMode::XOR);
    acc = combine(b, *comb, acc, sh.getShuffleResult());
  }
  auto store = kb.ifLaneZero(lane);
  b.setInsertionPointToStart(store.thenBlock());
  SmallVector<Value> all(ivs);
  all.back() = kb.c(0);
  Value out = g.getDpsInits()[0];
  SmallVector<Value> oix =
      at(b, g.getMatchingIndexingMap(g.getDpsInitOperand(0)), all);
  Value prev = memref::LoadOp::create(b, l, out, oix);
  memref::StoreOp::create(b, l, combine(b, *comb, prev, acc), out, oix);
  g.erase();
  return success();
}

//===----------------------------------------------------------------------===//
// Fused RMSNorm
//===----------------------------------------------------------------------===//

/// Threads per block of the RMSNorm kernel at most, and the most 16-byte
/// chunks of a row one thread keeps in registers between the two phases.
constexpr int64_t kNormMaxThreads = 256;
constexpr int64_t kNormMaxChunks = 8;

/// The fill and the reduction that only produce `ss` for the fused norm
/// `norm` (which computes the sum itself), then ss's deallocations and
/// allocation, to erase in this order once `norm` is gone; none when any
/// other op reads or writes ss (they stay: correct, redundant).
SmallVector<Operation *> sumOfSquaresOnlyFor(linalg::GenericOp norm,
                                             Value ss) {
  auto alloc = ss.getDefiningOp<memref::AllocOp>();
  if (!alloc)
    return {};
  SmallVector<Operation *> producers, deallocs;
  for (Operation *u : alloc->getUsers()) {
    if (u == norm.getOperation())
      continue;
    auto lop = dyn_cast<linalg::LinalgOp>(u);
    if (lop && lop.getNumDpsInits() == 1 && lop.getDpsInits()[0] == ss &&
        !llvm::is_contained(lop.getDpsInputs(), ss) &&
        lop->getBlock() == norm->getBlock() && lop->isBeforeInBlock(norm))
      producers.push_back(u);
    else if (isa<memref::DeallocOp>(u))
      deallocs.push_back(u);
    else
      return {};
  }
  // Users come newest first: the reduction before the fill reading nothing.
  llvm::sort(producers,
             [](Operation *a, Operation *c) { return c->isBeforeInBlock(a); });
  llvm::append_range(producers, deallocs);
  producers.push_back(alloc);
  return producers;
}

/// The RMSNorm tagged by tagRMSNormGPU as one launch, a block per token
/// row m of x [M, K]: each thread loads its 16-byte chunks of the row
/// (ld.global.nc.v4, kept in registers), sums their squares, the warp sums
/// by butterfly shuffles, lane 0 of each warp writes its sum to shared
/// memory, and after a barrier every thread adds the warps' sums (the same
/// order in every thread) and stores x * rsqrt(ss / K + eps) * gamma as v4.
/// K must be a multiple of 4 with at most kNormMaxChunks chunks per thread,
/// and the operands identity-layout f32; else the generics stay.
LogicalResult emitRMSNorm(OpBuilder &b, linalg::GenericOp g) {
  auto attr = g->getAttrOfType<DictionaryAttr>(kKernelAttrName);
  auto epsAttr = dyn_cast_or_null<FloatAttr>(attr.get("eps"));
  if (!epsAttr || g.getNumDpsInputs() != 3 || g.getNumDpsInits() != 1)
    return failure();
  Value x = g.getDpsInputs()[0], ss = g.getDpsInputs()[1],
        gamma = g.getDpsInputs()[2], out = g.getDpsInits()[0];
  if (!llvm::all_of(ValueRange{x, gamma, out}, isIdentityMemRef))
    return failure();
  auto xt = cast<MemRefType>(x.getType());
  auto gt = cast<MemRefType>(gamma.getType());
  int64_t K = xt.getShape().back();
  if (ShapedType::isDynamic(K) || K % 4 != 0 || xt.getRank() < 2 ||
      !xt.getElementType().isF32() || gt.getRank() != 1 ||
      gt.getDimSize(0) != K || !gt.getElementType().isF32())
    return failure();
  int64_t chunks = K / 4;
  int64_t threads =
      std::min(kNormMaxThreads, (chunks + kWarp - 1) / kWarp * kWarp);
  int64_t perThread = (chunks + threads - 1) / threads;
  if (perThread > kNormMaxChunks)
    return failure();
  int64_t warps = threads / kWarp;
  Location l = g.getLoc();
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  auto v4 = VectorType::get({4}, f32);
  b.setInsertionPoint(g);
  KernelBuilder hk{b, l};
  Value x2 = collapseTo2D(b, l, x), out2 = collapseTo2D(b, l, out);
  Value M = memref::DimOp::create(b, l, x2, 0);
  Value one = hk.c(1);
  auto shared = MemRefType::get(
      {warps}, f32, MemRefLayoutAttrInterface(),
      mlir::gpu::AddressSpaceAttr::get(ctx,
                                       mlir::gpu::AddressSpace::Workgroup));
  mlir::gpu::LaunchOp launch =
      makeLaunch(b, l, {arith::MaxUIOp::create(b, l, M, one), one, one},
                 {hk.c(threads), one, one}, TypeRange{shared});
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  KernelBuilder kb{b, l};
  Value partial = launch.getWorkgroupAttributions()[0];
  Value tid = launch.getThreadIds().x, m = launch.getBlockIds().x;
  // Uniform per block (an empty input launches one idle block): the
  // barrier below is reached by all or none of a block's threads.
  auto hasRow = scf::IfOp::create(b, l, kb.lt(m, M), /*withElse=*/false);
  b.setInsertionPointToStart(hasRow.thenBlock());
  Value xBase = globalBase(b, l, x2), gBase = globalBase(b, l, gamma),
        oBase = globalBase(b, l, out2);
  Value rowOff = kb.mul(m, kb.c(K * 4));
  // Chunk i of this thread: c = tid + i * threads, bytes [16 c, 16 c + 16).
  // Only the last one may lie past the row (a guarded load of zeros).
  SmallVector<Value> colOff, valid, xs;
  Value sum = f32c(b, l, 0);
  for (int64_t i = 0; i < perThread; ++i) {
    Value c = kb.add(tid, kb.c(i * threads));
    colOff.push_back(kb.mul(c, kb.c(16)));
    bool full = (i + 1) * threads <= chunks;
    valid.push_back(full ? Value() : kb.lt(c, kb.c(chunks)));
    // The then-builder is `b` itself, at the then-block.
    auto load = [&] {
      return kb.load(xBase, kb.add(rowOff, colOff.back()), v4, 16);
    };
    Value v;
    if (full) {
      v = load();
    } else {
      auto ifOp = scf::IfOp::create(
          b, l, valid.back(),
          [&](OpBuilder &nb, Location nl) {
            scf::YieldOp::create(nb, nl, load());
          },
          [&](OpBuilder &nb, Location nl) {
            Value z = arith::ConstantOp::create(
                nb, nl, DenseElementsAttr::get(v4, 0.0f));
            scf::YieldOp::create(nb, nl, z);
          });
      v = ifOp.getResult(0);
    }
    xs.push_back(v);
    for (int64_t j = 0; j < 4; ++j) {
      Value e = vector::ExtractOp::create(b, l, v, j);
      sum = math::FmaOp::create(b, l, e, e, sum);
    }
  }
  sum = warpSum(b, l, sum);
  Value lane = kb.rem(tid, kb.c(kWarp)), warp = kb.div(tid, kb.c(kWarp));
  auto first = kb.ifLaneZero(lane);
  {
    OpBuilder::InsertionGuard ig(b);
    b.setInsertionPointToStart(first.thenBlock());
    memref::StoreOp::create(b, l, sum, partial, ValueRange{warp});
  }
  mlir::gpu::BarrierOp::create(b, l);
  Value total = memref::LoadOp::create(b, l, partial, ValueRange{kb.c(0)});
  for (int64_t w = 1; w < warps; ++w)
    total = arith::AddFOp::create(
        b, l, total, memref::LoadOp::create(b, l, partial, ValueRange{kb.c(w)}));
  // As the generic: rsqrt(ss / K + eps), then (x * inv) * gamma.
  Value mean = arith::DivFOp::create(b, l, total, f32c(b, l, (float)K));
  Value inv = math::RsqrtOp::create(
      b, l,
      arith::AddFOp::create(
          b, l, mean,
          arith::ConstantOp::create(b, l, f32, epsAttr).getResult()));
  for (int64_t i = 0; i < perThread; ++i) {
    OpBuilder::InsertionGuard ig(b);
    if (valid[i])
      b.setInsertionPointToStart(
          scf::IfOp::create(b, l, valid[i], /*withElse=*/false).thenBlock());
    Value gv = kb.load(gBase, colOff[i], v4, 16);
    SmallVector<Value> ys;
    for (int64_t j = 0; j < 4; ++j) {
      Value xe = vector::ExtractOp::create(b, l, xs[i], j);
      Value ge = vector::ExtractOp::create(b, l, gv, j);
      ys.push_back(arith::MulFOp::create(
          b, l, arith::MulFOp::create(b, l, xe, inv), ge));
    }
    kb.store(vector::FromElementsOp::create(b, l, v4, ys), oBase,
             kb.add(rowOff, colOff[i]), 16);
  }
  SmallVector<Operation *> dead = sumOfSquaresOnlyFor(g, ss);
  g.erase();
  for (Operation *op : dead)
    op->erase();
  return success();
}

//===----------------------------------------------------------------------===//
// Fused RoPE
//===----------------------------------------------------------------------===//

/// The RoPE tagged by tagRoPEGPU (half-split pairs (i, i + D/2) of each head,
/// D/2 a multiple of 4) as one launch of 256-thread blocks, a thread per 4
/// consecutive pairs of a head of a token: v4 loads of x[i..i+3] and
/// x[i+D/2..], of inv_freq[i..i+3] (the generic's folded table), one sin and
/// one cos per pair (the generic computes them per element), v4 stores of
/// x_lo * cos - x_hi * sin and x_hi * cos + x_lo * sin. x is read without
/// the invariant mark (the output may reuse its buffer; a thread reads its
/// elements before it writes them). Other forms keep the generic.
LogicalResult emitRoPE(OpBuilder &b, linalg::GenericOp g) {
  auto attr = g->getAttrOfType<DictionaryAttr>(kKernelAttrName);
  auto dAttr = dyn_cast_or_null<IntegerAttr>(attr.get("head_dim"));
  if (!dAttr || g.getNumDpsInputs() != 2 || g.getNumDpsInits() != 1)
    return failure();
  int64_t D = dAttr.getInt(), half = D / 2;
  Value x = g.getDpsInputs()[0], pos = g.getDpsInputs()[1],
        out = g.getDpsInits()[0];
  // The inv_freq table: the body's one load from a buffer other than x.
  Value table;
  for (auto ld : g.getRegion().getOps<memref::LoadOp>())
    if (ld.getMemRef() != x)
      table = ld.getMemRef();
  auto xt = dyn_cast<MemRefType>(x.getType());
  auto pt = dyn_cast<MemRefType>(pos.getType());
  if (!table || !xt || !pt || D % 8 != 0 ||
      !llvm::all_of(ValueRange{x, pos, out, table}, isIdentityMemRef) ||
      !xt.getElementType().isF32() ||
      !isa<IntegerType>(pt.getElementType()) ||
      pt.getRank() + 1 != xt.getRank() ||
      ShapedType::isDynamic(xt.getShape().back()) ||
      xt.getShape().back() % D != 0 ||
      cast<MemRefType>(table.getType()).getNumElements() != half)
    return failure();
  int64_t heads = xt.getShape().back() / D, quads = half / 4;
  Location l = g.getLoc();
  Type f32 = b.getF32Type();
  auto v4 = VectorType::get({4}, f32);
  b.setInsertionPoint(g);
  KernelBuilder hk{b, l};
  Value x2 = collapseTo2D(b, l, x), out2 = collapseTo2D(b, l, out);
  Value pos1 = pos;
  if (pt.getRank() > 1) {
    ReassociationIndices all;
    for (int64_t i = 0; i < pt.getRank(); ++i)
      all.push_back(i);
    pos1 = memref::CollapseShapeOp::create(
        b, l, pos, SmallVector<ReassociationIndices>{all});
  }
  Value M = memref::DimOp::create(b, l, x2, 0);
  Value items = hk.mul(M, hk.c(heads * quads));
  OpBuilder::InsertionGuard guard(b);
  Value lin = launchPerItem(b, l, items);
  KernelBuilder kb{b, l};
  // lin = (m * heads + h) * quads + q: pairs 4 q .. 4 q + 3 of head h.
  Value q = kb.rem(lin, kb.c(quads)), mh = kb.div(lin, kb.c(quads));
  Value m = kb.div(mh, kb.c(heads));
  Value i0 = kb.mul(q, kb.c(4));
  Value lo = kb.mul(kb.add(kb.mul(mh, kb.c(D)), i0), kb.c(4));
  Value hi = kb.add(lo, kb.c(half * 4));
  Value xBase = globalBase(b, l, x2), oBase = globalBase(b, l, out2);
  Value xl = kb.load(xBase, lo, v4, 16, /*invariant=*/false);
  Value xh = kb.load(xBase, hi, v4, 16, /*invariant=*/false);
  Value f = kb.load(globalBase(b, l, table), kb.mul(i0, kb.c(4)), v4, 16);
  Value p = arith::SIToFPOp::create(
      b, l, f32, memref::LoadOp::create(b, l, pos1, ValueRange{m}));
  SmallVector<Value> yl, yh;
  for (int64_t j = 0; j < 4; ++j) {
    Value a = vector::ExtractOp::create(b, l, xl, j);
    Value c = vector::ExtractOp::create(b, l, xh, j);
    Value ang =
        arith::MulFOp::create(b, l, p, vector::ExtractOp::create(b, l, f, j));
    Value cs = math::CosOp::create(b, l, ang), sn = math::SinOp::create(b, l, ang);
    auto mul = [&](Value u, Value v) {
      return arith::MulFOp::create(b, l, u, v).getResult();
    };
    yl.push_back(arith::SubFOp::create(b, l, mul(a, cs), mul(c, sn)));
    yh.push_back(arith::AddFOp::create(b, l, mul(c, cs), mul(a, sn)));
  }
  kb.store(vector::FromElementsOp::create(b, l, v4, yl), oBase, lo, 16);
  kb.store(vector::FromElementsOp::create(b, l, v4, yh), oBase, hi, 16);
  g.erase();
  return success();
}

//===----------------------------------------------------------------------===//
// Vectorized elementwise kernels
//===----------------------------------------------------------------------===//

/// An elementwise generic on f32 buffers (SwiGLU's silu(gate) * up, the
/// residual adds, copies): identity maps on identity-layout operands, the
/// output not read, no linalg.index, a static last dim that is a multiple
/// of 4. Thread t of 256-thread blocks handles the 16 bytes at element 4 t
/// of every operand: one v4 load per input, the body four times in
/// registers, one v4 store. The loads are not marked invariant: the output
/// may share a buffer with an input (each thread reads its elements before
/// it writes them).
LogicalResult emitVectorElementwise(OpBuilder &b, linalg::GenericOp g) {
  int64_t nLoops = g.getNumLoops();
  if (nLoops == 0 || g.getNumDpsInits() != 1 ||
      g.getNumParallelLoops() != nLoops || !g.hasPureBufferSemantics())
    return failure();
  AffineMap id = AffineMap::getMultiDimIdentityMap(nLoops, g.getContext());
  for (OpOperand &o : g->getOpOperands()) {
    auto t = dyn_cast<MemRefType>(o.get().getType());
    if (!t || !t.getLayout().isIdentity() || !t.getElementType().isF32() ||
        g.getMatchingIndexingMap(&o) != id)
      return failure();
  }
  Block &body = g.getRegion().front();
  if (!body.getArgument(g.getNumDpsInputs()).use_empty() ||
      llvm::any_of(body.without_terminator(), [](Operation &op) {
        return isa<linalg::IndexOp>(op) || op.getNumRegions() != 0 ||
               !isPure(&op);
      }))
    return failure();
  Value out = g.getDpsInits()[0];
  auto ot = cast<MemRefType>(out.getType());
  int64_t last = ot.getShape().back();
  if (ShapedType::isDynamic(last) || last % 4 != 0)
    return failure();
  Location l = g.getLoc();
  b.setInsertionPoint(g);
  KernelBuilder hk{b, l};
  Value quads = hk.c(last / 4);
  for (int64_t i = 0; i + 1 < nLoops; ++i)
    quads = hk.mul(quads, memref::DimOp::create(b, l, out, i));
  OpBuilder::InsertionGuard guard(b);
  Value lin = launchPerItem(b, l, quads);
  KernelBuilder kb{b, l};
  Value off = kb.mul(lin, kb.c(16));
  auto v4 = VectorType::get({4}, b.getF32Type());
  SmallVector<Value> ins;
  for (Value in : g.getDpsInputs())
    ins.push_back(
        kb.load(globalBase(b, l, in), off, v4, 16, /*invariant=*/false));
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  SmallVector<Value> lanes;
  for (int64_t j = 0; j < 4; ++j) {
    IRMapping map;
    for (auto [arg, v] : llvm::zip(body.getArguments(), ins))
      map.map(arg, vector::ExtractOp::create(b, l, v, j));
    for (Operation &op : body.without_terminator())
      b.clone(op, map);
    lanes.push_back(map.lookupOrDefault(yield.getValues()[0]));
  }
  kb.store(vector::FromElementsOp::create(b, l, v4, lanes),
           globalBase(b, l, out), off, 16);
  g.erase();
  return success();
}

void wrapSingleThread(Operation *op);

struct GPUFusedKernelsPass
    : PassWrapper<GPUFusedKernelsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(GPUFusedKernelsPass)
  GPUFusedKernelsPass() = default;
  GPUFusedKernelsPass(const GPUFusedKernelsPass &other) : PassWrapper(other) {}
  explicit GPUFusedKernelsPass(StringRef gemmKind) { gemm = gemmKind.str(); }

  StringRef getArgument() const final { return "qwen-gpu-fused-kernels"; }
  StringRef getDescription() const final {
    return "Implement the linalg.generic ops tagged qwen.gpu_kernel "
           "(weight-only "
           "linear layers) with hand-written CUDA kernels (bufferized IR)";
  }
  void getDependentDialects(DialectRegistry &r) const override {
    r.insert<mlir::gpu::GPUDialect, scf::SCFDialect, arith::ArithDialect,
             math::MathDialect, memref::MemRefDialect, vector::VectorDialect,
             LLVM::LLVMDialect, NVVM::NVVMDialect>();
  }
  Option<std::string> gemm{
      *this, "gemm",
      llvm::cl::desc("Prefill GEMM of the fused linears: 'tiled' (block "
                     "tiles through shared memory: cp.async, ldmatrix, "
                     "mma.sync) or 'direct' (each warp loads its fragments "
                     "from global memory)"),
      llvm::cl::init("tiled")};

  void runOnOperation() override {
    std::optional<GemmKind> gemmKind =
        llvm::StringSwitch<std::optional<GemmKind>>(gemm)
            .Case("tiled", GemmKind::Tiled)
            .Case("direct", GemmKind::Direct)
            .Default(std::nullopt);
    if (!gemmKind) {
      getOperation().emitError()
          << "--qwen-gpu-fused-kernels: gemm='" << gemm
          << "' is not a GEMM kind (expected 'tiled' or 'direct')";
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> tagged, int8;
    getOperation().walk([&](linalg::GenericOp g) {
      if (g->hasAttr(kKernelAttrName) && g.hasPureBufferSemantics())
        tagged.push_back(g);
      else if (isInt8Matmul(g))
        int8.push_back(g);
    });
    // Ops without parallel loops (rank-0 arithmetic on shapes, full
    // reductions) would lower to loose loads and stores in host code: each
    // runs in a one-thread kernel.
    SmallVector<linalg::LinalgOp> serial;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (op.hasPureBufferSemantics() && op.getNumParallelLoops() == 0 &&
          !op->getParentOfType<mlir::gpu::LaunchOp>())
        serial.push_back(op);
    });
    for (linalg::LinalgOp op : serial)
      wrapSingleThread(op);
    OpBuilder b(&getContext());
    for (linalg::GenericOp g : tagged) {
      StringAttr kind = dyn_cast_or_null<StringAttr>(
          g->getAttrOfType<DictionaryAttr>(kKernelAttrName).get("kind"));
      if (kind && kind.getValue() == "rms_norm")
        (void)emitRMSNorm(b, g);
      else if (kind && kind.getValue() == "rope")
        (void)emitRoPE(b, g);
      else if (kind && kind.getValue() == "lut_gemv")
        (void)emitLutGemv(b, g);
      else if (kind && kind.getValue() == "attention")
        (void)emitAttentionGPU(b, g);
      else if (kind && kind.getValue() == "sparse24")
        (void)emitSparse24Linear(b, g, *gemmKind);
      else
        (void)emitWeightOnlyLinear(b, g, *gemmKind);
    }
    for (linalg::GenericOp g : int8)
      (void)emitInt8Matmul(b, g, *gemmKind);
    SmallVector<linalg::GenericOp> reductions;
    getOperation().walk([&](linalg::GenericOp g) {
      if (g.hasPureBufferSemantics() &&
          !g->getParentOfType<mlir::gpu::LaunchOp>())
        reductions.push_back(g);
    });
    for (linalg::GenericOp g : reductions)
      if (failed(emitWarpReduction(b, g)))
        (void)emitVectorElementwise(b, g);
  }
};

//===----------------------------------------------------------------------===//
// Mapping the rest of the function
//===----------------------------------------------------------------------===//

/// Nested scf.parallel loops (inside a kernel) as scf.for nests.
void parallelToFors(mlir::gpu::LaunchOp launch) {
  SmallVector<scf::ParallelOp> inner;
  launch.getBody().walk([&](scf::ParallelOp p) { inner.push_back(p); });
  // Innermost first (walk is post-order), so each body is loop-free of
  // scf.parallel when cloned.
  for (scf::ParallelOp p : inner) {
    OpBuilder b(p);
    scf::buildLoopNest(b, p.getLoc(), p.getLowerBound(), p.getUpperBound(),
                       p.getStep(),
                       [&](OpBuilder &nb, Location, ValueRange ivs) {
                         IRMapping map;
                         map.map(p.getInductionVars(), ivs);
                         for (Operation &op : p.getBody()->without_terminator())
                           nb.clone(op, map);
                       });
    p.erase();
  }
}

/// A top-level scf.parallel (no reductions) as one gpu.launch over its
/// flattened iteration space: thread t of the grid runs iteration t
/// (delinearized, last dimension fastest, so neighbouring threads touch
/// neighbouring elements). The grid has at least one block: an empty loop
/// (a zero-sized dynamic dim) launches one block that does nothing.
LogicalResult mapParallel(scf::ParallelOp p) {
  if (p.getNumResults() != 0)
    return p.emitOpError("with reductions has no GPU mapping");
  OpBuilder b(p);
  Location l = p.getLoc();
  SmallVector<Value> trips;
  Value total = idx(b, l, 1);
  for (auto [lb, ub, st] :
       llvm::zip(p.getLowerBound(), p.getUpperBound(), p.getStep())) {
    Value n = ceilDiv(b, l, arith::SubIOp::create(b, l, ub, lb), st);
    trips.push_back(n);
    total = arith::MulIOp::create(b, l, total, n);
  }
  Value bs = idx(b, l, kBlockThreads);
  Value grid =
      arith::MaxUIOp::create(b, l, ceilDiv(b, l, total, bs), idx(b, l, 1));
  Value one = idx(b, l, 1);
  mlir::gpu::LaunchOp launch =
      makeLaunch(b, l, {grid, one, one}, {bs, one, one});
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  Value lin = arith::AddIOp::create(
      b, l, arith::MulIOp::create(b, l, launch.getBlockIds().x, bs),
      launch.getThreadIds().x);
  Value inRange =
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, lin, total);
  auto ifOp = scf::IfOp::create(b, l, inRange, /*withElse=*/false);
  b.setInsertionPointToStart(ifOp.thenBlock());
  IRMapping map;
  Value rest = lin;
  for (int64_t i = trips.size() - 1; i >= 0; --i) {
    Value r = i == 0 ? rest
                     : arith::RemUIOp::create(b, l, rest, trips[i]).getResult();
    if (i > 0)
      rest = arith::DivUIOp::create(b, l, rest, trips[i]);
    Value iv =
        arith::AddIOp::create(b, l, p.getLowerBound()[i],
                              arith::MulIOp::create(b, l, r, p.getStep()[i]));
    map.map(p.getInductionVars()[i], iv);
  }
  for (Operation &op : p.getBody()->without_terminator())
    b.clone(op, map);
  p.erase();
  parallelToFors(launch);
  return success();
}

/// Moves `op` (no results) into a one-thread kernel.
void wrapSingleThread(Operation *op) {
  OpBuilder b(op);
  Value one = idx(b, op->getLoc(), 1);
  mlir::gpu::LaunchOp launch =
      makeLaunch(b, op->getLoc(), {one, one, one}, {one, one, one});
  op->moveBefore(launch.getBody().front().getTerminator());
  parallelToFors(launch);
}

/// A host-level memref.store (a rank-0 op lowered without loops) as a
/// one-thread kernel together with the loads and pure ops of its block it
/// depends on (cloned; the originals go when nothing else uses them).
void wrapStore(memref::StoreOp store) {
  Block *blk = store->getBlock();
  llvm::SetVector<Operation *> slice;
  SmallVector<Value> work(store->getOperands());
  while (!work.empty()) {
    Operation *def = work.pop_back_val().getDefiningOp();
    // A global stays on the host (mapMemory gives it a device copy).
    if (!def || def->getBlock() != blk || slice.contains(def) ||
        def->getNumRegions() || isa<memref::GetGlobalOp>(def) ||
        !(isPure(def) || isa<memref::LoadOp>(def)))
      continue;
    slice.insert(def);
    llvm::append_range(work, def->getOperands());
  }
  OpBuilder b(store);
  Value one = idx(b, store.getLoc(), 1);
  mlir::gpu::LaunchOp launch =
      makeLaunch(b, store.getLoc(), {one, one, one}, {one, one, one});
  b.setInsertionPoint(launch.getBody().front().getTerminator());
  IRMapping map;
  SmallVector<Operation *> ordered(slice.begin(), slice.end());
  llvm::sort(ordered,
             [](Operation *a, Operation *c) { return a->isBeforeInBlock(c); });
  for (Operation *op : ordered)
    b.clone(*op, map);
  b.clone(*store, map);
  store.erase();
  for (Operation *op : llvm::reverse(ordered))
    if (op->use_empty())
      op->erase();
}

/// Whether `op` reads or writes memref contents (not just metadata).
bool accessesMemory(Operation *op) {
  return isa<memref::LoadOp, memref::StoreOp, memref::CopyOp,
             affine::AffineLoadOp, affine::AffineStoreOp, linalg::LinalgOp,
             vector::TransferReadOp, vector::TransferWriteOp, vector::LoadOp,
             vector::StoreOp>(op);
}
bool containsMemoryAccess(Operation *op) {
  return op
      ->walk([](Operation *o) {
        return accessesMemory(o) ? WalkResult::interrupt()
                                 : WalkResult::advance();
      })
      .wasInterrupted();
}

bool insideKernel(Operation *op) {
  return op->getParentOfType<mlir::gpu::LaunchOp>() ||
         op->getParentOfType<mlir::gpu::GPUModuleOp>();
}

LogicalResult mapBlock(Block &blk) {
  for (Operation &op : llvm::make_early_inc_range(blk)) {
    if (isa<mlir::gpu::LaunchOp>(op))
      continue;
    if (auto p = dyn_cast<scf::ParallelOp>(op)) {
      if (failed(mapParallel(p)))
        return failure();
      continue;
    }
    if (auto st = dyn_cast<memref::StoreOp>(op)) {
      wrapStore(st);
      continue;
    }
    if (!containsMemoryAccess(&op) || op.getNumResults() != 0)
      continue; // a host value (a load feeding host code) is the check's error
    bool hasParallel = op.walk([](scf::ParallelOp) {
                           return WalkResult::interrupt();
                         }).wasInterrupted();
    if (!hasParallel) {
      wrapSingleThread(&op);
      continue;
    }
    for (Region &r : op.getRegions())
      for (Block &inner : r)
        if (failed(mapBlock(inner)))
          return failure();
  }
  return success();
}

/// Device memory: allocations and their deallocations, and a device copy
/// of each constant global (copied in at entry, freed before returning).
void mapMemory(func::FuncOp f) {
  SmallVector<memref::AllocOp> allocs;
  SmallVector<memref::DeallocOp> deallocs;
  SmallVector<memref::GetGlobalOp> globals;
  f.walk([&](Operation *op) {
    if (insideKernel(op))
      return;
    if (auto a = dyn_cast<memref::AllocOp>(op))
      allocs.push_back(a);
    else if (auto d = dyn_cast<memref::DeallocOp>(op))
      deallocs.push_back(d);
    else if (auto g = dyn_cast<memref::GetGlobalOp>(op))
      globals.push_back(g);
  });
  OpBuilder b(f.getContext());
  for (memref::AllocOp a : allocs) {
    b.setInsertionPoint(a);
    auto ga = mlir::gpu::AllocOp::create(b, a.getLoc(), a.getType(), Type(),
                                         ValueRange{}, a.getDynamicSizes(),
                                         a.getSymbolOperands(),
                                         /*hostShared=*/false);
    a.replaceAllUsesWith(ga.getMemref());
    a.erase();
  }
  for (memref::DeallocOp d : deallocs) {
    b.setInsertionPoint(d);
    mlir::gpu::DeallocOp::create(b, d.getLoc(), Type(), ValueRange{},
                                 d.getMemref());
    d.erase();
  }
  SmallVector<Operation *> returns;
  f.walk([&](func::ReturnOp r) { returns.push_back(r); });
  for (memref::GetGlobalOp g : globals) {
    b.setInsertionPointAfter(g);
    auto ga = mlir::gpu::AllocOp::create(b, g.getLoc(), g.getType(), Type(),
                                         ValueRange{}, ValueRange{},
                                         ValueRange{}, /*hostShared=*/false);
    auto cp = mlir::gpu::MemcpyOp::create(b, g.getLoc(), Type(), ValueRange{},
                                          ga.getMemref(), g.getResult());
    g.getResult().replaceAllUsesExcept(ga.getMemref(), cp);
    bool returned = llvm::any_of(ga.getMemref().getUsers(), [](Operation *u) {
      return isa<func::ReturnOp>(u);
    });
    if (returned)
      continue; // the caller owns it
    for (Operation *r : returns) {
      b.setInsertionPoint(r);
      mlir::gpu::DeallocOp::create(b, g.getLoc(), Type(), ValueRange{},
                                   ga.getMemref());
    }
  }
}

/// exp, sin, cos, tanh, log, erf, ... in kernels as polynomials: the PTX
/// must not call libdevice (--emit=ptx needs no CUDA toolkit).
LogicalResult approximateMath(mlir::gpu::LaunchOp launch) {
  RewritePatternSet patterns(launch.getContext());
  populateMathF32ExpansionPatterns(patterns, [](StringRef) { return true; });
  populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
    return name != "rsqrt"; // 1/sqrt by convert-math-to-llvm (sqrt.rn)
  });
  // No folding: it would hoist the kernel's constants out of the launch,
  // and outlining would pass them as parameters.
  GreedyRewriteConfig config;
  config.setScope(&launch.getBody())
      .enableFolding(false)
      .enableConstantCSE(false);
  return applyPatternsGreedily(launch.getBody(), std::move(patterns), config);
}

/// Math ops NVPTX implements in hardware (sqrt.rn, cvt.rmi, abs, ...) as
/// direct LLVM intrinsic calls: convert-gpu-to-nvvm would call libdevice's
/// __nv_* functions for them instead.
void mathToIntrinsics(Operation *root) {
  SmallVector<Operation *> ops;
  root->walk([&](Operation *op) {
    if (isa<math::SqrtOp, math::RsqrtOp, math::FloorOp, math::CeilOp,
            math::AbsFOp, math::RoundEvenOp, math::RoundOp, math::TruncOp,
            math::CopySignOp>(op) &&
        op->getResult(0).getType().isF32())
      ops.push_back(op);
  });
  for (Operation *op : ops) {
    OpBuilder b(op);
    Location l = op->getLoc();
    Type f32 = b.getF32Type();
    auto call = [&](StringRef name, ValueRange args) {
      return LLVM::CallIntrinsicOp::create(b, l, f32, b.getStringAttr(name),
                                           args)
          .getResult(0);
    };
    StringRef name =
        llvm::TypeSwitch<Operation *, StringRef>(op)
            .Case([](math::SqrtOp) { return "llvm.sqrt.f32"; })
            .Case([](math::RsqrtOp) { return "llvm.sqrt.f32"; })
            .Case([](math::FloorOp) { return "llvm.floor.f32"; })
            .Case([](math::CeilOp) { return "llvm.ceil.f32"; })
            .Case([](math::AbsFOp) { return "llvm.fabs.f32"; })
            .Case([](math::RoundEvenOp) { return "llvm.roundeven.f32"; })
            .Case([](math::RoundOp) { return "llvm.round.f32"; })
            .Case([](math::TruncOp) { return "llvm.trunc.f32"; })
            .Case([](math::CopySignOp) { return "llvm.copysign.f32"; });
    Value r = call(name, op->getOperands());
    if (isa<math::RsqrtOp>(op))
      r = arith::DivFOp::create(b, l, f32c(b, l, 1), r);
    op->getResult(0).replaceAllUsesWith(r);
    op->erase();
  }
}

struct GPUMapKernelsPass
    : PassWrapper<GPUMapKernelsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(GPUMapKernelsPass)
  StringRef getArgument() const final { return "qwen-gpu-map-kernels"; }
  StringRef getDescription() const final {
    return "Map the loop nests of the model function onto gpu.launch kernels, "
           "its buffers onto device memory; error on host memory accesses";
  }
  void getDependentDialects(DialectRegistry &r) const override {
    r.insert<mlir::gpu::GPUDialect, scf::SCFDialect, arith::ArithDialect,
             math::MathDialect, memref::MemRefDialect, vector::VectorDialect,
             LLVM::LLVMDialect>();
  }
  void runOnOperation() override {
    ModuleOp m = getOperation();
    m->setAttr(mlir::gpu::GPUDialect::getContainerModuleAttrName(),
               UnitAttr::get(&getContext()));
    for (func::FuncOp f : m.getOps<func::FuncOp>()) {
      if (f.isDeclaration())
        continue;
      for (Block &blk : f.getBody())
        if (failed(mapBlock(blk)))
          return signalPassFailure();
      mapMemory(f);
    }
    bool ok = true;
    SmallVector<mlir::gpu::LaunchOp> launches;
    m.walk([&](mlir::gpu::LaunchOp l) { launches.push_back(l); });
    for (mlir::gpu::LaunchOp l : launches) {
      ok &= succeeded(approximateMath(l));
      mathToIntrinsics(l);
    }
    m.walk<WalkOrder::PreOrder>(
        [&](Operation *op) {
          if (isa<mlir::gpu::LaunchOp>(op))
            return WalkResult::skip();
          if (accessesMemory(op)) {
            op->emitError()
                << "'" << op->getName()
                << "' reads or writes memory on the host: no GPU kernel "
                   "covers it (CUDA bundles keep every buffer in device "
                   "memory)";
            ok = false;
            return WalkResult::interrupt(); // one error: the first such op
          }
          return WalkResult::advance();
        });
    if (!ok)
      signalPassFailure();
  }
};

/// The code of a weight-only quantized weight at (n, k), sign-extended to
/// i32: byte k*bits/8 of row n, the bits-wide field at (k % (8/bits)) * bits.
Value codeOf(OpBuilder &b, Location l, Value byte, Value k, int64_t bits) {
  Type i32 = b.getI32Type();
  if (!byte.getType().isSignlessInteger()) // the store's ui8: same bits
    byte = UnrealizedConversionCastOp::create(b, l, TypeRange{b.getI8Type()},
                                              ValueRange{byte})
               .getResult(0);
  Value v = arith::ExtSIOp::create(b, l, i32, byte);
  if (bits == 8)
    return v;
  Value kk = arith::IndexCastOp::create(b, l, i32, k);
  Value shift = arith::MulIOp::create(
      b, l, arith::RemUIOp::create(b, l, kk, i32c(b, l, 8 / bits)),
      i32c(b, l, bits));
  Value up = arith::SubIOp::create(b, l, i32c(b, l, 32 - bits), shift);
  v = arith::ShLIOp::create(b, l, v, up);
  return arith::ShRSIOp::create(b, l, v, i32c(b, l, 32 - bits));
}

/// The result and loops of a linear y[..., n] = sum_k x[..., k] * W[n, k]
/// (+ bias[n]) as one generic over (tokens..., n, k): its init (the bias
/// broadcast, or zeros), the maps of x and y, the iterator types.
struct LinearInit {
  Value init;
  AffineMap xMap, outMap;
  SmallVector<utils::IteratorType> iterators;
};

LinearInit linearInit(OpBuilder &b, Location l, Value x, Value bias,
                      int64_t rows) {
  auto xt = cast<RankedTensorType>(x.getType());
  MLIRContext *ctx = b.getContext();
  int64_t r = xt.getRank();
  Type f32 = b.getF32Type();
  SmallVector<int64_t> shape(xt.getShape().drop_back());
  shape.push_back(rows);
  SmallVector<Value> dyn;
  for (int64_t i = 0; i + 1 < r; ++i)
    if (xt.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, l, x, i));
  LinearInit li;
  li.init = tensor::EmptyOp::create(b, l, shape, f32, dyn);
  SmallVector<utils::IteratorType> par(r, utils::IteratorType::parallel);
  AffineMap id = AffineMap::getMultiDimIdentityMap(r, ctx);
  if (bias) {
    li.init =
        linalg::GenericOp::create(
            b, l, TypeRange{li.init.getType()}, ValueRange{bias},
            ValueRange{li.init},
            {AffineMap::get(r, 0, {getAffineDimExpr(r - 1, ctx)}, ctx), id},
            par,
            [](OpBuilder &nb, Location nl, ValueRange a) {
              linalg::YieldOp::create(nb, nl, a[0]);
            })
            .getResult(0);
  } else {
    li.init = linalg::FillOp::create(b, l, f32c(b, l, 0), li.init).getResult(0);
  }
  // dims: tokens (r-1), n, k
  SmallVector<AffineExpr> xe, oe;
  for (int64_t i = 0; i + 1 < r; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  xe.push_back(getAffineDimExpr(r, ctx));
  oe.push_back(getAffineDimExpr(r - 1, ctx));
  li.xMap = AffineMap::get(r + 1, 0, xe, ctx);
  li.outMap = AffineMap::get(r + 1, 0, oe, ctx);
  li.iterators = par;
  li.iterators.push_back(utils::IteratorType::reduction);
  return li;
}

/// Whether a linear's x, bias and result suit the GPU kernels: x ranked f32
/// of rank >= 2 with last dim `cols`, bias 1-D [rows] f32 or absent, the
/// result f32 of x's rank.
bool gpuLinearOperandsOk(Value x, Value bias, RankedTensorType rt,
                         int64_t rows, int64_t cols) {
  auto xt = dyn_cast<RankedTensorType>(x.getType());
  if (!xt || !xt.getElementType().isF32() || xt.getRank() < 2 ||
      xt.getShape().back() != cols || rt.getRank() != xt.getRank() ||
      !rt.getElementType().isF32())
    return false;
  if (!bias)
    return true;
  auto bt = dyn_cast<RankedTensorType>(bias.getType());
  return bt && bt.getRank() == 1 && bt.getDimSize(0) == rows &&
         bt.getElementType().isF32();
}

} // namespace

bool targetsGPU(Operation *op) {
  for (Operation *p = op; p; p = p->getParentOp())
    if (p->hasAttr(kTargetAttrName))
      return true;
  return false;
}

bool weightOnlyGPUSupports(const WeightOnlyDesc &q) {
  return (q.bits == 4 || q.bits == 8) && q.isSigned && q.symmetric &&
         !q.hasZeros && q.cols % kWarp == 0 &&
         (q.gran != 2 ||
          (q.group >= kWarp && q.group % kWarp == 0 && q.cols % q.group == 0));
}

/// The indexing map of a weight's scales in a linear generic of `dims` dims:
/// [] per tensor (rank 1), [n, 0] per channel (`per` = 0), [n, k / per] per
/// group of `per` positions of k.
static AffineMap scaleMap(RankedTensorType st, int64_t dims, AffineExpr n,
                          AffineExpr k, int64_t per) {
  MLIRContext *ctx = st.getContext();
  AffineExpr zero = getAffineConstantExpr(0, ctx);
  if (st.getRank() == 1)
    return AffineMap::get(dims, 0, {zero}, ctx);
  return AffineMap::get(dims, 0, {n, per ? k.floorDiv(per) : zero}, ctx);
}

/// Tags the generic of a weight-only linear for --qwen-gpu-fused-kernels
/// ({kind, bits, group}) and returns its result as `rt`.
static Value tagWeightLinear(OpBuilder &b, Location l, linalg::GenericOp g,
                             StringRef kind, const WeightOnlyDesc &q,
                             RankedTensorType rt) {
  g->setAttr(kKernelAttrName,
             b.getDictionaryAttr(
                 {b.getNamedAttr("kind", b.getStringAttr(kind)),
                  b.getNamedAttr("bits", b.getI64IntegerAttr(q.bits)),
                  b.getNamedAttr("group", b.getI64IntegerAttr(
                                              q.gran == 2 ? q.group : 0))}));
  Value y = g.getResult(0);
  if (y.getType() != rt)
    y = tensor::CastOp::create(b, l, rt, y);
  return y;
}

FailureOr<Value> lowerWeightOnlyLinearGPU(OpBuilder &b, Location l,
                                          const WeightOnlyDesc &q, Value x,
                                          Value bias, RankedTensorType rt) {
  if (!weightOnlyGPUSupports(q))
    return failure();
  auto ct = dyn_cast<RankedTensorType>(q.codes.getType());
  auto st = dyn_cast<RankedTensorType>(q.scales.getType());
  if (!gpuLinearOperandsOk(x, bias, rt, q.rows, q.cols) || !ct ||
      !ct.getElementType().isInteger(8) || ct.getRank() != 2 ||
      ct.getDimSize(1) * 8 != q.cols * q.bits || !st ||
      !(st.getElementType().isF32() || st.getElementType().isF16()))
    return failure();
  auto xt = cast<RankedTensorType>(x.getType());
  MLIRContext *ctx = b.getContext();
  int64_t r = xt.getRank();
  Type f32 = b.getF32Type();
  LinearInit li = linearInit(b, l, x, bias, q.rows);
  Value init = li.init;
  AffineExpr n = getAffineDimExpr(r - 1, ctx), k = getAffineDimExpr(r, ctx);
  AffineMap sm = scaleMap(st, r + 1, n, k, q.gran == 2 ? q.group : 0);
  int64_t bits = q.bits;
  auto g = linalg::GenericOp::create(
      b, l, TypeRange{init.getType()}, ValueRange{x, q.codes, q.scales},
      ValueRange{init},
      {li.xMap, AffineMap::get(r + 1, 0, {n, k.floorDiv(8 / bits)}, ctx), sm,
       li.outMap},
      li.iterators, [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value kk = linalg::IndexOp::create(nb, nl, r);
        Value c = arith::SIToFPOp::create(nb, nl, f32,
                                          codeOf(nb, nl, a[1], kk, bits));
        Value s = toF32(nb, nl, a[2]);
        Value w = arith::MulFOp::create(nb, nl, c, s);
        Value p = arith::MulFOp::create(nb, nl, a[0], w);
        linalg::YieldOp::create(
            nb, nl, arith::AddFOp::create(nb, nl, a[3], p).getResult());
      });
  return tagWeightLinear(b, l, g, "woq_gemv", q, rt);
}

FailureOr<Value> lowerSparse24LinearGPU(OpBuilder &b, Location l,
                                        const WeightOnlyDesc &q, Value mask,
                                        Value x, Value bias,
                                        RankedTensorType rt) {
  auto ct = dyn_cast<RankedTensorType>(q.codes.getType());
  auto mt = dyn_cast<RankedTensorType>(mask.getType());
  auto st = dyn_cast<RankedTensorType>(q.scales.getType());
  if (!weightOnlyGPUSupports(q) ||
      !gpuLinearOperandsOk(x, bias, rt, q.rows, q.cols) || !ct ||
      !ct.hasStaticShape() || !ct.getElementType().isInteger(8) ||
      ct.getRank() != 2 || ct.getDimSize(1) * 16 != q.cols * q.bits || !mt ||
      !mt.hasStaticShape() || !mt.getElementType().isInteger(8) ||
      mt.getRank() != 2 || mt.getDimSize(1) * 8 != q.cols || !st ||
      !(st.getElementType().isF32() || st.getElementType().isF16()))
    return failure();
  MLIRContext *ctx = b.getContext();
  int64_t r = rt.getRank(), slots = q.cols / 2, bits = q.bits;
  Type f32 = b.getF32Type();
  LinearInit li = linearInit(b, l, x, bias, q.rows);
  // dims: tokens (r - 1), n, j (the kept slots; the extent comes from a
  // [cols / 2] placeholder input indexed by j, as linearSparse24 does).
  AffineExpr n = getAffineDimExpr(r - 1, ctx), j = getAffineDimExpr(r, ctx);
  // A slot's group: slots 2g, 2g + 1 lie in inputs 4g .. 4g + 3, so group
  // G (a multiple of 4) holds slots [G/2 * i, G/2 * (i + 1)).
  AffineMap sm = scaleMap(st, r + 1, n, j, q.gran == 2 ? q.group / 2 : 0);
  Value placeholder =
      tensor::EmptyOp::create(b, l, ArrayRef<int64_t>{slots}, b.getI8Type());
  auto g = linalg::GenericOp::create(
      b, l, TypeRange{li.init.getType()},
      ValueRange{placeholder, q.codes, mask, q.scales}, ValueRange{li.init},
      {AffineMap::get(r + 1, 0, {j}, ctx),
       AffineMap::get(r + 1, 0, {n, j.floorDiv(8 / bits)}, ctx),
       AffineMap::get(r + 1, 0, {n, j.floorDiv(4)}, ctx), sm, li.outMap},
      li.iterators, [&](OpBuilder &nb, Location nl, ValueRange a) {
        SmallVector<Value> iv;
        for (int64_t i = 0; i <= r; ++i)
          iv.push_back(linalg::IndexOp::create(nb, nl, i));
        Value jj = iv[r];
        // The input of slot j: 4 (j / 2) + its 2-bit position (field j % 4
        // of the mask byte, LSB first).
        Value pos = arith::IndexCastOp::create(
            nb, nl, nb.getIndexType(),
            arith::AndIOp::create(
                nb, nl,
                arith::ShRUIOp::create(
                    nb, nl, codeOf(nb, nl, a[2], idx(nb, nl, 0), 8),
                    arith::IndexCastOp::create(
                        nb, nl, nb.getI32Type(),
                        arith::MulIOp::create(
                            nb, nl,
                            arith::RemUIOp::create(nb, nl, jj, idx(nb, nl, 4)),
                            idx(nb, nl, 2)))),
                i32c(nb, nl, 3)));
        Value col = arith::AddIOp::create(
            nb, nl,
            arith::MulIOp::create(
                nb, nl, arith::DivUIOp::create(nb, nl, jj, idx(nb, nl, 2)),
                idx(nb, nl, 4)),
            pos);
        SmallVector<Value> xi(iv.begin(), iv.begin() + (r - 1));
        xi.push_back(col);
        Value xv = tensor::ExtractOp::create(nb, nl, x, xi);
        Value c = arith::SIToFPOp::create(nb, nl, f32,
                                          codeOf(nb, nl, a[1], jj, bits));
        Value s = toF32(nb, nl, a[3]);
        Value p = arith::MulFOp::create(nb, nl, xv,
                                        arith::MulFOp::create(nb, nl, c, s));
        linalg::YieldOp::create(
            nb, nl, arith::AddFOp::create(nb, nl, a[4], p).getResult());
      });
  return tagWeightLinear(b, l, g, "sparse24", q, rt);
}

FailureOr<Value> lowerCodebookLinearGPU(OpBuilder &b, Location l, Value codes,
                                        Value table, int64_t gran,
                                        int64_t group, int64_t booksPerRow,
                                        Value x, Value bias,
                                        RankedTensorType rt) {
  auto ct = dyn_cast<RankedTensorType>(codes.getType());
  auto tt = dyn_cast<RankedTensorType>(table.getType());
  if (!ct || !ct.hasStaticShape() || ct.getRank() != 2 ||
      !ct.getElementType().isInteger(8) || !tt || tt.getRank() != 2 ||
      !tt.hasStaticShape() || tt.getDimSize(1) != 16 ||
      !(tt.getElementType().isF32() || tt.getElementType().isF16()))
    return failure();
  int64_t rows = ct.getDimSize(0), cols = ct.getDimSize(1) * 2;
  if (cols % kWarp != 0 ||
      (gran == 2 && (group % kWarp != 0 || cols % group != 0 ||
                     booksPerRow != cols / group)) ||
      !gpuLinearOperandsOk(x, bias, rt, rows, cols))
    return failure();
  MLIRContext *ctx = b.getContext();
  int64_t r = rt.getRank();
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  LinearInit li = linearInit(b, l, x, bias, rows);
  AffineExpr n = getAffineDimExpr(r - 1, ctx), k = getAffineDimExpr(r, ctx);
  auto g = linalg::GenericOp::create(
      b, l, TypeRange{li.init.getType()}, ValueRange{x, codes},
      ValueRange{li.init},
      {li.xMap, AffineMap::get(r + 1, 0, {n, k.floorDiv(2)}, ctx), li.outMap},
      li.iterators, [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value nn = linalg::IndexOp::create(nb, nl, r - 1);
        Value kk = linalg::IndexOp::create(nb, nl, r);
        // The unsigned nibble of k: low for even k.
        Value byte = a[1];
        if (!byte.getType().isSignlessInteger())
          byte = UnrealizedConversionCastOp::create(
                     nb, nl, TypeRange{nb.getI8Type()}, ValueRange{byte})
                     .getResult(0);
        Value v = arith::ExtUIOp::create(nb, nl, i32, byte);
        Value odd = arith::IndexCastOp::create(
            nb, nl, i32, arith::RemUIOp::create(nb, nl, kk, idx(nb, nl, 2)));
        v = arith::ShRUIOp::create(
            nb, nl, v, arith::MulIOp::create(nb, nl, odd, i32c(nb, nl, 4)));
        v = arith::AndIOp::create(nb, nl, v, i32c(nb, nl, 15));
        Value code = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), v);
        Value book =
            gran == 0   ? idx(nb, nl, 0)
            : gran == 1 ? nn
                        : arith::AddIOp::create(
                              nb, nl,
                              arith::MulIOp::create(nb, nl, nn,
                                                    idx(nb, nl, booksPerRow)),
                              arith::DivUIOp::create(nb, nl, kk,
                                                     idx(nb, nl, group)))
                              .getResult();
        Value w = tensor::ExtractOp::create(nb, nl, table,
                                            ValueRange{book, code});
        if (!w.getType().isF32())
          w = arith::ExtFOp::create(nb, nl, f32, w);
        Value p = arith::MulFOp::create(nb, nl, a[0], w);
        linalg::YieldOp::create(
            nb, nl, arith::AddFOp::create(nb, nl, a[2], p).getResult());
      });
  g->setAttr(kKernelAttrName,
             b.getDictionaryAttr(
                 {b.getNamedAttr("kind", b.getStringAttr("lut_gemv")),
                  b.getNamedAttr("gran", b.getI64IntegerAttr(gran)),
                  b.getNamedAttr("group", b.getI64IntegerAttr(group)),
                  b.getNamedAttr("books_per_row",
                                 b.getI64IntegerAttr(booksPerRow))}));
  Value y = g.getResult(0);
  if (y.getType() != rt)
    y = tensor::CastOp::create(b, l, rt, y);
  return y;
}

void tagRMSNormGPU(OpBuilder &b, Operation *normalise, const APFloat &eps) {
  APFloat e = eps;
  bool lost;
  e.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &lost);
  normalise->setAttr(
      kKernelAttrName,
      b.getDictionaryAttr({b.getNamedAttr("kind", b.getStringAttr("rms_norm")),
                           b.getNamedAttr("eps", b.getF32FloatAttr(
                                                     e.convertToFloat()))}));
}

void tagRoPEGPU(OpBuilder &b, Operation *rope, int64_t headDim) {
  rope->setAttr(kKernelAttrName,
                b.getDictionaryAttr(
                    {b.getNamedAttr("kind", b.getStringAttr("rope")),
                     b.getNamedAttr("head_dim", b.getI64IntegerAttr(headDim))}));
}

std::unique_ptr<Pass> createGPUFusedKernelsPass(llvm::StringRef gemm) {
  return std::make_unique<GPUFusedKernelsPass>(gemm);
}
std::unique_ptr<Pass> createGPUMapKernelsPass() {
  return std::make_unique<GPUMapKernelsPass>();
}
void registerGPUKernelPasses() {
  PassRegistration<GPUFusedKernelsPass>();
  PassRegistration<GPUMapKernelsPass>();
}

} // namespace qwen::gpu
