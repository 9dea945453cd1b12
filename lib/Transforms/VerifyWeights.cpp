//===- VerifyWeights.cpp - check weight references against stores ---------===//

#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include <cmath>
#include <cstring>

using namespace mlir;

namespace qwen {
#define GEN_PASS_DEF_VERIFYWEIGHTS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? ", " : "") + std::to_string(d);
  return s + "]";
}

/// Index of the first NaN/Inf in a float entry, or -1.
int64_t firstNonFinite(const qwen::ws::Entry &e, const void *data) {
  using qwen::ws::DType;
  int64_t n = e.numElements();
  auto halfBad = [](uint16_t v, unsigned expShift, uint16_t expMask) {
    return ((v >> expShift) & expMask) == expMask;
  };
  for (int64_t i = 0; i < n; ++i) {
    bool bad = false;
    switch (e.dtype) {
    case DType::F32: {
      float v;
      std::memcpy(&v, static_cast<const char *>(data) + 4 * i, 4);
      bad = !std::isfinite(v);
      break;
    }
    case DType::F64: {
      double v;
      std::memcpy(&v, static_cast<const char *>(data) + 8 * i, 8);
      bad = !std::isfinite(v);
      break;
    }
    case DType::F16:
    case DType::BF16: {
      uint16_t v;
      std::memcpy(&v, static_cast<const char *>(data) + 2 * i, 2);
      bad = e.dtype == DType::F16 ? halfBad(v, 10, 0x1f) : halfBad(v, 7, 0xff);
      break;
    }
    default:
      return -1;
    }
    if (bad)
      return i;
  }
  return -1;
}

struct VerifyWeightsPass : qwen::impl::VerifyWeightsBase<VerifyWeightsPass> {
  using Base::Base;

  LogicalResult checkFiniteData(qwen::WeightStoreCache &stores, Operation *op, SymbolRefAttr ref,
                                const qwen::ws::Entry &e) {
    if (!checkFinite || !qwen::ws::isFloat(e.dtype))
      return success();
    int64_t bad = firstNonFinite(e, stores.open(op, ref)->data(e));
    if (bad < 0)
      return success();
    return op->emitOpError("weight '")
           << e.name << "' has a NaN or Inf at element " << bad;
  }

  LogicalResult verify(qwen::WeightStoreCache &stores, qwen::WeightOp op) {
    const qwen::ws::Entry *e = stores.find(op, op.getRef());
    if (!e)
      return failure();
    auto type = cast<RankedTensorType>(op.getType());
    auto want = qwen::toStoreDType(type.getElementType());
    if (!want || *want != e->dtype)
      return op.emitOpError("element type ")
             << type.getElementType() << " differs from store entry '"
             << e->name << "' (" << qwen::ws::dtypeName(e->dtype) << ")";
    if (ArrayRef<int64_t>(e->shape) != type.getShape())
      return op.emitOpError("shape ")
             << shapeStr(type.getShape()) << " differs from store entry '"
             << e->name << "' " << shapeStr(e->shape);
    return checkFiniteData(stores, op, op.getRef(), *e);
  }

  LogicalResult verify(qwen::WeightStoreCache &stores,
                       qwen::qquant::WeightOp op) {
    for (const qwen::WeightComponent &c :
         qwen::getWeightComponents(op.getType())) {
      const qwen::ws::Entry *e = stores.find(op, op.getRef(), c.suffix);
      if (!e)
        return failure();
      if (!llvm::is_contained(c.dtypes, e->dtype))
        return op.emitOpError("store entry '")
               << e->name << "' has dtype " << qwen::ws::dtypeName(e->dtype)
               << ", not what the scheme needs";
      if (ArrayRef<int64_t>(e->shape) != ArrayRef<int64_t>(c.shape))
        return op.emitOpError("store entry '")
               << e->name << "' has shape " << shapeStr(e->shape)
               << ", the scheme needs " << shapeStr(c.shape);
      if (failed(checkFiniteData(stores, op, op.getRef(), *e)))
        return failure();
    }
    return success();
  }

  void runOnOperation() override {
    // Stores are opened once per run; a pass instance must stay copyable.
    qwen::WeightStoreCache stores;
    bool failed = false;
    getOperation().walk([&](Operation *op) {
      if (auto w = dyn_cast<qwen::WeightOp>(op))
        failed |= mlir::failed(verify(stores, w));
      else if (auto q = dyn_cast<qwen::qquant::WeightOp>(op))
        failed |= mlir::failed(verify(stores, q));
    });
    if (failed)
      signalPassFailure();
    markAllAnalysesPreserved();
  }
};

} // namespace
