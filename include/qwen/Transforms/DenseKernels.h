//===- DenseKernels.h - register-blocked f32 linear kernel --------*- C++ -*-===//
//
// y[..., n] = sum_k x[..., k] * W[n, k] (+ bias[n]) for an f32 weight W
// [N, K], emitted by --qwen-lower-model-to-linalg for qwen.linear and
// qwen.logits as an scf.forall over tiles of output channels whose body
// is scf.for loops of 1-D vector ops (see DenseKernels.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_DENSEKERNELS_H
#define QWEN_TRANSFORMS_DENSEKERNELS_H

#include "qwen/Transforms/QuantKernels.h"

namespace qwen {

/// The kernel, with the tile sizes of the weight-only kernels (`p.tileN`
/// rows x `p.tileM` tokens of register block; `p.fused = false` keeps the
/// caller's reference lowering). Fails, creating nothing, unless x is ranked
/// f32 of rank >= 2 with last dim K, W is static [N, K] f32 with K a multiple
/// of 16, and bias (optional) is [N] f32.
///
/// Tokens past the blocks of `p.tileM` (decode's one token: all of them) go
/// one at a time, the tile's rows one after the other (a GEMV bound by
/// reading W: fp32 Qwen2.5-0.5B decode, 1 thread, 8.3-8.5 -> 10.9 tok/s
/// against the reference). With `p.rowwise = false` fewer than `p.tileM`
/// tokens take `fewTokens()`, the caller's reference lowering, selected at
/// run time when the token count is dynamic.
mlir::FailureOr<mlir::Value>
lowerDenseLinear(mlir::OpBuilder &b, mlir::Location l, mlir::Value x, mlir::Value w,
                 mlir::Value bias, mlir::RankedTensorType rt, const WeightOnlyParams &p,
                 mlir::function_ref<mlir::Value(mlir::OpBuilder &, mlir::Location)> fewTokens);

} // namespace qwen

#endif // QWEN_TRANSFORMS_DENSEKERNELS_H
