//===- RaiseONNX.cpp - exporter subgraphs -> model-level ops --------------===//
//
// Each pattern matches what the exporters (TorchScript, dynamo, optimum,
// onnxruntime-genai) write for one building block, in every spelling seen in
// test/fixtures/onnx, and replaces it by the qwen op. A pattern only fires
// when the types prove the rewrite exact.
//
//===----------------------------------------------------------------------===//

#include "RaiseUtils.h"
#include "qwen/Transforms/Passes.h"
#include "qwen/Transforms/RaisePatterns.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;
namespace ox = qwen::onnxir;

namespace qwen {
#define GEN_PASS_DEF_RAISEONNX
#include "Transforms/Passes.h.inc"
} // namespace qwen

namespace {

using namespace qwen::raise;

//===----------------------------------------------------------------------===//
// Embedding and linear
//===----------------------------------------------------------------------===//

struct RaiseEmbedding : OpRewritePattern<ox::GatherOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ox::GatherOp op,
                                PatternRewriter &rewriter) const override {
    Value table = skip(op.getData());
    auto tableType = rankedFloat(table);
    auto ids = dyn_cast<RankedTensorType>(op.getIndices().getType());
    auto result = rankedFloat(op.getOutput());
    // Token ids come in as a graph input; a table gathered by computed
    // indices (RoPE caches by position) is left to the RoPE patterns.
    if (op.getAxis() != 0 || !isWeight(table) || !tableType ||
        tableType.getRank() != 2 || !ids || !result ||
        !isa<BlockArgument>(skip(op.getIndices())))
      return failure();
    rewriter.replaceOpWithNewOp<qwen::EmbeddingOp>(op, result,
                                                   op.getIndices(), table);
    return success();
  }
};

/// The [N, K] weight that a MatMul's [K, N] operand is the transpose of.
Value transposedWeight(PatternRewriter &rewriter, Location loc, Value kn) {
  kn = skip(kn);
  if (auto t = kn.getDefiningOp<ox::TransposeOp>())
    if (t.getPerm() && *t.getPerm() == ArrayRef<int64_t>{1, 0} &&
        isWeight(t.getData()))
      return skip(t.getData());
  // Reuse an existing transpose of the same weight, so a head tied to the
  // embedding reads the very value the embedding reads.
  for (Operation *user : kn.getUsers())
    if (auto t = dyn_cast<ox::TransposeOp>(user))
      if (t.getPerm() && *t.getPerm() == ArrayRef<int64_t>{1, 0})
        return t;
  auto type = cast<RankedTensorType>(kn.getType());
  auto nk = RankedTensorType::get({type.getDimSize(1), type.getDimSize(0)},
                                  type.getElementType());
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointAfterValue(kn);
  return ox::TransposeOp::create(rewriter, loc, nk, kn,
                                 rewriter.getDenseI64ArrayAttr({1, 0}));
}

struct RaiseLinear : OpRewritePattern<ox::MatMulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ox::MatMulOp op,
                                PatternRewriter &rewriter) const override {
    auto x = rankedFloat(op.getA());
    auto w = rankedFloat(skip(op.getB()));
    auto y = rankedFloat(op.getY());
    bool weightLike = isWeight(op.getB());
    if (auto t = skip(op.getB()).getDefiningOp<ox::TransposeOp>())
      weightLike |= isWeight(t.getData());
    if (!x || !w || !y || !weightLike || w.getRank() != 2 || x.getRank() < 2)
      return failure();
    // The input's feature dim may be unknown after a reshape to [b, s, -1];
    // the weight fixes it.
    SmallVector<int64_t> expected(x.getShape());
    expected.back() = w.getDimSize(1);
    int64_t k = x.getShape().back();
    if (y.getShape() != ArrayRef<int64_t>(expected) ||
        (!ShapedType::isDynamic(k) && k != w.getDimSize(0)))
      return failure();
    Value nk = transposedWeight(rewriter, op.getLoc(), op.getB());
    rewriter.replaceOpWithNewOp<qwen::LinearOp>(op, y, op.getA(), nk, Value());
    return success();
  }
};

struct FoldLinearBias : OpRewritePattern<ox::AddOp> {
  FoldLinearBias(MLIRContext *ctx) : OpRewritePattern(ctx, /*benefit=*/2) {}
  LogicalResult matchAndRewrite(ox::AddOp op,
                                PatternRewriter &rewriter) const override {
    auto m = either<qwen::LinearOp>(op.getA(), op.getB());
    if (!m)
      return failure();
    auto [linear, bias] = *m;
    auto biasType = rankedFloat(skip(bias));
    int64_t n = linear.getWeight().getType().getDimSize(0);
    if (linear.getBias() || !linear->hasOneUse() || !isWeight(bias) ||
        !biasType || biasType.getRank() != 1 || biasType.getDimSize(0) != n ||
        op.getC().getType() != linear.getResult().getType())
      return failure();
    rewriter.replaceOpWithNewOp<qwen::LinearOp>(
        op, linear.getResult().getType(), linear.getInput(),
        linear.getWeight(), skip(bias));
    rewriter.eraseOp(linear);
    return success();
  }
};

struct RaiseLogits : OpRewritePattern<qwen::LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(qwen::LinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getBias())
      return failure();
    if (!isGraphOutputNamed(op.getResult(), "logits"))
      return failure();
    // Tied when the head reads the very table the embedding reads.
    bool tied = llvm::any_of(op.getWeight().getUsers(), [](Operation *u) {
      return isa<qwen::EmbeddingOp>(u);
    });
    auto logits = rewriter.replaceOpWithNewOp<qwen::LogitsOp>(
        op, op.getResult().getType(), op.getInput(), op.getWeight());
    if (tied)
      logits.setTied(true);
    return success();
  }
};

/// A head raised before the embedding that shares its table.
struct MarkTiedLogits : OpRewritePattern<qwen::LogitsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(qwen::LogitsOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getTied() ||
        llvm::none_of(op.getWeight().getUsers(),
                      [](Operation *u) { return isa<qwen::EmbeddingOp>(u); }))
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.setTied(true); });
    return success();
  }
};

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

/// Matches `1 / sqrt(mean(x^2, -1) + eps)` given the `sqrt(...)` value;
/// returns x and eps.
std::optional<std::pair<Value, double>> matchInvRms(Value sqrtVal) {
  auto sqrt = skip(sqrtVal).getDefiningOp<ox::SqrtOp>();
  if (!sqrt)
    return std::nullopt;
  auto add = skip(sqrt.getX()).getDefiningOp<ox::AddOp>();
  if (!add)
    return std::nullopt;
  auto m = either<ox::ReduceMeanOp>(add.getA(), add.getB());
  if (!m)
    return std::nullopt;
  auto [mean, epsVal] = *m;
  std::optional<double> eps = scalarConstant(epsVal);
  auto pow = skip(mean.getData()).getDefiningOp<ox::PowOp>();
  if (!eps || !pow || mean.getKeepdims() != 1 || !mean.getAxes())
    return std::nullopt;
  auto x = rankedFloat(skip(pow.getA()));
  std::optional<double> two = scalarConstant(pow.getB());
  auto axes = intConstant(mean.getAxes());
  if (!x || !two || *two != 2.0 || !axes || axes->size() != 1 ||
      ((*axes)[0] != -1 && (*axes)[0] != x.getRank() - 1))
    return std::nullopt;
  return std::make_pair(skip(pow.getA()), *eps);
}

/// Given `y`, matches `x * r`, `r * x` or `x / s` with r the inverse RMS.
std::optional<std::pair<Value, double>> matchNormalized(Value y) {
  Operation *op = skip(y).getDefiningOp();
  if (auto div = dyn_cast_or_null<ox::DivOp>(op)) {
    auto m = matchInvRms(div.getB());
    if (m && skip(div.getA()) == m->first)
      return m;
    return std::nullopt;
  }
  auto mul = dyn_cast_or_null<ox::MulOp>(op);
  if (!mul)
    return std::nullopt;
  for (auto [x, r] : {std::pair(mul.getA(), mul.getB()),
                      std::pair(mul.getB(), mul.getA())}) {
    Value s;
    Operation *rOp = skip(r).getDefiningOp();
    if (auto recip = dyn_cast_or_null<ox::ReciprocalOp>(rOp))
      s = recip.getX();
    else if (auto d = dyn_cast_or_null<ox::DivOp>(rOp))
      if (auto one = scalarConstant(d.getA()); one && *one == 1.0)
        s = d.getB();
    if (!s)
      continue;
    auto m = matchInvRms(s);
    if (m && skip(x) == m->first)
      return m;
  }
  return std::nullopt;
}

struct RaiseRMSNorm : OpRewritePattern<ox::MulOp> {
  RaiseRMSNorm(MLIRContext *ctx) : OpRewritePattern(ctx, /*benefit=*/2) {}
  LogicalResult matchAndRewrite(ox::MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [w, y] : {std::pair(op.getA(), op.getB()),
                        std::pair(op.getB(), op.getA())}) {
      auto wt = rankedFloat(skip(w));
      if (!isWeight(w) || !wt || wt.getRank() != 1)
        continue;
      auto m = matchNormalized(y);
      if (!m)
        continue;
      auto xt = rankedFloat(m->first);
      if (!xt || xt.getShape().back() != wt.getDimSize(0) ||
          op.getC().getType() != xt)
        continue;
      rewriter.replaceOpWithNewOp<qwen::RMSNormOp>(
          op, xt, m->first, skip(w),
          rewriter.getF32FloatAttr(static_cast<float>(m->second)),
          /*per_head=*/nullptr);
      return success();
    }
    return failure();
  }
};

/// onnxruntime's RMSNorm ops, over the last axis.
template <typename OpT>
struct RaiseNormOp : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpT op,
                                PatternRewriter &rewriter) const override {
    auto x = rankedFloat(op->getOperand(0));
    auto w = rankedFloat(skip(op->getOperand(1)));
    Value y = op->getResult(0);
    if (!x || !w || w.getRank() != 1 || y.getType() != x ||
        x.getShape().back() != w.getDimSize(0) ||
        (op.getAxis() != -1 && op.getAxis() != x.getRank() - 1))
      return failure();
    for (Value extra : op->getResults().drop_front())
      if (!extra.use_empty())
        return failure();
    Value norm = qwen::RMSNormOp::create(
        rewriter, op.getLoc(), x, op->getOperand(0), skip(op->getOperand(1)),
        op.getEpsilonAttr(), nullptr);
    SmallVector<Value> repl(op->getNumResults(), Value());
    repl[0] = norm;
    for (unsigned i = 1; i < repl.size(); ++i)
      repl[i] = norm; // unused (checked above)
    rewriter.replaceOp(op, repl);
    return success();
  }
};

struct RaiseSkipNorm
    : OpRewritePattern<ox::MSSkipSimplifiedLayerNormalizationOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ox::MSSkipSimplifiedLayerNormalizationOp op,
                                PatternRewriter &rewriter) const override {
    auto x = rankedFloat(op.getInput());
    auto w = rankedFloat(skip(op.getGamma()));
    if (!x || !w || op.getBias() || op.getSkip().getType() != x ||
        op.getOutput().getType() != x || w.getRank() != 1 ||
        x.getShape().back() != w.getDimSize(0))
      return failure();
    auto extra = op.getOptionalOutputs();
    for (unsigned i = 0; i < extra.size() && i < 2; ++i)
      if (!extra[i].use_empty())
        return failure();
    Value sum = qwen::AddOp::create(rewriter, op.getLoc(), x, op.getInput(),
                                    op.getSkip());
    Value norm = qwen::RMSNormOp::create(rewriter, op.getLoc(), x, sum,
                                         skip(op.getGamma()),
                                         op.getEpsilonAttr(), nullptr);
    SmallVector<Value> repl{norm};
    for (unsigned i = 0; i < extra.size(); ++i)
      repl.push_back(i == 2 ? sum : norm); // mean/inv_std unused
    rewriter.replaceOp(op, repl);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// MLP and residuals
//===----------------------------------------------------------------------===//

/// `g * sigmoid(g)` in either order; returns g.
Value matchSilu(Value v) {
  auto mul = skip(v).getDefiningOp<ox::MulOp>();
  if (!mul)
    return {};
  for (auto [g, s] : {std::pair(mul.getA(), mul.getB()),
                      std::pair(mul.getB(), mul.getA())})
    if (auto sig = skip(s).getDefiningOp<ox::SigmoidOp>())
      if (skip(sig.getX()) == skip(g) && mul.getC().getType() == g.getType())
        return skip(g);
  return {};
}

struct RaiseSwiGLU : OpRewritePattern<ox::MulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ox::MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [s, u] : {std::pair(op.getA(), op.getB()),
                        std::pair(op.getB(), op.getA())}) {
      Value g = matchSilu(s);
      auto t = rankedFloat(op.getC());
      if (!g || !t || g.getType() != t || skip(u).getType() != t)
        continue;
      rewriter.replaceOpWithNewOp<qwen::SiluMulOp>(op, t, g, skip(u));
      return success();
    }
    return failure();
  }
};

struct RaiseResidualAdd : OpRewritePattern<ox::AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ox::AddOp op,
                                PatternRewriter &rewriter) const override {
    auto t = rankedFloat(op.getC());
    if (!t || t.getRank() != 3 || op.getA().getType() != t ||
        op.getB().getType() != t || isWeight(op.getA()) || isWeight(op.getB()))
      return failure();
    auto raised = [](Value v) {
      return isa_and_nonnull<qwen::LinearOp, qwen::EmbeddingOp, qwen::AddOp>(
          skip(v).getDefiningOp());
    };
    if (!raised(op.getA()) && !raised(op.getB()))
      return failure();
    rewriter.replaceOpWithNewOp<qwen::AddOp>(op, t, op.getA(), op.getB());
    return success();
  }
};

struct RaiseONNXPass : qwen::impl::RaiseONNXBase<RaiseONNXPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseEmbedding, RaiseLinear, FoldLinearBias, RaiseLogits,
                 MarkTiedLogits,
                 RaiseRMSNorm, RaiseNormOp<ox::MSSimplifiedLayerNormalizationOp>,
                 RaiseNormOp<ox::RMSNormalizationOp>, RaiseSkipNorm,
                 RaiseSwiGLU, RaiseResidualAdd>(&getContext());
    qwen::populateRaiseAttentionPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
