//===- RaiseUtils.h - helpers shared by the raising patterns ----*- C++ -*-===//
//
// Small matchers that every raising pattern needs: looking through no-op
// casts, recognising model-owned tensors and splat constants. Internal to
// lib/Transforms; the raising patterns and weight materialization use them.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_LIB_TRANSFORMS_RAISEUTILS_H
#define QWEN_LIB_TRANSFORMS_RAISEUTILS_H

#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Matchers.h"

#include <optional>
#include <utility>

namespace qwen::raise {

/// Looks through ops that pass a value on unchanged (Identity, no-op Cast).
inline mlir::Value skip(mlir::Value v) {
  namespace ox = qwen::onnxir;
  while (mlir::Operation *op = v.getDefiningOp()) {
    if (mlir::isa<ox::IdentityOp>(op) ||
        (mlir::isa<ox::CastOp>(op) &&
         op->getOperand(0).getType() == op->getResult(0).getType()))
      v = op->getOperand(0);
    else
      break;
  }
  return v;
}

/// A tensor the model owns: a store reference or a constant, possibly
/// transposed.
inline bool isWeight(mlir::Value v) {
  namespace ox = qwen::onnxir;
  v = skip(v);
  if (auto t = v.getDefiningOp<ox::TransposeOp>())
    v = skip(t.getData());
  return v.getDefiningOp<qwen::WeightOp>() || v.getDefiningOp<ox::ConstantOp>();
}

/// The value of a splat float constant.
inline std::optional<double> scalarConstant(mlir::Value v) {
  mlir::DenseFPElementsAttr attr;
  if (!mlir::matchPattern(skip(v), mlir::m_Constant(&attr)) || !attr.isSplat())
    return std::nullopt;
  return attr.getSplatValue<llvm::APFloat>().convertToDouble();
}

/// The values of an integer constant.
inline std::optional<llvm::SmallVector<int64_t>> intConstant(mlir::Value v) {
  mlir::DenseIntElementsAttr attr;
  if (!mlir::matchPattern(skip(v), mlir::m_Constant(&attr)))
    return std::nullopt;
  llvm::SmallVector<int64_t> out;
  for (const llvm::APInt &x : attr.getValues<llvm::APInt>())
    out.push_back(x.getSExtValue());
  return out;
}

inline mlir::RankedTensorType rankedFloat(mlir::Value v) {
  auto t = mlir::dyn_cast<mlir::RankedTensorType>(v.getType());
  return t && mlir::isa<mlir::FloatType>(t.getElementType())
             ? t
             : mlir::RankedTensorType();
}

/// If `a` or `b` (through skips) is produced by `OpT`, returns that op and
/// the other operand.
template <typename OpT>
std::optional<std::pair<OpT, mlir::Value>> either(mlir::Value a,
                                                  mlir::Value b) {
  if (auto op = skip(a).getDefiningOp<OpT>())
    return std::make_pair(op, b);
  if (auto op = skip(b).getDefiningOp<OpT>())
    return std::make_pair(op, a);
  return std::nullopt;
}

/// Whether `v` is returned from its function as the graph output whose ONNX
/// name is `name` (the importer keeps it as the `onnx.name` result attr).
inline bool isGraphOutputNamed(mlir::Value v, llvm::StringRef name) {
  for (mlir::OpOperand &use : v.getUses()) {
    if (!mlir::isa<mlir::func::ReturnOp>(use.getOwner()))
      continue;
    auto func = use.getOwner()->getParentOfType<mlir::func::FuncOp>();
    if (auto attr = func.getResultAttrOfType<mlir::StringAttr>(
            use.getOperandNumber(), "onnx.name"))
      if (attr.getValue() == name)
        return true;
  }
  return false;
}

} // namespace qwen::raise

#endif // QWEN_LIB_TRANSFORMS_RAISEUTILS_H
