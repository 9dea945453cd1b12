//===- WeightStoreAccess.cpp - weight stores seen from the IR -------------===//

#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/FileSystem.h"

#include <cmath>
#include <cstring>

using namespace mlir;

namespace qwen {

std::optional<ws::DType> toStoreDType(Type t) {
  if (t.isF32())
    return ws::DType::F32;
  if (t.isF16())
    return ws::DType::F16;
  if (t.isBF16())
    return ws::DType::BF16;
  if (t.isF64())
    return ws::DType::F64;
  auto it = dyn_cast<IntegerType>(t);
  if (!it)
    return std::nullopt;
  switch (it.getWidth()) {
  case 1:
    return ws::DType::Bool;
  case 4:
    return it.isUnsigned() ? ws::DType::U4 : ws::DType::I4;
  case 8:
    return it.isUnsigned() ? ws::DType::U8 : ws::DType::I8;
  case 16:
    return it.isUnsigned() ? std::nullopt : std::optional(ws::DType::I16);
  case 32:
    return it.isUnsigned() ? std::nullopt : std::optional(ws::DType::I32);
  case 64:
    return it.isUnsigned() ? std::nullopt : std::optional(ws::DType::I64);
  default:
    return std::nullopt;
  }
}

Type fromStoreDType(MLIRContext *ctx, ws::DType d) {
  Builder b(ctx);
  switch (d) {
  case ws::DType::F32: return b.getF32Type();
  case ws::DType::F16: return b.getF16Type();
  case ws::DType::BF16: return b.getBF16Type();
  case ws::DType::F64: return b.getF64Type();
  case ws::DType::I8: return b.getIntegerType(8);
  case ws::DType::U8: return b.getIntegerType(8, /*isSigned=*/false);
  case ws::DType::I16: return b.getIntegerType(16);
  case ws::DType::I32: return b.getIntegerType(32);
  case ws::DType::I64: return b.getIntegerType(64);
  case ws::DType::Bool: return b.getI1Type();
  case ws::DType::I4: return b.getIntegerType(4);
  case ws::DType::U4: return b.getIntegerType(4, /*isSigned=*/false);
  }
  return {};
}

std::vector<char> toStoreBytes(DenseElementsAttr attr) {
  std::vector<char> out;
  Type elt = attr.getElementType();
  if (elt.isInteger(1)) {
    out.reserve(attr.getNumElements());
    for (bool b : attr.getValues<bool>())
      out.push_back(b ? 1 : 0);
    return out;
  }
  if (elt.isInteger(4)) {
    out.assign((attr.getNumElements() + 1) / 2, 0);
    int64_t i = 0;
    for (const APInt &v : attr.getValues<APInt>()) {
      uint8_t nibble = static_cast<uint8_t>(v.getZExtValue() & 0xf);
      out[i / 2] = static_cast<char>(out[i / 2] | (nibble << (4 * (i % 2))));
      ++i;
    }
    return out;
  }
  if (attr.isSplat()) {
    ArrayRef<char> one = attr.getRawData();
    for (int64_t i = 0, e = attr.getNumElements(); i < e; ++i)
      out.insert(out.end(), one.begin(), one.end());
    return out;
  }
  ArrayRef<char> raw = attr.getRawData();
  return std::vector<char>(raw.begin(), raw.end());
}

DenseElementsAttr fromStoreBytes(RankedTensorType type, ArrayRef<char> bytes) {
  Type elt = type.getElementType();
  if (elt.isInteger(1)) {
    SmallVector<bool> bits(bytes.begin(), bytes.end());
    return DenseElementsAttr::get(type, bits);
  }
  if (elt.isInteger(4)) {
    SmallVector<APInt> values;
    values.reserve(type.getNumElements());
    for (int64_t i = 0, e = type.getNumElements(); i < e; ++i)
      values.emplace_back(4, (static_cast<uint8_t>(bytes[i / 2]) >> (4 * (i % 2))) & 0xf);
    return DenseElementsAttr::get(type, values);
  }
  return DenseElementsAttr::getFromRawBuffer(type, bytes);
}

const ws::WeightStoreReader *WeightStoreCache::open(Operation *user,
                                                     SymbolRefAttr ref) {
  auto store = dyn_cast_or_null<StoreOp>(
      SymbolTable::lookupNearestSymbolFrom(user, ref.getRootReference()));
  if (!store) {
    user->emitOpError("'") << ref.getRootReference().getValue()
                           << "' does not name a qwen.store";
    return nullptr;
  }
  auto &slot = readers[store.getPath()];
  if (!slot) {
    std::string error;
    slot = ws::WeightStoreReader::open(store.getPath().str(), error);
    if (!slot) {
      user->emitOpError() << error;
      readers.erase(store.getPath());
      return nullptr;
    }
  }
  return slot.get();
}

const ws::Entry *WeightStoreCache::find(Operation *user, SymbolRefAttr ref,
                                        StringRef suffix) {
  const ws::WeightStoreReader *reader = open(user, ref);
  if (!reader)
    return nullptr;
  std::string name = (ref.getLeafReference().getValue() + suffix).str();
  const ws::Entry *e = reader->find(name);
  if (!e)
    user->emitOpError("weight '")
        << name << "' is not in store '" << reader->path() << "'";
  return e;
}

LogicalResult finishNewStore(ModuleOp module, ws::WeightStoreWriter *writer,
                             StringRef storeName, StringRef storePath) {
  if (!writer)
    return success();
  std::string error;
  if (!writer->finish(error))
    return module.emitError(error);
  OpBuilder b(module.getContext());
  b.setInsertionPointToStart(module.getBody());
  StoreOp::create(b, module.getLoc(), storeName, storePath);
  return success();
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f,
           man = h & 0x3ff, bits;
  if (exp == 0) {
    float f = std::ldexp(float(man), -24);
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7f800000 | (man << 13);
  else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

LogicalResult readFloatEntry(WeightStoreCache &stores, Operation *user,
                             SymbolRefAttr ref, int64_t n,
                             std::vector<float> &out) {
  const ws::Entry *e = stores.find(user, ref);
  if (!e)
    return failure();
  const ws::WeightStoreReader *r = stores.open(user, ref);
  if (!r)
    return failure();
  if (e->numElements() != n)
    return user->emitOpError("store entry '")
           << e->name << "' has " << e->numElements() << " elements, not "
           << n;
  const char *src = static_cast<const char *>(r->data(*e));
  out.resize(n);
  switch (e->dtype) {
  case ws::DType::F32:
    std::memcpy(out.data(), src, n * 4);
    break;
  case ws::DType::F16:
  case ws::DType::BF16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      if (e->dtype == ws::DType::BF16) {
        uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      } else {
        out[i] = halfToFloat(h);
      }
    }
    break;
  default:
    return user->emitOpError("weight '")
           << e->name << "' has store dtype " << ws::dtypeName(e->dtype)
           << "; only f32, f16 and bf16 weights can be read as floats";
  }
  r->release(*e);
  return success();
}

LogicalResult readFloatValue(WeightStoreCache &stores, Operation *user,
                             Value v, int64_t n, std::vector<float> &out) {
  if (auto w = v.getDefiningOp<WeightOp>())
    return readFloatEntry(stores, w, w.getRef(), n, out);
  DenseElementsAttr dense;
  if (matchPattern(v, m_Constant(&dense)) && dense.getElementType().isF32() &&
      dense.getNumElements() == n) {
    out.assign(dense.getValues<float>().begin(), dense.getValues<float>().end());
    return success();
  }
  return user->emitOpError("expected a qwen.weight or a constant of ")
         << n << " f32 elements as this operand";
}

LogicalResult checkNewStorePath(ModuleOp module, StringRef path) {
  for (auto store : module.getOps<StoreOp>()) {
    bool same = store.getPath() == path;
    llvm::sys::fs::equivalent(store.getPath(), path, same); // same file?
    if (same)
      return module.emitError("weight store '")
             << path << "' is the file of @" << store.getSymName()
             << ", which the module still reads; write to another path";
  }
  return success();
}

SmallVector<WeightComponent> getWeightComponents(qquant::WeightType type) {
  using namespace qquant;
  SchemeAttr s = type.getScheme();
  int64_t rows = type.getRows(), cols = type.getCols();
  int64_t bits = s.getBits();
  auto packed = [&](int64_t n) { return (n * bits + 7) / 8; };
  SmallVector<WeightComponent> out;

  int64_t storedCols = s.getSparsity() == Sparsity::s2_4 ? cols / 2 : cols;
  out.push_back({".codes", {ws::DType::U8}, {rows, packed(storedCols)}});

  int64_t perRow = s.getScalesPerRow(cols);
  SmallVector<int64_t, 3> scaleShape =
      s.getGranularity() == Granularity::tensor
          ? SmallVector<int64_t, 3>{1}
          : SmallVector<int64_t, 3>{rows, perRow};
  if (s.getGrid() == Grid::codebook) {
    int64_t books = s.getGranularity() == Granularity::tensor ? 1
                                                              : rows * perRow;
    out.push_back({".codebook",
                   {ws::DType::F16, ws::DType::F32},
                   {books, int64_t(1) << bits}});
  } else {
    out.push_back({".scales", {ws::DType::F16, ws::DType::F32}, scaleShape});
    if (s.hasZeroPoints())
      out.push_back({".zeros", {ws::DType::U8, ws::DType::I8}, scaleShape});
  }
  if (s.getSparsity() == Sparsity::s2_4)
    // The position (0..3) of each kept value in its group of 4, 2 bits each.
    out.push_back({".mask", {ws::DType::U8}, {rows, (cols / 2 * 2 + 7) / 8}});
  else if (s.getSparsity() == Sparsity::unstructured)
    out.push_back({".mask", {ws::DType::U8}, {rows, (cols + 7) / 8}});
  return out;
}

} // namespace qwen
