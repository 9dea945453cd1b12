//===- WeightSharing.h - k-means codebooks for weights ----------*- C++ -*-===//
//
// The numerics of --qwen-share-weights (weight sharing, issue 8): each block
// of a weight (the whole tensor, one output channel, or a group of
// `groupSize` inputs of one channel) gets a codebook of 2^bits f32 centroids
// found by 1-D k-means, and each weight the index of its nearest centroid,
// packed to `bits` bits exactly like uniform codes (the code of column c
// occupies bits [c*b, c*b+b) of the row's bytes, LSB first).
//
// Per block, in double precision:
//   - data x_i with weights v_i (1, or with importance the per-input-channel
//     E[x_j^2] of the layer's calibration inputs, divided by its mean and
//     floored at 1e-6);
//   - k-means++ initialisation driven by splitmix64 seeded with
//     seed ^ (block * 0xD1B54A32D192ED03): a point is drawn with probability
//     proportional to v_i (first) and then v_i * D_i^2 (D_i: distance to the
//     nearest chosen centroid), as the first i whose running sum exceeds
//     u * total (u = next() >> 11 times 2^-53); when every D_i is 0 the
//     remaining centroids repeat the first;
//   - Lloyd iterations: each point to its nearest centroid (the first on a
//     tie), each non-empty centroid to the v-weighted mean of its points
//     (sums in point order), until the largest centroid move is at most
//     tolerance * max|x| or after maxIters iterations;
//   - the centroids rounded to f32 (or, with `f16`, to f16, nearest even,
//     straight from double) and sorted ascending, and each point's
//     index the nearest of those (first on a tie).
// test/Transforms/Inputs/kmeans_reference.py is the numpy mirror.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_WEIGHTSHARING_H
#define QWEN_TRANSFORMS_WEIGHTSHARING_H

#include "qwen/Transforms/QuantAlgorithms.h"

#include <cstdint>
#include <vector>

namespace qwen::quant {

struct KMeansOptions {
  unsigned maxIters = 100;
  double tolerance = 1e-6; // relative to the block's max |x|
  uint64_t seed = 0x5eed;
  bool f16 = false; // centroids rounded to f16 (stored as f16)
};

/// `v` rounded to the nearest f16 (ties to even), as a float.
float roundToHalf(double v);
/// The IEEE f16 bits of `v` (which must be representable).
uint16_t halfBits(float v);

/// 1-D weighted k-means of `n` points into `k` centroids (see above).
/// `weights` may be null (all 1). `centroids` receives k sorted f32 values,
/// `index` one per point. Returns the number of Lloyd iterations run.
unsigned kmeans1d(const double *x, const double *weights, int64_t n,
                  unsigned k, const KMeansOptions &o, uint64_t block,
                  std::vector<float> &centroids, std::vector<int32_t> &index);

/// The codebook quantization of a [rows, cols] weight under `s` (grid
/// codebook, granularity tensor / channel / group). `importance`, if not
/// empty, has one value per input column. The result's `scales` hold the
/// codebooks, [books, 2^bits] row-major (books: 1 per tensor, rows per
/// channel, rows * cols / groupSize per group), `perRow` the books per row
/// (1 per tensor as well). `dequant`, if given, receives the centroid of
/// each weight.
Packed quantizeCodebook(const float *w, int64_t rows, int64_t cols,
                        const LayerScheme &s,
                        const std::vector<double> &importance,
                        std::vector<float> *dequant,
                        const KMeansOptions &o = {});

} // namespace qwen::quant

#endif // QWEN_TRANSFORMS_WEIGHTSHARING_H
