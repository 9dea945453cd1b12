//===- KernelSupport.h - pieces shared by the CPU linear kernels -*- C++ -*-===//
//
// The linear kernels (DenseKernels.cpp, QuantKernels.cpp) compute
// y[..., n] = sum_k x[..., k] W[n, k] as an scf.forall over tiles of output
// channels of a [M, N] result, M the tokens of x flattened, and give y back
// the leading dims of x at the end. These are those common steps.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_KERNELSUPPORT_H
#define QWEN_TRANSFORMS_KERNELSUPPORT_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Support/LLVM.h"

namespace qwen {

/// The tokens of x [..., K] as one flat index m over the leading dims, so the
/// kernels index x and their [M, N] result without reshape ops.
struct Tokens {
  int64_t rank = 0;
  mlir::SmallVector<mlir::Value> lead; ///< the leading dims (index values)
  mlir::Value M;                       ///< their product
  int64_t Ms = 1;                      ///< M if static, else ShapedType::kDynamic

  /// The leading indices of flat token m (row-major).
  mlir::SmallVector<mlir::Value> unflatten(mlir::OpBuilder &b, mlir::Location l, mlir::Value m) const;
  /// M as the dynamic sizes of a [M, ...] tensor.empty.
  mlir::SmallVector<mlir::Value> dynM() const;
};

Tokens flattenTokens(mlir::OpBuilder &b, mlir::Location l, mlir::Value x);

/// y [M, N] back to the leading dims of x: out[i..., n] = y[flat(i...), n].
mlir::Value restoreLeading(mlir::OpBuilder &b, mlir::Location l, mlir::Value y,
                           mlir::RankedTensorType rt, const Tokens &t);

/// The body of one tile: `tile` is the [M, sz] slice of the output for the
/// channels n0 .. n0 + sz (sz <= the tile size; the last tile may be
/// partial), `rows` the first `clampRows` channel indices n0 + i clamped to
/// N - 1 (a partial tile recomputes row N - 1 in its extra lanes, which must
/// not be written). Returns the updated tile.
using ChannelTileBody = mlir::function_ref<mlir::Value(
    mlir::OpBuilder &, mlir::Location, mlir::Value tile, mlir::Value n0, mlir::ArrayRef<mlir::Value> rows)>;

/// x [..., K] as an f32 [M, Kp] tensor, Kp = K rounded up to a multiple of
/// `chunk` (0 past K), each chunk split into `planes` planes of chunk / planes
/// elements: element t * (chunk / planes) + i of a chunk is its input
/// planes * i + t (planes = 1: x itself). A kernel whose packed codes hold
/// `planes` fields per byte thereby meets each field position with one
/// contiguous vector of activations. With `firstRow`, only the tokens
/// [firstRow, M) ([M - firstRow, Kp], row 0 = token firstRow); with
/// `rowEnd`, only the tokens before it; with `elt` (e.g. bf16), the values
/// truncated to it.
mlir::Value packActivations(mlir::OpBuilder &b, mlir::Location l, mlir::Value x, const Tokens &t,
                            int64_t K, int64_t chunk, int64_t planes, mlir::Value firstRow = {},
                            mlir::Type elt = {}, mlir::Value rowEnd = {});

/// qquant.linear {i16_input}: x (ranked f32, last dim static) quantized to
/// int16 and dequantized per block of G along the last dim (G divides it;
/// the weight's groups):
///   s = max_{k in block} |x[..., k]| / 32767                 (f32)
///   x' = f32(clamp(roundeven(x / s), -32767, 32767)) * s      (0 where s == 0)
/// A permutation of x's last dim within blocks (packActivations' planes
/// when G is a multiple of the chunk) commutes with it.
mlir::Value quantDequantBlocksI16(mlir::OpBuilder &b, mlir::Location l, mlir::Value x, int64_t G);

/// Software prefetch along the rows of a 2-D weight tensor [rows, cols]
/// (codes, or f32): the decode GEMVs read each row as one stream, and the
/// hardware prefetchers alone left the 4-bit GEMV stalled on its code loads
/// (README, "Prefetch"). `create` makes a flat read-only view of the buffer
/// once (outside the tile loop); `at` prefetches the line `aheadBytes` past
/// element (row, col), clamped to the last element, so it never points past
/// the buffer. One call per 64 bytes of the stream.
struct RowPrefetcher {
  mlir::Value flat;  ///< memref<rows * cols x elt>, or null: disabled
  int64_t cols = 0, total = 0;
  int64_t ahead = 0; ///< in elements
  static RowPrefetcher create(mlir::OpBuilder &b, mlir::Location l, mlir::Value weight, int64_t aheadBytes);
  void at(mlir::OpBuilder &b, mlir::Location l, mlir::Value row, mlir::Value col) const;
};

/// The [M, N] f32 accumulator a linear kernel starts from: bias[n] (f32 or
/// f16) broadcast over the tokens, or 0.
mlir::Value linearInitMN(mlir::OpBuilder &b, mlir::Location l, mlir::Value bias, const Tokens &t, int64_t N);

/// The symmetric integer code of `v` (f32, scalar or vector) at scale `s`
/// (f32 scalar): clamp(roundeven(v / s), -qmax, qmax) as `codeType` (i8, or
/// a vector of it), 0 where s == 0. The one definition of the dynamic and
/// static activation quantization every int8 lowering and kernel uses.
mlir::Value quantizeToCode(mlir::OpBuilder &b, mlir::Location l, mlir::Value v, mlir::Value s, double qmax,
                           mlir::Type codeType);

/// A block of `mr` tokens from m0 updating the [M, tile] result tile.
using TokenBlockFn = mlir::function_ref<mlir::Value(mlir::OpBuilder &, mlir::Location, mlir::Value m0,
                                                    int64_t mr, mlir::Value tile)>;

/// The tokens tokenBlocks gives to blocks of MR: M rounded down to a
/// multiple of MR (0 for MR = 1: every token goes one by one).
mlir::Value blockedTokens(mlir::OpBuilder &b, mlir::Location l, mlir::Value M, int64_t MR);

/// The tokens [0, M) in blocks of MR, then the remainder one by one.
mlir::Value tokenBlocks(mlir::OpBuilder &b, mlir::Location l, mlir::Value M, int64_t MR, mlir::Value tile,
                        TokenBlockFn blk);

/// The accumulators of the NR rows of a channel tile, from `accsFor` (the
/// accumulators of the rows it is given, row-major): one row at a time for a
/// single token when `rowwise` (one stream of codes: 1.65x faster than 4
/// interleaved rows on one thread, w8a16 Qwen2.5-0.5B), else all at once.
mlir::SmallVector<mlir::Value>
rowBlockAccumulators(int64_t NR, int64_t mr, bool rowwise,
                     mlir::function_ref<mlir::SmallVector<mlir::Value>(mlir::ArrayRef<int64_t>)> accsFor);

/// tile[mrow[j], i] += vals[i * mrow.size() + j] for the NR channels i of a
/// [M, sz] tile (lanes past sz are not written).
mlir::Value addToTileRows(mlir::OpBuilder &b, mlir::Location l, mlir::Value tile,
                          mlir::ArrayRef<mlir::Value> vals, mlir::ArrayRef<mlir::Value> mrow, int64_t NR);

/// scf.forall over ceil(N / tileRows) tiles of output channels of init
/// [M, N] (shared_outs), each slice updated by `body` and inserted back;
/// returns the forall's result.
mlir::Value forEachChannelTile(mlir::OpBuilder &b, mlir::Location l, mlir::Value init, mlir::Value M,
                               int64_t N, int64_t tileRows, int64_t clampRows, ChannelTileBody body);

} // namespace qwen

#endif // QWEN_TRANSFORMS_KERNELSUPPORT_H
