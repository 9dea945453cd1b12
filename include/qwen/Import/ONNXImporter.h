//===- ONNXImporter.h - ONNX protobuf -> onnx dialect -----------*- C++ -*-===//
//
// Reads an ONNX model as real exporters write it (TorchScript, dynamo,
// optimum, onnxruntime-genai) and builds a module of `onnx` dialect ops.
// Initializers above a size go to a weight store and are referred to by
// `qwen.weight`; external data is memory-mapped, never read into IR text.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_IMPORT_ONNXIMPORTER_H
#define QWEN_IMPORT_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace qwen {

struct ONNXImportOptions {
  /// Weight store that large initializers are written to. Required when the
  /// model has any initializer above `inlineMaxElements`.
  std::string storePath;
  /// Initializers and Constant nodes with at most this many elements stay in
  /// the IR as `onnx.Constant`.
  int64_t inlineMaxElements = 64;
  /// Name of the function holding the graph.
  std::string funcName = "main";
};

/// Imports the ONNX model in `bytes`; `modelPath` names it in diagnostics and
/// anchors relative external-data paths. On failure emits one error (naming
/// the file and, where there is one, the node) and returns null; no weight
/// store is left behind.
mlir::OwningOpRef<mlir::ModuleOp>
importONNXModel(llvm::StringRef bytes, llvm::StringRef modelPath,
                mlir::MLIRContext *ctx, const ONNXImportOptions &options);

/// Reads `modelPath` and imports it.
mlir::OwningOpRef<mlir::ModuleOp>
importONNXFile(llvm::StringRef modelPath, mlir::MLIRContext *ctx,
               const ONNXImportOptions &options);

} // namespace qwen

#endif // QWEN_IMPORT_ONNXIMPORTER_H
