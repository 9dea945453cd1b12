//===- Recipe.cpp - qwen-compile's quantization recipes -------------------===//
//
// Named recipes (weights: round-to-nearest, signed codes, symmetric with the
// restricted range [-(2^(b-1)-1), 2^(b-1)-1], f32 scales):
//
//   fp32        nothing is quantized
//   w8a16       linear i8 per channel
//   w4a16-g128  linear i4 groups of 128
//   w4a16-g32   linear i4 groups of 32
//   w3a16-g128  linear i3 groups of 128
//   w2a16-g64   linear i2 groups of 64 (symmetric 2-bit is ternary: -1, 0, 1)
//   w8a8-dyn    linear i8 per channel + dynamic per-token int8 activations
//   w8a8        linear i8 per channel + static per-tensor int8 activations,
//               scale = threshold / 127 from qwen-calibrate's stats.json
//               (--calib, --calib-method)
//   w4a8-dyn    linear i4 groups of 128 + dynamic per-token int8 activations
//               (int8 x int4 products accumulated exactly in i32 per group)
//   w4a8        linear i4 per channel + static per-tensor int8 activations
//               from --calib, as w8a8
//   w8a8-int-only  w8a8, then --qwen-integer-only: int8 linears with fused
//               requantization, SiLU table, integer RMSNorm (--calib from
//               qwen-calibrate --int-only-sites)
//   cb4a16      linear: 4-bit k-means codebooks per output channel (16 f32
//               centroids a row, --qwen-share-weights / WeightSharing.h)
//   cb3a16      linear: 3-bit k-means codebooks per output channel
//               (suffix -weighted: the k-means weighs each weight by
//               E[x_j^2] of its input channel over --calib-text, as GPTQ's
//               data comes, e.g. cb4a16-weighted; suffix -f16: f16
//               centroids, half the codebook bytes, e.g. cb4a16-f16)
//
// Activation suffix -bf16, on weight-only recipes (e.g. w4a16-g128-bf16):
// the linears' inputs are rounded to bfloat16 (qquant.linear {bf16_input}),
// true 16-bit activations; on x86 with AVX512-BF16 the 4-bit decode kernel
// then multiplies with vdpbf16ps (QuantKernels.cpp). Suffix -i16, on
// group-wise uniform weight-only recipes (e.g. w4a16-g128-i16): the inputs
// are quantized to int16 per weight group (qquant.linear {i16_input}; 15
// bits per block against bf16's 8 per element); on x86 with AVX512-VNNI the
// 4-bit decode kernel multiplies with vpdpwssd and scales once per group.
//
// Pruning suffixes, on any recipe including fp32 (--qwen-prune before
// quantization): -2:4 (2 of every 4 inputs kept; stored compactly, weight-
// only uniform / log2 recipes), -sp<N> (N % unstructured, zeros stored as
// codes), by Wanda on --calib-text, or by magnitude with -magnitude.
//
// LM head and embedding: every quantized recipe stores them as i8 per
// channel, weight-only (also in w8a8-dyn). They are the matrices most
// sensitive to quantization (the LM head's error goes straight into the
// logits, with no normalization after it) and, tied, one table serves both;
// llama.cpp likewise keeps output / token_embd at higher precision (Q6_K /
// Q8_0) for its low-bit types. 8 bits per channel costs little error and,
// tied, one table.
//
// A recipe file: {"base": "<named recipe>", "layers": {"<layer name or
// glob>": "fp32" | {"bits": 8, "granularity": "channel", ...}}}; layers are
// named by their weight's store entry (see QuantizeWeights.h).
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Recipe.h"
#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"
#include "qwen/Support/Sha256.h"
#include "qwen/Transforms/MixedPrecision.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"
#include <cmath>
#include <cstring>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen::compiler {

using quant::LayerScheme;

bool Recipe::quantizes() const {
  return plan.linear || plan.logits || plan.embedding || !plan.layers.empty();
}

const std::vector<std::string> &recipeNames() {
  static const std::vector<std::string> names = {
      "fp32",      "w8a16",     "w4a16-g128", "w4a16-g32",
      "w3a16-g128", "w2a16-g64", "w8a8-dyn",   "w8a8",
      "w4a8-dyn",   "w4a8",      "w8a8-int-only", "cb4a16",
      "cb3a16"};
  return names;
}

static std::string namesList() {
  std::string s;
  for (const std::string &n : recipeNames())
    s += (s.empty() ? "" : ", ") + n;
  return s;
}

static LayerScheme scheme(unsigned bits, qq::Granularity g, unsigned group,
                          bool dyn = false, bool stat = false) {
  LayerScheme s;
  s.bits = bits;
  s.isSigned = true;
  s.symmetric = true;
  s.granularity = g;
  s.groupSize = g == qq::Granularity::group ? group : 0;
  s.dynamicAct = dyn;
  s.staticAct = stat;
  return s;
}

static bool namedRecipe(const std::string &name, quant::QuantizePlan &plan,
                        std::string &err) {
  using G = qq::Granularity;
  plan = quant::QuantizePlan();
  LayerScheme head = scheme(8, G::channel, 0);
  plan.fallback = head;
  if (name == "fp32")
    return true;
  std::optional<LayerScheme> linear;
  if (name == "w8a16")
    linear = scheme(8, G::channel, 0);
  else if (name == "w4a16-g128")
    linear = scheme(4, G::group, 128);
  else if (name == "w4a16-g32")
    linear = scheme(4, G::group, 32);
  else if (name == "w3a16-g128")
    linear = scheme(3, G::group, 128);
  else if (name == "w2a16-g64")
    linear = scheme(2, G::group, 64);
  else if (name == "w8a8-dyn")
    linear = scheme(8, G::channel, 0, /*dyn=*/true);
  else if (name == "w8a8" || name == "w8a8-int-only")
    linear = scheme(8, G::channel, 0, /*dyn=*/false, /*stat=*/true);
  else if (name == "w4a8-dyn")
    linear = scheme(4, G::group, 128, /*dyn=*/true);
  else if (name == "w4a8")
    linear = scheme(4, G::channel, 0, /*dyn=*/false, /*stat=*/true);
  else if (name == "cb4a16" || name == "cb3a16") {
    linear = scheme(name == "cb4a16" ? 4 : 3, G::channel, 0);
    linear->grid = qq::Grid::codebook;
    linear->isSigned = false;
  }
  if (!linear) {
    err = "unknown recipe '" + name + "' (available: " + namesList() +
          ", each optionally with method suffixes -gptq, -awq, -clip, -bc, "
          "-smooth, -log2, -weighted, -f16, -bf16, -i16 and pruning suffixes -2:4, -sp<N>, "
          "-magnitude; or a .json recipe file)";
    return false;
  }
  plan.linear = linear;
  plan.logits = head;
  plan.embedding = head;
  plan.fallback = *linear;
  return true;
}

/// mixed-<bits>: the plan of w4a16-g128 (each op's scheme then comes from
/// its qquant.decision, --qwen-assign-precision), and the budget.
static bool mixedRecipe(const std::string &name, Recipe &out,
                        std::string &err) {
  double bits = 0;
  if (llvm::StringRef(name).drop_front(6).getAsDouble(bits) || !(bits > 0) ||
      bits > 32) {
    err = "recipe '" + name + "': expected mixed-<average stored bits per "
          "weight>, e.g. mixed-4.5";
    return false;
  }
  if (!namedRecipe("w4a16-g128", out.plan, err))
    return false;
  out.mixedBits = bits;
  return true;
}

/// The suffixes a named recipe may carry (README.md, "Recipes"): methods
/// -gptq, -awq, -clip, -bc, -smooth, -log2, -weighted, -f16, and pruning
/// -2:4, -sp<N>, -magnitude.
static bool suffixedRecipe(const std::string &name, Recipe &out,
                           std::string &err) {
  std::string base = name;
  std::vector<std::string> sfx;
  static const char *const known[] = {"-gptq",     "-awq",  "-clip",
                                      "-bc",       "-smooth", "-log2",
                                      "-weighted", "-f16",  "-2:4",
                                      "-magnitude", "-bf16", "-i16"};
  double sparsePercent = -1;
  for (bool found = true; found;) {
    found = false;
    // -sp<percent>: unstructured sparsity.
    size_t dash = base.rfind('-');
    if (dash != std::string::npos && dash > 0 &&
        llvm::StringRef(base).substr(dash + 1).starts_with("sp")) {
      unsigned pct = 0;
      if (llvm::StringRef(base).substr(dash + 3).getAsInteger(10, pct) ||
          pct == 0 || pct >= 100) {
        err = "recipe '" + name + "': -sp<N> takes a sparsity percentage "
              "from 1 to 99 (e.g. -sp50)";
        return false;
      }
      sparsePercent = pct;
      sfx.insert(sfx.begin(), "sp");
      base.resize(dash);
      found = true;
    }
    for (const char *k : known)
      if (llvm::StringRef(base).ends_with(k) && base.size() > strlen(k)) {
        sfx.insert(sfx.begin(), k + 1);
        base.resize(base.size() - strlen(k));
        found = true;
      }
  }
  if (llvm::StringRef(base).starts_with("mixed-")
          ? !mixedRecipe(base, out, err)
          : !namedRecipe(base, out.plan, err))
    return false;
  // Pruning suffixes (fp32 takes them too).
  std::vector<std::string> methods;
  for (const std::string &k : sfx) {
    if (k == "2:4" || k == "sp") {
      if (!out.prune.empty()) {
        err = "recipe '" + name + "': give one pruning suffix (-2:4 or "
              "-sp<N>)";
        return false;
      }
      out.prune = k == "2:4" ? "2:4" : "unstructured";
      out.pruneSparsity = k == "2:4" ? 0.5 : sparsePercent / 100.0;
    } else if (k == "magnitude") {
      out.pruneMethod = "magnitude";
    } else {
      methods.push_back(k);
    }
  }
  if (out.pruneMethod == "magnitude" && out.prune.empty()) {
    err = "recipe '" + name + "': -magnitude qualifies a pruning suffix "
          "(-2:4 or -sp<N>)";
    return false;
  }
  if (out.prune == "2:4" && out.plan.linear) {
    const LayerScheme &l = *out.plan.linear;
    if (l.grid == qq::Grid::codebook || l.dynamicAct || l.staticAct) {
      err = "recipe '" + name + "': -2:4 stores uniform weight-only codes "
            "compactly; codebook and int8-activation recipes take -sp<N>";
      return false;
    }
  }
  if (methods.empty())
    return true;
  if (!out.plan.linear) {
    err = "recipe '" + base + "' takes no method suffix";
    return false;
  }
  LayerScheme &l = *out.plan.linear;
  bool actQuant = l.dynamicAct || l.staticAct;
  for (const std::string &k : methods) {
    if (k == "gptq")
      l.algorithm = quant::Algorithm::gptq;
    else if (k == "clip")
      l.clipSearch = true;
    else if (k == "bc")
      l.biasCorrection = true;
    else if (k == "weighted") {
      if (l.grid != qq::Grid::codebook) {
        err = "recipe '" + name + "': -weighted takes a codebook recipe "
              "(cb4a16, cb3a16)";
        return false;
      }
      l.weighted = true;
    }
    else if (k == "f16") {
      if (l.grid != qq::Grid::codebook) {
        err = "recipe '" + name + "': -f16 (f16 centroids) takes a codebook "
              "recipe (cb4a16, cb3a16)";
        return false;
      }
      out.plan.kmeansF16 = true;
    } else if (k == "bf16") {
      if (actQuant) {
        err = "recipe '" + name + "': -bf16 (bfloat16 activations) takes a "
              "weight-only recipe (e.g. w4a16-g128-bf16); int8 activations "
              "are already quantized";
        return false;
      }
      l.bf16Act = true;
    } else if (k == "i16") {
      if (actQuant || l.bf16Act || l.grid != qq::Grid::uniform ||
          l.granularity != qq::Granularity::group) {
        err = "recipe '" + name + "': -i16 (int16 activations per weight "
              "group) takes a group-wise uniform weight-only recipe (e.g. "
              "w4a16-g128-i16)";
        return false;
      }
      l.i16Act = true;
    } else if (k == "log2") {
      if (l.bits > 4 || actQuant) {
        err = "recipe '" + name + "': -log2 takes a 3- or 4-bit weight-only "
              "recipe (e.g. w4a16-g128-log2)";
        return false;
      }
      l.grid = qq::Grid::log2;
    } else if (k == "awq") {
      if (actQuant) {
        err = "recipe '" + name + "': -awq is for weight-only recipes; "
              "int8 activations take -smooth (SmoothQuant)";
        return false;
      }
      out.smooth = "awq";
      l.clipSearch = true; // AWQ = activation-aware scales + clip search
    } else if (k == "smooth") {
      if (!actQuant) {
        err = "recipe '" + name + "': -smooth (SmoothQuant) is for int8 "
              "activation recipes (w8a8, w8a8-dyn, w4a8, ...); weight-only "
              "recipes take -awq";
        return false;
      }
      out.smooth = "smoothquant";
    }
  }
  // -2:4 with GPTQ (Wanda's mask): the quantizer prunes each layer itself
  // and GPTQ reconstructs the pruning error with the rounding error
  // (SparseGPT-style), instead of --qwen-prune zeroing the weights first.
  if (out.prune == "2:4" && out.pruneMethod == "wanda" &&
      l.algorithm == quant::Algorithm::gptq) {
    l.sparsity = qq::Sparsity::s2_4;
    out.prune.clear();
  }
  out.plan.fallback = l;
  return true;
}

bool resolveRecipe(const std::string &arg, Recipe &out, std::string &err) {
  out = Recipe();
  if (!llvm::StringRef(arg).ends_with(".json")) {
    out.name = arg;
    return suffixedRecipe(arg, out, err);
  }
  out.file = arg;
  auto buf = llvm::MemoryBuffer::getFile(arg);
  if (!buf) {
    err = "recipe file '" + arg + "': " + buf.getError().message();
    return false;
  }
  llvm::Expected<llvm::json::Value> v = llvm::json::parse((*buf)->getBuffer());
  if (!v) {
    err = "recipe file '" + arg + "': " + llvm::toString(v.takeError());
    return false;
  }
  const llvm::json::Object *o = v->getAsObject();
  if (!o) {
    err = "recipe file '" + arg + "': expected a JSON object";
    return false;
  }
  std::vector<std::string> keys;
  for (const auto &kv : *o)
    keys.push_back(kv.first.str());
  std::sort(keys.begin(), keys.end());
  for (const std::string &k : keys)
    if (k != "base" && k != "layers") {
      err = "recipe file '" + arg + "': unknown key '" + k +
            "' (known: base, layers)";
      return false;
    }
  std::optional<llvm::StringRef> base = o->getString("base");
  if (o->get("base") && !base) {
    err = "recipe file '" + arg + "': 'base' must be a recipe name";
    return false;
  }
  out.name = base ? base->str() : "fp32";
  if (!suffixedRecipe(out.name, out, err)) {
    err = "recipe file '" + arg + "': " + err;
    return false;
  }
  if (const llvm::json::Value *layers = o->get("layers")) {
    const llvm::json::Object *lo = layers->getAsObject();
    if (!lo) {
      err = "recipe file '" + arg + "': 'layers' must be an object";
      return false;
    }
    if (!quant::parseLayerOverrides(*lo, out.plan.layers, err)) {
      err = "recipe file '" + arg + "': " + err;
      return false;
    }
  }
  return true;
}

bool needsCalibText(const Recipe &r) {
  if (r.mixedBits > 0) // --qwen-sensitivity runs the model on it
    return true;
  if (!r.prune.empty() && r.pruneMethod == "wanda")
    return true;
  const quant::QuantizePlan &p = r.plan;
  auto data = [](const LayerScheme &s) {
    return !s.keepFloat && (s.algorithm == quant::Algorithm::gptq ||
                            s.clipSearch || s.biasCorrection || s.weighted);
  };
  if (!r.smooth.empty() || (p.linear && data(*p.linear)))
    return true;
  for (const quant::LayerOverride &ov : p.layers)
    if (!ov.keepFloat && data(ov.apply(p.fallback)))
      return true;
  return false;
}

bool needsCalibration(const Recipe &r) {
  const quant::QuantizePlan &p = r.plan;
  if ((p.linear && p.linear->staticAct) || (p.logits && p.logits->staticAct))
    return true;
  for (const quant::LayerOverride &ov : p.layers)
    if (!ov.keepFloat && ov.apply(p.fallback).staticAct)
      return true;
  return false;
}

const std::vector<std::string> &calibMethods() {
  static const std::vector<std::string> m = {
      "max", "percentile", "percentile-99.9", "entropy", "mse"};
  return m;
}

bool loadCalibration(const std::string &path, const std::string &method,
                     std::map<std::string, double> &scales,
                     std::string &sha256, std::string &err) {
  scales.clear();
  std::string where = "--calib '" + path + "': ";
  // The key of each method in a layer's "thresholds" object.
  std::string key;
  if (method == "max")
    key = "max";
  else if (method == "percentile")
    key = "percentile_99.99";
  else if (method == "percentile-99.9")
    key = "percentile_99.9";
  else if (method == "entropy")
    key = "entropy";
  else if (method == "mse")
    key = "mse";
  else {
    std::string list;
    for (const std::string &m : calibMethods())
      list += (list.empty() ? "" : ", ") + m;
    err = "--calib-method: unknown method '" + method + "' (available: " +
          list + ")";
    return false;
  }
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf) {
    err = where + buf.getError().message();
    return false;
  }
  if (!qwen::sha256File(path, sha256, err)) {
    err = where + err;
    return false;
  }
  llvm::Expected<llvm::json::Value> v = llvm::json::parse((*buf)->getBuffer());
  if (!v) {
    err = where + llvm::toString(v.takeError());
    return false;
  }
  const llvm::json::Object *o = v->getAsObject();
  if (!o || o->getString("format") != "qwen-calib") {
    err = where + "not a qwen-calibrate statistics file (\"format\": "
                  "\"qwen-calib\" missing)";
    return false;
  }
  if (o->getInteger("version") != 1) {
    err = where + "unsupported version (expected 1)";
    return false;
  }
  const llvm::json::Object *layers = o->getObject("layers");
  if (!layers || layers->empty()) {
    err = where + "no \"layers\" object, or it is empty";
    return false;
  }
  for (const auto &kv : *layers) {
    std::string name = kv.first.str();
    // "<layer>#out" and other '#' sites are for --qwen-integer-only, not
    // linear inputs.
    if (name.find('#') != std::string::npos)
      continue;
    const llvm::json::Object *l = kv.second.getAsObject();
    const llvm::json::Object *th = l ? l->getObject("thresholds") : nullptr;
    std::optional<double> t = th ? th->getNumber(key) : std::nullopt;
    if (!t) {
      err = where + "layer '" + name + "' has no thresholds." + key;
      return false;
    }
    if (!std::isfinite(*t) || *t < 0) {
      err = where + "layer '" + name + "': threshold " + key + " = " +
            std::to_string(*t) + " is not a finite non-negative number";
      return false;
    }
    // A layer whose input was always zero: any positive scale quantizes 0
    // exactly; keep the scale tiny but normal.
    scales[name] = std::max(*t, 1e-6) / 127.0;
  }
  return true;
}

RecipeSummary summarizeRecipe(ModuleOp module) {
  RecipeSummary s;
  double bits = 0;
  qwen::WeightStoreCache stores;
  llvm::StringSet<> seen;
  auto count = [&](Operation *op, Value w, qq::ActivationAttr act) {
    std::string scheme = "fp32";
    if (auto qt = dyn_cast<qq::WeightType>(w.getType())) {
      // "codebook4 channel", "log2 i4 ...", "... sparsity=2:4".
      LayerScheme ls = qwen::mixed::fromSchemeAttr(qt.getScheme());
      ls.dynamicAct = act && act.getMode() == qq::ActMode::dynamic;
      ls.staticAct = act && act.getMode() == qq::ActMode::static_;
      ls.bf16Act = qq::hasBf16Input(op), ls.i16Act = qq::hasI16Input(op);
      scheme = ls.str();
      auto wop = w.getDefiningOp<qq::WeightOp>();
      std::string key = wop ? wop.getRef().getLeafReference().str() : "";
      if (!wop || seen.insert(key).second) {
        for (const qwen::WeightComponent &c : qwen::getWeightComponents(qt)) {
          // The stored bytes (scales may be f16 or f32).
          const ws::Entry *e =
              wop ? stores.find(wop, wop.getRef(), c.suffix) : nullptr;
          int64_t n = 1;
          for (int64_t d : c.shape)
            n *= d;
          bits += e ? double(e->nbytes) * 8
                    : double(n) * (c.suffix == ".scales" ? 32 : 8);
        }
        s.weights += qt.getRows() * qt.getCols();
      }
    } else if (auto t = dyn_cast<RankedTensorType>(w.getType())) {
      auto wop = w.getDefiningOp<qwen::WeightOp>();
      std::string key = wop ? "f|" + wop.getRef().getLeafReference().str() : "";
      if (t.hasStaticShape() && (!wop || seen.insert(key).second)) {
        bits += double(t.getNumElements()) * t.getElementTypeBitWidth();
        s.weights += t.getNumElements();
      }
    }
    // Pruned weights stored dense (unstructured, or float) say so.
    if (auto pr = op->getAttrOfType<StringAttr>(qq::QQuantDialect::kPrunedAttrName))
      if (scheme.find("sparsity=") == std::string::npos)
        scheme += " pruned=" + pr.getValue().str();
    ++s.schemes[scheme];
  };
  module.walk([&](Operation *op) {
    if (auto o = dyn_cast<qwen::LinearOp>(op))
      count(op, o.getWeight(), {});
    else if (auto o = dyn_cast<qwen::LogitsOp>(op))
      count(op, o.getWeight(), {});
    else if (auto o = dyn_cast<qwen::EmbeddingOp>(op))
      count(op, o.getTable(), {});
    else if (auto o = dyn_cast<qq::LinearOp>(op))
      count(op, o.getWeight(), o.getActAttr());
    else if (auto o = dyn_cast<qq::LogitsOp>(op))
      count(op, o.getWeight(), o.getActAttr());
    else if (auto o = dyn_cast<qq::EmbeddingOp>(op))
      count(op, o.getTable(), {});
  });
  if (s.weights)
    s.bitsPerWeight = bits / double(s.weights);
  return s;
}

} // namespace qwen::compiler
