//===- WeightsToArguments.cpp - weights become entry arguments ------------===//
//
// --qwen-weights-to-arguments: see dialects/Compiler/Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Passes.h"
#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"


#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_WEIGHTSTOARGUMENTS
#include "Compiler/Passes.h.inc"
} // namespace qwen

namespace {

struct WeightsToArgumentsPass
    : qwen::impl::WeightsToArgumentsBase<WeightsToArgumentsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(entry);
    if (!func || func.isExternal()) {
      module.emitError() << "no entry function @" << entry << " with a body";
      return signalPassFailure();
    }
    llvm::StringMap<qwen::StoreOp> stores;
    for (auto s : module.getOps<qwen::StoreOp>())
      stores[s.getSymName()] = s;

    bool bad = false;
    module.walk([&](Operation *op) {
      if (isa<qwen::WeightOp, qwen::qquant::WeightOp>(op) &&
          op->getParentOfType<func::FuncOp>() != func) {
        op->emitError() << "weight reference outside the entry function @"
                        << entry;
        bad = true;
      } else if (isa<qwen::qquant::WeightOp>(op)) {
        op->emitError() << "quantized weight is not lowered yet: run "
                           "--qwen-lower-model-to-linalg first";
        bad = true;
      }
    });
    if (bad)
      return signalPassFailure();

    // One argument per distinct (store, entry, type), in order of first use.
    using Key = std::pair<SymbolRefAttr, Type>;
    llvm::MapVector<Key, SmallVector<qwen::WeightOp>> uses;
    func.walk([&](qwen::WeightOp op) {
      uses[{op.getRef(), op.getType()}].push_back(op);
    });

    Builder b(&getContext());
    for (auto &[key, ops] : uses) {
      qwen::WeightOp first = ops.front();
      auto it = stores.find(first.getStoreName());
      if (it == stores.end()) {
        first.emitError() << "no qwen.store @" << first.getStoreName();
        return signalPassFailure();
      }
      unsigned idx = func.getNumArguments();
      NamedAttrList attrs;
      attrs.set("qwen.weight", b.getStringAttr(first.getEntryName()));
      attrs.set("qwen.weight_store", it->second.getPathAttr());
      if (failed(func.insertArgument(idx, key.second,
                                     attrs.getDictionary(&getContext()),
                                     first.getLoc())))
        return signalPassFailure();
      BlockArgument arg = func.getArgument(idx);
      for (qwen::WeightOp op : ops) {
        op.getResult().replaceAllUsesWith(arg);
        op.erase();
      }
    }
    for (auto &[name, store] : stores)
      store.erase();
  }
};

} // namespace
