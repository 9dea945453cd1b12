//===- Passes.h - qwen-opt passes -------------------------------*- C++ -*-===//

#ifndef QWEN_TRANSFORMS_PASSES_H
#define QWEN_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"

namespace qwen {

#define GEN_PASS_DECL
#include "Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Transforms/Passes.h.inc"

} // namespace qwen

#endif // QWEN_TRANSFORMS_PASSES_H
