//===- Bufferize.cpp - one-shot bufferization for code generation ---------===//
//
// --qwen-bufferize: see dialects/Compiler/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotModuleBufferize.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_BUFFERIZE
#include "Compiler/Passes.h.inc"
} // namespace qwen

namespace {

struct BufferizePass : qwen::impl::BufferizeBase<BufferizePass> {
  void runOnOperation() override {
    bufferization::OneShotBufferizationOptions opts;
    opts.bufferizeFunctionBoundaries = true;
    opts.setFunctionBoundaryTypeConversion(
        bufferization::LayoutMapOption::IdentityLayoutMap);
    opts.memCpyFn = [](OpBuilder &b, Location loc, Value from, Value to) {
      linalg::CopyOp::create(b, loc, from, to);
      return success();
    };
    bufferization::BufferizationState state;
    if (failed(bufferization::runOneShotModuleBufferize(getOperation(), opts,
                                                        state)))
      signalPassFailure();
  }
};

} // namespace
