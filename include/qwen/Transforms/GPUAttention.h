//===- GPUAttention.h - qwen.attention as CUDA kernels ----------*- C++ -*-===//
//
// Grouped-query causal attention over the KV cache for CUDA targets:
//
//  * On tensors, --qwen-lower-model-to-linalg emits the attention (after the
//    present K/V, which stay the reference's concat) as ONE linalg.generic
//    over the output [B, T, NH * D] whose body computes each element with an
//    online softmax over the keys (reading q, K, V and the mask it also
//    takes as operands); it carries qwen.gpu_kernel = {kind = "attention",
//    num_heads, num_kv_heads, head_dim, scale, causal, mma_prefill}. It is
//    the op's meaning, and what runs if no kernel replaces it.
//  * --qwen-gpu-fused-kernels (bufferized IR) replaces it by two launches:
//    flash-decoding (split-K) for few query tokens, or a tiled prefill
//    kernel (tensor cores with mma_prefill, else CUDA cores), chosen on the
//    host for the grid and again inside the kernel (uniform), then the
//    combine of the decode splits.
//
// Module attribute qwen.quant_kernel = {gpu_attention = false}
// (QWEN_QUANT_KERNEL="gpu_attention=0") keeps the reference lowering
// (scores, softmax, weighted sum as generics mapped onto loop-nest
// kernels), to check these kernels against it; {gpu_attention_mma = false}
// (qwen-compile's default for fp32) takes the CUDA-core prefill.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_GPUATTENTION_H
#define QWEN_TRANSFORMS_GPUATTENTION_H

#include "qwen/Dialect/Qwen/QwenDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace qwen::gpu {

/// Whether `op` (in a module lowered for a CUDA target) takes the attention
/// kernels: enabled (not gpu_attention = false), f32 rows [B, T, heads * D]
/// and 4-D past K/V, an optional 2-D mask, NH a multiple of KV, D a multiple
/// of 4 of at most 128 that is a multiple of ceil(D / 32) (16, 64, 128, ...).
bool attentionGPUApplies(AttentionOp op);

/// The tagged generic described above: out[b, t, h * D + d] of `op` with
/// the present key / value K, V [B, KV, P + T, D] and P past positions.
mlir::Value lowerAttentionGPU(mlir::OpBuilder &b, mlir::Location l,
                              AttentionOp op, mlir::Value K, mlir::Value V,
                              mlir::Value P);

/// --qwen-gpu-fused-kernels' implementation of a generic tagged
/// {kind = "attention"} (bufferized); fails, leaving it, when its buffers
/// are not identity-layout.
mlir::LogicalResult emitAttentionGPU(mlir::OpBuilder &b,
                                     mlir::linalg::GenericOp g);

} // namespace qwen::gpu

#endif // QWEN_TRANSFORMS_GPUATTENTION_H
