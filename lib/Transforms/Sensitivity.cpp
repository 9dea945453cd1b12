//===- Sensitivity.cpp - measured cost of each scheme per layer -----------===//
//
// --qwen-sensitivity{calib-tokens=tokens.json schemes=i8-channel,i4-g128,...}:
// runs the raised float model on the calibration tokens with the reference
// executor (qwen/Transforms/Executor.h), then, for each layer (a weight's
// store entry read by qwen.linear / qwen.logits / qwen.embedding; a tied
// table is one layer) and each candidate scheme, runs it again with only
// that layer's weight replaced by its round-to-nearest round trip
// (quant::quantizeDequantize, the numerics of --qwen-quantize-weights; for
// a codebook candidate the k-means of --qwen-share-weights; for a 2:4
// candidate Wanda 2:4 pruning on the same calibration inputs, then RTN) and
// measures the mean KL(P_float || P_quantized) of the next-token
// distribution over every calibration token. The result is written on each
// op of the layer as
//
//   qquant.sensitivity = [#qquant.cost<scheme = ..., loss = KL, bits = b>, ...]
//
// with `bits` the stored bits per weight (codes, f32 scales, zero points),
// and, with cost-model=, `latency` in ms per decoded token:
// us_per_call / 1000 + rows * cols * ns_per_weight / 1e6 from the measured
// kernel timings of that scheme (JSON {"kernels": {"i4-g128":
// {"ns_per_weight": x, "us_per_call": y}, ...}}).
//
// Cost: (layers x candidates + 1) runs of the model on the calibration set.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Executor.h"
#include "qwen/Transforms/MixedPrecision.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/Prune.h"
#include "qwen/Transforms/QuantAlgorithms.h"
#include "qwen/Transforms/WeightSharing.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_SENSITIVITY
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace qwen::mixed {

namespace {

using quant::LayerScheme;

struct KernelCost {
  double nsPerWeight = 0, usPerCall = 0;
};

bool loadCostModel(const std::string &path,
                   std::map<std::string, KernelCost> &out, std::string &err) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf) {
    err = "cost-model '" + path + "': " + buf.getError().message();
    return false;
  }
  llvm::Expected<llvm::json::Value> v = llvm::json::parse((*buf)->getBuffer());
  if (!v) {
    err = "cost-model '" + path + "': " + llvm::toString(v.takeError());
    return false;
  }
  const llvm::json::Object *o = v->getAsObject();
  const llvm::json::Object *k = o ? o->getObject("kernels") : nullptr;
  if (!k) {
    err = "cost-model '" + path + "': expected {\"kernels\": {...}}";
    return false;
  }
  for (const auto &kv : *k) {
    const llvm::json::Object *e = kv.second.getAsObject();
    auto ns = e ? e->getNumber("ns_per_weight") : std::nullopt;
    auto us = e ? e->getNumber("us_per_call") : std::nullopt;
    if (!ns || !us) {
      err = "cost-model '" + path + "': kernel '" + kv.first.str() +
            "' needs ns_per_weight and us_per_call";
      return false;
    }
    out[kv.first.str()] = {*ns, *us};
  }
  return true;
}

struct SensitivityPass : qwen::impl::SensitivityBase<SensitivityPass> {
  using Base::Base;
  std::optional<SensitivityOptions> preset;

  void runOnOperation() override {
    ModuleOp m = getOperation();
    SensitivityOptions o;
    if (preset) {
      o = *preset;
    } else {
      o.calibTokens = calibTokens;
      o.maxTokens = maxTokens;
      o.embedding = embedding;
      std::string err;
      if (!parseCandidates(schemes, o.candidates, err)) {
        m.emitError("--qwen-sensitivity: ") << err;
        return signalPassFailure();
      }
    }
    if (failed(run(m, o)))
      signalPassFailure();
  }

  LogicalResult run(ModuleOp m, const SensitivityOptions &o) {
    MLIRContext *ctx = m.getContext();
    std::string err;
    exec::Batch batch;
    if (!o.sequences.empty())
      batch.seqs = o.sequences;
    else if (o.calibTokens.empty())
      return m.emitError("--qwen-sensitivity needs calib-tokens=<file>");
    else if (!exec::loadTokenFile(o.calibTokens, batch, err))
      return m.emitError("--qwen-sensitivity: ") << err;
    if (o.maxTokens > 0) {
      exec::Batch cut;
      int64_t n = 0;
      for (auto &s : batch.seqs) {
        if (n >= o.maxTokens)
          break;
        int64_t take = std::min<int64_t>(s.size(), o.maxTokens - n);
        cut.seqs.emplace_back(s.begin(), s.begin() + take);
        n += take;
      }
      batch = std::move(cut);
    }
    if (batch.tokens() == 0)
      return m.emitError("--qwen-sensitivity: no calibration tokens in '")
             << o.calibTokens << "'";
    std::map<std::string, KernelCost> costModel;
    std::string cm = preset ? std::string() : std::string(costModelFile);
    if (!cm.empty() && !loadCostModel(cm, costModel, err))
      return m.emitError("--qwen-sensitivity: ") << err;

    std::unique_ptr<exec::Executor> ex =
        exec::Executor::create(m, preset ? std::string("main") : std::string(entry));
    if (!ex)
      return failure();

    // Layers in program order; a tied table is one layer of two sites.
    llvm::MapVector<StringRef, std::vector<const exec::WeightSite *>> layers;
    for (const exec::WeightSite &s : ex->sites()) {
      if (s.layer.empty())
        continue;
      if (isa<qwen::EmbeddingOp>(s.op) && !o.embedding)
        continue;
      layers[s.layer].push_back(&s);
    }
    // An embedding table shared with the LM head is measured with both.
    if (!o.embedding)
      for (const exec::WeightSite &s : ex->sites())
        if (isa<qwen::EmbeddingOp>(s.op) && layers.count(s.layer))
          layers[s.layer].push_back(&s);

    // Logits of at most 64M floats are kept (two copies): for a large
    // vocabulary, KL is taken at evenly spaced positions.
    int64_t vocab = 0;
    for (const exec::WeightSite &s : ex->sites())
      if (isa<qwen::LogitsOp>(s.op))
        vocab = std::max(vocab, s.rows);
    std::vector<int64_t> rows;
    const int64_t maxFloats = int64_t(64) << 20;
    if (vocab > 0 && batch.tokens() * vocab > maxFloats) {
      int64_t keep = std::max<int64_t>(1, maxFloats / vocab);
      for (int64_t i = 0; i < keep; ++i)
        rows.push_back(i * batch.tokens() / keep);
    }
    // The reference run also takes each layer's input column norms
    // ||X[:, k]||_2 (Wanda scores of the 2:4 candidates).
    bool wantNorms = llvm::any_of(o.candidates, [](const LayerScheme &c) {
      return c.sparsity == qq::Sparsity::s2_4;
    });
    std::map<std::string, std::vector<double>> norms;
    auto normHook = [&](const exec::WeightSite &s, const exec::Matrix *X,
                        std::vector<float> &) -> LogicalResult {
      if (!wantNorms || !X || s.layer.empty() || norms.count(s.layer))
        return success();
      norms[s.layer] = prune::inputNorms(X->data.data(), X->rows, X->cols);
      return success();
    };
    exec::Matrix ref;
    if (failed(ex->run(batch, normHook, &ref, rows)))
      return failure();
    for (auto &[name, sites] : layers) {
      const exec::WeightSite &site = *sites.front();
      std::vector<float> w;
      if (failed(ex->readWeight(site, w)))
        return failure();
      SmallVector<Attribute> costs;
      for (const LayerScheme &cand : o.candidates) {
        LayerScheme s = effectiveScheme(cand, site.cols);
        std::vector<float> dq;
        if (s.grid == qq::Grid::codebook) {
          quant::quantizeCodebook(w.data(), site.rows, site.cols, s, {}, &dq,
                                  quant::KMeansOptions());
        } else if (s.sparsity == qq::Sparsity::s2_4) {
          if (site.cols % 4 != 0)
            continue; // not a candidate for this layer
          // Wanda 2:4 (magnitude for a table read only by the embedding,
          // which has no input), then RTN of the kept weights.
          std::vector<float> pw = w;
          prune::PruneSpec ps;
          ps.pattern = prune::Pattern::twoFour;
          auto it = norms.find(site.layer);
          ps.method = it != norms.end() ? prune::Method::wanda
                                        : prune::Method::magnitude;
          if (prune::pruneWeight(pw.data(), site.rows, site.cols, ps,
                                 it != norms.end() ? &it->second : nullptr,
                                 err) < 0)
            return site.op->emitOpError(err);
          LayerScheme dense = s;
          dense.sparsity = qq::Sparsity::dense;
          quant::quantizeDequantize(pw.data(), site.rows, site.cols, dense, dq);
        } else {
          quant::quantizeDequantize(w.data(), site.rows, site.cols, s, dq);
        }
        ex->setOverride(site.layer, std::move(dq));
        exec::Matrix test;
        LogicalResult r = ex->run(batch, {}, &test, rows);
        ex->clearOverrides();
        if (failed(r))
          return failure();
        double kl = 0, top1 = 0;
        exec::logitsKL(ref, test, kl, top1);
        double bits = double(storedBits(s, site.rows, site.cols)) /
                      (double(site.rows) * site.cols);
        FloatAttr lat;
        if (!costModel.empty()) {
          auto it = costModel.find(candidateName(s));
          if (it == costModel.end())
            it = costModel.find(candidateName(cand));
          if (it == costModel.end())
            return site.op->emitOpError("the cost model has no kernel '")
                   << candidateName(s) << "'";
          double ms = it->second.usPerCall / 1e3 +
                      double(site.rows) * site.cols * it->second.nsPerWeight /
                          1e6;
          lat = FloatAttr::get(Float64Type::get(ctx), ms);
        }
        costs.push_back(qq::CostAttr::get(
            ctx, toSchemeAttr(ctx, s),
            FloatAttr::get(Float64Type::get(ctx), std::max(kl, 0.0)),
            FloatAttr::get(Float64Type::get(ctx), bits), lat));
      }
      auto arr = ArrayAttr::get(ctx, costs);
      for (const exec::WeightSite *s : sites)
        s->op->setAttr("qquant.sensitivity", arr);
    }
    return success();
  }
};

} // namespace

std::unique_ptr<Pass> createSensitivityPass(SensitivityOptions o) {
  auto p = std::make_unique<SensitivityPass>();
  p->preset = std::move(o);
  return p;
}

} // namespace qwen::mixed
