//===- FusedKernels.h - fused CPU kernels for attention and norms -*- C++ -*-===//
//
// The non-matmul ops of a Qwen layer (qwen.attention, qwen.rms_norm,
// qwen.rope, qwen.silu_mul) emitted by --qwen-lower-model-to-linalg as
// scf.forall over work items whose bodies are scf.for loops of 1-D vector
// ops on tensors (see FusedKernels.cpp). Each entry fails, creating nothing,
// on a form it does not handle, and with `p.fused = false`
// (qwen.quant_kernel = {fused = false}); the caller then keeps its reference
// lowering.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_FUSEDKERNELS_H
#define QWEN_TRANSFORMS_FUSEDKERNELS_H

#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"
#include "qwen/Transforms/QuantKernels.h"

namespace qwen {

/// theta^(-2i/rotary_dim) for i < rotary_dim / 2, in f32: the frequencies of
/// both RoPE lowerings.
llvm::SmallVector<float> ropeInvFreq(RoPEOp op);

/// Whether lowerFusedAttention / lowerFusedPresentKV handle `op` (f32 query
/// [B, T, NH*D], key/value [B, T, KV*D], rank-4 past, a [B, S] mask if any;
/// p.fused).
bool fusedAttentionApplies(AttentionOp op, const WeightOnlyParams &p);

/// The present key or value [B, KV, P+T, D] (type `rt`): `past` [B, KV, P,
/// D] (or none) followed by `nw` [B, T, KV*D] split into heads, copied in one
/// vectorized pass per (batch, kv head).
mlir::Value lowerFusedPresentKV(mlir::OpBuilder &b, mlir::Location l, mlir::Value past, mlir::Value nw,
                                int64_t KV, int64_t D, mlir::RankedTensorType rt);

/// Attention output [B, T, num_heads * head_dim] of `op` from its query and
/// the present key/value `k`, `v` [B, KV, S, D] (past then new; `past` = the
/// number of past positions), with op's causal flag, mask and scale:
/// flash-decoding (one online-softmax pass over a split of the keys per
/// (batch, kv head, query block, split) item, then a max-rescaled combine of
/// the splits). No [B, H, T, S] tensor exists.
mlir::Value lowerFusedAttention(mlir::OpBuilder &b, mlir::Location l, AttentionOp op, mlir::Value k,
                                mlir::Value v, mlir::Value past);

/// RMSNorm (plain or per head), a row of tokens per work item.
mlir::FailureOr<mlir::Value> lowerFusedRMSNorm(mlir::OpBuilder &b, mlir::Location l, RMSNormOp op,
                                               const WeightOnlyParams &p);

/// RoPE in the rotate-half layout (partial rotary included); cos/sin once
/// per token, shared by all heads.
mlir::FailureOr<mlir::Value> lowerFusedRoPE(mlir::OpBuilder &b, mlir::Location l, RoPEOp op,
                                            const WeightOnlyParams &p);

/// silu(gate) * up.
mlir::FailureOr<mlir::Value> lowerFusedSiluMul(mlir::OpBuilder &b, mlir::Location l, SiluMulOp op,
                                               const WeightOnlyParams &p);

/// Per-token int8 quantization (scale = max|y| / 127, q = clamp(roundeven(y
/// / scale), -127, 127), 0 where the scale is 0) of rows y that are never
/// stored as floats: y is computed twice per row (max, then rounding) in
/// registers. Results (q, scale). qquant.dynamic_quantize {per_token} of 8
/// bits (y = x), qquant.rms_norm_quantize (y = lowerFusedRMSNorm's row) and
/// qquant.silu_mul_quantize (y = lowerFusedSiluMul's row): the same f32
/// values as the unfused ops.
mlir::FailureOr<llvm::SmallVector<mlir::Value>>
lowerFusedDynamicQuantize(mlir::OpBuilder &b, mlir::Location l, qquant::DynamicQuantizeOp op,
                          const WeightOnlyParams &p);
mlir::FailureOr<llvm::SmallVector<mlir::Value>>
lowerFusedRMSNormQuantize(mlir::OpBuilder &b, mlir::Location l, qquant::RMSNormQuantizeOp op,
                          const WeightOnlyParams &p);
mlir::FailureOr<llvm::SmallVector<mlir::Value>>
lowerFusedSiluMulQuantize(mlir::OpBuilder &b, mlir::Location l, qquant::SiluMulQuantizeOp op,
                          const WeightOnlyParams &p);

} // namespace qwen

#endif // QWEN_TRANSFORMS_FUSEDKERNELS_H
