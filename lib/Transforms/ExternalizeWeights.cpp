//===- ExternalizeWeights.cpp - constants -> weight store -----------------===//

#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_EXTERNALIZEWEIGHTS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

/// The entry name a constant gets: its NameLoc when the importer set one.
std::string nameFromLoc(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (auto name = dyn_cast<NameLoc>(inner))
        return name.getName().str();
  return {};
}

struct ExternalizeWeightsPass
    : qwen::impl::ExternalizeWeightsBase<ExternalizeWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (storePath.empty()) {
      module.emitError("--qwen-externalize-weights needs store=<path>");
      return signalPassFailure();
    }
    if (failed(qwen::checkNewStorePath(module, storePath)))
      return signalPassFailure();
    if (SymbolTable::lookupSymbolIn(module, storeName)) {
      module.emitError("symbol @") << storeName
                                   << " already exists; pick store-name=";
      return signalPassFailure();
    }

    // Collect first so that a failure leaves the IR untouched.
    SmallVector<std::pair<Operation *, DenseElementsAttr>> victims;
    module.walk([&](Operation *op) {
      if (!isa<arith::ConstantOp, qwen::onnxir::ConstantOp>(op))
        return;
      auto attr = dyn_cast<DenseElementsAttr>(
          op->getAttrOfType<ElementsAttr>("value"));
      if (!attr || attr.isSplat() || attr.getNumElements() < minElements ||
          !qwen::toStoreDType(attr.getElementType()))
        return;
      victims.push_back({op, attr});
    });

    std::string error;
    auto writer = qwen::ws::WeightStoreWriter::create(storePath, error);
    if (!writer) {
      module.emitError(error);
      return signalPassFailure();
    }
    SmallVector<std::string> names;
    unsigned anon = 0;
    for (auto &[op, attr] : victims) {
      std::string base = nameFromLoc(op->getLoc());
      if (base.empty())
        base = "const." + std::to_string(anon++);
      std::string name = base;
      for (unsigned i = 1; writer->contains(name); ++i)
        name = base + "." + std::to_string(i);
      auto shapedType = cast<ShapedType>(attr.getType());
      std::vector<int64_t> shape(shapedType.getShape().begin(),
                                 shapedType.getShape().end());
      std::vector<char> bytes = qwen::toStoreBytes(attr);
      if (!writer->add(name, *qwen::toStoreDType(attr.getElementType()), shape,
                       bytes.data(), bytes.size(), error)) {
        op->emitOpError(error);
        return signalPassFailure();
      }
      names.push_back(name);
    }
    if (!writer->finish(error)) {
      module.emitError(error);
      return signalPassFailure();
    }

    OpBuilder b(module.getBodyRegion());
    b.setInsertionPointToStart(module.getBody());
    qwen::StoreOp::create(b, module.getLoc(), storeName, storePath);
    for (auto [victim, name] : llvm::zip(victims, names)) {
      Operation *op = victim.first;
      b.setInsertionPoint(op);
      auto ref = SymbolRefAttr::get(
          b.getStringAttr(storeName),
          {FlatSymbolRefAttr::get(b.getStringAttr(name))});
      auto weight = qwen::WeightOp::create(b, op->getLoc(),
                                           op->getResult(0).getType(), ref);
      op->getResult(0).replaceAllUsesWith(weight.getResult());
      op->erase();
    }
  }
};

} // namespace
