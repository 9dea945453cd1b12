//===- QuantAlgorithms.cpp - the numerics of weight quantization ----------===//

#include "qwen/Transforms/QuantAlgorithms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>

namespace qwen::quant {

namespace qq = qwen::qquant;


/// y[M, N] = x[M, K] * w[N, K]^T (+ bias[N]). Blocks of tokens so the x
/// block stays in cache; eight partial sums per dot so it vectorizes.
void matmulNT(const float *x, const float *w, const float *bias, float *y,
            int64_t M, int64_t N, int64_t K) {
  constexpr int64_t TB = 64;
  parallelFor(N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t m0 = 0; m0 < M; m0 += TB) {
      int64_t m1 = std::min(M, m0 + TB);
      for (int64_t n = n0; n < n1; ++n) {
        const float *wr = w + n * K;
        float b = bias ? bias[n] : 0.f;
        int64_t m = m0;
        for (; m + 4 <= m1; m += 4) {
          const float *x0 = x + m * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
          float a0[8] = {}, a1[8] = {}, a2[8] = {}, a3[8] = {};
          int64_t k = 0;
          for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; ++j) {
              float wv = wr[k + j];
              a0[j] += x0[k + j] * wv;
              a1[j] += x1[k + j] * wv;
              a2[j] += x2[k + j] * wv;
              a3[j] += x3[k + j] * wv;
            }
          float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (int j = 0; j < 8; ++j)
            s0 += a0[j], s1 += a1[j], s2 += a2[j], s3 += a3[j];
          for (; k < K; ++k) {
            float wv = wr[k];
            s0 += x0[k] * wv, s1 += x1[k] * wv, s2 += x2[k] * wv,
                s3 += x3[k] * wv;
          }
          y[m * N + n] = s0 + b;
          y[(m + 1) * N + n] = s1 + b;
          y[(m + 2) * N + n] = s2 + b;
          y[(m + 3) * N + n] = s3 + b;
        }
        for (; m < m1; ++m) {
          const float *xr = x + m * K;
          float a[8] = {};
          int64_t k = 0;
          for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; ++j)
              a[j] += xr[k + j] * wr[k + j];
          float s = 0;
          for (int j = 0; j < 8; ++j)
            s += a[j];
          for (; k < K; ++k)
            s += xr[k] * wr[k];
          y[m * N + n] = s + b;
        }
      }
    }
  });
}

//===----------------------------------------------------------------------===//
// Grids
//===----------------------------------------------------------------------===//

GridQuantizer::GridQuantizer(const LayerScheme &s)
    : s(s), half(1 << (s.bits - 1)), levels((1 << s.bits) - 1) {}

BlockGrid GridQuantizer::fit(const float *v, int64_t n, int64_t stride,
                             float clip) const {
  float lo = 0.f, hi = 0.f, amax = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    float x = v[i * stride];
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    amax = std::max(amax, std::fabs(x));
  }
  BlockGrid g;
  if (s.grid == qq::Grid::log2) {
    g.scale = amax * clip;
  } else if (s.symmetric) {
    g.scale = amax * clip / float(half - 1);
  } else {
    lo *= clip, hi *= clip;
    g.scale = (hi - lo) / float(levels);
    g.zpU = g.scale == 0.f
                ? 0
                : std::clamp<int32_t>(int32_t(std::nearbyint(-lo / g.scale)),
                                      0, levels);
  }
  return g;
}

int32_t GridQuantizer::code(float v, const BlockGrid &g) const {
  if (s.grid == qq::Grid::log2) {
    // Magnitude codes m = 1..M mean scale * 2^-(m-1); m = 0 means zero.
    int32_t M = half - 1;
    float a = g.scale == 0.f ? 0.f : std::fabs(v) / g.scale;
    int32_t best = 0;
    float bestErr = a;
    for (int32_t m = 1; m <= M; ++m) {
      float err = std::fabs(a - std::ldexp(1.f, -(m - 1)));
      if (err < bestErr)
        best = m, bestErr = err;
    }
    return best == 0 ? 0 : ((v < 0.f ? half : 0) | best);
  }
  if (s.symmetric) {
    int32_t q = g.scale == 0.f
                    ? 0
                    : std::clamp<int32_t>(int32_t(std::nearbyint(v / g.scale)),
                                          -(half - 1), half - 1);
    return s.isSigned ? q : q + half;
  }
  int32_t q = g.scale == 0.f
                  ? g.zpU
                  : std::clamp<int32_t>(
                        int32_t(std::nearbyint(v / g.scale)) + g.zpU, 0,
                        levels);
  return s.isSigned ? q - half : q;
}

float GridQuantizer::dequant(int32_t c, const BlockGrid &g) const {
  if (s.grid == qq::Grid::log2) {
    int32_t m = c & (half - 1);
    if (m == 0)
      return 0.f;
    float mag = g.scale * std::ldexp(1.f, -(m - 1));
    return (c & half) ? -mag : mag;
  }
  if (s.symmetric)
    return g.scale * float(s.isSigned ? c : c - half);
  int32_t q = s.isSigned ? c + half : c;
  return g.scale * float(q - g.zpU);
}

uint8_t GridQuantizer::zeroByte(const BlockGrid &g) const {
  return uint8_t(s.isSigned ? int8_t(g.zpU - half) : uint8_t(g.zpU));
}

BlockLayout::BlockLayout(const LayerScheme &s, int64_t rows, int64_t cols)
    : rows(rows), cols(cols) {
  tensor = s.granularity == qq::Granularity::tensor;
  block = s.granularity == qq::Granularity::group ? s.groupSize : cols;
  perRow = s.granularity == qq::Granularity::group ? cols / block : 1;
}

Packed pack(const LayerScheme &s, int64_t rows, int64_t cols,
            const std::vector<int32_t> &codes,
            const std::vector<BlockGrid> &grids) {
  GridQuantizer gq(s);
  BlockLayout L(s, rows, cols);
  Packed p;
  unsigned b = s.bits;
  p.rowBytes = (cols * b + 7) / 8;
  p.perRow = L.perRow;
  p.codes.assign(rows * p.rowBytes, 0);
  const uint32_t mask = (1u << b) - 1;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t *row = &p.codes[r * p.rowBytes];
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t v = static_cast<uint32_t>(codes[r * cols + c]) & mask;
      int64_t bit = c * b;
      for (unsigned i = 0; i < b; ++i, ++bit)
        if (v >> i & 1)
          row[bit / 8] |= uint8_t(1u << (bit % 8));
    }
  }
  p.scales.resize(grids.size());
  for (size_t i = 0; i < grids.size(); ++i)
    p.scales[i] = grids[i].scale;
  if (s.grid == qq::Grid::uniform && !s.symmetric) {
    p.zeros.resize(grids.size());
    for (size_t i = 0; i < grids.size(); ++i)
      p.zeros[i] = gq.zeroByte(grids[i]);
  }
  return p;
}

Packed quantizeRTN(const float *w, int64_t rows, int64_t cols,
                   const LayerScheme &s, const std::vector<float> &clip,
                   std::vector<float> *dequant) {
  GridQuantizer gq(s);
  BlockLayout L(s, rows, cols);
  std::vector<BlockGrid> grids(L.numBlocks());
  if (L.tensor) {
    grids[0] = gq.fit(w, rows * cols, 1, clip.empty() ? 1.f : clip[0]);
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < L.perRow; ++g) {
        int64_t bi = r * L.perRow + g;
        grids[bi] = gq.fit(w + r * cols + g * L.block, L.block, 1,
                           clip.empty() ? 1.f : clip[bi]);
      }
  }
  std::vector<int32_t> codes(rows * cols);
  if (dequant)
    dequant->resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const BlockGrid &g = grids[L.blockOf(r, c)];
      int32_t q = gq.code(w[r * cols + c], g);
      codes[r * cols + c] = q;
      if (dequant)
        (*dequant)[r * cols + c] = gq.dequant(q, g);
    }
  return pack(s, rows, cols, codes, grids);
}

void quantizeDequantize(const float *w, int64_t rows, int64_t cols,
                        const LayerScheme &s, std::vector<float> &out) {
  if (s.keepFloat) {
    out.assign(w, w + rows * cols);
    return;
  }
  quantizeRTN(w, rows, cols, s, {}, &out);
}

//===----------------------------------------------------------------------===//
// Clip search
//===----------------------------------------------------------------------===//

static constexpr int kClipSteps = 11; // 1.0, 0.95, ..., 0.5

std::vector<float> searchClip(const float *w, int64_t rows, int64_t cols,
                              const LayerScheme &s,
                              const std::vector<double> &H) {
  GridQuantizer gq(s);
  BlockLayout L(s, rows, cols);
  bool diagOnly = !L.tensor && L.perRow == 1 && cols > 1024;
  if (L.tensor)
    diagOnly = cols > 1024;
  // Error of the values [c0, c0 + n) of row r under grid g.
  auto blockErr = [&](int64_t r, int64_t c0, int64_t n, const BlockGrid &g,
                      std::vector<double> &d) {
    d.resize(n);
    for (int64_t j = 0; j < n; ++j)
      d[j] = double(w[r * cols + c0 + j]) - gq.roundTrip(w[r * cols + c0 + j], g);
    double e = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double *h = &H[(c0 + i) * cols + c0];
      if (diagOnly) {
        e += d[i] * d[i] * h[i];
        continue;
      }
      double t = 0;
      for (int64_t j = 0; j < n; ++j)
        t += h[j] * d[j];
      e += d[i] * t;
    }
    return e;
  };
  std::vector<float> best(L.numBlocks(), 1.f);
  if (L.tensor) {
    double bestE = INFINITY;
    std::vector<double> d;
    for (int k = 0; k < kClipSteps; ++k) {
      float ratio = 1.f - 0.05f * float(k);
      BlockGrid g = gq.fit(w, rows * cols, 1, ratio);
      double e = 0;
      for (int64_t r = 0; r < rows; ++r)
        e += blockErr(r, 0, cols, g, d);
      if (e < bestE)
        bestE = e, best[0] = ratio;
    }
    return best;
  }
  parallelFor(rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> d;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < L.perRow; ++g) {
        int64_t c0 = g * L.block;
        double bestE = INFINITY;
        for (int k = 0; k < kClipSteps; ++k) {
          float ratio = 1.f - 0.05f * float(k);
          BlockGrid grid = gq.fit(w + r * cols + c0, L.block, 1, ratio);
          double e = blockErr(r, c0, L.block, grid, d);
          if (e < bestE)
            bestE = e, best[r * L.perRow + g] = ratio;
        }
      }
  });
  return best;
}

double outputError(const float *w, const float *q, int64_t rows, int64_t cols,
                   const std::vector<double> &H) {
  std::vector<double> parts(rows, 0.0);
  parallelFor(rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> d(cols);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t j = 0; j < cols; ++j)
        d[j] = double(w[r * cols + j]) - double(q[r * cols + j]);
      double e = 0;
      for (int64_t i = 0; i < cols; ++i) {
        if (d[i] == 0)
          continue;
        const double *h = &H[i * cols];
        double t = 0;
        for (int64_t j = 0; j < cols; ++j)
          t += h[j] * d[j];
        e += d[i] * t;
      }
      parts[r] = e;
    }
  });
  return std::accumulate(parts.begin(), parts.end(), 0.0);
}

//===----------------------------------------------------------------------===//
// GPTQ
//===----------------------------------------------------------------------===//

/// In-place lower Cholesky factor of the n x n SPD matrix `a` (row-major;
/// the upper triangle is zeroed). False if not positive definite.
static bool cholesky(std::vector<double> &a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double *aj = &a[j * n];
    double d = aj[j];
    for (int64_t k = 0; k < j; ++k)
      d -= aj[k] * aj[k];
    if (!(d > 0) || !std::isfinite(d))
      return false;
    d = std::sqrt(d);
    aj[j] = d;
    // Rows below j: a[i][j] = (a[i][j] - sum_k a[i][k] a[j][k]) / d.
    parallelFor(n - j - 1, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = j + 1 + b; i < j + 1 + e; ++i) {
        double *ai = &a[i * n];
        double t = ai[j];
        for (int64_t k = 0; k < j; ++k)
          t -= ai[k] * aj[k];
        ai[j] = t / d;
      }
    });
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      a[i * n + j] = 0;
  return true;
}

/// The upper Cholesky factor U of H^-1 (H^-1 = U^T U) from H's lower factor.
static bool upperCholeskyOfInverse(std::vector<double> &H, int64_t n,
                                   std::string &err) {
  if (!cholesky(H, n)) {
    err = "the Hessian is not positive definite";
    return false;
  }
  // Linv = L^-1 (lower), by forward substitution, column by column.
  std::vector<double> Li(n * n, 0.0);
  parallelFor(n, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Li[c * n + c] = 1.0 / H[c * n + c];
      for (int64_t i = c + 1; i < n; ++i) {
        double t = 0;
        for (int64_t k = c; k < i; ++k)
          t -= H[i * n + k] * Li[k * n + c];
        Li[i * n + c] = t / H[i * n + i];
      }
    }
  });
  // Hinv = Li^T Li.
  std::vector<double> Hi(n * n, 0.0);
  parallelFor(n, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = i; j < n; ++j) {
        double t = 0;
        for (int64_t k = j; k < n; ++k)
          t += Li[k * n + i] * Li[k * n + j];
        Hi[i * n + j] = t;
      }
  });
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j)
      Hi[i * n + j] = Hi[j * n + i];
  if (!cholesky(Hi, n)) {
    err = "the inverse Hessian is not positive definite";
    return false;
  }
  // H <- U = L2^T.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      H[i * n + j] = j >= i ? Hi[j * n + i] : 0.0;
  return true;
}

bool gptq(const float *w, int64_t rows, int64_t cols, const LayerScheme &s,
          std::vector<double> H, const GPTQOptions &opt, Packed &out,
          std::vector<float> &dequant, std::string &err) {
  GridQuantizer gq(s);
  BlockLayout L(s, rows, cols);
  const int64_t n = cols;
  if (int64_t(H.size()) != n * n) {
    err = "the Hessian has the wrong size";
    return false;
  }
  std::vector<double> Horig = H;
  // Dead inputs (never nonzero): their weights do not matter.
  std::vector<bool> dead(n, false);
  for (int64_t i = 0; i < n; ++i)
    if (H[i * n + i] == 0) {
      dead[i] = true;
      H[i * n + i] = 1;
    }
  bool groups = s.granularity == qq::Granularity::group;
  bool staticGrids = opt.actOrder || !groups;
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.actOrder)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return H[a * n + a] > H[b * n + b];
    });
  double meanDiag = 0;
  for (int64_t i = 0; i < n; ++i)
    meanDiag += H[i * n + i];
  meanDiag /= double(n);
  std::vector<double> Hp(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      Hp[i * n + j] = H[perm[i] * n + perm[j]];
  for (int64_t i = 0; i < n; ++i)
    Hp[i * n + i] += opt.damp * meanDiag;
  if (!upperCholeskyOfInverse(Hp, n, err))
    return false;
  const std::vector<double> &U = Hp;

  // Grids fitted up front (static), from the original weight.
  std::vector<BlockGrid> grids(L.numBlocks());
  std::vector<float> w0(w, w + rows * cols);
  for (int64_t i = 0; i < n; ++i)
    if (dead[i])
      for (int64_t r = 0; r < rows; ++r)
        w0[r * cols + i] = 0.f;
  if (staticGrids) {
    std::vector<float> clip;
    if (opt.clipSearch)
      clip = searchClip(w0.data(), rows, cols, s, Horig);
    if (L.tensor)
      grids[0] = gq.fit(w0.data(), rows * cols, 1, clip.empty() ? 1.f : clip[0]);
    else
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < L.perRow; ++g)
          grids[r * L.perRow + g] =
              gq.fit(&w0[r * cols + g * L.block], L.block, 1,
                     clip.empty() ? 1.f : clip[r * L.perRow + g]);
  }
  int64_t B = std::max<int64_t>(opt.blockSize, groups ? L.block : 1);
  if (groups && B % L.block != 0)
    B = L.block * ((B + L.block - 1) / L.block);

  std::vector<int32_t> codes(rows * cols);
  dequant.assign(rows * cols, 0.f);
  parallelFor(rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> W(n), err1(B);
    std::vector<float> gv;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t i = 0; i < n; ++i)
        W[i] = w0[r * cols + perm[i]];
      for (int64_t i1 = 0; i1 < n; i1 += B) {
        int64_t i2 = std::min(n, i1 + B);
        for (int64_t i = i1; i < i2; ++i) {
          int64_t c = perm[i];
          if (!staticGrids && c % L.block == 0) {
            // The group's grid from its current (updated) values: the
            // group lies inside this block (B is a multiple of the group).
            gv.assign(W.begin() + i, W.begin() + i + L.block);
            float clip = 1.f;
            if (opt.clipSearch) {
              std::vector<double> Hg(L.block * L.block);
              for (int64_t a = 0; a < L.block; ++a)
                for (int64_t b = 0; b < L.block; ++b)
                  Hg[a * L.block + b] = Horig[(c + a) * n + c + b];
              LayerScheme one = s;
              clip = searchClip(gv.data(), 1, L.block, one, Hg)[0];
            }
            grids[r * L.perRow + c / L.block] =
                gq.fit(gv.data(), L.block, 1, clip);
          }
          const BlockGrid &g = grids[L.blockOf(r, c)];
          bool pruned = (opt.keepZeros && w[r * cols + c] == 0.f) ||
                        (opt.pruned && (*opt.pruned)[r * cols + c]);
          int32_t q = gq.code(pruned ? 0.f : float(W[i]), g);
          float dq = gq.dequant(q, g);
          codes[r * cols + c] = q;
          dequant[r * cols + c] = dq;
          double e = (W[i] - double(dq)) / U[i * n + i];
          err1[i - i1] = e;
          const double *u = &U[i * n];
          for (int64_t j = i + 1; j < i2; ++j)
            W[j] -= e * u[j];
        }
        // Lazy update of the columns after the block.
        for (int64_t i = i1; i < i2; ++i) {
          double e = err1[i - i1];
          if (e == 0)
            continue;
          const double *u = &U[i * n];
          for (int64_t j = i2; j < n; ++j)
            W[j] -= e * u[j];
        }
      }
    }
  });
  out = pack(s, rows, cols, codes, grids);
  return true;
}

bool compress24(Packed &p, const std::vector<float> &dequant, unsigned bits,
                int64_t rows, int64_t cols, std::string &err) {
  if (cols % 4 != 0) {
    err = "2:4 sparsity needs a multiple of 4 inputs, got " +
          std::to_string(cols);
    return false;
  }
  int64_t kept = cols / 2;
  int64_t rowBytes = (kept * bits + 7) / 8, maskBytes = (kept * 2 + 7) / 8;
  std::vector<uint8_t> codes(rows * rowBytes, 0), mask(rows * maskBytes, 0);
  auto field = [](const uint8_t *row, int64_t idx, unsigned w) {
    uint32_t v = 0;
    for (unsigned i = 0; i < w; ++i) {
      int64_t bit = idx * w + i;
      v |= uint32_t(row[bit / 8] >> (bit % 8) & 1) << i;
    }
    return v;
  };
  auto put = [](uint8_t *row, int64_t idx, unsigned w, uint32_t v) {
    for (unsigned i = 0; i < w; ++i) {
      int64_t bit = idx * w + i;
      if (v >> i & 1)
        row[bit / 8] |= uint8_t(1u << (bit % 8));
    }
  };
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t *src = &p.codes[r * p.rowBytes];
    for (int64_t g = 0; g < cols / 4; ++g) {
      int64_t pos[2], n = 0;
      for (int64_t j = 0; j < 4; ++j)
        if (dequant[r * cols + 4 * g + j] != 0.f) {
          if (n == 2) {
            err = "row " + std::to_string(r) + ", inputs " +
                  std::to_string(4 * g) + ".." + std::to_string(4 * g + 3) +
                  " hold more than 2 nonzero weights";
            return false;
          }
          pos[n++] = j;
        }
      for (int64_t j = 0; j < 4 && n < 2; ++j)
        if (dequant[r * cols + 4 * g + j] == 0.f && (n == 0 || pos[0] != j))
          pos[n++] = j;
      if (pos[0] > pos[1])
        std::swap(pos[0], pos[1]);
      for (int64_t k = 0; k < 2; ++k) {
        put(&codes[r * rowBytes], 2 * g + k, bits,
            field(src, 4 * g + pos[k], bits));
        put(&mask[r * maskBytes], 2 * g + k, 2, uint32_t(pos[k]));
      }
    }
  }
  p.codes = std::move(codes);
  p.mask = std::move(mask);
  p.rowBytes = rowBytes;
  return true;
}

} // namespace qwen::quant
