//===- Smooth.cpp - AWQ / SmoothQuant equivalent rescaling ----------------===//
//
// --qwen-smooth: for each activation X that only qwen.linear ops read (as
// their input), per-channel scales s with X W^T = (X / s)(W diag(s))^T:
// the consumers' weight columns are multiplied by s and the producer's
// output channels divided by s, so the float model computes the same
// logits while the quantized one sees easier weights (AWQ: salient input
// channels scaled up before weight-only quantization) or easier activations
// (SmoothQuant: outlier channels moved into the weights before int8
// activations). Producers handled:
//   qwen.rms_norm (not per-head)  gamma / s
//   qwen.silu_mul (down_proj)     the `up` linear's rows (and bias) / s
//   qwen.attention (o_proj)       the `value` linear's rows (and bias) / s,
//                                 s tied across the query heads that share a
//                                 KV head (geometric mean), so the KV cache
//                                 holds V / s (an internal value).
// The scales are searched on calibration data run by the executor (float
// model, one pass):
//   awq          s = mean|x|^a / sqrt(max * min), a in {0, 0.05, ..., 1}
//                minimising sum_i ||X W_i^T - X diag(1/s) Q(W_i diag(s))^T||^2
//                over the consumers, Q = RTN at `bits`/`group-size`;
//   smoothquant  s = max|x|^a / max|W|^(1-a), a in {0.1, ..., 0.9} or no
//                scaling, minimising the same output error with X / s
//                quantized to int8 (per tensor at max|X/s| / 127, or per
//                token with `per-token`) and W diag(s) to `bits`.
// `alpha` >= 0 fixes the exponent instead of searching. The error is
// measured on up to 4096 evenly spaced calibration tokens.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Executor.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/QuantAlgorithms.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

#include <cmath>
#include <map>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_SMOOTH
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

using qwen::exec::Matrix;
using qwen::quant::LayerScheme;

struct Group {
  Value input;
  Operation *producer = nullptr;
  std::vector<qwen::LinearOp> consumers;
  Operation *scaled = nullptr; // the rms_norm, or the up/value linear
  int64_t tieHeads = 1, headDim = 0; // attention: heads per KV head
  std::vector<float> s;              // the chosen scales (empty: none)
  double alpha = -1, errBefore = 0, errAfter = 0;
};

class Smoother {
public:
  Smoother(ModuleOp m, const qwen::SmoothOptions &o) : m(m), o(o) {}
  LogicalResult run();

private:
  LogicalResult findGroups(func::FuncOp fn);
  LogicalResult search(Group &g, const Matrix &X,
                       const std::vector<std::vector<float>> &Ws);
  double outputError(const Matrix &Xs, const std::vector<float> &s,
                     const std::vector<std::vector<float>> &Ws,
                     const std::vector<float> &ref, bool quantAct);
  LogicalResult apply();
  Value newWeight(Operation *at, const std::string &name,
                  const std::vector<float> &v, ArrayRef<int64_t> shape);
  /// Reads a weight, or the values of one this pass already wrote.
  LogicalResult read(Operation *user, Value v, int64_t n,
                     std::vector<float> &out);
  llvm::DenseMap<Value, std::vector<float>> written;

  ModuleOp m;
  qwen::SmoothOptions o;
  std::vector<Group> groups;
  llvm::DenseMap<Value, size_t> groupOf;
  qwen::WeightStoreCache stores;
  std::unique_ptr<qwen::ws::WeightStoreWriter> writer;
  LayerScheme wscheme;
};

LogicalResult Smoother::findGroups(func::FuncOp fn) {
  fn.walk([&](qwen::LinearOp lin) {
    Value x = lin.getInput();
    if (groupOf.count(x))
      return;
    Group g;
    g.input = x;
    for (Operation *u : x.getUsers()) {
      auto l = dyn_cast<qwen::LinearOp>(u);
      if (!l || l.getInput() != x || l.getWeight() == x ||
          !l.getWeight().getDefiningOp<qwen::WeightOp>())
        return;
      if (llvm::find(g.consumers, l) == g.consumers.end())
        g.consumers.push_back(l);
    }
    Operation *p = x.getDefiningOp();
    if (auto n = dyn_cast_or_null<qwen::RMSNormOp>(p)) {
      if (n.getPerHead())
        return;
      g.scaled = n;
    } else if (auto sm = dyn_cast_or_null<qwen::SiluMulOp>(p)) {
      auto up = sm.getUp().getDefiningOp<qwen::LinearOp>();
      if (!up || !up.getResult().hasOneUse() ||
          !up.getWeight().getDefiningOp<qwen::WeightOp>())
        return;
      g.scaled = up;
    } else if (auto at = dyn_cast_or_null<qwen::AttentionOp>(p)) {
      if (x != at.getResult())
        return;
      auto v = at.getValue().getDefiningOp<qwen::LinearOp>();
      if (!v || !v.getResult().hasOneUse() ||
          !v.getWeight().getDefiningOp<qwen::WeightOp>())
        return;
      g.scaled = v;
      g.tieHeads = at.getNumHeads() / at.getNumKvHeads();
      g.headDim = at.getHeadDim();
    } else {
      return;
    }
    g.producer = p;
    groupOf[x] = groups.size();
    groups.push_back(std::move(g));
  });
  return success();
}

/// Ties s across the query heads sharing a KV head (geometric mean) so
/// that it can be folded into V's rows.
static void tie(std::vector<float> &s, int64_t tieHeads, int64_t D) {
  if (tieHeads <= 1)
    return;
  int64_t K = int64_t(s.size()), kv = K / (D * tieHeads);
  for (int64_t kh = 0; kh < kv; ++kh)
    for (int64_t d = 0; d < D; ++d) {
      double l = 0;
      for (int64_t h = 0; h < tieHeads; ++h)
        l += std::log(double(s[(kh * tieHeads + h) * D + d]));
      float t = float(std::exp(l / double(tieHeads)));
      for (int64_t h = 0; h < tieHeads; ++h)
        s[(kh * tieHeads + h) * D + d] = t;
    }
}

double Smoother::outputError(const Matrix &Xs, const std::vector<float> &s,
                             const std::vector<std::vector<float>> &Ws,
                             const std::vector<float> &ref, bool quantAct) {
  int64_t N = Xs.rows, K = Xs.cols;
  // X / s, int8-quantized for SmoothQuant.
  std::vector<float> xs(N * K);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t k = 0; k < K; ++k)
      xs[r * K + k] = Xs.data[r * K + k] / s[k];
  if (quantAct) {
    auto q = [](float *v, int64_t n, float amax) {
      float sc = amax / 127.f;
      if (sc == 0.f)
        return;
      for (int64_t i = 0; i < n; ++i)
        v[i] = sc * std::clamp(std::nearbyint(v[i] / sc), -127.f, 127.f);
    };
    if (o.perToken) {
      for (int64_t r = 0; r < N; ++r) {
        float a = 0;
        for (int64_t k = 0; k < K; ++k)
          a = std::max(a, std::fabs(xs[r * K + k]));
        q(&xs[r * K], K, a);
      }
    } else {
      float a = 0;
      for (float v : xs)
        a = std::max(a, std::fabs(v));
      q(xs.data(), N * K, a);
    }
  }
  double err = 0;
  size_t off = 0;
  for (const std::vector<float> &W : Ws) {
    int64_t R = int64_t(W.size()) / K;
    std::vector<float> ws(R * K), dq, y(N * R);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < K; ++k)
        ws[r * K + k] = W[r * K + k] * s[k];
    qwen::quant::quantizeDequantize(ws.data(), R, K, wscheme, dq);
    qwen::quant::matmulNT(xs.data(), dq.data(), nullptr, y.data(), N, R, K);
    for (int64_t i = 0; i < N * R; ++i) {
      double d = double(y[i]) - double(ref[off + i]);
      err += d * d;
    }
    off += size_t(N * R);
  }
  return err;
}

LogicalResult Smoother::search(Group &g, const Matrix &X,
                               const std::vector<std::vector<float>> &Ws) {
  int64_t K = X.cols;
  // Up to 4096 evenly spaced tokens.
  Matrix Xs;
  int64_t N = std::min<int64_t>(X.rows, 4096);
  Xs.rows = N, Xs.cols = K;
  Xs.data.resize(N * K);
  for (int64_t i = 0; i < N; ++i) {
    int64_t r = i * X.rows / N;
    std::copy_n(X.row(r), K, Xs.row(i));
  }
  // Reference outputs of the float model.
  std::vector<float> ref;
  for (const std::vector<float> &W : Ws) {
    int64_t R = int64_t(W.size()) / K;
    std::vector<float> y(N * R);
    qwen::quant::matmulNT(Xs.data.data(), W.data(), nullptr, y.data(), N, R, K);
    ref.insert(ref.end(), y.begin(), y.end());
  }
  bool awq = o.method == "awq";
  std::vector<double> stat(K, 0.0), wmax(K, 0.0);
  for (int64_t r = 0; r < X.rows; ++r)
    for (int64_t k = 0; k < K; ++k) {
      double a = std::fabs(X.data[r * K + k]);
      stat[k] = awq ? stat[k] + a : std::max(stat[k], a);
    }
  if (awq)
    for (double &v : stat)
      v /= double(X.rows);
  for (const std::vector<float> &W : Ws)
    for (size_t i = 0; i < W.size(); ++i)
      wmax[i % K] = std::max(wmax[i % K], double(std::fabs(W[i])));

  auto scales = [&](double a) {
    std::vector<float> s(K);
    for (int64_t k = 0; k < K; ++k) {
      double v = awq ? std::pow(std::max(stat[k], 1e-8), a)
                     : std::pow(std::max(stat[k], 1e-5), a) /
                           std::pow(std::max(wmax[k], 1e-5), 1 - a);
      s[k] = float(std::clamp(v, 1e-4, 1e4));
    }
    if (awq) {
      float mx = *std::max_element(s.begin(), s.end());
      float mn = *std::min_element(s.begin(), s.end());
      float n = std::sqrt(mx * mn);
      for (float &v : s)
        v /= n;
    }
    tie(s, g.tieHeads, g.headDim);
    return s;
  };
  std::vector<float> ones(K, 1.f);
  g.errBefore = outputError(Xs, ones, Ws, ref, !awq);
  double best = g.errBefore;
  std::vector<double> alphas;
  if (o.alpha >= 0)
    alphas = {o.alpha};
  else if (awq)
    for (int i = 1; i <= 20; ++i)
      alphas.push_back(0.05 * i);
  else
    for (int i = 1; i <= 9; ++i)
      alphas.push_back(0.1 * i);
  for (double a : alphas) {
    std::vector<float> s = scales(a);
    double e = outputError(Xs, s, Ws, ref, !awq);
    if (e < best || o.alpha >= 0) {
      best = e;
      g.s = std::move(s);
      g.alpha = a;
    }
  }
  g.errAfter = best;
  return success();
}

Value Smoother::newWeight(Operation *at, const std::string &name,
                          const std::vector<float> &v,
                          ArrayRef<int64_t> shape) {
  std::string err, base = name + ".smoothed";
  for (unsigned i = 1; writer->contains(base); ++i)
    base = name + ".smoothed" + std::to_string(i);
  if (!writer->add(base, qwen::ws::DType::F32, shape, v.data(), v.size() * 4,
                   err)) {
    at->emitOpError(err);
    return Value();
  }
  OpBuilder b(at);
  auto ref = SymbolRefAttr::get(b.getStringAttr(o.storeName),
                                {FlatSymbolRefAttr::get(b.getStringAttr(base))});
  Value w = qwen::WeightOp::create(
                b, at->getLoc(), RankedTensorType::get(shape, b.getF32Type()),
                ref)
                .getResult();
  written[w] = v;
  return w;
}

LogicalResult Smoother::read(Operation *user, Value v, int64_t n,
                             std::vector<float> &out) {
  if (auto it = written.find(v); it != written.end()) {
    out = it->second;
    return success();
  }
  return qwen::readFloatValue(stores, user, v, n, out);
}

static std::string entryName(Value v) {
  if (auto w = v.getDefiningOp<qwen::WeightOp>())
    return w.getRef().getLeafReference().getValue().str();
  return "const";
}

LogicalResult Smoother::apply() {
  std::string err;
  for (Group &g : groups) {
    if (g.s.empty())
      continue;
    const std::vector<float> &s = g.s;
    int64_t K = int64_t(s.size());
    // Constants (no store entry) are named after the group's first layer.
    std::string groupName = entryName(g.consumers[0].getWeight());
    auto nameOf = [&](Value v, const char *what) {
      std::string n = entryName(v);
      return n == "const" ? groupName + what : n;
    };
    if (!writer) {
      writer = qwen::ws::WeightStoreWriter::create(o.storePath, err);
      if (!writer)
        return m.emitError(err);
    }
    // Consumers: W[:, k] *= s[k].
    for (qwen::LinearOp l : g.consumers) {
      auto wt = cast<RankedTensorType>(l.getWeight().getType());
      int64_t R = wt.getDimSize(0);
      std::vector<float> w;
      if (failed(read(l, l.getWeight(), R * K, w)))
        return failure();
      for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < K; ++k)
          w[r * K + k] *= s[k];
      Value nw = newWeight(l, entryName(l.getWeight()), w, {R, K});
      if (!nw)
        return failure();
      l.getWeightMutable().assign(nw);
    }
    // Producer: its output channel k divided by s[k].
    if (auto n = dyn_cast<qwen::RMSNormOp>(g.scaled)) {
      std::vector<float> w;
      if (failed(read(n, n.getWeight(), K, w)))
        return failure();
      for (int64_t k = 0; k < K; ++k)
        w[k] /= s[k];
      Value nw = newWeight(n, nameOf(n.getWeight(), ".input_norm"), w, {K});
      if (!nw)
        return failure();
      n.getWeightMutable().assign(nw);
      continue;
    }
    auto p = cast<qwen::LinearOp>(g.scaled);
    auto wt = cast<RankedTensorType>(p.getWeight().getType());
    int64_t R = wt.getDimSize(0), C = wt.getDimSize(1);
    // The producer's output channels: all of s (up) or one KV head's worth
    // per tied group (value).
    std::vector<float> ps(R);
    for (int64_t r = 0; r < R; ++r)
      ps[r] = g.tieHeads > 1
                  ? s[((r / g.headDim) * g.tieHeads) * g.headDim + r % g.headDim]
                  : s[r];
    std::vector<float> w;
    if (failed(read(p, p.getWeight(), R * C, w)))
      return failure();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c)
        w[r * C + c] /= ps[r];
    Value nw = newWeight(p, entryName(p.getWeight()), w, {R, C});
    if (!nw)
      return failure();
    p.getWeightMutable().assign(nw);
    if (Value bias = p.getBias()) {
      std::vector<float> bv;
      if (failed(read(p, bias, R, bv)))
        return failure();
      for (int64_t r = 0; r < R; ++r)
        bv[r] /= ps[r];
      Value nb = newWeight(p, nameOf(bias, ".producer_bias"), bv, {R});
      if (!nb)
        return failure();
      p.getBiasMutable().assign(nb);
    }
  }
  // Weights no longer read.
  SmallVector<Operation *> dead;
  m.walk([&](Operation *op) {
    if (isa<qwen::WeightOp>(op) && op->use_empty())
      dead.push_back(op);
  });
  for (Operation *op : dead)
    op->erase();
  return qwen::finishNewStore(m, writer.get(), o.storeName, o.storePath);
}

LogicalResult Smoother::run() {
  if (o.method != "awq" && o.method != "smoothquant")
    return m.emitError("--qwen-smooth: method must be awq or smoothquant, got '")
           << o.method << "'";
  if (o.calibTokens.empty())
    return m.emitError("--qwen-smooth needs calib-tokens=<file>");
  if (o.storePath.empty())
    return m.emitError("--qwen-smooth needs store=<path>");
  if (o.alpha > 1)
    return m.emitError("--qwen-smooth: alpha must be in [0, 1] (or < 0 to "
                       "search), got ")
           << o.alpha;
  if (SymbolTable::lookupSymbolIn(m, o.storeName))
    return m.emitError("symbol @") << o.storeName
                                   << " already exists; pick store-name=";
  if (failed(qwen::checkNewStorePath(m, o.storePath)))
    return failure();
  wscheme.bits = o.bits;
  wscheme.granularity = o.groupSize ? qq::Granularity::group
                                    : qq::Granularity::channel;
  wscheme.groupSize = o.groupSize;
  std::string err;
  if (!wscheme.validate(err))
    return m.emitError("--qwen-smooth: ") << err;
  auto fn = m.lookupSymbol<func::FuncOp>("main");
  if (!fn)
    return m.emitError("--qwen-smooth: no function 'main'");
  if (failed(findGroups(fn)))
    return failure();
  qwen::exec::Batch batch;
  if (!qwen::exec::loadTokenFile(o.calibTokens, batch, err))
    return m.emitError(err);
  auto ex = qwen::exec::Executor::create(m);
  if (!ex)
    return failure();
  llvm::DenseMap<Operation *, const qwen::exec::WeightSite *> siteOf;
  for (const auto &s : ex->sites())
    siteOf[s.op] = &s;
  llvm::DenseMap<Value, size_t> seen;
  auto hook = [&](const qwen::exec::WeightSite &site, const Matrix *X,
                  std::vector<float> &) -> LogicalResult {
    auto it = X ? groupOf.find(site.input) : groupOf.end();
    if (it == groupOf.end())
      return success();
    Group &g = groups[it->second];
    if (++seen[site.input] != g.consumers.size())
      return success();
    // The last consumer: search with all the group's weights.
    std::vector<std::vector<float>> Ws;
    for (qwen::LinearOp l : g.consumers) {
      Ws.emplace_back();
      if (failed(ex->readWeight(*siteOf.lookup(l), Ws.back())))
        return failure();
    }
    return search(g, *X, Ws);
  };
  if (failed(ex->run(batch, hook)))
    return failure();
  ex.reset();
  if (o.report) {
    for (Group &g : groups)
      llvm::errs() << "qwen-smooth: " << entryName(g.consumers[0].getWeight())
                   << " (+" << g.consumers.size() - 1 << "): "
                   << (g.s.empty() ? std::string("not scaled")
                                   : "alpha " + std::to_string(g.alpha))
                   << ", output error " << g.errBefore << " -> " << g.errAfter
                   << "\n";
  }
  return apply();
}

struct SmoothPass : qwen::impl::SmoothBase<SmoothPass> {
  using Base::Base;
  void runOnOperation() override {
    qwen::SmoothOptions opt;
    opt.method = method;
    opt.alpha = alpha;
    opt.bits = bits;
    opt.groupSize = groupSize;
    opt.perToken = perToken;
    opt.calibTokens = calibTokens;
    opt.storePath = storePath;
    opt.storeName = storeName;
    opt.report = report;
    if (failed(Smoother(getOperation(), opt).run()))
      signalPassFailure();
  }
};

} // namespace
