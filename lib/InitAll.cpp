//===- InitAll.cpp - register qwen-opt dialects and passes ----------------===//

#include "qwen/InitAll.h"

#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"
#include "qwen/Compiler/Passes.h"
#include "qwen/Transforms/GPUKernels.h"
#include "qwen/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"

void qwen::registerQwenDialects(mlir::DialectRegistry &registry) {
  registry.insert<onnxir::ONNXDialect, QwenDialect, qquant::QQuantDialect>();
}

void qwen::registerAllQwenPasses() {
  registerQwenPasses();
  registerQwenCompilerPasses();
  gpu::registerGPUKernelPasses();
}
