//===- QuantAlgorithms.h - the numerics of weight quantization --*- C++ -*-===//
//
// Plain numerics (no IR) behind --qwen-quantize-weights and --qwen-smooth:
//   - the grids: uniform (symmetric / asymmetric, RTN) and log2
//     (power-of-two levels), per tensor, channel or group, with an optional
//     clipping ratio per scale block, and the packing of codes;
//   - GPTQ (Frantar et al. 2022): columns quantized one at a time, the error
//     of each spread over the not-yet-quantized columns through the inverse
//     Hessian H = X^T X of the layer's calibration inputs (Cholesky form,
//     lazy block updates, damping, act-order, per-group scales);
//   - clip search: per scale block, the clipping ratio in [0.5, 1] that
//     minimises the output error d^T H d of the block;
//   - AWQ / SmoothQuant scale search (per input channel scales s folded into
//     the producer of the input, W' = W diag(s)).
// test/Transforms/Inputs/quant_reference.py mirrors these in numpy; the
// lit tests compare them.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_QUANTALGORITHMS_H
#define QWEN_TRANSFORMS_QUANTALGORITHMS_H

#include "qwen/Transforms/QuantizeWeights.h"

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace qwen::quant {

/// Runs f(begin, end) over [0, n) split across the hardware threads, at
/// least `grain` items per thread.
template <typename F> void parallelFor(int64_t n, int64_t grain, F f) {
  int64_t threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  threads = std::min<int64_t>(threads,
                              (n + grain - 1) / std::max<int64_t>(grain, 1));
  if (threads <= 1) {
    f(int64_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  int64_t chunk = (n + threads - 1) / threads;
  for (int64_t t = 0; t < threads; ++t) {
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e)
      pool.emplace_back([=] { f(b, e); });
  }
  for (auto &t : pool)
    t.join();
}

/// The packed components of one quantized weight (the store entries
/// `.codes`, `.scales`, `.zeros`).
struct Packed {
  std::vector<uint8_t> codes; // [rows, rowBytes], `bits` per code, LSB first
  std::vector<float> scales;  // [1] (tensor) or [rows, perRow]
  std::vector<uint8_t> zeros; // as many as scales (asymmetric uniform only)
  /// 2:4 sparse weights: [rows, (cols / 2 * 2 + 7) / 8], the position (0..3)
  /// in its group of 4 of each kept code, 2 bits each, LSB first; `codes`
  /// then holds only the kept codes ([rows, cols / 2] packed).
  std::vector<uint8_t> mask;
  int64_t rowBytes = 0, perRow = 0;
};

/// The scale (and zero point, in unsigned code units) of one scale block.
struct BlockGrid {
  float scale = 0.f;
  int32_t zpU = 0;
};

/// The arithmetic of one scheme (see Passes.td, --qwen-quantize-weights).
class GridQuantizer {
public:
  explicit GridQuantizer(const LayerScheme &s);
  /// Fits a block's grid to `n` values (with stride), max |x| (or the
  /// range) multiplied by `clip`.
  BlockGrid fit(const float *v, int64_t n, int64_t stride = 1,
                float clip = 1.f) const;
  /// The code stored for `v` (in `bits` bits, two's complement for signed).
  int32_t code(float v, const BlockGrid &g) const;
  /// The value a code dequantizes to (what the kernels compute).
  float dequant(int32_t code, const BlockGrid &g) const;
  float roundTrip(float v, const BlockGrid &g) const {
    return dequant(code(v, g), g);
  }
  uint8_t zeroByte(const BlockGrid &g) const;
  const LayerScheme &scheme() const { return s; }

private:
  LayerScheme s;
  int32_t half, levels;
};

/// Scale-block layout of a [rows, cols] weight under scheme `s`.
struct BlockLayout {
  int64_t rows, cols, block, perRow;
  bool tensor;
  BlockLayout(const LayerScheme &s, int64_t rows, int64_t cols);
  int64_t numBlocks() const { return tensor ? 1 : rows * perRow; }
  int64_t blockOf(int64_t r, int64_t c) const {
    return tensor ? 0 : r * perRow + c / block;
  }
};

/// Packs codes ([rows, cols]) and block grids into the store layout.
Packed pack(const LayerScheme &s, int64_t rows, int64_t cols,
            const std::vector<int32_t> &codes,
            const std::vector<BlockGrid> &grids);

/// Round-to-nearest. `clip`, if not empty, has one ratio per block.
/// `dequant`, if given, receives the dequantized weight.
Packed quantizeRTN(const float *w, int64_t rows, int64_t cols,
                   const LayerScheme &s, const std::vector<float> &clip = {},
                   std::vector<float> *dequant = nullptr);

/// The RTN round trip of a weight (for sensitivity measurements).
void quantizeDequantize(const float *w, int64_t rows, int64_t cols,
                        const LayerScheme &s, std::vector<float> &out);

/// Per block, the clipping ratio among 1, 0.95, ..., 0.5 minimising the
/// block's output error d^T H_bb d (H_bb: the block's columns of the cols x
/// cols `H`; per tensor / channel with cols > 1024, diag(H) only).
std::vector<float> searchClip(const float *w, int64_t rows, int64_t cols,
                              const LayerScheme &s,
                              const std::vector<double> &H);

struct GPTQOptions {
  double damp = 0.01;     // added to diag(H): damp * mean(diag(H))
  bool actOrder = true;   // columns in order of decreasing diag(H)
  int64_t blockSize = 128;
  bool clipSearch = false; // clip search for each block's grid (with H)
  /// Weights that are exactly 0 in `w` (pruned) stay 0: their code is the
  /// grid's zero and their whole value is the error compensated by the
  /// later columns (SparseGPT's reconstruction with a fixed mask).
  bool keepZeros = false;
  /// [rows, cols], 1 where the weight is pruned: its code is the grid's zero
  /// and its whole (updated) value is compensated by the later columns
  /// (SparseGPT: the mask chosen on the unpruned weight, the pruning error
  /// reconstructed together with the quantization error).
  const std::vector<uint8_t> *pruned = nullptr;
};

/// GPTQ of `w` ([rows, cols]) given H = X^T X ([cols, cols], row-major).
/// With act-order (or per tensor / channel) every block's grid is fitted
/// before the updates, on the original weight ("static groups", so a group
/// stays contiguous in the original column order); without it, a group's
/// grid is fitted on the updated weight when its first column is reached.
/// On error (H not positive definite even after damping) returns false
/// with `err` set.
bool gptq(const float *w, int64_t rows, int64_t cols, const LayerScheme &s,
          std::vector<double> H, const GPTQOptions &opt, Packed &out,
          std::vector<float> &dequant, std::string &err);

/// Compacts a packed dense weight whose every group of 4 inputs holds at
/// most 2 nonzero values (`dequant`, [rows, cols], its dequantized values)
/// into the 2:4 layout: the 2 kept codes of each group (the nonzero ones,
/// padded with the group's lowest zero positions) and their positions in
/// `mask`. Scales and zero points are unchanged. Returns false with `err`
/// naming the first row and group with 3 or 4 nonzeros.
bool compress24(Packed &p, const std::vector<float> &dequant, unsigned bits,
                int64_t rows, int64_t cols, std::string &err);

/// y[M, N] = x[M, K] * w[N, K]^T (+ bias[N]), float, multithreaded.
void matmulNT(const float *x, const float *w, const float *bias, float *y,
              int64_t M, int64_t N, int64_t K);

/// Output error sum_r (w_r - q_r)^T H (w_r - q_r) of a dequantized weight.
double outputError(const float *w, const float *q, int64_t rows, int64_t cols,
                   const std::vector<double> &H);

} // namespace qwen::quant

#endif // QWEN_TRANSFORMS_QUANTALGORITHMS_H
