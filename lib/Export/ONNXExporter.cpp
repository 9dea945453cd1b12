//===- ONNXExporter.cpp - a quantized module back to ONNX -----------------===//
//
// The source ONNX graph is rewritten in place, node by node: the module says
// for each MatMul / Gather weight (by its initializer's name) how it is
// quantized, and for each bias and RMSNorm gamma what its current values are.
// Nothing of the raised IR is re-emitted, so the graph keeps the source's
// inputs, outputs and glue (KV cache, masks, positions) exactly.
//
// Numerics (the contract with the lowering in LowerONNXToLinalg.cpp):
// codes are packed LSB first per row, `bits` each (unpackField), signed codes
// in two's complement; value = (code - zp) * scale with zp = 0 (signed
// symmetric), 2^(bits-1) (unsigned symmetric) or the stored zero point; log2
// and codebook grids as dequantAt. Every f32 initializer written here holds
// exactly what dequantAt computes (same float operations).
//
//===----------------------------------------------------------------------===//

#include "qwen/Export/ONNXExporter.h"

#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"
#include "qwen/Support/WeightStore.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Quant/IR/QuantTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

using namespace mlir;
namespace qq = qwen::qquant;
namespace ws = qwen::ws;

namespace {

bool isPow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

/// A quantized weight read from its store: codes, scales (or codebooks) and
/// zero points, decoded exactly as the lowering's dequantAt.
struct QWeight {
  std::string name; // store entry (without component suffix)
  qq::WeightType type;
  qq::SchemeAttr s;
  int64_t rows = 0, cols = 0, bits = 0, rowBytes = 0, perRow = 1, group = 0;
  int gran = 2;
  const uint8_t *codes = nullptr;
  std::vector<uint8_t> ownedCodes; // rows of several weights, merged
  std::vector<float> scales;   // [1] or [rows * perRow]; codebooks [books, 2^b]
  std::vector<int32_t> zeros;  // as scales (asymmetric)

  uint32_t field(int64_t r, int64_t c) const {
    uint64_t bit = uint64_t(c) * bits, byte = bit / 8, sh = bit % 8;
    uint64_t next = std::min<uint64_t>(byte + 1, rowBytes - 1);
    const uint8_t *row = codes + r * rowBytes;
    uint32_t w = uint32_t(row[byte]) | (uint32_t(row[next]) << 8);
    return (w >> sh) & ((1u << bits) - 1);
  }
  int32_t code(int64_t r, int64_t c) const {
    int32_t v = int32_t(field(r, c));
    if (s.getIsSigned() && v >= (1 << (bits - 1)))
      v -= 1 << bits;
    return v;
  }
  int64_t scaleIndex(int64_t r, int64_t c) const {
    return gran == 0 ? 0 : gran == 1 ? r * perRow : r * perRow + c / group;
  }
  int32_t zeroPoint(int64_t r, int64_t c) const {
    if (s.hasZeroPoints())
      return zeros[scaleIndex(r, c)];
    return s.getIsSigned() ? 0 : 1 << (bits - 1);
  }
  float value(int64_t r, int64_t c) const {
    switch (s.getGrid()) {
    case qq::Grid::codebook: {
      int64_t book = gran == 0 ? 0 : gran == 1 ? r : r * perRow + c / group;
      return scales[book * (int64_t(1) << bits) + field(r, c)];
    }
    case qq::Grid::log2: {
      uint32_t f = field(r, c), m = f & ((1u << (bits - 1)) - 1);
      float lv = 0.0f;
      if (m != 0) {
        lv = std::ldexp(1.0f, -int(m - 1));
        if (f & (1u << (bits - 1)))
          lv = -lv;
      }
      return lv * scales[scaleIndex(r, c)];
    }
    case qq::Grid::uniform:
      break;
    }
    float d = float(code(r, c) - zeroPoint(r, c));
    return d * scales[scaleIndex(r, c)];
  }
  /// The whole weight, [rows, cols] row-major.
  std::vector<float> dequantize() const {
    std::vector<float> w(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        w[r * cols + c] = value(r, c);
    return w;
  }
};

struct Exporter {
  Exporter(ModuleOp module, const qwen::ONNXExportOptions &opts)
      : module(module), opts(opts) {}

  LogicalResult run(qwen::ONNXExportSummary &summary);

private:
  // --- source graph --------------------------------------------------------
  LogicalResult loadSource();
  const onnx::TensorProto *constantOf(const std::string &name) const;
  LogicalResult floatsOf(const onnx::TensorProto &t, std::vector<float> &out,
                         const std::string &what);
  std::string fresh(const std::string &base);
  std::string addInit(const std::string &base, int dtype,
                      const std::vector<int64_t> &dims, const void *data,
                      size_t bytes);
  onnx::NodeProto makeNode(const std::string &op,
                           const std::vector<std::string> &ins,
                           const std::vector<std::string> &outs,
                           const std::string &domain = "");
  void addIntAttr(onnx::NodeProto &n, const std::string &name, int64_t v);
  std::string scalarF32(const std::string &base, float v);

  // --- mapping -------------------------------------------------------------
  /// The source MatMul whose B the weight is (or rows [row0, row0 + rows)
  /// of, for a fused projection split by raising); -1 none, -2 bad shape.
  int findMatMul(Operation *op, StringRef weightName, int64_t rows,
                 int64_t cols, int64_t &row0);
  int findLogitsByOutput(Operation *op, int64_t rows, int64_t cols);

  // --- rewriting -----------------------------------------------------------
  FailureOr<QWeight> readQWeight(Operation *user, qq::WeightOp w);
  /// Records which MatMul (and which of its columns) a linear op is.
  LogicalResult exportLinear(Operation *op, Value weight, Value bias,
                             qq::ActivationAttr act);
  /// Rewrites one MatMul from the linear ops reading it.
  struct Part {
    Operation *op;
    Value weight, bias;
    qq::ActivationAttr act;
    int64_t row0, rows, cols;
    std::string name;
  };
  LogicalResult emitMatMul(int idx, std::vector<Part> &ps);
  LogicalResult exportEmbedding(Operation *op, Value table);
  LogicalResult exportGamma(qwen::RMSNormOp op);
  /// The [rows, cols] f32 (or DequantizeLinear) value of a tied table.
  FailureOr<std::string> tableValue(Operation *user, qq::WeightOp w);
  FailureOr<std::string> activation(Operation *op, int nodeIdx,
                                    const std::string &a,
                                    qq::ActivationAttr act);
  LogicalResult replaceConstantInput(Operation *op, int nodeIdx, int inputIdx,
                                     const std::vector<float> &values,
                                     const std::string &what);
  LogicalResult write(qwen::ONNXExportSummary &summary);

  ModuleOp module;
  const qwen::ONNXExportOptions &opts;
  qwen::WeightStoreCache stores;
  onnx::ModelProto model;
  onnx::GraphProto *graph = nullptr;
  int64_t opset = 0;
  std::unordered_map<std::string, int> inits, producer;
  std::unordered_map<std::string, std::vector<int>> consumers;
  std::set<std::string> names;
  std::vector<onnx::NodeProto> prologue;
  std::map<int, std::vector<onnx::NodeProto>> before, after;
  std::vector<onnx::TensorProto> newInits;
  std::set<int> claimed;
  std::map<int, std::vector<Part>> parts;
  /// Per IR linear op: the MatMul node it became and that node's original A.
  DenseMap<Operation *, std::pair<int, std::string>> linearNode;
  /// Tied tables: weight symbol -> [rows, cols] value name.
  std::map<std::string, std::string> tables;
  std::map<std::string, std::string> actCache;
  std::set<std::string> tiedRefs;
  qwen::ONNXExportSummary sum;
  unsigned counter = 0;
};

std::string refKey(SymbolRefAttr r) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << r;
  return s;
}

LogicalResult Exporter::loadSource() {
  auto buf = llvm::MemoryBuffer::getFile(opts.sourcePath, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/false);
  if (!buf)
    return module.emitError("cannot read --source '")
           << opts.sourcePath << "': " << buf.getError().message();
  if ((*buf)->getBufferSize() > size_t(INT32_MAX))
    return module.emitError("--source '")
           << opts.sourcePath << "' is over 2 GB; save it with external data";
  if (!model.ParseFromArray((*buf)->getBufferStart(),
                            int((*buf)->getBufferSize())))
    return module.emitError("--source '")
           << opts.sourcePath << "' is not an ONNX model";
  graph = model.mutable_graph();
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset = o.version();
  if (opset < 13)
    return module.emitError("--source '")
           << opts.sourcePath << "' has opset " << opset
           << "; the export needs opset 13 or later (per-axis "
              "DequantizeLinear)";
  // External data is read in: the output decides its own layout.
  SmallString<256> dir(opts.sourcePath);
  llvm::sys::path::remove_filename(dir);
  for (int i = 0; i < graph->initializer_size(); ++i) {
    onnx::TensorProto *t = graph->mutable_initializer(i);
    if (t->data_location() != onnx::TensorProto::EXTERNAL)
      continue;
    std::string location;
    uint64_t offset = 0, length = 0;
    bool hasLength = false;
    for (const auto &kv : t->external_data()) {
      if (kv.key() == "location")
        location = kv.value();
      else if (kv.key() == "offset")
        offset = std::strtoull(kv.value().c_str(), nullptr, 10);
      else if (kv.key() == "length")
        length = std::strtoull(kv.value().c_str(), nullptr, 10), hasLength = true;
    }
    SmallString<256> p(dir);
    llvm::sys::path::append(p, location);
    std::ifstream f(std::string(p), std::ios::binary);
    if (location.empty() || !f)
      return module.emitError("initializer '")
             << t->name() << "' of --source: cannot open external-data file '"
             << p << "'";
    if (!hasLength) {
      f.seekg(0, std::ios::end);
      length = uint64_t(f.tellg()) - offset;
    }
    std::string data(length, '\0');
    f.seekg(int64_t(offset));
    if (!f.read(data.data(), int64_t(length)))
      return module.emitError("initializer '")
             << t->name() << "' of --source: external-data file '" << p
             << "' is too short";
    t->set_raw_data(std::move(data));
    t->clear_external_data();
    t->set_data_location(onnx::TensorProto::DEFAULT);
  }
  for (const auto &n : graph->node())
    if (n.op_type() == "MatMulNBits" || n.op_type() == "GatherBlockQuantized")
      return module.emitError("--source '")
             << opts.sourcePath << "' is already quantized (node '" << n.name()
             << "' is " << n.op_type()
             << "): export a module compiled from a float model";
  for (int i = 0; i < graph->initializer_size(); ++i) {
    inits[graph->initializer(i).name()] = i;
    names.insert(graph->initializer(i).name());
  }
  for (const auto &in : graph->input())
    names.insert(in.name());
  for (int i = 0; i < graph->node_size(); ++i) {
    const onnx::NodeProto &n = graph->node(i);
    for (const auto &o : n.output()) {
      producer[o] = i;
      names.insert(o);
    }
    for (const auto &in : n.input())
      consumers[in].push_back(i);
    names.insert(n.name());
  }
  return success();
}

const onnx::TensorProto *Exporter::constantOf(const std::string &name) const {
  auto it = inits.find(name);
  if (it != inits.end())
    return &graph->initializer(it->second);
  auto p = producer.find(name);
  if (p == producer.end())
    return nullptr;
  const onnx::NodeProto &n = graph->node(p->second);
  if (n.op_type() != "Constant" || !n.domain().empty())
    return nullptr;
  for (const auto &a : n.attribute())
    if (a.name() == "value" && a.has_t())
      return &a.t();
  return nullptr;
}

int64_t numElements(const onnx::TensorProto &t) {
  int64_t n = 1;
  for (int64_t d : t.dims())
    n *= d;
  return n;
}

LogicalResult Exporter::floatsOf(const onnx::TensorProto &t,
                                 std::vector<float> &out,
                                 const std::string &what) {
  int64_t n = numElements(t);
  out.resize(size_t(n));
  if (t.data_type() != onnx::TensorProto::FLOAT)
    return module.emitError(what) << " '" << t.name()
                                  << "' of --source is not f32";
  if (t.has_raw_data()) {
    if (t.raw_data().size() != size_t(n) * 4)
      return module.emitError(what) << " '" << t.name()
                                    << "' of --source has malformed data";
    std::memcpy(out.data(), t.raw_data().data(), size_t(n) * 4);
  } else {
    if (t.float_data_size() != n)
      return module.emitError(what) << " '" << t.name()
                                    << "' of --source has malformed data";
    for (int64_t i = 0; i < n; ++i)
      out[i] = t.float_data(int(i));
  }
  return success();
}

std::string Exporter::fresh(const std::string &base) {
  std::string n = base;
  for (unsigned i = 1; names.count(n); ++i)
    n = base + "_" + std::to_string(i);
  names.insert(n);
  return n;
}

std::string Exporter::addInit(const std::string &base, int dtype,
                              const std::vector<int64_t> &dims,
                              const void *data, size_t bytes) {
  onnx::TensorProto t;
  t.set_name(fresh(base));
  t.set_data_type(dtype);
  for (int64_t d : dims)
    t.add_dims(d);
  t.set_raw_data(std::string(static_cast<const char *>(data), bytes));
  newInits.push_back(std::move(t));
  return newInits.back().name();
}

std::string Exporter::scalarF32(const std::string &base, float v) {
  return addInit(base, onnx::TensorProto::FLOAT, {}, &v, 4);
}

onnx::NodeProto Exporter::makeNode(const std::string &op,
                                   const std::vector<std::string> &ins,
                                   const std::vector<std::string> &outs,
                                   const std::string &domain) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(fresh("qwen_export/" + op + "_" + std::to_string(counter++)));
  if (!domain.empty())
    n.set_domain(domain);
  for (const auto &i : ins)
    n.add_input(i);
  for (const auto &o : outs)
    n.add_output(o);
  return n;
}

void Exporter::addIntAttr(onnx::NodeProto &n, const std::string &name,
                          int64_t v) {
  onnx::AttributeProto *a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

/// Strips the suffixes passes add to a weight's entry name (".smoothed2").
std::string baseName(StringRef name) {
  for (bool changed = true; changed;) {
    changed = false;
    for (StringRef suf : {".smoothed"}) {
      size_t p = name.rfind(suf);
      if (p == StringRef::npos)
        continue;
      StringRef rest = name.drop_front(p + suf.size());
      if (llvm::all_of(rest, llvm::isDigit)) {
        name = name.take_front(p);
        changed = true;
      }
    }
  }
  return name.str();
}

int Exporter::findMatMul(Operation *op, StringRef weightName, int64_t rows,
                         int64_t cols, int64_t &row0) {
  std::string base = baseName(weightName);
  auto dimsAre = [](const onnx::TensorProto *t, int64_t a, int64_t b) {
    return t && t->dims_size() == 2 && t->dims(0) == a && t->dims(1) == b;
  };
  std::vector<int> candidates;
  StringRef b(base);
  // `<init>.transposed.slice.<row>.<col>`: rows of a fused projection (QKV)
  // that raising split per head group.
  row0 = -1;
  size_t sp = b.rfind(".slice.");
  if (sp != StringRef::npos) {
    auto [r, c] = b.drop_front(sp + 7).split('.');
    int64_t rv, cv;
    if (!r.getAsInteger(10, rv) && !c.getAsInteger(10, cv)) {
      if (cv != 0)
        return -1;
      row0 = rv;
      b = b.take_front(sp);
    }
  }
  if (b.consume_back(".transposed")) {
    for (int i : consumers[b.str()]) {
      const onnx::NodeProto &n = graph->node(i);
      if (n.op_type() == "MatMul" && n.domain().empty() && n.input_size() == 2 &&
          n.input(1) == b.str())
        candidates.push_back(i);
    }
  } else if (row0 < 0) {
    // W [rows, cols] read through Transpose(W) (a tied LM head).
    for (int t : consumers[base]) {
      const onnx::NodeProto &tn = graph->node(t);
      if (tn.op_type() != "Transpose" || tn.input(0) != base)
        continue;
      for (int i : consumers[tn.output(0)])
        if (graph->node(i).op_type() == "MatMul" &&
            graph->node(i).input(1) == tn.output(0))
          candidates.push_back(i);
    }
  }
  for (int i : candidates) {
    if (claimed.count(i))
      continue;
    const onnx::NodeProto &n = graph->node(i);
    const onnx::TensorProto *t = constantOf(n.input(1));
    if (row0 >= 0) {
      if (!t || t->dims_size() != 2 || t->dims(0) != cols ||
          t->dims(1) < row0 + rows)
        return -2;
      return i;
    }
    row0 = 0;
    if (!t && n.input(1) != b.str()) {
      // Through a Transpose: the table is [rows, cols].
      if (!dimsAre(constantOf(base), rows, cols))
        return -2;
      return i;
    }
    if (!dimsAre(t, cols, rows))
      return -2;
    return i;
  }
  return -1;
}

int Exporter::findLogitsByOutput(Operation *op, int64_t rows, int64_t cols) {
  auto func = op->getParentOfType<func::FuncOp>();
  if (!func)
    return -1;
  Operation *ret = func.getBody().front().getTerminator();
  for (OpOperand &use : op->getResult(0).getUses()) {
    if (use.getOwner() != ret)
      continue;
    unsigned idx = use.getOperandNumber();
    if (int(idx) >= graph->output_size())
      return -1;
    auto p = producer.find(graph->output(int(idx)).name());
    if (p == producer.end())
      return -1;
    const onnx::NodeProto &n = graph->node(p->second);
    if (n.op_type() != "MatMul" || claimed.count(p->second))
      return -1;
    const onnx::TensorProto *t = constantOf(n.input(1));
    if (t && t->dims_size() == 2 && t->dims(0) == cols && t->dims(1) == rows)
      return p->second;
    return -1;
  }
  return -1;
}

FailureOr<QWeight> Exporter::readQWeight(Operation *user, qq::WeightOp w) {
  QWeight q;
  q.type = cast<qq::WeightType>(w.getType());
  q.s = q.type.getScheme();
  q.name = w.getRef().getLeafReference().getValue().str();
  q.rows = q.type.getRows();
  q.cols = q.type.getCols();
  q.bits = q.s.getBits();
  q.perRow = q.s.getScalesPerRow(q.cols);
  q.group = q.s.getGroupSize();
  q.gran = q.s.getGranularity() == qq::Granularity::tensor    ? 0
           : q.s.getGranularity() == qq::Granularity::channel ? 1
                                                             : 2;
  // 2:4 weights: ONNX (and onnxruntime) has no 2:4 kernel; the kept codes
  // are expanded below to dense codes with the grid's zero at the pruned
  // inputs, which every form (MatMulNBits, QDQ, f32) then writes exactly.
  bool sparse24 = q.s.getSparsity() == qq::Sparsity::s2_4;
  const uint8_t *mask = nullptr;
  int64_t maskBytes = 0;
  if (q.bits < 2 || q.bits > 8 || (q.gran == 2 && (q.group <= 0 ||
                                                   q.cols % q.group != 0)))
    return user->emitError("weight '")
               << q.name << "': unsupported scheme " << q.type,
           failure();
  SymbolRefAttr ref = w.getRef();
  const ws::WeightStoreReader *reader = stores.open(w, ref);
  if (!reader)
    return failure();
  for (const qwen::WeightComponent &c : qwen::getWeightComponents(q.type)) {
    const ws::Entry *e = stores.find(w, ref, c.suffix);
    if (!e)
      return failure();
    if (ArrayRef<int64_t>(e->shape) != ArrayRef<int64_t>(c.shape) ||
        !llvm::is_contained(c.dtypes, e->dtype))
      return w.emitError("store entry '")
                 << e->name << "' in '" << reader->path()
                 << "' does not match the weight's scheme " << q.type,
             failure();
    const void *data = reader->data(*e);
    int64_t n = e->numElements();
    if (c.suffix == ".codes") {
      q.codes = static_cast<const uint8_t *>(data);
      q.rowBytes = c.shape[1];
    } else if (c.suffix == ".scales" || c.suffix == ".codebook") {
      q.scales.resize(size_t(n));
      if (e->dtype == ws::DType::F32) {
        std::memcpy(q.scales.data(), data, size_t(n) * 4);
      } else {
        const uint16_t *h = static_cast<const uint16_t *>(data);
        for (int64_t i = 0; i < n; ++i)
          q.scales[i] = qwen::halfToFloat(h[i]);
      }
    } else if (c.suffix == ".zeros") {
      q.zeros.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i)
        q.zeros[i] = e->dtype == ws::DType::I8
                         ? int32_t(static_cast<const int8_t *>(data)[i])
                         : int32_t(static_cast<const uint8_t *>(data)[i]);
    } else if (c.suffix == ".mask") {
      mask = static_cast<const uint8_t *>(data);
      maskBytes = c.shape[1];
    }
  }
  if (sparse24) {
    auto get = [](const uint8_t *row, int64_t rowBytes, int64_t i, int64_t w) {
      uint32_t v = 0;
      for (int64_t k = 0; k < w; ++k) {
        int64_t bit = i * w + k;
        if (bit / 8 < rowBytes)
          v |= uint32_t(row[bit / 8] >> (bit % 8) & 1) << k;
      }
      return v;
    };
    int64_t dense = (q.cols * q.bits + 7) / 8;
    q.ownedCodes.assign(size_t(q.rows * dense), 0);
    uint32_t fieldMask = (1u << q.bits) - 1;
    for (int64_t r = 0; r < q.rows; ++r) {
      uint8_t *out = &q.ownedCodes[size_t(r * dense)];
      auto put = [&](int64_t c, uint32_t v) {
        for (int64_t k = 0; k < q.bits; ++k)
          if (v >> k & 1) {
            int64_t bit = c * q.bits + k;
            out[bit / 8] |= uint8_t(1u << (bit % 8));
          }
      };
      // The grid's zero first (0 for signed symmetric and log2, the
      // midpoint for unsigned symmetric, the zero point otherwise) ...
      for (int64_t c = 0; c < q.cols; ++c) {
        uint32_t z = 0;
        if (q.s.hasZeroPoints())
          z = uint32_t(q.zeros[size_t(q.scaleIndex(r, c))]) & fieldMask;
        else if (q.s.getGrid() == qq::Grid::uniform && !q.s.getIsSigned())
          z = 1u << (q.bits - 1);
        put(c, z);
      }
      // ... then the kept codes at their inputs.
      for (int64_t j = 0; j < q.cols / 2; ++j) {
        int64_t c = 4 * (j / 2) + get(mask + r * maskBytes, maskBytes, j, 2);
        uint32_t v = get(q.codes + r * q.rowBytes, q.rowBytes, j, q.bits);
        for (int64_t k = 0; k < q.bits; ++k) { // clear, then set
          int64_t bit = c * q.bits + k;
          out[bit / 8] &= uint8_t(~(1u << (bit % 8)));
        }
        put(c, v);
      }
    }
    q.rowBytes = dense;
    q.codes = q.ownedCodes.data();
  }
  return q;
}

/// How a quantized MatMul weight is written.
enum class Form { NBits, QDQ, F32 };

/// MatMulNBits' block size for a per-channel / per-tensor weight: K itself
/// when it is a power of two, else the largest power of two >= 16 dividing
/// K (the scale is repeated per block); 0 when there is none.
int64_t rowBlock(int64_t k) {
  if (isPow2(k))
    return k >= 16 ? k : 0;
  int64_t b = k & -k;
  return b >= 16 ? b : 0;
}

Form formOf(const QWeight &q, int64_t &blockSize, bool int8AsNBits) {
  blockSize = 0;
  if (q.s.getGrid() != qq::Grid::uniform)
    return Form::F32;
  if (q.bits == 8 && q.gran != 2 && !(int8AsNBits && rowBlock(q.cols)))
    return Form::QDQ;
  if (q.bits != 2 && q.bits != 4 && q.bits != 8)
    return Form::F32;
  int64_t bs = q.gran == 2 ? q.group : rowBlock(q.cols);
  if (!isPow2(bs) || bs < 16 || q.cols % bs != 0)
    return Form::F32;
  // Zero points must be representable as unsigned `bits`-bit values after
  // the shift that makes the codes unsigned.
  if (q.s.hasZeroPoints()) {
    int32_t shift = q.s.getIsSigned() ? 1 << (q.bits - 1) : 0;
    for (int32_t z : q.zeros)
      if (z + shift < 0 || z + shift >= (1 << q.bits))
        return Form::F32;
  }
  blockSize = bs;
  return Form::NBits;
}

/// Whether 8-bit codes and zero points fit DequantizeLinear's int8/uint8.
bool qdqZerosFit(const QWeight &q) {
  if (!q.s.hasZeroPoints())
    return true;
  for (int32_t z : q.zeros)
    if (q.s.getIsSigned() ? (z < -128 || z > 127) : (z < 0 || z > 255))
      return false;
  return true;
}

FailureOr<std::string> Exporter::activation(Operation *op, int nodeIdx,
                                            const std::string &a,
                                            qq::ActivationAttr act) {
  bool isStatic = act.getMode() == qq::ActMode::static_;
  float s = 0;
  if (isStatic) {
    quant::UniformQuantizedType st = act.getStaticType();
    if (act.getBits() != 8 || !st.isSigned() || st.getZeroPoint() != 0 ||
        !(st.getScale() > 0))
      return op->emitError("unsupported activation quantization ")
                 << act << " (only static symmetric int8 per tensor or "
                 << "dynamic int8 per token have an export)",
             failure();
    s = float(st.getScale());
  } else if (act.getBits() != 8 || !act.getPerToken()) {
    return op->emitError("unsupported activation quantization ")
               << act << " (only static symmetric int8 per tensor or "
               << "dynamic int8 per token have an export)",
           failure();
  }
  std::string key = a + (isStatic ? "|static|" + std::to_string(s) : "|dyn");
  auto it = actCache.find(key);
  if (it != actCache.end())
    return it->second;
  std::vector<onnx::NodeProto> nodes;
  std::string out;
  if (isStatic) {
    // clamp(roundeven(x / s), -127, 127) * s: the Clip keeps QuantizeLinear
    // (which saturates at -128) in the symmetric range.
    float hi = 127.0f * s;
    std::string lo = scalarF32(a + "_clip_lo", -hi), up = scalarF32(a + "_clip_hi", hi);
    std::string sc = scalarF32(a + "_scale", s);
    int8_t zero = 0;
    std::string zp = addInit(a + "_zero_point", onnx::TensorProto::INT8, {},
                             &zero, 1);
    std::string c = fresh(a + "_clipped"), q = fresh(a + "_quantized");
    out = fresh(a + "_dequantized");
    nodes.push_back(makeNode("Clip", {a, lo, up}, {c}));
    nodes.push_back(makeNode("QuantizeLinear", {c, sc, zp}, {q}));
    nodes.push_back(makeNode("DequantizeLinear", {q, sc, zp}, {out}));
    ++sum.staticActs;
  } else {
    // s = max|x| / 127 per row; q = clamp(roundeven(x / s), -127, 127)
    // (0 where s == 0); x' = q * s. ONNX's Round is half to even.
    std::string c127 = scalarF32(a + "_127", 127.0f),
                cm127 = scalarF32(a + "_m127", -127.0f),
                c0 = scalarF32(a + "_0", 0.0f);
    std::string ab = fresh(a + "_abs"), mx = fresh(a + "_absmax"),
                sc = fresh(a + "_scale"), d = fresh(a + "_div"),
                z = fresh(a + "_scale_is_zero"), w = fresh(a + "_div0"),
                r = fresh(a + "_round"), cl = fresh(a + "_codes");
    out = fresh(a + "_fakequant");
    nodes.push_back(makeNode("Abs", {a}, {ab}));
    if (opset >= 18) {
      int64_t axis = -1;
      std::string ax = addInit(a + "_axes", onnx::TensorProto::INT64, {1},
                               &axis, 8);
      nodes.push_back(makeNode("ReduceMax", {ab, ax}, {mx}));
    } else {
      nodes.push_back(makeNode("ReduceMax", {ab}, {mx}));
      onnx::AttributeProto *at = nodes.back().add_attribute();
      at->set_name("axes");
      at->set_type(onnx::AttributeProto::INTS);
      at->add_ints(-1);
    }
    addIntAttr(nodes.back(), "keepdims", 1);
    nodes.push_back(makeNode("Div", {mx, c127}, {sc}));
    nodes.push_back(makeNode("Div", {a, sc}, {d}));
    nodes.push_back(makeNode("Equal", {sc, c0}, {z}));
    nodes.push_back(makeNode("Where", {z, c0, d}, {w}));
    nodes.push_back(makeNode("Round", {w}, {r}));
    nodes.push_back(makeNode("Clip", {r, cm127, c127}, {cl}));
    nodes.push_back(makeNode("Mul", {cl, sc}, {out}));
    ++sum.dynamicActs;
  }
  // Right after A's producer, so every MatMul reading A can use it.
  auto p = producer.find(a);
  auto &dst = p == producer.end() ? prologue : after[p->second];
  for (auto &n : nodes)
    dst.push_back(std::move(n));
  actCache[key] = out;
  return out;
}

LogicalResult Exporter::replaceConstantInput(Operation *op, int nodeIdx,
                                             int inputIdx,
                                             const std::vector<float> &values,
                                             const std::string &what) {
  onnx::NodeProto *n = graph->mutable_node(nodeIdx);
  const onnx::TensorProto *t = constantOf(n->input(inputIdx));
  std::vector<float> old;
  if (!t || failed(floatsOf(*t, old, what)))
    return failure();
  if (old.size() != values.size())
    return op->emitError(what) << " '" << n->input(inputIdx) << "' of node '"
                               << n->name() << "' has " << old.size()
                               << " elements in --source, the module's has "
                               << values.size();
  if (std::memcmp(old.data(), values.data(), values.size() * 4) == 0)
    return success();
  std::vector<int64_t> dims(t->dims().begin(), t->dims().end());
  n->set_input(inputIdx, addInit(n->input(inputIdx) + ".exported",
                                 onnx::TensorProto::FLOAT, dims, values.data(),
                                 values.size() * 4));
  ++sum.floatsReplaced;
  return success();
}

FailureOr<std::string> Exporter::tableValue(Operation *user, qq::WeightOp w) {
  std::string key = refKey(w.getRef());
  auto it = tables.find(key);
  if (it != tables.end())
    return it->second;
  FailureOr<QWeight> q = readQWeight(user, w);
  if (failed(q))
    return failure();
  std::string out;
  if (q->s.getGrid() == qq::Grid::uniform && q->bits == 8 && q->gran != 2 &&
      qdqZerosFit(*q)) {
    // int8 [rows, cols] + DequantizeLinear(axis 0).
    int dt = q->s.getIsSigned() ? onnx::TensorProto::INT8
                                : onnx::TensorProto::UINT8;
    std::string x = addInit(q->name + "_quantized", dt, {q->rows, q->cols},
                            q->codes, size_t(q->rows * q->cols));
    std::vector<std::string> ins{x};
    if (q->gran == 1) {
      ins.push_back(addInit(q->name + "_scale", onnx::TensorProto::FLOAT,
                            {q->rows}, q->scales.data(), q->scales.size() * 4));
    } else {
      ins.push_back(scalarF32(q->name + "_scale", q->scales[0]));
    }
    if (q->s.hasZeroPoints() || !q->s.getIsSigned()) {
      std::vector<uint8_t> zp;
      for (int64_t r = 0; r < (q->gran == 1 ? q->rows : 1); ++r)
        zp.push_back(uint8_t(q->zeroPoint(r, 0)));
      ins.push_back(addInit(q->name + "_zero_point", dt,
                            q->gran == 1 ? std::vector<int64_t>{q->rows}
                                         : std::vector<int64_t>{},
                            zp.data(), zp.size()));
    }
    out = fresh(q->name + "_dequantized");
    prologue.push_back(makeNode("DequantizeLinear", ins, {out}));
    if (q->gran == 1)
      addIntAttr(prologue.back(), "axis", 0);
    ++sum.dequantizeLinear;
  } else {
    std::vector<float> v = q->dequantize();
    out = addInit(q->name + "_dequantized", onnx::TensorProto::FLOAT,
                  {q->rows, q->cols}, v.data(), v.size() * 4);
    ++sum.dequantizedF32;
  }
  if (opts.verbose)
    llvm::errs() << "qwen-translate: table '" << q->name << "' -> " << out
                 << "\n";
  tables[key] = out;
  return out;
}

LogicalResult Exporter::exportLinear(Operation *op, Value weight, Value bias,
                                     qq::ActivationAttr act) {
  bool isLogits = isa<qq::LogitsOp, qwen::LogitsOp>(op);
  // The 16-bit input roundings have no export yet; without them the model
  // would compute something else than the bundle.
  if (qq::hasBf16Input(op) || qq::hasI16Input(op))
    return op->emitError("'")
           << op->getName() << "' with "
           << (qq::hasBf16Input(op) ? "bf16_input" : "i16_input")
           << " has no ONNX export (the input rounding of the -bf16 / -i16 "
              "recipes; export the recipe without the suffix)";
  auto qw = weight.getDefiningOp<qq::WeightOp>();
  auto fw = weight.getDefiningOp<qwen::WeightOp>();
  Part part{op, weight, bias, act, 0, 0, 0, ""};
  if (qw) {
    auto t = cast<qq::WeightType>(qw.getType());
    part.rows = t.getRows();
    part.cols = t.getCols();
    part.name = qw.getRef().getLeafReference().getValue().str();
  } else {
    auto t = dyn_cast<RankedTensorType>(weight.getType());
    if (!t || t.getRank() != 2 || !t.hasStaticShape())
      return op->emitError("a linear op's weight is not a static 2-D tensor");
    part.rows = t.getDimSize(0);
    part.cols = t.getDimSize(1);
    // An inline constant is the source's own (passes that change weights
    // write them to a store), nothing to export.
    if (!fw)
      return success();
    part.name = fw.getRef().getLeafReference().getValue().str();
  }
  int64_t row0 = 0;
  int idx = findMatMul(op, part.name, part.rows, part.cols, row0);
  if (idx == -1 && isLogits) {
    idx = findLogitsByOutput(op, part.rows, part.cols);
    row0 = 0;
  }
  if (idx == -2)
    return op->emitError("weight '")
           << part.name << "' (" << part.rows << "x" << part.cols
           << ") does not match its initializer's shape in --source '"
           << opts.sourcePath << "'";
  if (idx < 0)
    return op->emitError("weight '")
           << part.name << "': no MatMul reading initializer '"
           << StringRef(baseName(part.name)).drop_back(
                  StringRef(part.name).ends_with(".transposed") ? 11 : 0)
           << "' in --source '" << opts.sourcePath << "'";
  part.row0 = row0;
  if (StringRef(baseName(part.name)).rfind(".slice.") == StringRef::npos)
    claimed.insert(idx);
  parts[idx].push_back(part);
  linearNode[op] = {idx, graph->node(idx).input(0)};
  return success();
}

/// Rows [row0, row0 + rows) of a merged weight taken from `q`.
static void appendRows(QWeight &m, const QWeight &q) {
  m.ownedCodes.insert(m.ownedCodes.end(), q.codes, q.codes + q.rows * q.rowBytes);
  m.scales.insert(m.scales.end(), q.scales.begin(), q.scales.end());
  m.zeros.insert(m.zeros.end(), q.zeros.begin(), q.zeros.end());
  m.rows += q.rows;
}

LogicalResult Exporter::emitMatMul(int idx, std::vector<Part> &ps) {
  llvm::sort(ps, [](const Part &x, const Part &y) { return x.row0 < y.row0; });
  onnx::NodeProto *m = graph->mutable_node(idx);
  std::string a = m->input(0), y = m->output(0), b = m->input(1);
  Operation *op = ps[0].op;
  int64_t cols = ps[0].cols, rows = 0;
  for (const Part &p : ps) {
    if (p.row0 != rows || p.cols != cols)
      return p.op->emitError("weight '")
             << p.name << "': the linear ops reading MatMul '" << m->name()
             << "' of --source do not cover its columns once each";
    if (p.act != ps[0].act)
      return p.op->emitError("weight '")
             << p.name << "': the linear ops reading MatMul '" << m->name()
             << "' quantize their input differently";
    rows += p.rows;
  }
  if (const onnx::TensorProto *t = constantOf(b);
      ps.size() > 1 && (!t || t->dims(1) != rows))
    return op->emitError("weight '")
           << ps[0].name << "': the linear ops reading MatMul '" << m->name()
           << "' of --source do not cover its columns once each";

  // The activation first (it only rewires A).
  std::string aIn = a;
  if (ps[0].act) {
    FailureOr<std::string> na = activation(op, idx, a, ps[0].act);
    if (failed(na))
      return failure();
    aIn = *na;
  }
  m->set_input(0, aIn);

  auto qwOf = [](const Part &p) { return p.weight.getDefiningOp<qq::WeightOp>(); };
  bool allQuant = llvm::all_of(ps, [&](const Part &p) { return bool(qwOf(p)); });
  bool sameScheme = allQuant && llvm::all_of(ps, [&](const Part &p) {
    return cast<qq::WeightType>(qwOf(p).getType()).getScheme() ==
           cast<qq::WeightType>(qwOf(ps[0]).getType()).getScheme();
  });
  auto writeF32 = [&](const std::vector<float> &w) {
    std::vector<float> kn(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        kn[c * rows + r] = w[r * cols + c];
    m->set_input(1, addInit(b + "_dequantized", onnx::TensorProto::FLOAT,
                            {cols, rows}, kn.data(), kn.size() * 4));
  };

  if (ps.size() == 1 && allQuant &&
      tiedRefs.count(refKey(qwOf(ps[0]).getRef()))) {
    // One table for the embedding and the LM head: Transpose of it.
    FailureOr<std::string> tv = tableValue(op, qwOf(ps[0]));
    if (failed(tv))
      return failure();
    std::string tr = fresh(*tv + "_transposed");
    prologue.push_back(makeNode("Transpose", {*tv}, {tr}));
    onnx::AttributeProto *at = prologue.back().add_attribute();
    at->set_name("perm");
    at->set_type(onnx::AttributeProto::INTS);
    at->add_ints(1);
    at->add_ints(0);
    m->set_input(1, tr);
  } else if (!allQuant || !sameScheme) {
    // Float weights (layers kept at f32), or parts of a fused projection
    // with different schemes: the f32 weight, written only if it changed.
    std::vector<float> w;
    w.reserve(size_t(rows * cols));
    bool anyQuant = false;
    for (const Part &p : ps) {
      std::vector<float> pw;
      if (auto qw = qwOf(p)) {
        FailureOr<QWeight> q = readQWeight(p.op, qw);
        if (failed(q))
          return failure();
        pw = q->dequantize();
        anyQuant = true;
        ++sum.dequantizedF32;
      } else if (failed(qwen::readFloatValue(stores, p.op, p.weight,
                                             p.rows * p.cols, pw))) {
        return failure();
      }
      w.insert(w.end(), pw.begin(), pw.end());
    }
    const onnx::TensorProto *t = constantOf(b);
    std::vector<float> old;
    if (!t)
      return op->emitError("weight '")
             << ps[0].name << "': MatMul '" << m->name()
             << "' of --source does not read an initializer";
    if (failed(floatsOf(*t, old, "initializer")))
      return failure();
    std::vector<float> kn(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        kn[c * rows + r] = w[r * cols + c];
    if (anyQuant || old.size() != kn.size() ||
        std::memcmp(old.data(), kn.data(), kn.size() * 4) != 0) {
      writeF32(w);
      if (!anyQuant)
        ++sum.floatsReplaced;
    }
  } else {
    // Quantized, one scheme: the parts' rows concatenated.
    QWeight q;
    for (const Part &p : ps) {
      FailureOr<QWeight> pq = readQWeight(p.op, qwOf(p));
      if (failed(pq))
        return failure();
      if (ps.size() == 1) {
        q = std::move(*pq);
        if (!q.ownedCodes.empty()) // expanded 2:4 codes
          q.codes = q.ownedCodes.data();
        break;
      }
      if (q.rows == 0) {
        q = *pq;
        q.rows = 0;
        q.scales.clear();
        q.zeros.clear();
        q.ownedCodes.clear();
        q.name = b;
      }
      if (pq->gran == 0) { // one scale per part: per channel when merged
        pq->scales.assign(size_t(pq->rows), pq->scales[0]);
        if (!pq->zeros.empty())
          pq->zeros.assign(size_t(pq->rows), pq->zeros[0]);
      }
      appendRows(q, *pq);
    }
    if (ps.size() > 1) {
      if (q.gran == 0)
        q.gran = 1, q.perRow = 1;
      q.codes = q.ownedCodes.data();
    }
    int64_t bs = 0;
    Form form = formOf(q, bs, opts.int8WeightsAsNBits);
    if (form == Form::QDQ && !qdqZerosFit(q))
      form = Form::F32;
    std::string what;
    if (form == Form::NBits) {
      // B [N, K/bs, bs*bits/8]: the row-packed codes as they are (blocks of
      // >= 16 codes end on a byte), signed codes shifted to unsigned by
      // flipping each field's top bit (c + 2^(b-1) mod 2^b).
      int64_t nb = cols / bs, blob = bs * q.bits / 8;
      std::vector<uint8_t> packed(q.codes, q.codes + rows * q.rowBytes);
      if (q.s.getIsSigned()) {
        uint8_t mask = q.bits == 8 ? 0x80 : q.bits == 4 ? 0x88 : 0xAA;
        for (uint8_t &v : packed)
          v ^= mask;
      }
      std::string bq = addInit(b + "_q" + std::to_string(q.bits),
                               onnx::TensorProto::UINT8, {rows, nb, blob},
                               packed.data(), packed.size());
      std::vector<float> sc(size_t(rows * nb));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < nb; ++g)
          sc[r * nb + g] = q.scales[q.scaleIndex(r, g * bs)];
      std::string scales = addInit(b + "_scales", onnx::TensorProto::FLOAT,
                                   {rows * nb}, sc.data(), sc.size() * 4);
      std::vector<std::string> ins{aIn, bq, scales};
      if (q.s.hasZeroPoints()) {
        int64_t zb = (nb * q.bits + 7) / 8;
        std::vector<uint8_t> zp(size_t(rows * zb), 0);
        int32_t shift = q.s.getIsSigned() ? 1 << (q.bits - 1) : 0;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < nb; ++g) {
            uint32_t z = uint32_t(q.zeroPoint(r, g * bs) + shift);
            int64_t bit = g * q.bits;
            zp[r * zb + bit / 8] |= uint8_t(z << (bit % 8));
          }
        ins.push_back(addInit(b + "_zero_points", onnx::TensorProto::UINT8,
                              {rows * zb}, zp.data(), zp.size()));
      }
      m->set_op_type("MatMulNBits");
      m->set_domain("com.microsoft");
      m->clear_input();
      for (auto &i : ins)
        m->add_input(i);
      m->clear_attribute();
      addIntAttr(*m, "K", cols);
      addIntAttr(*m, "N", rows);
      addIntAttr(*m, "bits", q.bits);
      addIntAttr(*m, "block_size", bs);
      if (opts.accuracyLevel > 0)
        addIntAttr(*m, "accuracy_level", opts.accuracyLevel);
      ++sum.matMulNBits;
      what = "MatMulNBits bits=" + std::to_string(q.bits) +
             " block_size=" + std::to_string(bs);
    } else if (form == Form::QDQ) {
      // int8 [K, N] + DequantizeLinear(axis 1) -> MatMul.
      std::vector<uint8_t> kn(size_t(rows * cols));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          kn[c * rows + r] = q.codes[r * q.rowBytes + c];
      int dt = q.s.getIsSigned() ? onnx::TensorProto::INT8
                                 : onnx::TensorProto::UINT8;
      std::string x = addInit(b + "_quantized", dt, {cols, rows}, kn.data(),
                              kn.size());
      std::vector<std::string> ins{x};
      if (q.gran == 1)
        ins.push_back(addInit(b + "_scale", onnx::TensorProto::FLOAT, {rows},
                              q.scales.data(), q.scales.size() * 4));
      else
        ins.push_back(scalarF32(b + "_scale", q.scales[0]));
      if (q.s.hasZeroPoints() || !q.s.getIsSigned()) {
        std::vector<uint8_t> zp;
        for (int64_t r = 0; r < (q.gran == 1 ? rows : 1); ++r)
          zp.push_back(uint8_t(q.zeroPoint(r, 0)));
        ins.push_back(addInit(b + "_zero_point", dt,
                              q.gran == 1 ? std::vector<int64_t>{rows}
                                          : std::vector<int64_t>{},
                              zp.data(), zp.size()));
      }
      std::string dq = fresh(b + "_dequantized");
      prologue.push_back(makeNode("DequantizeLinear", ins, {dq}));
      if (q.gran == 1)
        addIntAttr(prologue.back(), "axis", 1);
      m->set_input(1, dq);
      ++sum.dequantizeLinear;
      what = "DequantizeLinear int8";
    } else {
      writeF32(q.dequantize());
      ++sum.dequantizedF32;
      what = "dequantized f32";
    }
    if (opts.verbose)
      llvm::errs() << "qwen-translate: " << m->name() << " (" << q.type
                   << (ps.size() > 1 ? ", " + std::to_string(ps.size()) +
                                           " parts"
                                     : std::string())
                   << ") -> " << what << "\n";
  }

  // The bias: the Add after the MatMul gets the module's values (a part
  // without a bias keeps the source's, or 0).
  if (llvm::none_of(ps, [](const Part &p) { return bool(p.bias); }))
    return success();
  int addIdx = -1, addOther = 0;
  std::vector<float> bv(size_t(rows), 0.0f);
  for (int ci : consumers[y]) {
    const onnx::NodeProto &n = graph->node(ci);
    if (n.op_type() != "Add" || !n.domain().empty() || n.input_size() != 2)
      continue;
    int other = n.input(0) == y ? 1 : 0;
    const onnx::TensorProto *t = constantOf(n.input(other));
    if (!t || numElements(*t) != rows)
      continue;
    if (failed(floatsOf(*t, bv, "bias")))
      return failure();
    addIdx = ci;
    addOther = other;
    break;
  }
  for (const Part &p : ps) {
    if (!p.bias)
      continue;
    std::vector<float> pb;
    if (failed(qwen::readFloatValue(stores, p.op, p.bias, p.rows, pb)))
      return failure();
    std::copy(pb.begin(), pb.end(), bv.begin() + p.row0);
  }
  if (addIdx >= 0)
    return replaceConstantInput(op, addIdx, addOther, bv, "bias");
  // No Add in the source (bias correction gave this linear a bias).
  std::string yIn = fresh(y + "_nobias");
  m->set_output(0, yIn);
  std::string bn = addInit(b + "_bias", onnx::TensorProto::FLOAT, {rows},
                           bv.data(), bv.size() * 4);
  after[idx].push_back(makeNode("Add", {yIn, bn}, {y}));
  ++sum.floatsReplaced;
  return success();
}

LogicalResult Exporter::exportEmbedding(Operation *op, Value table) {
  auto qw = table.getDefiningOp<qq::WeightOp>();
  auto fw = table.getDefiningOp<qwen::WeightOp>();
  if (!qw && !fw)
    return success(); // an inline constant: the source's own
  std::string wname = (qw ? qw.getRef() : fw.getRef())
                          .getLeafReference()
                          .getValue()
                          .str();
  std::string base = baseName(wname);
  int64_t rows, cols;
  if (qw) {
    rows = cast<qq::WeightType>(qw.getType()).getRows();
    cols = cast<qq::WeightType>(qw.getType()).getCols();
  } else {
    auto t = dyn_cast<RankedTensorType>(table.getType());
    if (!t || t.getRank() != 2 || !t.hasStaticShape())
      return op->emitError("embedding table '") << wname << "' is not 2-D";
    rows = t.getDimSize(0);
    cols = t.getDimSize(1);
  }
  auto dimsAre = [](const onnx::TensorProto *t, int64_t a, int64_t b) {
    return t && t->dims_size() == 2 && t->dims(0) == a && t->dims(1) == b;
  };
  // The Gathers reading the table: the initializer itself, or (an entry
  // named `<init>.transposed`) a Transpose of it.
  std::vector<int> gathers;
  const onnx::TensorProto *src = nullptr;
  StringRef b(base);
  bool transposed = b.consume_back(".transposed");
  std::vector<std::string> tables;
  if (!transposed) {
    tables.push_back(base);
    src = constantOf(base);
  } else {
    src = constantOf(b.str());
    for (int t : consumers[b.str()]) {
      const onnx::NodeProto &tn = graph->node(t);
      if (tn.op_type() == "Transpose" && tn.input(0) == b.str())
        tables.push_back(tn.output(0));
    }
  }
  for (const std::string &tname : tables)
    for (int i : consumers[tname])
      if (graph->node(i).op_type() == "Gather" &&
          graph->node(i).input(0) == tname)
        gathers.push_back(i);
  if (src && !(transposed ? dimsAre(src, cols, rows) : dimsAre(src, rows, cols)))
    return op->emitError("embedding table '")
           << base << "' (" << rows << "x" << cols
           << ") does not match its initializer's shape in --source '"
           << opts.sourcePath << "'";
  if (gathers.empty()) {
    // By the ids: a Gather of the graph input the op reads, from a
    // [rows, cols] constant (a table the compiler tied to the LM head).
    Value ids = op->getOperand(0);
    auto arg = dyn_cast<BlockArgument>(ids);
    auto func = arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp())
                    : func::FuncOp();
    auto name = func ? func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                         "onnx.name")
                     : StringAttr();
    if (name)
      for (int i : consumers[name.str()]) {
        const onnx::NodeProto &n = graph->node(i);
        if (n.op_type() == "Gather" && n.input_size() == 2 &&
            n.input(1) == name.str() && dimsAre(constantOf(n.input(0)), rows, cols))
          gathers.push_back(i);
      }
  }
  if (gathers.empty())
    return op->emitError("embedding table '")
           << base << "': no Gather reads it in --source '" << opts.sourcePath
           << "'";
  if (!src)
    src = constantOf(graph->node(gathers[0]).input(0));
  std::string v;
  if (qw) {
    FailureOr<std::string> tv = tableValue(op, qw);
    if (failed(tv))
      return failure();
    v = *tv;
  } else {
    std::vector<float> w, old;
    if (failed(qwen::readFloatValue(stores, op, table, rows * cols, w)))
      return failure();
    if (src && !transposed && succeeded(floatsOf(*src, old, "initializer")) &&
        old.size() == w.size() &&
        std::memcmp(w.data(), old.data(), w.size() * 4) == 0)
      return success();
    v = addInit(base + ".exported", onnx::TensorProto::FLOAT, {rows, cols},
                w.data(), w.size() * 4);
    ++sum.floatsReplaced;
  }
  for (int i : gathers)
    graph->mutable_node(i)->set_input(0, v);
  return success();
}

LogicalResult Exporter::exportGamma(qwen::RMSNormOp op) {
  Value gamma = op.getWeight();
  auto gt = dyn_cast<RankedTensorType>(gamma.getType());
  if (!gt || !gt.hasStaticShape())
    return op.emitError("rms_norm gamma without a static shape");
  int64_t n = gt.getNumElements();
  std::vector<float> g;
  if (failed(qwen::readFloatValue(stores, op, gamma, n, g)))
    return failure();
  // Located through a linear reading the norm: its MatMul's A is
  // Mul(x, gamma) in the source.
  for (Operation *user : op->getResult(0).getUsers()) {
    auto it = linearNode.find(user);
    if (it == linearNode.end())
      continue;
    auto p = producer.find(it->second.second);
    if (p == producer.end())
      continue;
    const onnx::NodeProto &pn = graph->node(p->second);
    // The decomposed norm's last Mul, or a fused norm's scale input.
    std::vector<int> slots;
    if (pn.op_type() == "Mul" && pn.input_size() == 2)
      slots = {0, 1};
    else if ((pn.op_type() == "SimplifiedLayerNormalization" ||
              pn.op_type() == "RMSNormalization") &&
             pn.input_size() >= 2 && pn.output(0) == it->second.second)
      slots = {1};
    else if (pn.op_type() == "SkipSimplifiedLayerNormalization" &&
             pn.input_size() >= 3 && pn.output(0) == it->second.second)
      slots = {2};
    for (int k : slots) {
      const onnx::TensorProto *t = constantOf(pn.input(k));
      if (t && numElements(*t) == n)
        return replaceConstantInput(op, p->second, k, g, "rms_norm gamma");
    }
  }
  // Otherwise by name: an unchanged gamma is the source's initializer.
  auto w = gamma.getDefiningOp<qwen::WeightOp>();
  if (!w)
    return success(); // an inline constant: the source's own
  std::string name = w.getRef().getLeafReference().getValue().str();
  if (const onnx::TensorProto *t = constantOf(name)) {
    std::vector<float> old;
    if (failed(floatsOf(*t, old, "rms_norm gamma")))
      return failure();
    if (old.size() == g.size() &&
        std::memcmp(old.data(), g.data(), g.size() * 4) == 0)
      return success();
  }
  return op.emitError("rms_norm gamma '")
         << name << "' differs from --source '" << opts.sourcePath
         << "' and no Mul of the source could be found to carry it";
}

LogicalResult Exporter::write(qwen::ONNXExportSummary &summary) {
  // Assemble the node list: prologue (weight dequantization, initializers
  // only), then each node with what goes before / after it.
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (auto &n : prologue)
    *nodes.Add() = std::move(n);
  for (int i = 0; i < graph->node_size(); ++i) {
    if (auto it = before.find(i); it != before.end())
      for (auto &n : it->second)
        *nodes.Add() = std::move(n);
    *nodes.Add() = std::move(*graph->mutable_node(i));
    if (auto it = after.find(i); it != after.end())
      for (auto &n : it->second)
        *nodes.Add() = std::move(n);
  }
  // Drop nodes nothing reads any more (the source's Transpose of a replaced
  // table, Constants of replaced biases), then unread initializers.
  std::set<std::string> outputs;
  for (const auto &o : graph->output())
    outputs.insert(o.name());
  std::function<void(const onnx::GraphProto &, std::multiset<std::string> &)>
      subgraphInputs = [&](const onnx::GraphProto &g,
                           std::multiset<std::string> &used) {
        for (const auto &n : g.node()) {
          for (const auto &in : n.input())
            used.insert(in);
          for (const auto &a : n.attribute()) {
            if (a.has_g())
              subgraphInputs(a.g(), used);
            for (const auto &sg : a.graphs())
              subgraphInputs(sg, used);
          }
        }
      };
  std::vector<bool> live(size_t(nodes.size()), true);
  for (bool changed = true; changed;) {
    changed = false;
    std::multiset<std::string> used;
    for (int i = 0; i < nodes.size(); ++i) {
      if (!live[i])
        continue;
      for (const auto &in : nodes[i].input())
        used.insert(in);
      for (const auto &a : nodes[i].attribute()) {
        if (a.has_g())
          subgraphInputs(a.g(), used);
        for (const auto &sg : a.graphs())
          subgraphInputs(sg, used);
      }
    }
    for (int i = 0; i < nodes.size(); ++i) {
      if (!live[i])
        continue;
      bool read = false;
      for (const auto &o : nodes[i].output())
        read |= o.empty() ? false : (used.count(o) || outputs.count(o));
      if (!read) {
        live[i] = false;
        changed = true;
      }
    }
  }
  std::set<std::string> used;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
  for (int i = 0; i < nodes.size(); ++i)
    if (live[i]) {
      for (const auto &in : nodes[i].input())
        used.insert(in);
      std::multiset<std::string> sub;
      for (const auto &a : nodes[i].attribute()) {
        if (a.has_g())
          subgraphInputs(a.g(), sub);
        for (const auto &sg : a.graphs())
          subgraphInputs(sg, sub);
      }
      used.insert(sub.begin(), sub.end());
      *kept.Add() = std::move(nodes[i]);
    }
  graph->mutable_node()->Swap(&kept);
  google::protobuf::RepeatedPtrField<onnx::TensorProto> initializers;
  for (auto &t : *graph->mutable_initializer())
    if (used.count(t.name()) || outputs.count(t.name()))
      *initializers.Add() = std::move(t);
  for (auto &t : newInits)
    if (used.count(t.name()))
      *initializers.Add() = std::move(t);
  graph->mutable_initializer()->Swap(&initializers);
  // Inputs that were initializers (IR < 4 style) and are gone.
  {
    std::set<std::string> initNames;
    for (const auto &t : graph->initializer())
      initNames.insert(t.name());
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> ins;
    for (auto &in : *graph->mutable_input())
      if (used.count(in.name()) || initNames.count(in.name()) ||
          !inits.count(in.name()))
        *ins.Add() = std::move(in);
    graph->mutable_input()->Swap(&ins);
  }
  if (sum.matMulNBits) {
    bool has = false;
    for (const auto &o : model.opset_import())
      has |= o.domain() == "com.microsoft";
    if (!has) {
      auto *o = model.add_opset_import();
      o->set_domain("com.microsoft");
      o->set_version(1);
    }
  }
  if (model.ir_version() < 7)
    model.set_ir_version(7);

  // External data past the threshold.
  uint64_t total = 0;
  for (const auto &t : graph->initializer())
    total += t.raw_data().size();
  std::string tmp = opts.outputPath + ".tmp";
  std::string dataPath = opts.outputPath + ".data", dataTmp = dataPath + ".tmp";
  bool external = total > opts.externalDataThreshold;
  auto fail = [&](const Twine &msg) {
    llvm::sys::fs::remove(tmp);
    llvm::sys::fs::remove(dataTmp);
    return module.emitError(msg);
  };
  if (external) {
    std::ofstream df(dataTmp, std::ios::binary | std::ios::trunc);
    if (!df)
      return fail("cannot write '" + dataTmp + "'");
    uint64_t off = 0;
    std::string loc = llvm::sys::path::filename(dataPath).str();
    for (auto &t : *graph->mutable_initializer()) {
      if (t.raw_data().size() < 1024)
        continue;
      uint64_t pad = (4096 - off % 4096) % 4096;
      std::string zeros(pad, '\0');
      df.write(zeros.data(), int64_t(pad));
      off += pad;
      df.write(t.raw_data().data(), int64_t(t.raw_data().size()));
      uint64_t len = t.raw_data().size();
      t.clear_raw_data();
      t.set_data_location(onnx::TensorProto::EXTERNAL);
      auto add = [&](const std::string &k, const std::string &v) {
        auto *e = t.add_external_data();
        e->set_key(k);
        e->set_value(v);
      };
      add("location", loc);
      add("offset", std::to_string(off));
      add("length", std::to_string(len));
      off += len;
    }
    df.close();
    if (!df)
      return fail("cannot write '" + dataTmp + "'");
  }
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !model.SerializeToOstream(&f))
      return fail("cannot write '" + tmp + "'");
    f.close();
    if (!f)
      return fail("cannot write '" + tmp + "'");
  }
  if (external) {
    if (std::error_code ec = llvm::sys::fs::rename(dataTmp, dataPath))
      return fail("cannot rename '" + dataTmp + "': " + ec.message());
  } else {
    llvm::sys::fs::remove(dataPath);
  }
  if (std::error_code ec = llvm::sys::fs::rename(tmp, opts.outputPath))
    return fail("cannot rename '" + tmp + "': " + ec.message());
  sum.externalData = external;
  summary = sum;
  return success();
}

LogicalResult Exporter::run(qwen::ONNXExportSummary &summary) {
  if (opts.outputPath.empty() || opts.outputPath == "-")
    return module.emitError("--export-onnx needs an output file (-o out.onnx)");
  if (opts.sourcePath.empty())
    return module.emitError(
        "--export-onnx needs --source: the ONNX model the module was "
        "compiled from");
  // Unsupported ops first, before anything is read.
  WalkResult bad = module.walk([&](Operation *op) {
    if (isa<qq::IntLinearOp, qq::QuantizeOp, qq::DequantizeOp,
            qq::RequantizeOp, qq::LookupOp, qq::IntMulOp, qq::IntRMSNormOp,
            qq::DynamicQuantizeOp, qq::ObserveOp, qq::DequantizeWeightOp,
            qq::QLinearOp, qq::RMSNormQuantizeOp, qq::SiluMulQuantizeOp>(
            op)) {
      op->emitError("'") << op->getName()
                         << "' has no ONNX export (integer-only and "
                            "instrumented modules cannot be exported; export "
                            "the module before --qwen-integer-only)";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (bad.wasInterrupted())
    return failure();
  if (failed(loadSource()))
    return failure();
  // Tables read by both an embedding and the LM head.
  std::map<std::string, int> uses;
  module.walk([&](Operation *op) {
    Value w;
    if (auto e = dyn_cast<qq::EmbeddingOp>(op))
      w = e.getTable();
    else if (auto l = dyn_cast<qq::LogitsOp>(op))
      w = l.getWeight();
    if (auto qw = w ? w.getDefiningOp<qq::WeightOp>() : qq::WeightOp())
      uses[refKey(qw.getRef())] |= isa<qq::EmbeddingOp>(op) ? 1 : 2;
  });
  for (auto &[k, v] : uses)
    if (v == 3)
      tiedRefs.insert(k);

  SmallVector<qwen::RMSNormOp> norms;
  WalkResult r = module.walk([&](Operation *op) {
    LogicalResult res = success();
    if (auto l = dyn_cast<qq::LinearOp>(op))
      res = exportLinear(op, l.getWeight(), l.getBias(), l.getActAttr());
    else if (auto l = dyn_cast<qq::LogitsOp>(op))
      res = exportLinear(op, l.getWeight(), Value(), l.getActAttr());
    else if (auto l = dyn_cast<qwen::LinearOp>(op))
      res = exportLinear(op, l.getWeight(), l.getBias(), {});
    else if (auto l = dyn_cast<qwen::LogitsOp>(op))
      res = exportLinear(op, l.getWeight(), Value(), {});
    else if (auto e = dyn_cast<qq::EmbeddingOp>(op))
      res = exportEmbedding(op, e.getTable());
    else if (auto e = dyn_cast<qwen::EmbeddingOp>(op))
      res = exportEmbedding(op, e.getTable());
    else if (auto n = dyn_cast<qwen::RMSNormOp>(op))
      norms.push_back(n);
    return failed(res) ? WalkResult::interrupt() : WalkResult::advance();
  });
  if (r.wasInterrupted())
    return failure();
  for (auto &[idx, ps] : parts)
    if (failed(emitMatMul(idx, ps)))
      return failure();
  for (qwen::RMSNormOp n : norms)
    if (failed(exportGamma(n)))
      return failure();
  return write(summary);
}

} // namespace

LogicalResult qwen::exportONNX(ModuleOp module, const ONNXExportOptions &opts,
                               ONNXExportSummary *summary) {
  ONNXExportSummary s;
  Exporter e(module, opts);
  if (failed(e.run(s)))
    return failure();
  if (summary)
    *summary = s;
  return success();
}
