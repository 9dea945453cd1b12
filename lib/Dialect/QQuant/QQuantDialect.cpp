//===- QQuantDialect.cpp - quantization dialect ---------------------------===//

#include "qwen/Dialect/QQuant/QQuantDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace qwen::qquant;

#include "QQuant/QQuantOpsDialect.cpp.inc"
#include "QQuant/QQuantEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "QQuant/QQuantAttrs.cpp.inc"
#define GET_TYPEDEF_CLASSES
#include "QQuant/QQuantOpsTypes.cpp.inc"

void QQuantDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "QQuant/QQuantAttrs.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "QQuant/QQuantOpsTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "QQuant/QQuantOps.cpp.inc"
      >();
}

LogicalResult QQuantDialect::verifyOperationAttribute(Operation *op,
                                                      NamedAttribute attr) {
  if (attr.getName() == kDecisionAttrName) {
    if (!isa<DecisionAttr>(attr.getValue()))
      return op->emitError("'") << kDecisionAttrName
                                << "' must be a #qquant.decision";
    return success();
  }
  if (attr.getName() == kStatsAttrName) {
    if (!isa<StatsAttr>(attr.getValue()))
      return op->emitError("'") << kStatsAttrName
                                << "' must be a #qquant.stats";
    return success();
  }
  if (attr.getName() == "qquant.sensitivity") {
    auto arr = dyn_cast<ArrayAttr>(attr.getValue());
    if (!arr || !llvm::all_of(arr, [](Attribute a) { return isa<CostAttr>(a); }))
      return op->emitError("'qquant.sensitivity' must be an array of "
                           "#qquant.cost");
    return success();
  }
  if (attr.getName() == kPrunedAttrName) {
    // --qwen-prune's mark on a float linear / logits op.
    auto str = dyn_cast<StringAttr>(attr.getValue());
    if (!str || (str.getValue() != "2:4" && str.getValue() != "unstructured"))
      return op->emitError("'qquant.pruned' must be \"2:4\" or "
                           "\"unstructured\"");
    return success();
  }
  return op->emitError("unknown qquant attribute '")
         << attr.getName().getValue() << "'";
}

//===----------------------------------------------------------------------===//
// #qquant.scheme
//===----------------------------------------------------------------------===//

static bool isAllowedGroupSize(unsigned g) {
  return g == 32 || g == 64 || g == 128;
}

LogicalResult SchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 Grid grid, unsigned bits, bool isSigned,
                                 bool symmetric, Granularity granularity,
                                 unsigned groupSize, Sparsity sparsity) {
  switch (grid) {
  case Grid::uniform:
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
      return emitError() << "uniform grids take 2, 3, 4 or 8 bits, got "
                         << bits;
    break;
  case Grid::log2:
    if (bits < 3 || bits > 8)
      return emitError() << "log2 grids take 3 to 8 bits (sign + exponent), "
                            "got "
                         << bits;
    if (!symmetric)
      return emitError() << "log2 grids are symmetric";
    break;
  case Grid::codebook:
    if (bits < 2 || bits > 8)
      return emitError() << "codebooks take 2 to 8 index bits, got " << bits;
    if (isSigned || !symmetric)
      return emitError()
             << "codebook indices are unsigned and have no zero point";
    break;
  }
  if (granularity == Granularity::group) {
    if (!isAllowedGroupSize(groupSize))
      return emitError() << "group size must be 32, 64 or 128, got "
                         << groupSize;
  } else if (groupSize != 0) {
    return emitError() << "group size is only meaningful with 'group'";
  }
  return success();
}

Attribute SchemeAttr::parseBody(AsmParser &parser) {
  MLIRContext *ctx = parser.getContext();
  Grid grid = Grid::uniform;
  unsigned bits = 0;
  bool isSigned = true, symmetric = true;
  Granularity granularity = Granularity::tensor;
  unsigned groupSize = 0;
  Sparsity sparsity = Sparsity::dense;
  SMLoc loc = parser.getCurrentLocation();

  // Storage: `iN` / `uiN` (uniform), `log2 iN`, or `codebook N`.
  auto parseIntStorage = [&]() -> ParseResult {
    Type t;
    if (parser.parseType(t))
      return failure();
    auto it = dyn_cast<IntegerType>(t);
    if (!it)
      return parser.emitError(loc, "expected an integer storage type like "
                                   "i4 or ui4");
    bits = it.getWidth();
    isSigned = !it.isUnsigned();
    return success();
  };
  if (succeeded(parser.parseOptionalKeyword("codebook"))) {
    grid = Grid::codebook;
    isSigned = false;
    if (parser.parseInteger(bits))
      return {};
  } else {
    if (succeeded(parser.parseOptionalKeyword("log2")))
      grid = Grid::log2;
    if (parseIntStorage())
      return {};
  }

  while (succeeded(parser.parseOptionalComma())) {
    StringRef kw;
    SMLoc kwLoc = parser.getCurrentLocation();
    if (parser.parseKeyword(&kw))
      return {};
    if (kw == "symmetric") {
      symmetric = true;
    } else if (kw == "asymmetric") {
      symmetric = false;
    } else if (kw == "tensor") {
      granularity = Granularity::tensor;
    } else if (kw == "channel") {
      granularity = Granularity::channel;
    } else if (kw == "group") {
      granularity = Granularity::group;
      if (parser.parseEqual() || parser.parseInteger(groupSize))
        return {};
    } else if (kw == "sparsity") {
      if (parser.parseEqual())
        return {};
      if (succeeded(parser.parseOptionalKeyword("unstructured"))) {
        sparsity = Sparsity::unstructured;
      } else {
        unsigned n = 0, m = 0;
        if (parser.parseInteger(n) || parser.parseColon() ||
            parser.parseInteger(m))
          return {};
        if (n != 2 || m != 4) {
          parser.emitError(kwLoc, "only 2:4 semi-structured sparsity is "
                                  "supported");
          return {};
        }
        sparsity = Sparsity::s2_4;
      }
    } else {
      parser.emitError(kwLoc, "unknown scheme entry '") << kw << "'";
      return {};
    }
  }
  return SchemeAttr::getChecked(
      [&] { return parser.emitError(loc); }, ctx, grid, bits, isSigned,
      symmetric, granularity, groupSize, sparsity);
}

void SchemeAttr::printBody(AsmPrinter &printer) const {
  raw_ostream &os = printer.getStream();
  switch (getGrid()) {
  case Grid::codebook:
    os << "codebook " << getBits();
    break;
  case Grid::log2:
    os << "log2 ";
    [[fallthrough]];
  case Grid::uniform:
    os << (getIsSigned() ? "i" : "ui") << getBits();
    break;
  }
  if (getGrid() == Grid::uniform)
    os << (getSymmetric() ? ", symmetric" : ", asymmetric");
  switch (getGranularity()) {
  case Granularity::tensor:
    os << ", tensor";
    break;
  case Granularity::channel:
    os << ", channel";
    break;
  case Granularity::group:
    os << ", group = " << getGroupSize();
    break;
  }
  if (getSparsity() == Sparsity::s2_4)
    os << ", sparsity = 2:4";
  else if (getSparsity() == Sparsity::unstructured)
    os << ", sparsity = unstructured";
}

Attribute SchemeAttr::parse(AsmParser &parser, Type) {
  if (parser.parseLess())
    return {};
  Attribute body = parseBody(parser);
  if (!body || parser.parseGreater())
    return {};
  return body;
}

void SchemeAttr::print(AsmPrinter &printer) const {
  printer << "<";
  printBody(printer);
  printer << ">";
}

int64_t SchemeAttr::getScalesPerRow(int64_t cols) const {
  return getGranularity() == Granularity::group ? cols / getGroupSize() : 1;
}

double SchemeAttr::getBitsPerWeight(int64_t rows, int64_t cols) const {
  // Scales, centroids are counted as f16 and zero points as u8: the layouts
  // the packing passes write.
  double n = static_cast<double>(rows) * cols;
  double groups = getGranularity() == Granularity::tensor
                      ? 1.0
                      : static_cast<double>(rows) * getScalesPerRow(cols);
  double bits = getBits() * n;
  if (getGrid() == Grid::codebook)
    bits += groups * (1u << getBits()) * 16.0;
  else
    bits += groups * (16.0 + (hasZeroPoints() ? 8.0 : 0.0));
  if (getSparsity() == Sparsity::s2_4)
    bits = bits / 2 + n / 2 * 2; // half the codes kept, 2-bit index each
  else if (getSparsity() == Sparsity::unstructured)
    bits += n; // one mask bit per weight (worst case: nothing pruned)
  return bits / n;
}

//===----------------------------------------------------------------------===//
// #qquant.act
//===----------------------------------------------------------------------===//

LogicalResult
ActivationAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       ActMode mode, unsigned bits, bool perToken,
                       quant::UniformQuantizedType staticType) {
  if (mode == ActMode::static_) {
    if (!staticType)
      return emitError() << "static activation quantization needs a "
                            "!quant.uniform type";
    if (perToken)
      return emitError() << "static scales are per tensor";
    if (staticType.getStorageTypeIntegralWidth() != bits)
      return emitError() << "bits differ from the quant type's storage";
    return success();
  }
  if (staticType)
    return emitError() << "dynamic activation quantization takes no type";
  if (bits != 8 && bits != 4)
    return emitError() << "dynamic activation quantization takes 4 or 8 "
                          "bits, got "
                       << bits;
  return success();
}

Attribute ActivationAttr::parse(AsmParser &parser, Type) {
  SMLoc loc = parser.getCurrentLocation();
  auto emit = [&] { return parser.emitError(loc); };
  if (parser.parseLess())
    return {};
  if (succeeded(parser.parseOptionalKeyword("static"))) {
    Type t;
    if (parser.parseColon() || parser.parseType(t) || parser.parseGreater())
      return {};
    auto qt = dyn_cast<quant::UniformQuantizedType>(t);
    if (!qt) {
      parser.emitError(loc, "expected a !quant.uniform per-tensor type");
      return {};
    }
    return ActivationAttr::getChecked(emit, parser.getContext(),
                                      ActMode::static_,
                                      qt.getStorageTypeIntegralWidth(),
                                      false, qt);
  }
  Type storage;
  StringRef gran;
  if (parser.parseKeyword("dynamic") || parser.parseComma() ||
      parser.parseType(storage) || parser.parseComma() ||
      parser.parseKeyword(&gran) || parser.parseGreater())
    return {};
  auto it = dyn_cast<IntegerType>(storage);
  if (!it || it.isUnsigned()) {
    parser.emitError(loc, "dynamic activations are signed: expected i8 or i4");
    return {};
  }
  if (gran != "per_token" && gran != "per_tensor") {
    parser.emitError(loc, "expected per_token or per_tensor");
    return {};
  }
  return ActivationAttr::getChecked(emit, parser.getContext(), ActMode::dynamic,
                                    it.getWidth(), gran == "per_token",
                                    quant::UniformQuantizedType());
}

void ActivationAttr::print(AsmPrinter &printer) const {
  if (getMode() == ActMode::static_) {
    printer << "<static : " << Type(getStaticType()) << ">";
    return;
  }
  printer << "<dynamic, i" << getBits() << ", "
          << (getPerToken() ? "per_token" : "per_tensor") << ">";
}

//===----------------------------------------------------------------------===//
// #qquant.stats
//===----------------------------------------------------------------------===//

LogicalResult StatsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                int64_t count, FloatAttr min, FloatAttr max,
                                FloatAttr p9999, FloatAttr clipKl,
                                FloatAttr clipMse, SymbolRefAttr channels,
                                SymbolRefAttr histogram,
                                SymbolRefAttr moment2) {
  if (count < 0)
    return emitError() << "count must be >= 0";
  if (!min || !max)
    return emitError() << "min and max are required";
  double lo = min.getValueAsDouble(), hi = max.getValueAsDouble();
  if (std::isnan(lo) || std::isnan(hi))
    return emitError() << "statistics contain NaN";
  if (lo > hi)
    return emitError() << "min (" << lo << ") is greater than max (" << hi
                       << ")";
  for (FloatAttr clip : {p9999, clipKl, clipMse})
    if (clip && !(clip.getValueAsDouble() >= 0.0))
      return emitError() << "clipping thresholds must be >= 0";
  for (SymbolRefAttr ref : {channels, histogram, moment2})
    if (ref && ref.getNestedReferences().size() != 1)
      return emitError() << "statistics references must be @store::@entry";
  return success();
}

//===----------------------------------------------------------------------===//
// !qquant.weight
//===----------------------------------------------------------------------===//

LogicalResult WeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                                 ArrayRef<int64_t> shape, Type elementType,
                                 SchemeAttr scheme) {
  if (shape.size() != 2)
    return emitError() << "quantized weights are 2-D [rows, cols]";
  if (shape[0] <= 0 || shape[1] <= 0)
    return emitError() << "quantized weights need a static positive shape";
  if (!isa<FloatType>(elementType))
    return emitError() << "a quantized weight dequantizes to a float type";
  if (!scheme)
    return emitError() << "missing scheme";
  if (scheme.getGranularity() == Granularity::group &&
      shape[1] % scheme.getGroupSize() != 0)
    return emitError() << "cols (" << shape[1]
                       << ") must be a multiple of the group size ("
                       << scheme.getGroupSize() << ")";
  if (scheme.getSparsity() == Sparsity::s2_4 && shape[1] % 4 != 0)
    return emitError() << "2:4 sparsity needs cols to be a multiple of 4";
  return success();
}

Type WeightType::parse(AsmParser &parser) {
  SMLoc loc = parser.getCurrentLocation();
  SmallVector<int64_t> shape;
  Type elementType;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false,
                                /*withTrailingX=*/true) ||
      parser.parseType(elementType) || parser.parseComma())
    return {};
  auto scheme = dyn_cast_or_null<SchemeAttr>(SchemeAttr::parseBody(parser));
  if (!scheme || parser.parseGreater())
    return {};
  return WeightType::getChecked([&] { return parser.emitError(loc); },
                                parser.getContext(), shape, elementType,
                                scheme);
}

void WeightType::print(AsmPrinter &printer) const {
  printer << "<";
  for (int64_t d : getShape())
    printer << d << "x";
  printer << getElementType() << ", ";
  getScheme().printBody(printer);
  printer << ">";
}

RankedTensorType WeightType::getExpressedType() const {
  return RankedTensorType::get(getShape(), getElementType());
}

//===----------------------------------------------------------------------===//
// Ops
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return qwen::detail::verifyWeightUse(*this, getRef(), symbolTable);
}

static LogicalResult verifyAct(Operation *op, ActivationAttr act,
                               WeightType weight) {
  if (act && act.getMode() == ActMode::static_ &&
      act.getStaticType().getExpressedType() != weight.getElementType())
    return op->emitOpError("activation quant type expresses ")
           << act.getStaticType().getExpressedType()
           << " but the weight dequantizes to " << weight.getElementType();
  return success();
}

/// The checks qquant.linear and qquant.logits share: the product's shapes
/// and the activation scheme.
static LogicalResult verifyQuantizedProduct(Operation *op,
                                            RankedTensorType input,
                                            WeightType w,
                                            RankedTensorType result,
                                            ActivationAttr act) {
  if (failed(qwen::detail::verifyLinearShapes(op, input, w.getShape(),
                                              w.getElementType(), result)))
    return failure();
  return verifyAct(op, act, w);
}

/// The input roundings qquant.linear and qquant.logits share (bf16_input,
/// i16_input): of a float input only, one at a time, int16 per weight group.
static LogicalResult verifyInputRounding(Operation *op, ActivationAttr act,
                                         bool bf16, bool i16, WeightType w) {
  if (bf16 && act)
    return op->emitOpError("bf16_input applies to a float input; the input "
                           "is already quantized by 'act'");
  if (!i16)
    return success();
  if (act)
    return op->emitOpError("i16_input applies to a float input; the input is "
                           "already quantized by 'act'");
  if (bf16)
    return op->emitOpError("bf16_input and i16_input are two roundings of the "
                           "same input; give one");
  // The int16 blocks are the weight's groups: one activation scale per
  // (token, group) is what the kernel folds into the group's scale.
  if (w.getScheme().getGranularity() != Granularity::group)
    return op->emitOpError("i16_input quantizes the input per weight group; "
                           "the weight is not group-wise");
  return success();
}

LogicalResult LinearOp::verify() {
  WeightType w = getWeight().getType();
  if (failed(verifyQuantizedProduct(*this, getInput().getType(), w,
                                    getResult().getType(), getActAttr())) ||
      failed(verifyInputRounding(*this, getActAttr(), getBf16Input(),
                                 getI16Input(), w)))
    return failure();
  if (getBias()) {
    auto bias = getBias().getType();
    if (bias.getRank() != 1 || bias.getDimSize(0) != w.getRows())
      return emitOpError("bias must be 1-D with ") << w.getRows()
                                                   << " entries";
  }
  return success();
}

LogicalResult LogitsOp::verify() {
  WeightType w = getWeight().getType();
  if (failed(verifyQuantizedProduct(*this, getInput().getType(), w,
                                    getResult().getType(), getActAttr())))
    return failure();
  return verifyInputRounding(*this, getActAttr(), getBf16Input(),
                             getI16Input(), w);
}

LogicalResult EmbeddingOp::verify() {
  WeightType t = getTable().getType();
  auto result = getResult().getType();
  if (result.getElementType() != t.getElementType())
    return emitOpError("result element type differs from the table's");
  auto ids = getIds().getType();
  if (result.getRank() != ids.getRank() + 1 ||
      result.getShape().back() != t.getCols())
    return emitOpError("result must be the ids' shape followed by ")
           << t.getCols();
  for (int64_t i = 0; i < ids.getRank(); ++i)
    if (!ShapedType::isDynamic(ids.getDimSize(i)) &&
        !ShapedType::isDynamic(result.getDimSize(i)) &&
        ids.getDimSize(i) != result.getDimSize(i))
      return emitOpError("result must be the ids' shape followed by ")
             << t.getCols();
  return success();
}

LogicalResult DequantizeWeightOp::verify() {
  if (getResult().getType() != getWeight().getType().getExpressedType())
    return emitOpError("result must be ")
           << getWeight().getType().getExpressedType();
  return success();
}

LogicalResult DynamicQuantizeOp::verify() {
  if (getBits() != 8 && getBits() != 4)
    return emitOpError("bits must be 4 or 8, got ") << getBits();
  auto in = getInput().getType();
  if (in.getRank() < 1)
    return emitOpError("input must have rank >= 1");
  if (getOutput().getType().getShape() != in.getShape())
    return emitOpError("output shape must equal the input shape");
  SmallVector<int64_t> expected(in.getRank(), 1);
  if (getPerToken())
    for (int64_t i = 0; i + 1 < in.getRank(); ++i)
      expected[i] = in.getDimSize(i);
  if (getScale().getType().getShape() != ArrayRef<int64_t>(expected))
    return emitOpError("scale shape must be the input shape with ")
           << (getPerToken() ? "the last dimension 1" : "every dimension 1");
  return success();
}

LogicalResult ObserveOp::verify() {
  if (getName().empty())
    return emitOpError("name must not be empty");
  return success();
}

#define GET_OP_CLASSES
#include "QQuant/QQuantOps.cpp.inc"
