//===- QuantizeWeights.cpp - round-to-nearest weight quantization ---------===//
//
// --qwen-quantize-weights: qwen.linear / logits / embedding on float weights
// become their qquant forms on RTN-quantized weights written to a new store.
// The exact numerics are in Passes.td; test/Transforms/Inputs/rtn_reference.py
// is the numpy mirror the round-trip tests compare against bit for bit.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/QuantizeWeights.h"
#include "qwen/Calibration/ActivationStats.h"
#include "qwen/Transforms/Executor.h"
#include "qwen/Transforms/MixedPrecision.h"
#include "qwen/Transforms/Prune.h"
#include "qwen/Transforms/QuantAlgorithms.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightSharing.h"
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
  if (grid == qq::Grid::codebook)
    return "codebook" + std::to_string(bits) + " " + granName(granularity) +
           (granularity == qq::Granularity::group
                ? "=" + std::to_string(groupSize)
                : std::string()) +
           (weighted ? " weighted" : "");
  std::string s = std::string(grid == qq::Grid::log2 ? "log2 " : "") +
                  (isSigned ? "i" : "ui") + std::to_string(bits) +
                  (symmetric ? " symmetric " : " asymmetric ") +
                  granName(granularity);
  if (granularity == qq::Granularity::group)
    s += "=" + std::to_string(groupSize);
  if (dynamicAct)
    s += " act=dynamic-i8";
  if (staticAct)
    s += " act=static-i8";
  if (bf16Act)
    s += " act=bf16";
  if (i16Act)
    s += " act=i16";
  if (algorithm == Algorithm::gptq)
    s += " gptq";
  if (clipSearch)
    s += " clip-search";
  if (biasCorrection)
    s += " bias-correction";
  if (sparsity == qq::Sparsity::s2_4)
    s += " sparsity=2:4";
  return s;
}

std::optional<qq::Granularity> parseGranularity(StringRef s) {
  if (s == "tensor")
    return qq::Granularity::tensor;
  if (s == "channel")
    return qq::Granularity::channel;
  if (s == "group")
    return qq::Granularity::group;
  return std::nullopt;
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
  if (sparsity == qq::Sparsity::unstructured) {
    err = "unstructured sparsity is stored dense (the pruned weights are zero "
          "codes); only 2:4 has a compact layout";
    return false;
  }
  if (sparsity == qq::Sparsity::s2_4 &&
      (grid == qq::Grid::codebook || dynamicAct || staticAct)) {
    err = "2:4 sparse weights take a uniform or log2 grid and float "
          "activations (the sparse kernel is weight-only), got " +
          LayerScheme(*this).str();
    return false;
  }
  if (grid == qq::Grid::codebook) {
    if (!(bits >= 2 && bits <= 4) &&
        !(bits == 8 && granularity == qq::Granularity::tensor)) {
      err = "codebooks take 2, 3 or 4 index bits (8 with one codebook per "
            "tensor), got " + std::to_string(bits) + " per " +
            granName(granularity);
      return false;
    }
    if (dynamicAct || staticAct || algorithm != Algorithm::rtn || clipSearch ||
        biasCorrection) {
      err = "codebook weights take float activations and no GPTQ, clip "
            "search or bias correction";
      return false;
    }
    return true;
  }
  if (grid == qq::Grid::log2 &&
      (bits < 3 || bits > 4 || !symmetric || !isSigned || dynamicAct ||
       staticAct)) {
    err = "the log2 grid takes signed symmetric 3- or 4-bit weights and "
          "float activations, got " +
          LayerScheme(*this).str();
    return false;
  }
  if (dynamicAct && staticAct) {
    err = "activations cannot be both dynamic and static";
    return false;
  }
  if (bf16Act && (dynamicAct || staticAct)) {
    err = "bf16 activations are for weight-only schemes; int8 activations "
          "are already quantized, got " + LayerScheme(*this).str();
    return false;
  }
  if (i16Act && (dynamicAct || staticAct || bf16Act)) {
    err = "int16 activations are for weight-only schemes with float "
          "activations (not int8, not bf16), got " + LayerScheme(*this).str();
    return false;
  }
  if (i16Act && (granularity != qq::Granularity::group || grid != qq::Grid::uniform)) {
    err = "int16 activations are quantized per weight group: they need a "
          "uniform group-wise weight, got " + LayerScheme(*this).str();
    return false;
  }
  // int8 activations: i8 weights per tensor / channel (w8a8) or i4 weights
  // per tensor / channel / group (w4a8), signed symmetric.
  bool intActWeights = isSigned && symmetric &&
                       ((bits == 8 && granularity != qq::Granularity::group) ||
                        bits == 4);
  if (staticAct && !intActWeights) {
    err = "static int8 activations (w8a8, w4a8) need signed symmetric 8-bit "
          "weights per tensor or per channel or 4-bit ones, got " +
          LayerScheme(*this).str();
    return false;
  }
  if (dynamicAct && !intActWeights) {
    err = "dynamic int8 activations (w8a8, w4a8) need signed symmetric 8-bit "
          "weights per tensor or per channel or 4-bit ones, got " +
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
         dynamicAct == o.dynamicAct && staticAct == o.staticAct &&
         bf16Act == o.bf16Act && i16Act == o.i16Act && grid == o.grid && algorithm == o.algorithm &&
         clipSearch == o.clipSearch && biasCorrection == o.biasCorrection &&
         weighted == o.weighted && sparsity == o.sparsity;
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
  if (bf16Act) s.bf16Act = *bf16Act;
  if (i16Act) s.i16Act = *i16Act;
  if (grid) {
    s.grid = *grid;
    if (s.grid == qq::Grid::codebook) // indices are unsigned
      s.isSigned = false, s.symmetric = true;
  }
  if (sparsity) s.sparsity = *sparsity;
  if (algorithm) s.algorithm = *algorithm;
  if (clipSearch) s.clipSearch = *clipSearch;
  if (biasCorrection) s.biasCorrection = *biasCorrection;
  return s;
}

std::string QuantizePlan::assign(ArrayRef<std::string> kinds,
                                 const LayerScheme &s) {
  for (const std::string &k : kinds) {
    if (k == "linear") {
      linear = s;
    } else if (k == "logits") {
      logits = s;
    } else if (k == "embedding") {
      embedding = s;
      embedding->clearActivation();
      embedding->algorithm = Algorithm::rtn;
      embedding->clipSearch = embedding->biasCorrection = false;
      embedding->weighted = false;
    } else {
      return k;
    }
  }
  return "";
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
    } else if (k == "symmetric" || k == "signed" || k == "clip_search" ||
               k == "bias_correction") {
      auto b = x.getAsBoolean();
      if (!b) {
        err = where + "'" + k + "' must be true or false";
        return false;
      }
      (k == "symmetric"     ? out.symmetric
       : k == "signed"      ? out.isSigned
       : k == "clip_search" ? out.clipSearch
                            : out.biasCorrection) = *b;
    } else if (k == "grid") {
      auto s = x.getAsString();
      if (s && *s == "uniform")
        out.grid = qq::Grid::uniform;
      else if (s && *s == "log2")
        out.grid = qq::Grid::log2;
      else if (s && *s == "codebook")
        out.grid = qq::Grid::codebook;
      else {
        err = where + "'grid' must be \"uniform\", \"log2\" or \"codebook\"";
        return false;
      }
    } else if (k == "sparsity") {
      auto s = x.getAsString();
      if (s && *s == "2:4")
        out.sparsity = qq::Sparsity::s2_4;
      else if (s && *s == "dense")
        out.sparsity = qq::Sparsity::dense;
      else {
        err = where + "'sparsity' must be \"2:4\" or \"dense\"";
        return false;
      }
    } else if (k == "algorithm") {
      auto s = x.getAsString();
      if (s && *s == "rtn")
        out.algorithm = Algorithm::rtn;
      else if (s && *s == "gptq")
        out.algorithm = Algorithm::gptq;
      else {
        err = where + "'algorithm' must be \"rtn\" or \"gptq\"";
        return false;
      }
    } else if (k == "granularity") {
      auto s = x.getAsString();
      out.granularity = s ? parseGranularity(*s) : std::nullopt;
      if (!out.granularity) {
        err = where + "'granularity' must be \"tensor\", \"channel\" or \"group\"";
        return false;
      }
    } else if (k == "act") {
      auto s = x.getAsString();
      out.dynamicAct = out.staticAct = out.bf16Act = out.i16Act = false;
      if (s && *s == "dynamic")
        out.dynamicAct = true;
      else if (s && *s == "static")
        out.staticAct = true;
      else if (s && *s == "bf16")
        out.bf16Act = true;
      else if (s && *s == "i16")
        out.i16Act = true;
      else if (!s || *s != "none") {
        err = where + "'act' must be \"none\", \"dynamic\", \"static\", \"bf16\" or \"i16\"";
        return false;
      }
    } else {
      err = where + "unknown key '" + k +
            "' (known: bits, granularity, group_size, symmetric, signed, act, "
            "grid, sparsity, algorithm, clip_search, bias_correction)";
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

using qwen::quant::Packed;

/// RTN, or k-means for a codebook grid (WeightSharing.h), with no
/// calibration data.
Packed quantizePlain(const float *w, int64_t rows, int64_t cols,
                     const LayerScheme &s, const QuantizePlan &plan,
                     std::vector<float> *dq = nullptr) {
  if (s.grid == qq::Grid::codebook) {
    qwen::quant::KMeansOptions o;
    o.maxIters = plan.kmeansMaxIters;
    o.tolerance = plan.kmeansTolerance;
    o.f16 = plan.kmeansF16;
    return qwen::quant::quantizeCodebook(w, rows, cols, s, {}, dq, o);
  }
  return qwen::quant::quantizeRTN(w, rows, cols, s, {}, dq);
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
  /// 2:4 schemes: compacts `p` (dense codes, `dq` their values) to the kept
  /// codes and their positions; an error names the layer if the weight is
  /// not 2:4 sparse. Nothing to do for dense schemes.
  /// A 2:4 scheme on an op --qwen-prune did not prune (a mixed-precision
  /// decision): Wanda 2:4 on its input `X`, or magnitude without one.
  LogicalResult prune24(const Target &t, std::vector<float> &w, int64_t rows,
                        int64_t cols, const qwen::exec::Matrix *X);
  LogicalResult sparsify(const Target &t, qwen::quant::Packed &p,
                         const std::vector<float> &dq, int64_t rows,
                         int64_t cols);
  /// Runs the calibration tokens through the model, quantizing each target
  /// in program order from its inputs (GPTQ, clip search, bias correction,
  /// static activation scales); later ops see the quantized earlier ones.
  LogicalResult runCalibrated(std::vector<Target> &targets);
  static std::string key(const Target &t);

  /// What runCalibrated decided for a layer|scheme key.
  struct Precomputed {
    Packed packed;
    std::vector<float> biasDelta; // bias correction, [rows], if any
  };
  std::map<std::string, Precomputed> precomputed;

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
  std::string key = Quantizer::key(t);
  if (auto it = written.find(key); it != written.end())
    return it->second;

  Packed p;
  if (auto it = precomputed.find(key); it != precomputed.end()) {
    p = it->second.packed; // runCalibrated read and checked the weight
  } else {
    std::vector<float> dq;
    int64_t n = rows * cols;
    std::vector<float> w;
    if (failed(qwen::readFloatEntry(stores, t.weight, t.weight.getRef(), n,
                                    w)))
      return failure();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(w[i]))
        return t.op->emitOpError("weight '")
               << t.weight.getRef().getLeafReference().getValue()
               << "' has a NaN or Inf at element " << i << " (row "
               << i / cols << ", column " << i % cols
               << "); it cannot be quantized",
               failure();
    if (s.sparsity == qq::Sparsity::s2_4 && !t.op->hasAttr(qq::QQuantDialect::kPrunedAttrName) &&
        failed(prune24(t, w, rows, cols, nullptr)))
      return failure();
    p = quantizePlain(w.data(), rows, cols, s, plan, &dq);
    if (failed(sparsify(t, p, dq, rows, cols)))
      return failure();
  }

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
  bool codebook = s.grid == qq::Grid::codebook;
  if (codebook) // [books, 2^bits] centroids (getWeightComponents)
    scaleShape = {tensor ? 1 : rows * p.perRow, int64_t(1) << s.bits};
  std::vector<uint16_t> halves; // f16 codebooks
  if (codebook && plan.kmeansF16)
    for (float v : p.scales)
      halves.push_back(qwen::quant::halfBits(v));
  if (!writer->add(base + ".codes", qwen::ws::DType::U8, {rows, p.rowBytes},
                   p.codes.data(), p.codes.size(), err) ||
      (!halves.empty() &&
       !writer->add(base + ".codebook", qwen::ws::DType::F16, scaleShape,
                    halves.data(), halves.size() * 2, err)) ||
      (halves.empty() &&
       !writer->add(base + (codebook ? ".codebook" : ".scales"), qwen::ws::DType::F32, scaleShape,
                   p.scales.data(), p.scales.size() * 4, err)) ||
      (s.grid == qq::Grid::uniform && !s.symmetric &&
       !writer->add(base + ".zeros",
                    s.isSigned ? qwen::ws::DType::I8 : qwen::ws::DType::U8,
                    scaleShape, p.zeros.data(), p.zeros.size(), err)) ||
      (!p.mask.empty() &&
       !writer->add(base + ".mask", qwen::ws::DType::U8,
                    {rows, int64_t(p.mask.size()) / rows}, p.mask.data(),
                    p.mask.size(), err)))
    return emitError(loc, err), failure();

  MLIRContext *ctx = module.getContext();
  auto scheme = qwen::mixed::toSchemeAttr(ctx, s);
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

LogicalResult Quantizer::prune24(const Target &t, std::vector<float> &w,
                                 int64_t rows, int64_t cols,
                                 const qwen::exec::Matrix *X) {
  qwen::prune::PruneSpec ps;
  ps.pattern = qwen::prune::Pattern::twoFour;
  std::vector<double> norms;
  if (X) {
    ps.method = qwen::prune::Method::wanda;
    norms = qwen::prune::inputNorms(X->data.data(), X->rows, cols);
  }
  std::string err;
  if (qwen::prune::pruneWeight(w.data(), rows, cols, ps, X ? &norms : nullptr,
                               err) < 0)
    return t.op->emitOpError("layer '") << t.layer << "': " << err;
  return success();
}

LogicalResult Quantizer::sparsify(const Target &t, qwen::quant::Packed &p,
                                  const std::vector<float> &dq, int64_t rows,
                                  int64_t cols) {
  if (t.scheme.sparsity != qq::Sparsity::s2_4)
    return success();
  std::string err;
  if (!qwen::quant::compress24(p, dq, t.scheme.bits, rows, cols, err))
    return t.op->emitOpError("layer '")
           << t.layer << "' is marked qquant.pruned = \"2:4\" but is not 2:4 "
           << "sparse: " << err, failure();
  return success();
}

std::string Quantizer::key(const Target &t) {
  LayerScheme w = t.scheme; // the activation scheme is not the weight's
  w.clearActivation();
  return t.layer + "|" + w.str();
}

LogicalResult Quantizer::runCalibrated(std::vector<Target> &targets) {
  using namespace qwen::quant;
  auto needs = [&](const Target &t) {
    const LayerScheme &s = t.scheme;
    return !s.keepFloat &&
           (s.algorithm == Algorithm::gptq || s.clipSearch ||
            s.biasCorrection || (s.grid == qq::Grid::codebook && s.weighted) ||
            // Without tokens, a static layer missing from the given scales
            // is replace()'s error (it names the statistics file).
            (s.staticAct && !plan.actScales.count(t.layer) &&
             !plan.calibTokens.empty()) ||
            // A 2:4 decision on an unpruned op: Wanda on the inputs.
            (s.sparsity == qq::Sparsity::s2_4 &&
             !t.op->hasAttr(qq::QQuantDialect::kPrunedAttrName) && !plan.calibTokens.empty()));
  };
  const Target *first = nullptr;
  for (const Target &t : targets)
    if (needs(t)) {
      first = &t;
      break;
    }
  if (!first)
    return success();
  if (plan.calibTokens.empty())
    return first->op->emitOpError("layer '")
           << first->layer << "' (" << first->scheme.str()
           << ") needs calibration data: give calib-tokens=<file> "
              "(qwen-compile --calib-text)";
  qwen::exec::Batch batch;
  std::string err;
  if (!qwen::exec::loadTokenFile(plan.calibTokens, batch, err))
    return module.emitError(err);
  auto ex = qwen::exec::Executor::create(module);
  if (!ex)
    return failure();
  llvm::DenseMap<Operation *, Target *> byOp;
  for (Target &t : targets)
    byOp[t.op] = &t;
  // X^T X of the last input seen (q/k/v and gate/up share theirs).
  Value hInput;
  std::vector<double> H;
  std::vector<double> mean;
  auto hook = [&](const qwen::exec::WeightSite &site,
                  const qwen::exec::Matrix *X,
                  std::vector<float> &w) -> LogicalResult {
    auto it = byOp.find(site.op);
    if (it == byOp.end() || it->second->scheme.keepFloat)
      return success();
    Target &t = *it->second;
    const LayerScheme &s = t.scheme;
    int64_t rows = site.rows, cols = site.cols;
    std::string k = key(t);
    for (int64_t i = 0; i < rows * cols; ++i)
      if (!std::isfinite(w[i]))
        return t.op->emitOpError("weight '")
               << t.layer << "' has a NaN or Inf at element " << i
               << "; it cannot be quantized";
    // A 2:4 layer --qwen-prune did not prune: Wanda's mask from this input.
    // With GPTQ the weight stays whole and the mask goes to GPTQ, which
    // compensates the pruning error too (SparseGPT); otherwise it is
    // pruned here, then rounded.
    std::vector<uint8_t> mask;
    if (s.sparsity == qq::Sparsity::s2_4 && !t.op->hasAttr(qq::QQuantDialect::kPrunedAttrName) &&
        precomputed.find(k) == precomputed.end()) {
      std::vector<float> pw = w;
      if (failed(prune24(t, pw, rows, cols, X)))
        return failure();
      if (X && s.algorithm == Algorithm::gptq) {
        mask.resize(pw.size());
        for (size_t i = 0; i < pw.size(); ++i)
          mask[i] = pw[i] == 0.f;
      } else {
        w = std::move(pw);
      }
    }
    std::vector<float> dq;
    if (auto pc = precomputed.find(k); pc != precomputed.end() || !X) {
      // Already decided (a tied table), or an embedding (no input): RTN.
      if (pc == precomputed.end()) {
        Packed p = quantizePlain(w.data(), rows, cols, s, plan, &dq);
        if (failed(sparsify(t, p, dq, rows, cols)))
          return failure();
        precomputed[k].packed = std::move(p);
      } else {
        quantizePlain(w.data(), rows, cols, s, plan, &dq);
      }
      w = std::move(dq);
      return success();
    }
    if (s.staticAct && !plan.actScales.count(t.layer)) {
      qwen::calib::TensorStats st(cols, /*fullMoment=*/false);
      if (st.add(X->data.data(), X->rows) >= 0)
        return t.op->emitOpError("input of layer '")
               << t.layer << "' has a NaN or Inf on the calibration data";
      qwen::calib::Thresholds th = st.thresholds();
      double thr = plan.actMethod == "max"              ? th.max
                   : plan.actMethod == "percentile-99.99" ? th.p9999
                   : plan.actMethod == "entropy"          ? th.entropy
                                                          : th.mse;
      plan.actScales[t.layer] = thr / 127.0;
    }
    if (s.grid == qq::Grid::codebook) {
      // Codebook: k-means, weighted by E[x_j^2] of the inputs.
      std::vector<double> imp;
      if (s.weighted) {
        imp.assign(cols, 0.0);
        for (int64_t r = 0; r < X->rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            double x = X->data[r * cols + c];
            imp[c] += x * x;
          }
        for (double &v : imp)
          v /= double(std::max<int64_t>(X->rows, 1));
      }
      KMeansOptions o;
      o.maxIters = plan.kmeansMaxIters;
      o.tolerance = plan.kmeansTolerance;
      o.f16 = plan.kmeansF16;
      precomputed[k].packed = quantizeCodebook(w.data(), rows, cols, s, imp,
                                               &dq, o);
      w = std::move(dq);
      return success();
    }
    bool needH = s.algorithm == Algorithm::gptq || s.clipSearch;
    if ((needH || s.biasCorrection) && hInput != site.input) {
      hInput = site.input;
      // H = X^T X through the float matmul of X^T with itself.
      std::vector<float> xt(cols * X->rows);
      for (int64_t r = 0; r < X->rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          xt[c * X->rows + r] = X->data[r * cols + c];
      std::vector<float> hf(cols * cols);
      matmulNT(xt.data(), xt.data(), nullptr, hf.data(), cols, cols, X->rows);
      H.assign(hf.begin(), hf.end());
      mean.assign(cols, 0.0);
      for (int64_t r = 0; r < X->rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          mean[c] += X->data[r * cols + c];
      for (double &m : mean)
        m /= double(X->rows);
    }
    Precomputed pc;
    if (s.algorithm == Algorithm::gptq) {
      GPTQOptions o;
      o.damp = plan.gptqDamp;
      o.actOrder = plan.gptqActOrder;
      o.clipSearch = s.clipSearch;
      o.keepZeros = t.op->hasAttr(qq::QQuantDialect::kPrunedAttrName) ||
                    s.sparsity == qq::Sparsity::s2_4;
      if (!mask.empty())
        o.pruned = &mask;
      std::string err;
      if (!gptq(w.data(), rows, cols, s, H, o, pc.packed, dq, err))
        return t.op->emitOpError("GPTQ of layer '")
               << t.layer << "' failed: " << err
               << " (raise the damping, or give more calibration data)";
    } else {
      std::vector<float> clip;
      if (s.clipSearch)
        clip = searchClip(w.data(), rows, cols, s, H);
      pc.packed = quantizeRTN(w.data(), rows, cols, s, clip, &dq);
    }
    if (s.biasCorrection) {
      pc.biasDelta.assign(rows, 0.f);
      for (int64_t r = 0; r < rows; ++r) {
        double d = 0;
        for (int64_t c = 0; c < cols; ++c)
          d += mean[c] * (double(w[r * cols + c]) - double(dq[r * cols + c]));
        pc.biasDelta[r] = float(d);
      }
    }
    if (failed(sparsify(t, pc.packed, dq, rows, cols)))
      return failure();
    precomputed[k] = std::move(pc);
    w = std::move(dq);
    return success();
  };
  return ex->run(batch, hook);
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
  auto pre = precomputed.find(key(t));
  if (auto o = dyn_cast<qwen::LinearOp>(t.op)) {
    Value bias = o.getBias();
    if (pre != precomputed.end() && !pre->second.biasDelta.empty()) {
      // Bias correction: a new bias entry next to the codes.
      std::vector<float> nb = pre->second.biasDelta;
      if (bias) {
        std::vector<float> old;
        if (failed(qwen::readFloatValue(stores, o, bias, int64_t(nb.size()),
                                        old)))
          return failure();
        for (size_t i = 0; i < nb.size(); ++i)
          nb[i] += old[i];
      }
      std::string name = t.layer + ".bias_corrected";
      for (unsigned i = 1; writer->contains(name); ++i)
        name = t.layer + ".bias_corrected" + std::to_string(i);
      std::string err;
      if (!writer->add(name, qwen::ws::DType::F32, {int64_t(nb.size())},
                       nb.data(), nb.size() * 4, err))
        return emitError(o.getLoc(), err), failure();
      auto ref = SymbolRefAttr::get(
          b.getStringAttr(storeName),
          {FlatSymbolRefAttr::get(b.getStringAttr(name))});
      bias = qwen::WeightOp::create(
                 b, o.getLoc(),
                 RankedTensorType::get({int64_t(nb.size())}, b.getF32Type()),
                 ref)
                 .getResult();
    }
    repl = qq::LinearOp::create(b, o.getLoc(), o.getType(), o.getInput(), qw,
                                bias, act, t.scheme.bf16Act && !act, t.scheme.i16Act && !act);
  }
  else if (auto o = dyn_cast<qwen::LogitsOp>(t.op))
    repl = qq::LogitsOp::create(b, o.getLoc(), o.getType(), o.getInput(), qw,
                                o.getTied(), act, t.scheme.bf16Act && !act,
                                t.scheme.i16Act && !act);
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
      if (ds.getGrid() == qq::Grid::log2 ||
          ds.getSparsity() == qq::Sparsity::unstructured)
        return t.op->emitOpError("layer '")
               << t.layer << "': qquant.decision " << ds
               << " is not a candidate scheme (uniform, codebook, or "
                  "uniform 2:4)";
      LayerScheme s = t.scheme.keepFloat ? plan.fallback : t.scheme;
      LayerScheme dec = qwen::mixed::fromSchemeAttr(ds);
      s.keepFloat = false;
      s.grid = dec.grid;
      s.bits = dec.bits;
      s.isSigned = dec.isSigned;
      s.symmetric = dec.symmetric;
      s.granularity = dec.granularity;
      s.groupSize = dec.groupSize;
      s.sparsity = dec.sparsity;
      if (s.grid == qq::Grid::codebook) { // k-means: no GPTQ / clip / bc
        s.algorithm = qwen::quant::Algorithm::rtn;
        s.clipSearch = s.biasCorrection = false;
      }
      if (s.grid == qq::Grid::codebook || s.sparsity == qq::Sparsity::s2_4)
        s.dynamicAct = s.staticAct = false;
      t.scheme = s;
    }
    if (isa<qwen::EmbeddingOp>(t.op))
      t.scheme.dynamicAct = t.scheme.staticAct = false; // a lookup has no activation
    // --qwen-prune's mark: 2:4 weights are stored compactly; unstructured
    // ones stay dense (their zeros are zero codes).
    if (auto pr = t.op->getAttrOfType<StringAttr>(qq::QQuantDialect::kPrunedAttrName)) {
      if (pr.getValue() != "2:4" && pr.getValue() != "unstructured")
        return t.op->emitOpError("qquant.pruned must be \"2:4\" or "
                                 "\"unstructured\", got ")
               << pr;
      if (!t.scheme.keepFloat && pr.getValue() == "2:4")
        t.scheme.sparsity = qq::Sparsity::s2_4;
    }
    if (t.scheme.granularity == qq::Granularity::group) {
      // Largest allowed group not above the requested one that divides cols.
      int64_t cols = cast<RankedTensorType>(t.weight.getType()).getDimSize(1);
      unsigned g = t.scheme.groupSize;
      while (g >= 32 && cols % g != 0)
        g /= 2;
      if (g >= 32)
        t.scheme.groupSize = g;
      else
        t.scheme.granularity = qq::Granularity::channel;
    }
    if (t.scheme.granularity != qq::Granularity::group)
      t.scheme.groupSize = 0;
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

  if (failed(runCalibrated(targets)))
    return failure();
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
    if (auto g = qwen::quant::parseGranularity(granularity))
      s.granularity = *g;
    else
      return m.emitError("--qwen-quantize-weights: granularity must be "
                         "tensor, channel or group, got '")
             << granularity << "'";
    s.groupSize = groupSize;
    if (act == "dynamic")
      s.dynamicAct = true;
    else if (act == "static")
      s.staticAct = true;
    else if (act != "none")
      return m.emitError("--qwen-quantize-weights: act must be none, "
                         "dynamic or static, got '")
             << act << "'";
    if (grid == "log2")
      s.grid = qq::Grid::log2;
    else if (grid != "uniform")
      return m.emitError("--qwen-quantize-weights: grid must be uniform or "
                         "log2, got '")
             << grid << "'";
    if (algorithm == "gptq")
      s.algorithm = qwen::quant::Algorithm::gptq;
    else if (algorithm != "rtn")
      return m.emitError("--qwen-quantize-weights: algorithm must be rtn or "
                         "gptq, got '")
             << algorithm << "'";
    s.clipSearch = clipSearch;
    s.biasCorrection = biasCorrection;
    if (actMethod != "max" && actMethod != "percentile-99.99" &&
        actMethod != "entropy" && actMethod != "mse")
      return m.emitError("--qwen-quantize-weights: act-method must be max, "
                         "percentile-99.99, entropy or mse, got '")
             << actMethod << "'";
    if (!(damp > 0) || damp > 1)
      return m.emitError("--qwen-quantize-weights: damp must be in (0, 1], got ")
             << damp;
    plan.calibTokens = calibTokens;
    plan.gptqDamp = damp;
    plan.gptqActOrder = actOrder;
    plan.actMethod = actMethod;
    std::string err;
    if (!s.validate(err))
      return m.emitError("--qwen-quantize-weights: ") << err;
    plan.fallback = s;
    SmallVector<std::string> kinds(ops.begin(), ops.end());
    if (kinds.empty())
      kinds = {"linear", "logits"};
    if (std::string bad = plan.assign(kinds, s); !bad.empty())
      return m.emitError("--qwen-quantize-weights: ops takes linear, "
                         "logits, embedding; got '")
             << bad << "'";
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
