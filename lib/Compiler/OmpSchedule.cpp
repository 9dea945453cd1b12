//===- OmpSchedule.cpp - the schedule of the generated worksharing loops --===//
//
// --qwen-omp-schedule: see dialects/Compiler/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Passes.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_OMPSCHEDULE
#include "Compiler/Passes.h.inc"
} // namespace qwen

namespace {

struct OmpSchedulePass : qwen::impl::OmpScheduleBase<OmpSchedulePass> {
  using Base::Base;

  void runOnOperation() override {
    std::optional<omp::ClauseScheduleKind> k =
        kind == "static"    ? std::optional(omp::ClauseScheduleKind::Static)
        : kind == "dynamic" ? std::optional(omp::ClauseScheduleKind::Dynamic)
        : kind == "guided"  ? std::optional(omp::ClauseScheduleKind::Guided)
                            : std::nullopt;
    if (!k || chunk < 0) {
      getOperation().emitError() << "--qwen-omp-schedule: kind must be static, dynamic or guided "
                                    "and chunk >= 0, got kind="
                                 << kind << " chunk=" << static_cast<int64_t>(chunk);
      return signalPassFailure();
    }
    getOperation().walk([&](omp::WsloopOp loop) {
      if (loop.getScheduleKind())
        return;
      loop.setScheduleKind(*k);
      if (chunk > 0 && *k != omp::ClauseScheduleKind::Static) {
        // The chunk has the type of the loop's induction variable.
        auto nest = cast<omp::LoopNestOp>(loop.getWrappedLoop());
        Type t = nest.getLoopLowerBounds().front().getType();
        OpBuilder b(loop);
        loop.getScheduleChunkMutable().assign(
            arith::ConstantOp::create(b, loop.getLoc(), b.getIntegerAttr(t, chunk)));
      }
    });
  }
};

} // namespace
