//===- MaterializeWeights.cpp - weights in the layout their ops read -------===//

#include "RaiseUtils.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"


using namespace mlir;
namespace ox = qwen::onnxir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_MATERIALIZEWEIGHTS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

/// A weight's data in store layout, from a store entry or a constant.
struct WeightData {
  RankedTensorType type;
  std::vector<char> bytes;
  std::string name; // entry name, or the constant's NameLoc, or ""
};


class Materializer {
public:
  Materializer(ModuleOp module, StringRef storePath, StringRef storeName,
               int64_t minElements)
      : module(module), storePath(storePath), storeName(storeName),
        minElements(minElements), b(module.getContext()) {}

  LogicalResult run();

private:
  std::optional<WeightData> read(Value v);
  FailureOr<Value> write(Location loc, StringRef name, RankedTensorType type,
                         ArrayRef<char> bytes, bool forceStore = false);
  LogicalResult transpose(ox::TransposeOp op);
  LogicalResult slice(ox::SliceOp op);
  LogicalResult matMulNBits(ox::MSMatMulNBitsOp op);
  LogicalResult gatherBlockQuantized(ox::MSGatherBlockQuantizedOp op);
  FailureOr<Value> quantizedWeight(Operation *op, const WeightData &codes,
                                   const WeightData &scales,
                                   std::optional<WeightData> zeros,
                                   int64_t rows, int64_t cols, int64_t bits,
                                   int64_t block, Type elt);

  ModuleOp module;
  std::string storePath, storeName;
  int64_t minElements;
  OpBuilder b;
  qwen::WeightStoreCache stores;
  std::unique_ptr<qwen::ws::WeightStoreWriter> writer;
  unsigned anon = 0;
  /// Quantized weights already written, by source entry: an embedding tied
  /// to the LM head is stored once and read by both.
  llvm::StringMap<Value> quantized;
};


/// [rows, cols] -> [cols, rows] of `es`-byte elements.
std::vector<char> transposeBytes(ArrayRef<char> in, int64_t rows, int64_t cols,
                                 size_t es) {
  std::vector<char> out(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(&out[(c * rows + r) * es], &in[(r * cols + c) * es], es);
  return out;
}

std::optional<WeightData> Materializer::read(Value v) {
  v = qwen::raise::skip(v);
  // A transpose of a weight, computed on the fly (a slice of W read through
  // the transpose of W^T must not wait for the transpose's own entry).
  if (auto t = v.getDefiningOp<ox::TransposeOp>()) {
    auto type = dyn_cast<RankedTensorType>(t.getTransposed().getType());
    std::optional<WeightData> d;
    if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
        !t.getPerm() || *t.getPerm() != ArrayRef<int64_t>{1, 0} ||
        !(d = read(t.getData())))
      return std::nullopt;
    auto dtype = qwen::toStoreDType(type.getElementType());
    if (!dtype || qwen::ws::dtypeBits(*dtype) % 8 != 0)
      return std::nullopt;
    d->bytes = transposeBytes(d->bytes, d->type.getDimSize(0),
                              d->type.getDimSize(1),
                              qwen::ws::dtypeBits(*dtype) / 8);
    d->type = type;
    if (!d->name.empty())
      d->name += ".transposed";
    return d;
  }
  // A reshape of a weight is the same bytes with another shape.
  if (auto r = v.getDefiningOp<ox::ReshapeOp>()) {
    auto type = dyn_cast<RankedTensorType>(r.getReshaped().getType());
    std::optional<WeightData> d = read(r.getData());
    if (!d || !type || !type.hasStaticShape() ||
        type.getNumElements() != d->type.getNumElements())
      return std::nullopt;
    d->type = type;
    return d;
  }
  if (auto w = v.getDefiningOp<qwen::WeightOp>()) {
    const qwen::ws::Entry *e = stores.find(w, w.getRef());
    if (!e)
      return std::nullopt;
    const qwen::ws::WeightStoreReader *r = stores.open(w, w.getRef());
    const char *p = static_cast<const char *>(r->data(*e));
    WeightData d{cast<RankedTensorType>(w.getType()),
                 std::vector<char>(p, p + e->nbytes), e->name};
    r->release(*e); // copied: keep the resident set near one weight
    return d;
  }
  DenseElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr))) {
    std::string name;
    if (auto loc = dyn_cast<NameLoc>(v.getLoc()))
      name = loc.getName().str();
    return WeightData{cast<RankedTensorType>(attr.getType()),
                      qwen::toStoreBytes(attr), name};
  }
  return std::nullopt;
}

FailureOr<Value> Materializer::write(Location loc, StringRef name,
                                     RankedTensorType type,
                                     ArrayRef<char> bytes, bool forceStore) {
  if (!forceStore && type.getNumElements() <= minElements)
    return ox::ConstantOp::create(b, loc, qwen::fromStoreBytes(type, bytes))
        .getResult();
  std::string error;
  if (!writer) {
    if (storePath.empty())
      return emitError(loc, "--qwen-materialize-weights needs store=<path> "
                            "to write '")
             << name << "'", failure();
    writer = qwen::ws::WeightStoreWriter::create(storePath, error);
    if (!writer)
      return emitError(loc, error), failure();
  }
  std::string entry = name.empty() ? "w." + std::to_string(anon++) : name.str();
  for (unsigned i = 1; writer->contains(entry); ++i)
    entry = name.str() + "." + std::to_string(i);
  std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
  if (!writer->add(entry, *qwen::toStoreDType(type.getElementType()), shape,
                   bytes.data(), bytes.size(), error))
    return emitError(loc, error), failure();
  auto ref = SymbolRefAttr::get(b.getStringAttr(storeName),
                                {FlatSymbolRefAttr::get(b.getStringAttr(entry))});
  return qwen::WeightOp::create(b, loc, type, ref).getResult();
}

LogicalResult Materializer::transpose(ox::TransposeOp op) {
  auto in = dyn_cast<RankedTensorType>(op.getData().getType());
  if (!in || in.getRank() != 2 || !op.getPerm() ||
      *op.getPerm() != ArrayRef<int64_t>{1, 0} || !in.hasStaticShape())
    return success();
  auto dtype = qwen::toStoreDType(in.getElementType());
  if (!dtype || qwen::ws::dtypeBits(*dtype) % 8 != 0)
    return success();
  if (op.getTransposed().use_empty()) { // only slices read it: done
    op.erase();
    return success();
  }
  std::optional<WeightData> d = read(op.getTransposed());
  if (!d)
    return success();
  b.setInsertionPoint(op);
  FailureOr<Value> v = write(op.getLoc(), d->name, d->type, d->bytes);
  if (failed(v))
    return failure();
  op.getTransposed().replaceAllUsesWith(*v);
  op.erase();
  return success();
}

/// A constant-bounded, unit-step slice of a weight (the packed QKV and
/// c_attn projections, split per head group by raising) becomes its own
/// entry.
LogicalResult Materializer::slice(ox::SliceOp op) {
  auto in = dyn_cast<RankedTensorType>(op.getData().getType());
  auto out = dyn_cast<RankedTensorType>(op.getOutput().getType());
  if (!in || !out || !in.hasStaticShape() || !out.hasStaticShape())
    return success();
  auto dtype = qwen::toStoreDType(in.getElementType());
  if (!dtype || qwen::ws::dtypeBits(*dtype) % 8 != 0)
    return success();
  auto ints = [](Value v) -> std::optional<SmallVector<int64_t>> {
    return v ? qwen::raise::intConstant(v) : std::nullopt;
  };
  auto starts = ints(op.getStarts()), ends = ints(op.getEnds());
  std::optional<SmallVector<int64_t>> axes = ints(op.getAxes()),
                                      steps = ints(op.getSteps());
  if (!starts || !ends || (op.getAxes() && !axes) || (op.getSteps() && !steps))
    return success();
  if (steps && llvm::any_of(*steps, [](int64_t s) { return s != 1; }))
    return success();
  int64_t rank = in.getRank();
  SmallVector<int64_t> lo(rank, 0);
  for (auto [i, st] : llvm::enumerate(*starts)) {
    int64_t a = axes ? (*axes)[i] : (int64_t)i;
    a = a < 0 ? a + rank : a;
    if (a < 0 || a >= rank)
      return success();
    int64_t d = in.getDimSize(a);
    lo[a] = std::clamp<int64_t>(st < 0 ? st + d : st, 0, d);
  }
  std::optional<WeightData> d = read(op.getData());
  if (!d)
    return success();
  size_t es = qwen::ws::dtypeBits(*dtype) / 8;
  std::vector<char> bytes(out.getNumElements() * es);
  SmallVector<int64_t> idx(rank, 0);
  for (int64_t n = 0, e = out.getNumElements(); n < e; ++n) {
    int64_t src = 0;
    for (int64_t a = 0; a < rank; ++a)
      src = src * in.getDimSize(a) + lo[a] + idx[a];
    std::memcpy(&bytes[n * es], &d->bytes[src * es], es);
    for (int64_t a = rank - 1; a >= 0 && ++idx[a] == out.getDimSize(a); --a)
      idx[a] = 0;
  }
  b.setInsertionPoint(op);
  std::string name;
  if (!d->name.empty()) {
    name = d->name + ".slice";
    for (int64_t v : lo)
      name += "." + std::to_string(v);
  }
  FailureOr<Value> v = write(op.getLoc(), name, out, bytes);
  if (failed(v))
    return failure();
  op.getOutput().replaceAllUsesWith(*v);
  op.erase();
  return success();
}

/// Unpacks 4-bit values, low nibble first.
std::vector<uint8_t> unpackNibbles(ArrayRef<char> packed, int64_t n) {
  std::vector<uint8_t> out(n);
  for (int64_t i = 0; i < n; ++i)
    out[i] = (static_cast<uint8_t>(packed[i / 2]) >> (4 * (i % 2))) & 0xf;
  return out;
}

FailureOr<Value> Materializer::quantizedWeight(
    Operation *op, const WeightData &codes, const WeightData &scales,
    std::optional<WeightData> zeros, int64_t rows, int64_t cols, int64_t bits,
    int64_t block, Type elt) {
  MLIRContext *ctx = op->getContext();
  auto scheme = qq::SchemeAttr::get(
      ctx, qq::Grid::uniform, bits, /*isSigned=*/false,
      /*symmetric=*/!zeros.has_value(), qq::Granularity::group, block,
      qq::Sparsity::dense);
  auto type = qq::WeightType::get(ctx, {rows, cols}, elt, scheme);
  std::string base = codes.name.empty() ? "q." + std::to_string(anon++)
                                        : codes.name;
  std::string key = base + "|" + std::to_string(bits) + "|" +
                    std::to_string(block) + (zeros ? "|zp" : "");
  if (Value cached = quantized.lookup(key))
    if (cached.getType() == type)
      return cached;
  int64_t groups = cols / block;
  Location loc = op->getLoc();
  // Codes: the same packed bytes, viewed as [rows, cols * bits / 8].
  auto codesType = RankedTensorType::get({rows, cols * bits / 8},
                                         b.getIntegerType(8, false));
  auto scaleType = RankedTensorType::get(
      {rows, groups}, scales.type.getElementType());
  if (failed(write(loc, base + ".codes", codesType, codes.bytes, true)) ||
      failed(write(loc, base + ".scales", scaleType, scales.bytes, true)))
    return failure();
  if (zeros) {
    // Packed zero points (bits per value, rows padded to whole bytes).
    std::vector<char> zp(rows * groups);
    int64_t rowBytes = (groups * bits + 7) / 8;
    for (int64_t r = 0; r < rows; ++r) {
      ArrayRef<char> row(zeros->bytes.data() + r * rowBytes, rowBytes);
      std::vector<uint8_t> v = bits == 4 ? unpackNibbles(row, groups)
                                         : std::vector<uint8_t>(row.begin(), row.end());
      std::memcpy(&zp[r * groups], v.data(), groups);
    }
    auto zpType = RankedTensorType::get({rows, groups}, b.getIntegerType(8, false));
    if (failed(write(loc, base + ".zeros", zpType, zp, true)))
      return failure();
  }
  auto ref = SymbolRefAttr::get(b.getStringAttr(storeName),
                                {FlatSymbolRefAttr::get(b.getStringAttr(base))});
  Value w = qq::WeightOp::create(b, loc, type, ref).getResult();
  quantized[key] = w;
  return w;
}

bool allowedBlock(int64_t block) {
  return block == 32 || block == 64 || block == 128;
}

LogicalResult Materializer::matMulNBits(ox::MSMatMulNBitsOp op) {
  int64_t bits = op.getBits(), block = op.getBlockSize();
  int64_t n = op.getN(), k = op.getK();
  auto x = dyn_cast<RankedTensorType>(op.getA().getType());
  auto y = dyn_cast<RankedTensorType>(op.getY().getType());
  if ((bits != 4 && bits != 8) || !allowedBlock(block) || k % block != 0 ||
      op.getGIdx() || !x || !y || !isa<Float32Type>(x.getElementType()))
    return success();
  std::optional<WeightData> codes = read(op.getB()), scales = read(op.getScales());
  std::optional<WeightData> zeros;
  if (op.getZeroPoints()) {
    zeros = read(op.getZeroPoints());
    if (!zeros || !zeros->type.getElementType().isUnsignedInteger(8))
      return success(); // float zero points: not a uniform integer grid
  }
  if (!codes || !scales ||
      codes->bytes.size() != static_cast<size_t>(n * k * bits / 8) ||
      scales->type.getNumElements() != n * (k / block))
    return success();
  Value bias;
  if (op.getBias()) {
    auto bt = dyn_cast<RankedTensorType>(op.getBias().getType());
    if (!bt || bt.getRank() != 1)
      return success();
    bias = op.getBias();
  }
  b.setInsertionPoint(op);
  FailureOr<Value> w = quantizedWeight(op, *codes, *scales, zeros, n, k, bits,
                                       block, x.getElementType());
  if (failed(w))
    return failure();
  Value result;
  if (!bias && qwen::raise::isGraphOutputNamed(op.getY(), "logits")) {
    // The LM head; tied when the embedding reads the same quantized table.
    auto logits = qq::LogitsOp::create(b, op.getLoc(), y, op.getA(), *w,
                                       /*tied=*/false, /*act=*/nullptr);
    if (llvm::any_of(w->getUsers(),
                     [](Operation *u) { return isa<qq::EmbeddingOp>(u); }))
      logits.setTied(true);
    result = logits;
  } else {
    result = qq::LinearOp::create(b, op.getLoc(), y, op.getA(), *w, bias,
                                  /*act=*/nullptr);
  }
  op.getY().replaceAllUsesWith(result);
  op.erase();
  return success();
}

LogicalResult
Materializer::gatherBlockQuantized(ox::MSGatherBlockQuantizedOp op) {
  auto data = dyn_cast<RankedTensorType>(op.getData().getType());
  auto out = dyn_cast<RankedTensorType>(op.getOutput().getType());
  int64_t bits = op.getBits(), block = op.getBlockSize();
  if (bits != 4 || !allowedBlock(block) || op.getGatherAxis() != 0 ||
      op.getQuantizeAxis() != 1 || !data || data.getRank() != 2 ||
      !data.getElementType().isUnsignedInteger(8) || !out ||
      !isa<Float32Type>(out.getElementType()))
    return success();
  int64_t rows = data.getDimSize(0), cols = data.getDimSize(1) * 2;
  if (cols % block != 0)
    return success();
  std::optional<WeightData> codes = read(op.getData()),
                            scales = read(op.getScales());
  std::optional<WeightData> zeros;
  if (op.getZeroPoints()) {
    zeros = read(op.getZeroPoints());
    if (!zeros || !zeros->type.getElementType().isUnsignedInteger(8))
      return success();
  }
  if (!codes || !scales || scales->type.getNumElements() != rows * (cols / block))
    return success();
  b.setInsertionPoint(op);
  FailureOr<Value> w = quantizedWeight(op, *codes, *scales, zeros, rows, cols,
                                       bits, block, out.getElementType());
  if (failed(w))
    return failure();
  auto emb = qq::EmbeddingOp::create(b, op.getLoc(), out, op.getIndices(), *w);
  op.getOutput().replaceAllUsesWith(emb.getResult());
  op.erase();
  return success();
}

LogicalResult Materializer::run() {
  // Slices first: they read through transposes, which then may have no
  // users left.
  SmallVector<Operation *> work, rest;
  module.walk([&](Operation *op) {
    if (isa<ox::SliceOp>(op))
      work.push_back(op);
    else if (isa<ox::TransposeOp, ox::MSMatMulNBitsOp,
                 ox::MSGatherBlockQuantizedOp>(op))
      rest.push_back(op);
  });
  work.append(rest.begin(), rest.end());
  for (Operation *op : work) {
    LogicalResult r = success();
    if (auto t = dyn_cast<ox::TransposeOp>(op))
      r = transpose(t);
    else if (auto sl = dyn_cast<ox::SliceOp>(op))
      r = slice(sl);
    else if (auto m = dyn_cast<ox::MSMatMulNBitsOp>(op))
      r = matMulNBits(m);
    else if (auto g = dyn_cast<ox::MSGatherBlockQuantizedOp>(op))
      r = gatherBlockQuantized(g);
    if (failed(r))
      return failure();
  }
  return qwen::finishNewStore(module, writer.get(), storeName, storePath);
}

struct MaterializeWeightsPass
    : qwen::impl::MaterializeWeightsBase<MaterializeWeightsPass> {
  using Base::Base;
  void runOnOperation() override {
    if (SymbolTable::lookupSymbolIn(getOperation(), storeName)) {
      getOperation().emitError("symbol @")
          << storeName << " already exists; pick store-name=";
      return signalPassFailure();
    }
    if (!storePath.empty() &&
        failed(qwen::checkNewStorePath(getOperation(), storePath)))
      return signalPassFailure();
    if (failed(Materializer(getOperation(), storePath, storeName, minElements)
                   .run()))
      signalPassFailure();
  }
};

} // namespace
