//===- LogitsRows.cpp - the LM head for the last positions only -----------===//
//
// --qwen-logits-rows: a `logits_rows` entry argument selects how many of the
// last positions the LM head computes (generation: 1). See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_LOGITSROWS
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

constexpr llvm::StringLiteral kArgName = "logits_rows";

struct LogitsRowsPass : qwen::impl::LogitsRowsBase<LogitsRowsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn || fn.isExternal()) {
      module.emitError("--qwen-logits-rows: no entry function @")
          << entry << " with a body";
      return signalPassFailure();
    }
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      if (auto n = fn.getArgAttrOfType<StringAttr>(i, "onnx.name");
          n && n.getValue() == kArgName) {
        fn.emitOpError("already has an argument named '") << kArgName << "' (#" << i << ")";
        return signalPassFailure();
      }
    // The logits op behind the result named "logits".
    Block &body = fn.getBody().front();
    auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
    Operation *head = nullptr;
    for (unsigned i = 0; ret && i < fn.getNumResults(); ++i)
      if (auto n = fn.getResultAttrOfType<StringAttr>(i, "onnx.name"); n && n.getValue() == "logits") {
        Operation *d = ret.getOperand(i).getDefiningOp();
        if (d && isa<qwen::LogitsOp, qq::LogitsOp>(d) && d->getBlock() == &body)
          head = d;
      }
    if (!head)
      return;
    Value x = head->getOperand(0);
    auto xt = dyn_cast<RankedTensorType>(x.getType());
    if (!xt || xt.getRank() != 3 || !xt.isDynamicDim(1))
      return;

    // r = clamp(logits_rows[0], 1, S); the rows [S - r, S) of x, copied.
    auto argT = RankedTensorType::get({1}, IntegerType::get(&getContext(), 64));
    unsigned argNo = fn.getNumArguments();
    if (failed(fn.insertArgument(argNo, argT,
                                 DictionaryAttr::get(&getContext(),
                                                     {NamedAttribute(StringAttr::get(&getContext(), "onnx.name"),
                                                                     StringAttr::get(&getContext(), kArgName))}),
                                 fn.getLoc()))) {
      fn.emitOpError("cannot take the '") << kArgName << "' argument";
      return signalPassFailure();
    }
    Value rows = fn.getArgument(argNo);
    OpBuilder b(head);
    Location l = head->getLoc();
    auto ci = [&](int64_t v) { return arith::ConstantIndexOp::create(b, l, v); };
    Value r = tensor::ExtractOp::create(b, l, rows, ValueRange{ci(0)});
    r = arith::IndexCastOp::create(b, l, b.getIndexType(), r);
    Value S = tensor::DimOp::create(b, l, x, 1);
    r = arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, r, ci(1)), S);
    Value off = arith::SubIOp::create(b, l, S, r);
    SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0), off, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {tensor::getMixedSize(b, l, x, 0), r, b.getIndexAttr(xt.getDimSize(2))};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    Value slice = tensor::ExtractSliceOp::create(b, l, x, offsets, sizes, strides);
    SmallVector<Value> dyn;
    if (xt.isDynamicDim(0))
      dyn.push_back(tensor::DimOp::create(b, l, x, 0));
    dyn.push_back(r);
    auto sliceT = RankedTensorType::get(xt.getShape(), xt.getElementType());
    Value init = tensor::EmptyOp::create(b, l, sliceT, dyn);
    Value dense = linalg::CopyOp::create(b, l, slice, init).getResult(0);
    head->setOperand(0, dense);
  }
};

} // namespace
