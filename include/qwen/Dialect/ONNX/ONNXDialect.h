//===- ONNXDialect.h - ONNX-level dialect -----------------------*- C++ -*-===//

#ifndef QWEN_DIALECT_ONNX_ONNXDIALECT_H
#define QWEN_DIALECT_ONNX_ONNXDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Dialect/Traits.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "ONNX/ONNXOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "ONNX/ONNXOps.h.inc"

#endif // QWEN_DIALECT_ONNX_ONNXDIALECT_H
