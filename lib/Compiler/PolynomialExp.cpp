//===- PolynomialExp.cpp - f32 exp without libm calls ---------------------===//
//
// --qwen-polynomial-exp: see dialects/Compiler/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_POLYNOMIALEXP
#include "Compiler/Passes.h.inc"
} // namespace qwen

namespace {

struct PolynomialExpPass : qwen::impl::PolynomialExpBase<PolynomialExpPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    // Only exp (f32; the patterns leave other element types alone).
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) { return name == math::ExpOp::getOperationName(); });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
