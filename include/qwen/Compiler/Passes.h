//===- Passes.h - passes of the qwen-compile back end -----------*- C++ -*-===//

#ifndef QWEN_COMPILER_PASSES_H
#define QWEN_COMPILER_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace qwen {

#define GEN_PASS_DECL
#include "Compiler/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Compiler/Passes.h.inc"

} // namespace qwen

#endif // QWEN_COMPILER_PASSES_H
