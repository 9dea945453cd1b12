//===- RaisePatterns.h - raising pattern sets -------------------*- C++ -*-===//
//
// Pattern sets that `--qwen-raise-onnx` combines. Each populate function adds
// the patterns for one family of building blocks.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_RAISEPATTERNS_H
#define QWEN_TRANSFORMS_RAISEPATTERNS_H

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace qwen {

/// RoPE and attention: the exporters' primitive RoPE (q*cos +
/// rotate_half(q)*sin) and scaled-dot-product attention subgraphs (GQA
/// repeat_kv, causal + padding mask, KV cache), onnxruntime's
/// GroupQueryAttention / RotaryEmbedding, opset 23 RotaryEmbedding /
/// Attention, Qwen3's per-head q/k norms on the head-split view, and packed
/// projections sliced into q/k/v -> `qwen.rope`, `qwen.attention`,
/// per-head `qwen.rms_norm`, one `qwen.linear` per slice.
void populateRaiseAttentionPatterns(mlir::RewritePatternSet &patterns);

} // namespace qwen

#endif // QWEN_TRANSFORMS_RAISEPATTERNS_H
