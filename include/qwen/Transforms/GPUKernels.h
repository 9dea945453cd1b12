//===- GPUKernels.h - the model function onto CUDA kernels ------*- C++ -*-===//
//
// The GPU side of code generation (qwen-compile --target sm_XY):
//
//  * On tensors, --qwen-lower-model-to-linalg emits a weight-only quantized
//    linear / logits (signed symmetric 4/8-bit codes, see QuantKernels.h) as
//    ONE linalg.generic that dequantizes inside the reduction and carries
//    `qwen.gpu_kernel`: it is the op's meaning (and what any other lowering
//    of it computes), and tells --qwen-gpu-fused-kernels to implement it by
//    hand.
//  * --qwen-gpu-fused-kernels (bufferized IR) replaces each such generic by a
//    gpu.launch of the fused GEMV: one warp per output channel, 128-bit
//    read-only loads of the packed codes, dequantization in registers, f32
//    accumulation, a butterfly warp-shuffle reduction; from 16 tokens the
//    same launch runs a tiled tensor-core GEMM (64 x 64 block tiles staged
//    through shared memory by cp.async, ldmatrix, mma.sync; gemm=direct:
//    the simpler per-warp kernel). 2:4 sparse weights take a GEMV over the
//    kept codes and the same tiled GEMM with mma.sp.
//  * An RMSNorm over the last dim (tagged {kind = "rms_norm"} on its
//    normalising generic) becomes one kernel: a block per token, 128-bit
//    loads kept in registers, the sum of squares by warp shuffles and shared
//    memory across warps, then x * rsqrt(mean + eps) * gamma stored as v4.
//  * --qwen-gpu-map-kernels maps every remaining top-level scf.parallel (the
//    linalg ops after convert-linalg-to-parallel-loops) onto a gpu.launch of
//    256-thread blocks over its flattened iteration space, memref.alloc /
//    dealloc onto device memory, constant globals onto device copies, and
//    errors naming any memref access left in host code.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_GPUKERNELS_H
#define QWEN_TRANSFORMS_GPUKERNELS_H

#include "qwen/Transforms/QuantKernels.h"

#include "mlir/Pass/Pass.h"

namespace qwen::gpu {

/// Module attribute (a string, "sm_80") that qwen-compile sets for a CUDA
/// target before lowering to linalg.
inline constexpr llvm::StringLiteral kTargetAttrName = "qwen.gpu_target";
/// Attribute of the linalg.generic of a weight-only linear (a dictionary:
/// kind = "woq_gemv", bits, group (0 = per channel / tensor)), or of the
/// normalising generic of an RMSNorm ({kind = "rms_norm", eps}), or of a
/// RoPE ({kind = "rope", head_dim}), or a codebook linear ({kind =
/// "lut_gemv", ...}), or an attention ({kind = "attention", ...},
/// GPUAttention.h).
inline constexpr llvm::StringLiteral kKernelAttrName = "qwen.gpu_kernel";

/// Whether `op` is in a module lowered for a CUDA target.
bool targetsGPU(mlir::Operation *op);

/// Whether the fused GPU kernel handles this weight: signed symmetric 4- or
/// 8-bit codes per tensor, channel or group of >= 32 (a multiple of 32),
/// no zero points, K a multiple of 32.
bool weightOnlyGPUSupports(const WeightOnlyDesc &q);

/// y[..., n] = sum_k x[..., k] * dequant(W)[n, k] (+ bias[n]) as the tagged
/// linalg.generic described above; fails (creating nothing) on forms it does
/// not handle (x must be ranked f32 of rank >= 2 with last dim = cols, bias
/// 1-D [rows] f32 or absent).
mlir::FailureOr<mlir::Value>
lowerWeightOnlyLinearGPU(mlir::OpBuilder &b, mlir::Location l,
                         const WeightOnlyDesc &q, mlir::Value x,
                         mlir::Value bias, mlir::RankedTensorType rt);

/// Tags `normalise`, the elementwise generic y = x * rsqrt(ss / K + eps) *
/// gamma of a (not per-head) RMSNorm over the last dim whose ins are (x,
/// ss, gamma), with {kind = "rms_norm", eps}: --qwen-gpu-fused-kernels then
/// computes the sum of squares and the normalisation in one kernel (a block
/// per token) and drops the separate reduction into ss when nothing else
/// reads it.
void tagRMSNormGPU(mlir::OpBuilder &b, mlir::Operation *normalise,
                   const llvm::APFloat &eps);

/// Tags `rope`, the generic of a half-split RoPE over whole heads of
/// `headDim` (ins (x [..., H * D], positions [...]), the folded inv_freq
/// table read inside its body), with {kind = "rope", head_dim}:
/// --qwen-gpu-fused-kernels then rotates 4 pairs per thread with 128-bit
/// loads and one sin / cos per pair.
void tagRoPEGPU(mlir::OpBuilder &b, mlir::Operation *rope, int64_t headDim);

/// y[..., n] = sum_k x[..., k] * table[book(n, k), code(n, k)] (+ bias[n])
/// for a codebook weight: unsigned 4-bit codes packed two per byte (low
/// nibble first) in `codes` [rows, cols / 2], `table` [books, 16] f32 / f16
/// with one book per tensor (gran 0), output channel (1) or group of
/// `group` inputs (2, booksPerRow per row). One linalg.generic reading the
/// table inside its body, tagged {kind = "lut_gemv", gran, group,
/// books_per_row}: --qwen-gpu-fused-kernels implements it as a warp per
/// output channel with the row's books in shared memory. Fails (creating
/// nothing) unless cols is a multiple of 32, a group a multiple of 32, x
/// f32 of rank >= 2, bias 1-D f32 or absent.
mlir::FailureOr<mlir::Value>
lowerCodebookLinearGPU(mlir::OpBuilder &b, mlir::Location l, mlir::Value codes,
                       mlir::Value table, int64_t gran, int64_t group,
                       int64_t booksPerRow, mlir::Value x, mlir::Value bias,
                       mlir::RankedTensorType rt);

/// y[..., n] = sum_j x[..., col(n, j)] * code(n, j) * scale (+ bias[n]) over
/// the cols / 2 kept slots j of a 2:4 sparse weight (`codes` [rows, cols /
/// 2 * bits / 8] the kept codes, `mask` [rows, cols / 8] their 2-bit
/// positions, slot j at input 4 (j / 2) + pos(j); LowerONNXToLinalg.cpp,
/// linearSparse24) as one linalg.generic over (tokens..., n, j) tagged
/// {kind = "sparse24", bits, group}: --qwen-gpu-fused-kernels implements it
/// with a warp-per-channel GEMV that reads only the kept codes (decode) and
/// mma.sp (prefill). Takes what weightOnlyGPUSupports takes; fails (creating
/// nothing) otherwise.
mlir::FailureOr<mlir::Value>
lowerSparse24LinearGPU(mlir::OpBuilder &b, mlir::Location l,
                       const WeightOnlyDesc &q, mlir::Value mask, mlir::Value x,
                       mlir::Value bias, mlir::RankedTensorType rt);

/// --qwen-gpu-fused-kernels (module; bufferized IR). `gemm` is its option
/// of the same name: the prefill GEMM of the fused linears, "tiled" (block
/// tiles staged through shared memory by cp.async, ldmatrix, mma.sync) or
/// "direct" (the simpler kernel whose warps load their mma fragments from
/// global memory, kept to check the tiled one against).
std::unique_ptr<mlir::Pass>
createGPUFusedKernelsPass(llvm::StringRef gemm = "tiled");
/// --qwen-gpu-map-kernels (module; after convert-linalg-to-parallel-loops).
std::unique_ptr<mlir::Pass> createGPUMapKernelsPass();
/// Registers both for qwen-opt.
void registerGPUKernelPasses();

} // namespace qwen::gpu

#endif // QWEN_TRANSFORMS_GPUKERNELS_H
