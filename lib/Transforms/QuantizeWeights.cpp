//===- QuantizeWeights.cpp - round-to-nearest weight quantization ---------===//
//
// --qwen-quantize-weights: qwen.linear / logits / embedding on float weights
// become their qquant forms on RTN-quantized weights written to a new store.
// The exact numerics are in Passes.td; test/Transforms/Inputs/rtn_reference.py
// is the numpy mirror the round-trip tests compare against bit for bit.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/QuantizeWeights.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstring>
#include <map>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_QUANTIZEWEIGHTS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace qwen::quant {

static const char *granName(qq::Granularity g) {
  switch (g) {
  case qq::Granularity::tensor: return "tensor";
  case qq::Granularity::channel: return "channel";
  case qq::Granularity::group: return "group";
  }
  return "?";
}

std::string LayerScheme::str() const {
  if (keepFloat)
    return "fp32";
  std::string s = (isSigned ? "i" : "ui") + std::to_string(bits) +
                  (symmetric ? " symmetric " : " asymmetric ") +
                  granName(granularity);
  if (granularity == qq::Granularity::group)
    s += "=" + std::to_string(groupSize);
  if (dynamicAct)
    s += " act=dynamic-i8";
  if (staticAct)
    s += " act=static-i8";
  return s;
}

bool LayerScheme::validate(std::string &err) const {
  if (keepFloat)
    return true;
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    err = "bits must be 2, 3, 4 or 8, got " + std::to_string(bits);
    return false;
  }
  if (granularity == qq::Granularity::group && groupSize != 32 &&
      groupSize != 64 && groupSize != 128) {
    err = "group size must be 32, 64 or 128, got " + std::to_string(groupSize);
    return false;
  }
  if (dynamicAct && staticAct) {
    err = "activations cannot be both dynamic and static";
    return false;
  }
  if (staticAct && (bits != 8 || !isSigned || !symmetric ||
                    granularity == qq::Granularity::group)) {
    err = "static int8 activations (w8a8) need signed symmetric 8-bit "
          "weights per tensor or per channel, got " +
          LayerScheme(*this).str();
    return false;
  }
  if (dynamicAct && (bits != 8 || !isSigned || !symmetric ||
                     granularity == qq::Granularity::group)) {
    err = "dynamic int8 activations (w8a8) need signed symmetric 8-bit "
          "weights per tensor or per channel, got " +
          LayerScheme(*this).str();
    return false;
  }
  return true;
}

bool LayerScheme::operator==(const LayerScheme &o) const {
  if (keepFloat || o.keepFloat)
    return keepFloat == o.keepFloat;
  return bits == o.bits && isSigned == o.isSigned &&
         symmetric == o.symmetric && granularity == o.granularity &&
         (granularity != qq::Granularity::group || groupSize == o.groupSize) &&
         dynamicAct == o.dynamicAct && staticAct == o.staticAct;
}

LayerScheme LayerOverride::apply(LayerScheme s) const {
  if (keepFloat) {
    s.keepFloat = true;
    return s;
  }
  s.keepFloat = false;
  if (bits) s.bits = *bits;
  if (isSigned) s.isSigned = *isSigned;
  if (symmetric) s.symmetric = *symmetric;
  if (granularity) s.granularity = *granularity;
  if (groupSize) {
    s.groupSize = *groupSize;
    if (!granularity)
      s.granularity = qq::Granularity::group;
  }
  if (dynamicAct) s.dynamicAct = *dynamicAct;
  if (staticAct) s.staticAct = *staticAct;
  return s;
}

bool LayerOverride::isGlob() const {
  return pattern.find_first_of("*?[") != std::string::npos;
}

bool parseLayerOverride(StringRef pattern, const llvm::json::Value &v,
                        LayerOverride &out, std::string &err) {
  out = LayerOverride();
  out.pattern = pattern.str();
  std::string where = "layer '" + pattern.str() + "': ";
  if (auto s = v.getAsString()) {
    if (*s != "fp32") {
      err = where + "expected \"fp32\" or an object, got \"" + s->str() + "\"";
      return false;
    }
    out.keepFloat = true;
    return true;
  }
  const llvm::json::Object *o = v.getAsObject();
  if (!o) {
    err = where + "expected \"fp32\" or an object";
    return false;
  }
  std::vector<std::string> keys;
  for (const auto &kv : *o)
    keys.push_back(kv.first.str());
  std::sort(keys.begin(), keys.end());
  for (const std::string &k : keys) {
    const llvm::json::Value &x = *o->get(k);
    if (k == "bits" || k == "group_size") {
      auto n = x.getAsInteger();
      if (!n || *n <= 0 || *n > 1024) {
        err = where + "'" + k + "' must be a positive integer";
        return false;
      }
      (k == "bits" ? out.bits : out.groupSize) = unsigned(*n);
    } else if (k == "symmetric" || k == "signed") {
      auto b = x.getAsBoolean();
      if (!b) {
        err = where + "'" + k + "' must be true or false";
        return false;
      }
      (k == "symmetric" ? out.symmetric : out.isSigned) = *b;
    } else if (k == "granularity") {
      auto s = x.getAsString();
      if (s && *s == "tensor")
        out.granularity = qq::Granularity::tensor;
      else if (s && *s == "channel")
        out.granularity = qq::Granularity::channel;
      else if (s && *s == "group")
        out.granularity = qq::Granularity::group;
      else {
        err = where + "'granularity' must be \"tensor\", \"channel\" or \"group\"";
        return false;
      }
    } else if (k == "act") {
      auto s = x.getAsString();
      if (s && *s == "none")
        out.dynamicAct = false, out.staticAct = false;
      else if (s && *s == "dynamic")
        out.dynamicAct = true, out.staticAct = false;
      else if (s && *s == "static")
        out.dynamicAct = false, out.staticAct = true;
      else {
        err = where + "'act' must be \"none\", \"dynamic\" or \"static\"";
        return false;
      }
    } else {
      err = where + "unknown key '" + k +
            "' (known: bits, granularity, group_size, symmetric, signed, act)";
      return false;
    }
  }
  return true;
}

bool parseLayerOverrides(const llvm::json::Object &o,
                         std::vector<LayerOverride> &out, std::string &err) {
  std::vector<std::string> keys;
  for (const auto &kv : o)
    keys.push_back(kv.first.str());
  std::sort(keys.begin(), keys.end());
  for (const std::string &k : keys) {
    LayerOverride ov;
    if (!parseLayerOverride(k, *o.get(k), ov, err))
      return false;
    if (ov.isGlob()) {
      auto g = llvm::GlobPattern::create(k);
      if (!g) {
        err = "layer pattern '" + k + "': " + llvm::toString(g.takeError());
        return false;
      }
    }
    out.push_back(std::move(ov));
  }
  return true;
}

} // namespace qwen::quant

namespace {

using qwen::quant::LayerOverride;
using qwen::quant::LayerScheme;
using qwen::quant::QuantizePlan;

/// The packed components of one quantized weight.
struct Packed {
  std::vector<uint8_t> codes; // [rows, rowBytes]
  std::vector<float> scales;  // [1] or [rows, perRow]
  std::vector<uint8_t> zeros; // same count as scales (i8 or u8 bytes)
  int64_t rowBytes = 0, perRow = 0;
};

/// RTN of `w` [rows, cols] (see Passes.td for the exact arithmetic).
Packed quantize(const float *w, int64_t rows, int64_t cols,
                const LayerScheme &s) {
  Packed p;
  unsigned b = s.bits;
  p.rowBytes = (cols * b + 7) / 8;
  p.codes.assign(rows * p.rowBytes, 0);
  int64_t block = s.granularity == qq::Granularity::group ? s.groupSize : cols;
  p.perRow = s.granularity == qq::Granularity::group ? cols / block : 1;
  bool tensor = s.granularity == qq::Granularity::tensor;
  int64_t nScales = tensor ? 1 : rows * p.perRow;
  p.scales.assign(nScales, 0.f);
  if (!s.symmetric)
    p.zeros.assign(nScales, 0);
  const int32_t half = 1 << (b - 1);
  const int32_t levels = (1 << b) - 1;
  const uint32_t mask = (1u << b) - 1;

  auto put = [&](int64_t r, int64_t c, int32_t code) {
    uint32_t v = static_cast<uint32_t>(code) & mask;
    int64_t bit = c * b;
    uint8_t *row = &p.codes[r * p.rowBytes];
    for (unsigned i = 0; i < b; ++i, ++bit)
      if (v >> i & 1)
        row[bit / 8] |= uint8_t(1u << (bit % 8));
  };
  // Scale (and zero point) of the block [r0, r1) x [c0, c1).
  auto fit = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, float &scale,
                 int32_t &zpU) {
    float lo = 0.f, hi = 0.f, amax = 0.f;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        float v = w[r * cols + c];
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        amax = std::max(amax, std::fabs(v));
      }
    if (s.symmetric) {
      scale = amax / float(half - 1);
      zpU = 0;
    } else {
      scale = (hi - lo) / float(levels);
      zpU = scale == 0.f
                ? 0
                : std::clamp<int32_t>(int32_t(std::nearbyint(-lo / scale)), 0,
                                      levels);
    }
  };
  auto code = [&](float v, float scale, int32_t zpU) -> int32_t {
    if (s.symmetric) {
      int32_t q = scale == 0.f ? 0
                               : std::clamp<int32_t>(
                                     int32_t(std::nearbyint(v / scale)),
                                     -(half - 1), half - 1);
      return s.isSigned ? q : q + half;
    }
    int32_t q = scale == 0.f ? zpU
                             : std::clamp<int32_t>(
                                   int32_t(std::nearbyint(v / scale)) + zpU, 0,
                                   levels);
    return s.isSigned ? q - half : q;
  };
  auto zeroByte = [&](int32_t zpU) {
    return uint8_t(s.isSigned ? int8_t(zpU - half) : uint8_t(zpU));
  };

  if (tensor) {
    float scale;
    int32_t zpU;
    fit(0, rows, 0, cols, scale, zpU);
    p.scales[0] = scale;
    if (!s.symmetric)
      p.zeros[0] = zeroByte(zpU);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        put(r, c, code(w[r * cols + c], scale, zpU));
    return p;
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < p.perRow; ++g) {
      int64_t c0 = g * block, c1 = c0 + block;
      float scale;
      int32_t zpU;
      fit(r, r + 1, c0, c1, scale, zpU);
      p.scales[r * p.perRow + g] = scale;
      if (!s.symmetric)
        p.zeros[r * p.perRow + g] = zeroByte(zpU);
      for (int64_t c = c0; c < c1; ++c)
        put(r, c, code(w[r * cols + c], scale, zpU));
    }
  return p;
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

class Quantizer {
public:
  Quantizer(ModuleOp module, QuantizePlan plan, StringRef storePath,
            StringRef storeName)
      : module(module), plan(std::move(plan)), storePath(storePath),
        storeName(storeName), b(module.getContext()) {}

  LogicalResult run();

private:
  struct Target {
    Operation *op;
    qwen::WeightOp weight;
    std::string layer;
    LayerScheme scheme;
  };
  FailureOr<Value> quantizedWeight(Target &t, RankedTensorType wt);
  LogicalResult replace(Target &t, Value qw);

  ModuleOp module;
  QuantizePlan plan;
  std::string storePath, storeName;
  OpBuilder b;
  qwen::WeightStoreCache stores;
  std::unique_ptr<qwen::ws::WeightStoreWriter> writer;
  /// Weights already written, by source entry and scheme (a tied embedding
  /// and LM head with the same scheme share one).
  std::map<std::string, Value> written;
};

FailureOr<Value> Quantizer::quantizedWeight(Target &t, RankedTensorType wt) {
  Location loc = t.op->getLoc();
  LayerScheme s = t.scheme;
  int64_t rows = wt.getDimSize(0), cols = wt.getDimSize(1);
  if (s.granularity == qq::Granularity::group) {
    // Largest allowed group not above the requested one that divides cols.
    unsigned g = s.groupSize;
    while (g >= 32 && cols % g != 0)
      g /= 2;
    if (g >= 32)
      s.groupSize = g;
    else {
      s.granularity = qq::Granularity::channel;
      s.groupSize = 0;
    }
  }
  if (s.granularity != qq::Granularity::group)
    s.groupSize = 0;
  t.scheme = s;
  LayerScheme weightOnly = s; // the activation scheme is not the weight's
  weightOnly.dynamicAct = false;
  weightOnly.staticAct = false;
  std::string key = t.layer + "|" + weightOnly.str();
  if (auto it = written.find(key); it != written.end())
    return it->second;

  SymbolRefAttr ref = t.weight.getRef();
  const qwen::ws::Entry *e = stores.find(t.weight, ref);
  if (!e)
    return failure();
  const qwen::ws::WeightStoreReader *r = stores.open(t.weight, ref);
  const char *src = static_cast<const char *>(r->data(*e));
  int64_t n = rows * cols;
  if (e->numElements() != n)
    return t.weight.emitOpError("store entry '")
           << e->name << "' does not have " << n << " elements", failure();
  std::vector<float> w(n);
  switch (e->dtype) {
  case qwen::ws::DType::F32:
    std::memcpy(w.data(), src, n * 4);
    break;
  case qwen::ws::DType::F16:
  case qwen::ws::DType::BF16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      if (e->dtype == qwen::ws::DType::BF16) {
        uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&w[i], &bits, 4);
      } else {
        w[i] = halfToFloat(h);
      }
    }
    break;
  default:
    return t.op->emitOpError("weight '")
           << e->name << "' has store dtype " << qwen::ws::dtypeName(e->dtype)
           << "; only f32, f16 and bf16 weights can be quantized",
           failure();
  }
  r->release(*e);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i]))
      return t.op->emitOpError("weight '")
             << e->name << "' has a NaN or Inf at element " << i
             << " (row " << i / cols << ", column " << i % cols
             << "); it cannot be quantized",
             failure();
  Packed p = quantize(w.data(), rows, cols, s);

  std::string err;
  if (!writer) {
    if (storePath.empty())
      return emitError(loc, "--qwen-quantize-weights needs store=<path> to "
                            "write '")
             << t.layer << "'", failure();
    writer = qwen::ws::WeightStoreWriter::create(storePath, err);
    if (!writer)
      return emitError(loc, err), failure();
  }
  std::string base = t.layer;
  for (unsigned i = 1; writer->contains(base + ".codes"); ++i)
    base = t.layer + ".q" + std::to_string(i);
  bool tensor = s.granularity == qq::Granularity::tensor;
  std::vector<int64_t> scaleShape =
      tensor ? std::vector<int64_t>{1} : std::vector<int64_t>{rows, p.perRow};
  if (!writer->add(base + ".codes", qwen::ws::DType::U8, {rows, p.rowBytes},
                   p.codes.data(), p.codes.size(), err) ||
      !writer->add(base + ".scales", qwen::ws::DType::F32, scaleShape,
                   p.scales.data(), p.scales.size() * 4, err) ||
      (!s.symmetric &&
       !writer->add(base + ".zeros",
                    s.isSigned ? qwen::ws::DType::I8 : qwen::ws::DType::U8,
                    scaleShape, p.zeros.data(), p.zeros.size(), err)))
    return emitError(loc, err), failure();

  MLIRContext *ctx = module.getContext();
  auto scheme = qq::SchemeAttr::get(ctx, qq::Grid::uniform, s.bits, s.isSigned,
                                    s.symmetric, s.granularity, s.groupSize,
                                    qq::Sparsity::dense);
  auto type = qq::WeightType::get(ctx, {rows, cols}, wt.getElementType(),
                                  scheme);
  // Defined at the start of the function so every user (tied embedding and
  // LM head) is dominated.
  auto fn = t.op->getParentOfType<FunctionOpInterface>();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&fn.getFunctionBody().front());
  auto qref = SymbolRefAttr::get(b.getStringAttr(storeName),
                                 {FlatSymbolRefAttr::get(b.getStringAttr(base))});
  Value v = qq::WeightOp::create(b, loc, type, qref).getResult();
  written[key] = v;
  return v;
}

LogicalResult Quantizer::replace(Target &t, Value qw) {
  MLIRContext *ctx = module.getContext();
  b.setInsertionPoint(t.op);
  qq::ActivationAttr act;
  if (t.scheme.dynamicAct)
    act = qq::ActivationAttr::get(ctx, qq::ActMode::dynamic, 8,
                                  /*perToken=*/true, nullptr);
  if (t.scheme.staticAct) {
    auto it = plan.actScales.find(t.layer);
    if (it == plan.actScales.end())
      return t.op->emitOpError("layer '")
             << t.layer
             << "' has static int8 activations but no calibration "
                "statistics (qwen-calibrate's stats.json has no such layer)";
    double sx = it->second;
    if (!(sx > 0) || !std::isfinite(sx))
      return t.op->emitOpError("layer '")
             << t.layer << "': static activation scale " << sx
             << " is not a positive finite number";
    auto qt = mlir::quant::UniformQuantizedType::get(
        mlir::quant::QuantizationFlags::Signed, b.getI8Type(), b.getF32Type(),
        sx, /*zeroPoint=*/0, -127, 127);
    act = qq::ActivationAttr::get(ctx, qq::ActMode::static_, 8,
                                  /*perToken=*/false, qt);
  }
  Operation *repl;
  if (auto o = dyn_cast<qwen::LinearOp>(t.op))
    repl = qq::LinearOp::create(b, o.getLoc(), o.getType(), o.getInput(), qw,
                                o.getBias(), act);
  else if (auto o = dyn_cast<qwen::LogitsOp>(t.op))
    repl = qq::LogitsOp::create(b, o.getLoc(), o.getType(), o.getInput(), qw,
                                o.getTiedAttr(), act);
  else {
    auto e = cast<qwen::EmbeddingOp>(t.op);
    repl = qq::EmbeddingOp::create(b, e.getLoc(), e.getType(), e.getIds(), qw);
  }
  // Keep discardable attributes (e.g. a qquant.decision).
  for (NamedAttribute a : t.op->getDiscardableAttrs())
    repl->setAttr(a.getName(), a.getValue());
  if (failed(mlir::verify(repl)))
    return failure();
  t.op->getResult(0).replaceAllUsesWith(repl->getResult(0));
  t.op->erase();
  return success();
}

LogicalResult Quantizer::run() {
  std::vector<Target> targets;
  llvm::StringSet<> layerNames;
  module.walk([&](Operation *op) {
    Value w;
    const std::optional<LayerScheme> *kind = nullptr;
    if (auto o = dyn_cast<qwen::LinearOp>(op))
      w = o.getWeight(), kind = &plan.linear;
    else if (auto o = dyn_cast<qwen::LogitsOp>(op))
      w = o.getWeight(), kind = &plan.logits;
    else if (auto o = dyn_cast<qwen::EmbeddingOp>(op))
      w = o.getTable(), kind = &plan.embedding;
    else
      return;
    auto wop = w.getDefiningOp<qwen::WeightOp>();
    auto wt = dyn_cast<RankedTensorType>(w.getType());
    auto rt = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    // Small weights the importer kept as constants have no layer name.
    if (!wop || !wt || wt.getRank() != 2 || !wt.hasStaticShape() ||
        !wt.getElementType().isF32() || !rt || !rt.getElementType().isF32())
      return;
    std::string layer = wop.getRef().getLeafReference().getValue().str();
    layerNames.insert(layer);
    Target t{op, wop, layer, {}};
    t.scheme = *kind ? **kind : LayerScheme{true};
    if (!*kind) {
      t.scheme = plan.fallback;
      t.scheme.keepFloat = true;
    }
    targets.push_back(t);
  });

  // Per-layer overrides: exact names first, then globs (two matching globs
  // are ambiguous).
  std::vector<std::string> unknown;
  std::vector<llvm::GlobPattern> globs(plan.layers.size());
  std::vector<bool> used(plan.layers.size(), false);
  for (auto [i, ov] : llvm::enumerate(plan.layers)) {
    if (ov.isGlob()) {
      auto g = llvm::GlobPattern::create(ov.pattern);
      if (!g)
        return module.emitError("layer pattern '")
               << ov.pattern << "': " << llvm::toString(g.takeError());
      globs[i] = std::move(*g);
    }
  }
  for (Target &t : targets) {
    const LayerOverride *match = nullptr;
    std::vector<const LayerOverride *> globMatches;
    for (auto [i, ov] : llvm::enumerate(plan.layers)) {
      if (!ov.isGlob() && ov.pattern == t.layer) {
        match = &ov;
        used[i] = true;
      } else if (ov.isGlob() && globs[i].match(t.layer)) {
        globMatches.push_back(&ov);
        used[i] = true;
      }
    }
    if (!match && globMatches.size() > 1) {
      auto d = t.op->emitOpError("layer '") << t.layer
                                            << "' is matched by several globs:";
      for (const LayerOverride *g : globMatches)
        d << " '" << g->pattern << "'";
      d << "; name it exactly";
      return failure();
    }
    if (!match && globMatches.size() == 1)
      match = globMatches[0];
    if (match) {
      LayerScheme base = t.scheme;
      if (base.keepFloat && !match->keepFloat) {
        base = plan.fallback;
        base.keepFloat = false;
      }
      t.scheme = match->apply(base);
    }
    // A precision decision (--qwen-assign-precision) wins over the plan and
    // the overrides; the activation fields stay the plan's.
    if (auto d = t.op->getAttrOfType<qq::DecisionAttr>("qquant.decision")) {
      qq::SchemeAttr ds = d.getScheme();
      if (ds.getGrid() != qq::Grid::uniform ||
          ds.getSparsity() != qq::Sparsity::dense)
        return t.op->emitOpError("layer '")
               << t.layer << "': qquant.decision " << ds
               << " is not a dense uniform scheme (round-to-nearest)";
      LayerScheme s = t.scheme.keepFloat ? plan.fallback : t.scheme;
      s.keepFloat = false;
      s.bits = ds.getBits();
      s.isSigned = ds.getIsSigned();
      s.symmetric = ds.getSymmetric();
      s.granularity = ds.getGranularity();
      s.groupSize = ds.getGroupSize();
      t.scheme = s;
    }
    if (isa<qwen::EmbeddingOp>(t.op))
      t.scheme.dynamicAct = t.scheme.staticAct = false; // a lookup has no activation
    std::string err;
    if (!t.scheme.validate(err))
      return t.op->emitOpError("layer '") << t.layer << "': " << err;
  }
  for (auto [i, ov] : llvm::enumerate(plan.layers))
    if (!used[i])
      unknown.push_back(ov.pattern);
  if (!unknown.empty()) {
    auto d = module.emitError("unknown layer name(s) in the per-layer "
                              "overrides:");
    for (const std::string &u : unknown)
      d << " '" << u << "'";
    d << " (layers are named by their weight's store entry, e.g. '"
      << (layerNames.empty() ? std::string("model.layers.0.mlp.up_proj.weight")
                             : layerNames.begin()->getKey().str())
      << "')";
    return failure();
  }

  for (Target &t : targets) {
    if (t.scheme.keepFloat)
      continue;
    auto wt = cast<RankedTensorType>(t.weight.getType());
    FailureOr<Value> qw = quantizedWeight(t, wt);
    if (failed(qw) || failed(replace(t, *qw)))
      return failure();
  }
  // Float weights left without users (a tied table appears in two targets:
  // erase each op once).
  llvm::SetVector<Operation *> dead;
  for (Target &t : targets)
    if (t.weight->use_empty())
      dead.insert(t.weight);
  for (Operation *op : dead)
    op->erase();
  return qwen::finishNewStore(module, writer.get(), storeName, storePath);
}

LogicalResult runQuantizer(ModuleOp m, const QuantizePlan &plan,
                           StringRef storePath, StringRef storeName) {
  if (SymbolTable::lookupSymbolIn(m, storeName))
    return m.emitError("symbol @") << storeName
                                   << " already exists; pick store-name=";
  if (!storePath.empty() && failed(qwen::checkNewStorePath(m, storePath)))
    return failure();
  return Quantizer(m, plan, storePath, storeName).run();
}

struct QuantizeWeightsPass
    : qwen::impl::QuantizeWeightsBase<QuantizeWeightsPass> {
  using Base::Base;
  std::optional<QuantizePlan> preset;

  LogicalResult buildPlan(QuantizePlan &plan) {
    ModuleOp m = getOperation();
    LayerScheme s;
    s.bits = bits;
    s.isSigned = isSigned;
    if (mode == "symmetric")
      s.symmetric = true;
    else if (mode == "asymmetric")
      s.symmetric = false;
    else
      return m.emitError("--qwen-quantize-weights: mode must be symmetric or "
                         "asymmetric, got '")
             << mode << "'";
    if (granularity == "tensor")
      s.granularity = qq::Granularity::tensor;
    else if (granularity == "channel")
      s.granularity = qq::Granularity::channel;
    else if (granularity == "group")
      s.granularity = qq::Granularity::group;
    else
      return m.emitError("--qwen-quantize-weights: granularity must be "
                         "tensor, channel or group, got '")
             << granularity << "'";
    s.groupSize = groupSize;
    if (act == "dynamic")
      s.dynamicAct = true;
    else if (act != "none")
      return m.emitError("--qwen-quantize-weights: act must be none or "
                         "dynamic, got '")
             << act << "'";
    std::string err;
    if (!s.validate(err))
      return m.emitError("--qwen-quantize-weights: ") << err;
    plan.fallback = s;
    SmallVector<std::string> kinds(ops.begin(), ops.end());
    if (kinds.empty())
      kinds = {"linear", "logits"};
    for (const std::string &k : kinds) {
      if (k == "linear")
        plan.linear = s;
      else if (k == "logits")
        plan.logits = s;
      else if (k == "embedding") {
        plan.embedding = s;
        plan.embedding->dynamicAct = false;
      } else
        return m.emitError("--qwen-quantize-weights: ops takes linear, "
                           "logits, embedding; got '")
               << k << "'";
    }
    if (!layersFile.empty()) {
      auto buf = llvm::MemoryBuffer::getFile(layersFile);
      if (!buf)
        return m.emitError("layers-file '")
               << layersFile << "': " << buf.getError().message();
      llvm::Expected<llvm::json::Value> v =
          llvm::json::parse((*buf)->getBuffer());
      if (!v)
        return m.emitError("layers-file '")
               << layersFile << "': " << llvm::toString(v.takeError());
      const llvm::json::Object *o = v->getAsObject();
      if (!o)
        return m.emitError("layers-file '")
               << layersFile << "': expected a JSON object of layer names";
      if (!qwen::quant::parseLayerOverrides(*o, plan.layers, err))
        return m.emitError("layers-file '") << layersFile << "': " << err;
    }
    return success();
  }

  void runOnOperation() override {
    QuantizePlan plan;
    if (preset)
      plan = *preset;
    else if (failed(buildPlan(plan)))
      return signalPassFailure();
    if (failed(runQuantizer(getOperation(), plan, storePath, storeName)))
      signalPassFailure();
  }
};

} // namespace

std::unique_ptr<Pass>
qwen::quant::createQuantizeWeightsPass(QuantizePlan plan, std::string storePath,
                                       std::string storeName) {
  qwen::QuantizeWeightsOptions o;
  o.storePath = storePath;
  o.storeName = storeName;
  auto p = std::make_unique<QuantizeWeightsPass>(o);
  p->preset = std::move(plan);
  return p;
}
