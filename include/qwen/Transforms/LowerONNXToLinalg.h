//===- LowerONNXToLinalg.h - generic onnx/qquant -> linalg ------*- C++ -*-===//
//
// The generic lowering behind --qwen-lower-model-to-linalg: every onnx op
// that can be expressed on ranked tensors (elementwise with multidirectional
// broadcasting, casts, reductions, shape ops, MatMul/Gemm, normalizations, the
// com.microsoft MatMulNBits / GatherBlockQuantized /
// SkipSimplifiedLayerNormalization) and the uniform qquant ops, rewritten to
// linalg / tensor / arith / math on tensors.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_LOWERONNXTOLINALG_H
#define QWEN_TRANSFORMS_LOWERONNXTOLINALG_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"

namespace qwen {

class WeightStoreCache;

/// Builds, at `b`'s insertion point, the replacement values of the onnx
/// dialect op `op` (one per result). Fails (possibly leaving dead ops behind,
/// which the caller erases) when the op or its form is not supported: unranked
/// operands, unsupported element types or attributes, axes that are not
/// constant, or an op with no generic lowering (Attention,
/// GroupQueryAttention, RotaryEmbedding, Scatter*, ...).
mlir::FailureOr<llvm::SmallVector<mlir::Value>>
lowerONNXOpGeneric(mlir::OpBuilder &b, mlir::Operation *op);

/// Same for qquant.linear / embedding / logits / dequantize_weight whose
/// weight is a `qquant.weight` of a uniform, dense scheme: the components
/// (`.codes`, `.scales`, `.zeros`) become `qwen.weight` ops (dtypes read from
/// the store's index through `stores`), the weight is dequantized to f32 in a
/// linalg.generic and the float computation follows. Codebook, log2 and
/// sparse schemes and quantized activations (`act`) fail.
mlir::FailureOr<llvm::SmallVector<mlir::Value>>
lowerQQuantOp(mlir::OpBuilder &b, mlir::Operation *op, WeightStoreCache &stores);

} // namespace qwen

#endif // QWEN_TRANSFORMS_LOWERONNXTOLINALG_H
