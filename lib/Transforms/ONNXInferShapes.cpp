//===- ONNXInferShapes.cpp - ONNX shape rules on the onnx dialect ---------===//
//
// Gives every onnx op the most precise result type its operands imply. Small
// integer tensors (the shape arithmetic exporters emit around Reshape and
// Expand) are evaluated symbolically: each element is a number or unknown.
//
//===----------------------------------------------------------------------===//

#include "qwen/Transforms/Passes.h"

#include "mlir/Dialect/Traits.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
namespace ox = qwen::onnxir;

namespace qwen {
#define GEN_PASS_DEF_ONNXINFERSHAPES
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;
/// Element values of a small integer tensor; kDyn where unknown.
using Values = SmallVector<int64_t, 4>;
constexpr int64_t kMaxTracked = 64;

bool isDyn(int64_t d) { return ShapedType::isDynamic(d); }

class ShapeInference {
public:
  explicit ShapeInference(func::FuncOp f) : func(f) {}
  LogicalResult run();

private:
  std::optional<Values> known(Value v);
  void track(Value v, Values vals) {
    if (vals.size() <= kMaxTracked)
      values[v] = std::move(vals);
  }
  std::optional<SmallVector<int64_t>> dims(Value v) {
    if (auto r = dyn_cast<RankedTensorType>(v.getType()))
      return SmallVector<int64_t>(r.getShape());
    return std::nullopt;
  }
  LogicalResult refine(Value result, ArrayRef<int64_t> shape);
  LogicalResult inferShape(Operation *op);
  void evaluate(Operation *op);

  func::FuncOp func;
  DenseMap<Value, Values> values;
};

std::optional<Values> ShapeInference::known(Value v) {
  auto it = values.find(v);
  if (it != values.end())
    return it->second;
  DenseIntElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr)) && attr.getNumElements() <= kMaxTracked) {
    Values out;
    for (const APInt &x : attr.getValues<APInt>())
      out.push_back(attr.getElementType().isInteger(1) ? x.getZExtValue()
                                                       : x.getSExtValue());
    return out;
  }
  return std::nullopt;
}

LogicalResult ShapeInference::refine(Value result, ArrayRef<int64_t> shape) {
  Type elt = getElementTypeOrSelf(result.getType());
  auto cur = dyn_cast<RankedTensorType>(result.getType());
  SmallVector<int64_t> merged(shape);
  if (cur) {
    if (cur.getRank() != static_cast<int64_t>(shape.size()))
      return result.getDefiningOp()->emitOpError("declared result type ")
             << cur << " has rank " << cur.getRank()
             << ", the ONNX shape rule gives rank " << shape.size();
    for (auto [i, d] : llvm::enumerate(cur.getShape())) {
      if (!isDyn(d) && !isDyn(merged[i]) && d != merged[i])
        return result.getDefiningOp()->emitOpError("declared result type ")
               << cur << " contradicts the inferred dimension " << i
               << " = " << merged[i];
      if (isDyn(merged[i]))
        merged[i] = d;
    }
  }
  result.setType(RankedTensorType::get(merged, elt));
  return success();
}

/// ONNX's clamped slice length of a dimension of size `dim`.
int64_t sliceLength(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (isDyn(dim) || isDyn(start) || isDyn(end) || isDyn(step) || step == 0)
    return kDyn;
  auto clamp = [&](int64_t x, int64_t lo, int64_t hi) {
    return std::max(lo, std::min(x, hi));
  };
  if (start < 0)
    start += dim;
  if (end < 0)
    end += dim;
  if (step > 0) {
    start = clamp(start, 0, dim);
    end = clamp(end, 0, dim);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = clamp(start, 0, dim - 1);
  end = clamp(end, -1, dim - 1);
  return start > end ? (start - end - step - 1) / -step : 0;
}

int64_t normAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

/// Numpy broadcast of several shapes (dynamic where undecided).
std::optional<SmallVector<int64_t>> broadcast(ArrayRef<SmallVector<int64_t>> shapes) {
  SmallVector<int64_t> out;
  for (const auto &s : shapes) {
    SmallVector<int64_t> next;
    if (!OpTrait::util::getBroadcastedShape(out, s, next))
      return std::nullopt;
    out = next;
  }
  return out;
}

/// Applies an elementwise integer function to known operands (scalars
/// broadcast), propagating unknowns.
std::optional<Values> elementwise(ArrayRef<Values> ins,
                                  function_ref<int64_t(int64_t, int64_t)> f) {
  if (ins.size() != 2)
    return std::nullopt;
  size_t n = std::max(ins[0].size(), ins[1].size());
  if ((ins[0].size() != n && ins[0].size() != 1) ||
      (ins[1].size() != n && ins[1].size() != 1))
    return std::nullopt;
  Values out;
  for (size_t i = 0; i < n; ++i) {
    int64_t a = ins[0][ins[0].size() == 1 ? 0 : i];
    int64_t b = ins[1][ins[1].size() == 1 ? 0 : i];
    out.push_back(isDyn(a) || isDyn(b) ? kDyn : f(a, b));
  }
  return out;
}

void ShapeInference::evaluate(Operation *op) {
  auto knownAll = [&](ValueRange vs) -> std::optional<SmallVector<Values>> {
    SmallVector<Values> out;
    for (Value v : vs) {
      auto k = known(v);
      if (!k)
        return std::nullopt;
      out.push_back(*k);
    }
    return out;
  };
  Value r = op->getNumResults() == 1 ? op->getResult(0) : Value();
  if (!r || !isa<IntegerType>(getElementTypeOrSelf(r.getType())))
    return;
  llvm::TypeSwitch<Operation *>(op)
      .Case([&](ox::ShapeOp s) {
        auto d = dims(s.getData());
        if (!d)
          return;
        int64_t rank = d->size();
        int64_t start = normAxis(s.getStart().value_or(0), rank);
        int64_t end = normAxis(s.getEnd().value_or(rank), rank);
        start = std::clamp<int64_t>(start, 0, rank);
        end = std::clamp<int64_t>(end, start, rank);
        track(r, Values(d->begin() + start, d->begin() + end));
      })
      .Case([&](ox::SizeOp s) {
        auto t = dyn_cast<RankedTensorType>(s.getData().getType());
        track(r, {t && t.hasStaticShape() ? t.getNumElements() : kDyn});
      })
      .Case([&](ox::GatherOp g) {
        auto data = known(g.getData());
        auto idx = known(g.getIndices());
        if (!data || !idx || g.getAxis() != 0)
          return;
        Values out;
        for (int64_t i : *idx) {
          int64_t j = i < 0 ? i + (int64_t)data->size() : i;
          if (isDyn(i) || j < 0 || j >= (int64_t)data->size())
            return;
          out.push_back((*data)[j]);
        }
        track(r, out);
      })
      .Case<ox::UnsqueezeOp, ox::SqueezeOp, ox::ReshapeOp, ox::IdentityOp,
            ox::CastOp>([&](Operation *o) {
        if (auto k = known(o->getOperand(0)))
          track(r, *k);
      })
      .Case([&](ox::ConcatOp c) {
        auto ins = knownAll(c.getInputs());
        if (!ins)
          return;
        Values out;
        for (auto &v : *ins)
          out.append(v);
        track(r, out);
      })
      .Case([&](ox::SliceOp s) {
        auto data = known(s.getData());
        auto st = known(s.getStarts()), en = known(s.getEnds());
        std::optional<Values> stp =
            s.getSteps() ? known(s.getSteps()) : Values{1};
        if (!data || !st || !en || !stp || st->size() != 1 ||
            en->size() != 1 || stp->size() != 1 || (*stp)[0] != 1)
          return;
        int64_t n = data->size();
        int64_t b = std::clamp<int64_t>(normAxis((*st)[0], n), 0, n);
        int64_t e = std::clamp<int64_t>(normAxis((*en)[0], n), 0, n);
        if (isDyn((*st)[0]) || isDyn((*en)[0]))
          return;
        track(r, e > b ? Values(data->begin() + b, data->begin() + e) : Values{});
      })
      .Case<ox::AddOp, ox::SubOp, ox::MulOp, ox::DivOp, ox::EqualOp>(
          [&](Operation *o) {
            auto ins = knownAll(o->getOperands());
            if (!ins)
              return;
            std::optional<Values> out;
            if (isa<ox::AddOp>(o))
              out = elementwise(*ins, [](int64_t a, int64_t b) { return a + b; });
            else if (isa<ox::SubOp>(o))
              out = elementwise(*ins, [](int64_t a, int64_t b) { return a - b; });
            else if (isa<ox::MulOp>(o))
              out = elementwise(*ins, [](int64_t a, int64_t b) { return a * b; });
            else if (isa<ox::DivOp>(o))
              out = elementwise(*ins, [](int64_t a, int64_t b) {
                return b == 0 ? kDyn : a / b;
              });
            else
              out = elementwise(*ins, [](int64_t a, int64_t b) -> int64_t {
                return a == b;
              });
            if (out)
              track(r, *out);
          })
      .Case([&](ox::WhereOp w) {
        auto c = known(w.getCondition());
        auto x = known(w.getX()), y = known(w.getY());
        if (!c || !x || !y)
          return;
        size_t n = std::max({c->size(), x->size(), y->size()});
        Values out;
        for (size_t i = 0; i < n; ++i) {
          auto at = [&](const Values &v) { return v[v.size() == 1 ? 0 : i]; };
          if ((c->size() != 1 && c->size() != n) ||
              (x->size() != 1 && x->size() != n) ||
              (y->size() != 1 && y->size() != n))
            return;
          out.push_back(isDyn(at(*c)) ? kDyn : at(*c) ? at(*x) : at(*y));
        }
        track(r, out);
      })
      .Case([&](ox::ConstantOfShapeOp c) {
        auto shape = known(c.getInput());
        if (!shape || shape->size() > 1)
          return;
        int64_t n = shape->empty() ? 1 : (*shape)[0];
        if (isDyn(n) || n > kMaxTracked)
          return;
        int64_t fill = 0;
        if (auto v = dyn_cast_or_null<DenseIntElementsAttr>(
                c.getValueAttr()))
          fill = (*v.getValues<APInt>().begin()).getSExtValue();
        track(r, Values(n, fill));
      });
}

LogicalResult ShapeInference::inferShape(Operation *op) {
  auto same = [&](Value from, Value to) -> LogicalResult {
    auto d = dims(from);
    return d ? refine(to, *d) : success();
  };
  // Families first: element-wise ops by their traits.
  if (op->hasTrait<OpTrait::SameOperandsAndResultShape>() ||
      op->hasTrait<OpTrait::SameOperandsAndResultType>())
    return op->getNumOperands() ? same(op->getOperand(0), op->getResult(0))
                                : success();
  if (op->hasTrait<OpTrait::ResultsBroadcastableShape>()) {
    SmallVector<SmallVector<int64_t>> shapes;
    for (Value v : op->getOperands()) {
      auto d = dims(v);
      if (!d)
        return success();
      shapes.push_back(*d);
    }
    auto b = broadcast(shapes);
    return b ? refine(op->getResult(0), *b) : success();
  }

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](ox::ShapeOp s) -> LogicalResult {
        auto d = dims(s.getData());
        if (!d)
          return success();
        auto k = known(s.getResult());
        return refine(s.getResult(), {k ? (int64_t)k->size() : kDyn});
      })
      .Case([&](ox::SizeOp s) { return refine(s.getSize(), {}); })
      .Case<ox::MatMulOp, ox::MatMulIntegerOp>([&](auto m) -> LogicalResult {
        auto a = dims(m.getA()), b = dims(m.getB());
        if (!a || !b || a->size() < 2 || b->size() < 2)
          return success();
        SmallVector<int64_t> batch;
        if (!OpTrait::util::getBroadcastedShape(
                ArrayRef<int64_t>(*a).drop_back(2),
                ArrayRef<int64_t>(*b).drop_back(2), batch))
          return success();
        batch.push_back((*a)[a->size() - 2]);
        batch.push_back(b->back());
        return refine(m.getY(), batch);
      })
      .Case([&](ox::GemmOp g) -> LogicalResult {
        auto a = dims(g.getA()), b = dims(g.getB());
        if (!a || !b || a->size() != 2 || b->size() != 2)
          return success();
        return refine(g.getY(), {(*a)[g.getTransA() ? 1 : 0],
                                 (*b)[g.getTransB() ? 0 : 1]});
      })
      .Case([&](ox::TransposeOp t) -> LogicalResult {
        auto d = dims(t.getData());
        if (!d)
          return success();
        SmallVector<int64_t> perm;
        if (t.getPerm())
          perm.assign(t.getPerm()->begin(), t.getPerm()->end());
        else
          for (int64_t i = d->size() - 1; i >= 0; --i)
            perm.push_back(i);
        SmallVector<int64_t> out;
        for (int64_t p : perm)
          out.push_back((*d)[p]);
        return refine(t.getTransposed(), out);
      })
      .Case([&](ox::ReshapeOp r) -> LogicalResult {
        auto target = known(r.getShape());
        auto shapeType = dyn_cast<RankedTensorType>(r.getShape().getType());
        auto in = dims(r.getData());
        if (!target) {
          if (shapeType && shapeType.hasStaticShape())
            return refine(r.getReshaped(),
                          SmallVector<int64_t>(shapeType.getDimSize(0), kDyn));
          return success();
        }
        SmallVector<int64_t> out;
        int64_t minusOne = -1, product = 1;
        for (auto [i, t] : llvm::enumerate(*target)) {
          int64_t d = t;
          if (t == 0 && !r.getAllowzero())
            d = in && i < in->size() ? (*in)[i] : kDyn;
          if (t == -1) {
            minusOne = i;
            d = kDyn;
          }
          if (isDyn(d) && t != -1)
            product = kDyn;
          else if (!isDyn(d) && !isDyn(product))
            product *= d;
          out.push_back(d);
        }
        if (minusOne >= 0 && in && !isDyn(product) && product > 0 &&
            llvm::none_of(*in, isDyn)) {
          int64_t total = 1;
          for (int64_t d : *in)
            total *= d;
          out[minusOne] = total / product;
        }
        return refine(r.getReshaped(), out);
      })
      .Case([&](ox::ExpandOp e) -> LogicalResult {
        auto target = known(e.getShape());
        auto in = dims(e.getInput());
        if (!target || !in)
          return success();
        SmallVector<int64_t> t(target->begin(), target->end());
        auto b = broadcast({*in, t});
        return b ? refine(e.getOutput(), *b) : success();
      })
      .Case([&](ox::UnsqueezeOp u) -> LogicalResult {
        auto axes = known(u.getAxes());
        auto in = dims(u.getData());
        if (!axes || !in)
          return success();
        int64_t rank = in->size() + axes->size();
        SmallVector<int64_t> out(rank, kDyn);
        SmallVector<bool> inserted(rank, false);
        for (int64_t a : *axes) {
          int64_t n = normAxis(a, rank);
          if (isDyn(a) || n < 0 || n >= rank)
            return u.emitOpError("axis ") << a << " is out of range";
          inserted[n] = true;
          out[n] = 1;
        }
        unsigned j = 0;
        for (int64_t i = 0; i < rank; ++i)
          if (!inserted[i])
            out[i] = (*in)[j++];
        return refine(u.getExpanded(), out);
      })
      .Case([&](ox::SqueezeOp s) -> LogicalResult {
        auto in = dims(s.getData());
        if (!in)
          return success();
        SmallVector<bool> drop(in->size(), false);
        if (s.getAxes()) {
          auto axes = known(s.getAxes());
          if (!axes)
            return success();
          for (int64_t a : *axes) {
            int64_t n = normAxis(a, in->size());
            if (isDyn(a) || n < 0 || n >= (int64_t)in->size())
              return s.emitOpError("axis ") << a << " is out of range";
            drop[n] = true;
          }
        } else {
          for (auto [i, d] : llvm::enumerate(*in)) {
            if (isDyn(d))
              return success();
            drop[i] = d == 1;
          }
        }
        SmallVector<int64_t> out;
        for (auto [i, d] : llvm::enumerate(*in))
          if (!drop[i])
            out.push_back(d);
        return refine(s.getSqueezed(), out);
      })
      .Case([&](ox::ConcatOp c) -> LogicalResult {
        SmallVector<SmallVector<int64_t>> ins;
        for (Value v : c.getInputs()) {
          auto d = dims(v);
          if (!d)
            return success();
          ins.push_back(*d);
        }
        int64_t rank = ins[0].size(), axis = normAxis(c.getAxis(), rank);
        SmallVector<int64_t> out(ins[0]);
        out[axis] = 0;
        for (auto &d : ins) {
          out[axis] = isDyn(out[axis]) || isDyn(d[axis]) ? kDyn
                                                         : out[axis] + d[axis];
          for (int64_t i = 0; i < rank; ++i)
            if (i != axis && isDyn(out[i]))
              out[i] = d[i];
        }
        return refine(c.getConcatResult(), out);
      })
      .Case([&](ox::GatherOp g) -> LogicalResult {
        auto d = dims(g.getData()), idx = dims(g.getIndices());
        if (!d || !idx)
          return success();
        int64_t axis = normAxis(g.getAxis(), d->size());
        SmallVector<int64_t> out(d->begin(), d->begin() + axis);
        out.append(*idx);
        out.append(d->begin() + axis + 1, d->end());
        return refine(g.getOutput(), out);
      })
      .Case([&](ox::SliceOp s) -> LogicalResult {
        auto d = dims(s.getData());
        if (!d)
          return success();
        SmallVector<int64_t> out(*d);
        auto st = known(s.getStarts()), en = known(s.getEnds());
        std::optional<Values> ax =
            s.getAxes() ? known(s.getAxes()) : std::optional<Values>();
        std::optional<Values> stp =
            s.getSteps() ? known(s.getSteps()) : std::optional<Values>();
        if (!ax && !s.getAxes()) {
          ax = Values();
          int64_t n = st ? st->size() : 0;
          for (int64_t i = 0; i < n; ++i)
            ax->push_back(i);
        }
        if (!ax) // axes unknown: every dim may change
          return refine(s.getOutput(), SmallVector<int64_t>(d->size(), kDyn));
        for (auto [i, a] : llvm::enumerate(*ax)) {
          int64_t n = normAxis(a, d->size());
          if (isDyn(a) || n < 0 || n >= (int64_t)d->size())
            return s.emitOpError("axis ") << a << " is out of range";
          int64_t start = st && i < st->size() ? (*st)[i] : kDyn;
          int64_t end = en && i < en->size() ? (*en)[i] : kDyn;
          int64_t step = stp ? (i < stp->size() ? (*stp)[i] : kDyn)
                             : (s.getSteps() ? kDyn : 1);
          out[n] = sliceLength((*d)[n], start, end, step);
        }
        return refine(s.getOutput(), out);
      })
      .Case([&](ox::SplitOp s) -> LogicalResult {
        auto d = dims(s.getInput());
        if (!d)
          return success();
        int64_t axis = normAxis(s.getAxis(), d->size());
        int64_t n = s.getOutputs().size();
        std::optional<Values> sizes =
            s.getSplit() ? known(s.getSplit()) : std::nullopt;
        for (int64_t i = 0; i < n; ++i) {
          SmallVector<int64_t> out(*d);
          if (sizes && (int64_t)sizes->size() == n)
            out[axis] = (*sizes)[i];
          else if (!s.getSplit() && !isDyn((*d)[axis]) && (*d)[axis] % n == 0)
            out[axis] = (*d)[axis] / n;
          else
            out[axis] = kDyn;
          if (failed(refine(s.getOutputs()[i], out)))
            return failure();
        }
        return success();
      })
      .Case([&](ox::ConstantOfShapeOp c) -> LogicalResult {
        auto shape = known(c.getInput());
        if (shape)
          return refine(c.getOutput(), SmallVector<int64_t>(shape->begin(), shape->end()));
        auto st = dyn_cast<RankedTensorType>(c.getInput().getType());
        if (st && st.hasStaticShape())
          return refine(c.getOutput(),
                        SmallVector<int64_t>(st.getDimSize(0), kDyn));
        return success();
      })
      .Case([&](ox::RangeOp r) -> LogicalResult {
        auto s = known(r.getStart()), l = known(r.getLimit()),
             d = known(r.getDelta());
        int64_t n = kDyn;
        if (s && l && d && s->size() == 1 && l->size() == 1 &&
            d->size() == 1 && !isDyn((*s)[0]) && !isDyn((*l)[0]) &&
            !isDyn((*d)[0]) && (*d)[0] != 0)
          n = std::max<int64_t>(
              0, ((*l)[0] - (*s)[0] + (*d)[0] - ((*d)[0] > 0 ? 1 : -1)) /
                     (*d)[0]);
        return refine(r.getOutput(), {n});
      })
      .Case<ox::ReduceMeanOp, ox::ReduceSumOp, ox::ReduceMaxOp,
            ox::ReduceMinOp>([&](auto red) -> LogicalResult {
        auto d = dims(red.getData());
        if (!d)
          return success();
        SmallVector<bool> reduce(d->size(), !red.getAxes());
        if (red.getAxes()) {
          auto axes = known(red.getAxes());
          if (!axes)
            return success();
          if (axes->empty() && !red.getNoopWithEmptyAxes())
            reduce.assign(d->size(), true);
          for (int64_t a : *axes) {
            int64_t n = normAxis(a, d->size());
            if (isDyn(a) || n < 0 || n >= (int64_t)d->size())
              return red.emitOpError("axis ") << a << " is out of range";
            reduce[n] = true;
          }
        }
        SmallVector<int64_t> out;
        for (auto [i, dim] : llvm::enumerate(*d)) {
          if (!reduce[i])
            out.push_back(dim);
          else if (red.getKeepdims())
            out.push_back(1);
        }
        return refine(red.getReduced(), out);
      })
      .Case([&](ox::FlattenOp f) -> LogicalResult {
        auto d = dims(f.getInput());
        if (!d)
          return success();
        int64_t axis = normAxis(f.getAxis(), d->size());
        int64_t a = 1, b = 1;
        for (auto [i, dim] : llvm::enumerate(*d)) {
          int64_t &p = (int64_t)i < axis ? a : b;
          p = isDyn(dim) || isDyn(p) ? kDyn : p * dim;
        }
        return refine(f.getOutput(), {a, b});
      })
      .Case([&](ox::TileOp t) -> LogicalResult {
        auto d = dims(t.getInput());
        auto rep = known(t.getRepeats());
        if (!d || !rep || rep->size() != d->size())
          return success();
        SmallVector<int64_t> out;
        for (auto [dim, r] : llvm::zip(*d, *rep))
          out.push_back(isDyn(dim) || isDyn(r) ? kDyn : dim * r);
        return refine(t.getOutput(), out);
      })
      .Case([&](ox::EinsumOp e) -> LogicalResult {
        // Explicit equations without ellipsis: each output letter takes the
        // size the inputs give it.
        StringRef eq = e.getEquation();
        auto [lhs, rhs] = eq.split("->");
        if (rhs.data() == nullptr || eq.contains("..."))
          return success();
        SmallVector<StringRef> terms;
        lhs.split(terms, ',');
        if (terms.size() != e.getInputs().size())
          return success();
        llvm::DenseMap<char, int64_t> size;
        for (auto [term, in] : llvm::zip(terms, e.getInputs())) {
          auto d = dims(in);
          term = term.trim();
          if (!d || d->size() != term.size())
            return success();
          for (auto [c, dim] : llvm::zip(term, *d))
            if (!size.count(c) || isDyn(size[c]))
              size[c] = dim;
        }
        SmallVector<int64_t> out;
        for (char c : rhs.trim()) {
          if (!size.count(c))
            return success();
          out.push_back(size[c]);
        }
        return refine(e.getOutput(), out);
      })
      .Case<ox::TriluOp, ox::CumSumOp>(
          [&](Operation *o) { return same(o->getOperand(0), o->getResult(0)); })
      .Case<ox::LayerNormalizationOp, ox::RMSNormalizationOp,
            ox::MSSimplifiedLayerNormalizationOp, ox::RotaryEmbeddingOp,
            ox::MSRotaryEmbeddingOp, ox::QuantizeLinearOp,
            ox::DequantizeLinearOp, ox::ScatterNDOp, ox::ScatterElementsOp>(
          [&](Operation *o) { return same(o->getOperand(0), o->getResult(0)); })
      .Case([&](ox::GatherElementsOp g) {
        return same(g.getIndices(), g.getOutput());
      })
      .Case([&](ox::DynamicQuantizeLinearOp q) -> LogicalResult {
        if (failed(same(q.getX(), q.getY())) ||
            failed(refine(q.getYScale(), {})))
          return failure();
        return refine(q.getYZeroPoint(), {});
      })
      .Case([&](ox::MSSkipSimplifiedLayerNormalizationOp s) -> LogicalResult {
        if (failed(same(s.getInput(), s.getOutput())))
          return failure();
        auto d = dims(s.getInput());
        for (auto [i, r] : llvm::enumerate(s.getOptionalOutputs())) {
          if (!d)
            break;
          SmallVector<int64_t> out(*d);
          if (i < 2)
            out.back() = 1;
          if (failed(refine(r, out)))
            return failure();
        }
        return success();
      })
      .Case([&](ox::MSMatMulNBitsOp m) -> LogicalResult {
        auto d = dims(m.getA());
        if (!d)
          return success();
        SmallVector<int64_t> out(*d);
        out.back() = m.getN();
        return refine(m.getY(), out);
      })
      .Case([&](ox::MSGatherBlockQuantizedOp g) -> LogicalResult {
        auto d = dims(g.getData()), idx = dims(g.getIndices());
        if (!d || !idx || d->size() != 2)
          return success();
        int64_t cols = d->back();
        if (!isDyn(cols) && getElementTypeOrSelf(g.getData().getType())
                                .isUnsignedInteger(8))
          cols = cols * 8 / g.getBits();
        SmallVector<int64_t> out(*idx);
        out.push_back(cols);
        return refine(g.getOutput(), out);
      })
      .Case([&](ox::MSGroupQueryAttentionOp g) -> LogicalResult {
        auto q = dims(g.getQuery());
        if (!q || q->size() != 3)
          return success();
        int64_t nh = g.getNumHeads(), kv = g.getKvNumHeads();
        int64_t hidden = (*q)[2];
        int64_t hd = isDyn(hidden) ? kDyn
                     : g.getKey()  ? hidden / nh
                                   : hidden / (nh + 2 * kv);
        if (failed(refine(g.getOutput(),
                          {(*q)[0], (*q)[1], isDyn(hd) ? kDyn : nh * hd})))
          return failure();
        for (Value p : {g.getPresentKey(), g.getPresentValue()})
          if (failed(refine(p, {(*q)[0], kv, kDyn, hd})))
            return failure();
        return success();
      })
      .Case([&](ox::AttentionOp a) -> LogicalResult {
        auto q = dims(a.getQ()), v = dims(a.getV());
        if (!q || !v)
          return success();
        if (q->size() == 4 && v->size() == 4)
          return refine(a.getY(), {(*q)[0], (*q)[1], (*q)[2], (*v)[3]});
        if (q->size() == 3 && v->size() == 3 && a.getQNumHeads() &&
            a.getKvNumHeads() && !isDyn((*v)[2]))
          return refine(a.getY(),
                        {(*q)[0], (*q)[1],
                         *a.getQNumHeads() * ((*v)[2] / *a.getKvNumHeads())});
        return success();
      })
      .Default([](Operation *) { return success(); });
}

LogicalResult ShapeInference::run() {
  WalkResult walk = func.walk([&](Operation *op) {
    if (!isa<ox::ONNXDialect>(op->getDialect()))
      return WalkResult::advance();
    evaluate(op);
    if (failed(inferShape(op)))
      return WalkResult::interrupt();
    // Shape ops may become ranked only after their own rule ran.
    evaluate(op);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  // The function's results follow the refined values.
  auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
  func.setFunctionType(FunctionType::get(func.getContext(),
                                         func.getArgumentTypes(),
                                         ret.getOperandTypes()));
  return success();
}

struct ONNXInferShapesPass
    : qwen::impl::ONNXInferShapesBase<ONNXInferShapesPass> {
  void runOnOperation() override {
    if (failed(ShapeInference(getOperation()).run()))
      signalPassFailure();
  }
};

} // namespace
