//===- MixedPrecision.h - per-layer precision under a budget ----*- C++ -*-===//
//
// The pieces of mixed-precision assignment:
//
//   * the solver (plain C++): one option per item (a layer's weight), each
//     option with a cost (stored bits, bytes or predicted milliseconds) and a
//     loss (measured output KL), minimising the summed loss with the summed
//     cost within a budget. Exact: a dynamic program over the Pareto front
//     of (cost, loss) partial sums (a state is kept only if no other state
//     has both a lower-or-equal cost and a lower-or-equal loss), which is the
//     multiple-choice knapsack's exact DP without discretising the budget;
//   * the candidate schemes the sensitivity pass measures, and their stored
//     size as weights.bin holds them (codes + f32 scales + zero points);
//   * the passes --qwen-sensitivity and --qwen-assign-precision as C++
//     values, for qwen-compile's `mixed-<bits>` recipes.
//
// Losses are assumed additive over layers (the usual first-order model of
// HAWQ / mixed-precision search: each layer's KL is measured with only that
// layer quantized).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_MIXEDPRECISION_H
#define QWEN_TRANSFORMS_MIXEDPRECISION_H

#include "qwen/Transforms/QuantizeWeights.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlir {
class Pass;
} // namespace mlir

namespace qwen::mixed {

//===----------------------------------------------------------------------===//
// Solver
//===----------------------------------------------------------------------===//

struct Option {
  double cost = 0; // in the budget's unit
  double loss = 0;
};

struct Item {
  std::vector<Option> options;
  /// If >= 0, this option is forced (a pinned layer).
  int pinned = -1;
};

struct Solution {
  bool feasible = false;
  /// The chosen option index per item.
  std::vector<int> choice;
  double cost = 0, loss = 0;
  /// False when the Pareto front had to be thinned (more than maxStates
  /// states); the result is then feasible but may not be optimal.
  bool exact = true;
  /// The largest number of Pareto states held after one item.
  size_t maxFront = 0;
};

/// Minimises sum loss subject to sum cost <= budget (+ a relative 1e-12).
/// Ties in loss go to the lower cost, then to the lower option indices.
/// Infeasible (even the cheapest options exceed the budget): feasible =
/// false and `choice` holds the cheapest option of every item.
Solution solve(const std::vector<Item> &items, double budget,
               size_t maxStates = 1u << 20);

/// Enumerates every combination (tests; items^options must be small).
Solution bruteForce(const std::vector<Item> &items, double budget);

//===----------------------------------------------------------------------===//
// Candidate schemes
//===----------------------------------------------------------------------===//

/// The default candidates: i8 per channel, i4 g32, i4 g128, i3 g128,
/// i2 g64 (signed, symmetric: the named recipes' schemes), 4-bit k-means
/// codebooks per channel (cb4-channel, f32 centroids) and 2:4-pruned i4
/// g128 (i4-g128-2:4).
std::vector<quant::LayerScheme> defaultCandidates();

/// Parses a comma-separated list of candidates, each like `i8-channel`,
/// `i4-g128`, `i3-g64`, `i2-tensor`, `u4-g128-asym`, a codebook `cb4-channel`
/// / `cb3-g128` / `cb8-tensor`, or a uniform one with `-2:4` (pruned 2:4:
/// Wanda on the calibration inputs, then round to nearest).
bool parseCandidates(const std::string &spec,
                     std::vector<quant::LayerScheme> &out, std::string &err);
/// The short name parseCandidates reads (e.g. "i4-g128").
std::string candidateName(const quant::LayerScheme &s);

/// The scheme --qwen-quantize-weights actually applies to a [rows, cols]
/// weight: a group size that does not divide `cols` falls back to the
/// largest of 128/64/32 that does, else per channel.
quant::LayerScheme effectiveScheme(quant::LayerScheme s, int64_t cols);

/// Stored bits of a [rows, cols] weight in scheme `s` (after
/// effectiveScheme): codes, f32 scales, 8-bit zero points. Float: 32/weight.
int64_t storedBits(const quant::LayerScheme &s, int64_t rows, int64_t cols);

/// The #qquant.scheme of a (weight) LayerScheme and back: grid, bits,
/// signedness, symmetry, granularity, group size, sparsity.
qquant::SchemeAttr toSchemeAttr(mlir::MLIRContext *ctx,
                                const quant::LayerScheme &s);
quant::LayerScheme fromSchemeAttr(qquant::SchemeAttr a);

//===----------------------------------------------------------------------===//
// Passes
//===----------------------------------------------------------------------===//

struct SensitivityOptions {
  std::string calibTokens; // token file (qwen::exec::loadTokenFile)
  std::vector<quant::LayerScheme> candidates = defaultCandidates();
  /// Use at most this many calibration tokens (0: all), whole sequences.
  int64_t maxTokens = 0;
  bool embedding = true; // measure the embedding table too
  /// Token sequences given directly (qwen-compile); else calibTokens.
  std::vector<std::vector<int64_t>> sequences;
};

struct AssignOptions {
  double avgBits = 0, sizeMB = 0, latencyMs = 0; // exactly one > 0
  /// Pinned layers: exact names or globs with an override (recipe-file
  /// "layers" syntax), applied to the i8 per-channel scheme.
  std::vector<quant::LayerOverride> pins;
  bool printAssignment = false;
  /// If set, the assignment is also written as a qwen-compile recipe file
  /// ({"base": "fp32", "layers": {"<layer>": {"bits": ..., ...}}}).
  std::string recipeOut;
};

std::unique_ptr<mlir::Pass> createSensitivityPass(SensitivityOptions o);
std::unique_ptr<mlir::Pass> createAssignPrecisionPass(AssignOptions o);

} // namespace qwen::mixed

#endif // QWEN_TRANSFORMS_MIXEDPRECISION_H
