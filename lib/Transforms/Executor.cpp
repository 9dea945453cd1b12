//===- Executor.cpp - run a raised model on calibration tokens ------------===//
//
// The semantics are those of the ops' descriptions (QwenOps.td) and of their
// lowering (LowerModelToLinalg.cpp), in float with float accumulation; the
// executor is checked against onnxruntime in test/Transforms/executor-*.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Executor.h"
#include "qwen/Transforms/QuantAlgorithms.h"
#include "qwen/Dialect/ONNX/ONNXDialect.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <thread>

using namespace mlir;
namespace ox = qwen::onnxir;

namespace qwen::exec {

int64_t Batch::tokens() const {
  int64_t n = 0;
  for (const auto &s : seqs)
    n += int64_t(s.size());
  return n;
}

bool loadTokenFile(const std::string &path, Batch &out, std::string &err) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf) {
    err = "cannot read token file '" + path + "': " + buf.getError().message();
    return false;
  }
  auto v = llvm::json::parse((*buf)->getBuffer());
  if (!v) {
    err = "token file '" + path + "' is not JSON: " + llvm::toString(v.takeError());
    return false;
  }
  const llvm::json::Object *o = v->getAsObject();
  const llvm::json::Array *seqs = o ? o->getArray("sequences") : nullptr;
  if (!seqs) {
    err = "token file '" + path + "' has no \"sequences\" array";
    return false;
  }
  out.seqs.clear();
  for (size_t i = 0; i < seqs->size(); ++i) {
    const llvm::json::Array *a = (*seqs)[i].getAsArray();
    if (!a || a->empty()) {
      err = "token file '" + path + "': sequence " + std::to_string(i) +
            " is not a non-empty array of token ids";
      return false;
    }
    std::vector<int64_t> s;
    for (const auto &t : *a) {
      auto id = t.getAsInteger();
      if (!id || *id < 0) {
        err = "token file '" + path + "': sequence " + std::to_string(i) +
              " has an entry that is not a token id";
        return false;
      }
      s.push_back(*id);
    }
    out.seqs.push_back(std::move(s));
  }
  if (out.seqs.empty()) {
    err = "token file '" + path + "' has no sequences";
    return false;
  }
  return true;
}

bool writeTokenFile(const std::string &path, const Batch &b, std::string &err) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    err = "cannot write token file '" + path + "': " + ec.message();
    return false;
  }
  os << "{\"sequences\": [";
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    os << (i ? ",\n  [" : "\n  [");
    for (size_t j = 0; j < b.seqs[i].size(); ++j)
      os << (j ? "," : "") << b.seqs[i][j];
    os << "]";
  }
  os << "\n]}\n";
  os.close();
  if (os.has_error()) {
    err = "cannot write token file '" + path + "'";
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

namespace {

} // namespace

//===----------------------------------------------------------------------===//
// The executor
//===----------------------------------------------------------------------===//

/// A runtime value: a [tokens, features] matrix, or a small constant tensor
/// (weights of rms_norm, biases) kept flat.
struct Executor::Impl {
  ModuleOp module;
  func::FuncOp fn;
  std::vector<WeightSite> siteList;
  llvm::DenseMap<Operation *, size_t> siteIndex;
  std::map<std::string, std::vector<float>> overrides;
  WeightStoreCache stores;
  /// The ops the logits depend on (the rest is skipped).
  llvm::DenseSet<Operation *> needed;

  LogicalResult check();
  LogicalResult readFloats(Value v, int64_t n, std::vector<float> &out);
};

static int64_t numElements(Type t) {
  auto rt = dyn_cast<RankedTensorType>(t);
  if (!rt || !rt.hasStaticShape())
    return -1;
  return rt.getNumElements();
}

LogicalResult Executor::Impl::readFloats(Value v, int64_t n,
                                         std::vector<float> &out) {
  Operation *user = v.getDefiningOp();
  if (!user)
    user = v.getParentBlock()->getParentOp();
  return readFloatValue(stores, user, v, n, out);
}

LogicalResult Executor::Impl::check() {
  // The ops the logits depend on. Calibration sequences start at position 0
  // with no padding and no KV cache, so rope positions, attention masks and
  // past tensors are implied, whatever glue computes them.
  Operation *logitsOp = nullptr;
  for (Operation &op : fn.getBody().front())
    if (isa<qwen::LogitsOp>(op))
      logitsOp = &op;
  if (!logitsOp)
    return fn.emitOpError("the calibration executor needs a raised model: '")
           << fn.getSymName() << "' has no qwen.logits";
  SmallVector<Operation *> work{logitsOp};
  needed.insert(logitsOp);
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    for (OpOperand &use : op->getOpOperands()) {
      unsigned i = use.getOperandNumber();
      if (auto r = dyn_cast<qwen::RoPEOp>(op); r && use.get() == r.getPositions())
        continue;
      if (auto a = dyn_cast<qwen::AttentionOp>(op);
          a && i >= 3) // past_key, past_value, mask
        continue;
      if (Operation *d = use.get().getDefiningOp())
        if (needed.insert(d).second)
          work.push_back(d);
    }
  }
  for (Operation &op : fn.getBody().front()) {
    if (!needed.contains(&op))
      continue;
    auto err = [&](const Twine &why) {
      return op.emitOpError("cannot run in the calibration executor: ") << why;
    };
    auto floatWidth = [&](Value v) {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      return t && t.getElementType().isF32() && t.getRank() >= 2 &&
             !ShapedType::isDynamic(t.getShape().back());
    };
    if (isa<qwen::WeightOp, ox::ConstantOp>(op))
      continue;
    if (auto o = dyn_cast<qwen::EmbeddingOp>(op)) {
      if (!isa<BlockArgument>(o.getIds()) ||
          numElements(o.getTable().getType()) < 0)
        return err("the ids must be the model's input and the table static");
      continue;
    }
    if (auto o = dyn_cast<qwen::RMSNormOp>(op)) {
      if (!floatWidth(o.getInput()) || numElements(o.getWeight().getType()) < 0)
        return err("needs an f32 input with a static last dimension");
      continue;
    }
    if (isa<qwen::LinearOp, qwen::LogitsOp>(op)) {
      if (!floatWidth(op.getOperand(0)) ||
          numElements(op.getOperand(1).getType()) < 0)
        return err("needs an f32 input and a static weight");
      continue;
    }
    if (auto o = dyn_cast<qwen::RoPEOp>(op)) {
      if (!floatWidth(o.getInput()))
        return err("needs an f32 input with a static last dimension");
      continue;
    }
    if (auto o = dyn_cast<qwen::AttentionOp>(op)) {
      if (!floatWidth(o.getQuery()) || !floatWidth(o.getKey()) ||
          !floatWidth(o.getValue()))
        return err("needs f32 inputs with static feature dimensions");
      continue;
    }
    if (isa<qwen::SiluMulOp, qwen::AddOp>(op)) {
      if (!floatWidth(op.getOperand(0)))
        return err("needs f32 operands with a static last dimension");
      continue;
    }
    return err("the executor runs raised models (qwen.* ops); this op was "
               "not raised");
  }
  // Weight sites.
  for (Operation &op : fn.getBody().front()) {
    Value w, in;
    if (auto o = dyn_cast<qwen::LinearOp>(op))
      w = o.getWeight(), in = o.getInput();
    else if (auto o = dyn_cast<qwen::LogitsOp>(op))
      w = o.getWeight(), in = o.getInput();
    else if (auto o = dyn_cast<qwen::EmbeddingOp>(op))
      w = o.getTable();
    else
      continue;
    auto wt = cast<RankedTensorType>(w.getType());
    if (wt.getRank() != 2)
      return op.emitOpError("cannot run in the calibration executor: the "
                            "weight is not a matrix");
    WeightSite s;
    s.op = &op;
    if (auto wop = w.getDefiningOp<qwen::WeightOp>())
      s.layer = wop.getRef().getLeafReference().getValue().str();
    s.rows = wt.getDimSize(0);
    s.cols = wt.getDimSize(1);
    s.input = in;
    siteIndex[&op] = siteList.size();
    siteList.push_back(std::move(s));
  }
  return success();
}

Executor::Executor(std::unique_ptr<Impl> i) : impl(std::move(i)) {}
Executor::~Executor() = default;

std::unique_ptr<Executor> Executor::create(ModuleOp module, StringRef entry) {
  auto fn = module.lookupSymbol<func::FuncOp>(entry);
  if (!fn || fn.isExternal()) {
    module.emitError("the calibration executor found no function '")
        << entry << "'";
    return nullptr;
  }
  if (!fn.getBody().hasOneBlock()) {
    fn.emitOpError("the calibration executor runs single-block functions");
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->module = module;
  impl->fn = fn;
  if (failed(impl->check()))
    return nullptr;
  return std::unique_ptr<Executor>(new Executor(std::move(impl)));
}

const std::vector<WeightSite> &Executor::sites() const { return impl->siteList; }

void Executor::setOverride(const std::string &layer, std::vector<float> w) {
  impl->overrides[layer] = std::move(w);
}
void Executor::clearOverrides() { impl->overrides.clear(); }

LogicalResult Executor::readWeight(const WeightSite &site,
                                   std::vector<float> &out) {
  if (auto it = impl->overrides.find(site.layer);
      !site.layer.empty() && it != impl->overrides.end()) {
    out = it->second;
    return success();
  }
  Value w = isa<qwen::EmbeddingOp>(site.op)
                ? cast<qwen::EmbeddingOp>(site.op).getTable()
                : site.op->getOperand(1);
  return impl->readFloats(w, site.rows * site.cols, out);
}

LogicalResult Executor::run(const Batch &batch, const WeightHook &hook,
                            Matrix *logits,
                            const std::vector<int64_t> &logitRows) {
  Impl &I = *impl;
  const int64_t N = batch.tokens();
  if (N == 0)
    return I.fn.emitOpError("the calibration batch has no tokens");
  // Sequence starts and each token's position.
  std::vector<int64_t> starts, pos(N);
  {
    int64_t o = 0;
    for (const auto &s : batch.seqs) {
      starts.push_back(o);
      for (size_t i = 0; i < s.size(); ++i)
        pos[o + i] = int64_t(i);
      o += int64_t(s.size());
    }
    starts.push_back(o);
  }
  // Last use of each value, to free it.
  llvm::DenseMap<Value, Operation *> lastUse;
  for (Operation &op : I.fn.getBody().front())
    for (Value v : op.getOperands())
      lastUse[v] = &op;
  llvm::DenseMap<Value, Matrix> vals;
  auto get = [&](Value v) -> Matrix & { return vals[v]; };
  auto checkFinite = [&](Operation &op, const Matrix &m) -> LogicalResult {
    for (size_t i = 0; i < m.data.size(); ++i)
      if (!std::isfinite(m.data[i]))
        return op.emitOpError("produced a NaN or Inf in the calibration "
                              "executor (token ")
               << int64_t(i) / m.cols << ", feature " << int64_t(i) % m.cols
               << ")";
    return success();
  };

  for (Operation &op : I.fn.getBody().front()) {
    if (!I.needed.contains(&op) || isa<qwen::WeightOp, ox::ConstantOp>(op))
      continue;
    Matrix out;
    if (auto o = dyn_cast<qwen::EmbeddingOp>(op)) {
      const WeightSite &s = I.siteList[I.siteIndex.lookup(&op)];
      std::vector<float> table;
      if (failed(readWeight(s, table)))
        return failure();
      if (hook && failed(hook(s, nullptr, table)))
        return failure();
      out.rows = N, out.cols = s.cols;
      out.data.resize(N * s.cols);
      int64_t r = 0;
      for (const auto &seq : batch.seqs)
        for (int64_t id : seq) {
          if (id >= s.rows)
            return op.emitOpError("token id ")
                   << id << " is outside the vocabulary of " << s.rows;
          std::copy_n(&table[id * s.cols], s.cols, out.row(r++));
        }
    } else if (auto o = dyn_cast<qwen::RMSNormOp>(op)) {
      const Matrix &x = get(o.getInput());
      int64_t D = x.cols;
      int64_t wn = numElements(o.getWeight().getType());
      std::vector<float> w;
      if (failed(I.readFloats(o.getWeight(), wn, w)))
        return failure();
      int64_t G = o.getPerHead() ? wn : D; // normalised group
      if (D % G != 0 || (!o.getPerHead() && wn != D))
        return op.emitOpError("weight of ") << wn << " does not fit " << D;
      double eps = o.getEpsilon().convertToDouble();
      out.rows = x.rows, out.cols = D;
      out.data.resize(x.data.size());
      qwen::quant::parallelFor(x.rows, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t g = 0; g < D; g += G) {
            const float *xr = x.row(r) + g;
            float *yr = out.row(r) + g;
            double ss = 0;
            for (int64_t j = 0; j < G; ++j)
              ss += double(xr[j]) * xr[j];
            float inv = float(1.0 / std::sqrt(ss / double(G) + eps));
            for (int64_t j = 0; j < G; ++j)
              yr[j] = xr[j] * inv * w[j];
          }
      });
    } else if (isa<qwen::LinearOp, qwen::LogitsOp>(op)) {
      const WeightSite &s = I.siteList[I.siteIndex.lookup(&op)];
      const Matrix &x = get(op.getOperand(0));
      if (x.cols != s.cols)
        return op.emitOpError("input has ") << x.cols << " features, weight "
                                            << s.cols;
      std::vector<float> w, bias;
      if (failed(readWeight(s, w)))
        return failure();
      if (hook && failed(hook(s, &x, w)))
        return failure();
      if (int64_t(w.size()) != s.rows * s.cols)
        return op.emitOpError("the hook returned a weight of ")
               << w.size() << " elements";
      if (auto l = dyn_cast<qwen::LinearOp>(op); l && l.getBias())
        if (failed(I.readFloats(l.getBias(), s.rows, bias)))
          return failure();
      bool isLogits = isa<qwen::LogitsOp>(op);
      if (isLogits && !logits) {
        // Nothing needs them.
      } else if (isLogits && !logitRows.empty()) {
        Matrix xs;
        xs.rows = int64_t(logitRows.size()), xs.cols = x.cols;
        xs.data.resize(xs.rows * xs.cols);
        for (int64_t i = 0; i < xs.rows; ++i) {
          if (logitRows[i] < 0 || logitRows[i] >= N)
            return op.emitOpError("logit row ") << logitRows[i]
                                                << " is outside the batch";
          std::copy_n(x.row(logitRows[i]), x.cols, xs.row(i));
        }
        out.rows = xs.rows, out.cols = s.rows;
        out.data.resize(out.rows * out.cols);
        qwen::quant::matmulNT(xs.data.data(), w.data(), nullptr, out.data.data(), xs.rows,
               s.rows, s.cols);
      } else {
        out.rows = x.rows, out.cols = s.rows;
        out.data.resize(out.rows * out.cols);
        qwen::quant::matmulNT(x.data.data(), w.data(), bias.empty() ? nullptr : bias.data(),
               out.data.data(), x.rows, s.rows, s.cols);
      }
      if (isLogits && logits) {
        if (failed(checkFinite(op, out)))
          return failure();
        *logits = std::move(out);
        out = Matrix();
      }
    } else if (auto o = dyn_cast<qwen::RoPEOp>(op)) {
      const Matrix &x = get(o.getInput());
      int64_t D = o.getHeadDim(), H = o.getNumHeads();
      int64_t rd = o.getEffectiveRotaryDim(), half = rd / 2;
      if (x.cols != H * D)
        return op.emitOpError("input has ") << x.cols << " features, not "
                                            << H * D;
      bool inter = o.getStyle() == qwen::RoPEStyle::interleaved;
      double theta = o.getTheta().convertToDouble();
      std::vector<float> invFreq(half);
      for (int64_t i = 0; i < half; ++i)
        invFreq[i] = float(std::pow(theta, -2.0 * double(i) / double(rd)));
      out = x;
      qwen::quant::parallelFor(x.rows, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float p = float(pos[r]);
          for (int64_t h = 0; h < H; ++h) {
            const float *xr = x.row(r) + h * D;
            float *yr = out.row(r) + h * D;
            for (int64_t i = 0; i < half; ++i) {
              float ang = p * invFreq[i];
              float c = std::cos(ang), s = std::sin(ang);
              int64_t a = inter ? 2 * i : i, b = inter ? 2 * i + 1 : i + half;
              yr[a] = xr[a] * c - xr[b] * s;
              yr[b] = xr[b] * c + xr[a] * s;
            }
          }
        }
      });
    } else if (auto o = dyn_cast<qwen::AttentionOp>(op)) {
      const Matrix &q = get(o.getQuery()), &k = get(o.getKey()),
                   &v = get(o.getValue());
      int64_t H = o.getNumHeads(), KV = o.getNumKvHeads(), D = o.getHeadDim();
      if (q.cols != H * D || k.cols != KV * D || v.cols != KV * D)
        return op.emitOpError("q/k/v widths do not match the heads");
      float scale = float(o.getEffectiveScale());
      bool causal = o.getCausal();
      out.rows = q.rows, out.cols = H * D;
      out.data.assign(q.rows * H * D, 0.f);
      int64_t group = H / KV;
      int64_t S = int64_t(batch.seqs.size());
      // Work items: (sequence, head).
      qwen::quant::parallelFor(S * H, 1, [&](int64_t i0, int64_t i1) {
        std::vector<float> sc;
        for (int64_t it = i0; it < i1; ++it) {
          int64_t s = it / H, h = it % H, kh = h / group;
          int64_t b = starts[s], T = starts[s + 1] - b;
          sc.resize(T);
          for (int64_t i = 0; i < T; ++i) {
            const float *qr = q.row(b + i) + h * D;
            int64_t last = causal ? i : T - 1;
            float mx = -INFINITY;
            for (int64_t j = 0; j <= last; ++j) {
              const float *kr = k.row(b + j) + kh * D;
              float d = 0;
              for (int64_t e = 0; e < D; ++e)
                d += qr[e] * kr[e];
              sc[j] = d * scale;
              mx = std::max(mx, sc[j]);
            }
            float sum = 0;
            for (int64_t j = 0; j <= last; ++j)
              sum += (sc[j] = std::exp(sc[j] - mx));
            float *yr = out.row(b + i) + h * D;
            for (int64_t j = 0; j <= last; ++j) {
              const float *vr = v.row(b + j) + kh * D;
              float p = sc[j] / sum;
              for (int64_t e = 0; e < D; ++e)
                yr[e] += p * vr[e];
            }
          }
        }
      });
    } else if (auto o = dyn_cast<qwen::SiluMulOp>(op)) {
      const Matrix &g = get(o.getGate()), &u = get(o.getUp());
      out = g;
      for (size_t i = 0; i < out.data.size(); ++i) {
        float x = g.data[i];
        out.data[i] = x / (1.f + std::exp(-x)) * u.data[i];
      }
    } else if (auto o = dyn_cast<qwen::AddOp>(op)) {
      const Matrix &a = get(o.getLhs()), &c = get(o.getRhs());
      out = a;
      for (size_t i = 0; i < out.data.size(); ++i)
        out.data[i] += c.data[i];
    }
    if (!out.data.empty()) {
      if (failed(checkFinite(op, out)))
        return failure();
      vals[op.getResult(0)] = std::move(out);
    }
    for (Value v : op.getOperands())
      if (lastUse.lookup(v) == &op)
        vals.erase(v);
  }
  return success();
}

void logitsKL(const Matrix &ref, const Matrix &test, double &meanKL,
              double &sameTop1) {
  double kl = 0;
  int64_t same = 0;
  for (int64_t r = 0; r < ref.rows; ++r) {
    const float *p = ref.row(r), *q = test.row(r);
    int64_t V = ref.cols;
    double mp = -INFINITY, mq = -INFINITY;
    int64_t ap = 0, aq = 0;
    for (int64_t j = 0; j < V; ++j) {
      if (p[j] > mp)
        mp = p[j], ap = j;
      if (q[j] > mq)
        mq = q[j], aq = j;
    }
    double zp = 0, zq = 0;
    for (int64_t j = 0; j < V; ++j)
      zp += std::exp(p[j] - mp), zq += std::exp(q[j] - mq);
    double lzp = std::log(zp), lzq = std::log(zq), k = 0;
    for (int64_t j = 0; j < V; ++j) {
      double lp = p[j] - mp - lzp, lq = q[j] - mq - lzq;
      k += std::exp(lp) * (lp - lq);
    }
    kl += std::max(0.0, k);
    same += ap == aq;
  }
  meanKL = ref.rows ? kl / double(ref.rows) : 0;
  sameTop1 = ref.rows ? double(same) / double(ref.rows) : 0;
}

} // namespace qwen::exec
