//===- MixedPrecision.cpp - the budgeted precision solver -----------------===//
//
// Exact multiple-choice knapsack by a dynamic program over Pareto fronts:
// after item i the front holds every (cost, loss) partial sum of items
// 0..i that no other partial sum dominates (cost' <= cost and loss' <=
// loss). Every optimal completion extends some front state (an assignment
// whose prefix is dominated can swap in the dominating prefix and get no
// worse), so the best state of the last front within the budget is optimal.
// Costs above the budget are dropped as they appear (costs are >= 0).
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/MixedPrecision.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qq = qwen::qquant;

namespace qwen::mixed {

namespace {
struct State {
  double cost, loss;
  int32_t parent; // index into the previous front
  int32_t option;
};
} // namespace

static std::vector<int> allowed(const Item &it) {
  std::vector<int> v;
  if (it.pinned >= 0 && it.pinned < int(it.options.size()))
    v.push_back(it.pinned);
  else
    for (int i = 0; i < int(it.options.size()); ++i)
      v.push_back(i);
  return v;
}

static Solution cheapest(const std::vector<Item> &items) {
  Solution s;
  for (const Item &it : items) {
    int best = -1;
    for (int o : allowed(it))
      if (best < 0 || it.options[o].cost < it.options[best].cost ||
          (it.options[o].cost == it.options[best].cost &&
           it.options[o].loss < it.options[best].loss))
        best = o;
    s.choice.push_back(best);
    if (best >= 0) {
      s.cost += it.options[best].cost;
      s.loss += it.options[best].loss;
    }
  }
  return s;
}

Solution solve(const std::vector<Item> &items, double budget,
               size_t maxStates) {
  const double limit = budget + std::fabs(budget) * 1e-12;
  std::vector<std::vector<State>> fronts;
  std::vector<State> front = {{0.0, 0.0, -1, -1}};
  Solution sol;
  for (const Item &it : items) {
    std::vector<int> opts = allowed(it);
    if (opts.empty())
      return cheapest(items); // an item without options: nothing to choose
    std::vector<State> next;
    next.reserve(front.size() * opts.size());
    for (int32_t p = 0; p < int32_t(front.size()); ++p)
      for (int o : opts) {
        double c = front[p].cost + it.options[o].cost;
        if (c > limit)
          continue;
        next.push_back({c, front[p].loss + it.options[o].loss, p, o});
      }
    if (next.empty()) {
      Solution s = cheapest(items);
      s.feasible = false;
      return s;
    }
    // Sort by cost, then loss, then (parent, option) for determinism; keep
    // the states whose loss is strictly below every cheaper state's.
    std::sort(next.begin(), next.end(), [](const State &a, const State &b) {
      if (a.cost != b.cost) return a.cost < b.cost;
      if (a.loss != b.loss) return a.loss < b.loss;
      if (a.parent != b.parent) return a.parent < b.parent;
      return a.option < b.option;
    });
    std::vector<State> pareto;
    double bestLoss = std::numeric_limits<double>::infinity();
    for (const State &s : next)
      if (s.loss < bestLoss) {
        pareto.push_back(s);
        bestLoss = s.loss;
      }
    if (pareto.size() > maxStates) {
      // Thin: keep the lowest-loss state of each of maxStates cost buckets
      // (the cheapest state always survives, so feasibility is kept).
      sol.exact = false;
      double lo = pareto.front().cost, hi = pareto.back().cost;
      double w = (hi - lo) / double(maxStates) + 1e-300;
      std::vector<State> thin;
      for (const State &s : pareto) {
        if (!thin.empty() &&
            std::floor((s.cost - lo) / w) == std::floor((thin.back().cost - lo) / w)) {
          if (s.loss < thin.back().loss)
            thin.back() = s;
          continue;
        }
        thin.push_back(s);
      }
      pareto.swap(thin);
    }
    sol.maxFront = std::max(sol.maxFront, pareto.size());
    fronts.push_back(front);
    front.swap(pareto);
  }
  // The last front's minimum loss is its last state (losses decrease).
  const State *best = &front.back();
  sol.feasible = true;
  sol.cost = best->cost;
  sol.loss = best->loss;
  sol.choice.assign(items.size(), -1);
  int32_t idx = int32_t(front.size()) - 1;
  const std::vector<State> *cur = &front;
  for (size_t i = items.size(); i-- > 0;) {
    const State &s = (*cur)[idx];
    sol.choice[i] = s.option;
    idx = s.parent;
    cur = &fronts[i];
  }
  (void)best;
  return sol;
}

Solution bruteForce(const std::vector<Item> &items, double budget) {
  const double limit = budget + std::fabs(budget) * 1e-12;
  std::vector<std::vector<int>> opts;
  for (const Item &it : items)
    opts.push_back(allowed(it));
  std::vector<size_t> idx(items.size(), 0);
  Solution best;
  best.loss = std::numeric_limits<double>::infinity();
  while (true) {
    double c = 0, l = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      const Option &o = items[i].options[opts[i][idx[i]]];
      c += o.cost;
      l += o.loss;
    }
    if (c <= limit && (l < best.loss || (l == best.loss && c < best.cost))) {
      best.feasible = true;
      best.cost = c;
      best.loss = l;
      best.choice.clear();
      for (size_t i = 0; i < items.size(); ++i)
        best.choice.push_back(opts[i][idx[i]]);
    }
    size_t i = 0;
    for (; i < items.size(); ++i) {
      if (++idx[i] < opts[i].size())
        break;
      idx[i] = 0;
    }
    if (i == items.size())
      break;
  }
  if (!best.feasible) {
    Solution s = cheapest(items);
    s.feasible = false;
    return s;
  }
  return best;
}

//===----------------------------------------------------------------------===//
// Candidates
//===----------------------------------------------------------------------===//

static quant::LayerScheme uni(unsigned bits, qq::Granularity g,
                              unsigned group) {
  quant::LayerScheme s;
  s.bits = bits;
  s.granularity = g;
  s.groupSize = g == qq::Granularity::group ? group : 0;
  return s;
}

std::vector<quant::LayerScheme> defaultCandidates() {
  using G = qq::Granularity;
  quant::LayerScheme cb = uni(4, G::channel, 0), sp = uni(4, G::group, 128);
  cb.grid = qq::Grid::codebook;
  cb.isSigned = false;
  sp.sparsity = qq::Sparsity::s2_4;
  return {uni(8, G::channel, 0), uni(4, G::group, 32), uni(4, G::group, 128),
          uni(3, G::group, 128), uni(2, G::group, 64), cb, sp};
}

qq::SchemeAttr toSchemeAttr(mlir::MLIRContext *ctx, const quant::LayerScheme &s) {
  bool cb = s.grid == qq::Grid::codebook;
  return qq::SchemeAttr::get(
      ctx, s.grid, s.bits, cb ? false : s.isSigned, cb ? true : s.symmetric,
      s.granularity,
      s.granularity == qq::Granularity::group ? s.groupSize : 0, s.sparsity);
}

quant::LayerScheme fromSchemeAttr(qq::SchemeAttr a) {
  quant::LayerScheme s;
  s.grid = a.getGrid();
  s.bits = a.getBits();
  s.isSigned = a.getIsSigned();
  s.symmetric = a.getSymmetric();
  s.granularity = a.getGranularity();
  s.groupSize = a.getGroupSize();
  s.sparsity = a.getSparsity();
  return s;
}

std::string candidateName(const quant::LayerScheme &s) {
  if (s.keepFloat)
    return "fp32";
  std::string n = (s.grid == qq::Grid::codebook ? "cb"
                   : s.grid == qq::Grid::log2   ? "log2i"
                   : s.isSigned                 ? "i"
                                                : "u") +
                  std::to_string(s.bits) + "-";
  switch (s.granularity) {
  case qq::Granularity::tensor: n += "tensor"; break;
  case qq::Granularity::channel: n += "channel"; break;
  case qq::Granularity::group: n += "g" + std::to_string(s.groupSize); break;
  }
  if (s.grid == qq::Grid::uniform && !s.symmetric)
    n += "-asym";
  if (s.sparsity == qq::Sparsity::s2_4)
    n += "-2:4";
  return n;
}

bool parseCandidates(const std::string &spec,
                     std::vector<quant::LayerScheme> &out, std::string &err) {
  out.clear();
  llvm::SmallVector<llvm::StringRef> parts;
  llvm::StringRef(spec).split(parts, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef p : parts) {
    p = p.trim();
    llvm::SmallVector<llvm::StringRef> f;
    p.split(f, '-');
    quant::LayerScheme s;
    unsigned bits = 0;
    if (f.size() >= 3 && f.back() == "2:4") {
      s.sparsity = qq::Sparsity::s2_4;
      f.pop_back();
    }
    bool cb = f.size() >= 1 && f[0].starts_with("cb");
    if (cb) {
      s.grid = qq::Grid::codebook;
      f[0] = f[0].drop_front(); // "cb4" -> "b4": one letter, then the bits, like "i4"
    }
    bool ok = f.size() >= 2 && f.size() <= 3 && f[0].size() >= 2 &&
              (f[0][0] == 'i' || f[0][0] == 'u' || cb) &&
              !f[0].drop_front().getAsInteger(10, bits) &&
              !(cb && f.size() == 3);
    if (ok) {
      s.bits = bits;
      s.isSigned = !cb && f[0][0] == 'i';
      if (f[1] == "channel")
        s.granularity = qq::Granularity::channel, s.groupSize = 0;
      else if (f[1] == "tensor")
        s.granularity = qq::Granularity::tensor, s.groupSize = 0;
      else if (f[1].starts_with("g") &&
               !f[1].drop_front().getAsInteger(10, s.groupSize))
        s.granularity = qq::Granularity::group;
      else
        ok = false;
      if (f.size() == 3) {
        if (f[2] == "asym")
          s.symmetric = false;
        else
          ok = false;
      }
    }
    std::string verr;
    if (!ok || !s.validate(verr)) {
      err = "bad candidate scheme '" + p.str() +
            "' (expected e.g. i8-channel, i4-g128, u4-g64-asym, cb4-channel, "
            "i4-g128-2:4" +
            (verr.empty() ? std::string(")") : "): " + verr);
      return false;
    }
    out.push_back(s);
  }
  if (out.empty()) {
    err = "no candidate schemes";
    return false;
  }
  return true;
}

quant::LayerScheme effectiveScheme(quant::LayerScheme s, int64_t cols) {
  if (s.granularity == qq::Granularity::group) {
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
  return s;
}

int64_t storedBits(const quant::LayerScheme &in, int64_t rows, int64_t cols) {
  if (in.keepFloat)
    return 32 * rows * cols;
  quant::LayerScheme s = effectiveScheme(in, cols);
  bool sparse = s.sparsity == qq::Sparsity::s2_4;
  int64_t kept = sparse ? cols / 2 : cols;
  int64_t rowBytes = (kept * int64_t(s.bits) + 7) / 8;
  int64_t scales = s.granularity == qq::Granularity::tensor ? 1
                   : s.granularity == qq::Granularity::channel
                       ? rows
                       : rows * (cols / s.groupSize);
  int64_t mask = sparse ? rows * ((kept * 2 + 7) / 8) * 8 : 0;
  if (s.grid == qq::Grid::codebook) // f32 centroids, 2^bits per block
    return rows * rowBytes * 8 + scales * (int64_t(32) << s.bits);
  return rows * rowBytes * 8 + scales * 32 +
         (s.grid == qq::Grid::uniform && !s.symmetric ? scales * 8 : 0) + mask;
}

} // namespace qwen::mixed
