//===- Prune.cpp - magnitude and Wanda pruning, unstructured and 2:4 ------===//
//
// --qwen-prune: zeroes weights of float linear ops and marks the ops
// `qquant.pruned`, so that --qwen-quantize-weights stores 2:4 weights
// compactly (Passes.td has the contract; Prune.h the numerics).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Prune.h"
#include "qwen/Transforms/Executor.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_PRUNE
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace qwen::prune {

bool parsePattern(const std::string &s, Pattern &out) {
  if (s == "unstructured")
    out = Pattern::unstructured;
  else if (s == "2:4")
    out = Pattern::twoFour;
  else
    return false;
  return true;
}

bool parseMethod(const std::string &s, Method &out) {
  if (s == "magnitude")
    out = Method::magnitude;
  else if (s == "wanda")
    out = Method::wanda;
  else
    return false;
  return true;
}

std::vector<double> inputNorms(const float *x, int64_t rows, int64_t cols) {
  std::vector<double> n(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      n[c] += double(x[r * cols + c]) * double(x[r * cols + c]);
  for (double &v : n)
    v = std::sqrt(v);
  return n;
}

int64_t pruneWeight(float *w, int64_t rows, int64_t cols, const PruneSpec &s,
                    const std::vector<double> *colNorm, std::string &err) {
  bool wanda = s.method == Method::wanda;
  if (wanda && (!colNorm || int64_t(colNorm->size()) != cols)) {
    err = "wanda needs the input norms of every column";
    return -1;
  }
  auto score = [&](int64_t i) {
    double a = std::fabs(double(w[i]));
    return wanda ? a * (*colNorm)[i % cols] : a;
  };
  // Lower score first; among equals, the later element first.
  auto before = [&](int64_t a, int64_t b) {
    double sa = score(a), sb = score(b);
    return sa < sb || (sa == sb && a > b);
  };
  int64_t zeroed = 0;
  if (s.pattern == Pattern::twoFour) {
    if (cols % 4 != 0) {
      err = "2:4 pruning needs a multiple of 4 inputs, got " +
            std::to_string(cols);
      return -1;
    }
    for (int64_t g = 0; g < rows * cols; g += 4) {
      int64_t idx[4] = {g, g + 1, g + 2, g + 3};
      std::sort(idx, idx + 4, before);
      w[idx[0]] = w[idx[1]] = 0.f;
      zeroed += 2;
    }
    return zeroed;
  }
  if (!(s.sparsity >= 0 && s.sparsity < 1)) {
    err = "sparsity must be in [0, 1), got " + std::to_string(s.sparsity);
    return -1;
  }
  // Magnitude: one threshold over the weight; wanda: per output row.
  int64_t span = wanda ? cols : rows * cols;
  int64_t k = int64_t(std::llround(s.sparsity * double(span)));
  std::vector<int64_t> idx(span);
  for (int64_t base = 0; base < rows * cols; base += span) {
    std::iota(idx.begin(), idx.end(), base);
    std::nth_element(idx.begin(), idx.begin() + k, idx.end(), before);
    for (int64_t i = 0; i < k; ++i)
      w[idx[i]] = 0.f;
    zeroed += k;
  }
  return zeroed;
}

} // namespace qwen::prune

namespace {

using namespace qwen::prune;

struct PrunePass : qwen::impl::PruneBase<PrunePass> {
  using Base::Base;

  void runOnOperation() override;
};

void PrunePass::runOnOperation() {
  ModuleOp m = getOperation();
  auto fail = [&](const Twine &msg) {
    m.emitError("--qwen-prune: ") << msg;
    signalPassFailure();
  };
  PruneSpec spec;
  if (!parsePattern(pattern, spec.pattern))
    return fail("pattern must be unstructured or 2:4, got '" + pattern + "'");
  if (!parseMethod(method, spec.method))
    return fail("method must be magnitude or wanda, got '" + method + "'");
  if (spec.pattern == qwen::prune::Pattern::twoFour && sparsity != 0.5)
    return fail("pattern=2:4 zeroes exactly half the weights; sparsity must "
                "be 0.5, got " + std::to_string(sparsity));
  if (!(sparsity >= 0 && sparsity < 1))
    return fail("sparsity must be in [0, 1), got " + std::to_string(sparsity));
  spec.sparsity = sparsity;
  bool doLinear = ops.empty(), doLogits = false;
  for (const std::string &k : ops) {
    if (k == "linear")
      doLinear = true;
    else if (k == "logits")
      doLogits = true;
    else
      return fail("ops takes linear, logits; got '" + k + "'");
  }
  if (storePath.empty())
    return fail("needs store=<path>");
  if (spec.method == Method::wanda && calibTokens.empty())
    return fail("method=wanda needs calib-tokens=<file> (the input norms)");
  if (SymbolTable::lookupSymbolIn(m, storeName))
    return fail("symbol @" + storeName + " already exists; pick store-name=");
  if (failed(qwen::checkNewStorePath(m, storePath)))
    return signalPassFailure();

  // The ops to prune: float [rows, cols] weights read from a store.
  struct Target {
    Operation *op;
    qwen::WeightOp weight;
    int64_t rows, cols;
    std::vector<float> pruned;
    int64_t zeroed = -1;
  };
  std::vector<Target> targets;
  llvm::DenseMap<Operation *, size_t> index;
  m.walk([&](Operation *op) {
    Value w;
    if (auto l = dyn_cast<qwen::LinearOp>(op); l && doLinear)
      w = l.getWeight();
    else if (auto l = dyn_cast<qwen::LogitsOp>(op); l && doLogits)
      w = l.getWeight();
    else
      return;
    auto wop = w.getDefiningOp<qwen::WeightOp>();
    auto wt = dyn_cast<RankedTensorType>(w.getType());
    if (!wop || !wt || wt.getRank() != 2 || !wt.hasStaticShape() ||
        !wt.getElementType().isF32())
      return; // small constants and non-f32 weights stay
    index[op] = targets.size();
    targets.push_back({op, wop, wt.getDimSize(0), wt.getDimSize(1), {}});
  });
  if (targets.empty()) {
    m.emitWarning("--qwen-prune: no float linear weight to prune");
    return;
  }
  auto pruneOne = [&](Target &t, std::vector<float> &w,
                      const std::vector<double> *norms) -> LogicalResult {
    for (size_t i = 0; i < w.size(); ++i)
      if (!std::isfinite(w[i]))
        return t.op->emitOpError("weight '")
               << t.weight.getRef().getLeafReference().getValue()
               << "' has a NaN or Inf at element " << i
               << "; it cannot be pruned";
    std::string err;
    t.zeroed = pruneWeight(w.data(), t.rows, t.cols, spec, norms, err);
    if (t.zeroed < 0)
      return t.op->emitOpError("weight '")
             << t.weight.getRef().getLeafReference().getValue() << "': " << err;
    t.pruned = w;
    return success();
  };

  if (spec.method == Method::magnitude) {
    qwen::WeightStoreCache stores;
    for (Target &t : targets) {
      std::vector<float> w;
      if (failed(qwen::readFloatEntry(stores, t.op, t.weight.getRef(),
                                      t.rows * t.cols, w)) ||
          failed(pruneOne(t, w, nullptr)))
        return signalPassFailure();
    }
  } else {
    // Wanda: each op pruned when the executor reaches it, from its input
    // with the earlier ops already pruned.
    qwen::exec::Batch batch;
    std::string err;
    if (!qwen::exec::loadTokenFile(calibTokens, batch, err))
      return fail(err);
    auto ex = qwen::exec::Executor::create(m);
    if (!ex)
      return signalPassFailure();
    auto hook = [&](const qwen::exec::WeightSite &site,
                    const qwen::exec::Matrix *X,
                    std::vector<float> &w) -> LogicalResult {
      auto it = index.find(site.op);
      if (it == index.end() || !X)
        return success();
      Target &t = targets[it->second];
      if (t.zeroed >= 0) { // a weight read twice (tied): pruned once
        w = t.pruned;
        return success();
      }
      std::vector<double> norms = inputNorms(X->data.data(), X->rows, t.cols);
      return pruneOne(t, w, &norms);
    };
    if (failed(ex->run(batch, hook)))
      return signalPassFailure();
    for (Target &t : targets)
      if (t.zeroed < 0)
        return fail("the executor never reached the op reading '" +
                    t.weight.getRef().getLeafReference().getValue().str() +
                    "' (its output does not reach the logits)");
  }

  // Write the pruned weights and re-point the ops.
  std::string err;
  auto writer = qwen::ws::WeightStoreWriter::create(storePath, err);
  if (!writer)
    return fail(err);
  llvm::DenseMap<Operation *, Value> rewritten; // by source qwen.weight
  const char *mark = spec.pattern == qwen::prune::Pattern::twoFour ? "2:4" : "unstructured";
  for (Target &t : targets) {
    Value nw = rewritten.lookup(t.weight);
    if (!nw) {
      std::string base =
          t.weight.getRef().getLeafReference().getValue().str(); // same name, new store
      if (!writer->add(base, qwen::ws::DType::F32, {t.rows, t.cols},
                       t.pruned.data(), t.pruned.size() * 4, err))
        return fail(err);
      OpBuilder b(t.weight);
      auto ref = SymbolRefAttr::get(
          b.getStringAttr(storeName),
          {FlatSymbolRefAttr::get(b.getStringAttr(base))});
      nw = qwen::WeightOp::create(b, t.weight.getLoc(),
                                  t.weight.getResult().getType(), ref)
               .getResult();
      rewritten[t.weight] = nw;
    }
    t.op->getOpOperand(1).set(nw); // the weight of qwen.linear / qwen.logits
    t.op->setAttr(qwen::qquant::QQuantDialect::kPrunedAttrName,
                  StringAttr::get(m.getContext(), mark));
    if (report)
      llvm::errs() << "qwen-prune: "
                   << t.weight.getRef().getLeafReference().getValue() << " ["
                   << t.rows << "x" << t.cols << "]: " << t.zeroed
                   << " zeroed ("
                   << llvm::format("%.4f", double(t.zeroed) /
                                               double(t.rows * t.cols))
                   << ")\n";
  }
  for (auto &[src, nw] : rewritten)
    if (src->use_empty())
      src->erase();
  if (failed(qwen::finishNewStore(m, writer.get(), storeName, storePath)))
    return signalPassFailure();
}

} // namespace
