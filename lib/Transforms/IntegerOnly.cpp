//===- IntegerOnly.cpp - int8 x int8 -> int32 linear stack ----------------===//
//
// --qwen-integer-only: after --qwen-quantize-weights of a w8a8 (static
// per-tensor int8 activations) module, every qquant.linear with a static
// activation becomes
//
//   qquant.quantize (once per input tensor and scale) -> qquant.int_linear
//   -> qquant.dequantize (scale s_x * s_w[n], + bias)
//
// and the MLP of each block, silu_mul(linear_g(x), linear_u(x)) read by a
// static linear_d, becomes an integer chain (requantize-mlp):
//
//   int_linear_g -> requantize(M_g[n] = s_x s_wg[n] / s_g) -> i8 g
//   int_linear_u -> requantize(M_u[n] = s_x s_wu[n] / s_u) -> i8 u
//   lookup(SiLU table: s_g -> s_s) -> i8 s                       (silu-lut)
//   int_mul(s, u) -> requantize(M = s_s s_u / s_d) -> i8 -> int_linear_d
//
// s_g, s_u (the gate/up outputs) come from qwen-calibrate's statistics of
// the sites "<layer>#out" (--qwen-instrument-integer-only-sites); s_d is the
// down projection's static input scale; s_s = max_q |silu(q s_g)| / 127 over
// q in [-127, 127] (the range the table can produce). Without silu-lut the
// i8 g and u are dequantized, SiLU * up runs in f32 and the product is
// quantized with s_d. An RMSNorm read only by those int8 quantizations
// (int-rms-norm) becomes quantize(x, s_in) to int16 -> qquant.int_rms_norm
// (s_in = max|x| / 32767 of the site "<norm weight>#in"). Numerics:
// QQuantOps.td; the pass: Passes.td.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/IntegerOnly.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>

using namespace mlir;
namespace qq = qwen::qquant;

namespace qwen {
#define GEN_PASS_DEF_INTEGERONLY
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace qwen::intonly {

/// M = multiplier * 2^-31 * 2^-shift with multiplier in [2^30, 2^31) and
/// shift in [0, 31] (gemmlowp's QuantizeMultiplierSmallerThanOne); false
/// when M >= 1. M below 2^-32 gives multiplier 0 (the result is 0).
bool quantizeMultiplier(double m, int32_t &mult, int32_t &shift) {
  if (!(m > 0) || !std::isfinite(m) || m >= 1.0) {
    mult = shift = 0;
    return m == 0;
  }
  int e;
  double f = std::frexp(m, &e); // m = f * 2^e, f in [0.5, 1)
  int64_t q = std::llround(f * 2147483648.0);
  if (q == (int64_t(1) << 31)) {
    q /= 2;
    ++e;
  }
  if (e > 0)
    return false;
  if (-e > 31) {
    mult = shift = 0;
    return true;
  }
  mult = int32_t(q);
  shift = -e;
  return true;
}

} // namespace qwen::intonly

namespace {

double silu(double x) { return x / (1.0 + std::exp(-x)); }

struct IntegerOnlyPass : qwen::impl::IntegerOnlyBase<IntegerOnlyPass> {
  using Base::Base;

  // Shared so the pass stays copyable (clonePass); reset per run.
  std::shared_ptr<qwen::WeightStoreCache> stores;
  std::map<std::string, double> outScales; // "<layer>#out" -> threshold/127

  LogicalResult loadCalib(ModuleOp m) {
    if (calib.empty())
      return success();
    std::string key = method == "max"               ? "max"
                      : method == "percentile"      ? "percentile_99.99"
                      : method == "percentile-99.9" ? "percentile_99.9"
                      : method == "entropy"         ? "entropy"
                      : method == "mse"             ? "mse"
                                                    : "";
    if (key.empty())
      return m.emitError("--qwen-integer-only: unknown method '") << method << "'";
    auto buf = llvm::MemoryBuffer::getFile(calib);
    if (!buf)
      return m.emitError("--qwen-integer-only: calib '")
             << calib << "': " << buf.getError().message();
    llvm::Expected<llvm::json::Value> v = llvm::json::parse((*buf)->getBuffer());
    if (!v)
      return m.emitError("--qwen-integer-only: calib '")
             << calib << "': " << llvm::toString(v.takeError());
    const llvm::json::Object *o = v->getAsObject();
    const llvm::json::Object *layers = o ? o->getObject("layers") : nullptr;
    if (!layers)
      return m.emitError("--qwen-integer-only: calib '")
             << calib << "' is not a qwen-calibrate statistics file";
    for (const auto &kv : *layers) {
      llvm::StringRef name = kv.first;
      bool in = name.ends_with("#in");
      if (!name.ends_with("#out") && !in)
        continue;
      // "#in" (RMSNorm inputs, int16): the max, no clipping.
      std::string k = in ? "max" : key;
      const llvm::json::Object *l = kv.second.getAsObject();
      const llvm::json::Object *th = l ? l->getObject("thresholds") : nullptr;
      std::optional<double> t = th ? th->getNumber(k) : std::nullopt;
      if (!t || !std::isfinite(*t) || *t < 0)
        return m.emitError("--qwen-integer-only: calib '")
               << calib << "': site '" << name << "' has no valid thresholds." << k;
      outScales[name.str()] = std::max(*t, 1e-6) / (in ? 32767.0 : 127.0);
    }
    return success();
  }

  /// The per-row (channel) or single (tensor) f32 scales of a weight.
  FailureOr<std::vector<float>> weightScales(qq::WeightOp w) {
    auto t = cast<qq::WeightType>(w.getType());
    const qwen::ws::Entry *e = stores->find(w, w.getRef(), ".scales");
    if (!e)
      return failure();
    const qwen::ws::WeightStoreReader *r = stores->open(w, w.getRef());
    if (!r)
      return failure();
    int64_t n = e->numElements();
    bool tensor = t.getScheme().getGranularity() == qq::Granularity::tensor;
    if (n != (tensor ? 1 : t.getRows()))
      return w.emitOpError("'") << e->name << "' has " << n << " scales", failure();
    const char *src = static_cast<const char *>(r->data(*e));
    std::vector<float> s(n);
    if (e->dtype == qwen::ws::DType::F32)
      std::memcpy(s.data(), src, n * 4);
    else if (e->dtype == qwen::ws::DType::F16)
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        s[i] = qwen::halfToFloat(h);
      }
    else
      return w.emitOpError("'") << e->name << "' is not f32/f16", failure();
    return s;
  }

  static std::optional<double> staticScale(qq::LinearOp op) {
    qq::ActivationAttr act = op.getActAttr();
    if (!act || act.getMode() != qq::ActMode::static_ || act.getBits() != 8)
      return std::nullopt;
    auto st = act.getStaticType();
    if (!st || st.getZeroPoint() != 0 || !st.isSigned())
      return std::nullopt;
    return st.getScale();
  }

  static bool intWeight(qq::WeightType t) {
    qq::SchemeAttr s = t.getScheme();
    return s.getGrid() == qq::Grid::uniform && s.getIsSigned() && s.getSymmetric() &&
           (s.getBits() == 8 || s.getBits() == 4) &&
           s.getGranularity() != qq::Granularity::group &&
           s.getSparsity() == qq::Sparsity::dense;
  }

  static std::string layerOf(qq::LinearOp op) {
    auto w = op.getWeight().getDefiningOp<qq::WeightOp>();
    return w ? w.getRef().getLeafReference().str() : "";
  }

  /// i8 tensor type of `t`'s shape.
  static RankedTensorType withElt(Type t, Type e) {
    auto r = cast<RankedTensorType>(t);
    return RankedTensorType::get(r.getShape(), e);
  }

  std::map<std::pair<const void *, double>, Value> quantized;

  Value quantize(OpBuilder &b, Value x, double s) {
    auto key = std::make_pair(x.getAsOpaquePointer(), s);
    if (auto it = quantized.find(key); it != quantized.end())
      return it->second;
    OpBuilder::InsertionGuard g(b);
    if (Operation *d = x.getDefiningOp())
      b.setInsertionPointAfter(d);
    else
      b.setInsertionPointToStart(cast<BlockArgument>(x).getOwner());
    Value q = qq::QuantizeOp::create(b, x.getLoc(), withElt(x.getType(), b.getI8Type()), x,
                                     b.getF64FloatAttr(s));
    quantized[key] = q;
    return q;
  }

  /// quantize -> int_linear (the i32 accumulator) at `op`.
  Value intLinear(OpBuilder &b, qq::LinearOp op, Value xq) {
    b.setInsertionPoint(op);
    return qq::IntLinearOp::create(b, op.getLoc(), withElt(op.getType(), b.getI32Type()), xq,
                                   op.getWeight());
  }

  /// The MLP chain for silu_mul(g, u) read only by static linears (the down
  /// projections); false (nothing changed) when it does not apply.
  FailureOr<bool> rewriteMLP(OpBuilder &b, qwen::SiluMulOp sm) {
    auto g = sm.getGate().getDefiningOp<qq::LinearOp>();
    auto u = sm.getUp().getDefiningOp<qq::LinearOp>();
    if (!g || !u || g.getBias() || u.getBias() || !g->hasOneUse() || !u->hasOneUse() ||
        !staticScale(g) || !staticScale(u) || !intWeight(g.getWeight().getType()) ||
        !intWeight(u.getWeight().getType()) || sm.getResult().use_empty())
      return false;
    std::optional<double> sd;
    for (Operation *user : sm.getResult().getUsers()) {
      auto d = dyn_cast<qq::LinearOp>(user);
      std::optional<double> s = d ? staticScale(d) : std::nullopt;
      if (!d || d.getInput() != sm.getResult() || !s || (sd && *sd != *s) ||
          !intWeight(d.getWeight().getType()))
        return false;
      sd = s;
    }
    auto sgIt = outScales.find(layerOf(g) + "#out"), suIt = outScales.find(layerOf(u) + "#out");
    if (sgIt == outScales.end() || suIt == outScales.end()) {
      sm.emitRemark("integer-only: no calibrated scale for '")
          << layerOf(g) << "#out' / '" << layerOf(u)
          << "#out' (qwen-calibrate --int-only-sites); the MLP keeps f32 SiLU";
      return false;
    }
    double sg = sgIt->second, su = suIt->second;
    auto requantLinear = [&](qq::LinearOp op, double sOut) -> FailureOr<Value> {
      double sx = *staticScale(op);
      FailureOr<std::vector<float>> sw =
          weightScales(op.getWeight().getDefiningOp<qq::WeightOp>());
      if (failed(sw))
        return failure();
      SmallVector<int32_t> mult, shift;
      for (float w : *sw) {
        int32_t m, s;
        if (!qwen::intonly::quantizeMultiplier(sx * double(w) / sOut, m, s))
          return op.emitOpError("integer-only: requantization multiplier ")
                     << sx * double(w) / sOut << " >= 1",
                 failure();
        mult.push_back(m);
        shift.push_back(s);
      }
      Value acc = intLinear(b, op, quantize(b, op.getInput(), sx));
      return qq::RequantizeOp::create(b, op.getLoc(), withElt(op.getType(), b.getI8Type()), acc,
                                      b.getDenseI32ArrayAttr(mult), b.getDenseI32ArrayAttr(shift),
                                      b.getI32IntegerAttr(0))
          .getResult();
    };
    FailureOr<Value> g8 = requantLinear(g, sg);
    if (failed(g8))
      return failure();
    FailureOr<Value> u8 = requantLinear(u, su);
    if (failed(u8))
      return failure();
    b.setInsertionPoint(sm);
    Location loc = sm.getLoc();
    Value d8;
    if (siluLut) {
      double amax = 0;
      for (int q = -127; q <= 127; ++q)
        amax = std::max(amax, std::fabs(silu(q * sg)));
      double ss = std::max(amax, 1e-30) / 127.0;
      SmallVector<int8_t> table(256);
      for (int i = 0; i < 256; ++i) {
        double v = std::nearbyint(silu((i - 128) * sg) / ss);
        table[i] = int8_t(std::clamp(v, -127.0, 127.0));
      }
      int32_t m, s;
      if (!qwen::intonly::quantizeMultiplier(ss * su / *sd, m, s)) {
        sm.emitRemark("integer-only: SiLU product multiplier ")
            << ss * su / *sd << " >= 1; SiLU * up stays f32";
      } else {
        auto i8T = withElt(sm.getType(), b.getI8Type());
        Value s8 = qq::LookupOp::create(b, loc, i8T, *g8, b.getDenseI8ArrayAttr(table));
        Value p = qq::IntMulOp::create(b, loc, withElt(sm.getType(), b.getI32Type()), s8, *u8);
        d8 = qq::RequantizeOp::create(b, loc, i8T, p, b.getDenseI32ArrayAttr({m}),
                                      b.getDenseI32ArrayAttr({s}), b.getI32IntegerAttr(0));
      }
    }
    if (!d8) {
      auto fT = withElt(sm.getType(), b.getF32Type());
      Value gf = qq::DequantizeOp::create(b, loc, fT, *g8, Value(),
                                          b.getDenseF32ArrayAttr({float(sg)}));
      Value uf = qq::DequantizeOp::create(b, loc, fT, *u8, Value(),
                                          b.getDenseF32ArrayAttr({float(su)}));
      Value prod = qwen::SiluMulOp::create(b, loc, fT, gf, uf);
      d8 = qq::QuantizeOp::create(b, loc, withElt(sm.getType(), b.getI8Type()), prod,
                                  b.getF64FloatAttr(*sd));
    }
    quantized[{sm.getResult().getAsOpaquePointer(), *sd}] = d8;
    return true;
  }

  /// f32 values of a 1-D qwen.weight (RMSNorm gamma).
  FailureOr<std::vector<float>> floatWeight(qwen::WeightOp w, int64_t n) {
    const qwen::ws::Entry *e = stores->find(w, w.getRef());
    const qwen::ws::WeightStoreReader *r = e ? stores->open(w, w.getRef()) : nullptr;
    if (!e || !r || e->numElements() != n)
      return failure();
    const char *src = static_cast<const char *>(r->data(*e));
    std::vector<float> v(n);
    if (e->dtype == qwen::ws::DType::F32)
      std::memcpy(v.data(), src, n * 4);
    else if (e->dtype == qwen::ws::DType::F16)
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        v[i] = qwen::halfToFloat(h);
      }
    else
      return failure();
    return v;
  }

  /// rms_norm(x) read only by qquant.quantize ops of one scale s_out ->
  /// quantize(x, s_in) to i16 -> qquant.int_rms_norm; false if it does not
  /// apply.
  FailureOr<bool> rewriteRMSNorm(OpBuilder &b, qwen::RMSNormOp n) {
    if (n.getPerHead() || n.getResult().use_empty())
      return false;
    std::optional<double> sOut;
    SmallVector<qq::QuantizeOp> users;
    for (Operation *u : n.getResult().getUsers()) {
      auto q = dyn_cast<qq::QuantizeOp>(u);
      if (!q || !cast<RankedTensorType>(q.getType()).getElementType().isInteger(8) ||
          (sOut && *sOut != q.getScale().convertToDouble()))
        return false;
      sOut = q.getScale().convertToDouble();
      users.push_back(q);
    }
    auto w = n.getWeight().getDefiningOp<qwen::WeightOp>();
    auto xt = dyn_cast<RankedTensorType>(n.getInput().getType());
    if (!w || !xt || !xt.getElementType().isF32() || xt.getRank() < 1 ||
        ShapedType::isDynamic(xt.getShape().back()))
      return false;
    std::string site = w.getRef().getLeafReference().str() + "#in";
    auto it = outScales.find(site);
    if (it == outScales.end()) {
      n.emitRemark("integer-only: no calibrated scale for '")
          << site << "' (qwen-calibrate --int-only-sites); RMSNorm stays f32";
      return false;
    }
    int64_t K = xt.getShape().back();
    FailureOr<std::vector<float>> gamma = floatWeight(w, K);
    if (failed(gamma))
      return false;
    double sIn = it->second;
    SmallVector<int64_t> gain;
    for (float g : *gamma)
      gain.push_back(std::llround(double(g) * std::sqrt(double(K)) / *sOut * 65536.0));
    int64_t eps = std::llround(double(K) * n.getEpsilon().convertToDouble() / (sIn * sIn));
    b.setInsertionPoint(n);
    Value xq = qq::QuantizeOp::create(b, n.getLoc(), withElt(xt, b.getIntegerType(16)),
                                      n.getInput(), b.getF64FloatAttr(sIn));
    Value y = qq::IntRMSNormOp::create(b, n.getLoc(), withElt(xt, b.getI8Type()), xq,
                                       b.getDenseI64ArrayAttr(gain), b.getI64IntegerAttr(eps));
    for (qq::QuantizeOp q : users) {
      q.getResult().replaceAllUsesWith(y);
      q.erase();
    }
    n.erase();
    return true;
  }

  LogicalResult rewriteLinear(OpBuilder &b, qq::LinearOp op) {
    double sx = *staticScale(op);
    FailureOr<std::vector<float>> sw =
        weightScales(op.getWeight().getDefiningOp<qq::WeightOp>());
    if (failed(sw))
      return failure();
    SmallVector<float> scale;
    for (float w : *sw)
      scale.push_back(float(sx * double(w)));
    Value acc = intLinear(b, op, quantize(b, op.getInput(), sx));
    Value y = qq::DequantizeOp::create(b, op.getLoc(), op.getType(), acc, op.getBias(),
                                       b.getDenseF32ArrayAttr(scale));
    op.getResult().replaceAllUsesWith(y);
    op.erase();
    return success();
  }

  void runOnOperation() override {
    ModuleOp m = getOperation();
    stores = std::make_shared<qwen::WeightStoreCache>();
    quantized.clear();
    outScales.clear();
    if (failed(loadCalib(m)))
      return signalPassFailure();
    OpBuilder b(m.getContext());
    // 1. MLP chains (their gate/up linears are erased below, their down
    //    projections read the i8 product through `quantized`).
    SmallVector<qwen::SiluMulOp> sms;
    if (requantizeMlp)
      m.walk([&](qwen::SiluMulOp sm) { sms.push_back(sm); });
    SmallVector<Operation *> dead;
    for (qwen::SiluMulOp sm : sms) {
      FailureOr<bool> r = rewriteMLP(b, sm);
      if (failed(r))
        return signalPassFailure();
      if (*r)
        dead.push_back(sm);
    }
    // 2. Every other static linear (and the down projections).
    llvm::SmallPtrSet<Operation *, 16> consumed; // gate/up of rewritten MLPs
    for (Operation *op : dead) {
      auto sm = cast<qwen::SiluMulOp>(op);
      consumed.insert(sm.getGate().getDefiningOp());
      consumed.insert(sm.getUp().getDefiningOp());
    }
    SmallVector<qq::LinearOp> lins;
    m.walk([&](qq::LinearOp op) {
      if (!consumed.contains(op) && staticScale(op) &&
          op.getWeight().getDefiningOp<qq::WeightOp>() && intWeight(op.getWeight().getType()))
        lins.push_back(op);
    });
    for (qq::LinearOp op : lins)
      if (failed(rewriteLinear(b, op)))
        return signalPassFailure();
    // 3. The replaced MLPs: silu_mul, then its gate/up linears.
    for (Operation *op : dead) {
      auto sm = cast<qwen::SiluMulOp>(op);
      Operation *g = sm.getGate().getDefiningOp(), *u = sm.getUp().getDefiningOp();
      if (!sm->use_empty()) {
        sm.emitOpError("integer-only: still used after the rewrite");
        return signalPassFailure();
      }
      sm.erase();
      g->erase();
      u->erase();
    }
    // 4. RMSNorms whose only readers are int8 quantizations.
    if (intRmsNorm) {
      SmallVector<qwen::RMSNormOp> norms;
      m.walk([&](qwen::RMSNormOp n) { norms.push_back(n); });
      for (qwen::RMSNormOp n : norms)
        if (failed(rewriteRMSNorm(b, n)))
          return signalPassFailure();
    }
  }
};

} // namespace
