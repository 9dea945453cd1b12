//===- ActivationStats.h - streaming calibration statistics -----*- C++ -*-===//
//
// What qwen-calibrate accumulates for one observed activation (the input of
// a linear / logits op, seen as a [rows, K] matrix), in memory independent
// of how many rows stream through:
//   - count, min, max, absmax; per-channel (input feature) min and max;
//   - the diagonal of the second moment, sum_r x[r, j]^2, and, when asked
//     (K <= 2048 in qwen-calibrate), the full X^T X, both in double;
//   - a histogram of |x| with a fixed number of equal bins over [0, range],
//     range doubled (pairs of bins merged, exactly) when a larger value
//     arrives.
// From the histogram come the clipping thresholds of symmetric int8
// (levels -127..127, s = threshold / 127):
//   max         absmax;
//   percentile  the fraction-quantile of |x| (linear inside its bin);
//   entropy     TensorRT's KL search: for each candidate i >= 128 bins, the
//               reference P = bins[0..i) with the mass beyond added to the
//               last bin, Q = bins[0..i) merged into 128 buckets and spread
//               back evenly over each bucket's non-empty bins; the threshold
//               is i * width for the i with the least KL(P || Q) (the largest
//               such i on ties), as pytorch-quantization's
//               _compute_amax_entropy (without its bins[0] = bins[1] ReLU
//               adjustment);
//   mse         argmin over bin edges t of the expected squared error,
//               sum over bins below t of count * (t/127)^2 / 12 (rounding
//               noise) plus, over bins above t, count * E[(x - t)^2] with x
//               uniform in the bin (clipping error).
// Every threshold is capped at absmax. Plain C++, no LLVM/MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_CALIBRATION_ACTIVATIONSTATS_H
#define QWEN_CALIBRATION_ACTIVATIONSTATS_H

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace qwen::calib {

/// Histogram of |x| over [0, range] in equal bins.
struct AbsHistogram {
  std::vector<double> counts;
  double range = 0; // upper edge of the last bin; 0 until a nonzero value

  explicit AbsHistogram(int bins = 2048) : counts(size_t(bins), 0.0) {}
  int bins() const { return int(counts.size()); }
  double width() const { return range / double(counts.size()); }
  double total() const;
  /// Adds |x[i]| for finite x (the caller checks).
  void add(const float *x, int64_t n);
};

double percentileThreshold(const AbsHistogram &h, double fraction);
double entropyThreshold(const AbsHistogram &h, int quantBins = 128);
double mseThreshold(const AbsHistogram &h, int levels = 127);

struct Thresholds {
  double max = 0, p9999 = 0, p999 = 0, entropy = 0, mse = 0;
};

class TensorStats {
public:
  TensorStats(int64_t cols, bool fullMoment, int bins = 2048);

  /// Accumulates rows x cols values (row-major). On a NaN or Inf nothing is
  /// accumulated and the flat index of the first one is returned; else -1.
  int64_t add(const float *x, int64_t rows);

  int64_t cols() const { return cols_; }
  int64_t rows() const { return rows_; }
  bool hasFullMoment() const { return full_; }
  double min() const { return min_; }
  double max() const { return max_; }
  double absmax() const { return absmax_; }
  const std::vector<float> &channelMin() const { return chMin_; }
  const std::vector<float> &channelMax() const { return chMax_; }
  /// sum_r x[r, j]^2 (divide by rows() for E[x_j^2]).
  const std::vector<double> &moment2Diag() const { return diag_; }
  /// X^T X, K x K row-major (symmetric), when hasFullMoment().
  std::vector<double> xtx() const;
  const AbsHistogram &histogram() const { return hist_; }
  Thresholds thresholds() const;

  /// The statistics as a JSON object (no trailing newline); `xtxFile`, if
  /// not empty, is written as "xtx" (else null).
  void writeJson(std::ostream &os, const std::string &xtxFile,
                 const std::string &indent = "") const;

private:
  int64_t cols_, rows_ = 0;
  bool full_;
  double min_ = 0, max_ = 0, absmax_ = 0;
  std::vector<float> chMin_, chMax_;
  std::vector<double> diag_, upper_; // upper_: upper triangle of X^T X
  AbsHistogram hist_;
};

/// Writes a K x K float64 matrix as a .npy file (version 1.0, C order).
/// `s` as a JSON string literal (quotes, backslashes and control characters
/// escaped).
std::string jsonQuote(const std::string &s);

bool writeNpy(const std::string &path, const std::vector<double> &m,
              int64_t rows, int64_t cols, std::string &err);

} // namespace qwen::calib

#endif // QWEN_CALIBRATION_ACTIVATIONSTATS_H
