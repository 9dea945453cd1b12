//===- Executor.h - run a raised model on calibration tokens ----*- C++ -*-===//
//
// A reference interpreter for the raised model (qwen.* ops, onnx.Constant,
// weights read from weight stores) that the data-driven passes run inside the
// compiler: GPTQ, AWQ, SmoothQuant, scale search and bias correction
// (--qwen-quantize-weights, --qwen-smooth) and per-layer sensitivity.
//
// Every calibration sequence starts at position 0 with no KV cache and no
// padding; all sequences run together, op by op in program order, as one
// [tokens, features] matrix per value (sequences concatenated), so a hook at
// a weight-reading op sees that op's whole input over the calibration set
// and can change the weight the op then runs with: later ops see the
// outputs of the already-quantized earlier ones (GPTQ's sequential mode),
// and memory stays bounded by the live values of one point in the program.
// Values are freed after their last use.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_EXECUTOR_H
#define QWEN_TRANSFORMS_EXECUTOR_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qwen::exec {

/// Calibration token sequences.
struct Batch {
  std::vector<std::vector<int64_t>> seqs;
  int64_t tokens() const;
};

/// Reads a token file: JSON `{"sequences": [[id, ...], ...]}` (what
/// qwen-compile writes from --calib-text). Errors name the file.
bool loadTokenFile(const std::string &path, Batch &out, std::string &err);
bool writeTokenFile(const std::string &path, const Batch &b, std::string &err);

/// A row-major [rows, cols] float matrix: rows are the batch's tokens.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;
  float *row(int64_t r) { return data.data() + r * cols; }
  const float *row(int64_t r) const { return data.data() + r * cols; }
};

/// An op that reads a weight matrix: qwen.linear, qwen.logits or
/// qwen.embedding on a float weight.
struct WeightSite {
  mlir::Operation *op = nullptr;
  /// The weight's store entry name (the layer name recipes and
  /// --qwen-quantize-weights use).
  std::string layer;
  int64_t rows = 0, cols = 0; // the weight is [rows, cols]
  mlir::Value input;          // the activation operand; null for embedding
};

class Executor {
public:
  /// Checks that `entry` is a function the executor can run; otherwise
  /// emits one error at the first op it cannot (naming it) and returns null.
  static std::unique_ptr<Executor> create(mlir::ModuleOp module,
                                          llvm::StringRef entry = "main");
  ~Executor();

  /// The weight-reading ops in program order.
  const std::vector<WeightSite> &sites() const;

  /// Called before each weight-reading op runs, with the op's input over
  /// the whole batch (null for an embedding) and, in `weight`, the float
  /// weight it would run with ([rows, cols], from the store or an
  /// override). The hook may change `weight`; the op then runs with it.
  using WeightHook = std::function<mlir::LogicalResult(
      const WeightSite &site, const Matrix *input, std::vector<float> &weight)>;

  /// Runs with the float weights of these layers replaced (e.g. one layer
  /// dequantized, for sensitivity); cleared by clearOverrides().
  void setOverride(const std::string &layer, std::vector<float> weight);
  void clearOverrides();

  /// Runs the batch. If `logits` is given it receives the model's logits
  /// ([tokens, vocab]); `logitRows`, if not empty, keeps only those rows
  /// (indices into the concatenated tokens), in that order. Errors (a weight
  /// that cannot be read, NaN in a value) are emitted at the op.
  mlir::LogicalResult run(const Batch &batch, const WeightHook &hook = {},
                          Matrix *logits = nullptr,
                          const std::vector<int64_t> &logitRows = {});

  /// Reads a float weight as the executor does ([rows, cols] floats).
  mlir::LogicalResult readWeight(const WeightSite &site,
                                 std::vector<float> &out);

  struct Impl;

private:
  explicit Executor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

/// Mean over rows of KL(softmax(ref) || softmax(test)), and the fraction of
/// rows whose argmax agrees.
void logitsKL(const Matrix &ref, const Matrix &test, double &meanKL,
              double &sameTop1);

} // namespace qwen::exec

#endif // QWEN_TRANSFORMS_EXECUTOR_H
