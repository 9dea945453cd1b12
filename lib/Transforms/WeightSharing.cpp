//===- WeightSharing.cpp - k-means codebooks for weights ------------------===//
//
// The k-means of WeightSharing.h, and --qwen-share-weights: the plan of
// --qwen-quantize-weights with a codebook grid (the quantizer writes the
// `.codes` and `.codebook` entries and the qquant ops).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/WeightSharing.h"
#include "qwen/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/APFloat.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_SHAREWEIGHTS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace qwen::quant {

namespace {
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
};

/// The first i whose running sum of p exceeds u * total (the last i with
/// p_i > 0 when rounding leaves none).
int64_t draw(const std::vector<double> &p, SplitMix64 &rng) {
  int64_t n = int64_t(p.size());
  std::vector<double> cs(n);
  double acc = 0;
  for (int64_t i = 0; i < n; ++i)
    cs[i] = acc += p[i];
  double u = rng.uniform() * acc;
  for (int64_t i = 0; i < n; ++i)
    if (cs[i] > u)
      return i;
  for (int64_t i = n - 1; i >= 0; --i)
    if (p[i] > 0)
      return i;
  return 0;
}

int32_t nearest(double x, const double *c, unsigned k) {
  int32_t best = 0;
  double bd = (x - c[0]) * (x - c[0]);
  for (unsigned j = 1; j < k; ++j) {
    double d = (x - c[j]) * (x - c[j]);
    if (d < bd)
      bd = d, best = int32_t(j);
  }
  return best;
}
} // namespace

float roundToHalf(double v) {
  llvm::APFloat f(v);
  bool lost;
  f.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  f.convert(llvm::APFloat::IEEEsingle(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return f.convertToFloat();
}

uint16_t halfBits(float v) {
  llvm::APFloat f(v);
  bool lost;
  f.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return uint16_t(f.bitcastToAPInt().getZExtValue());
}

unsigned kmeans1d(const double *x, const double *weights, int64_t n,
                  unsigned k, const KMeansOptions &o, uint64_t block,
                  std::vector<float> &centroids, std::vector<int32_t> &index) {
  auto wt = [&](int64_t i) { return weights ? weights[i] : 1.0; };
  SplitMix64 rng{o.seed ^ (block * 0xD1B54A32D192ED03ull)};
  std::vector<double> c(k), p(n), d2(n);
  for (int64_t i = 0; i < n; ++i)
    p[i] = wt(i);
  c[0] = x[draw(p, rng)];
  for (int64_t i = 0; i < n; ++i)
    d2[i] = (x[i] - c[0]) * (x[i] - c[0]);
  for (unsigned j = 1; j < k; ++j) {
    double total = 0;
    for (int64_t i = 0; i < n; ++i)
      total += p[i] = wt(i) * d2[i];
    if (!(total > 0)) {
      for (; j < k; ++j)
        c[j] = c[0];
      break;
    }
    c[j] = x[draw(p, rng)];
    for (int64_t i = 0; i < n; ++i)
      d2[i] = std::min(d2[i], (x[i] - c[j]) * (x[i] - c[j]));
  }
  double scale = 0;
  for (int64_t i = 0; i < n; ++i)
    scale = std::max(scale, std::fabs(x[i]));
  if (scale == 0)
    scale = 1;
  index.assign(n, 0);
  std::vector<double> sw(k), swx(k);
  unsigned it = 0;
  while (it < o.maxIters) {
    ++it;
    for (int64_t i = 0; i < n; ++i)
      index[i] = nearest(x[i], c.data(), k);
    std::fill(sw.begin(), sw.end(), 0.0);
    std::fill(swx.begin(), swx.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      sw[index[i]] += wt(i);
      swx[index[i]] += wt(i) * x[i];
    }
    double shift = 0;
    for (unsigned j = 0; j < k; ++j) {
      if (!(sw[j] > 0))
        continue;
      double nc = swx[j] / sw[j];
      shift = std::max(shift, std::fabs(nc - c[j]));
      c[j] = nc;
    }
    if (shift <= o.tolerance * scale)
      break;
  }
  centroids.resize(k);
  for (unsigned j = 0; j < k; ++j)
    centroids[j] = o.f16 ? roundToHalf(c[j]) : float(c[j]);
  std::sort(centroids.begin(), centroids.end());
  for (unsigned j = 0; j < k; ++j)
    c[j] = centroids[j];
  for (int64_t i = 0; i < n; ++i)
    index[i] = nearest(x[i], c.data(), k);
  return it;
}

Packed quantizeCodebook(const float *w, int64_t rows, int64_t cols,
                        const LayerScheme &s,
                        const std::vector<double> &importance,
                        std::vector<float> *dequant, const KMeansOptions &o) {
  unsigned k = 1u << s.bits;
  bool tensor = s.granularity == qq::Granularity::tensor;
  int64_t block = s.granularity == qq::Granularity::group ? s.groupSize : cols;
  int64_t perRow = tensor ? 1 : cols / block;
  std::vector<double> imp;
  if (!importance.empty()) {
    double mean = 0;
    for (double v : importance)
      mean += v;
    mean /= double(cols);
    imp.resize(cols);
    for (int64_t c = 0; c < cols; ++c)
      imp[c] = std::max(mean > 0 ? importance[c] / mean : 1.0, 1e-6);
  }
  Packed p;
  p.perRow = perRow;
  p.rowBytes = (cols * s.bits + 7) / 8;
  p.codes.assign(rows * p.rowBytes, 0);
  int64_t books = tensor ? 1 : rows * perRow;
  p.scales.resize(books * k);
  if (dequant)
    dequant->resize(rows * cols);
  std::vector<int32_t> codes(rows * cols);
  std::vector<double> x, v;
  std::vector<float> cb;
  std::vector<int32_t> idx;
  auto run = [&](int64_t b, const std::vector<std::pair<int64_t, int64_t>>
                                &span) { // (row, first col), block cols each
    x.clear();
    v.clear();
    int64_t len = tensor ? cols : block;
    for (auto [r, c0] : span)
      for (int64_t c = c0; c < c0 + len; ++c) {
        x.push_back(w[r * cols + c]);
        if (!imp.empty())
          v.push_back(imp[c]);
      }
    kmeans1d(x.data(), imp.empty() ? nullptr : v.data(), int64_t(x.size()), k,
             o, uint64_t(b), cb, idx);
    std::copy(cb.begin(), cb.end(), p.scales.begin() + b * k);
    int64_t i = 0;
    for (auto [r, c0] : span)
      for (int64_t c = c0; c < c0 + len; ++c, ++i) {
        codes[r * cols + c] = idx[i];
        if (dequant)
          (*dequant)[r * cols + c] = cb[idx[i]];
      }
  };
  if (tensor) {
    std::vector<std::pair<int64_t, int64_t>> span;
    for (int64_t r = 0; r < rows; ++r)
      span.push_back({r, 0});
    run(0, span);
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < perRow; ++g)
        run(r * perRow + g, {{r, g * block}});
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t code = uint32_t(codes[r * cols + c]);
      for (unsigned i = 0; i < s.bits; ++i) {
        int64_t bit = c * s.bits + i;
        if (code >> i & 1)
          p.codes[r * p.rowBytes + bit / 8] |= uint8_t(1u << (bit % 8));
      }
    }
  return p;
}

} // namespace qwen::quant

namespace {

struct ShareWeightsPass : qwen::impl::ShareWeightsBase<ShareWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp m = getOperation();
    auto fail = [&](const Twine &msg) {
      m.emitError("--qwen-share-weights: ") << msg;
      signalPassFailure();
    };
    qwen::quant::LayerScheme s;
    s.grid = qq::Grid::codebook;
    s.bits = bits;
    s.isSigned = false;
    s.symmetric = true;
    s.weighted = weighted;
    if (auto g = qwen::quant::parseGranularity(granularity))
      s.granularity = *g;
    else
      return fail("granularity must be tensor, channel or group, got '" +
                  granularity + "'");
    s.groupSize = s.granularity == qq::Granularity::group ? groupSize : 0;
    if (maxIters == 0)
      return fail("max-iters must be at least 1");
    if (!(tolerance >= 0) || !std::isfinite(tolerance))
      return fail("tolerance must be a finite number >= 0");
    std::string err;
    if (!s.validate(err))
      return fail(err);
    qwen::quant::QuantizePlan plan;
    plan.fallback = s;
    plan.calibTokens = calibTokens;
    plan.kmeansMaxIters = maxIters;
    plan.kmeansTolerance = tolerance;
    if (codebookType != "f32" && codebookType != "f16")
      return fail("codebook-type must be f32 or f16, got '" + codebookType +
                  "'");
    plan.kmeansF16 = codebookType == "f16";
    SmallVector<std::string> kinds(ops.begin(), ops.end());
    if (kinds.empty())
      kinds = {"linear"};
    if (std::string bad = plan.assign(kinds, s); !bad.empty())
      return fail("ops takes linear, logits, embedding; got '" + bad + "'");
    OpPassManager pm(ModuleOp::getOperationName());
    pm.addPass(qwen::quant::createQuantizeWeightsPass(std::move(plan),
                                                      storePath, storeName));
    if (failed(runPipeline(pm, m)))
      signalPassFailure();
  }
};

} // namespace
