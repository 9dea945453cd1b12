//===- AssignPrecision.cpp - per-layer precision within a budget ----------===//
//
// --qwen-assign-precision{avg-bits=4.5 | size-mb=2.5 | latency-ms=3}: reads
// the `qquant.sensitivity` costs --qwen-sensitivity measured on each
// linear / logits / embedding op, picks one candidate scheme per layer (a
// layer is a weight's store entry: a tied embedding and LM head are one)
// with the exact solver of MixedPrecision.h, and writes
// `qquant.decision<scheme, reason, loss, budget>` on every op of the layer.
// --qwen-quantize-weights then quantizes each op as its decision says.
//
// Budgets: avg-bits counts the stored bits (codes + f32 scales + zero
// points) of the layers over their number of weights; size-mb the bytes of
// every weight the module references (the layers as assigned plus the
// other float weights, e.g. the norms), 1 MB = 1e6 bytes; latency-ms the
// summed `latency` of the chosen costs (the kernel cost model's prediction
// per decoded token).
//
// Reasons: `pinned` (named by `pins=`), `sensitivity` (the solver kept more
// bits than the budget's average for it), `budget` (otherwise).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/MixedPrecision.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <cstdio>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_ASSIGNPRECISION
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace qwen::mixed {

namespace {

using quant::LayerScheme;

struct Layer {
  std::string name;
  std::vector<Operation *> ops;
  int64_t rows = 0, cols = 0;
  std::vector<qq::CostAttr> costs;
  // Solver options: one per cost, plus a pinned scheme not among them.
  std::vector<LayerScheme> schemes;
  std::vector<double> losses, bits; // bits per weight
  std::vector<double> latency;      // ms, NaN where unknown
  int pinned = -1;
  // The weight's store entry (the first op reading it).
  SymbolRefAttr ref;
  // Other entries holding the same bytes (a tied embedding and LM head the
  // exporter wrote twice): one decision for all, see mergeTiedTables.
  std::vector<std::string> tied;
  int64_t copies() const { return 1 + int64_t(tied.size()); }
};

bool weightOf(Operation *op, Value &w) {
  if (auto o = dyn_cast<qwen::LinearOp>(op))
    w = o.getWeight();
  else if (auto o = dyn_cast<qwen::LogitsOp>(op))
    w = o.getWeight();
  else if (auto o = dyn_cast<qwen::EmbeddingOp>(op))
    w = o.getTable();
  else
    return false;
  return true;
}

// Exporters write a tied embedding and LM head as two initializers holding
// the same bytes; the bundle stores them once (weight dedup) only if both get
// the same scheme, so they are one decision. A layer read by an embedding or
// logits op whose entry has the same dtype, shape and bytes as an earlier
// such layer's (measured with the same candidates) joins it: losses and
// latencies add, the stored bits count once for size-mb.
LogicalResult mergeTiedTables(llvm::MapVector<StringRef, Layer> &layers) {
  auto isTable = [](const Layer &l) {
    return llvm::any_of(l.ops, [](Operation *op) { return isa<qwen::EmbeddingOp, qwen::LogitsOp>(op); });
  };
  qwen::WeightStoreCache stores;
  std::vector<StringRef> tables, gone;
  for (auto &[name, l] : layers)
    if (isTable(l))
      tables.push_back(name);
  for (size_t j = 1; j < tables.size(); ++j) {
    Layer &b = layers[tables[j]];
    for (size_t i = 0; i < j; ++i) {
      Layer &a = layers[tables[i]];
      if (llvm::is_contained(gone, tables[i]) || a.rows != b.rows || a.cols != b.cols ||
          a.costs.size() != b.costs.size())
        continue;
      bool sameCandidates = true;
      for (size_t k = 0; k < a.costs.size(); ++k)
        sameCandidates &= a.costs[k].getScheme() == b.costs[k].getScheme();
      if (!sameCandidates)
        continue;
      const ws::Entry *ea = stores.find(a.ops[0], a.ref), *eb = stores.find(b.ops[0], b.ref);
      if (!ea || !eb)
        return failure();
      if (ea->dtype != eb->dtype || ea->shape != eb->shape || ea->nbytes != eb->nbytes)
        continue;
      const void *pa = stores.open(a.ops[0], a.ref)->data(*ea), *pb = stores.open(b.ops[0], b.ref)->data(*eb);
      if (std::memcmp(pa, pb, ea->nbytes) != 0)
        continue;
      MLIRContext *ctx = a.ops[0]->getContext();
      std::vector<qq::CostAttr> sum;
      for (size_t k = 0; k < a.costs.size(); ++k) {
        qq::CostAttr ca = a.costs[k], cb = b.costs[k];
        FloatAttr lat;
        if (ca.getLatency() && cb.getLatency())
          lat = FloatAttr::get(Float64Type::get(ctx), ca.getLatency().getValueAsDouble() +
                                                          cb.getLatency().getValueAsDouble());
        sum.push_back(qq::CostAttr::get(
            ctx, ca.getScheme(),
            FloatAttr::get(Float64Type::get(ctx), ca.getLoss().getValueAsDouble() + cb.getLoss().getValueAsDouble()),
            ca.getBits(), lat));
      }
      a.costs = std::move(sum);
      a.ops.insert(a.ops.end(), b.ops.begin(), b.ops.end());
      a.tied.push_back(b.name);
      a.tied.insert(a.tied.end(), b.tied.begin(), b.tied.end());
      gone.push_back(tables[j]);
      break;
    }
  }
  for (StringRef n : gone)
    layers.erase(n);
  return success();
}

class Assigner {
public:
  Assigner(ModuleOp m, const AssignOptions &o) : module(m), opts(o) {}
  LogicalResult run();

private:
  ModuleOp module;
  const AssignOptions &opts;
};

LogicalResult Assigner::run() {
  MLIRContext *ctx = module.getContext();
  int budgets = (opts.avgBits > 0) + (opts.sizeMB > 0) + (opts.latencyMs > 0);
  if (budgets != 1)
    return module.emitError("--qwen-assign-precision needs exactly one "
                            "budget: avg-bits=, size-mb= or latency-ms=");

  // Layers in program order, by weight store entry.
  llvm::MapVector<StringRef, Layer> layers;
  llvm::DenseSet<Operation *> layerWeights;
  bool failedWalk = false;
  module.walk([&](Operation *op) {
    auto sens = op->getAttrOfType<ArrayAttr>("qquant.sensitivity");
    if (!sens)
      return;
    Value w;
    qwen::WeightOp wop;
    RankedTensorType wt;
    if (weightOf(op, w)) {
      wop = w.getDefiningOp<qwen::WeightOp>();
      wt = dyn_cast<RankedTensorType>(w.getType());
    }
    if (!wop || !wt || wt.getRank() != 2 || !wt.hasStaticShape()) {
      op->emitOpError("has qquant.sensitivity but no 2-D float weight from "
                      "a weight store");
      failedWalk = true;
      return;
    }
    StringRef name = wop.getRef().getLeafReference().getValue();
    Layer &l = layers[name];
    layerWeights.insert(wop);
    if (l.ops.empty()) {
      l.name = name.str();
      l.ref = wop.getRef();
      l.rows = wt.getDimSize(0);
      l.cols = wt.getDimSize(1);
      for (Attribute a : sens)
        l.costs.push_back(cast<qq::CostAttr>(a));
    }
    l.ops.push_back(op);
  });
  if (failedWalk)
    return failure();
  if (layers.empty())
    return module.emitError("--qwen-assign-precision: no op has "
                            "qquant.sensitivity (run --qwen-sensitivity "
                            "first)");

  if (failed(mergeTiedTables(layers)))
    return failure();

  // Pins: exact names beat globs; every pin must match a layer.
  std::vector<llvm::GlobPattern> globs(opts.pins.size());
  std::vector<bool> used(opts.pins.size(), false);
  for (auto [i, p] : llvm::enumerate(opts.pins))
    if (p.isGlob()) {
      auto g = llvm::GlobPattern::create(p.pattern);
      if (!g)
        return module.emitError("pin '")
               << p.pattern << "': " << llvm::toString(g.takeError());
      globs[i] = std::move(*g);
    }
  LayerScheme pinBase = defaultCandidates()[0]; // i8 per channel

  double totalWeights = 0;
  for (auto &[name, l] : layers) {
    totalWeights += double(l.rows) * l.cols * l.copies();
    for (qq::CostAttr c : l.costs) {
      LayerScheme s = effectiveScheme(fromSchemeAttr(c.getScheme()), l.cols);
      l.schemes.push_back(s);
      l.losses.push_back(c.getLoss().getValueAsDouble());
      l.bits.push_back(double(storedBits(s, l.rows, l.cols)) /
                       (double(l.rows) * l.cols));
      l.latency.push_back(c.getLatency() ? c.getLatency().getValueAsDouble()
                                         : std::nan(""));
    }
    const quant::LayerOverride *match = nullptr;
    int globHits = 0;
    const Layer &lay = l;
    auto named = [&lay](llvm::function_ref<bool(StringRef)> pred) {
      return pred(lay.name) || llvm::any_of(lay.tied, [&](const std::string &t) { return pred(t); });
    };
    for (auto [i, p] : llvm::enumerate(opts.pins)) {
      StringRef pat = p.pattern;
      if (!p.isGlob() && named([pat](StringRef n) { return pat == n; })) {
        if (match)
          return l.ops[0]->emitOpError("layer '")
                 << l.name << "' is pinned twice ('" << match->pattern << "' and '" << pat
                 << "' name the same table); pin one name";
        match = &p;
        used[i] = true;
      }
    }
    if (!match)
      for (auto [i, p] : llvm::enumerate(opts.pins)) {
        const llvm::GlobPattern &glob = globs[i];
        if (!p.isGlob() || !named([&glob](StringRef n) { return glob.match(n); }))
          continue;
        if (globHits++)
          return l.ops[0]->emitOpError("layer '")
                 << l.name << "' is matched by several pin globs; name it "
                              "exactly";
        match = &p;
        used[i] = true;
      }
    if (match) {
      LayerScheme s = match->apply(pinBase);
      std::string err;
      if (!s.validate(err))
        return l.ops[0]->emitOpError("pin of layer '") << l.name << "': " << err;
      if (!s.keepFloat)
        s = effectiveScheme(s, l.cols);
      auto it = std::find(l.schemes.begin(), l.schemes.end(), s);
      if (it != l.schemes.end() && !s.keepFloat) {
        l.pinned = int(it - l.schemes.begin());
      } else {
        // Not measured: its loss is unknown (0); its size is exact.
        l.schemes.push_back(s);
        l.losses.push_back(0.0);
        l.bits.push_back(double(storedBits(s, l.rows, l.cols)) /
                         (double(l.rows) * l.cols));
        l.latency.push_back(std::nan(""));
        l.pinned = int(l.schemes.size()) - 1;
      }
    }
  }
  for (auto [i, p] : llvm::enumerate(opts.pins))
    if (!used[i])
      return module.emitError("pin '")
             << p.pattern << "' matches no layer with qquant.sensitivity";

  // The budget in the solver's unit.
  std::string budgetStr;
  double budget = 0;
  double fixedBytes = 0;
  {
    llvm::raw_string_ostream os(budgetStr);
    auto num = [](double v) {
      char buf[32];
      snprintf(buf, sizeof buf, "%g", v);
      return std::string(buf);
    };
    if (opts.avgBits > 0) {
      os << "avg-bits=" << num(opts.avgBits);
      budget = opts.avgBits * totalWeights; // bits
    } else if (opts.sizeMB > 0) {
      os << "size-mb=" << num(opts.sizeMB);
      llvm::DenseSet<StringRef> seen;
      module.walk([&](qwen::WeightOp w) {
        if (layerWeights.contains(w))
          return;
        auto t = dyn_cast<RankedTensorType>(w.getType());
        if (!t || !t.hasStaticShape() ||
            !seen.insert(w.getRef().getLeafReference().getValue()).second)
          return;
        fixedBytes += double(t.getNumElements()) *
                      ((t.getElementTypeBitWidth() + 7) / 8);
      });
      budget = (opts.sizeMB * 1e6 - fixedBytes) * 8; // bits
    } else {
      os << "latency-ms=" << num(opts.latencyMs);
      budget = opts.latencyMs;
    }
  }

  std::vector<Item> items;
  for (auto &[name, l] : layers) {
    Item it;
    for (size_t k = 0; k < l.schemes.size(); ++k) {
      double cost;
      if (opts.latencyMs > 0) {
        cost = l.latency[k];
        if (std::isnan(cost))
          return l.ops[0]->emitOpError("layer '")
                 << l.name << "' has no latency for scheme "
                 << candidateName(l.schemes[k])
                 << " (run --qwen-sensitivity with cost-model=)";
      } else {
        // Tied copies are stored once (size-mb) but count as weights of
        // each op (avg-bits, as the manifest's bits_per_weight).
        double n = double(l.rows) * l.cols * (opts.sizeMB > 0 ? 1 : l.copies());
        cost = std::round(l.bits[k] * n);
      }
      it.options.push_back({cost, l.losses[k]});
    }
    it.pinned = l.pinned;
    items.push_back(it);
  }
  Solution sol = solve(items, budget);
  if (!sol.feasible) {
    double minCost = sol.cost;
    auto d = module.emitError("--qwen-assign-precision: the budget ")
             << budgetStr << " cannot be met: the cheapest assignment needs ";
    if (opts.avgBits > 0)
      d << llvm::formatv("{0:f4}", minCost / totalWeights).str()
        << " bits per weight";
    else if (opts.sizeMB > 0)
      d << llvm::formatv("{0:f4}", (minCost / 8 + fixedBytes) / 1e6).str()
        << " MB";
    else
      d << llvm::formatv("{0:f4}", minCost).str() << " ms";
    return failure();
  }

  // Decisions. A layer given more bits than the budget's average (for a
  // latency budget: the assignment's average) is there for its sensitivity.
  double avgChosen = budget / totalWeights; // bits budgets
  if (opts.latencyMs > 0) {
    double b = 0;
    size_t i = 0;
    for (auto &[name, l] : layers)
      b += l.bits[sol.choice[i++]] * double(l.rows) * l.cols * l.copies();
    avgChosen = b / totalWeights;
  }
  auto budgetAttr = StringAttr::get(ctx, budgetStr);
  size_t i = 0;
  for (auto &[name, l] : layers) {
    int k = sol.choice[i++];
    const LayerScheme &s = l.schemes[k];
    qq::Reason reason = l.pinned >= 0        ? qq::Reason::pinned
                        : l.bits[k] > avgChosen ? qq::Reason::sensitivity
                                                : qq::Reason::budget;
    for (Operation *op : l.ops) {
      if (s.keepFloat) {
        op->removeAttr("qquant.decision");
        continue;
      }
      op->setAttr("qquant.decision",
                  qq::DecisionAttr::get(
                      ctx, toSchemeAttr(ctx, s), reason,
                      FloatAttr::get(Float64Type::get(ctx), l.losses[k]),
                      budgetAttr));
    }
  }

  if (!opts.recipeOut.empty()) {
    // A recipe file qwen-compile reads: every layer named with its scheme.
    llvm::json::Object lj;
    size_t j = 0;
    for (auto &[name, l] : layers) {
      const LayerScheme &s = l.schemes[sol.choice[j++]];
      std::vector<std::string> names{l.name};
      names.insert(names.end(), l.tied.begin(), l.tied.end());
      if (s.keepFloat) {
        for (const std::string &n : names)
          lj[n] = "fp32";
        continue;
      }
      llvm::json::Object e{{"bits", int64_t(s.bits)},
                           {"signed", s.isSigned},
                           {"symmetric", s.symmetric}};
      switch (s.granularity) {
      case qq::Granularity::tensor: e["granularity"] = "tensor"; break;
      case qq::Granularity::channel: e["granularity"] = "channel"; break;
      case qq::Granularity::group:
        e["granularity"] = "group";
        e["group_size"] = int64_t(s.groupSize);
        break;
      }
      if (s.grid == qq::Grid::codebook)
        e["grid"] = "codebook";
      if (s.sparsity == qq::Sparsity::s2_4)
        e["sparsity"] = "2:4";
      for (const std::string &n : names)
        lj[n] = llvm::json::Object(e);
    }
    llvm::json::Object root{{"base", "fp32"}, {"layers", std::move(lj)}};
    std::error_code ec;
    llvm::raw_fd_ostream f(opts.recipeOut, ec);
    if (ec)
      return module.emitError("recipe-out '")
             << opts.recipeOut << "': " << ec.message();
    f << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
  }

  if (opts.printAssignment) {
    llvm::raw_ostream &os = llvm::outs();
    size_t w = 5;
    for (auto &[name, l] : layers) {
      size_t n = l.name.size();
      for (const std::string &t : l.tied)
        n += 3 + t.size();
      w = std::max(w, n);
    }
    os << "precision assignment (" << budgetStr << ", solver "
       << (sol.exact ? "exact" : "approximate") << ", " << items.size()
       << " layers)\n";
    os << llvm::left_justify("layer", w) << "  " << llvm::left_justify("shape", 11)
       << "  " << llvm::left_justify("scheme", 12) << "  bits/w  "
       << llvm::left_justify("loss (KL)", 10) << "  reason\n";
    size_t j = 0;
    double totalBits = 0, storedBits = 0, totalMs = 0;
    bool haveMs = true;
    for (auto &[name, l] : layers) {
      int k = sol.choice[j++];
      std::string shape =
          std::to_string(l.rows) + "x" + std::to_string(l.cols);
      std::string reason = l.pinned >= 0 ? "pinned"
                           : l.bits[k] > avgChosen ? "sensitivity"
                                                   : "budget";
      std::string label = l.name;
      for (const std::string &t : l.tied)
        label += " = " + t;
      os << llvm::left_justify(label, w) << "  "
         << llvm::left_justify(shape, 11) << "  "
         << llvm::left_justify(candidateName(l.schemes[k]), 12) << "  "
         << llvm::format("%6.3f", l.bits[k]) << "  "
         << llvm::left_justify(llvm::formatv("{0:e3}", l.losses[k]).str(), 10)
         << "  " << reason << "\n";
      totalBits += l.bits[k] * double(l.rows) * l.cols * l.copies();
      storedBits += l.bits[k] * double(l.rows) * l.cols;
      if (std::isnan(l.latency[k]))
        haveMs = false;
      else
        totalMs += l.latency[k];
    }
    os << "total: " << llvm::format("%.0f", totalWeights) << " weights, "
       << llvm::format("%.4f", totalBits / totalWeights) << " bits/weight, "
       << llvm::format("%.4f", (storedBits / 8 + fixedBytes) / 1e6)
       << " MB" << (opts.sizeMB > 0 ? " (incl. other weights)" : "")
       << ", predicted loss " << llvm::formatv("{0:e3}", sol.loss);
    if (haveMs)
      os << ", predicted " << llvm::format("%.3f", totalMs) << " ms/token";
    os << "\n";
  }
  return success();
}

struct AssignPrecisionPass
    : qwen::impl::AssignPrecisionBase<AssignPrecisionPass> {
  using Base::Base;
  std::optional<AssignOptions> preset;

  void runOnOperation() override {
    AssignOptions o;
    if (preset) {
      o = *preset;
    } else {
      o.avgBits = avgBits;
      o.sizeMB = sizeMb;
      o.latencyMs = latencyMs;
      o.printAssignment = printAssignment;
      o.recipeOut = recipeOut;
      if (!pins.empty()) {
        auto buf = llvm::MemoryBuffer::getFile(pins);
        if (!buf) {
          getOperation().emitError("pins '")
              << pins << "': " << buf.getError().message();
          return signalPassFailure();
        }
        llvm::Expected<llvm::json::Value> v =
            llvm::json::parse((*buf)->getBuffer());
        if (!v) {
          getOperation().emitError("pins '")
              << pins << "': " << llvm::toString(v.takeError());
          return signalPassFailure();
        }
        // A recipe file ({"layers": {...}, ...}) or just the layers object.
        const llvm::json::Object *obj = v->getAsObject();
        if (obj && obj->getObject("layers"))
          obj = obj->getObject("layers");
        std::string err;
        if (!obj || !quant::parseLayerOverrides(*obj, o.pins, err)) {
          getOperation().emitError("pins '")
              << pins << "': "
              << (obj ? err : std::string("expected a JSON object"));
          return signalPassFailure();
        }
      }
    }
    if (failed(Assigner(getOperation(), o).run()))
      signalPassFailure();
  }
};

} // namespace

std::unique_ptr<Pass> createAssignPrecisionPass(AssignOptions o) {
  auto p = std::make_unique<AssignPrecisionPass>();
  p->preset = std::move(o);
  return p;
}

} // namespace qwen::mixed
