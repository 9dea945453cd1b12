//===- Prune.h - magnitude and Wanda pruning --------------------*- C++ -*-===//
//
// The numerics of --qwen-prune (lib/Transforms/Prune.cpp), shared with the
// mixed-precision sensitivity pass (pruned candidates).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_PRUNE_H
#define QWEN_TRANSFORMS_PRUNE_H

#include <cstdint>
#include <string>
#include <vector>

namespace qwen::prune {

enum class Pattern { unstructured, twoFour };
enum class Method { magnitude, wanda };

struct PruneSpec {
  Pattern pattern = Pattern::unstructured;
  Method method = Method::magnitude;
  double sparsity = 0.5; // unstructured only; 2:4 is 0.5
};

/// Parses "unstructured" / "2:4" and "magnitude" / "wanda".
bool parsePattern(const std::string &s, Pattern &out);
bool parseMethod(const std::string &s, Method &out);

/// Wanda's input norms ||X[:, k]||_2 of a row-major [rows, cols] input
/// (sums of squares in double, row by row).
std::vector<double> inputNorms(const float *x, int64_t rows, int64_t cols);

/// Zeroes the lowest-scoring weights of `w` ([rows, cols], row-major) in
/// place. Score: |w| (magnitude) or |w[n,k]| * colNorm[k] (wanda; `colNorm`
/// has cols entries, ||X[:,k]||_2). Unstructured: round(sparsity * count)
/// zeros over the whole weight (magnitude) or per row (wanda); 2:4: the 2
/// lowest of each 4 consecutive inputs of each row. Ties: the higher input
/// index (later element) is pruned first. Returns the number zeroed, or -1
/// with `err` set (2:4 with cols % 4 != 0, a bad sparsity, wanda without
/// norms).
int64_t pruneWeight(float *w, int64_t rows, int64_t cols, const PruneSpec &s,
                    const std::vector<double> *colNorm, std::string &err);

} // namespace qwen::prune

#endif // QWEN_TRANSFORMS_PRUNE_H
