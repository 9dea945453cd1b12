//===- FuseActQuant.cpp - one activation quantization per input ----------===//
//
// --qwen-fuse-act-quant: the W8A8 / W4A8 linears that read one activation
// share one per-token quantization of it, fused into its rms_norm or
// silu_mul producer where that has no other user. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_FUSEACTQUANT
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

/// A linear this pass rewrites: dynamic per-token i8 activations on a
/// weight qquant.qlinear takes, f32 in and out.
bool rewritable(qq::LinearOp op) {
  qq::ActivationAttr act = op.getActAttr();
  if (!act || act.getMode() != qq::ActMode::dynamic || act.getBits() != 8 || !act.getPerToken())
    return false;
  qq::WeightType w = op.getWeight().getType();
  qq::SchemeAttr s = w.getScheme();
  if (s.getGrid() != qq::Grid::uniform || !s.getIsSigned() || !s.getSymmetric() ||
      (s.getBits() != 8 && s.getBits() != 4) || s.getSparsity() != qq::Sparsity::dense ||
      !w.getElementType().isF32())
    return false;
  auto in = op.getInput().getType();
  return in.getElementType().isF32() && op.getType().getElementType().isF32() && in.getRank() >= 1;
}

struct FuseActQuantPass : qwen::impl::FuseActQuantBase<FuseActQuantPass> {
  using Base::Base;

  void runOnOperation() override {
    // The rewritable linears per input, in program order.
    llvm::MapVector<Value, SmallVector<qq::LinearOp>> byInput;
    getOperation().walk([&](qq::LinearOp op) {
      if (rewritable(op))
        byInput[op.getInput()].push_back(op);
    });
    OpBuilder b(&getContext());
    for (auto &[x, linears] : byInput) {
      auto xt = cast<RankedTensorType>(x.getType());
      auto qT = RankedTensorType::get(xt.getShape(), b.getI8Type());
      SmallVector<int64_t> sShape(xt.getShape());
      sShape.back() = 1;
      auto sT = RankedTensorType::get(sShape, b.getF32Type());
      // Every user of x is one of the linears: its producer need not keep
      // the float result.
      bool onlyLinears = llvm::all_of(x.getUsers(), [&](Operation *u) {
        auto lo = dyn_cast<qq::LinearOp>(u);
        return lo && llvm::is_contained(linears, lo);
      });
      Operation *def = x.getDefiningOp();
      Operation *fused = nullptr, *q = nullptr;
      if (def)
        b.setInsertionPointAfter(def);
      else
        b.setInsertionPointToStart(cast<BlockArgument>(x).getOwner());
      if (producers && onlyLinears && def) {
        if (auto n = dyn_cast<qwen::RMSNormOp>(def); n && !n.getPerHead() &&
                                                     n.getWeight().getType().getElementType().isF32() &&
                                                     n.getWeight().getType().getRank() == 1) {
          b.setInsertionPoint(n);
          q = qq::RMSNormQuantizeOp::create(b, n.getLoc(), TypeRange{qT, sT}, n.getInput(), n.getWeight(),
                                            n.getEpsilonAttr());
          fused = n;
        } else if (auto s = dyn_cast<qwen::SiluMulOp>(def)) {
          b.setInsertionPoint(s);
          q = qq::SiluMulQuantizeOp::create(b, s.getLoc(), TypeRange{qT, sT}, s.getGate(), s.getUp());
          fused = s;
        }
      }
      if (!q)
        q = qq::DynamicQuantizeOp::create(b, x.getLoc(), TypeRange{qT, sT}, x, b.getI64IntegerAttr(8),
                                          b.getUnitAttr());
      for (qq::LinearOp lo : linears) {
        b.setInsertionPoint(lo);
        auto ql = qq::QLinearOp::create(b, lo.getLoc(), lo.getType(), q->getResult(0), q->getResult(1),
                                        lo.getWeight(), lo.getBias());
        // Keep what the precision passes recorded (reason, bits, ...).
        for (NamedAttribute a : lo->getDiscardableAttrs())
          ql->setAttr(a.getName(), a.getValue());
        lo.replaceAllUsesWith(ql.getResult());
        lo.erase();
      }
      if (fused && fused->use_empty())
        fused->erase();
    }
  }
};

} // namespace
