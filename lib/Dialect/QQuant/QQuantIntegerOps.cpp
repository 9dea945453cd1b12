//===- QQuantIntegerOps.cpp - verifiers of the integer-only qquant ops ----===//
//
// qquant.quantize / dequantize / requantize / int_linear / lookup / int_mul
// (--qwen-integer-only). Their semantics are in QQuantOps.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Dialect/QQuant/QQuantDialect.h"

#include <cmath>

using namespace mlir;
using namespace qwen::qquant;

/// Same shape, allowing dynamic dimensions on either side.
static bool compatibleShapes(ShapedType a, ShapedType b) {
  if (a.getRank() != b.getRank())
    return false;
  for (int64_t i = 0; i < a.getRank(); ++i)
    if (!ShapedType::isDynamic(a.getDimSize(i)) &&
        !ShapedType::isDynamic(b.getDimSize(i)) &&
        a.getDimSize(i) != b.getDimSize(i))
      return false;
  return true;
}

/// A per-tensor (1 entry) or per-channel (last dimension) attribute.
static LogicalResult checkChannels(Operation *op, StringRef what, size_t n,
                                   ShapedType t) {
  if (n == 1)
    return success();
  if (t.getRank() == 0 || ShapedType::isDynamic(t.getShape().back()) ||
      int64_t(n) != t.getShape().back())
    return op->emitOpError("'")
           << what << "' must have 1 entry or one per element of the static "
           << "last dimension, got " << n;
  return success();
}

LogicalResult QuantizeOp::verify() {
  double s = getScale().convertToDouble();
  if (!(s > 0) || !std::isfinite(s) || !std::isnormal(float(s)))
    return emitOpError("scale must be a positive normal f32 number, got ") << s;
  if (!compatibleShapes(getInput().getType(), getOutput().getType()))
    return emitOpError("result shape differs from the input's");
  return success();
}

LogicalResult DequantizeOp::verify() {
  auto in = getInput().getType();
  if (!compatibleShapes(in, getResult().getType()))
    return emitOpError("result shape differs from the input's");
  ArrayRef<float> s = getScale();
  if (s.empty() || failed(checkChannels(*this, "scale", s.size(), in)))
    return s.empty() ? emitOpError("'scale' is empty") : failure();
  for (float v : s)
    if (!std::isfinite(v))
      return emitOpError("scales must be finite");
  if (Value b = getBias()) {
    auto bt = cast<RankedTensorType>(b.getType());
    if (bt.getRank() != 1 || in.getRank() == 0 ||
        bt.getDimSize(0) != in.getShape().back() ||
        ShapedType::isDynamic(bt.getDimSize(0)))
      return emitOpError("bias must be 1-D with one entry per element of "
                         "the static last dimension");
  }
  return success();
}

LogicalResult RequantizeOp::verify() {
  auto in = getInput().getType();
  if (!compatibleShapes(in, getOutput().getType()))
    return emitOpError("result shape differs from the input's");
  ArrayRef<int32_t> m = getMultiplier(), sh = getShift();
  if (m.empty() || m.size() != sh.size())
    return emitOpError("'multiplier' and 'shift' must have the same, "
                       "non-zero number of entries, got ")
           << m.size() << " and " << sh.size();
  if (failed(checkChannels(*this, "multiplier", m.size(), in)))
    return failure();
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] != 0 && m[i] < (1 << 30))
      return emitOpError("multiplier #")
             << i << " = " << m[i] << " is not 0 or in [2^30, 2^31)";
    if (sh[i] < 0 || sh[i] > 31)
      return emitOpError("shift #") << i << " = " << sh[i]
                                    << " is not in [0, 31]";
  }
  int32_t zp = getZeroPoint();
  if (zp < -127 || zp > 127)
    return emitOpError("zero point ") << zp << " is not in [-127, 127]";
  return success();
}

LogicalResult IntLinearOp::verify() {
  WeightType w = getWeight().getType();
  SchemeAttr s = w.getScheme();
  if (s.getGrid() != Grid::uniform || !s.getIsSigned() || !s.getSymmetric() ||
      (s.getBits() != 8 && s.getBits() != 4) ||
      s.getGranularity() == Granularity::group ||
      s.getSparsity() != Sparsity::dense)
    return emitOpError("needs signed symmetric dense 8- or 4-bit weights per "
                       "tensor or per channel, got ")
           << w;
  auto in = getInput().getType(), out = getResult().getType();
  if (in.getRank() < 1 || out.getRank() != in.getRank())
    return emitOpError("input and result must have the same rank >= 1");
  for (int64_t i = 0; i + 1 < in.getRank(); ++i)
    if (!ShapedType::isDynamic(in.getDimSize(i)) &&
        !ShapedType::isDynamic(out.getDimSize(i)) &&
        in.getDimSize(i) != out.getDimSize(i))
      return emitOpError("result must be the input's shape with the last "
                         "dimension ")
             << w.getRows();
  if (in.getShape().back() != w.getCols())
    return emitOpError("input has ") << in.getShape().back()
                                     << " features, the weight " << w.getCols();
  if (out.getShape().back() != w.getRows())
    return emitOpError("result has ") << out.getShape().back()
                                      << " features, the weight " << w.getRows();
  return success();
}

LogicalResult LookupOp::verify() {
  if (getTable().size() != 256)
    return emitOpError("table must have 256 entries, got ")
           << getTable().size();
  if (!compatibleShapes(getInput().getType(), getOutput().getType()))
    return emitOpError("result shape differs from the input's");
  return success();
}

LogicalResult IntMulOp::verify() {
  if (!compatibleShapes(getLhs().getType(), getRhs().getType()) ||
      !compatibleShapes(getLhs().getType(), getResult().getType()))
    return emitOpError("operands and result must have the same shape");
  return success();
}

LogicalResult IntRMSNormOp::verify() {
  auto in = getInput().getType();
  if (!compatibleShapes(in, getOutput().getType()))
    return emitOpError("result shape differs from the input's");
  if (in.getRank() == 0 || ShapedType::isDynamic(in.getShape().back()) ||
      int64_t(getGain().size()) != in.getShape().back())
    return emitOpError("'gain' must have one entry per element of the static "
                       "last dimension, got ")
           << getGain().size();
  if (getEpsAttr().getInt() < 0)
    return emitOpError("eps must be >= 0, got ") << getEpsAttr().getInt();
  for (int64_t g : getGain())
    if (g < -(int64_t(1) << 47) || g > (int64_t(1) << 47))
      return emitOpError("gain ") << g << " is outside [-2^47, 2^47]";
  return success();
}

//===----------------------------------------------------------------------===//
// Per-token quantized activations (--qquant-fuse-act-quant)
//===----------------------------------------------------------------------===//

/// `scale` is `in`'s shape with the last dimension 1, `out` is `in`'s shape.
static LogicalResult checkPerTokenPair(Operation *op, ShapedType in, ShapedType out, ShapedType scale) {
  if (in.getRank() < 1)
    return op->emitOpError("input must have rank >= 1");
  if (out && !compatibleShapes(in, out))
    return op->emitOpError("output shape differs from the input's");
  SmallVector<int64_t> want(in.getShape());
  want.back() = 1;
  if (scale.getRank() != in.getRank() || scale.getShape().back() != 1 ||
      !compatibleShapes(scale, RankedTensorType::get(want, scale.getElementType())))
    return op->emitOpError("scale must be the input's shape with the last dimension 1");
  return success();
}

LogicalResult QLinearOp::verify() {
  WeightType w = getWeight().getType();
  SchemeAttr s = w.getScheme();
  if (s.getGrid() != Grid::uniform || !s.getIsSigned() || !s.getSymmetric() ||
      (s.getBits() != 8 && s.getBits() != 4) || s.getSparsity() != Sparsity::dense)
    return emitOpError("needs signed symmetric dense 8- or 4-bit uniform weights, got ") << w;
  if (!w.getElementType().isF32())
    return emitOpError("needs a weight that dequantizes to f32, got ") << w;
  auto in = getInput().getType(), out = getResult().getType();
  if (failed(checkPerTokenPair(*this, in, nullptr, getInputScale().getType())))
    return failure();
  if (!ShapedType::isDynamic(in.getShape().back()) && in.getShape().back() != w.getCols())
    return emitOpError("input has ") << in.getShape().back() << " features, the weight " << w.getCols();
  SmallVector<int64_t> want(in.getShape());
  want.back() = w.getRows();
  if (!compatibleShapes(out, RankedTensorType::get(want, out.getElementType())))
    return emitOpError("result must be the input's shape with the last dimension ") << w.getRows();
  if (getBias() && (getBias().getType().getRank() != 1 || getBias().getType().getDimSize(0) != w.getRows()))
    return emitOpError("bias must be 1-D with ") << w.getRows() << " entries";
  return success();
}

LogicalResult RMSNormQuantizeOp::verify() {
  auto in = getInput().getType();
  if (failed(checkPerTokenPair(*this, in, getOutput().getType(), getScale().getType())))
    return failure();
  auto w = getWeight().getType();
  if (w.getRank() != 1 || in.isDynamicDim(in.getRank() - 1) || w.getDimSize(0) != in.getShape().back())
    return emitOpError("weight must be 1-D with the input's (static) number of features");
  return success();
}

LogicalResult SiluMulQuantizeOp::verify() {
  auto g = getGate().getType();
  if (!compatibleShapes(g, getUp().getType()))
    return emitOpError("gate and up shapes differ");
  return checkPerTokenPair(*this, g, getOutput().getType(), getScale().getType());
}
