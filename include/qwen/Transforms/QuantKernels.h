//===- QuantKernels.h - fused weight-only quantized linear kernels -*- C++ -*-===//
//
// y[..., n] = sum_k x[..., k] * W[n, k] (+ bias[n]) for a weight-only
// quantized W (signed symmetric 4- or 8-bit codes, per tensor / channel /
// group of 32, 64 or 128), emitted by --qwen-lower-model-to-linalg as an
// scf.forall over tiles of output channels whose body is scf.for loops of
// 1-D vector ops: the packed codes are loaded as bytes, unpacked and
// converted to f32 in registers, multiplied with the activations and
// accumulated per group, then scaled. The f32 weight is never materialized.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_QUANTKERNELS_H
#define QWEN_TRANSFORMS_QUANTKERNELS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Support/LLVM.h"

#include <optional>

namespace qwen {

/// A uniform quantized weight [rows, cols] as the lowering sees it.
struct WeightOnlyDesc {
  mlir::Value codes;  ///< [rows, rowBytes] (u)i8, codes packed LSB first
  mlir::Value scales; ///< [1] (tensor) or [rows, perRow], f32 or f16
  int64_t bits = 4;
  int64_t rows = 0, cols = 0;
  int gran = 2; ///< 0 tensor, 1 channel, 2 group
  int64_t group = 0;
  bool isSigned = true, symmetric = true, hasZeros = false;
  bool log2 = false;     ///< log2 grid: code = sign bit + exponent (LowerONNXToLinalg.cpp log2Level)
  bool codebook = false; ///< codebook grid: `scales` is [books, 2^bits] of centroids
  int64_t perRow = 1;    ///< codebooks per row (group granularity)
  mlir::Value mask;      ///< 2:4 sparse: [rows, maskBytes] 2-bit positions of the
                         ///< kept codes (`codes` holds cols / 2 per row)
};

/// Knobs of the kernel; read from the module attribute
/// `qwen.quant_kernel = {fused = true, tile_n = 4, tile_n_decode = 16, tile_m = 4, buffer_m = 16}` (all
/// optional) that qwen-compile sets from --target. `fused = false` keeps the
/// reference lowering (dequantize the whole weight, then a matmul).
struct WeightOnlyParams {
  bool fused = true;
  int64_t tileN = 4; ///< output channels per tile (a parallel iteration)
  /// Output channels per tile when every token is single (decode: fewer
  /// than tileM tokens) and single tokens go row by row (rowwise, or the
  /// bf16 / int16 dot rows). qwen-compile's default.
  int64_t tileNDecode = 16;
  int64_t tileM = 4; ///< tokens sharing each dequantized register of W
  /// From this many tokens on (prefill), each tile of W is dequantized once
  /// into an f32 [tileN, K] buffer that a register-blocked f32 kernel reads
  /// for every block of tokens; 0 = never.
  int64_t bufferM = 16;
  /// A single token (decode) reads the tile's rows one after the other (one
  /// stream of codes) instead of interleaved.
  bool rowwise = true;
  /// The target has AVX-512 VNNI (vpdpbusd): the int8-activation kernel's
  /// inner product is vpdpbusd (llvm.call_intrinsic); else portable vector
  /// ops that LLVM lowers to vpmaddwd (any x86-64; `vnni = true` for a
  /// target without VNNI fails instruction selection).
  bool vnni = false;
  /// The target has AVX-512: the codebook and 2:4 kernels' lane permutes are
  /// vpermps / vpermt2ps on zmm; else AVX2 vpermps on ymm halves.
  bool avx512 = false;
  /// The codebook kernel looks its 2- and 4-bit centroids up with a gather
  /// from the table in memory instead of lane permutes (tuning; 8-bit
  /// books always gather).
  bool lutGather = false;
  /// The target has AVX512-BF16 (vdpbf16ps).
  bool avx512bf16 = false;
  /// Single-token (decode) row streams prefetch the weight line this many
  /// bytes ahead (memref.prefetch locality 2 -> prefetcht1, into L2;
  /// KernelSupport.h RowPrefetcher); 0 = none. qwen-compile's default.
  int64_t prefetch = 8192;
  /// Per op, not per module: the input is already rounded to bfloat16
  /// (qquant.linear {bf16_input}); with avx512bf16 the 4-bit kernel's
  /// single-token blocks multiply in bf16 (exact products, f32 sums).
  bool bf16Input = false;
  /// Per op: qquant.linear {i16_input}, x not yet rounded. The kernel
  /// quantizes it to int16 per weight group itself: with vnni its 4-bit
  /// single-token blocks multiply the codes with vpdpwssd (exact i32 sums
  /// per group, one f32 scale per group); every other path takes x
  /// quantized and dequantized (quantDequantBlocksI16).
  bool i16Input = false;
};

WeightOnlyParams weightOnlyParamsFor(mlir::Operation *op);

/// Whether the fused kernel handles this weight (else the caller keeps the
/// reference lowering).
bool weightOnlyKernelSupports(const WeightOnlyDesc &q);

/// The fused kernel; fails (creating nothing) on forms it does not handle:
/// see weightOnlyKernelSupports, and x must be ranked f32 of rank >= 2 with
/// last dim = cols, bias 1-D [rows] f32/f16 or absent.
mlir::FailureOr<mlir::Value>
lowerWeightOnlyLinear(mlir::OpBuilder &b, mlir::Location l, const WeightOnlyDesc &q,
                      mlir::Value x, mlir::Value bias, mlir::RankedTensorType rt,
                      const WeightOnlyParams &p);

/// The f32 scale of (row, group g) of a uniform weight: scales [1] (per
/// tensor) or [rows, groups] (one column per channel).
mlir::Value weightScaleAt(mlir::OpBuilder &b, mlir::Location l, const WeightOnlyDesc &q, mlir::Value row,
                          mlir::Value g);

/// The operand forms the CPU kernels take: x ranked f32 of rank >= 2 with
/// last dim = cols, codes [rows, bytes] of 8-bit elements, f32/f16 scales,
/// bias 1-D [rows] f32/f16 or absent.
bool weightOperandsSupported(const WeightOnlyDesc &q, mlir::Value x, mlir::Value bias, mlir::RankedTensorType rt,
                             mlir::Type xElt = {});

/// Whether the codebook kernel handles this weight: codebook grid of 2 to 8
/// bits per tensor / channel, or per group of a multiple of 16 inputs.
bool codebookKernelSupports(const WeightOnlyDesc &q);

/// y = x W^T (+ bias) for a codebook weight (SparseLutKernels.cpp): the
/// tile's codes are unpacked in registers and looked up in the row's (or
/// group's, or tensor's) book, held in vector registers, with lane permutes
/// (vpermps / vpermt2ps; 8-bit books on AVX2: a gather from the table), then
/// multiplied with x; the f32 weight is never materialized. Fails (creating
/// nothing) on forms it does not handle.
mlir::FailureOr<mlir::Value> lowerCodebookLinear(mlir::OpBuilder &b, mlir::Location l, const WeightOnlyDesc &q,
                                                 mlir::Value x, mlir::Value bias, mlir::RankedTensorType rt,
                                                 const WeightOnlyParams &p);

/// Whether the 2:4 kernel handles this weight: signed symmetric 4- or 8-bit
/// uniform codes, or a 4-bit log2 grid, per tensor / channel / group of a
/// multiple of 32, sparsity 2:4.
bool sparse24KernelSupports(const WeightOnlyDesc &q);

/// y = x W^T (+ bias) for a 2:4 sparse weight (SparseLutKernels.cpp): per 16
/// kept codes (32 inputs) the two vectors of x they cover are loaded and
/// the 16 kept activations selected with a two-source lane permute
/// (vpermt2ps) indexed by the 2-bit positions; cols / 2 multiply-adds per
/// output, the pruned weights never read. Fails (creating nothing) on forms
/// it does not handle.
mlir::FailureOr<mlir::Value> lowerSparse24Linear(mlir::OpBuilder &b, mlir::Location l, const WeightOnlyDesc &q,
                                                 mlir::Value x, mlir::Value bias, mlir::RankedTensorType rt,
                                                 const WeightOnlyParams &p);

/// The lane permutes of the codebook and 2:4 kernels (llvm.call_intrinsic).
constexpr const char *kPermps512 = "llvm.x86.avx512.permvar.sf.512";   ///< vpermps zmm
constexpr const char *kPermps256 = "llvm.x86.avx2.permps";             ///< vpermps ymm
constexpr const char *kPermt2ps512 = "llvm.x86.avx512.vpermi2var.ps.512"; ///< vpermt2ps zmm

/// Whether `name` is one of the pure x86 intrinsics the kernels call
/// through llvm.call_intrinsic (vpdpbusd, the lane permutes).
bool isPureKernelIntrinsic(llvm::StringRef name);

/// What a pass emitting the kernels needs in its context: the LLVM dialect,
/// and memory effects for llvm.call_intrinsic (vpdpbusd is pure) so that
/// buffer deallocation accepts the int8 kernels.
void registerQuantKernelExtensions(mlir::DialectRegistry &registry);

/// Whether the fused int8-activation kernel handles this weight: signed
/// symmetric 8-bit codes per tensor or channel (W8A8), 4-bit ones per
/// tensor, channel or group of a multiple of 32 (W4A8).
bool int8ActKernelSupports(const WeightOnlyDesc &q);

/// y = x W^T (+ bias) with int8 activations, bit for bit the numerics of the
/// reference lowering (LowerONNXToLinalg.cpp, linearDynI8): x quantized per
/// token (dynamic: s_x = max|x| / 127; static: s_x = staticScale),
/// q_x = clamp(roundeven(x / s_x), -127, 127); exact i32 sums of q_x * code
/// (per group for W4A8-g); y = f32(acc) * s_x * s_w[n] (+ bias), or per group
/// y = (sum_g f32(acc_g) * s_w[n, g]) * s_x (+ bias), g ascending. Emitted as
/// an scf.forall over tiles of output channels whose inner product is
/// vpdpbusd (u8 x s8 -> i32) with p.vnni: the weights are the unsigned
/// operand, biased to code + 128 (i8) or code + 8 (i4 nibbles, unpacked in
/// registers), and 128 (or 8) * sum_k q_x[m, k] per token and group is
/// subtracted once. Fails (creating nothing) on forms it does not handle.
/// With `preScale` (qquant.qlinear) x is q_x itself (i8) and preScale
/// ([..., 1] f32) holds s_x: the kernel only lays q_x out for the weights.
mlir::FailureOr<mlir::Value>
lowerInt8ActLinear(mlir::OpBuilder &b, mlir::Location l, const WeightOnlyDesc &q, mlir::Value x,
                   mlir::Value bias, mlir::RankedTensorType rt, std::optional<float> staticScale,
                   const WeightOnlyParams &p, mlir::Value preScale = {});

} // namespace qwen

#endif // QWEN_TRANSFORMS_QUANTKERNELS_H
