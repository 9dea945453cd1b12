//===- Sampler.cpp - greedy / temperature / top-k / top-p sampling ---------===//
//
// Deterministic everywhere: the generator is splitmix64 and the arithmetic is
// plain double, so one seed gives the same ids with any standard library.
//
//===----------------------------------------------------------------------===//

#include "RuntimeImpl.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qwen::rt {

uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int64_t sample(const float *logits, int64_t vocab, float temperature,
               int32_t topK, float topP, uint64_t *rng) {
  if (!logits || vocab <= 0)
    return -1;
  // Greedy: the first maximum, NaN never wins.
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
      best = i;
  if (best < 0)
    return -1;
  if (!(temperature > 0) || topK == 1)
    return best;
  if (!rng)
    return -1;
  if (std::isinf(logits[best]) && logits[best] < 0)
    return best; // everything is -inf: nothing to weigh

  struct Cand {
    float logit;
    int64_t id;
  };
  auto before = [](const Cand &a, const Cand &b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  std::vector<Cand> cands;
  cands.reserve(size_t(vocab));
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]))
      cands.push_back({logits[i], i});
  bool restrictP = topP > 0 && topP < 1;
  if (topK > 0 && size_t(topK) < cands.size()) {
    std::partial_sort(cands.begin(), cands.begin() + topK, cands.end(),
                      before);
    cands.resize(size_t(topK));
  } else if (restrictP) {
    std::sort(cands.begin(), cands.end(), before);
  }
  double maxLogit = logits[best];
  std::vector<double> weight(cands.size());
  double total = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    weight[i] = std::exp((double(cands[i].logit) - maxLogit) / temperature);
    total += weight[i];
  }
  size_t keep = cands.size();
  if (restrictP) {
    // The smallest prefix (most likely first) whose mass reaches top_p.
    double need = double(topP) * total, acc = 0;
    for (size_t i = 0; i < cands.size(); ++i) {
      acc += weight[i];
      if (acc >= need) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (size_t i = 0; i < keep; ++i)
      total += weight[i];
  }
  double u = double(splitmix64(*rng) >> 11) * (1.0 / 9007199254740992.0);
  double target = u * total, acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += weight[i];
    if (target < acc)
      return cands[i].id;
  }
  // Rounding left target at the very end: the last candidate with weight.
  for (size_t i = keep; i-- > 0;)
    if (weight[i] > 0)
      return cands[i].id;
  return best;
}

} // namespace qwen::rt
