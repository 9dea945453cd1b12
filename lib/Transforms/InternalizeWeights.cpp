//===- InternalizeWeights.cpp - weight store -> constants -----------------===//

#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_INTERNALIZEWEIGHTS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

struct InternalizeWeightsPass
    : qwen::impl::InternalizeWeightsBase<InternalizeWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    qwen::WeightStoreCache stores;
    // Build every constant before replacing anything, so an error leaves the
    // module as it was.
    SmallVector<std::pair<qwen::WeightOp, DenseElementsAttr>> todo;
    WalkResult walk = module.walk([&](qwen::WeightOp op) {
      const qwen::ws::Entry *e = stores.find(op, op.getRef());
      if (!e)
        return WalkResult::interrupt();
      auto type = cast<RankedTensorType>(op.getType());
      auto want = qwen::toStoreDType(type.getElementType());
      if (!want || *want != e->dtype ||
          ArrayRef<int64_t>(e->shape) != type.getShape()) {
        op.emitOpError("type ") << type << " does not match store entry '"
                                << e->name << "' ("
                                << qwen::ws::dtypeName(e->dtype) << ")";
        return WalkResult::interrupt();
      }
      if (static_cast<int64_t>(e->nbytes) > maxBytes) {
        op.emitOpError("weight '")
            << e->name << "' has " << e->nbytes
            << " bytes, more than max-bytes=" << static_cast<int64_t>(maxBytes);
        return WalkResult::interrupt();
      }
      const char *data = static_cast<const char *>(
          stores.open(op, op.getRef())->data(*e));
      todo.push_back(
          {op, qwen::fromStoreBytes(type, ArrayRef<char>(data, e->nbytes))});
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();

    for (auto [op, attr] : todo) {
      OpBuilder b(op);
      auto cst = arith::ConstantOp::create(b, op.getLoc(), attr);
      op.replaceAllUsesWith(cst.getResult());
      op.erase();
    }
    // Stores nothing refers to any more go too.
    for (auto store :
         llvm::make_early_inc_range(module.getOps<qwen::StoreOp>()))
      if (SymbolTable::symbolKnownUseEmpty(store, module))
        store.erase();
  }
};

} // namespace
