//===- ONNXExporter.h - a quantized module back to ONNX ---------*- C++ -*-===//
//
// `qwen-translate --export-onnx q.mlir --source model.onnx -o out.onnx` and
// `qwen-compile --emit=onnx`: the ONNX graph the module was compiled from,
// with each weight the module quantized (or changed: smoothed gammas,
// corrected biases) put back in the form onnxruntime runs:
//   - uniform 2/4/8-bit weights of a MatMul: com.microsoft.MatMulNBits
//     (signed symmetric codes become unsigned with the default zero point
//     2^(bits-1); asymmetric ones carry zero_points; per-channel weights
//     use blocks of K or of a power of two dividing it);
//   - uniform 8-bit embedding tables (and MatMul weights with
//     --int8-weights=qdq or no valid block size): an int8 (uint8)
//     initializer and DequantizeLinear (per axis) before the Gather or
//     MatMul (QDQ);
//   - log2 and codebook grids, 3/5/6/7-bit codes, sparse weights and group
//     sizes MatMulNBits cannot take: the dequantized f32 weight;
//   - static int8 activations: Clip(+-127 s), QuantizeLinear, DequantizeLinear
//     on the MatMul's input; dynamic per-token int8 activations: the same
//     arithmetic in float ops (ReduceMax |x| / 127, Div, Round, Clip, Mul).
// The graph's inputs and outputs (KV cache, masks) are the source's.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_EXPORT_ONNXEXPORTER_H
#define QWEN_EXPORT_ONNXEXPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>

namespace qwen {

struct ONNXExportOptions {
  /// The ONNX model the module was compiled from.
  std::string sourcePath;
  /// The file to write (via `<path>.tmp`, renamed at the end).
  std::string outputPath;
  /// Initializers go to `<output>.data` (ONNX external data) when their
  /// total size exceeds this many bytes (protobuf's limit is 2 GiB).
  uint64_t externalDataThreshold = uint64_t(1800) << 20;
  /// 8-bit per-channel / per-tensor MatMul weights as MatMulNBits (bits 8,
  /// blocks of K or of the largest power of two >= 16 dividing K, the
  /// channel's scale repeated) rather than QDQ. The default: onnxruntime
  /// (1.32) rewrites DequantizeLinear -> MatMul into MatMulNBits itself with
  /// the session's `session.qdq_matmulnbits_accuracy_level` (default 4, int8
  /// activations: 7e-3 max relative logit error on w4a16-g32's 8-bit LM
  /// head, 4e-2 on w8a8-dyn), while a MatMulNBits written here leaves
  /// accuracy_level unset (float compute, the bundle's numbers). false
  /// writes QDQ everywhere (portable to other runtimes).
  bool int8WeightsAsNBits = true;
  /// MatMulNBits' accuracy_level (0: unset, the float path).
  int64_t accuracyLevel = 0;
  /// Print one line per exported weight to stderr.
  bool verbose = false;
};

/// What the exporter did (for tests and `-v`).
struct ONNXExportSummary {
  int64_t matMulNBits = 0, dequantizeLinear = 0, dequantizedF32 = 0,
          staticActs = 0, dynamicActs = 0, floatsReplaced = 0;
  bool externalData = false;
};

/// Writes the ONNX model. Errors are emitted on `module` (naming the file,
/// weight or node); nothing is written on failure.
mlir::LogicalResult exportONNX(mlir::ModuleOp module,
                               const ONNXExportOptions &options,
                               ONNXExportSummary *summary = nullptr);

} // namespace qwen

#endif // QWEN_EXPORT_ONNXEXPORTER_H
