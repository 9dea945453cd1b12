//===- QwenDialect.h - model-level dialect ----------------------*- C++ -*-===//

#ifndef QWEN_DIALECT_QWEN_QWENDIALECT_H
#define QWEN_DIALECT_QWEN_QWENDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "Qwen/QwenOpsDialect.h.inc"
#include "Qwen/QwenEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "Qwen/QwenAttrs.h.inc"

#define GET_OP_CLASSES
#include "Qwen/QwenOps.h.inc"

namespace qwen::detail {
/// Checks that `ref` is `@store::@entry` and that `@store` is a qwen.store.
mlir::LogicalResult verifyWeightUse(mlir::Operation *op, mlir::SymbolRefAttr ref,
                                    mlir::SymbolTableCollection &symbolTable);
/// Checks a `[..., K] x [N, K] -> [..., N]` product (linear, logits, and their
/// quantized forms) and that all element types are `weightElt`.
mlir::LogicalResult verifyLinearShapes(mlir::Operation *op,
                                       mlir::RankedTensorType input,
                                       llvm::ArrayRef<int64_t> weightShape,
                                       mlir::Type weightElt,
                                       mlir::RankedTensorType result);
} // namespace qwen::detail

#endif // QWEN_DIALECT_QWEN_QWENDIALECT_H
