//===- QQuantOps.td - quantized model-level ops -------------*- tablegen -*-===//

#ifndef QWEN_QQUANT_OPS
#define QWEN_QQUANT_OPS

include "QQuant/QQuantBase.td"
include "QQuant/QQuantAttrs.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

def QQuant_WeightType : TypeDef<QQuant_Dialect, "Weight"> {
  let mnemonic = "weight";
  let summary = "A quantized weight: logical shape, float type and scheme";
  let description = [{
    The logical (dequantized) shape `[rows, cols]` (rows are output channels
    or vocabulary entries, cols are the reduced inputs), the float type it
    dequantizes to, then the scheme's list as in `#qquant.scheme`.

    ```mlir
    !qquant.weight<4864x896xf32, i4, symmetric, group = 128>
    !qquant.weight<256x64xf32, codebook 4, channel>
    ```
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$shape,
                        "::mlir::Type":$elementType, "SchemeAttr":$scheme);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getRows() const { return getShape()[0]; }
    int64_t getCols() const { return getShape()[1]; }
    /// The float tensor type this weight dequantizes to.
    ::mlir::RankedTensorType getExpressedType() const;
  }];
}

def QQuant_AnyWeight : Type<CPred<"::llvm::isa<::qwen::qquant::WeightType>($_self)">,
                            "quantized weight", "::qwen::qquant::WeightType">;

class QQuant_Op<string mnemonic, list<Trait> traits = []>
    : Op<QQuant_Dialect, mnemonic, traits>;

def QQuant_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;

//===----------------------------------------------------------------------===//
// Ops
//===----------------------------------------------------------------------===//

def QQuant_WeightOp : QQuant_Op<"weight",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "A quantized weight read from a weight store";
  let description = [{
    `@store::@name` names the weight; its components are the store entries
    `name.codes` (packed codes or indices, row-major, `bits` per weight),
    `name.scales` (`[rows, scales per row]` float), `name.zeros` (asymmetric
    uniform only), `name.codebook` (codebook grids: `[rows or groups, 2^bits]`)
    and `name.mask` (sparse schemes). `--qwen-verify-weights` checks them
    against the type.

    ```mlir
    %w = qquant.weight @q::@"layers.0.mlp.up_proj" : !qquant.weight<128x64xf32, i4, symmetric, group = 32>
    ```
  }];
  let arguments = (ins SymbolRefAttr:$ref);
  let results = (outs QQuant_AnyWeight:$result);
  let assemblyFormat = "$ref attr-dict `:` qualified(type($result))";
  let extraClassDeclaration = [{
    ::llvm::StringRef getStoreName() { return getRef().getRootReference(); }
    ::llvm::StringRef getEntryName() { return getRef().getLeafReference(); }
  }];
}

def QQuant_LinearOp : QQuant_Op<"linear", [Pure]> {
  let summary = "Linear layer on a quantized weight (W4A16, W8A8, ...)";
  let description = [{
    `y = x * dequant(W)^T (+ bias)`. Without `act` the activation stays in
    float (weight-only, WxA16); with it the input is quantized as stated and
    the product accumulates in int32.

    ```mlir
    %y = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>}
        : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input, QQuant_AnyWeight:$weight,
                       Optional<QQuant_FloatTensor>:$bias,
                       OptionalAttr<QQuant_ActivationAttr>:$act);
  let results = (outs QQuant_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_EmbeddingOp : QQuant_Op<"embedding", [Pure]> {
  let summary = "Embedding lookup in a quantized table";
  let description = [{
    ```mlir
    %h = qquant.embedding %ids, %t : (tensor<1x8xi64>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I32, I64]>:$ids, QQuant_AnyWeight:$table);
  let results = (outs QQuant_FloatTensor:$result);
  let assemblyFormat = "$ids `,` $table attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_LogitsOp : QQuant_Op<"logits", [Pure]> {
  let summary = "LM head on a quantized weight";
  let description = [{
    ```mlir
    %l = qquant.logits %h, %t {tied} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x256xf32>
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input, QQuant_AnyWeight:$weight,
                       UnitAttr:$tied, OptionalAttr<QQuant_ActivationAttr>:$act);
  let results = (outs QQuant_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_DequantizeWeightOp : QQuant_Op<"dequantize_weight", [Pure]> {
  let summary = "Expands a quantized weight to floats (the generic path)";
  let description = [{
    Any op that has no quantized kernel reads its weight through this op, so
    every scheme always has a correct (if slow) lowering.

    ```mlir
    %f = qquant.dequantize_weight %w : !qquant.weight<96x64xf32, i4, symmetric, group = 32> -> tensor<96x64xf32>
    ```
  }];
  let arguments = (ins QQuant_AnyWeight:$weight);
  let results = (outs QQuant_FloatTensor:$result);
  let assemblyFormat = "$weight attr-dict `:` qualified(type($weight)) `->` type($result)";
  let hasVerifier = 1;
}

def QQuant_DynamicQuantizeOp : QQuant_Op<"dynamic_quantize", [Pure]> {
  let summary = "Symmetric run-time quantization, per token or per tensor";
  let description = [{
    `scale = max|x| / (2^(bits-1) - 1)` over each token (last dimension) or
    over the whole tensor; `q = round(x / scale)`. The scale result has the
    input's shape with the last dimension 1 (per token) or all dimensions 1.

    ```mlir
    %q, %s = qquant.dynamic_quantize %x {per_token} : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x8x1xf32>)
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input,
                       DefaultValuedAttr<I64Attr, "8">:$bits, UnitAttr:$per_token);
  let results = (outs RankedTensorOf<[I8]>:$output, RankedTensorOf<[F32]>:$scale);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` `(` type($output) `,` type($scale) `)`";
  let hasVerifier = 1;
}

def QQuant_ObserveOp : QQuant_Op<"observe",
    [SameOperandsAndResultType, MemoryEffects<[MemWrite]>]> {
  let summary = "Identity that records calibration statistics of its operand";
  let description = [{
    Inserted by calibration before every tensor it measures; lowered to calls
    that update streaming statistics, then replaced by a `qquant.stats`
    attribute on the op that consumed the tensor. `per_channel` asks for
    per-channel min/max, `moment2` for the input second moment X^T X. It has a
    write effect so that nothing folds it away before it runs.

    ```mlir
    %x1 = qquant.observe %x {name = "layers.0.self_attn.q_proj.in", per_channel, moment2} : tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input, StrAttr:$name,
                       UnitAttr:$per_channel, UnitAttr:$moment2);
  let results = (outs QQuant_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // QWEN_QQUANT_OPS
