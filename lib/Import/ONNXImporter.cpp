//===- ONNXImporter.cpp - ONNX protobuf -> onnx dialect -------------------===//

#include "qwen/Import/ONNXImporter.h"

#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"
#include "qwen/Support/WeightStore.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Traits.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <queue>

using namespace mlir;

namespace {

// ONNX TensorProto.DataType values (INT4/UINT4 are newer than the protobuf
// headers Debian ships, so they are spelled out).
enum OnnxType : int32_t {
  kFloat = 1, kUInt8 = 2, kInt8 = 3, kUInt16 = 4, kInt16 = 5, kInt32 = 6,
  kInt64 = 7, kString = 8, kBool = 9, kFloat16 = 10, kDouble = 11,
  kUInt32 = 12, kUInt64 = 13, kComplex64 = 14, kComplex128 = 15,
  kBFloat16 = 16, kUInt4 = 21, kInt4 = 22,
};

constexpr int64_t kMinOpset = 14, kMaxOpset = 23;

/// A read-only memory map of an external-data file.
struct MappedFile {
  void *base = nullptr;
  uint64_t size = 0;
  ~MappedFile() {
    if (base && size)
      ::munmap(base, size);
  }
};

/// Ops with several optional inputs carry operandSegmentSizes: the number of
/// ODS operand groups (one per ONNX input) each has.
int64_t operandGroups(StringRef opName) {
  return llvm::StringSwitch<int64_t>(opName)
      .Case("onnx.Slice", 5)
      .Case("onnx.Attention", 6)
      .Case("onnx.MatMulInteger", 4)
      .Case("onnx.ms.GroupQueryAttention", 12)
      .Case("onnx.ms.MatMulNBits", 6)
      .Default(0);
}

class Importer {
public:
  Importer(StringRef path, MLIRContext *ctx, const qwen::ONNXImportOptions &opts)
      : path(path.str()), ctx(ctx), opts(opts), b(ctx),
        fileLoc(FileLineColLoc::get(ctx, path, 0, 0)) {}

  OwningOpRef<ModuleOp> run(StringRef bytes);

private:
  LogicalResult fail(const Twine &msg) {
    // The message names the file itself; the op locations carry it too.
    emitError(UnknownLoc::get(ctx)) << path << ": " << msg;
    return failure();
  }
  LogicalResult failNode(const onnx::NodeProto &n, const Twine &msg) {
    return fail("node '" + n.name() + "' (" +
                (n.domain().empty() ? "" : n.domain() + ".") + n.op_type() +
                "): " + msg);
  }

  FailureOr<Type> elementType(int32_t t, const Twine &what);
  FailureOr<Type> convertType(const onnx::TypeProto &t, const Twine &what);
  LogicalResult loadTensor(const onnx::TensorProto &t, const Twine &what,
                           RankedTensorType &type, ArrayRef<char> &bytes,
                           std::vector<char> &owned);
  FailureOr<ArrayRef<char>> externalData(const onnx::TensorProto &t,
                                         const Twine &what, uint64_t need);
  FailureOr<Value> materialize(const onnx::TensorProto &t, StringRef name,
                               Location loc);
  LogicalResult importOpsets(const onnx::ModelProto &model);
  LogicalResult sortNodes(const onnx::GraphProto &g,
                          SmallVectorImpl<const onnx::NodeProto *> &order);
  LogicalResult importNode(const onnx::NodeProto &n);
  LogicalResult importConstantNode(const onnx::NodeProto &n);
  FailureOr<Attribute> convertAttribute(const onnx::NodeProto &n,
                                        const onnx::AttributeProto &a);
  Type fallbackType(const onnx::NodeProto &n, StringRef opName, unsigned idx,
                    ArrayRef<Value> operands, ArrayRef<NamedAttribute> attrs);
  LogicalResult define(const onnx::NodeProto *n, StringRef name, Value v);

  std::string path;
  MLIRContext *ctx;
  const qwen::ONNXImportOptions &opts;
  OpBuilder b;
  Location fileLoc;
  int64_t defaultOpset = 0;
  llvm::StringMap<Value> values;
  llvm::StringMap<const onnx::TypeProto *> declaredTypes;
  llvm::StringMap<std::unique_ptr<MappedFile>> mapped;
  std::unique_ptr<qwen::ws::WeightStoreWriter> store;
  ModuleOp module;
};

//===----------------------------------------------------------------------===//
// Types and tensors
//===----------------------------------------------------------------------===//

FailureOr<Type> Importer::elementType(int32_t t, const Twine &what) {
  switch (t) {
  case kFloat: return b.getF32Type();
  case kFloat16: return b.getF16Type();
  case kBFloat16: return b.getBF16Type();
  case kDouble: return b.getF64Type();
  case kInt8: return b.getIntegerType(8);
  case kUInt8: return b.getIntegerType(8, /*isSigned=*/false);
  case kInt16: return b.getIntegerType(16);
  case kUInt16: return b.getIntegerType(16, false);
  case kInt32: return b.getIntegerType(32);
  case kUInt32: return b.getIntegerType(32, false);
  case kInt64: return b.getIntegerType(64);
  case kUInt64: return b.getIntegerType(64, false);
  case kBool: return b.getI1Type();
  case kInt4: return b.getIntegerType(4);
  case kUInt4: return b.getIntegerType(4, false);
  default:
    (void)fail(what + " has ONNX data type " + Twine(t) +
               ", which qwen-opt does not support");
    return failure();
  }
}

FailureOr<Type> Importer::convertType(const onnx::TypeProto &t,
                                      const Twine &what) {
  if (!t.has_tensor_type()) {
    (void)fail(what + " is not a tensor (sequence, map and optional values "
                      "are not supported)");
    return failure();
  }
  const auto &tt = t.tensor_type();
  FailureOr<Type> elt = elementType(tt.elem_type(), what);
  if (failed(elt))
    return failure();
  if (!tt.has_shape())
    return Type(UnrankedTensorType::get(*elt));
  SmallVector<int64_t> dims;
  for (const auto &d : tt.shape().dim()) {
    if (d.has_dim_value() && d.dim_value() < 0) {
      (void)fail(what + " has a negative dimension");
      return failure();
    }
    dims.push_back(d.has_dim_value() ? d.dim_value() : ShapedType::kDynamic);
  }
  return Type(RankedTensorType::get(dims, *elt));
}

FailureOr<ArrayRef<char>> Importer::externalData(const onnx::TensorProto &t,
                                                 const Twine &what,
                                                 uint64_t need) {
  std::string location;
  uint64_t offset = 0, length = need;
  bool hasLength = false;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      uint64_t v = 0;
      if (StringRef(kv.value()).getAsInteger(10, v)) {
        (void)fail(what + " has a malformed external-data " + kv.key());
        return failure();
      }
      (kv.key() == "offset" ? offset : length) = v;
      hasLength |= kv.key() == "length";
    }
  }
  if (location.empty()) {
    (void)fail(what + " has external data without a location");
    return failure();
  }
  if (hasLength && length != need) {
    (void)fail(what + " has " + Twine(length) +
               " bytes of external data, its shape needs " + Twine(need));
    return failure();
  }
  // The data must stay inside the model's folder: no absolute paths and no
  // escape through `..` or symbolic links.
  SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  if (dir.empty())
    dir = ".";
  SmallString<256> realDir, full(dir), realFull, lexical(location);
  llvm::sys::path::append(full, location);
  llvm::sys::path::remove_dots(lexical, /*remove_dot_dot=*/true);
  if (llvm::sys::path::is_absolute(location) ||
      StringRef(lexical).starts_with("..") ||
      llvm::sys::fs::real_path(dir, realDir)) {
    (void)fail(what + ": external-data path '" + location +
               "' escapes the model's folder");
    return failure();
  }
  if (llvm::sys::fs::real_path(full, realFull)) {
    (void)fail(what + ": external-data file '" + location +
               "' is missing");
    return failure();
  }
  if (!StringRef(realFull).starts_with((realDir + "/").str())) {
    (void)fail(what + ": external-data path '" + location +
               "' escapes the model's folder");
    return failure();
  }
  auto &slot = mapped[realFull];
  if (!slot) {
    slot = std::make_unique<MappedFile>();
    int fd = ::open(realFull.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0)
        ::close(fd);
      mapped.erase(realFull);
      (void)fail(what + ": cannot read external-data file '" + location + "'");
      return failure();
    }
    slot->size = static_cast<uint64_t>(st.st_size);
    if (slot->size) {
      void *p = ::mmap(nullptr, slot->size, PROT_READ, MAP_PRIVATE, fd, 0);
      slot->base = p == MAP_FAILED ? nullptr : p;
    }
    ::close(fd);
    if (slot->size && !slot->base) {
      mapped.erase(realFull);
      (void)fail(what + ": cannot map external-data file '" + location + "'");
      return failure();
    }
  }
  if (offset > slot->size || need > slot->size - offset) {
    (void)fail(what + ": external-data file '" + location + "' has " +
               Twine(slot->size) + " bytes, the tensor needs bytes [" +
               Twine(offset) + ", " + Twine(offset + need) + ")");
    return failure();
  }
  return ArrayRef<char>(static_cast<const char *>(slot->base) + offset, need);
}

/// Copies the typed repeated field `src` (one value per element) into
/// store-layout bytes of width `bytesPer`.
template <typename Field>
static void packValues(const Field &src, size_t bytesPer,
                       std::vector<char> &out) {
  out.resize(src.size() * bytesPer);
  for (int i = 0; i < src.size(); ++i) {
    auto v = src.Get(i);
    std::memcpy(out.data() + i * bytesPer, &v, bytesPer); // little-endian
  }
}

LogicalResult Importer::loadTensor(const onnx::TensorProto &t,
                                   const Twine &what, RankedTensorType &type,
                                   ArrayRef<char> &bytes,
                                   std::vector<char> &owned) {
  SmallVector<int64_t> dims;
  uint64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d && n > (uint64_t(1) << 56) / d))
      return fail(what + " has an invalid shape");
    dims.push_back(d);
    n *= d;
  }
  FailureOr<Type> elt = elementType(t.data_type(), what);
  if (failed(elt))
    return failure();
  type = RankedTensorType::get(dims, *elt);
  auto dtype = qwen::toStoreDType(*elt);
  if (!dtype)
    return fail(what + " has element type that the weight store cannot hold");
  uint64_t need = qwen::ws::dtypeBytes(*dtype, n);

  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    FailureOr<ArrayRef<char>> data = externalData(t, what, need);
    if (failed(data))
      return failure();
    bytes = *data;
    return success();
  }
  if (t.has_raw_data()) {
    if (t.raw_data().size() != need)
      return fail(what + " has " + Twine(t.raw_data().size()) +
                  " bytes of data, its shape needs " + Twine(need));
    bytes = ArrayRef<char>(t.raw_data().data(), t.raw_data().size());
    return success();
  }
  uint64_t have = 0;
  switch (t.data_type()) {
  case kFloat:
    have = t.float_data_size();
    packValues(t.float_data(), 4, owned);
    break;
  case kDouble:
    have = t.double_data_size();
    packValues(t.double_data(), 8, owned);
    break;
  case kInt64:
    have = t.int64_data_size();
    packValues(t.int64_data(), 8, owned);
    break;
  case kInt32:
    have = t.int32_data_size();
    packValues(t.int32_data(), 4, owned);
    break;
  case kInt16:
  case kUInt16:
  case kFloat16:
  case kBFloat16:
    have = t.int32_data_size();
    packValues(t.int32_data(), 2, owned);
    break;
  case kInt8:
  case kUInt8:
  case kBool:
    have = t.int32_data_size();
    packValues(t.int32_data(), 1, owned);
    break;
  case kInt4:
  case kUInt4:
    // int32_data holds the packed bytes, two values each.
    have = t.int32_data_size() * 2;
    packValues(t.int32_data(), 1, owned);
    if (have == n + 1)
      have = n;
    break;
  default:
    return fail(what + " stores its values in a field qwen-opt cannot read");
  }
  if (have != n)
    return fail(what + " has " + Twine(have) + " values, its shape needs " +
                Twine(n));
  bytes = ArrayRef<char>(owned.data(), owned.size());
  return success();
}

FailureOr<Value> Importer::materialize(const onnx::TensorProto &t,
                                       StringRef name, Location loc) {
  RankedTensorType type;
  ArrayRef<char> bytes;
  std::vector<char> owned;
  if (failed(loadTensor(t, "tensor '" + name + "'", type, bytes, owned)))
    return failure();
  if (type.getNumElements() <= opts.inlineMaxElements) {
    DenseElementsAttr attr = qwen::fromStoreBytes(type, bytes);
    return qwen::onnxir::ConstantOp::create(b, loc, attr).getResult();
  }
  if (opts.storePath.empty()) {
    (void)fail("tensor '" + name + "' has " + Twine(type.getNumElements()) +
               " elements and no weight store was given (--weight-store)");
    return failure();
  }
  std::string error;
  if (!store) {
    store = qwen::ws::WeightStoreWriter::create(opts.storePath, error);
    if (!store) {
      (void)fail(error);
      return failure();
    }
  }
  if (store->contains(name.str())) {
    (void)fail("tensor name '" + name + "' is used twice");
    return failure();
  }
  std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
  if (!store->add(name.str(), *qwen::toStoreDType(type.getElementType()),
                  shape, bytes.data(), bytes.size(), error)) {
    (void)fail(error);
    return failure();
  }
  // External data is mapped from its file: written out, its pages can leave
  // the resident set (importing a 72B model must not need its size in RAM).
  // Only there: dropping pages of heap memory would zero them.
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    qwen::ws::releasePages(bytes.data(), bytes.size());
  auto ref = SymbolRefAttr::get(b.getStringAttr("weights"),
                                {FlatSymbolRefAttr::get(b.getStringAttr(name))});
  return qwen::WeightOp::create(b, loc, type, ref).getResult();
}

//===----------------------------------------------------------------------===//
// Graph
//===----------------------------------------------------------------------===//

LogicalResult Importer::importOpsets(const onnx::ModelProto &model) {
  SmallVector<NamedAttribute> opsets;
  for (const auto &o : model.opset_import()) {
    StringRef domain = o.domain();
    if (domain.empty() || domain == "ai.onnx")
      defaultOpset = o.version();
    opsets.push_back(
        b.getNamedAttr(domain.empty() ? "ai.onnx" : domain,
                       b.getI64IntegerAttr(o.version())));
  }
  if (defaultOpset == 0)
    return fail("the model imports no version of the default ONNX domain");
  if (defaultOpset < kMinOpset || defaultOpset > kMaxOpset)
    return fail("opset " + Twine(defaultOpset) +
                " of the default domain is not supported (qwen-opt reads "
                "opsets " + Twine(kMinOpset) + " to " + Twine(kMaxOpset) + ")");
  module->setAttr("onnx.opset_import", b.getDictionaryAttr(opsets));
  return success();
}

LogicalResult
Importer::sortNodes(const onnx::GraphProto &g,
                    SmallVectorImpl<const onnx::NodeProto *> &order) {
  // Kahn's algorithm over value names; inputs and initializers are ready.
  llvm::StringMap<SmallVector<int, 2>> consumers;
  SmallVector<int> pending(g.node_size(), 0);
  llvm::StringSet<> produced;
  for (const auto &n : g.node())
    for (const auto &o : n.output())
      if (!o.empty() && !produced.insert(o).second)
        return failNode(n, "value '" + o + "' is produced twice");
  // Smallest index first: a graph that is already sorted keeps its order.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < g.node_size(); ++i) {
    for (const auto &in : g.node(i).input()) {
      if (in.empty() || values.count(in))
        continue;
      if (!produced.count(in))
        return failNode(g.node(i), "input '" + in + "' is not defined");
      consumers[in].push_back(i);
      ++pending[i];
    }
    if (pending[i] == 0)
      ready.push(i);
  }
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(&g.node(i));
    for (const auto &o : g.node(i).output())
      for (int c : consumers.lookup(o))
        if (--pending[c] == 0)
          ready.push(c);
  }
  for (int i = 0; i < g.node_size(); ++i)
    if (pending[i] > 0)
      return failNode(g.node(i), "the graph has a cycle through this node");
  return success();
}

LogicalResult Importer::define(const onnx::NodeProto *n, StringRef name,
                               Value v) {
  if (!values.try_emplace(name, v).second)
    return n ? failNode(*n, "value '" + name + "' is defined twice")
             : fail("value '" + name + "' is defined twice");
  return success();
}

FailureOr<Attribute> Importer::convertAttribute(const onnx::NodeProto &n,
                                                const onnx::AttributeProto &a) {
  StringRef op = n.op_type();
  // ONNX data types given as integers become MLIR types.
  if ((op == "Cast" && a.name() == "to") ||
      (op == "QuantizeLinear" && a.name() == "output_dtype")) {
    FailureOr<Type> t = elementType(a.i(), "attribute '" + a.name() + "'");
    if (failed(t))
      return failure();
    return Attribute(TypeAttr::get(*t));
  }
  switch (a.type()) {
  case onnx::AttributeProto::INT:
    return Attribute(b.getIntegerAttr(
        b.getIntegerType(64, /*isSigned=*/true), a.i()));
  case onnx::AttributeProto::FLOAT:
    return Attribute(b.getF32FloatAttr(a.f()));
  case onnx::AttributeProto::STRING:
    return Attribute(b.getStringAttr(a.s()));
  case onnx::AttributeProto::INTS:
    return Attribute(b.getDenseI64ArrayAttr(
        SmallVector<int64_t>(a.ints().begin(), a.ints().end())));
  case onnx::AttributeProto::FLOATS:
    return Attribute(b.getDenseF32ArrayAttr(
        SmallVector<float>(a.floats().begin(), a.floats().end())));
  case onnx::AttributeProto::TENSOR: {
    RankedTensorType type;
    ArrayRef<char> bytes;
    std::vector<char> owned;
    if (failed(loadTensor(a.t(), "attribute '" + a.name() + "'", type, bytes,
                          owned)))
      return failure();
    return Attribute(qwen::fromStoreBytes(type, bytes));
  }
  default:
    (void)failNode(n, "attribute '" + a.name() +
                          "' has a kind qwen-opt does not support "
                          "(graphs, sparse tensors, type protos)");
    return failure();
  }
}

LogicalResult Importer::importConstantNode(const onnx::NodeProto &n) {
  if (n.output_size() != 1 || n.attribute_size() != 1)
    return failNode(n, "a Constant node has one output and one attribute");
  const auto &a = n.attribute(0);
  Location loc = NameLoc::get(b.getStringAttr(n.output(0)), fileLoc);
  Value v;
  if (a.name() == "value") {
    FailureOr<Value> m = materialize(a.t(), n.output(0), loc);
    if (failed(m))
      return failure();
    v = *m;
  } else if (a.name() == "value_float" || a.name() == "value_int" ||
             a.name() == "value_floats" || a.name() == "value_ints") {
    bool isFloat = a.name().rfind("value_float", 0) == 0;
    bool scalar = a.name() == "value_float" || a.name() == "value_int";
    Type elt = isFloat ? Type(b.getF32Type()) : Type(b.getI64Type());
    DenseElementsAttr attr;
    if (isFloat) {
      SmallVector<float> vals = scalar ? SmallVector<float>{a.f()}
                                       : SmallVector<float>(a.floats().begin(),
                                                            a.floats().end());
      auto type = RankedTensorType::get(
          scalar ? ArrayRef<int64_t>{} : ArrayRef<int64_t>{(int64_t)vals.size()},
          elt);
      attr = DenseElementsAttr::get(type, ArrayRef<float>(vals));
    } else {
      SmallVector<int64_t> vals =
          scalar ? SmallVector<int64_t>{a.i()}
                 : SmallVector<int64_t>(a.ints().begin(), a.ints().end());
      auto type = RankedTensorType::get(
          scalar ? ArrayRef<int64_t>{} : ArrayRef<int64_t>{(int64_t)vals.size()},
          elt);
      attr = DenseElementsAttr::get(type, ArrayRef<int64_t>(vals));
    }
    v = qwen::onnxir::ConstantOp::create(b, loc, attr);
  } else {
    return failNode(n, "Constant attribute '" + a.name() +
                           "' is not supported");
  }
  return define(&n, n.output(0), v);
}

/// The result type when the model declares none: enough to type the op, with
/// the shape left unranked where it is not obvious. Shape inference on the
/// onnx dialect refines it.
Type Importer::fallbackType(const onnx::NodeProto &n, StringRef opName,
                            unsigned idx, ArrayRef<Value> operands,
                            ArrayRef<NamedAttribute> attrs) {
  auto attr = [&](StringRef name) -> Attribute {
    for (const NamedAttribute &a : attrs)
      if (a.getName() == name)
        return a.getValue();
    return {};
  };
  // A malformed node may lack inputs: every access is bounds-checked, and
  // the op's verifier reports the arity afterwards.
  auto typeOf = [&](unsigned i) -> Type {
    return i < operands.size() ? operands[i].getType() : Type();
  };
  Type first = operands.empty() ? Type(b.getF32Type())
                                : getElementTypeOrSelf(operands[0].getType());
  auto unranked = [](Type e) { return UnrankedTensorType::get(e); };
  StringRef op = n.op_type();
  if (op == "Shape" || op == "Size")
    return unranked(b.getI64Type());
  if (op == "Equal" || op == "Less" || op == "LessOrEqual" ||
      op == "Greater" || op == "GreaterOrEqual" || op == "IsNaN" ||
      op == "IsInf" || op == "Not" || op == "And" || op == "Or" ||
      op == "Xor") {
    if (operands.size() == 2)
      if (auto t = OpTrait::util::getBroadcastedType(
              operands[0].getType(), operands[1].getType(), b.getI1Type()))
        return t;
    if (auto r = dyn_cast_or_null<RankedTensorType>(typeOf(0)))
      if (op == "IsNaN" || op == "IsInf" || op == "Not")
        return RankedTensorType::get(r.getShape(), b.getI1Type());
    return unranked(b.getI1Type());
  }
  if (op == "Cast") {
    auto toAttr = dyn_cast_or_null<TypeAttr>(attr("to"));
    if (!toAttr)
      return unranked(first);
    Type to = toAttr.getValue();
    if (auto r = dyn_cast_or_null<RankedTensorType>(typeOf(0)))
      return RankedTensorType::get(r.getShape(), to);
    return unranked(to);
  }
  if (op == "CastLike")
    return typeOf(1) ? unranked(getElementTypeOrSelf(typeOf(1)))
                     : unranked(first);
  if (op == "ConstantOfShape") {
    if (auto v = dyn_cast_or_null<ElementsAttr>(attr("value")))
      return unranked(v.getElementType());
    return unranked(b.getF32Type());
  }
  if (op == "QuantizeLinear") {
    if (operands.size() > 2)
      return unranked(getElementTypeOrSelf(operands[2].getType()));
    if (auto t = dyn_cast_or_null<TypeAttr>(attr("output_dtype")))
      return unranked(t.getValue());
    return unranked(b.getIntegerType(8, false));
  }
  if (op == "DequantizeLinear" || op == "GatherBlockQuantized") {
    Type scale = typeOf(op == "DequantizeLinear" ? 1 : 2);
    return unranked(scale ? getElementTypeOrSelf(scale) : first);
  }
  if (op == "DynamicQuantizeLinear")
    return unranked(idx == 1 ? Type(b.getF32Type())
                             : Type(b.getIntegerType(8, false)));
  if (op == "MatMulInteger" || op == "MatMul") {
    Type elt = op == "MatMul" ? first : Type(b.getI32Type());
    auto a = dyn_cast_or_null<RankedTensorType>(typeOf(0));
    auto w = dyn_cast_or_null<RankedTensorType>(typeOf(1));
    // numpy matmul: batch dims broadcast, [.., m, k] x [.., k, n].
    if (a && w && a.getRank() >= 2 && w.getRank() >= 2) {
      SmallVector<int64_t> batch;
      if (OpTrait::util::getBroadcastedShape(a.getShape().drop_back(2),
                                             w.getShape().drop_back(2), batch)) {
        batch.push_back(a.getDimSize(a.getRank() - 2));
        batch.push_back(w.getDimSize(w.getRank() - 1));
        return RankedTensorType::get(batch, elt);
      }
    }
    return unranked(elt);
  }
  if (op == "Range" || op == "Gather" || op == "Expand" || op == "Reshape" ||
      op == "Transpose" || op == "Concat" || op == "Slice" ||
      op == "Squeeze" || op == "Unsqueeze" || op == "Split")
    return unranked(first);
  // Element-wise ops: broadcast of the operands, or the operand's type.
  if (operands.size() == 1 && opName != "onnx.ReduceMean" &&
      !opName.starts_with("onnx.Reduce") && op != "Flatten" && op != "Tile" &&
      op != "Trilu")
    return operands[0].getType();
  if (operands.size() == 2 &&
      (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" ||
       op == "Pow" || op == "Max" || op == "Min" || op == "Mod"))
    if (auto t = OpTrait::util::getBroadcastedType(operands[0].getType(),
                                                   operands[1].getType()))
      return t;
  if (op == "Where" && operands.size() == 3) {
    // The condition broadcasts too.
    Type xy = OpTrait::util::getBroadcastedType(operands[1].getType(),
                                                operands[2].getType());
    auto cond = dyn_cast<RankedTensorType>(operands[0].getType());
    if (xy && cond)
      if (Type t = OpTrait::util::getBroadcastedType(
              RankedTensorType::get(cond.getShape(), getElementTypeOrSelf(xy)),
              xy))
        return t;
    return unranked(getElementTypeOrSelf(operands[1].getType()));
  }
  return unranked(first);
}

LogicalResult Importer::importNode(const onnx::NodeProto &n) {
  StringRef domain = n.domain();
  bool isDefault = domain.empty() || domain == "ai.onnx";
  if (isDefault && n.op_type() == "Constant")
    return importConstantNode(n);
  std::string opName;
  if (isDefault)
    opName = "onnx." + n.op_type();
  else if (domain == "com.microsoft")
    opName = "onnx.ms." + n.op_type();
  else
    return failNode(n, "operator domain '" + domain + "' is not supported");
  std::optional<RegisteredOperationName> info =
      RegisteredOperationName::lookup(opName, ctx);
  if (!info && domain == "com.microsoft") {
    // onnxruntime registers some contrib ops in both domains.
    opName = "onnx." + n.op_type();
    info = RegisteredOperationName::lookup(opName, ctx);
  }
  if (!info)
    return failNode(n, "unsupported operator '" + n.op_type() +
                           "' (domain '" +
                           (domain.empty() ? StringRef("ai.onnx") : domain) +
                           "', opset " + Twine(defaultOpset) + ")");

  // Operands; an empty name is an absent optional input.
  SmallVector<Value> operands;
  SmallVector<int32_t> segments;
  int64_t groups = operandGroups(opName);
  int lastPresent = -1;
  for (int i = 0; i < n.input_size(); ++i)
    if (!n.input(i).empty())
      lastPresent = i;
  if (groups && n.input_size() > groups)
    return failNode(n, "has " + Twine(n.input_size()) + " inputs, at most " +
                           Twine(groups) + " are supported");
  for (int i = 0; i <= lastPresent; ++i) {
    if (n.input(i).empty()) {
      if (!groups)
        return failNode(n, "input #" + Twine(i) +
                               " is omitted before a given one");
      segments.push_back(0);
      continue;
    }
    Value v = values.lookup(n.input(i));
    if (!v)
      return failNode(n, "input '" + n.input(i) + "' is not defined");
    operands.push_back(v);
    segments.push_back(1);
  }
  if (groups)
    segments.resize(groups, 0);

  SmallVector<NamedAttribute> attrs;
  for (const auto &a : n.attribute()) {
    // Reductions before opset 18 take axes as an attribute: make it the input.
    if (a.name() == "axes" && StringRef(opName).starts_with("onnx.Reduce")) {
      auto axes = DenseElementsAttr::get(
          RankedTensorType::get({a.ints_size()}, b.getI64Type()),
          ArrayRef<int64_t>(SmallVector<int64_t>(a.ints().begin(),
                                                 a.ints().end())));
      operands.push_back(qwen::onnxir::ConstantOp::create(b, fileLoc, axes));
      continue;
    }
    FailureOr<Attribute> attr = convertAttribute(n, a);
    if (failed(attr))
      return failure();
    attrs.push_back(b.getNamedAttr(a.name(), *attr));
  }
  if (groups)
    attrs.push_back(
        b.getNamedAttr("operandSegmentSizes", b.getDenseI32ArrayAttr(segments)));

  // Results up to the last one used; their types come from the model's
  // value_info or outputs, else from the fallback rules.
  int lastOutput = -1;
  for (int i = 0; i < n.output_size(); ++i)
    if (!n.output(i).empty())
      lastOutput = i;
  SmallVector<Type> resultTypes;
  bool sameType = info->hasTrait<OpTrait::SameOperandsAndResultType>();
  for (int i = 0; i <= lastOutput; ++i) {
    if (sameType && !operands.empty()) {
      resultTypes.push_back(operands[0].getType());
      continue;
    }
    const onnx::TypeProto *declared = n.output(i).empty()
                                          ? nullptr
                                          : declaredTypes.lookup(n.output(i));
    if (declared && declared->has_tensor_type() &&
        declared->tensor_type().elem_type() != 0) {
      FailureOr<Type> t = convertType(*declared, "value '" + n.output(i) + "'");
      if (failed(t))
        return failure();
      // A declared type without a shape loses to a ranked fallback.
      Type fallback = fallbackType(n, opName, i, operands, attrs);
      bool better = isa<UnrankedTensorType>(*t) &&
                    isa<RankedTensorType>(fallback) &&
                    getElementTypeOrSelf(fallback) == getElementTypeOrSelf(*t);
      resultTypes.push_back(better ? fallback : *t);
    } else {
      resultTypes.push_back(fallbackType(n, opName, i, operands, attrs));
    }
  }

  std::string name = n.name().empty() ? (n.output_size() ? n.output(0) : "")
                                      : n.name();
  Location loc = NameLoc::get(b.getStringAttr(name), fileLoc);
  // Verify now, so the error names the node rather than an op deep in IR.
  // Attributes first: one of the wrong kind (a float `axis`) would not even
  // become the op's property.
  std::string msg;
  auto capture = [&](Diagnostic &d) {
    if (msg.empty())
      msg = d.str();
    return success();
  };
  bool valid;
  {
    ScopedDiagnosticHandler handler(ctx, capture);
    NamedAttrList attrList(attrs);
    valid = succeeded(
        info->verifyInherentAttrs(attrList, [&] { return emitError(loc); }));
  }
  if (!valid)
    return failNode(n, msg);

  OperationState state(loc, *info);
  state.addOperands(operands);
  state.addTypes(resultTypes);
  state.addAttributes(attrs);
  Operation *op = b.create(state);
  {
    ScopedDiagnosticHandler handler(ctx, capture);
    valid = succeeded(verify(op));
  }
  if (!valid) {
    op->erase();
    return failNode(n, msg);
  }
  for (int i = 0; i <= lastOutput; ++i)
    if (!n.output(i).empty() && failed(define(&n, n.output(i), op->getResult(i))))
      return failure();
  return success();
}

OwningOpRef<ModuleOp> Importer::run(StringRef bytes) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) {
    (void)fail("the protobuf is larger than 2 GB, which protobuf cannot read; "
               "save the model with external data");
    return nullptr;
  }
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    (void)fail("not a valid ONNX model (truncated or corrupt protobuf)");
    return nullptr;
  }
  if (!model.has_graph() || model.ir_version() <= 0) {
    (void)fail("not a valid ONNX model (no graph or IR version)");
    return nullptr;
  }
  const onnx::GraphProto &g = model.graph();
  if (g.sparse_initializer_size())
    return (void)fail("sparse initializers are not supported"), nullptr;

  OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc);
  module = *owned;
  b.setInsertionPointToEnd(module.getBody());
  if (failed(importOpsets(model)))
    return nullptr;
  if (!model.producer_name().empty())
    module->setAttr("onnx.producer",
                    b.getStringAttr(model.producer_name() + " " +
                                    model.producer_version()));

  for (const auto &vi : g.value_info())
    declaredTypes[vi.name()] = &vi.type();
  for (const auto &o : g.output())
    declaredTypes[o.name()] = &o.type();

  // Function signature: graph inputs that are not initializers.
  llvm::StringSet<> initNames;
  for (const auto &t : g.initializer())
    initNames.insert(t.name());
  SmallVector<Type> argTypes;
  SmallVector<const onnx::ValueInfoProto *> args;
  for (const auto &in : g.input()) {
    if (initNames.count(in.name()))
      continue;
    FailureOr<Type> t = convertType(in.type(), "input '" + in.name() + "'");
    if (failed(t))
      return nullptr;
    argTypes.push_back(*t);
    args.push_back(&in);
  }
  auto func = func::FuncOp::create(b, fileLoc, opts.funcName,
                                   b.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  for (auto [i, in] : llvm::enumerate(args)) {
    func.setArgAttr(i, "onnx.name", b.getStringAttr(in->name()));
    if (failed(define(nullptr, in->name(), entry->getArgument(i))))
      return nullptr;
  }
  for (const auto &t : g.initializer()) {
    if (t.name().empty())
      return (void)fail("an initializer has no name"), nullptr;
    FailureOr<Value> v =
        materialize(t, t.name(), NameLoc::get(b.getStringAttr(t.name()), fileLoc));
    if (failed(v) || failed(define(nullptr, t.name(), *v)))
      return nullptr;
  }

  SmallVector<const onnx::NodeProto *> order;
  if (failed(sortNodes(g, order)))
    return nullptr;
  for (const onnx::NodeProto *n : order)
    if (failed(importNode(*n)))
      return nullptr;

  SmallVector<Value> results;
  for (const auto &o : g.output()) {
    Value v = values.lookup(o.name());
    if (!v)
      return (void)fail("graph output '" + o.name() + "' is not produced"),
             nullptr;
    results.push_back(v);
  }
  func::ReturnOp::create(b, fileLoc, results);
  func.setFunctionType(b.getFunctionType(argTypes, ValueRange(results).getTypes()));
  for (auto [i, o] : llvm::enumerate(g.output()))
    func.setResultAttr(i, "onnx.name", b.getStringAttr(o.name()));

  if (store) {
    b.setInsertionPointToStart(module.getBody());
    qwen::StoreOp::create(b, fileLoc, "weights", opts.storePath);
    std::string error;
    if (!store->finish(error))
      return (void)fail(error), nullptr;
  }
  return owned;
}

} // namespace

OwningOpRef<ModuleOp> qwen::importONNXModel(StringRef bytes,
                                            StringRef modelPath,
                                            MLIRContext *ctx,
                                            const ONNXImportOptions &options) {
  ctx->loadDialect<onnxir::ONNXDialect, QwenDialect, func::FuncDialect>();
  Importer importer(modelPath, ctx, options);
  return importer.run(bytes);
}

OwningOpRef<ModuleOp> qwen::importONNXFile(StringRef modelPath,
                                           MLIRContext *ctx,
                                           const ONNXImportOptions &options) {
  auto buffer = llvm::MemoryBuffer::getFile(modelPath, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer) {
    emitError(FileLineColLoc::get(ctx, modelPath, 0, 0))
        << modelPath << ": cannot read: " << buffer.getError().message();
    return nullptr;
  }
  return importONNXModel((*buffer)->getBuffer(), modelPath, ctx, options);
}
