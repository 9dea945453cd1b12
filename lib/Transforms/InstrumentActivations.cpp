//===- InstrumentActivations.cpp - linear inputs as entry results ---------===//
//
// --qwen-instrument-activations: for calibration, the input activation of
// every linear / logits op with a named weight becomes an extra result of
// the entry function, tagged `qwen.observe = [layer names]`. See Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/IntegerOnly.h"
#include "qwen/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_INSTRUMENTACTIVATIONS
#define GEN_PASS_DEF_INSTRUMENTINTEGERONLYSITES
#include "Transforms/Passes.h.inc"

static bool integerOnlySitesByDefault = false;
void setInstrumentIntegerOnlySites(bool on) { integerOnlySitesByDefault = on; }
} // namespace qwen

namespace {

/// The layer name of an op's weight (its store entry), or "" if the weight
/// is not a named store entry (small weights kept as constants).
std::string layerName(Value w) {
  if (auto op = w.getDefiningOp<qwen::WeightOp>())
    return op.getRef().getLeafReference().str();
  if (auto op = w.getDefiningOp<qq::WeightOp>())
    return op.getRef().getLeafReference().str();
  return "";
}

/// The sites --qwen-integer-only needs beyond the linear inputs: the output
/// of every linear op (with a named weight) that is the gate or up operand of
/// a qwen.silu_mul becomes a result `qwen.observe = ["<layer>#out"]`, the
/// input of every RMSNorm read by linear ops `["<norm weight>#in"]`.
LogicalResult addIntegerOnlySites(ModuleOp module, func::FuncOp fn) {
  Block &body = fn.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret)
    return fn.emitOpError("does not end in func.return");
  SmallVector<std::pair<Value, std::string>> sites;
  llvm::DenseSet<Value> seen;
  fn.walk([&](qwen::SiluMulOp sm) {
    for (Value v : {sm.getGate(), sm.getUp()}) {
      Operation *d = v.getDefiningOp();
      Value w;
      if (auto o = dyn_cast_or_null<qwen::LinearOp>(d))
        w = o.getWeight();
      else if (auto o = dyn_cast_or_null<qq::LinearOp>(d))
        w = o.getWeight();
      std::string layer = w ? layerName(w) : "";
      auto t = dyn_cast<RankedTensorType>(v.getType());
      if (layer.empty() || d->getBlock() != &body || !t ||
          !t.getElementType().isF32() || t.getRank() < 2 || !seen.insert(v).second)
        continue;
      sites.push_back({v, layer + "#out"});
    }
  });
  // The inputs of the RMSNorms (not per head, named weight) read by linear
  // ops: the residual stream, quantized to int16 for qquant.int_rms_norm.
  fn.walk([&](qwen::RMSNormOp n) {
    Value x = n.getInput();
    std::string layer = layerName(n.getWeight());
    auto t = dyn_cast<RankedTensorType>(x.getType());
    bool readByLinear = llvm::any_of(n.getResult().getUsers(), [](Operation *u) {
      return isa<qwen::LinearOp, qq::LinearOp>(u);
    });
    if (n.getPerHead() || layer.empty() || !readByLinear || isa<BlockArgument>(x) ||
        n->getBlock() != &body || !t || !t.getElementType().isF32() || t.getRank() < 2 ||
        !seen.insert(x).second)
      return;
    sites.push_back({x, layer + "#in"});
  });
  if (sites.empty())
    return success();
  Builder b(module.getContext());
  SmallVector<Attribute> resAttrs;
  for (unsigned i = 0; i < fn.getNumResults(); ++i) {
    DictionaryAttr d = fn.getResultAttrDict(i);
    resAttrs.push_back(d ? d : b.getDictionaryAttr({}));
  }
  SmallVector<Value> results(ret.getOperands());
  SmallVector<Type> types(fn.getResultTypes());
  for (auto &[v, name] : sites) {
    results.push_back(v);
    types.push_back(v.getType());
    size_t hash = name.rfind('#');
    std::string onnxName = "observe." + name.substr(0, hash) + "." + name.substr(hash + 1);
    resAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("onnx.name", b.getStringAttr(onnxName)),
         b.getNamedAttr("qwen.observe", b.getArrayAttr({b.getStringAttr(name)}))}));
  }
  ret->setOperands(results);
  fn.setType(FunctionType::get(module.getContext(), fn.getArgumentTypes(), types));
  fn.setAllResultAttrs(resAttrs);
  return success();
}

struct InstrumentIntegerOnlySitesPass
    : qwen::impl::InstrumentIntegerOnlySitesBase<InstrumentIntegerOnlySitesPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn || fn.isExternal() || !fn.getBody().hasOneBlock()) {
      module.emitError("--qwen-instrument-integer-only-sites: no single-block "
                       "entry function @")
          << entry;
      return signalPassFailure();
    }
    if (failed(addIntegerOnlySites(module, fn)))
      signalPassFailure();
  }
};

struct InstrumentActivationsPass
    : qwen::impl::InstrumentActivationsBase<InstrumentActivationsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn || fn.isExternal()) {
      module.emitError("--qwen-instrument-activations: no entry function @")
          << entry << " with a body";
      return signalPassFailure();
    }
    for (unsigned i = 0; i < fn.getNumResults(); ++i)
      if (fn.getResultAttr(i, "qwen.observe")) {
        fn.emitOpError("is already instrumented (result #")
            << i << " has qwen.observe)";
        return signalPassFailure();
      }
    if (!fn.getBody().hasOneBlock()) {
      fn.emitOpError("has more than one block; instrumentation needs a "
                     "single-block entry");
      return signalPassFailure();
    }
    Block &body = fn.getBody().front();
    // Observed value -> the layers that read it, in program order.
    llvm::MapVector<Value, SmallVector<std::string>> observed;
    bool failedWalk = false;
    fn.walk([&](Operation *op) {
      Value x, w;
      if (auto o = dyn_cast<qwen::LinearOp>(op))
        x = o.getInput(), w = o.getWeight();
      else if (auto o = dyn_cast<qwen::LogitsOp>(op))
        x = o.getInput(), w = o.getWeight();
      else if (auto o = dyn_cast<qq::LinearOp>(op))
        x = o.getInput(), w = o.getWeight();
      else if (auto o = dyn_cast<qq::LogitsOp>(op))
        x = o.getInput(), w = o.getWeight();
      else
        return;
      std::string layer = layerName(w);
      if (layer.empty())
        return;
      if (op->getBlock() != &body) {
        op->emitOpError("layer '")
            << layer << "' is inside a nested region; only ops of the entry "
            << "block can be observed";
        failedWalk = true;
        return;
      }
      if (isa<BlockArgument>(x)) {
        op->emitOpError("layer '")
            << layer << "' reads an entry argument; a result would alias it";
        failedWalk = true;
        return;
      }
      auto t = dyn_cast<RankedTensorType>(x.getType());
      if (!t || !t.getElementType().isF32() || t.getRank() < 2) {
        op->emitOpError("layer '")
            << layer << "' has input type " << x.getType()
            << "; only f32 tensors of rank >= 2 can be observed";
        failedWalk = true;
        return;
      }
      observed[x].push_back(layer);
    });
    if (failedWalk)
      return signalPassFailure();
    if (observed.empty()) {
      fn.emitOpError("has no linear or logits op with a named weight to "
                     "observe");
      return signalPassFailure();
    }
    auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
    if (!ret) {
      fn.emitOpError("does not end in func.return");
      return signalPassFailure();
    }
    Builder b(module.getContext());
    SmallVector<Attribute> resAttrs;
    for (unsigned i = 0; i < fn.getNumResults(); ++i) {
      DictionaryAttr d = fn.getResultAttrDict(i);
      resAttrs.push_back(d ? d : b.getDictionaryAttr({}));
    }
    SmallVector<Value> results(ret.getOperands());
    SmallVector<Type> types(fn.getResultTypes());
    for (auto &[v, layers] : observed) {
      results.push_back(v);
      types.push_back(v.getType());
      SmallVector<Attribute> names;
      for (const std::string &l : layers)
        names.push_back(b.getStringAttr(l));
      resAttrs.push_back(b.getDictionaryAttr(
          {b.getNamedAttr("onnx.name",
                          b.getStringAttr("observe." + layers.front())),
           b.getNamedAttr("qwen.observe", b.getArrayAttr(names))}));
    }
    ret->setOperands(results);
    fn.setType(FunctionType::get(module.getContext(), fn.getArgumentTypes(),
                                 types));
    fn.setAllResultAttrs(resAttrs);
    if (qwen::integerOnlySitesByDefault && failed(addIntegerOnlySites(module, fn)))
      return signalPassFailure();
  }
};

} // namespace
