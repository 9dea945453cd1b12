//===- ONNXDialect.cpp - ONNX-level dialect -------------------------------===//

#include "qwen/Dialect/ONNX/ONNXDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;
using namespace qwen::onnxir;

#include "ONNX/ONNXOpsDialect.cpp.inc"

void ONNXDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "ONNX/ONNXOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Checks that `axis` is a valid ONNX axis (negative counts from the back)
/// for a tensor of rank `rank`; unranked tensors accept any axis.
static LogicalResult checkAxis(Operation *op, int64_t axis, Type type,
                               StringRef what = "axis") {
  auto ranked = dyn_cast<RankedTensorType>(type);
  if (!ranked)
    return success();
  int64_t rank = ranked.getRank();
  if (axis < -rank || axis >= rank)
    return op->emitOpError() << what << " " << axis
                             << " is out of range for rank " << rank;
  return success();
}

static bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

//===----------------------------------------------------------------------===//
// Verifiers
//===----------------------------------------------------------------------===//

LogicalResult CastOp::verify() {
  Type resultElt = getElementTypeOrSelf(getOutput().getType());
  if (resultElt != getTo())
    return emitOpError("result element type ")
           << resultElt << " differs from 'to' " << getTo();
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

OpFoldResult IdentityOp::fold(FoldAdaptor) {
  if (getX().getType() == getY().getType())
    return getX();
  return {};
}

// Exporters cast f32 to f32 around every norm: a cast to the type a value
// already has is the value.
OpFoldResult CastOp::fold(FoldAdaptor) {
  if (getInput().getType() == getOutput().getType())
    return getInput();
  return {};
}

LogicalResult ReshapeOp::verify() {
  auto in = dyn_cast<RankedTensorType>(getData().getType());
  auto out = dyn_cast<RankedTensorType>(getReshaped().getType());
  if (in && out && in.hasStaticShape() && out.hasStaticShape() &&
      in.getNumElements() != out.getNumElements())
    return emitOpError("reshapes ")
           << in.getNumElements() << " elements into "
           << out.getNumElements();
  return success();
}

LogicalResult TransposeOp::verify() {
  auto in = dyn_cast<RankedTensorType>(getData().getType());
  auto out = dyn_cast<RankedTensorType>(getTransposed().getType());
  if (!in || !getPerm())
    return success();
  ArrayRef<int64_t> perm = *getPerm();
  if (static_cast<int64_t>(perm.size()) != in.getRank())
    return emitOpError("perm has ")
           << perm.size() << " entries for rank " << in.getRank();
  llvm::SmallBitVector seen(perm.size());
  for (int64_t p : perm) {
    if (p < 0 || p >= in.getRank() || seen.test(p))
      return emitOpError("perm is not a permutation");
    seen.set(p);
  }
  if (out) {
    if (out.getRank() != in.getRank())
      return emitOpError("result rank differs from input rank");
    for (auto [i, p] : llvm::enumerate(perm))
      if (!dimsCompatible(out.getDimSize(i), in.getDimSize(p)))
        return emitOpError("result dim ")
               << i << " is " << out.getDimSize(i) << ", expected "
               << in.getDimSize(p);
  }
  return success();
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError("needs at least one input");
  Type first = getInputs().front().getType();
  if (failed(checkAxis(*this, getAxis(), first)))
    return failure();
  auto firstRanked = dyn_cast<RankedTensorType>(first);
  for (Value v : getInputs()) {
    auto r = dyn_cast<RankedTensorType>(v.getType());
    if (firstRanked && r && r.getRank() != firstRanked.getRank())
      return emitOpError("inputs have different ranks");
  }
  return success();
}

LogicalResult SplitOp::verify() {
  if (getOutputs().empty())
    return emitOpError("needs at least one output");
  if (getNumOutputs() &&
      *getNumOutputs() != static_cast<int64_t>(getOutputs().size()))
    return emitOpError("num_outputs is ")
           << *getNumOutputs() << " but the op has " << getOutputs().size()
           << " results";
  return checkAxis(*this, getAxis(), getInput().getType());
}

LogicalResult GatherOp::verify() {
  if (failed(checkAxis(*this, getAxis(), getData().getType())))
    return failure();
  auto data = dyn_cast<RankedTensorType>(getData().getType());
  auto idx = dyn_cast<RankedTensorType>(getIndices().getType());
  auto out = dyn_cast<RankedTensorType>(getOutput().getType());
  if (data && idx && out &&
      out.getRank() != data.getRank() - 1 + idx.getRank())
    return emitOpError("result rank ")
           << out.getRank() << ", expected "
           << data.getRank() - 1 + idx.getRank();
  return success();
}

LogicalResult MatMulOp::verify() {
  auto a = dyn_cast<RankedTensorType>(getA().getType());
  auto b = dyn_cast<RankedTensorType>(getB().getType());
  if (!a || !b)
    return success();
  if (a.getRank() == 0 || b.getRank() == 0)
    return emitOpError("operands must have rank >= 1");
  int64_t k1 = a.getDimSize(a.getRank() - 1);
  int64_t k2 = b.getDimSize(b.getRank() == 1 ? 0 : b.getRank() - 2);
  if (!dimsCompatible(k1, k2))
    return emitOpError("contracting dimensions differ: ")
           << k1 << " vs " << k2;
  return success();
}

LogicalResult SoftmaxOp::verify() {
  return checkAxis(*this, getAxis(), getInput().getType());
}

LogicalResult QuantizeLinearOp::verify() {
  if (!isa<FloatType>(getElementTypeOrSelf(getX().getType())))
    return emitOpError("input must be a float tensor");
  if (getBlockSize() < 0)
    return emitOpError("block_size must be >= 0");
  return success();
}

LogicalResult DequantizeLinearOp::verify() {
  if (!isa<FloatType>(getElementTypeOrSelf(getXScale().getType())))
    return emitOpError("x_scale must be a float tensor");
  if (getBlockSize() < 0)
    return emitOpError("block_size must be >= 0");
  return success();
}

LogicalResult AttentionOp::verify() {
  if (getOptionalOutputs().size() > 3)
    return emitOpError("has at most 4 results (Y, present_key, "
                       "present_value, qk_matmul_output)");
  if (static_cast<bool>(getPastKey()) != static_cast<bool>(getPastValue()))
    return emitOpError("past_key and past_value must be given together");
  return success();
}

LogicalResult MSSkipSimplifiedLayerNormalizationOp::verify() {
  if (getOptionalOutputs().size() > 3)
    return emitOpError("has at most 4 results (output, mean, inv_std_var, "
                       "input_skip_bias_sum)");
  return success();
}

LogicalResult MSGroupQueryAttentionOp::verify() {
  if (getNumHeads() <= 0 || getKvNumHeads() <= 0 ||
      getNumHeads() % getKvNumHeads() != 0)
    return emitOpError("num_heads (")
           << getNumHeads() << ") must be a positive multiple of kv_num_heads ("
           << getKvNumHeads() << ")";
  if (static_cast<bool>(getKey()) != static_cast<bool>(getValue()))
    return emitOpError("key and value must be given together");
  return success();
}

LogicalResult MSMatMulNBitsOp::verify() {
  if (getBits() < 2 || getBits() > 8)
    return emitOpError("bits must be in [2, 8], got ") << getBits();
  int64_t bs = getBlockSize();
  if (bs < 16 || (bs & (bs - 1)) != 0)
    return emitOpError("block_size must be a power of two >= 16, got ") << bs;
  if (getK() <= 0 || getN() <= 0)
    return emitOpError("K and N must be positive");
  if (auto a = dyn_cast<RankedTensorType>(getA().getType()))
    if (a.getRank() == 0 ||
        !dimsCompatible(a.getDimSize(a.getRank() - 1), getK()))
      return emitOpError("input's last dimension must equal K (")
             << getK() << ")";
  return success();
}

#define GET_OP_CLASSES
#include "ONNX/ONNXOps.cpp.inc"
