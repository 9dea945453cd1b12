//===- QwenDialect.cpp - model-level dialect ------------------------------===//

#include "qwen/Dialect/Qwen/QwenDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace qwen;

#include "Qwen/QwenOpsDialect.cpp.inc"
#include "Qwen/QwenEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "Qwen/QwenAttrs.cpp.inc"

void QwenDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Qwen/QwenAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "Qwen/QwenOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

static bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (ShapedType::isDynamic(d))
          os << "?";
        else
          os << d;
      },
      ", ");
  os << "]";
  return s;
}

/// Checks `actual` against `expected` dim by dim (dynamic dims match all).
static LogicalResult checkShape(Operation *op, StringRef what,
                                RankedTensorType actual,
                                ArrayRef<int64_t> expected) {
  bool ok = actual.getRank() == static_cast<int64_t>(expected.size());
  for (int64_t i = 0; ok && i < actual.getRank(); ++i)
    ok = dimsCompatible(actual.getDimSize(i), expected[i]);
  if (ok)
    return success();
  return op->emitOpError() << what << " has shape "
                           << shapeStr(actual.getShape()) << ", expected "
                           << shapeStr(expected);
}

/// `shape` with its last dimension replaced by `last`.
static SmallVector<int64_t> withLastDim(ArrayRef<int64_t> shape, int64_t last) {
  SmallVector<int64_t> out(shape);
  out.back() = last;
  return out;
}

namespace qwen::detail {
LogicalResult verifyWeightUse(Operation *op, SymbolRefAttr ref,
                              SymbolTableCollection &symbolTable) {
  if (ref.getNestedReferences().size() != 1)
    return op->emitOpError("weight reference ")
           << ref << " must be @store::@entry";
  Operation *store =
      symbolTable.lookupNearestSymbolFrom(op, ref.getRootReference());
  if (!store || !isa<StoreOp>(store))
    return op->emitOpError("'")
           << ref.getRootReference().getValue()
           << "' does not name a qwen.store";
  return success();
}

/// Verifies a `[..., K] x [N, K] -> [..., N]` product and its element types.
LogicalResult verifyLinearShapes(Operation *op, RankedTensorType input,
                                 ArrayRef<int64_t> weightShape,
                                 Type weightElt, RankedTensorType result) {
  if (input.getRank() < 1)
    return op->emitOpError("input must have rank >= 1");
  if (weightShape.size() != 2)
    return op->emitOpError("weight must be 2-D [out, in], got ")
           << shapeStr(weightShape);
  if (input.getElementType() != weightElt ||
      result.getElementType() != weightElt)
    return op->emitOpError("input, weight and result element types differ");
  if (!dimsCompatible(input.getShape().back(), weightShape[1]))
    return op->emitOpError("input features (")
           << input.getShape().back() << ") differ from weight in_features ("
           << weightShape[1] << ")";
  return checkShape(op, "result", result,
                    withLastDim(input.getShape(), weightShape[0]));
}
} // namespace qwen::detail

//===----------------------------------------------------------------------===//
// Weight references
//===----------------------------------------------------------------------===//

LogicalResult StoreOp::verify() {
  if (getPath().empty())
    return emitOpError("path must not be empty");
  return success();
}

LogicalResult WeightOp::verify() {
  if (!getType().hasStaticShape())
    return emitOpError("weights must have a static shape");
  return success();
}

LogicalResult WeightOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return detail::verifyWeightUse(*this, getRef(), symbolTable);
}

//===----------------------------------------------------------------------===//
// Decoder building blocks
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  auto table = getTable().getType();
  if (table.getRank() != 2)
    return emitOpError("table must be 2-D [vocab, hidden]");
  if (getResult().getType().getElementType() != table.getElementType())
    return emitOpError("result element type differs from the table's");
  SmallVector<int64_t> expected(getIds().getType().getShape());
  expected.push_back(table.getDimSize(1));
  return checkShape(*this, "result", getResult().getType(), expected);
}

LogicalResult RMSNormOp::verify() {
  auto input = getInput().getType();
  auto weight = getWeight().getType();
  if (getEpsilon().convertToFloat() <= 0.0f)
    return emitOpError("epsilon must be positive");
  if (weight.getRank() != 1)
    return emitOpError("weight must be 1-D");
  if (input.getRank() < 1)
    return emitOpError("input must have rank >= 1");
  if (getResult().getType() != input)
    return emitOpError("result type must equal the input type");
  int64_t features = input.getShape().back(), w = weight.getDimSize(0);
  if (ShapedType::isDynamic(features) || ShapedType::isDynamic(w))
    return success();
  if (!getPerHead() && features != w)
    return emitOpError("weight has ")
           << w << " entries for " << features
           << " features (use per_head for a per-head norm)";
  if (getPerHead() && features % w != 0)
    return emitOpError("per_head weight size ")
           << w << " does not divide " << features << " features";
  return success();
}

LogicalResult LinearOp::verify() {
  auto weight = getWeight().getType();
  if (failed(detail::verifyLinearShapes(*this, getInput().getType(),
                                        weight.getShape(),
                                        weight.getElementType(),
                                        getResult().getType())))
    return failure();
  if (getBias())
    return checkShape(*this, "bias", getBias().getType(),
                      {weight.getDimSize(0)});
  return success();
}

LogicalResult RoPEOp::verify() {
  auto input = getInput().getType();
  int64_t heads = getNumHeads(), headDim = getHeadDim();
  int64_t rot = getEffectiveRotaryDim();
  if (heads <= 0 || headDim <= 0 || headDim % 2 != 0)
    return emitOpError("num_heads must be positive and head_dim positive "
                       "and even");
  if (rot <= 0 || rot > headDim || rot % 2 != 0)
    return emitOpError("rotary_dim ")
           << rot << " must be even and in (0, head_dim=" << headDim << "]";
  if (getTheta().convertToDouble() <= 0.0)
    return emitOpError("theta must be positive");
  if (input.getRank() != 3)
    return emitOpError("input must be [batch, seq, num_heads*head_dim]");
  if (getResult().getType() != input)
    return emitOpError("result type must equal the input type");
  if (!dimsCompatible(input.getDimSize(2), heads * headDim))
    return emitOpError("input features (")
           << input.getDimSize(2) << ") != num_heads*head_dim ("
           << heads * headDim << ")";
  return checkShape(*this, "positions", getPositions().getType(),
                    {input.getDimSize(0), input.getDimSize(1)});
}

double AttentionOp::getEffectiveScale() {
  if (auto s = getScale())
    return s->convertToDouble();
  return 1.0 / std::sqrt(static_cast<double>(getHeadDim()));
}

LogicalResult AttentionOp::verify() {
  int64_t nh = getNumHeads(), nkv = getNumKvHeads(), hd = getHeadDim();
  if (nh <= 0 || nkv <= 0 || hd <= 0 || nh % nkv != 0)
    return emitOpError("num_heads (")
           << nh << ") must be a positive multiple of num_kv_heads (" << nkv
           << ") and head_dim positive";
  auto q = getQuery().getType();
  if (q.getRank() != 3)
    return emitOpError("query must be [batch, seq, num_heads*head_dim]");
  int64_t b = q.getDimSize(0), t = q.getDimSize(1);
  if (failed(checkShape(*this, "query", q, {b, t, nh * hd})) ||
      failed(checkShape(*this, "key", getKey().getType(), {b, t, nkv * hd})) ||
      failed(checkShape(*this, "value", getValue().getType(),
                        {b, t, nkv * hd})))
    return failure();
  if (getResult().getType() != q)
    return emitOpError("result type must equal the query type");
  int64_t past = 0;
  if (getPastKey()) {
    auto pk = getPastKey().getType();
    if (pk.getRank() != 4)
      return emitOpError("past_key must be [batch, num_kv_heads, past, "
                         "head_dim]");
    past = pk.getDimSize(2);
    if (failed(checkShape(*this, "past_key", pk, {b, nkv, past, hd})) ||
        failed(checkShape(*this, "past_value", getPastValue().getType(),
                          {b, nkv, past, hd})))
      return failure();
  }
  int64_t total = ShapedType::isDynamic(past) || ShapedType::isDynamic(t)
                      ? ShapedType::kDynamic
                      : past + t;
  if (failed(checkShape(*this, "present_key", getPresentKey().getType(),
                        {b, nkv, total, hd})) ||
      failed(checkShape(*this, "present_value", getPresentValue().getType(),
                        {b, nkv, total, hd})))
    return failure();
  if (getMask())
    return checkShape(*this, "mask", getMask().getType(), {b, total});
  return success();
}

LogicalResult LogitsOp::verify() {
  auto weight = getWeight().getType();
  return detail::verifyLinearShapes(*this, getInput().getType(),
                                    weight.getShape(), weight.getElementType(),
                                    getResult().getType());
}

#define GET_OP_CLASSES
#include "Qwen/QwenOps.cpp.inc"
