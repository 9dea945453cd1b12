//===- InitAll.h - register qwen-opt dialects and passes --------*- C++ -*-===//

#ifndef QWEN_INITALL_H
#define QWEN_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace qwen {
/// Our dialects (onnx, qwen, qquant).
void registerQwenDialects(mlir::DialectRegistry &registry);
/// Our passes, all named `qwen-*`.
void registerAllQwenPasses();
} // namespace qwen

#endif // QWEN_INITALL_H
