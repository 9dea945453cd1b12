//===- RaiseAttention.cpp - RoPE and attention -> model-level ops ---------===//
//
// Raises what the exporters write for rotary position embeddings and for
// scaled-dot-product attention (GQA, causal + padding mask, KV cache) to
// `qwen.rope` and `qwen.attention`:
//
//  * HF primitive graphs (TorchScript, dynamo, optimum, Qwen1): q/k/v
//    projections -> head-split Reshape (+ Transpose) -> q*cos +
//    rotate_half(q)*sin -> Concat(past, new) -> repeat_kv -> MatMul(q, k^T)
//    * scale + additive mask -> Softmax -> MatMul(v) -> Transpose -> Reshape;
//  * onnxruntime's GroupQueryAttention (packed or separate q/k/v, with or
//    without its own rotary) and com.microsoft RotaryEmbedding;
//  * opset 23 RotaryEmbedding and Attention.
//
// Nothing here is raised on faith. Shapes are proven with a small symbolic
// algebra (`Sym`): every dimension is an affine expression over the graph's
// size symbols; masks are proven with an abstract interpreter (`MaskEval`)
// that evaluates the mask subgraph to a formula over the score tensor's
// indices (b, h, i, j) and compares it with `attention_mask[b, j] != 0 &&
// j <= i + past`. RoPE tables are proven to be cos/sin of
// `position * theta^(-2i/d)` by reading the inverse-frequency (or cos/sin
// cache) constants.
//
// Contracts the proofs rest on (every exporter declares them; import drops
// the dim_param names that state them):
//  * graph inputs by ONNX name: `input_ids` [B, T], `attention_mask`
//    [B, P + T], `position_ids` [B, T], `past_key_values.*` [B, kv, P, d]
//    share the symbols B, T, P (P = 0 without past inputs);
//  * `attention_mask` holds 0/1 (1 = keep), which is what `qwen.attention`'s
//    mask means and what Qwen1's `(1 - mask) * -FLT_MAX` spelling needs;
//  * query rows whose every key is masked (only padding queries can be) are
//    unspecified: the exporters disagree there (uniform average, zeros from
//    optimum's IsNaN guard, -inf overflow in Qwen1).
// The identity each pattern relies on is stated in its comment.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/RaisePatterns.h"

#include "RaiseUtils.h"
#include "qwen/Support/WeightStore.h"
#include "qwen/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <deque>
#include <map>

using namespace mlir;
namespace ox = qwen::onnxir;
using qwen::raise::intConstant;
using qwen::raise::rankedFloat;
using qwen::raise::scalarConstant;
using qwen::raise::skip;

namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;
/// Additive mask values at or below this are "masked": exp underflows to 0
/// against any finite score.
constexpr double kMaskedBelow = -1.0e30;
/// Slice ends at or above this mean "to the end".
constexpr int64_t kHugeEnd = int64_t(1) << 40;

int64_t normAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

/// A splat float constant with a single element (so it cannot broadcast the
/// other operand to a bigger shape).
std::optional<double> unitScalar(Value v) {
  auto t = dyn_cast<RankedTensorType>(skip(v).getType());
  if (!t || !t.hasStaticShape() || t.getNumElements() != 1)
    return std::nullopt;
  return scalarConstant(v);
}

//===----------------------------------------------------------------------===//
// Symbolic sizes
//===----------------------------------------------------------------------===//

/// An affine integer expression over size symbols: c + sum(k_s * s).
struct Aff {
  int64_t c = 0;
  std::map<unsigned, int64_t> t;

  static Aff cst(int64_t v) {
    Aff a;
    a.c = v;
    return a;
  }
  static Aff sym(unsigned s) {
    Aff a;
    a.t[s] = 1;
    return a;
  }
  bool isConst() const { return t.empty(); }
  bool isConst(int64_t v) const { return t.empty() && c == v; }
  Aff operator+(const Aff &o) const {
    Aff r = *this;
    r.c += o.c;
    for (auto [s, k] : o.t)
      if ((r.t[s] += k) == 0)
        r.t.erase(s);
    return r;
  }
  Aff scaled(int64_t k) const {
    Aff r;
    if (k == 0)
      return r;
    r.c = c * k;
    for (auto [s, x] : t)
      r.t[s] = x * k;
    return r;
  }
  Aff operator-(const Aff &o) const { return *this + o.scaled(-1); }
  bool operator==(const Aff &o) const { return c == o.c && t == o.t; }
  bool operator!=(const Aff &o) const { return !(*this == o); }
  std::optional<Aff> divExact(int64_t k) const {
    if (k == 0 || c % k)
      return std::nullopt;
    Aff r;
    r.c = c / k;
    for (auto [s, x] : t) {
      if (x % k)
        return std::nullopt;
      r.t[s] = x / k;
    }
    return r;
  }
  /// Provably >= 0, every symbol being a size (>= 0).
  bool nonNeg() const {
    if (c < 0)
      return false;
    for (auto [s, k] : t)
      if (k < 0)
        return false;
    return true;
  }
};

/// Tri-state a == b over sizes.
std::optional<bool> affEqual(const Aff &a, const Aff &b) {
  Aff d = a - b;
  if (d.isConst())
    return d.c == 0;
  if ((d.nonNeg() && d.c > 0) || (d.scaled(-1).nonNeg() && -d.c > 0))
    return false;
  return std::nullopt;
}

/// The size algebra of one function: the dims of any value and the values of
/// small integer (shape) tensors, as affine expressions over symbols. Symbols
/// 0, 1, 2 are the batch B, the new tokens T and the past P of the graph
/// inputs (see the file comment); other unknown dims get a fresh symbol per
/// (value, dim), which only ever equals itself.
class Sym {
public:
  explicit Sym(Operation *anchor);

  Aff dim(Value v, int64_t d);
  SmallVector<Aff> dims(Value v) {
    SmallVector<Aff> out;
    if (auto t = dyn_cast<RankedTensorType>(v.getType()))
      for (int64_t d = 0; d < t.getRank(); ++d)
        out.push_back(dim(v, d));
    return out;
  }
  /// Values of a rank-0/1 integer tensor, where computable.
  std::optional<SmallVector<Aff>> ints(Value v);
  std::optional<Aff> scalar(Value v) {
    auto i = ints(v);
    if (!i || i->size() != 1)
      return std::nullopt;
    return (*i)[0];
  }

  Value attentionMask;
  Aff batch = Aff::sym(0), seq = Aff::sym(1), past = Aff::cst(0);

private:
  enum Role { IdsRole, MaskRole, PosRole, PastRole };
  Aff opaque(Value v, int64_t d);
  Aff compute(Value v, int64_t d);
  std::optional<SmallVector<Aff>> computeInts(Value v);
  std::optional<Aff> broadcastDim(Operation *op, int64_t rank, int64_t d);
  SmallVector<Aff> reshapeDims(ox::ReshapeOp r);

  DenseMap<Value, Role> roles;
  DenseMap<std::pair<Value, int64_t>, unsigned> opaqueIds;
  DenseMap<std::pair<Value, int64_t>, Aff> dimMemo;
  DenseMap<Value, std::optional<SmallVector<Aff>>> intsMemo;
  unsigned nextSym = 3;
};

Sym::Sym(Operation *anchor) {
  auto func = anchor->getParentOfType<func::FuncOp>();
  if (!func)
    return;
  bool hasPast = false;
  for (auto [i, arg] : llvm::enumerate(func.getArguments())) {
    auto name = func.getArgAttrOfType<StringAttr>(i, "onnx.name");
    if (!name)
      continue;
    StringRef n = name.getValue();
    if (n == "input_ids") {
      roles[arg] = IdsRole;
    } else if (n == "attention_mask") {
      roles[arg] = MaskRole;
      attentionMask = arg;
    } else if (n == "position_ids") {
      roles[arg] = PosRole;
    } else if (n.starts_with("past_key_values.")) {
      roles[arg] = PastRole;
      hasPast = true;
    }
  }
  if (hasPast)
    past = Aff::sym(2);
}

Aff Sym::opaque(Value v, int64_t d) {
  auto [it, inserted] = opaqueIds.try_emplace({v, d}, nextSym);
  if (inserted)
    ++nextSym;
  return Aff::sym(it->second);
}

Aff Sym::dim(Value v, int64_t d) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || d < 0 || d >= type.getRank())
    return opaque(v, d);
  if (!type.isDynamicDim(d))
    return Aff::cst(type.getDimSize(d));
  auto it = dimMemo.find({v, d});
  if (it != dimMemo.end())
    return it->second;
  Aff r = compute(v, d);
  dimMemo[{v, d}] = r;
  return r;
}

std::optional<Aff> Sym::broadcastDim(Operation *op, int64_t rank, int64_t d) {
  std::optional<Aff> cand;
  for (Value o : op->getOperands()) {
    auto t = dyn_cast<RankedTensorType>(o.getType());
    if (!t)
      return std::nullopt;
    int64_t k = d - (rank - t.getRank());
    if (k < 0)
      continue;
    Aff x = dim(o, k);
    if (x.isConst(1))
      continue;
    if (cand && *cand != x)
      return std::nullopt;
    cand = x;
  }
  return cand ? *cand : Aff::cst(1);
}

/// The result dims of a Reshape; a -1 is resolved by cancelling equal
/// factors of the input and output shapes (their products are equal).
SmallVector<Aff> Sym::reshapeDims(ox::ReshapeOp r) {
  auto rt = cast<RankedTensorType>(r.getReshaped().getType());
  int64_t rank = rt.getRank();
  SmallVector<Aff> out;
  auto tgt = ints(r.getShape());
  if (!tgt || (int64_t)tgt->size() != rank) {
    for (int64_t d = 0; d < rank; ++d)
      out.push_back(opaque(r.getReshaped(), d));
    return out;
  }
  int64_t minusOne = -1;
  for (auto [i, e] : llvm::enumerate(*tgt)) {
    if (e.isConst(0) && !r.getAllowzero())
      out.push_back(dim(r.getData(), i));
    else if (e.isConst(-1)) {
      minusOne = i;
      out.push_back(Aff::cst(-1));
    } else
      out.push_back(e);
  }
  if (minusOne < 0)
    return out;
  Aff unresolved = opaque(r.getReshaped(), minusOne);
  SmallVector<Aff> in = dims(r.getData());
  SmallVector<Aff> other;
  for (auto [i, e] : llvm::enumerate(out))
    if ((int64_t)i != minusOne)
      other.push_back(e);
  // Cancel equal factors.
  for (auto oi = other.begin(); oi != other.end();) {
    auto match = llvm::find(in, *oi);
    if (match != in.end()) {
      in.erase(match);
      oi = other.erase(oi);
    } else {
      ++oi;
    }
  }
  int64_t denom = 1, numer = 1;
  std::optional<Aff> symbolic;
  for (const Aff &o : other) {
    if (!o.isConst() || o.c <= 0) {
      out[minusOne] = unresolved;
      return out;
    }
    denom *= o.c;
  }
  for (const Aff &x : in) {
    if (x.isConst()) {
      numer *= x.c;
    } else if (!symbolic) {
      symbolic = x;
    } else {
      out[minusOne] = unresolved;
      return out;
    }
  }
  if (denom == 0 || numer % denom) {
    out[minusOne] = unresolved;
    return out;
  }
  Aff res = symbolic ? symbolic->scaled(numer / denom)
                     : Aff::cst(numer / denom);
  out[minusOne] = res;
  return out;
}

Aff Sym::compute(Value v, int64_t d) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t rank = type.getRank();
  if (auto arg = dyn_cast<BlockArgument>(v)) {
    auto it = roles.find(arg);
    if (it == roles.end())
      return opaque(v, d);
    switch (it->second) {
    case IdsRole:
    case PosRole:
      if (rank == 2)
        return d == 0 ? batch : seq;
      break;
    case MaskRole:
      if (rank == 2)
        return d == 0 ? batch : past + seq;
      break;
    case PastRole:
      if (rank == 4 && d == 0)
        return batch;
      if (rank == 4 && d == 2)
        return past;
      break;
    }
    return opaque(v, d);
  }
  Operation *op = v.getDefiningOp();
  unsigned resNo = cast<OpResult>(v).getResultNumber();
  auto same = [&](Value o) { return dim(o, d); };
  auto inner = [&](Value o) { return d < rank - 1 ? dim(o, d) : opaque(v, d); };

  if (isa<qwen::RMSNormOp, qwen::RoPEOp, qwen::AddOp, qwen::SiluMulOp,
          ox::TriluOp, ox::CumSumOp>(op))
    return same(op->getOperand(0));
  if (isa<qwen::LinearOp, qwen::LogitsOp, ox::MSMatMulNBitsOp>(op))
    return inner(op->getOperand(0));
  if (auto e = dyn_cast<qwen::EmbeddingOp>(op))
    return inner(e.getIds());
  if (auto g = dyn_cast<ox::MSGatherBlockQuantizedOp>(op))
    return inner(g.getIndices());
  if (auto a = dyn_cast<qwen::AttentionOp>(op)) {
    if (resNo == 0 || d == 0)
      return dim(a.getQuery(), d);
    if (d == 2)
      return a.getPastKey() ? dim(a.getPastKey(), 2) + dim(a.getQuery(), 1)
                            : dim(a.getQuery(), 1);
    return opaque(v, d);
  }
  if (auto g = dyn_cast<ox::MSGroupQueryAttentionOp>(op))
    return resNo == 0 && d < 2 ? dim(g.getQuery(), d) : opaque(v, d);

  if (op->hasTrait<OpTrait::SameOperandsAndResultShape>() ||
      op->hasTrait<OpTrait::SameOperandsAndResultType>())
    return op->getNumOperands() ? same(op->getOperand(0)) : opaque(v, d);
  if (op->hasTrait<OpTrait::ResultsBroadcastableShape>()) {
    auto b = broadcastDim(op, rank, d);
    return b ? *b : opaque(v, d);
  }

  return llvm::TypeSwitch<Operation *, Aff>(op)
      .Case([&](ox::TransposeOp t) {
        auto in = dyn_cast<RankedTensorType>(t.getData().getType());
        if (!in)
          return opaque(v, d);
        if (t.getPerm())
          return dim(t.getData(), (*t.getPerm())[d]);
        return dim(t.getData(), in.getRank() - 1 - d);
      })
      .Case([&](ox::ReshapeOp r) { return reshapeDims(r)[d]; })
      .Case([&](ox::UnsqueezeOp u) {
        auto axes = intConstant(u.getAxes());
        if (!axes)
          return opaque(v, d);
        SmallVector<bool> inserted(rank, false);
        for (int64_t a : *axes) {
          int64_t n = normAxis(a, rank);
          if (n < 0 || n >= rank)
            return opaque(v, d);
          inserted[n] = true;
        }
        if (inserted[d])
          return Aff::cst(1);
        int64_t k = 0;
        for (int64_t i = 0; i < d; ++i)
          k += !inserted[i];
        return dim(u.getData(), k);
      })
      .Case([&](ox::SqueezeOp s) {
        auto in = dyn_cast<RankedTensorType>(s.getData().getType());
        if (!in)
          return opaque(v, d);
        SmallVector<bool> dropped(in.getRank(), false);
        if (s.getAxes()) {
          auto axes = intConstant(s.getAxes());
          if (!axes)
            return opaque(v, d);
          for (int64_t a : *axes)
            dropped[normAxis(a, in.getRank())] = true;
        } else {
          for (int64_t i = 0; i < in.getRank(); ++i)
            dropped[i] = in.getDimSize(i) == 1;
        }
        int64_t k = -1;
        for (int64_t i = 0, seen = 0; i < in.getRank(); ++i)
          if (!dropped[i] && seen++ == d)
            k = i;
        return k < 0 ? opaque(v, d) : dim(s.getData(), k);
      })
      .Case([&](ox::ConcatOp c) {
        if (normAxis(c.getAxis(), rank) != d)
          return dim(c.getInputs()[0], d);
        Aff sum = Aff::cst(0);
        for (Value in : c.getInputs())
          sum = sum + dim(in, d);
        return sum;
      })
      .Case([&](ox::ExpandOp e) {
        auto tgt = ints(e.getShape());
        auto in = dyn_cast<RankedTensorType>(e.getInput().getType());
        if (!tgt || !in || (int64_t)tgt->size() > rank)
          return opaque(v, d);
        int64_t ki = d - (rank - in.getRank());
        int64_t kt = d - (rank - (int64_t)tgt->size());
        Aff x = ki >= 0 ? dim(e.getInput(), ki) : Aff::cst(1);
        Aff y = kt >= 0 ? (*tgt)[kt] : Aff::cst(1);
        if (x.isConst(1))
          return y;
        if (y.isConst(1) || x == y)
          return x;
        return opaque(v, d);
      })
      .Case([&](ox::MatMulOp m) {
        auto a = dyn_cast<RankedTensorType>(m.getA().getType());
        auto b = dyn_cast<RankedTensorType>(m.getB().getType());
        if (!a || !b || a.getRank() < 2 || b.getRank() < 2)
          return opaque(v, d);
        if (d == rank - 1)
          return dim(m.getB(), b.getRank() - 1);
        if (d == rank - 2)
          return dim(m.getA(), a.getRank() - 2);
        std::optional<Aff> cand;
        for (auto [x, xt] : {std::pair(m.getA(), a), std::pair(m.getB(), b)}) {
          int64_t k = d - (rank - xt.getRank());
          if (k < 0)
            continue;
          Aff y = dim(x, k);
          if (y.isConst(1))
            continue;
          if (cand && *cand != y)
            return opaque(v, d);
          cand = y;
        }
        return cand ? *cand : Aff::cst(1);
      })
      .Case([&](ox::RangeOp r) {
        auto s = scalar(r.getStart()), l = scalar(r.getLimit()),
             dl = scalar(r.getDelta());
        if (s && l && dl && dl->isConst(1))
          return *l - *s;
        return opaque(v, d);
      })
      .Case([&](ox::GatherOp g) {
        auto dt = dyn_cast<RankedTensorType>(g.getData().getType());
        auto it = dyn_cast<RankedTensorType>(g.getIndices().getType());
        if (!dt || !it)
          return opaque(v, d);
        int64_t a = normAxis(g.getAxis(), dt.getRank());
        if (d < a)
          return dim(g.getData(), d);
        if (d < a + it.getRank())
          return dim(g.getIndices(), d - a);
        return dim(g.getData(), d - it.getRank() + 1);
      })
      .Case([&](ox::GatherNDOp g) {
        auto it = dyn_cast<RankedTensorType>(g.getIndices().getType());
        if (!it || g.getBatchDims() != 0 || it.isDynamicDim(it.getRank() - 1))
          return opaque(v, d);
        int64_t q = it.getRank(), m = it.getDimSize(q - 1);
        if (d < q - 1)
          return dim(g.getIndices(), d);
        return dim(g.getData(), m + d - (q - 1));
      })
      .Case([&](ox::SliceOp s) {
        auto axes = s.getAxes() ? ints(s.getAxes()) : std::nullopt;
        auto st = ints(s.getStarts()), en = ints(s.getEnds());
        auto sp = s.getSteps() ? ints(s.getSteps()) : std::nullopt;
        if (!st || !en || (s.getAxes() && !axes) || (s.getSteps() && !sp))
          return opaque(v, d);
        for (size_t i = 0; i < st->size(); ++i) {
          int64_t a = axes ? ((*axes)[i].isConst()
                                  ? normAxis((*axes)[i].c, rank)
                                  : -1)
                           : (int64_t)i;
          if (a < 0)
            return opaque(v, d);
          if (a != d)
            continue;
          Aff full = dim(s.getData(), d);
          bool unitStep = !sp || (*sp)[i].isConst(1);
          if (unitStep && (*st)[i].isConst(0) &&
              (((*en)[i].isConst() && (*en)[i].c >= kHugeEnd) ||
               ((*en)[i] - full).nonNeg()))
            return full;
          if (unitStep && full.isConst() && (*st)[i].isConst() &&
              (*en)[i].isConst()) {
            int64_t n = full.c;
            int64_t b = std::clamp<int64_t>(normAxis((*st)[i].c, n), 0, n);
            int64_t e = std::clamp<int64_t>(
                (*en)[i].c >= kHugeEnd ? n : normAxis((*en)[i].c, n), 0, n);
            return Aff::cst(std::max<int64_t>(0, e - b));
          }
          return opaque(v, d);
        }
        return dim(s.getData(), d);
      })
      .Case([&](ox::SplitOp s) {
        return normAxis(s.getAxis(), rank) == d ? opaque(v, d)
                                                : dim(s.getInput(), d);
      })
      .Case([&](ox::ConstantOfShapeOp c) {
        auto shape = ints(c.getInput());
        if (!shape || (int64_t)shape->size() != rank)
          return opaque(v, d);
        return (*shape)[d];
      })
      .Case([&](ox::EinsumOp e) {
        // Explicit equations: an output letter has the size of that letter
        // in the first input that has it.
        auto [lhs, rhs] = e.getEquation().split("->");
        rhs = rhs.trim();
        SmallVector<StringRef> terms;
        lhs.split(terms, ',');
        if (e.getEquation().contains("...") || (int64_t)rhs.size() != rank ||
            terms.size() != e.getInputs().size())
          return opaque(v, d);
        for (auto [term, in] : llvm::zip(terms, e.getInputs())) {
          size_t k = term.trim().find(rhs[d]);
          if (k != StringRef::npos)
            return dim(in, k);
        }
        return opaque(v, d);
      })
      .Default([&](Operation *) { return opaque(v, d); });
}

std::optional<SmallVector<Aff>> Sym::ints(Value v) {
  auto it = intsMemo.find(v);
  if (it != intsMemo.end())
    return it->second;
  auto r = computeInts(v);
  intsMemo[v] = r;
  return r;
}

/// Element-wise over two value lists with scalar broadcasting.
std::optional<SmallVector<Aff>>
zipInts(const SmallVector<Aff> &a, const SmallVector<Aff> &b,
        function_ref<std::optional<Aff>(const Aff &, const Aff &)> f) {
  size_t n = std::max(a.size(), b.size());
  if ((a.size() != n && a.size() != 1) || (b.size() != n && b.size() != 1))
    return std::nullopt;
  SmallVector<Aff> out;
  for (size_t i = 0; i < n; ++i) {
    auto r = f(a[a.size() == 1 ? 0 : i], b[b.size() == 1 ? 0 : i]);
    if (!r)
      return std::nullopt;
    out.push_back(*r);
  }
  return out;
}

std::optional<SmallVector<Aff>> Sym::computeInts(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || type.getRank() > 1 || !isa<IntegerType>(type.getElementType()))
    return std::nullopt;
  DenseIntElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr))) {
    if (attr.getNumElements() > 64)
      return std::nullopt;
    SmallVector<Aff> out;
    bool isBool = attr.getElementType().isInteger(1);
    for (const APInt &x : attr.getValues<APInt>())
      out.push_back(Aff::cst(isBool ? x.getZExtValue() : x.getSExtValue()));
    return out;
  }
  Operation *op = v.getDefiningOp();
  if (!op)
    return std::nullopt;
  using R = std::optional<SmallVector<Aff>>;
  return llvm::TypeSwitch<Operation *, R>(op)
      .Case([&](ox::ShapeOp s) -> R {
        auto dt = dyn_cast<RankedTensorType>(s.getData().getType());
        if (!dt)
          return std::nullopt;
        int64_t rank = dt.getRank();
        int64_t b = std::clamp<int64_t>(normAxis(s.getStart().value_or(0), rank),
                                        0, rank);
        int64_t e = std::clamp<int64_t>(
            normAxis(s.getEnd().value_or(rank), rank), b, rank);
        SmallVector<Aff> out;
        for (int64_t i = b; i < e; ++i)
          out.push_back(dim(s.getData(), i));
        return out;
      })
      .Case([&](ox::GatherOp g) -> R {
        auto data = ints(g.getData());
        auto idx = ints(g.getIndices());
        if (!data || !idx || g.getAxis() != 0)
          return std::nullopt;
        SmallVector<Aff> out;
        for (const Aff &i : *idx) {
          if (!i.isConst())
            return std::nullopt;
          int64_t j = normAxis(i.c, data->size());
          if (j < 0 || j >= (int64_t)data->size())
            return std::nullopt;
          out.push_back((*data)[j]);
        }
        return out;
      })
      .Case<ox::UnsqueezeOp, ox::SqueezeOp, ox::ReshapeOp, ox::IdentityOp>(
          [&](Operation *o) { return ints(o->getOperand(0)); })
      .Case([&](ox::CastOp c) -> R {
        if (!isa<IntegerType>(getElementTypeOrSelf(c.getInput().getType())))
          return std::nullopt;
        return ints(c.getInput());
      })
      .Case([&](ox::ConcatOp c) -> R {
        SmallVector<Aff> out;
        for (Value in : c.getInputs()) {
          auto x = ints(in);
          if (!x)
            return std::nullopt;
          out.append(*x);
        }
        return out;
      })
      .Case([&](ox::SliceOp s) -> R {
        auto data = ints(s.getData());
        auto st = intConstant(s.getStarts()), en = intConstant(s.getEnds());
        if (!data || !st || !en || st->size() != 1 || en->size() != 1)
          return std::nullopt;
        if (s.getSteps()) {
          auto sp = intConstant(s.getSteps());
          if (!sp || sp->size() != 1 || (*sp)[0] != 1)
            return std::nullopt;
        }
        int64_t n = data->size();
        int64_t b = std::clamp<int64_t>(normAxis((*st)[0], n), 0, n);
        int64_t e = std::clamp<int64_t>(
            (*en)[0] >= kHugeEnd ? n : normAxis((*en)[0], n), 0, n);
        return e > b ? SmallVector<Aff>(data->begin() + b, data->begin() + e)
                     : SmallVector<Aff>();
      })
      .Case<ox::AddOp, ox::SubOp, ox::MulOp, ox::DivOp, ox::EqualOp>(
          [&](Operation *o) -> R {
            auto a = ints(o->getOperand(0)), b = ints(o->getOperand(1));
            if (!a || !b)
              return std::nullopt;
            return zipInts(*a, *b, [&](const Aff &x,
                                       const Aff &y) -> std::optional<Aff> {
              if (isa<ox::AddOp>(o))
                return x + y;
              if (isa<ox::SubOp>(o))
                return x - y;
              if (isa<ox::MulOp>(o)) {
                if (x.isConst())
                  return y.scaled(x.c);
                if (y.isConst())
                  return x.scaled(y.c);
                return std::nullopt;
              }
              if (isa<ox::DivOp>(o)) {
                if (!y.isConst())
                  return std::nullopt;
                if (x.isConst() && y.c != 0)
                  return Aff::cst(x.c / y.c); // ONNX truncates
                return x.divExact(y.c);
              }
              auto eq = affEqual(x, y);
              if (!eq)
                return std::nullopt;
              return Aff::cst(*eq);
            });
          })
      .Case([&](ox::WhereOp w) -> R {
        auto c = ints(w.getCondition()), x = ints(w.getX()), y = ints(w.getY());
        if (!c || !x || !y)
          return std::nullopt;
        size_t n = std::max({c->size(), x->size(), y->size()});
        SmallVector<Aff> out;
        for (size_t i = 0; i < n; ++i) {
          auto at = [&](const SmallVector<Aff> &l) -> std::optional<Aff> {
            if (l.size() != 1 && l.size() != n)
              return std::nullopt;
            return l[l.size() == 1 ? 0 : i];
          };
          auto ci = at(*c), xi = at(*x), yi = at(*y);
          if (!ci || !xi || !yi || !ci->isConst())
            return std::nullopt;
          out.push_back(ci->c ? *xi : *yi);
        }
        return out;
      })
      .Case([&](ox::ConstantOfShapeOp c) -> R {
        auto shape = ints(c.getInput());
        if (!shape || shape->size() > 1)
          return std::nullopt;
        int64_t n = shape->empty() ? 1 : ((*shape)[0].isConst() ? (*shape)[0].c : -1);
        if (n < 0 || n > 64)
          return std::nullopt;
        int64_t fill = 0;
        if (auto val = dyn_cast_or_null<DenseIntElementsAttr>(c.getValueAttr()))
          fill = (*val.getValues<APInt>().begin()).getSExtValue();
        return SmallVector<Aff>(n, Aff::cst(fill));
      })
      .Default([](Operation *) -> R { return std::nullopt; });
}

//===----------------------------------------------------------------------===//
// Head-split views
//===----------------------------------------------------------------------===//

/// The role of an axis of a 4-D attention tensor.
enum class Ax : uint8_t { B, S, N, D };
using Layout = SmallVector<Ax, 4>;
const Layout kBNSD = {Ax::B, Ax::N, Ax::S, Ax::D};
const Layout kBNDS = {Ax::B, Ax::N, Ax::D, Ax::S};

/// A 4-D tensor that is `flat` ([B, S, N*D]) split into heads by a Reshape
/// and then permuted by Transposes (`chain`, innermost first).
struct View {
  Value flat;
  int64_t heads = 0, headDim = 0;
  Layout layout;
  SmallVector<Operation *, 2> chain;
};

/// Matches `Transpose*(Reshape(x, [B, S, N, D]))` with x = [B, S, N*D].
/// Identity: a row-major Reshape [B, S, F] -> [B, S, N, D] with the first two
/// dims unchanged and N*D = F splits the feature axis into heads.
std::optional<View> matchView(Value v, Sym &sym) {
  v = skip(v);
  if (auto t = v.getDefiningOp<ox::TransposeOp>()) {
    if (!t.getPerm() || t.getPerm()->size() != 4)
      return std::nullopt;
    auto inner = matchView(t.getData(), sym);
    if (!inner)
      return std::nullopt;
    View out = *inner;
    for (int a = 0; a < 4; ++a)
      out.layout[a] = inner->layout[(*t.getPerm())[a]];
    out.chain.push_back(t);
    return out;
  }
  auto r = v.getDefiningOp<ox::ReshapeOp>();
  if (!r)
    return std::nullopt;
  Value x = r.getData();
  auto xt = rankedFloat(x);
  auto rt = rankedFloat(r.getReshaped());
  if (!xt || !rt || xt.getRank() != 3 || rt.getRank() != 4 ||
      xt.isDynamicDim(2))
    return std::nullopt;
  SmallVector<Aff> rd = sym.dims(r.getReshaped());
  if (!rd[2].isConst() || !rd[3].isConst() || rd[2].c <= 0 || rd[3].c <= 0 ||
      rd[2].c * rd[3].c != xt.getDimSize(2) || rd[0] != sym.dim(x, 0) ||
      rd[1] != sym.dim(x, 1))
    return std::nullopt;
  View out;
  out.flat = x;
  out.heads = rd[2].c;
  out.headDim = rd[3].c;
  out.layout = {Ax::B, Ax::S, Ax::N, Ax::D};
  out.chain.push_back(r);
  return out;
}

/// Re-creates `view`'s Reshape/Transpose chain on `flat` (same type as the
/// view's flat tensor), so the result has the view's type.
Value rebuildView(PatternRewriter &rewriter, const View &view, Value flat) {
  IRMapping map;
  map.map(view.flat, flat);
  Value cur = flat;
  for (Operation *op : view.chain) {
    Operation *clone = rewriter.clone(*op, map);
    map.map(op->getResult(0), clone->getResult(0));
    cur = clone->getResult(0);
  }
  return cur;
}

/// K or V as the scores/output MatMul sees it.
struct KVMatch {
  View view;
  Value past;
  Operation *concat = nullptr;
  int64_t nrep = 1;
};

/// Matches HF's repeat_kv: Reshape(Expand(Unsqueeze(x, 2), [B, kv, n, S, D]),
/// [B, kv*n, S, D]). Identity: head h of the result is head h / n of x.
std::optional<std::pair<Value, int64_t>> matchRepeatKV(Value v, Sym &sym) {
  auto r = skip(v).getDefiningOp<ox::ReshapeOp>();
  if (!r)
    return std::nullopt;
  auto e = skip(r.getData()).getDefiningOp<ox::ExpandOp>();
  if (!e)
    return std::nullopt;
  auto u = skip(e.getInput()).getDefiningOp<ox::UnsqueezeOp>();
  if (!u)
    return std::nullopt;
  auto axes = intConstant(u.getAxes());
  auto xt = dyn_cast<RankedTensorType>(u.getData().getType());
  if (!axes || axes->size() != 1 || normAxis((*axes)[0], 5) != 2 || !xt ||
      xt.getRank() != 4)
    return std::nullopt;
  Value x = u.getData();
  SmallVector<Aff> xd = sym.dims(x), ed = sym.dims(e.getOutput()),
                   rd = sym.dims(r.getReshaped());
  if (ed.size() != 5 || rd.size() != 4 || !ed[2].isConst() || ed[2].c < 1 ||
      ed[0] != xd[0] || ed[1] != xd[1] || ed[3] != xd[2] || ed[4] != xd[3])
    return std::nullopt;
  int64_t n = ed[2].c;
  if (rd[0] != xd[0] || rd[1] != xd[1].scaled(n) || rd[2] != xd[2] ||
      rd[3] != xd[3])
    return std::nullopt;
  return std::make_pair(x, n);
}

/// `v` is K (or V) with axes `want`: a view of the new keys, possibly after
/// Concat(past, new) on the sequence axis and repeat_kv, then Transposes.
std::optional<KVMatch> matchKV(Value v, const Layout &want, Sym &sym) {
  v = skip(v);
  if (auto view = matchView(v, sym); view && view->layout == want)
    return KVMatch{*view, Value(), nullptr, 1};
  if (auto t = v.getDefiningOp<ox::TransposeOp>()) {
    if (!t.getPerm() || t.getPerm()->size() != 4)
      return std::nullopt;
    Layout inner(4);
    for (int a = 0; a < 4; ++a)
      inner[(*t.getPerm())[a]] = want[a];
    return matchKV(t.getData(), inner, sym);
  }
  if (want != kBNSD)
    return std::nullopt;
  if (auto rep = matchRepeatKV(v, sym)) {
    auto inner = matchKV(rep->first, kBNSD, sym);
    if (!inner || inner->nrep != 1)
      return std::nullopt;
    inner->nrep = rep->second;
    return inner;
  }
  if (auto c = v.getDefiningOp<ox::ConcatOp>()) {
    if (c.getInputs().size() != 2 || normAxis(c.getAxis(), 4) != 2)
      return std::nullopt;
    auto inner = matchKV(c.getInputs()[1], kBNSD, sym);
    if (!inner || inner->concat || inner->nrep != 1)
      return std::nullopt;
    auto pt = rankedFloat(c.getInputs()[0]);
    if (!pt || pt.getRank() != 4)
      return std::nullopt;
    inner->past = c.getInputs()[0];
    inner->concat = c;
    return inner;
  }
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Mask interpretation
//===----------------------------------------------------------------------===//

/// A scalar formula over the indices of the tensor it describes.
struct Term {
  enum Kind : uint8_t {
    Int, Flt, Bool, Idx, Add, MulS, Cmp, And, Or, Not, Sel,
    AM,     // attention_mask[x, y] (an integer)
    ToBool, // x != 0
    ToFlt,
    FAdd, FSub, FMul
  };
  enum Pred : uint8_t { LE, LT, GE, GT, EQ, NE };
  Kind kind = Int;
  Pred pred = LE;
  Aff aff;
  double f = 0;
  bool b = false;
  unsigned idx = 0;
  const Term *x = nullptr, *y = nullptr, *z = nullptr;
};
using TP = const Term *;

/// Builds terms with constant folding.
class Terms {
public:
  TP i(Aff a) {
    Term t = mk(Term::Int);
    t.aff = std::move(a);
    return make(t);
  }
  TP ic(int64_t v) { return i(Aff::cst(v)); }
  TP flt(double v) {
    Term t = mk(Term::Flt);
    t.f = v;
    return make(t);
  }
  TP bl(bool v) {
    Term t = mk(Term::Bool);
    t.b = v;
    return make(t);
  }
  TP idx(unsigned k) {
    Term t = mk(Term::Idx);
    t.idx = k;
    return make(t);
  }
  TP add(TP a, TP b) {
    if (a->kind == Term::Int && b->kind == Term::Int)
      return i(a->aff + b->aff);
    if (a->kind == Term::Int && a->aff.isConst(0))
      return b;
    if (b->kind == Term::Int && b->aff.isConst(0))
      return a;
    return node(Term::Add, a, b);
  }
  TP mulS(TP a, const Aff &s) {
    if (s.isConst(0))
      return ic(0);
    if (s.isConst(1))
      return a;
    if (a->kind == Term::Int) {
      if (a->aff.isConst())
        return i(s.scaled(a->aff.c));
      if (s.isConst())
        return i(a->aff.scaled(s.c));
    }
    Term t = mk(Term::MulS);
    t.aff = s;
    t.x = a;
    return make(t);
  }
  TP cmp(Term::Pred p, TP a, TP b) {
    if (a->kind == Term::Int && b->kind == Term::Int) {
      Aff d = a->aff - b->aff;
      if (d.isConst()) {
        int64_t v = d.c;
        switch (p) {
        case Term::LE: return bl(v <= 0);
        case Term::LT: return bl(v < 0);
        case Term::GE: return bl(v >= 0);
        case Term::GT: return bl(v > 0);
        case Term::EQ: return bl(v == 0);
        case Term::NE: return bl(v != 0);
        }
      }
    }
    Term t = mk(Term::Cmp);
    t.pred = p;
    t.x = a;
    t.y = b;
    return make(t);
  }
  TP andT(TP a, TP b) {
    if (a->kind == Term::Bool)
      return a->b ? b : a;
    if (b->kind == Term::Bool)
      return b->b ? a : b;
    return node(Term::And, a, b);
  }
  TP orT(TP a, TP b) {
    if (a->kind == Term::Bool)
      return a->b ? a : b;
    if (b->kind == Term::Bool)
      return b->b ? b : a;
    return node(Term::Or, a, b);
  }
  TP notT(TP a) {
    if (a->kind == Term::Bool)
      return bl(!a->b);
    return node(Term::Not, a);
  }
  TP sel(TP c, TP a, TP b) {
    if (c->kind == Term::Bool)
      return c->b ? a : b;
    if (a == b)
      return a;
    return node(Term::Sel, c, a, b);
  }
  TP am(TP b, TP j) { return node(Term::AM, b, j); }
  TP toBool(TP a) {
    if (a->kind == Term::Bool || a->kind == Term::Cmp ||
        a->kind == Term::And || a->kind == Term::Or || a->kind == Term::Not ||
        a->kind == Term::ToBool)
      return a;
    if (a->kind == Term::Int && a->aff.isConst())
      return bl(a->aff.c != 0);
    if (a->kind == Term::Flt)
      return bl(a->f != 0);
    return node(Term::ToBool, a);
  }
  TP toFlt(TP a) {
    if (a->kind == Term::Int && a->aff.isConst())
      return flt(a->aff.c);
    if (a->kind == Term::Bool)
      return flt(a->b ? 1 : 0);
    if (a->kind == Term::Flt)
      return a;
    return node(Term::ToFlt, a);
  }
  TP fbin(Term::Kind k, TP a, TP b) {
    if (a->kind == Term::Flt && b->kind == Term::Flt) {
      double x = a->f, y = b->f;
      return flt(k == Term::FAdd ? x + y : k == Term::FSub ? x - y : x * y);
    }
    return node(k, a, b);
  }
  /// Replaces every Idx(k) by map[k].
  TP subst(TP t, ArrayRef<TP> map) {
    DenseMap<TP, TP> memo;
    return substRec(t, map, memo);
  }

private:
  TP make(Term t) {
    pool.push_back(std::move(t));
    return &pool.back();
  }
  static Term mk(Term::Kind k) {
    Term t;
    t.kind = k;
    return t;
  }
  TP node(Term::Kind k, TP a, TP b = nullptr, TP c = nullptr) {
    Term t = mk(k);
    t.x = a;
    t.y = b;
    t.z = c;
    return make(t);
  }
  TP substRec(TP t, ArrayRef<TP> map, DenseMap<TP, TP> &memo) {
    if (!t)
      return t;
    if (auto it = memo.find(t); it != memo.end())
      return it->second;
    TP r = t;
    switch (t->kind) {
    case Term::Int:
    case Term::Flt:
    case Term::Bool:
      break;
    case Term::Idx:
      r = t->idx < map.size() ? map[t->idx] : nullptr;
      break;
    default: {
      TP a = substRec(t->x, map, memo), b = substRec(t->y, map, memo),
         c = substRec(t->z, map, memo);
      if ((t->x && !a) || (t->y && !b) || (t->z && !c)) {
        r = nullptr;
        break;
      }
      switch (t->kind) {
      case Term::Add: r = add(a, b); break;
      case Term::MulS: r = mulS(a, t->aff); break;
      case Term::Cmp: r = cmp(t->pred, a, b); break;
      case Term::And: r = andT(a, b); break;
      case Term::Or: r = orT(a, b); break;
      case Term::Not: r = notT(a); break;
      case Term::Sel: r = sel(a, b, c); break;
      case Term::AM: r = am(a, b); break;
      case Term::ToBool: r = toBool(a); break;
      case Term::ToFlt: r = toFlt(a); break;
      default: r = fbin(t->kind, a, b); break;
      }
    }
    }
    memo[t] = r;
    return r;
  }
  std::deque<Term> pool;
};

/// A tensor as a formula: element [i0, ..., ir-1] = t(Idx(0)=i0, ...).
struct TVal {
  SmallVector<Aff> dims;
  TP t;
};

/// Evaluates the integer/bool/float subgraph a mask is built from. Only ops
/// whose element formula is exact are interpreted; anything else fails.
class MaskEval {
public:
  explicit MaskEval(Sym &sym) : sym(sym) {}
  std::optional<TVal> eval(Value v);
  /// `x` broadcast (right-aligned) into a tensor of dims `out`.
  std::optional<TP> align(const TVal &x, ArrayRef<Aff> out);
  /// Inclusive bounds of an integer index term within a tensor of dims.
  std::optional<std::pair<Aff, Aff>> bounds(TP t, ArrayRef<Aff> dims);
  Terms T;

private:
  std::optional<TVal> compute(Value v);
  std::optional<TVal> gatherFlat(ox::GatherOp g, ox::FlattenOp f);
  bool within(TP t, ArrayRef<Aff> dims, const Aff &size) {
    auto b = bounds(t, dims);
    return b && b->first.nonNeg() && (size - Aff::cst(1) - b->second).nonNeg();
  }
  Sym &sym;
  DenseMap<Value, std::optional<TVal>> memo;
};

std::optional<TP> MaskEval::align(const TVal &x, ArrayRef<Aff> out) {
  int64_t r = x.dims.size(), R = out.size();
  if (r > R)
    return std::nullopt;
  SmallVector<TP> map;
  for (int64_t k = 0; k < r; ++k) {
    if (x.dims[k].isConst(1))
      map.push_back(T.ic(0));
    else if (x.dims[k] == out[k + R - r])
      map.push_back(T.idx(k + R - r));
    else
      return std::nullopt;
  }
  TP t = T.subst(x.t, map);
  if (!t)
    return std::nullopt;
  return t;
}

std::optional<std::pair<Aff, Aff>> MaskEval::bounds(TP t, ArrayRef<Aff> dims) {
  switch (t->kind) {
  case Term::Int:
    return std::make_pair(t->aff, t->aff);
  case Term::Idx:
    if (t->idx >= dims.size())
      return std::nullopt;
    return std::make_pair(Aff::cst(0), dims[t->idx] - Aff::cst(1));
  case Term::Add: {
    auto a = bounds(t->x, dims), b = bounds(t->y, dims);
    if (!a || !b)
      return std::nullopt;
    return std::make_pair(a->first + b->first, a->second + b->second);
  }
  case Term::MulS: {
    auto a = bounds(t->x, dims);
    if (!a || !t->aff.isConst() || t->aff.c < 0)
      return std::nullopt;
    return std::make_pair(a->first.scaled(t->aff.c),
                          a->second.scaled(t->aff.c));
  }
  default:
    return std::nullopt;
  }
}

std::optional<TVal> MaskEval::eval(Value v) {
  auto it = memo.find(v);
  if (it != memo.end())
    return it->second;
  auto r = compute(v);
  memo[v] = r;
  return r;
}

/// Gather(Flatten(x [d0, d1], axis = 2), u + w * d1) = x[w, u] when
/// 0 <= u < d1 and 0 <= w < d0 (TorchScript's padding-mask lookup).
std::optional<TVal> MaskEval::gatherFlat(ox::GatherOp g, ox::FlattenOp f) {
  auto x = eval(f.getInput());
  auto idx = eval(g.getIndices());
  if (!x || !idx || x->dims.size() != 2 || f.getAxis() != 2 ||
      normAxis(g.getAxis(), 2) != 0)
    return std::nullopt;
  const Aff &d0 = x->dims[0], &d1 = x->dims[1];
  TP t = idx->t;
  if (t->kind != Term::Add)
    return std::nullopt;
  for (auto [u, m] : {std::pair(t->x, t->y), std::pair(t->y, t->x)}) {
    if (m->kind != Term::MulS || m->aff != d1)
      continue;
    TP w = m->x;
    if (!within(u, idx->dims, d1) || !within(w, idx->dims, d0))
      continue;
    TP e = T.subst(x->t, {w, u});
    if (!e)
      return std::nullopt;
    TVal out{sym.dims(g.getOutput()), e};
    // The trailing axis (Flatten's second dim, size 1) carries no index.
    if (out.dims.size() != idx->dims.size() + 1 ||
        !out.dims.back().isConst(1))
      return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::optional<TVal> MaskEval::compute(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return std::nullopt;
  Type elt = type.getElementType();
  bool isFloat = isa<FloatType>(elt);
  bool isBool = elt.isInteger(1);
  SmallVector<Aff> vd = sym.dims(v);

  if (isa<BlockArgument>(v)) {
    if (v != sym.attentionMask || type.getRank() != 2 ||
        !isa<IntegerType>(elt))
      return std::nullopt;
    return TVal{vd, T.am(T.idx(0), T.idx(1))};
  }
  // Splat constants.
  DenseElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr)) && attr.isSplat()) {
    if (isBool)
      return TVal{vd, T.bl(attr.getSplatValue<bool>())};
    if (isFloat)
      return TVal{vd, T.flt(attr.getSplatValue<APFloat>().convertToDouble())};
    if (isa<IntegerType>(elt))
      return TVal{vd, T.ic(attr.getSplatValue<APInt>().getSExtValue())};
    return std::nullopt;
  }
  // Small integer tensors holding one (possibly symbolic) value.
  if (!isFloat && !isBool && type.getRank() <= 1) {
    if (auto vals = sym.ints(v); vals && !vals->empty() &&
                                 llvm::all_equal(*vals))
      return TVal{vd, T.i((*vals)[0])};
  }
  Operation *op = v.getDefiningOp();
  if (!op)
    return std::nullopt;

  auto operands = [&]() -> std::optional<SmallVector<TVal>> {
    SmallVector<TVal> out;
    for (Value o : op->getOperands()) {
      auto x = eval(o);
      if (!x)
        return std::nullopt;
      out.push_back(*x);
    }
    return out;
  };
  // Element-wise ops: operands broadcast into the result's dims.
  auto elementwise = [&](function_ref<TP(ArrayRef<TP>)> f)
      -> std::optional<TVal> {
    auto xs = operands();
    if (!xs)
      return std::nullopt;
    SmallVector<TP> ts;
    for (const TVal &x : *xs) {
      auto t = align(x, vd);
      if (!t)
        return std::nullopt;
      ts.push_back(*t);
    }
    TP r = f(ts);
    if (!r)
      return std::nullopt;
    return TVal{vd, r};
  };
  auto operandIsFloat = [&](unsigned i) {
    return isa<FloatType>(getElementTypeOrSelf(op->getOperand(i).getType()));
  };

  using R = std::optional<TVal>;
  return llvm::TypeSwitch<Operation *, R>(op)
      .Case([&](ox::IdentityOp o) { return eval(o.getX()); })
      .Case([&](ox::CastOp c) -> R {
        auto x = eval(c.getInput());
        if (!x)
          return std::nullopt;
        Type from = getElementTypeOrSelf(c.getInput().getType());
        if (from == elt)
          return x;
        if (isBool)
          return TVal{x->dims, T.toBool(x->t)};
        if (isFloat && !isa<FloatType>(from))
          return TVal{x->dims, T.toFlt(x->t)};
        if (isa<IntegerType>(elt) && isa<IntegerType>(from) &&
            !from.isInteger(1))
          return x; // int widening/narrowing of small indices
        return std::nullopt;
      })
      .Case([&](ox::ConstantOfShapeOp c) -> R {
        auto val = c.getValueAttr();
        if (!val) // ONNX default: float 0
          return TVal{vd, T.flt(0)};
        auto dense = dyn_cast<DenseElementsAttr>(val);
        if (!dense || !dense.isSplat())
          return std::nullopt;
        if (isBool)
          return TVal{vd, T.bl(dense.getSplatValue<bool>())};
        if (isFloat)
          return TVal{vd,
                      T.flt(dense.getSplatValue<APFloat>().convertToDouble())};
        return TVal{vd, T.ic(dense.getSplatValue<APInt>().getSExtValue())};
      })
      .Case([&](ox::RangeOp r) -> R {
        auto s = sym.scalar(r.getStart()), d = sym.scalar(r.getDelta());
        if (!s || !d || !d->isConst(1) || vd.size() != 1)
          return std::nullopt;
        return TVal{vd, T.add(T.i(*s), T.idx(0))};
      })
      .Case([&](ox::UnsqueezeOp u) -> R {
        auto x = eval(u.getData());
        auto axes = intConstant(u.getAxes());
        if (!x || !axes)
          return std::nullopt;
        int64_t rank = vd.size();
        SmallVector<bool> inserted(rank, false);
        for (int64_t a : *axes)
          inserted[normAxis(a, rank)] = true;
        SmallVector<TP> map;
        for (int64_t i = 0; i < rank; ++i)
          if (!inserted[i])
            map.push_back(T.idx(i));
        if (map.size() != x->dims.size())
          return std::nullopt;
        TP t = T.subst(x->t, map);
        return t ? R(TVal{vd, t}) : std::nullopt;
      })
      .Case([&](ox::SqueezeOp s) -> R {
        auto x = eval(s.getData());
        if (!x)
          return std::nullopt;
        int64_t r = x->dims.size();
        SmallVector<bool> dropped(r, false);
        if (s.getAxes()) {
          auto axes = intConstant(s.getAxes());
          if (!axes)
            return std::nullopt;
          for (int64_t a : *axes)
            dropped[normAxis(a, r)] = true;
        } else {
          for (int64_t k = 0; k < r; ++k)
            dropped[k] = x->dims[k].isConst(1);
        }
        SmallVector<TP> map;
        int64_t next = 0;
        for (int64_t k = 0; k < r; ++k) {
          if (dropped[k] && !x->dims[k].isConst(1))
            return std::nullopt;
          map.push_back(dropped[k] ? T.ic(0) : T.idx(next++));
        }
        if (next != (int64_t)vd.size())
          return std::nullopt;
        TP t = T.subst(x->t, map);
        return t ? R(TVal{vd, t}) : std::nullopt;
      })
      .Case([&](ox::ReshapeOp r) -> R {
        // Reshapes compose; compare the source's non-unit dims with the
        // result's: equal lists in order make the reshape a pure
        // insertion/removal of unit axes.
        Value src = r.getData();
        while (auto inner = skip(src).getDefiningOp<ox::ReshapeOp>())
          src = inner.getData();
        auto x = eval(src);
        if (!x)
          return std::nullopt;
        SmallVector<int64_t> outAxes;
        for (auto [i, d] : llvm::enumerate(vd))
          if (!d.isConst(1))
            outAxes.push_back(i);
        SmallVector<TP> map;
        size_t next = 0;
        for (const Aff &d : x->dims) {
          if (d.isConst(1)) {
            map.push_back(T.ic(0));
            continue;
          }
          if (next >= outAxes.size() || vd[outAxes[next]] != d)
            return std::nullopt;
          map.push_back(T.idx(outAxes[next++]));
        }
        if (next != outAxes.size())
          return std::nullopt;
        TP t = T.subst(x->t, map);
        return t ? R(TVal{vd, t}) : std::nullopt;
      })
      .Case([&](ox::ExpandOp e) -> R {
        auto x = eval(e.getInput());
        if (!x)
          return std::nullopt;
        auto t = align(*x, vd);
        return t ? R(TVal{vd, *t}) : std::nullopt;
      })
      .Case([&](ox::TransposeOp tr) -> R {
        auto x = eval(tr.getData());
        if (!x)
          return std::nullopt;
        int64_t rank = vd.size();
        SmallVector<int64_t> perm;
        if (tr.getPerm())
          perm.assign(tr.getPerm()->begin(), tr.getPerm()->end());
        else
          for (int64_t i = rank - 1; i >= 0; --i)
            perm.push_back(i);
        SmallVector<TP> map(rank);
        for (int64_t a = 0; a < rank; ++a)
          map[perm[a]] = T.idx(a);
        TP t = T.subst(x->t, map);
        return t ? R(TVal{vd, t}) : std::nullopt;
      })
      .Case([&](ox::SliceOp s) -> R {
        // Only slices that keep every axis whole.
        auto x = eval(s.getData());
        if (!x || x->dims != vd)
          return std::nullopt;
        auto st = sym.ints(s.getStarts());
        if (!st || llvm::any_of(*st, [](const Aff &a) { return !a.isConst(0); }))
          return std::nullopt;
        if (s.getSteps()) {
          auto sp = sym.ints(s.getSteps());
          if (!sp ||
              llvm::any_of(*sp, [](const Aff &a) { return !a.isConst(1); }))
            return std::nullopt;
        }
        return x;
      })
      .Case([&](ox::TriluOp tr) -> R {
        auto x = eval(tr.getInput());
        int64_t rank = vd.size();
        if (!x || rank < 2)
          return std::nullopt;
        Aff k = Aff::cst(0);
        if (tr.getK()) {
          auto kv = sym.scalar(tr.getK());
          if (!kv)
            return std::nullopt;
          k = *kv;
        }
        // Kept where col - row <= k (lower) or col - row >= k (upper).
        TP diff = T.add(T.idx(rank - 1), T.mulS(T.idx(rank - 2), Aff::cst(-1)));
        TP keep = T.cmp(tr.getUpper() ? Term::GE : Term::LE, diff, T.i(k));
        if (isBool)
          return TVal{vd, T.andT(keep, x->t)};
        return TVal{vd, T.sel(keep, x->t, isFloat ? T.flt(0) : T.ic(0))};
      })
      .Case([&](ox::GatherOp g) -> R {
        if (auto f = skip(g.getData()).getDefiningOp<ox::FlattenOp>())
          return gatherFlat(g, f);
        auto x = eval(g.getData());
        auto idx = eval(g.getIndices());
        if (!x || !idx)
          return std::nullopt;
        int64_t a = normAxis(g.getAxis(), x->dims.size());
        if (a < 0 || a >= (int64_t)x->dims.size() ||
            !within(idx->t, idx->dims, x->dims[a]))
          return std::nullopt;
        int64_t q = idx->dims.size();
        SmallVector<TP> idxMap;
        for (int64_t k = 0; k < q; ++k)
          idxMap.push_back(T.idx(a + k));
        TP it = T.subst(idx->t, idxMap);
        SmallVector<TP> map;
        for (int64_t k = 0; k < (int64_t)x->dims.size(); ++k)
          map.push_back(k < a ? T.idx(k) : k == a ? it : T.idx(k + q - 1));
        TP t = it ? T.subst(x->t, map) : nullptr;
        return t ? R(TVal{vd, t}) : std::nullopt;
      })
      .Case([&](ox::GatherNDOp g) -> R {
        auto x = eval(g.getData());
        auto idx = eval(g.getIndices());
        if (!x || !idx || g.getBatchDims() != 0 || idx->dims.empty() ||
            !idx->dims.back().isConst())
          return std::nullopt;
        int64_t q = idx->dims.size(), m = idx->dims.back().c;
        if (m < 1 || m > (int64_t)x->dims.size())
          return std::nullopt;
        SmallVector<TP> map;
        SmallVector<Aff> idxDims(idx->dims.begin(), idx->dims.end() - 1);
        for (int64_t c = 0; c < m; ++c) {
          SmallVector<TP> pick;
          for (int64_t k = 0; k < q - 1; ++k)
            pick.push_back(T.idx(k));
          pick.push_back(T.ic(c));
          TP comp = T.subst(idx->t, pick);
          if (!comp || !within(comp, idxDims, x->dims[c]))
            return std::nullopt;
          map.push_back(comp);
        }
        for (int64_t k = m; k < (int64_t)x->dims.size(); ++k)
          map.push_back(T.idx(q - 1 + k - m));
        TP t = T.subst(x->t, map);
        return t ? R(TVal{vd, t}) : std::nullopt;
      })
      .Case([&](ox::ConcatOp c) -> R {
        int64_t rank = vd.size();
        int64_t a = normAxis(c.getAxis(), rank);
        TP acc = nullptr;
        Aff off = Aff::cst(0);
        SmallVector<std::pair<Aff, TP>> pieces;
        for (Value in : c.getInputs()) {
          auto x = eval(in);
          if (!x || (int64_t)x->dims.size() != rank)
            return std::nullopt;
          SmallVector<TP> map;
          for (int64_t k = 0; k < rank; ++k) {
            if (k == a)
              map.push_back(T.add(T.idx(a), T.i(off.scaled(-1))));
            else if (x->dims[k].isConst(1) && !vd[k].isConst(1))
              map.push_back(T.ic(0));
            else if (x->dims[k] == vd[k])
              map.push_back(T.idx(k));
            else
              return std::nullopt;
          }
          TP t = T.subst(x->t, map);
          if (!t)
            return std::nullopt;
          off = off + x->dims[a];
          pieces.push_back({off, t});
        }
        for (auto it = pieces.rbegin(); it != pieces.rend(); ++it)
          acc = acc ? T.sel(T.cmp(Term::LT, T.idx(a), T.i(it->first)),
                            it->second, acc)
                    : it->second;
        return acc ? R(TVal{vd, acc}) : std::nullopt;
      })
      .Case([&](ox::AddOp) {
        return elementwise([&](ArrayRef<TP> t) {
          return isFloat ? T.fbin(Term::FAdd, t[0], t[1]) : T.add(t[0], t[1]);
        });
      })
      .Case([&](ox::SubOp) {
        return elementwise([&](ArrayRef<TP> t) {
          return isFloat ? T.fbin(Term::FSub, t[0], t[1])
                         : T.add(t[0], T.mulS(t[1], Aff::cst(-1)));
        });
      })
      .Case([&](ox::MulOp) {
        return elementwise([&](ArrayRef<TP> t) -> TP {
          if (isFloat)
            return T.fbin(Term::FMul, t[0], t[1]);
          if (t[1]->kind == Term::Int)
            return T.mulS(t[0], t[1]->aff);
          if (t[0]->kind == Term::Int)
            return T.mulS(t[1], t[0]->aff);
          return nullptr;
        });
      })
      .Case<ox::LessOrEqualOp, ox::LessOp, ox::GreaterOp, ox::GreaterOrEqualOp,
            ox::EqualOp>([&](Operation *o) -> R {
        if (operandIsFloat(0))
          return std::nullopt;
        Term::Pred p = isa<ox::LessOrEqualOp>(o) ? Term::LE
                       : isa<ox::LessOp>(o)      ? Term::LT
                       : isa<ox::GreaterOp>(o)   ? Term::GT
                       : isa<ox::GreaterOrEqualOp>(o) ? Term::GE
                                                      : Term::EQ;
        return elementwise(
            [&](ArrayRef<TP> t) { return T.cmp(p, t[0], t[1]); });
      })
      .Case([&](ox::AndOp) {
        return elementwise([&](ArrayRef<TP> t) {
          return T.andT(T.toBool(t[0]), T.toBool(t[1]));
        });
      })
      .Case([&](ox::OrOp) {
        return elementwise([&](ArrayRef<TP> t) {
          return T.orT(T.toBool(t[0]), T.toBool(t[1]));
        });
      })
      .Case([&](ox::NotOp) {
        return elementwise(
            [&](ArrayRef<TP> t) { return T.notT(T.toBool(t[0])); });
      })
      .Case([&](ox::WhereOp) {
        return elementwise([&](ArrayRef<TP> t) {
          return T.sel(T.toBool(t[0]), t[1], t[2]);
        });
      })
      .Default([](Operation *) -> R { return std::nullopt; });
}

/// Σ k[i] * Idx(i) + c.
struct Lin {
  std::map<unsigned, Aff> k;
  Aff c;
  bool operator==(const Lin &o) const { return k == o.k && c == o.c; }
};

std::optional<Lin> linear(TP t) {
  switch (t->kind) {
  case Term::Int:
    return Lin{{}, t->aff};
  case Term::Idx:
    return Lin{{{t->idx, Aff::cst(1)}}, Aff::cst(0)};
  case Term::Add: {
    auto a = linear(t->x), b = linear(t->y);
    if (!a || !b)
      return std::nullopt;
    for (auto &[i, k] : b->k) {
      Aff s = a->k[i] + k;
      if (s.isConst(0))
        a->k.erase(i);
      else
        a->k[i] = s;
    }
    a->c = a->c + b->c;
    return a;
  }
  case Term::MulS: {
    auto a = linear(t->x);
    if (!a)
      return std::nullopt;
    auto scale = [&](const Aff &x) -> std::optional<Aff> {
      if (t->aff.isConst())
        return x.scaled(t->aff.c);
      if (x.isConst())
        return t->aff.scaled(x.c);
      return std::nullopt;
    };
    Lin out;
    for (auto &[i, k] : a->k) {
      auto s = scale(k);
      if (!s)
        return std::nullopt;
      if (!s->isConst(0))
        out.k[i] = *s;
    }
    auto c = scale(a->c);
    if (!c)
      return std::nullopt;
    out.c = *c;
    return out;
  }
  default:
    return std::nullopt;
  }
}

Lin operator-(Lin a, const Lin &b) {
  for (auto &[i, k] : b.k) {
    Aff s = a.k[i] - k;
    if (s.isConst(0))
      a.k.erase(i);
    else
      a.k[i] = s;
  }
  a.c = a.c - b.c;
  return a;
}

/// One conjunct of "this score is kept": `lin <= 0` or `attention_mask[b, j]
/// != 0`.
struct Atom {
  bool pad = false;
  Lin lin, b, j;
  static Atom causal(Lin l) {
    Atom a;
    a.lin = std::move(l);
    return a;
  }
  static Atom padding(Lin b, Lin j) {
    Atom a;
    a.pad = true;
    a.b = std::move(b);
    a.j = std::move(j);
    return a;
  }
};
using Atoms = SmallVector<Atom, 2>;

/// A boolean keep-condition as a conjunction of atoms.
bool boolAtoms(TP t, SmallVectorImpl<Atom> &out) {
  switch (t->kind) {
  case Term::Bool:
    return t->b;
  case Term::And:
    return boolAtoms(t->x, out) && boolAtoms(t->y, out);
  case Term::Sel: // Where(c, a, false) == c && a
    return t->z->kind == Term::Bool && !t->z->b && boolAtoms(t->x, out) &&
           boolAtoms(t->y, out);
  case Term::ToBool:
    if (t->x->kind != Term::AM)
      return false;
    [[fallthrough]];
  case Term::AM: {
    TP am = t->kind == Term::AM ? t : t->x;
    auto b = linear(am->x), j = linear(am->y);
    if (!b || !j)
      return false;
    out.push_back(Atom::padding(*b, *j));
    return true;
  }
  case Term::Cmp: {
    // mask == 1 / mask != 0 with 0/1 masks.
    for (auto [a, c] : {std::pair(t->x, t->y), std::pair(t->y, t->x)}) {
      if (a->kind != Term::AM || c->kind != Term::Int)
        continue;
      if ((t->pred == Term::EQ && c->aff.isConst(1)) ||
          (t->pred == Term::NE && c->aff.isConst(0)))
        return boolAtoms(a, out);
      return false;
    }
    auto a = linear(t->x), b = linear(t->y);
    if (!a || !b)
      return false;
    Lin d = *a - *b;
    Lin neg = Lin{} - d;
    switch (t->pred) {
    case Term::LE:
      out.push_back(Atom::causal(d));
      return true;
    case Term::LT:
      d.c = d.c + Aff::cst(1);
      out.push_back(Atom::causal(d));
      return true;
    case Term::GE:
      out.push_back(Atom::causal(neg));
      return true;
    case Term::GT:
      neg.c = neg.c + Aff::cst(1);
      out.push_back(Atom::causal(neg));
      return true;
    default: return false;
    }
  }
  default:
    return false;
  }
}

bool isMaskedValue(TP t) {
  return t->kind == Term::Flt && t->f <= kMaskedBelow;
}

/// An additive float mask: 0 where kept, <= kMaskedBelow (or -inf) where
/// not, as a conjunction of atoms.
bool additiveAtoms(TP t, SmallVectorImpl<Atom> &out) {
  switch (t->kind) {
  case Term::Flt:
    return t->f == 0;
  case Term::FAdd: // both zero, or one masked (the sum stays masked)
    return additiveAtoms(t->x, out) && additiveAtoms(t->y, out);
  case Term::Sel:
    return t->y->kind == Term::Flt && t->y->f == 0 && isMaskedValue(t->z) &&
           boolAtoms(t->x, out);
  case Term::FMul: {
    // (1 - float(mask)) * -big: 0 where mask == 1, -big where mask == 0.
    for (auto [a, c] : {std::pair(t->x, t->y), std::pair(t->y, t->x)}) {
      if (!isMaskedValue(c) || a->kind != Term::FSub ||
          a->x->kind != Term::Flt || a->x->f != 1 ||
          a->y->kind != Term::ToFlt || a->y->x->kind != Term::AM)
        continue;
      return boolAtoms(a->y->x, out);
    }
    return false;
  }
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// RoPE tables
//===----------------------------------------------------------------------===//

/// What an axis of a cos/sin table is indexed by.
enum class Role : uint8_t { Bcast, Batch, Seq, Dim };

struct Freqs {
  SmallVector<Role> roles; // of the freqs tensor's axes
  Value pos;               // integer positions
  SmallVector<Role> posRoles;
  SmallVector<double> inv; // inverse frequencies
};

struct Table {
  Value angles; // Concat(freqs, freqs)
  bool isSin = false;
  SmallVector<Role> roles;
  Freqs freqs;
};

/// Float values of a constant or a store weight (f32 only).
std::optional<std::vector<double>> readFloats(Value v,
                                              SmallVectorImpl<int64_t> &shape) {
  v = skip(v);
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || !type.hasStaticShape())
    return std::nullopt;
  shape.assign(type.getShape().begin(), type.getShape().end());
  DenseFPElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr))) {
    std::vector<double> out;
    out.reserve(attr.getNumElements());
    for (const APFloat &x : attr.getValues<APFloat>())
      out.push_back(x.convertToDouble());
    return out;
  }
  auto w = v.getDefiningOp<qwen::WeightOp>();
  if (!w || !type.getElementType().isF32())
    return std::nullopt;
  auto store = dyn_cast_or_null<qwen::StoreOp>(
      SymbolTable::lookupNearestSymbolFrom(w, w.getRef().getRootReference()));
  if (!store)
    return std::nullopt;
  std::string error;
  auto reader = qwen::ws::WeightStoreReader::open(store.getPath().str(), error);
  if (!reader)
    return std::nullopt;
  const qwen::ws::Entry *e = reader->find(w.getEntryName().str());
  if (!e || e->dtype != qwen::ws::DType::F32 ||
      e->shape != std::vector<int64_t>(shape.begin(), shape.end()))
    return std::nullopt;
  const float *data = static_cast<const float *>(reader->data(*e));
  return std::vector<double>(data, data + e->numElements());
}

/// The inverse frequencies of `v`, a constant (possibly Expand-ed) whose
/// only non-unit axis is `axis` (of `rank`, right-aligned).
std::optional<SmallVector<double>> readInvFreq(Value v, int64_t axis,
                                               int64_t rank) {
  v = skip(v);
  while (auto e = v.getDefiningOp<ox::ExpandOp>()) // values per index kept
    v = skip(e.getInput());
  SmallVector<int64_t> shape;
  auto vals = readFloats(v, shape);
  if (!vals)
    return std::nullopt;
  int64_t r = shape.size();
  for (int64_t k = 0; k < r; ++k)
    if (k + rank - r != axis && shape[k] != 1)
      return std::nullopt;
  return SmallVector<double>(vals->begin(), vals->end());
}

/// Peels Cast(int -> float) and Unsqueeze from the positions side of the
/// freqs product. `map[a]` is the pos axis behind axis a, or -1.
std::optional<std::pair<Value, SmallVector<int64_t>>> peelPositions(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  if (!t)
    return std::nullopt;
  SmallVector<int64_t> map;
  for (int64_t a = 0; a < t.getRank(); ++a)
    map.push_back(a);
  while (true) {
    v = skip(v);
    if (auto c = v.getDefiningOp<ox::CastOp>()) {
      if (!isa<IntegerType>(getElementTypeOrSelf(c.getInput().getType())))
        return std::nullopt;
      v = c.getInput();
      continue;
    }
    if (auto u = v.getDefiningOp<ox::UnsqueezeOp>()) {
      auto axes = intConstant(u.getAxes());
      int64_t rank = cast<RankedTensorType>(u.getType()).getRank();
      if (!axes)
        return std::nullopt;
      SmallVector<int64_t> renum(rank, -1);
      SmallVector<bool> inserted(rank, false);
      for (int64_t a : *axes)
        inserted[normAxis(a, rank)] = true;
      for (int64_t i = 0, k = 0; i < rank; ++i)
        if (!inserted[i])
          renum[i] = k++;
      for (int64_t &m : map)
        m = m < 0 ? -1 : renum[m];
      v = u.getData();
      continue;
    }
    break;
  }
  auto pt = dyn_cast<RankedTensorType>(v.getType());
  if (!pt || !isa<IntegerType>(pt.getElementType()) || pt.getRank() > 2)
    return std::nullopt;
  return std::make_pair(v, map);
}

/// freqs[..., i] = inv[i] * pos[...] as MatMul(inv [.., h, 1], pos [.., 1, S])
/// (possibly transposed) or Einsum("i,j->ij") of 1-D operands.
std::optional<Freqs> analyzeFreqs(Value v, Sym &sym) {
  v = skip(v);
  if (auto t = v.getDefiningOp<ox::TransposeOp>()) {
    auto inner = analyzeFreqs(t.getData(), sym);
    if (!inner || !t.getPerm() || t.getPerm()->size() != inner->roles.size())
      return std::nullopt;
    Freqs out = *inner;
    for (auto [a, p] : llvm::enumerate(*t.getPerm()))
      out.roles[a] = inner->roles[p];
    return out;
  }
  auto finishPos = [&](Freqs &f, Value posSide, int64_t seqAxis,
                       int64_t kAxis) -> bool {
    auto peeled = peelPositions(posSide);
    if (!peeled)
      return false;
    auto [pos, map] = *peeled;
    int64_t pr = cast<RankedTensorType>(pos.getType()).getRank();
    f.pos = pos;
    f.posRoles.assign(pr, Role::Bcast);
    int64_t rank = map.size();
    if (kAxis >= 0 && map[kAxis] >= 0)
      return false;
    if (map[seqAxis] < 0)
      return false;
    f.posRoles[map[seqAxis]] = Role::Seq;
    int64_t used = 1;
    for (int64_t a = 0; a < rank; ++a) {
      if (a == seqAxis || a == kAxis || map[a] < 0)
        continue;
      f.posRoles[map[a]] = Role::Batch;
      f.roles[a + (int64_t)f.roles.size() - rank] = Role::Batch;
      ++used;
    }
    return used == pr;
  };
  if (auto m = v.getDefiningOp<ox::MatMulOp>()) {
    auto at = dyn_cast<RankedTensorType>(m.getA().getType());
    auto bt = dyn_cast<RankedTensorType>(m.getB().getType());
    auto rt = dyn_cast<RankedTensorType>(m.getY().getType());
    if (!at || !bt || !rt || at.getRank() < 2 || bt.getRank() < 2)
      return std::nullopt;
    int64_t R = rt.getRank();
    // inv [.., h, 1] x pos [.., 1, S]  or  pos [.., S, 1] x inv [.., 1, h].
    for (bool invFirst : {true, false}) {
      Value invSide = invFirst ? m.getA() : m.getB();
      Value posSide = invFirst ? m.getB() : m.getA();
      if (sym.dim(m.getA(), at.getRank() - 1) != Aff::cst(1) ||
          sym.dim(m.getB(), bt.getRank() - 2) != Aff::cst(1))
        return std::nullopt;
      auto inv = readInvFreq(invSide, invFirst ? R - 2 : R - 1, R);
      if (!inv)
        continue;
      Freqs f;
      f.inv = *inv;
      f.roles.assign(R, Role::Bcast);
      f.roles[invFirst ? R - 2 : R - 1] = Role::Dim;
      f.roles[invFirst ? R - 1 : R - 2] = Role::Seq;
      auto pt = cast<RankedTensorType>(posSide.getType());
      int64_t pr = pt.getRank();
      if (!finishPos(f, posSide, invFirst ? pr - 1 : pr - 2,
                     invFirst ? pr - 2 : pr - 1))
        return std::nullopt;
      return f;
    }
    return std::nullopt;
  }
  if (auto e = v.getDefiningOp<ox::EinsumOp>()) {
    // "i,j->ij" / "i,j->ji" outer products of two vectors.
    auto [lhs, rhs] = e.getEquation().split("->");
    SmallVector<StringRef> terms;
    lhs.split(terms, ',');
    rhs = rhs.trim();
    if (e.getInputs().size() != 2 || terms.size() != 2 || rhs.size() != 2)
      return std::nullopt;
    StringRef a = terms[0].trim(), b = terms[1].trim();
    if (a.size() != 1 || b.size() != 1 || a == b ||
        !((rhs[0] == a[0] && rhs[1] == b[0]) ||
          (rhs[0] == b[0] && rhs[1] == a[0])))
      return std::nullopt;
    for (int invOperand : {0, 1}) {
      auto inv = readInvFreq(e.getInputs()[invOperand], 0, 1);
      if (!inv)
        continue;
      char invLetter = invOperand ? b[0] : a[0];
      Freqs f;
      f.inv = *inv;
      f.roles = {rhs[0] == invLetter ? Role::Dim : Role::Seq,
                 rhs[1] == invLetter ? Role::Dim : Role::Seq};
      if (!finishPos(f, e.getInputs()[1 - invOperand], 0, -1))
        return std::nullopt;
      return f;
    }
  }
  return std::nullopt;
}

/// cos/sin(Concat(freqs, freqs)) (times attention scaling 1.0), unsqueezed.
std::optional<Table> analyzeTable(Value v, Sym &sym) {
  SmallVector<ox::UnsqueezeOp> unsq;
  v = skip(v);
  while (true) {
    if (auto u = v.getDefiningOp<ox::UnsqueezeOp>()) {
      unsq.push_back(u);
      v = skip(u.getData());
      continue;
    }
    if (auto m = v.getDefiningOp<ox::MulOp>()) {
      auto s = unitScalar(m.getB());
      Value other = m.getA();
      if (!s) {
        s = unitScalar(m.getA());
        other = m.getB();
      }
      if (!s || *s != 1.0)
        return std::nullopt;
      v = skip(other);
      continue;
    }
    break;
  }
  Table out;
  Value angles;
  if (auto c = v.getDefiningOp<ox::CosOp>())
    angles = c.getX();
  else if (auto s = v.getDefiningOp<ox::SinOp>()) {
    angles = s.getX();
    out.isSin = true;
  } else {
    return std::nullopt;
  }
  angles = skip(angles);
  auto cat = angles.getDefiningOp<ox::ConcatOp>();
  if (!cat || cat.getInputs().size() != 2 ||
      skip(cat.getInputs()[0]) != skip(cat.getInputs()[1]))
    return std::nullopt;
  int64_t rank = cast<RankedTensorType>(cat.getType()).getRank();
  if (normAxis(cat.getAxis(), rank) != rank - 1)
    return std::nullopt;
  auto fr = analyzeFreqs(cat.getInputs()[0], sym);
  if (!fr || (int64_t)fr->roles.size() != rank || fr->roles.back() != Role::Dim)
    return std::nullopt;
  out.angles = angles;
  out.freqs = *fr;
  out.roles = fr->roles;
  for (auto it = unsq.rbegin(); it != unsq.rend(); ++it) {
    auto axes = intConstant(it->getAxes());
    int64_t r = cast<RankedTensorType>(it->getType()).getRank();
    if (!axes)
      return std::nullopt;
    SmallVector<bool> inserted(r, false);
    for (int64_t a : *axes)
      inserted[normAxis(a, r)] = true;
    SmallVector<Role> next;
    for (int64_t i = 0, k = 0; i < r; ++i)
      next.push_back(inserted[i] ? Role::Bcast : out.roles[k++]);
    out.roles = next;
  }
  return out;
}

/// theta from inverse frequencies inv[i] = theta^(-2i/rot); every entry must
/// agree to 1e-5 relative.
std::optional<double> thetaFromInvFreq(ArrayRef<double> inv) {
  int64_t h = inv.size(), rot = 2 * h;
  if (h < 2 || std::abs(inv[0] - 1.0) > 1e-5)
    return std::nullopt;
  double est = std::pow(inv[h - 1], -double(rot) / (2.0 * (h - 1)));
  if (!std::isfinite(est) || est <= 1.0)
    return std::nullopt;
  double r = std::round(est);
  double theta = std::abs(r - est) <= 1e-6 * est ? r : est;
  for (int64_t i = 0; i < h; ++i) {
    double model = std::pow(theta, -2.0 * i / rot);
    if (std::abs(model - inv[i]) > 1e-5 * model)
      return std::nullopt;
  }
  return theta;
}

/// theta (and the rotary half width) from cos/sin caches [max_pos, h] with
/// cache[p][i] = cos/sin(p * theta^(-2i/(2h))).
std::optional<std::pair<double, int64_t>> thetaFromCaches(Value cosV,
                                                          Value sinV) {
  SmallVector<int64_t> cs, ss;
  auto c = readFloats(cosV, cs);
  auto s = readFloats(sinV, ss);
  if (!c || !s || cs.size() != 2 || cs != ss || cs[0] < 2 || cs[1] < 1)
    return std::nullopt;
  int64_t n = cs[0], h = cs[1];
  SmallVector<double> inv;
  for (int64_t i = 0; i < h; ++i)
    inv.push_back(std::atan2((*s)[h + i], (*c)[h + i]));
  auto theta = thetaFromInvFreq(inv);
  if (!theta)
    return std::nullopt;
  for (int64_t p = 0; p < n; ++p)
    for (int64_t i = 0; i < h; ++i) {
      double angle = p * std::pow(*theta, -2.0 * i / (2 * h));
      double tol = 1e-5 + 1e-6 * angle;
      if (std::abs((*c)[p * h + i] - std::cos(angle)) > tol ||
          std::abs((*s)[p * h + i] - std::sin(angle)) > tol)
        return std::nullopt;
    }
  return std::make_pair(*theta, h);
}

//===----------------------------------------------------------------------===//
// Builders
//===----------------------------------------------------------------------===//

RankedTensorType tensorOf(ArrayRef<int64_t> shape, Type elt) {
  return RankedTensorType::get(shape, elt);
}

/// An op equivalent to `created` (same name, operands, attributes, types)
/// in its block, else `created`: what we build for q is then shared by k and
/// by later layers. An equivalent op found later in the block is moved up
/// (its operands are `created`'s, so they dominate).
Value reuse(PatternRewriter &b, Operation *created) {
  Operation *found = nullptr;
  auto same = [&](Operation *op) {
    return op != created && op->getBlock() == created->getBlock() &&
           OperationEquivalence::isEquivalentTo(
               op, created, OperationEquivalence::IgnoreLocations);
  };
  if (created->getNumOperands()) {
    for (Operation *user : created->getOperand(0).getUsers())
      if (same(user)) {
        found = user;
        break;
      }
  } else {
    for (Operation &op : *created->getBlock())
      if (same(&op)) {
        found = &op;
        break;
      }
  }
  if (!found)
    return created->getResult(0);
  if (created->isBeforeInBlock(found))
    b.moveOpBefore(found, created);
  b.eraseOp(created);
  return found->getResult(0);
}

template <typename OpT, typename... Args>
Value make(PatternRewriter &b, Location loc, Args &&...args) {
  return reuse(b, OpT::create(b, loc, std::forward<Args>(args)...));
}

Value i64Const(PatternRewriter &b, Location loc, ArrayRef<int64_t> vals,
               bool scalar = false) {
  auto type = tensorOf(scalar ? ArrayRef<int64_t>{}
                              : ArrayRef<int64_t>{(int64_t)vals.size()},
                       b.getI64Type());
  return make<ox::ConstantOp>(b, loc, type,
                              DenseIntElementsAttr::get(type, vals));
}

IntegerAttr si64(PatternRewriter &b, int64_t v) {
  return b.getIntegerAttr(b.getIntegerType(64, /*isSigned=*/true), v);
}

/// Static dims of `v`'s first two axes (or dynamic).
std::pair<int64_t, int64_t> leadingDims(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  return {t.getDimSize(0), t.getDimSize(1)};
}

/// The earliest value with `v`'s two leading dims: back through the ops
/// that keep them (norms, linears, residual adds) to the token ids.
Value leadingRoot(Value v) {
  while (Operation *op = v.getDefiningOp()) {
    if (isa<qwen::RMSNormOp, qwen::LinearOp, qwen::AddOp, qwen::SiluMulOp,
            qwen::RoPEOp, ox::MSMatMulNBitsOp>(op))
      v = op->getOperand(0);
    else if (auto e = dyn_cast<qwen::EmbeddingOp>(op))
      v = e.getIds();
    else if (auto g = dyn_cast<ox::MSGatherBlockQuantizedOp>(op))
      v = g.getIndices();
    else if (auto m = dyn_cast<ox::MatMulOp>(op);
             m && cast<RankedTensorType>(m.getB().getType()).getRank() == 2 &&
             cast<RankedTensorType>(m.getA().getType()).getRank() >= 3)
      v = m.getA(); // x [.., K] x W [K, N]
    else if (auto sp = dyn_cast<ox::SplitOp>(op);
             sp && normAxis(sp.getAxis(),
                            cast<RankedTensorType>(sp.getInput().getType())
                                .getRank()) >= 2)
      v = sp.getInput();
    else if (auto sl = dyn_cast<ox::SliceOp>(op); sl && sl.getAxes() &&
             llvm::all_of(intConstant(sl.getAxes())
                              .value_or(SmallVector<int64_t>{0}),
                          [&](int64_t a) {
                            return normAxis(a, cast<RankedTensorType>(
                                                   sl.getType())
                                                   .getRank()) >= 2;
                          }))
      v = sl.getData();
    else if (auto a = dyn_cast<ox::AddOp>(op)) {
      // x + bias: a bias of rank <= rank(x) - 2 cannot touch dims 0 and 1.
      auto rt = dyn_cast<RankedTensorType>(a.getType());
      auto xt = dyn_cast<RankedTensorType>(a.getA().getType());
      auto bt = dyn_cast<RankedTensorType>(a.getB().getType());
      if (!rt || !xt || !bt || xt != rt || bt.getRank() > rt.getRank() - 2)
        break;
      v = a.getA();
    } else
      break;
  }
  return v;
}

/// `Shape(x)[start:end]` for leading dims of x, read off its root.
Value leadingShape(PatternRewriter &b, Location loc, Value x, int64_t start,
                   int64_t end) {
  return make<ox::ShapeOp>(b, loc, tensorOf({end - start}, b.getI64Type()),
                           leadingRoot(x), si64(b, start), si64(b, end));
}

/// Positions [B, T] for `flat` ([B, T, F]) from what the graph computed:
/// `pos` is [S] or [Bp, S] with S proven equal to T and Bp to B or 1.
/// Identity: Expand broadcasts exactly as the graph's Mul with cos/sin did.
std::optional<Value> buildPositions(PatternRewriter &b, Location loc, Sym &sym,
                                    Value pos, ArrayRef<Role> roles,
                                    Value flat) {
  auto pt = cast<RankedTensorType>(pos.getType());
  auto [b0, t0] = leadingDims(flat);
  Aff B = sym.dim(flat, 0), T = sym.dim(flat, 1);
  if (roles.size() == 1 && roles[0] == Role::Seq) {
    if (sym.dim(pos, 0) != T)
      return std::nullopt;
    pos = make<ox::UnsqueezeOp>(
        b, loc, tensorOf({1, pt.getDimSize(0)}, pt.getElementType()), pos,
        i64Const(b, loc, {0}));
  } else if (roles.size() == 2 && roles[1] == Role::Seq &&
             roles[0] != Role::Seq) {
    if (sym.dim(pos, 1) != T)
      return std::nullopt;
    Aff pb = sym.dim(pos, 0);
    if (pb == B)
      return pos;
    if (!pb.isConst(1))
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  auto it = cast<RankedTensorType>(pos.getType());
  return make<ox::ExpandOp>(b, loc, tensorOf({b0, t0}, it.getElementType()),
                            pos, leadingShape(b, loc, flat, 0, 2));
}

Value buildRoPE(PatternRewriter &b, Location loc, Value flat, Value positions,
                int64_t heads, int64_t headDim, double theta,
                int64_t rotaryDim, bool interleaved) {
  return qwen::RoPEOp::create(
      b, loc, flat.getType(), flat, positions, b.getI64IntegerAttr(heads),
      b.getI64IntegerAttr(headDim), b.getF64FloatAttr(theta),
      rotaryDim < headDim ? b.getI64IntegerAttr(rotaryDim) : IntegerAttr(),
      interleaved
          ? qwen::RoPEStyleAttr::get(b.getContext(), qwen::RoPEStyle::interleaved)
          : qwen::RoPEStyleAttr());
}

/// The `scale` attribute: absent when it is the default 1/sqrt(head_dim).
FloatAttr scaleAttr(PatternRewriter &b, double scale, int64_t headDim) {
  double dflt = 1.0 / std::sqrt(double(headDim));
  if (std::abs(scale - dflt) <= 1e-6 * dflt)
    return FloatAttr();
  return b.getF32FloatAttr(static_cast<float>(scale));
}

RankedTensorType presentType(Value query, Value past, int64_t kv,
                             int64_t headDim) {
  auto [b0, t0] = leadingDims(query);
  int64_t total = t0;
  if (past) {
    int64_t p = cast<RankedTensorType>(past.getType()).getDimSize(2);
    total = ShapedType::isDynamic(p) || ShapedType::isDynamic(t0) ? kDyn
                                                                  : p + t0;
  }
  return tensorOf({b0, kv, total, headDim},
                  cast<RankedTensorType>(query.getType()).getElementType());
}

/// Replaces `old`'s uses that come after `newOp` (in its block) by `repl`.
void replaceLaterUses(PatternRewriter &rewriter, Value old, Value repl,
                      Operation *newOp) {
  rewriter.replaceUsesWithIf(old, repl, [&](OpOperand &use) {
    Operation *user = use.getOwner();
    return user->getBlock() == newOp->getBlock() && newOp->isBeforeInBlock(user);
  });
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

/// Qwen3's q/k norm on the head-split view, rms_norm(Reshape(x, [B, T, N, D]),
/// w[D]) == Reshape(rms_norm{per_head}(x, w), [B, T, N, D]): normalising the
/// last axis of the view is normalising each group of D features of x.
struct FoldPerHeadNorm : OpRewritePattern<qwen::RMSNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(qwen::RMSNormOp op,
                                PatternRewriter &rewriter) const override {
    auto r = skip(op.getInput()).getDefiningOp<ox::ReshapeOp>();
    if (!r || op.getPerHead())
      return failure();
    Sym sym(op);
    auto view = matchView(r.getReshaped(), sym);
    if (!view || view->chain.size() != 1 ||
        op.getWeight().getType().getDimSize(0) != view->headDim ||
        op.getResult().getType() != r.getReshaped().getType())
      return failure();
    Value norm = qwen::RMSNormOp::create(
        rewriter, op.getLoc(), view->flat.getType(), view->flat, op.getWeight(),
        op.getEpsilonAttr(), rewriter.getUnitAttr());
    rewriter.replaceOp(op, rebuildView(rewriter, *view, norm));
    return success();
  }
};

/// HF rotary: x*cos + rotate_half(x)*sin with rotate_half(x) = Concat(-x2, x1)
/// (x1, x2 the halves of the head dim) and cos/sin = cos/sin(Concat(f, f)),
/// f[.., s, i] = inv_freq[i] * pos[.., s]. Per head this is the half-style
/// rotation of (x[i], x[i+D/2]) by pos * inv_freq[i], which is
/// qwen.rope(x_flat, pos) when inv_freq[i] = theta^(-2i/D).
struct RaiseHFRoPE : OpRewritePattern<ox::AddOp> {
  using OpRewritePattern::OpRewritePattern;

  static bool isRotateHalf(Value rot, Value x, int64_t d, Sym &sym) {
    auto cat = skip(rot).getDefiningOp<ox::ConcatOp>();
    if (!cat || cat.getInputs().size() != 2 ||
        normAxis(cat.getAxis(), 4) != 3)
      return false;
    auto neg = skip(cat.getInputs()[0]).getDefiningOp<ox::NegOp>();
    if (!neg)
      return false;
    auto hi = skip(neg.getX()).getDefiningOp<ox::SliceOp>();
    auto lo = skip(cat.getInputs()[1]).getDefiningOp<ox::SliceOp>();
    auto half = [&](ox::SliceOp s, int64_t start, int64_t end) {
      if (!s || skip(s.getData()) != skip(x) || !s.getAxes())
        return false;
      auto axes = sym.ints(s.getAxes()), st = sym.ints(s.getStarts()),
           en = sym.ints(s.getEnds());
      if (!axes || !st || !en || axes->size() != 1 || st->size() != 1 ||
          en->size() != 1 || !(*axes)[0].isConst() ||
          normAxis((*axes)[0].c, 4) != 3 || !(*st)[0].isConst(start) ||
          !(*en)[0].isConst())
        return false;
      if (s.getSteps()) {
        auto sp = sym.ints(s.getSteps());
        if (!sp || sp->size() != 1 || !(*sp)[0].isConst(1))
          return false;
      }
      int64_t e = (*en)[0].c;
      return end == d ? e >= d : e == end;
    };
    return half(hi, d / 2, d) && half(lo, 0, d / 2);
  }

  LogicalResult matchAndRewrite(ox::AddOp add,
                                PatternRewriter &rewriter) const override {
    auto outType = rankedFloat(add.getC());
    if (!outType || outType.getRank() != 4)
      return failure();
    Sym sym(add);
    for (auto [m1, m2] : {std::pair(add.getA(), add.getB()),
                          std::pair(add.getB(), add.getA())}) {
      auto mc = skip(m1).getDefiningOp<ox::MulOp>();
      auto ms = skip(m2).getDefiningOp<ox::MulOp>();
      if (!mc || !ms)
        continue;
      for (auto [x, cosV] : {std::pair(mc.getA(), mc.getB()),
                             std::pair(mc.getB(), mc.getA())}) {
        auto view = matchView(x, sym);
        if (!view || view->layout[3] != Ax::D || skip(x).getType() != outType)
          continue;
        int64_t d = view->headDim;
        for (auto [rot, sinV] : {std::pair(ms.getA(), ms.getB()),
                                 std::pair(ms.getB(), ms.getA())}) {
          if (!isRotateHalf(rot, x, d, sym))
            continue;
          if (succeeded(rewrite(add, *view, x, cosV, sinV, sym, rewriter)))
            return success();
        }
      }
    }
    return failure();
  }

  LogicalResult rewrite(ox::AddOp add, const View &view, Value x, Value cosV,
                        Value sinV, Sym &sym, PatternRewriter &rewriter) const {
    auto tc = analyzeTable(cosV, sym), ts = analyzeTable(sinV, sym);
    if (!tc || !ts || tc->isSin || !ts->isSin || tc->angles != ts->angles)
      return failure();
    const Freqs &fr = tc->freqs;
    int64_t d = view.headDim;
    if ((int64_t)fr.inv.size() * 2 != d || tc->roles.size() > 4)
      return failure();
    // Table axes against the view's: heads broadcast, the head dim is the
    // table's dim, the sequence its sequence, the batch its batch (or
    // broadcast).
    int64_t off = 4 - tc->roles.size();
    for (int a = 0; a < 4; ++a) {
      Role role = a < off ? Role::Bcast : tc->roles[a - off];
      Ax ax = view.layout[a];
      bool ok = (ax == Ax::N && role == Role::Bcast) ||
                (ax == Ax::D && role == Role::Dim) ||
                (ax == Ax::S && role == Role::Seq) ||
                (ax == Ax::B && (role == Role::Batch || role == Role::Bcast));
      if (!ok)
        return failure();
    }
    // Neither table may broadcast x to a bigger shape.
    for (Value t : {cosV, sinV}) {
      SmallVector<Aff> td = sym.dims(t);
      if (td.size() > 4)
        return failure();
      for (size_t k = 0; k < td.size(); ++k)
        if (!td[k].isConst(1) && td[k] != sym.dim(x, k + 4 - td.size()))
          return failure();
    }
    auto theta = thetaFromInvFreq(fr.inv);
    if (!theta)
      return failure();
    Location loc = add.getLoc();
    auto positions =
        buildPositions(rewriter, loc, sym, fr.pos, fr.posRoles, view.flat);
    if (!positions)
      return failure();
    Value rope = buildRoPE(rewriter, loc, view.flat, *positions, view.heads, d,
                           *theta, d, /*interleaved=*/false);
    rewriter.replaceOp(add, rebuildView(rewriter, view, rope));
    return success();
  }
};

/// HF scaled-dot-product attention:
///   Reshape(Transpose(MatMul(softmax(mask(c * MatMul(q, k^T))), v)))
/// with q, k, v head-split views of [B, T, H*D] / [B, T, KV*D] tensors,
/// k and v = repeat_kv(Concat(past, new)) (or new), c the product of every
/// scalar factor on q, k and the scores, and the mask proven to keep exactly
/// attention_mask[b, j] != 0 && j <= i + P. That is qwen.attention(q, k, v,
/// past, mask = attention_mask, causal, scale = c); its presents are the
/// Concat(past, new) values.
struct RaiseSDPA : OpRewritePattern<ox::SoftmaxOp> {
  using OpRewritePattern::OpRewritePattern;

  struct Chain {
    ox::MatMulOp qk;
    double scale = 1;
    bool masked = false;
    Atoms atoms;
  };

  static std::optional<Chain> walk(Value z, Sym &sym, MaskEval &ev) {
    z = skip(z);
    Operation *op = z.getDefiningOp();
    if (!op)
      return std::nullopt;
    if (auto m = dyn_cast<ox::MatMulOp>(op)) {
      auto a = rankedFloat(m.getA()), b = rankedFloat(m.getB());
      if (!a || !b || a.getRank() != 4 || b.getRank() != 4)
        return std::nullopt;
      Chain c;
      c.qk = m;
      return c;
    }
    SmallVector<Aff> zd = sym.dims(z);
    auto sameDims = [&](Value x) { return sym.dims(x) == zd; };
    if (auto m = dyn_cast<ox::MulOp>(op)) {
      for (auto [x, c] : {std::pair(m.getA(), m.getB()),
                          std::pair(m.getB(), m.getA())}) {
        auto s = scalarConstant(c);
        if (!s || !sameDims(x))
          continue;
        auto r = walk(x, sym, ev);
        if (!r || r->masked)
          return std::nullopt;
        r->scale *= *s;
        return r;
      }
      return std::nullopt;
    }
    if (auto dv = dyn_cast<ox::DivOp>(op)) {
      auto s = scalarConstant(dv.getB());
      if (!s || *s == 0 || !sameDims(dv.getA()))
        return std::nullopt;
      auto r = walk(dv.getA(), sym, ev);
      if (!r || r->masked)
        return std::nullopt;
      r->scale /= *s;
      return r;
    }
    if (auto add = dyn_cast<ox::AddOp>(op)) {
      for (auto [x, m] : {std::pair(add.getA(), add.getB()),
                          std::pair(add.getB(), add.getA())}) {
        if (!sameDims(x))
          continue;
        auto r = walk(x, sym, ev);
        if (!r)
          continue;
        auto mv = ev.eval(m);
        if (!mv)
          return std::nullopt;
        auto t = ev.align(*mv, zd);
        if (!t || !additiveAtoms(*t, r->atoms))
          return std::nullopt;
        r->masked = true;
        return r;
      }
      return std::nullopt;
    }
    if (auto w = dyn_cast<ox::WhereOp>(op)) {
      // masked_fill: Where(keep, scores, -big).
      auto fill = scalarConstant(w.getY());
      if (!fill || *fill > kMaskedBelow || !sameDims(w.getX()))
        return std::nullopt;
      auto r = walk(w.getX(), sym, ev);
      if (!r)
        return std::nullopt;
      auto cv = ev.eval(w.getCondition());
      if (!cv)
        return std::nullopt;
      auto t = ev.align(*cv, zd);
      if (!t || !boolAtoms(*t, r->atoms))
        return std::nullopt;
      r->masked = true;
      return r;
    }
    return std::nullopt;
  }

  /// Peels scalar factors off a MatMul operand.
  static Value peelScale(Value v, double &scale) {
    while (true) {
      v = skip(v);
      auto m = v.getDefiningOp<ox::MulOp>();
      if (!m)
        return v;
      if (auto s = unitScalar(m.getB())) {
        scale *= *s;
        v = m.getA();
      } else if (auto s = unitScalar(m.getA())) {
        scale *= *s;
        v = m.getB();
      } else {
        return v;
      }
    }
  }

  LogicalResult matchAndRewrite(ox::SoftmaxOp sm,
                                PatternRewriter &rewriter) const override {
    auto st = rankedFloat(sm.getInput());
    if (!st || st.getRank() != 4 || normAxis(sm.getAxis(), 4) != 3)
      return failure();
    // optimum: Where(IsNaN(p), 0, p) only changes rows that are all -inf.
    Value probs = sm.getOutput();
    for (Operation *user : sm.getOutput().getUsers())
      if (auto nan = dyn_cast<ox::IsNaNOp>(user))
        for (Operation *u2 : nan.getY().getUsers())
          if (auto w = dyn_cast<ox::WhereOp>(u2))
            if (w.getCondition() == nan.getY() && w.getY() == sm.getOutput() &&
                scalarConstant(w.getX()) == 0.0)
              probs = w.getOutput();
    ox::MatMulOp pv;
    for (Operation *user : probs.getUsers())
      if (auto m = dyn_cast<ox::MatMulOp>(user); m && m.getA() == probs)
        pv = m;
    if (!pv)
      return failure();
    ox::TransposeOp tr;
    for (Operation *user : pv.getY().getUsers())
      if (auto t = dyn_cast<ox::TransposeOp>(user);
          t && t.getPerm() &&
          *t.getPerm() == ArrayRef<int64_t>{0, 2, 1, 3})
        tr = t;
    if (!tr)
      return failure();
    ox::ReshapeOp out;
    for (Operation *user : tr.getTransposed().getUsers())
      if (auto r = dyn_cast<ox::ReshapeOp>(user))
        out = r;
    if (!out)
      return failure();

    Sym sym(sm);
    MaskEval ev(sym);
    auto chain = walk(sm.getInput(), sym, ev);
    if (!chain)
      return failure();
    double scale = chain->scale;
    Value a = peelScale(chain->qk.getA(), scale);
    Value bk = peelScale(chain->qk.getB(), scale);
    auto q = matchView(a, sym);
    if (!q || q->layout != kBNSD)
      return failure();
    auto k = matchKV(bk, kBNDS, sym);
    auto v = matchKV(pv.getB(), kBNSD, sym);
    if (!k || !v)
      return failure();
    int64_t h = q->heads, d = q->headDim, kv = k->view.heads;
    if (k->nrep != v->nrep || kv * k->nrep != h || v->view.heads != kv ||
        k->view.headDim != d || v->view.headDim != d ||
        !k->past != !v->past)
      return failure();
    Value qf = q->flat, kf = k->view.flat, vf = v->view.flat;
    for (int64_t i : {0, 1})
      if (sym.dim(kf, i) != sym.dim(qf, i) || sym.dim(vf, i) != sym.dim(qf, i))
        return failure();
    Aff past = Aff::cst(0);
    if (k->past) {
      past = sym.dim(k->past, 2);
      if (sym.dim(v->past, 2) != past || sym.dim(k->past, 0) != sym.dim(qf, 0) ||
          sym.dim(v->past, 0) != sym.dim(qf, 0) ||
          sym.dim(k->past, 1) != Aff::cst(kv) ||
          sym.dim(v->past, 1) != Aff::cst(kv) ||
          sym.dim(k->past, 3) != Aff::cst(d) ||
          sym.dim(v->past, 3) != Aff::cst(d))
        return failure();
    }
    // The keep-condition: exactly causal (j - i - P <= 0) and/or padding
    // (attention_mask[b, j]) over the scores' axes (b, h, i, j).
    Lin causal{{{3, Aff::cst(1)}, {2, Aff::cst(-1)}}, past.scaled(-1)};
    Lin bIdx{{{0, Aff::cst(1)}}, Aff::cst(0)}, jIdx{{{3, Aff::cst(1)}}, Aff::cst(0)};
    bool isCausal = false, padded = false;
    for (const Atom &at : chain->atoms) {
      if (at.pad && at.b == bIdx && at.j == jIdx)
        padded = true;
      else if (!at.pad && at.lin == causal)
        isCausal = true;
      else
        return failure();
    }
    Value mask;
    if (padded) {
      mask = sym.attentionMask;
      if (!mask || sym.dim(mask, 0) != sym.dim(qf, 0) ||
          sym.dim(mask, 1) != past + sym.dim(qf, 1))
        return failure();
    }
    // The output: [B, H, T, D] -> [B, T, H, D] -> [B, T, H*D].
    SmallVector<Aff> od = sym.dims(out.getReshaped());
    if (od.size() != 3 || od[0] != sym.dim(qf, 0) || od[1] != sym.dim(qf, 1) ||
        od[2] != Aff::cst(h * d))
      return failure();

    rewriter.setInsertionPoint(out);
    Type pkType = k->concat ? k->concat->getResult(0).getType()
                            : Type(presentType(qf, k->past, kv, d));
    Type pvType = v->concat ? v->concat->getResult(0).getType()
                            : Type(presentType(qf, v->past, kv, d));
    auto attn = qwen::AttentionOp::create(
        rewriter, out.getLoc(), qf.getType(), pkType, pvType, qf, kf, vf,
        k->past, v->past, mask, rewriter.getI64IntegerAttr(h),
        rewriter.getI64IntegerAttr(kv), rewriter.getI64IntegerAttr(d),
        scaleAttr(rewriter, scale, d),
        isCausal ? rewriter.getUnitAttr() : UnitAttr());
    if (k->concat)
      replaceLaterUses(rewriter, k->concat->getResult(0), attn.getPresentKey(),
                       attn);
    if (v->concat)
      replaceLaterUses(rewriter, v->concat->getResult(0),
                       attn.getPresentValue(), attn);
    Value result = attn.getResult();
    if (result.getType() != out.getType()) {
      // Users may see a more precise type ([?, ?, 64] for the [?, ?, ?] of a
      // -1 reshape); a function result, or a less precise type, goes
      // through an Identity that keeps the declared one.
      auto rt = cast<RankedTensorType>(result.getType());
      auto ot = cast<RankedTensorType>(out.getType());
      bool refines = llvm::all_of(llvm::seq<int64_t>(0, rt.getRank()),
                                  [&](int64_t i) {
                                    return ot.isDynamicDim(i) ||
                                           !rt.isDynamicDim(i);
                                  });
      bool toReturn = llvm::any_of(out->getUsers(), [](Operation *u) {
        return isa<func::ReturnOp>(u);
      });
      if (toReturn || !refines)
        result = ox::IdentityOp::create(rewriter, out.getLoc(), out.getType(),
                                        result);
    }
    rewriter.replaceOp(out, result);
    return success();
  }
};

/// onnxruntime GroupQueryAttention (no local window, softcap, bias, sinks).
/// Per row b it rotates q/k (do_rotary) at positions s on the first prompt
/// (T == total_sequence_length) and past_len_b + s otherwise, with
/// past_len_b = seqlens_k[b] + 1 - T, then attends causally to the first
/// seqlens_k[b] + 1 keys of past[:past_len_b] ++ new. With
/// total_sequence_length = P + T (the attention_mask contract) this is
/// qwen.attention(rope(q, pos), rope(k, pos), v, past) {causal} whenever
/// past_len_b == P for every row, i.e. every row is full after the first
/// prompt; a first prompt may have right-padded rows (GQA leaves the outputs
/// of padding queries undefined). Positions are computed exactly as GQA
/// computes them. Ragged rows after the first prompt (GQA's per-row past
/// lengths and its compacted present layout) are the one case qwen.attention
/// cannot express.
struct RaiseGQA : OpRewritePattern<ox::MSGroupQueryAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ox::MSGroupQueryAttentionOp op,
                                PatternRewriter &rewriter) const override {
    auto qt = rankedFloat(op.getQuery());
    if (!qt || qt.getRank() != 3 || qt.isDynamicDim(2) ||
        op.getLocalWindowSize() != -1 || !op.getSoftcap().isZero() ||
        op.getSmoothSoftmax() != 0 || op.getAttentionBias() ||
        op.getHeadSink() || op.getPositionIds() ||
        (op.getDoRotary() != 0 && op.getDoRotary() != 1) ||
        !op.getKey() != !op.getValue() || !op.getPastKey() != !op.getPastValue())
      return failure();
    int64_t h = op.getNumHeads(), kv = op.getKvNumHeads();
    if (h <= 0 || kv <= 0 || h % kv)
      return failure();
    bool packed = !op.getKey();
    int64_t hidden = qt.getDimSize(2);
    int64_t d = packed ? hidden / (h + 2 * kv) : hidden / h;
    if (d <= 0 || (packed ? d * (h + 2 * kv) : d * h) != hidden)
      return failure();
    Sym sym(op);
    Value query = op.getQuery();
    Value past = op.getPastKey();
    // total_sequence_length must be P + T so the presents are [B, kv, P+T, D].
    auto total = sym.scalar(op.getTotalSequenceLength());
    Aff pastLen = past ? sym.dim(past, 2) : Aff::cst(0);
    if (!total || *total != pastLen + sym.dim(query, 1))
      return failure();
    if (past && (sym.dim(past, 0) != sym.dim(query, 0) ||
                 sym.dim(op.getPastValue(), 2) != pastLen))
      return failure();
    double theta = 0;
    int64_t rot = d;
    if (op.getDoRotary()) {
      if (!op.getCosCache() || !op.getSinCache())
        return failure();
      auto th = thetaFromCaches(op.getCosCache(), op.getSinCache());
      if (!th || 2 * th->second > d)
        return failure();
      theta = th->first;
      rot = 2 * th->second;
    }
    Location loc = op.getLoc();
    Type elt = qt.getElementType();
    int64_t b0 = qt.getDimSize(0), t0 = qt.getDimSize(1);
    if (!packed && (!rankedFloat(op.getKey()) || !rankedFloat(op.getValue()) ||
                    rankedFloat(op.getKey()).getShape().back() != kv * d ||
                    rankedFloat(op.getValue()).getShape().back() != kv * d))
      return failure();
    Type qType = packed ? Type(tensorOf({b0, t0, h * d}, elt)) : query.getType();
    if (qType != op.getOutput().getType())
      return failure();
    auto slice = [&](int64_t from, int64_t size) -> Value {
      return ox::SliceOp::create(rewriter, loc, tensorOf({b0, t0, size}, elt),
                                 query, i64Const(rewriter, loc, {from}),
                                 i64Const(rewriter, loc, {from + size}),
                                 i64Const(rewriter, loc, {2}), Value());
    };
    Value q = packed ? slice(0, h * d) : query;
    Value k = packed ? slice(h * d, kv * d) : op.getKey();
    Value v = packed ? slice((h + kv) * d, kv * d) : op.getValue();
    if (op.getDoRotary()) {
      Value pos = gqaPositions(rewriter, loc, query, op.getSeqlensK(),
                               op.getTotalSequenceLength());
      bool inter = op.getRotaryInterleaved() != 0;
      q = buildRoPE(rewriter, loc, q, pos, h, d, theta, rot, inter);
      k = buildRoPE(rewriter, loc, k, pos, kv, d, theta, rot, inter);
    }
    double scale = op.getScale().convertToDouble();
    auto attn = qwen::AttentionOp::create(
        rewriter, loc, q.getType(), op.getPresentKey().getType(),
        op.getPresentValue().getType(), q, k, v, past, op.getPastValue(),
        Value(), rewriter.getI64IntegerAttr(h), rewriter.getI64IntegerAttr(kv),
        rewriter.getI64IntegerAttr(d),
        scale == 0 ? FloatAttr() : scaleAttr(rewriter, scale, d),
        rewriter.getUnitAttr());
    rewriter.replaceOp(op, attn.getResults());
    return success();
  }

  /// GQA's rotary positions (onnxruntime's CPU kernel), [B, T]:
  ///   T == total ? s : seqlens_k[b] + 1 - T + s
  static Value gqaPositions(PatternRewriter &b, Location loc, Value query,
                            Value seqlensK, Value totalLen) {
    Type i64 = b.getI64Type(), i1 = b.getI1Type();
    auto [b0, t0] = leadingDims(query);
    Value t1 = leadingShape(b, loc, query, 1, 2);
    Value tScalar = make<ox::SqueezeOp>(b, loc, tensorOf({}, i64), t1,
                                        i64Const(b, loc, {0}));
    Value s = make<ox::RangeOp>(b, loc, tensorOf({t0}, i64),
                                i64Const(b, loc, {0}, true), tScalar,
                                i64Const(b, loc, {1}, true));
    Value row = make<ox::UnsqueezeOp>(b, loc, tensorOf({1, t0}, i64), s,
                                      i64Const(b, loc, {0}));
    auto skT = cast<RankedTensorType>(seqlensK.getType());
    Value sk = make<ox::CastOp>(b, loc, tensorOf(skT.getShape(), i64), seqlensK,
                                TypeAttr::get(i64), IntegerAttr());
    Value len = make<ox::AddOp>(b, loc, tensorOf(skT.getShape(), i64), sk,
                                i64Const(b, loc, {1}));
    Value col = make<ox::UnsqueezeOp>(b, loc, tensorOf({b0, 1}, i64), len,
                                      i64Const(b, loc, {1}));
    Value pastLen = make<ox::SubOp>(b, loc, tensorOf({b0, 1}, i64), col, t1);
    Value decode =
        make<ox::AddOp>(b, loc, tensorOf({b0, t0}, i64), pastLen, row);
    Value prompt = row;
    auto totT = cast<RankedTensorType>(totalLen.getType());
    Value tot = make<ox::CastOp>(b, loc, tensorOf(totT.getShape(), i64),
                                 totalLen, TypeAttr::get(i64), IntegerAttr());
    Value first = make<ox::EqualOp>(b, loc, tensorOf({1}, i1), t1, tot);
    return make<ox::WhereOp>(b, loc, tensorOf({b0, t0}, i64), first, prompt,
                             decode);
  }
};

/// com.microsoft RotaryEmbedding and opset 23 RotaryEmbedding on [B, T,
/// N*D] inputs with [B, T] position ids into cos/sin caches: by definition
/// qwen.rope(x, position_ids) with theta read from the caches.
template <typename OpT>
struct RaiseRotaryEmbedding : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    constexpr bool ms = std::is_same_v<OpT, ox::MSRotaryEmbeddingOp>;
    Value x, pos, cosV, sinV;
    int64_t heads = 0, rotAttr = op.getRotaryEmbeddingDim();
    if constexpr (ms) {
      if (op.getIsPackedBatching() != 0 ||
          op.getScale().convertToDouble() != 1.0)
        return failure();
      x = op.getInput();
      pos = op.getPositionIds();
      heads = op.getNumHeads();
    } else {
      x = op.getX();
      pos = op.getPositionIds();
      heads = op.getNumHeads().value_or(0);
    }
    cosV = op.getCosCache();
    sinV = op.getSinCache();
    auto xt = rankedFloat(x);
    if (!xt || xt.getRank() != 3 || xt.isDynamicDim(2) || !pos ||
        cast<RankedTensorType>(pos.getType()).getRank() != 2)
      return failure();
    auto th = thetaFromCaches(cosV, sinV);
    if (!th)
      return failure();
    int64_t rot = 2 * th->second, hidden = xt.getDimSize(2);
    if (rotAttr && rotAttr != rot)
      return failure();
    if (heads <= 0) {
      if (rotAttr) // the head size is not implied by the caches
        return failure();
      heads = hidden / rot;
    }
    int64_t d = hidden / heads;
    if (d * heads != hidden || rot > d || rot % 2)
      return failure();
    // The op itself requires position_ids [B, T] for X [B, T, N*D].
    rewriter.replaceOp(op, buildRoPE(rewriter, op.getLoc(), x, pos, heads, d,
                                     th->first, rot,
                                     op.getInterleaved() != 0));
    return success();
  }
};

/// Opset 23 Attention on [B, T, N*D] inputs without attn_mask or softcap:
/// softmax(scale * q k^T [+ causal]) v with kv heads shared by groups of
/// q heads, present = past ++ new. Its causal mask is aligned to the top
/// left, which equals qwen.attention's (offset by P) only without a past.
struct RaiseONNXAttention : OpRewritePattern<ox::AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ox::AttentionOp op,
                                PatternRewriter &rewriter) const override {
    auto qt = rankedFloat(op.getQ()), kt = rankedFloat(op.getK()),
         vt = rankedFloat(op.getV());
    if (!qt || !kt || !vt || qt.getRank() != 3 || kt.getRank() != 3 ||
        vt.getRank() != 3 || op.getAttnMask() || !op.getSoftcap().isZero() ||
        op.getQkMatmulOutputMode() != 0 || !op.getQNumHeads() ||
        !op.getKvNumHeads() || !op.getPastKey() != !op.getPastValue() ||
        (op.getIsCausal() && op.getPastKey()))
      return failure();
    if (op.getOptionalOutputs().size() > 2 &&
        !op.getOptionalOutputs()[2].use_empty())
      return failure();
    int64_t h = *op.getQNumHeads(), kv = *op.getKvNumHeads();
    if (h <= 0 || kv <= 0 || h % kv || qt.isDynamicDim(2) ||
        kt.isDynamicDim(2) || vt.isDynamicDim(2))
      return failure();
    int64_t d = qt.getDimSize(2) / h;
    if (d * h != qt.getDimSize(2) || kt.getDimSize(2) != kv * d ||
        vt.getDimSize(2) != kv * d)
      return failure();
    Sym sym(op);
    for (int64_t i : {0, 1})
      if (sym.dim(op.getK(), i) != sym.dim(op.getQ(), i) ||
          sym.dim(op.getV(), i) != sym.dim(op.getQ(), i))
        return failure();
    Value past = op.getPastKey();
    Type pk = op.getPresentKey() ? op.getPresentKey().getType()
                                 : Type(presentType(op.getQ(), past, kv, d));
    Type pv = op.getPresentValue()
                  ? op.getPresentValue().getType()
                  : Type(presentType(op.getQ(), past, kv, d));
    if (op.getY().getType() != op.getQ().getType())
      return failure();
    auto attn = qwen::AttentionOp::create(
        rewriter, op.getLoc(), op.getQ().getType(), pk, pv, op.getQ(),
        op.getK(), op.getV(), past, op.getPastValue(), Value(),
        rewriter.getI64IntegerAttr(h), rewriter.getI64IntegerAttr(kv),
        rewriter.getI64IntegerAttr(d),
        op.getScale() ? scaleAttr(rewriter, op.getScale()->convertToDouble(), d)
                      : FloatAttr(),
        op.getIsCausal() ? rewriter.getUnitAttr() : UnitAttr());
    SmallVector<Value> repl{attn.getResult()};
    for (unsigned i = 0; i < op.getOptionalOutputs().size(); ++i)
      repl.push_back(i == 0   ? attn.getPresentKey()
                     : i == 1 ? attn.getPresentValue()
                              : attn.getResult()); // unused (checked)
    rewriter.replaceOp(op, repl);
    return success();
  }
};

/// A linear whose output is only ever sliced along the features (packed
/// QKV, Qwen1's c_attn + Split): each slice [s, e) of x W^T + b is
/// x W[s:e]^T + b[s:e], one qwen.linear per slice.
struct SplitPackedLinear : OpRewritePattern<qwen::LinearOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(qwen::LinearOp op,
                                PatternRewriter &rewriter) const override {
    auto yt = op.getResult().getType();
    int64_t rank = yt.getRank(), n = op.getWeight().getType().getDimSize(0);
    if (op.getResult().use_empty() || !qwen::raise::isWeight(op.getWeight()) ||
        (op.getBias() && !qwen::raise::isWeight(op.getBias())))
      return failure();
    // (user, result index) -> [start, end)
    SmallVector<std::tuple<Operation *, unsigned, int64_t, int64_t>> parts;
    for (Operation *user : op.getResult().getUsers()) {
      if (auto s = dyn_cast<ox::SliceOp>(user)) {
        auto axes = s.getAxes() ? intConstant(s.getAxes()) : std::nullopt;
        auto st = intConstant(s.getStarts()), en = intConstant(s.getEnds());
        if (!axes || !st || !en || axes->size() != 1 || st->size() != 1 ||
            en->size() != 1 || normAxis((*axes)[0], rank) != rank - 1)
          return failure();
        if (s.getSteps()) {
          auto sp = intConstant(s.getSteps());
          if (!sp || sp->size() != 1 || (*sp)[0] != 1)
            return failure();
        }
        int64_t b = std::clamp<int64_t>(normAxis((*st)[0], n), 0, n);
        int64_t e = std::clamp<int64_t>(
            (*en)[0] >= kHugeEnd ? n : normAxis((*en)[0], n), 0, n);
        if (e <= b)
          return failure();
        parts.push_back({s, 0, b, e});
      } else if (auto sp = dyn_cast<ox::SplitOp>(user)) {
        if (normAxis(sp.getAxis(), rank) != rank - 1)
          return failure();
        int64_t outs = sp.getOutputs().size(), b = 0;
        SmallVector<int64_t> sizes;
        if (sp.getSplit()) {
          auto c = intConstant(sp.getSplit());
          if (!c || (int64_t)c->size() != outs)
            return failure();
          sizes = *c;
        } else if (n % outs == 0) {
          sizes.assign(outs, n / outs);
        } else {
          return failure();
        }
        for (auto [i, size] : llvm::enumerate(sizes)) {
          if (size <= 0)
            return failure();
          parts.push_back({sp, (unsigned)i, b, b + size});
          b += size;
        }
        if (b != n)
          return failure();
      } else {
        return failure();
      }
    }
    for (auto [user, idx, b, e] : parts) {
      auto rt = dyn_cast<RankedTensorType>(user->getResult(idx).getType());
      if (!rt || rt.getRank() != rank)
        return failure();
    }
    Location loc = op.getLoc();
    auto wt = op.getWeight().getType();
    DenseMap<Operation *, SmallVector<Value>> repl;
    for (auto [user, idx, b, e] : parts) {
      rewriter.setInsertionPoint(user);
      Value w = ox::SliceOp::create(
          rewriter, loc, tensorOf({e - b, wt.getDimSize(1)}, wt.getElementType()),
          op.getWeight(), i64Const(rewriter, loc, {b}),
          i64Const(rewriter, loc, {e}), i64Const(rewriter, loc, {0}), Value());
      Value bias;
      if (op.getBias())
        bias = ox::SliceOp::create(
            rewriter, loc, tensorOf({e - b}, wt.getElementType()),
            op.getBias(), i64Const(rewriter, loc, {b}),
            i64Const(rewriter, loc, {e}), i64Const(rewriter, loc, {0}),
            Value());
      Value res = user->getResult(idx);
      SmallVector<int64_t> shape(yt.getShape());
      shape.back() = e - b;
      Value lin = qwen::LinearOp::create(rewriter, loc,
                                         tensorOf(shape, yt.getElementType()),
                                         op.getInput(), w, bias);
      if (lin.getType() != res.getType()) {
        // Keep the user's declared type for its users.
        lin = ox::IdentityOp::create(rewriter, loc, res.getType(), lin);
      }
      auto &slot = repl[user];
      slot.resize(user->getNumResults());
      slot[idx] = lin;
    }
    for (auto &[user, vals] : repl)
      rewriter.replaceOp(user, vals);
    rewriter.eraseOp(op);
    return success();
  }
};

} // namespace

void qwen::populateRaiseAttentionPatterns(RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<FoldPerHeadNorm, RaiseHFRoPE, RaiseSDPA, RaiseGQA,
               RaiseRotaryEmbedding<ox::MSRotaryEmbeddingOp>,
               RaiseRotaryEmbedding<ox::RotaryEmbeddingOp>, RaiseONNXAttention,
               SplitPackedLinear>(ctx);
}
