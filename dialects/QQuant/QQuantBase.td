//===- QQuantBase.td - quantization dialect base ------------*- tablegen -*-===//

#ifndef QWEN_QQUANT_BASE
#define QWEN_QQUANT_BASE

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def QQuant_Dialect : Dialect {
  let name = "qquant";
  let cppNamespace = "::qwen::qquant";
  let summary = "Quantized forms of the model-level ops, and the schemes that describe them";
  let description = [{
    The scheme is in the type, the numbers are in the store. A quantized
    weight's type (`!qquant.weight`) states its logical shape and its scheme
    (bits, signedness, symmetric or not, granularity, uniform / power-of-two /
    codebook grid, sparsity); its packed codes, scales, zero points,
    centroids and sparsity metadata are entries of a weight store named after
    the weight (`<name>.codes`, `<name>.scales`, ...).

    Per-tensor activation scales reuse upstream `!quant.uniform`; dynamic
    per-token activation quantization is `#qquant.act<dynamic ...>`.
    Calibration statistics are `#qquant.stats`, and the precision chosen for an
    op together with the reason is the discardable attribute
    `qquant.decision = #qquant.decision<...>`.
  }];
  let dependentDialects = ["::mlir::quant::QuantDialect", "::qwen::QwenDialect"];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Name of the discardable attribute carrying a #qquant.decision.
    static constexpr ::llvm::StringLiteral kDecisionAttrName = "qquant.decision";
    /// Name of the discardable attribute carrying #qquant.stats.
    static constexpr ::llvm::StringLiteral kStatsAttrName = "qquant.stats";
    /// Name of --qwen-prune's mark on a pruned op: "2:4" or "unstructured".
    static constexpr ::llvm::StringLiteral kPrunedAttrName = "qquant.pruned";
  }];
}

#endif // QWEN_QQUANT_BASE
