//===- MixedPrecisionSolverTest.cpp - the budget solver vs brute force ----===//

#include "qwen/Transforms/MixedPrecision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace qwen::mixed;

namespace {

Item item(std::vector<std::pair<double, double>> costLoss, int pinned = -1) {
  Item it;
  for (auto [c, l] : costLoss)
    it.options.push_back({c, l});
  it.pinned = pinned;
  return it;
}

void expectSame(const Solution &a, const Solution &b) {
  ASSERT_EQ(a.feasible, b.feasible);
  if (!a.feasible)
    return;
  EXPECT_NEAR(a.loss, b.loss, 1e-12 * (1 + std::fabs(b.loss)));
  EXPECT_LE(a.cost, b.cost + 1e-9);
}

TEST(MixedPrecisionSolver, HandMadeTable) {
  // Three layers, options (bits cost, KL loss) for i8 / i4 / i2.
  std::vector<Item> items = {
      item({{800, 0.001}, {400, 0.010}, {200, 0.300}}),  // sensitive
      item({{800, 0.001}, {400, 0.002}, {200, 0.004}}),  // robust
      item({{1600, 0.002}, {800, 0.003}, {400, 0.050}}), // big
  };
  // Everything at 8 bits fits.
  Solution s = solve(items, 3200);
  ASSERT_TRUE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 0, 0}));
  // A budget of 1800: the robust layer drops to 2 bits, the big one to 4,
  // the sensitive one keeps 8 bits (0.008 against 0.017 with it at 4).
  s = solve(items, 1800);
  ASSERT_TRUE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 2, 1}));
  EXPECT_DOUBLE_EQ(s.cost, 1800);
  EXPECT_NEAR(s.loss, 0.008, 1e-15);
  expectSame(s, bruteForce(items, 1800));
  // 1799: the sensitive layer must give up its 8 bits.
  s = solve(items, 1799);
  EXPECT_EQ(s.choice, (std::vector<int>{1, 1, 1}));
  expectSame(s, bruteForce(items, 1799));
  // Tight: only the cheapest assignment fits.
  s = solve(items, 800);
  ASSERT_TRUE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{2, 2, 2}));
  // Infeasible.
  s = solve(items, 799);
  EXPECT_FALSE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{2, 2, 2}));
}

TEST(MixedPrecisionSolver, Pinned) {
  std::vector<Item> items = {
      item({{8, 0.0}, {4, 1.0}}, /*pinned=*/0),
      item({{8, 0.0}, {4, 0.5}}),
      item({{8, 0.0}, {4, 0.1}}),
  };
  Solution s = solve(items, 16);
  ASSERT_TRUE(s.feasible);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 1, 1}));
  expectSame(s, bruteForce(items, 16));
  s = solve(items, 20);
  EXPECT_EQ(s.choice, (std::vector<int>{0, 0, 1}));
}

TEST(MixedPrecisionSolver, TiesGoToLowerCost) {
  std::vector<Item> items = {item({{8, 0.5}, {4, 0.5}})};
  Solution s = solve(items, 100);
  EXPECT_EQ(s.choice, (std::vector<int>{1}));
  EXPECT_DOUBLE_EQ(s.cost, 4);
}

// Random tables against brute force: integer (bits) costs and real-valued
// (latency) costs, budgets from infeasible to everything-fits.
TEST(MixedPrecisionSolver, RandomAgainstBruteForce) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 400; ++trial) {
    int n = 1 + int(rng() % 7), k = 1 + int(rng() % 4);
    bool integer = trial % 2 == 0;
    std::vector<Item> items;
    double minSum = 0, maxSum = 0;
    for (int i = 0; i < n; ++i) {
      Item it;
      double lo = 1e300, hi = 0;
      for (int j = 0; j < k; ++j) {
        double c = integer ? double(1 + rng() % 40)
                           : std::uniform_real_distribution<>(0.1, 5.0)(rng);
        double l = std::uniform_real_distribution<>(0.0, 1.0)(rng);
        if (rng() % 5 == 0)
          l = 0.25; // ties
        it.options.push_back({c, l});
        lo = std::min(lo, c);
        hi = std::max(hi, c);
      }
      if (rng() % 6 == 0)
        it.pinned = int(rng() % k);
      items.push_back(it);
      minSum += lo;
      maxSum += hi;
    }
    for (int b = 0; b < 6; ++b) {
      double budget = minSum * 0.9 + (maxSum * 1.05 - minSum * 0.9) * b / 5;
      Solution s = solve(items, budget), r = bruteForce(items, budget);
      SCOPED_TRACE("trial " + std::to_string(trial) + " budget " +
                   std::to_string(budget));
      expectSame(s, r);
      if (s.feasible) {
        // The reported choice really has the reported cost and loss.
        double c = 0, l = 0;
        for (size_t i = 0; i < items.size(); ++i) {
          if (items[i].pinned >= 0)
            EXPECT_EQ(s.choice[i], items[i].pinned);
          c += items[i].options[s.choice[i]].cost;
          l += items[i].options[s.choice[i]].loss;
        }
        EXPECT_NEAR(c, s.cost, 1e-9);
        EXPECT_NEAR(l, s.loss, 1e-9);
        EXPECT_LE(c, budget * (1 + 1e-12));
        EXPECT_TRUE(s.exact);
      }
    }
  }
}

// A model-sized problem (168 layers x 5 schemes, few distinct shapes) stays
// exact and small.
TEST(MixedPrecisionSolver, ModelSized) {
  std::mt19937 rng(7);
  std::vector<Item> items;
  double total = 0;
  for (int i = 0; i < 168; ++i) {
    double n = (i % 7 < 4) ? 896.0 * 896 : 896.0 * 4864;
    Item it;
    for (double bits : {8.25, 4.25, 5.0, 3.25, 2.5})
      it.options.push_back(
          {std::round(n * bits),
           std::exp(-bits) * std::uniform_real_distribution<>(0.5, 2)(rng)});
    items.push_back(it);
    total += n;
  }
  Solution s = solve(items, total * 4.5);
  ASSERT_TRUE(s.feasible);
  EXPECT_TRUE(s.exact);
  EXPECT_LE(s.cost, total * 4.5);
}

} // namespace

namespace {

using qwen::quant::LayerScheme;

TEST(MixedPrecisionCandidates, ParseAndName) {
  std::vector<LayerScheme> c;
  std::string err;
  ASSERT_TRUE(parseCandidates("i8-channel, i4-g128,u3-g64-asym,i2-tensor", c, err))
      << err;
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(candidateName(c[0]), "i8-channel");
  EXPECT_EQ(candidateName(c[1]), "i4-g128");
  EXPECT_EQ(candidateName(c[2]), "u3-g64-asym");
  EXPECT_EQ(candidateName(c[3]), "i2-tensor");
  EXPECT_FALSE(parseCandidates("i5-g128", c, err));
  EXPECT_FALSE(parseCandidates("i4-g100", c, err));
  EXPECT_FALSE(parseCandidates("i4", c, err));
  EXPECT_FALSE(parseCandidates("", c, err));
  std::vector<std::string> names;
  for (const LayerScheme &s : defaultCandidates())
    names.push_back(candidateName(s));
  EXPECT_EQ(names, (std::vector<std::string>{"i8-channel", "i4-g32", "i4-g128",
                                             "i3-g128", "i2-g64", "cb4-channel",
                                             "i4-g128-2:4"}));
  // Codebooks and 2:4 candidates round-trip through their names.
  ASSERT_TRUE(parseCandidates("cb4-channel,cb3-g128,i4-g64-2:4,u4-g32-asym-2:4", c, err)) << err;
  EXPECT_EQ(candidateName(c[0]), "cb4-channel");
  EXPECT_EQ(c[0].grid, qwen::qquant::Grid::codebook);
  EXPECT_EQ(candidateName(c[1]), "cb3-g128");
  EXPECT_EQ(candidateName(c[2]), "i4-g64-2:4");
  EXPECT_EQ(c[2].sparsity, qwen::qquant::Sparsity::s2_4);
  EXPECT_EQ(candidateName(c[3]), "u4-g32-asym-2:4");
  EXPECT_FALSE(parseCandidates("cb4-channel-asym", c, err));
  EXPECT_FALSE(parseCandidates("cb4-channel-2:4", c, err)); // codebooks are dense
}

// Stored bits as weights.bin holds them: packed codes per row, f32 scales,
// 8-bit zero points; groups that do not divide the columns fall back.
TEST(MixedPrecisionCandidates, StoredBits) {
  std::vector<LayerScheme> c;
  std::string err;
  ASSERT_TRUE(parseCandidates("i4-g128,i3-g128,i8-channel,u4-g32-asym,i2-tensor", c, err));
  // 704 columns: groups of 128 fall back to 64 (11 per row).
  EXPECT_EQ(effectiveScheme(c[0], 704).groupSize, 64u);
  EXPECT_EQ(storedBits(c[0], 256, 704), 256 * 704 * 4 + 256 * 11 * 32);
  // 3-bit codes pack per row: ceil(256 * 3 / 8) bytes.
  EXPECT_EQ(storedBits(c[1], 10, 256), 10 * 96 * 8 + 10 * 2 * 32);
  EXPECT_EQ(storedBits(c[2], 4096, 256), 4096 * 256 * 8 + 4096 * 32);
  EXPECT_EQ(storedBits(c[3], 2, 64), 2 * 32 * 8 + 2 * 2 * (32 + 8));
  EXPECT_EQ(storedBits(c[4], 3, 5), 3 * 2 * 8 + 32);
  LayerScheme f;
  f.keepFloat = true;
  EXPECT_EQ(storedBits(f, 3, 5), 32 * 15);
  // Codebooks: indices + 2^bits f32 centroids per block; 2:4: half the
  // codes, a 2-bit position per kept code, the scales of the dense scheme.
  ASSERT_TRUE(parseCandidates("cb4-channel,i4-g64-2:4", c, err));
  EXPECT_EQ(storedBits(c[0], 3, 64), 3 * 32 * 8 + 3 * 16 * 32);
  EXPECT_EQ(storedBits(c[1], 3, 128), 3 * 32 * 8 + 3 * 16 * 8 + 3 * 2 * 32);
  ASSERT_TRUE(parseCandidates("i4-g128,i3-g128,i8-channel,u4-g32-asym,i2-tensor", c, err));
  // 48 columns: no group of 32..128 divides it: per channel.
  EXPECT_EQ(effectiveScheme(c[0], 48).granularity,
            qwen::qquant::Granularity::channel);
}

} // namespace
