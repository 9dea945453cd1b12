//===- ActivationStats.cpp - streaming calibration statistics -------------===//
//
// See ActivationStats.h for what is computed; test/Calibration checks every
// figure against numpy.
//
//===----------------------------------------------------------------------===//

#include "qwen/Calibration/ActivationStats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace qwen::calib {

double AbsHistogram::total() const {
  double t = 0;
  for (double c : counts)
    t += c;
  return t;
}

void AbsHistogram::add(const float *x, int64_t n) {
  double amax = 0;
  for (int64_t i = 0; i < n; ++i)
    amax = std::max(amax, double(std::fabs(x[i])));
  const int B = bins();
  if (range == 0) {
    if (amax == 0) {
      counts[0] += double(n); // all zeros: bin 0 whatever the range becomes
      return;
    }
    range = amax;
  }
  while (amax > range) {
    // Double the range: bin i of the new histogram is bins 2i, 2i+1.
    for (int i = 0; i < B / 2; ++i)
      counts[size_t(i)] = counts[size_t(2 * i)] + counts[size_t(2 * i + 1)];
    std::fill(counts.begin() + B / 2, counts.end(), 0.0);
    range *= 2;
  }
  const double scale = double(B) / range;
  for (int64_t i = 0; i < n; ++i) {
    int64_t b = int64_t(double(std::fabs(x[i])) * scale);
    counts[size_t(std::min<int64_t>(b, B - 1))] += 1;
  }
}

double percentileThreshold(const AbsHistogram &h, double fraction) {
  double total = h.total();
  if (total == 0 || h.range == 0)
    return 0;
  double target = fraction * total, cum = 0;
  for (int i = 0; i < h.bins(); ++i) {
    double c = h.counts[size_t(i)];
    if (c > 0 && cum + c >= target)
      return (double(i) + std::clamp((target - cum) / c, 0.0, 1.0)) *
             h.width();
    cum += c;
  }
  return h.range;
}

double entropyThreshold(const AbsHistogram &h, int quantBins) {
  const int B = h.bins();
  if (h.range == 0 || h.total() == 0)
    return 0;
  if (B <= quantBins)
    return h.range;
  const std::vector<double> &bins = h.counts;
  // Suffix sums: mass at and beyond bin i.
  std::vector<double> beyond(size_t(B) + 1, 0.0);
  for (int i = B - 1; i >= 0; --i)
    beyond[size_t(i)] = beyond[size_t(i) + 1] + bins[size_t(i)];
  double best = std::numeric_limits<double>::infinity();
  int bestI = B;
  std::vector<double> bucketSum(static_cast<size_t>(quantBins)),
      bucketNz(static_cast<size_t>(quantBins));
  for (int i = quantBins; i <= B; ++i) {
    std::fill(bucketSum.begin(), bucketSum.end(), 0.0);
    std::fill(bucketNz.begin(), bucketNz.end(), 0.0);
    for (int k = 0; k < i; ++k) {
      int64_t q = int64_t(k) * quantBins / i; // floor(k * nq / i)
      bucketSum[size_t(q)] += bins[size_t(k)];
      bucketNz[size_t(q)] += bins[size_t(k)] != 0;
    }
    // P: bins[0..i) + outliers in the last; Q: bucket means on non-empty bins.
    double pTotal = 0, qTotal = 0;
    for (int k = 0; k < i; ++k) {
      pTotal += bins[size_t(k)];
      int64_t q = int64_t(k) * quantBins / i;
      if (bins[size_t(k)] != 0)
        qTotal += bucketSum[size_t(q)] / bucketNz[size_t(q)];
    }
    pTotal += beyond[size_t(i)];
    double kl = 0;
    for (int k = 0; k < i && std::isfinite(kl); ++k) {
      double p = bins[size_t(k)] + (k == i - 1 ? beyond[size_t(i)] : 0.0);
      if (p == 0)
        continue;
      int64_t q = int64_t(k) * quantBins / i;
      double qv = bins[size_t(k)] != 0
                      ? bucketSum[size_t(q)] / bucketNz[size_t(q)] / qTotal
                      : 0.0;
      p /= pTotal;
      kl = qv == 0 ? std::numeric_limits<double>::infinity()
                   : kl + p * std::log(p / qv);
    }
    if (kl <= best) { // the last minimum, as pytorch-quantization
      best = kl;
      bestI = i;
    }
  }
  return double(bestI) * h.width();
}

double mseThreshold(const AbsHistogram &h, int levels) {
  const int B = h.bins();
  if (h.range == 0 || h.total() == 0)
    return 0;
  const double w = h.width();
  double best = std::numeric_limits<double>::infinity(), bestT = h.range;
  double below = 0; // mass of bins under t
  for (int i = 1; i <= B; ++i) {
    below += h.counts[size_t(i - 1)];
    double t = double(i) * w, delta = t / levels;
    double err = below * delta * delta / 12.0;
    for (int b = i; b < B; ++b) {
      double c = h.counts[size_t(b)];
      if (c == 0)
        continue;
      double lo = double(b) * w - t, hi = lo + w;
      err += c * (hi * hi * hi - lo * lo * lo) / (3.0 * w);
    }
    if (err < best) {
      best = err;
      bestT = t;
    }
  }
  return bestT;
}

TensorStats::TensorStats(int64_t cols, bool fullMoment, int bins)
    : cols_(cols), full_(fullMoment), hist_(bins) {
  chMin_.assign(size_t(cols), std::numeric_limits<float>::infinity());
  chMax_.assign(size_t(cols), -std::numeric_limits<float>::infinity());
  diag_.assign(size_t(cols), 0.0);
  if (full_)
    upper_.assign(size_t(cols * cols), 0.0);
}

int64_t TensorStats::add(const float *x, int64_t rows) {
  const int64_t K = cols_, n = rows * K;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      return i;
  if (n == 0)
    return -1;
  float lo = x[0], hi = x[0];
  std::vector<double> d(static_cast<size_t>(K));
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = x + r * K;
    for (int64_t j = 0; j < K; ++j) {
      float v = row[j];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      chMin_[size_t(j)] = std::min(chMin_[size_t(j)], v);
      chMax_[size_t(j)] = std::max(chMax_[size_t(j)], v);
      d[size_t(j)] = double(v);
      diag_[size_t(j)] += double(v) * double(v);
    }
    if (full_)
      for (int64_t i = 0; i < K; ++i) {
        double xi = d[size_t(i)];
        if (xi == 0)
          continue;
        double *acc = &upper_[size_t(i * K)];
        for (int64_t j = i; j < K; ++j)
          acc[j] += xi * d[size_t(j)];
      }
  }
  if (rows_ == 0) {
    min_ = lo;
    max_ = hi;
  } else {
    min_ = std::min(min_, double(lo));
    max_ = std::max(max_, double(hi));
  }
  absmax_ = std::max(std::fabs(min_), std::fabs(max_));
  hist_.add(x, n);
  rows_ += rows;
  return -1;
}

std::vector<double> TensorStats::xtx() const {
  std::vector<double> m;
  if (!full_)
    return m;
  const int64_t K = cols_;
  m.assign(size_t(K * K), 0.0);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j)
      m[size_t(i * K + j)] = m[size_t(j * K + i)] = upper_[size_t(i * K + j)];
  return m;
}

Thresholds TensorStats::thresholds() const {
  Thresholds t;
  t.max = absmax_;
  auto cap = [&](double v) { return std::min(v, absmax_); };
  t.p9999 = cap(percentileThreshold(hist_, 0.9999));
  t.p999 = cap(percentileThreshold(hist_, 0.999));
  t.entropy = cap(entropyThreshold(hist_));
  t.mse = cap(mseThreshold(hist_));
  return t;
}

std::string jsonQuote(const std::string &s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      r += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      r += buf;
      continue;
    }
    r += c;
  }
  return r + "\"";
}

namespace {
std::string num(double v) {
  if (!std::isfinite(v))
    return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}
template <typename T>
void array(std::ostream &os, const std::vector<T> &v) {
  os << "[";
  for (size_t i = 0; i < v.size(); ++i)
    os << (i ? ", " : "") << num(double(v[i]));
  os << "]";
}
} // namespace

void TensorStats::writeJson(std::ostream &os, const std::string &xtxFile,
                            const std::string &ind) const {
  Thresholds t = thresholds();
  std::string in = ind + "  ";
  os << "{\n"
     << in << "\"rows\": " << rows_ << ",\n"
     << in << "\"cols\": " << cols_ << ",\n"
     << in << "\"min\": " << num(min_) << ",\n"
     << in << "\"max\": " << num(max_) << ",\n"
     << in << "\"absmax\": " << num(absmax_) << ",\n"
     << in << "\"thresholds\": {\"max\": " << num(t.max)
     << ", \"percentile_99.99\": " << num(t.p9999)
     << ", \"percentile_99.9\": " << num(t.p999)
     << ", \"entropy\": " << num(t.entropy) << ", \"mse\": " << num(t.mse)
     << "},\n"
     << in << "\"channel_min\": ";
  array(os, chMin_);
  os << ",\n" << in << "\"channel_max\": ";
  array(os, chMax_);
  os << ",\n" << in << "\"moment2_diag\": ";
  std::vector<double> mean(diag_.size());
  for (size_t j = 0; j < diag_.size(); ++j)
    mean[j] = rows_ ? diag_[j] / double(rows_) : 0.0;
  array(os, mean);
  os << ",\n"
     << in << "\"xtx\": " << (xtxFile.empty() ? "null" : jsonQuote(xtxFile))
     << ",\n"
     << in << "\"histogram\": {\"range\": " << num(hist_.range)
     << ", \"counts\": ";
  array(os, hist_.counts);
  os << "}\n" << ind << "}";
}

bool writeNpy(const std::string &path, const std::vector<double> &m,
              int64_t rows, int64_t cols, std::string &err) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) +
                       "), }";
  // magic (6) + version (2) + header length (2) + header, padded to 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) {
    err = "cannot write '" + path + "'";
    return false;
  }
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(magic, 8);
  uint16_t len = uint16_t(header.size());
  char lenBytes[2] = {char(len & 0xff), char(len >> 8)};
  f.write(lenBytes, 2);
  f.write(header.data(), std::streamsize(header.size()));
  f.write(reinterpret_cast<const char *>(m.data()),
          std::streamsize(m.size() * sizeof(double)));
  f.close();
  if (!f) {
    err = "writing '" + path + "' failed";
    return false;
  }
  return true;
}

} // namespace qwen::calib
