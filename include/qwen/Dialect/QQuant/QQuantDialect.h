//===- QQuantDialect.h - quantization dialect -------------------*- C++ -*-===//

#ifndef QWEN_DIALECT_QQUANT_QQUANTDIALECT_H
#define QWEN_DIALECT_QQUANT_QQUANTDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Quant/IR/Quant.h"
#include "mlir/Dialect/Quant/IR/QuantTypes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "qwen/Dialect/Qwen/QwenDialect.h"

#include "QQuant/QQuantOpsDialect.h.inc"
#include "QQuant/QQuantEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "QQuant/QQuantAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "QQuant/QQuantOpsTypes.h.inc"

#define GET_OP_CLASSES
#include "QQuant/QQuantOps.h.inc"

namespace qwen::qquant {

/// The input rounding of a weight-only qquant.linear or qquant.logits:
/// `bf16_input` and `i16_input` (false on any other op).
inline bool hasBf16Input(mlir::Operation *op) {
  if (auto o = llvm::dyn_cast<LinearOp>(op))
    return o.getBf16Input();
  auto o = llvm::dyn_cast<LogitsOp>(op);
  return o && o.getBf16Input();
}
inline bool hasI16Input(mlir::Operation *op) {
  if (auto o = llvm::dyn_cast<LinearOp>(op))
    return o.getI16Input();
  auto o = llvm::dyn_cast<LogitsOp>(op);
  return o && o.getI16Input();
}

} // namespace qwen::qquant

#endif // QWEN_DIALECT_QQUANT_QQUANTDIALECT_H
