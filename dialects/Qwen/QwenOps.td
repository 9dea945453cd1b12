//===- QwenOps.td - model-level dialect --------------------*- tablegen -*-===//
//
// The model level: one op per building block of a Qwen decoder, on float
// tensors, with weights referred to by name in an external weight store.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_MODEL_OPS
#define QWEN_MODEL_OPS

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/BuiltinAttributes.td"
include "mlir/IR/EnumAttr.td"

def Qwen_Dialect : Dialect {
  let name = "qwen";
  let cppNamespace = "::qwen";
  let summary = "Model-level ops of Qwen-family decoders, and weight references";
  let useDefaultAttributePrinterParser = 1;
  let description = [{
    The level that raising produces and quantization consumes: embedding,
    RMSNorm, linear, RoPE, attention (GQA, causal, KV cache), SwiGLU, residual
    add and logits. Activations are `[batch, seq, features]` tensors; heads are
    kept flattened in the feature dimension (`num_heads * head_dim`) so no op
    needs a transpose.

    Weights are never literals: `qwen.store` names a weight-store file and
    `qwen.weight` names one tensor inside it.

    ```mlir
    qwen.store @w "model.qws"
    func.func @mlp(%x: tensor<1x8x64xf32>) -> tensor<1x8x64xf32> {
      %wg = qwen.weight @w::@"layers.0.mlp.gate_proj.weight" : tensor<128x64xf32>
      %wu = qwen.weight @w::@"layers.0.mlp.up_proj.weight" : tensor<128x64xf32>
      %wd = qwen.weight @w::@"layers.0.mlp.down_proj.weight" : tensor<64x128xf32>
      %g = qwen.linear %x, %wg : (tensor<1x8x64xf32>, tensor<128x64xf32>) -> tensor<1x8x128xf32>
      %u = qwen.linear %x, %wu : (tensor<1x8x64xf32>, tensor<128x64xf32>) -> tensor<1x8x128xf32>
      %h = qwen.silu_mul %g, %u : tensor<1x8x128xf32>
      %y = qwen.linear %h, %wd : (tensor<1x8x128xf32>, tensor<64x128xf32>) -> tensor<1x8x64xf32>
      return %y : tensor<1x8x64xf32>
    }
    ```
  }];
}

class Qwen_Op<string mnemonic, list<Trait> traits = []>
    : Op<Qwen_Dialect, mnemonic, traits>;

def Qwen_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def Qwen_IdTensor : RankedTensorOf<[I32, I64]>;

//===----------------------------------------------------------------------===//
// Weight references
//===----------------------------------------------------------------------===//

def Qwen_StoreOp : Qwen_Op<"store", [Symbol, HasParent<"::mlir::ModuleOp">]> {
  let summary = "Declares a weight-store file that weights refer to";
  let description = [{
    A weight store is a file of named, aligned tensors (see
    `include/qwen/Support/WeightStore.h`), memory-mapped when read. A relative
    path is resolved against the working directory of the tool.

    ```mlir
    qwen.store @w "/models/qwen2.5-0.5b/weights.qws"
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$path);
  let assemblyFormat = "$sym_name $path attr-dict";
  let hasVerifier = 1;
}

def Qwen_WeightOp : Qwen_Op<"weight",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "A float tensor read from a weight store";
  let description = [{
    `@store::@name` names the store (a `qwen.store` symbol) and the tensor's
    entry in it. The type is checked against the store's index by
    `--qwen-verify-weights`.

    ```mlir
    %w = qwen.weight @w::@"model.embed_tokens.weight" : tensor<256x64xf32>
    ```
  }];
  let arguments = (ins SymbolRefAttr:$ref);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$ref attr-dict `:` type($result)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The store's symbol and the entry's name.
    ::llvm::StringRef getStoreName() { return getRef().getRootReference(); }
    ::llvm::StringRef getEntryName() { return getRef().getLeafReference(); }
  }];
}

//===----------------------------------------------------------------------===//
// Decoder building blocks
//===----------------------------------------------------------------------===//

def Qwen_EmbeddingOp : Qwen_Op<"embedding", [Pure]> {
  let summary = "Token embedding lookup: table[ids]";
  let description = [{
    ```mlir
    %h = qwen.embedding %ids, %table : (tensor<1x8xi64>, tensor<256x64xf32>) -> tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins Qwen_IdTensor:$ids, Qwen_FloatTensor:$table);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$ids `,` $table attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Qwen_RMSNormOp : Qwen_Op<"rms_norm", [Pure]> {
  let summary = "RMS normalisation over the last dimension (or per head)";
  let description = [{
    `y = x / sqrt(mean(x^2) + epsilon) * weight`, over the last dimension when
    `weight` has that size. With `per_head`, `weight` has `head_dim` entries and
    the normalisation runs over each group of `head_dim` features (Qwen3's q/k
    norm).

    ```mlir
    %y = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$input, Qwen_FloatTensor:$weight,
                       F32Attr:$epsilon, UnitAttr:$per_head);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Qwen_LinearOp : Qwen_Op<"linear", [Pure]> {
  let summary = "y = x * W^T (+ bias), W laid out [out_features, in_features]";
  let description = [{
    The float linear layer. Quantization rewrites it to `qquant.linear`; the
    precision chosen for it, and why, is the `qquant.decision` attribute.

    ```mlir
    %y = qwen.linear %x, %w, %b : (tensor<1x8x64xf32>, tensor<96x64xf32>, tensor<96xf32>) -> tensor<1x8x96xf32>
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$input, Qwen_FloatTensor:$weight,
                       Optional<Qwen_FloatTensor>:$bias);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Qwen_RoPEStyle : I32EnumAttr<"RoPEStyle", "layout of rotated pairs", [
    I32EnumAttrCase<"half", 0>,         // (x[i], x[i + d/2]): HF rotate_half
    I32EnumAttrCase<"interleaved", 1>   // (x[2i], x[2i+1]): GPT-J style
  ]> {
  let cppNamespace = "::qwen";
  let genSpecializedAttr = 0;
}

def Qwen_RoPEStyleAttr : EnumAttr<Qwen_Dialect, Qwen_RoPEStyle, "rope_style"> {
  let assemblyFormat = "`<` $value `>`";
}

def Qwen_RoPEOp : Qwen_Op<"rope", [Pure]> {
  let summary = "Rotary position embedding applied per head";
  let description = [{
    Rotates the first `rotary_dim` features of each head by angles
    `position * theta^(-2i/rotary_dim)`. `style` picks which features form a
    pair. The input's last dimension is `num_heads * head_dim`.

    ```mlir
    %q2 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e+06 : f64}
        : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$input, Qwen_IdTensor:$positions,
                       I64Attr:$num_heads, I64Attr:$head_dim, F64Attr:$theta,
                       OptionalAttr<I64Attr>:$rotary_dim,
                       DefaultValuedAttr<Qwen_RoPEStyleAttr, "::qwen::RoPEStyle::half">:$style);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$input `,` $positions attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getEffectiveRotaryDim() { return getRotaryDim().value_or(getHeadDim()); }
  }];
}

def Qwen_AttentionOp : Qwen_Op<"attention", [Pure, AttrSizedOperandSegments]> {
  let summary = "Scaled dot-product attention with GQA, causal mask and KV cache";
  let description = [{
    `query` is `[B, T, num_heads*head_dim]`, `key`/`value` are
    `[B, T, num_kv_heads*head_dim]` (already rotated). With a KV cache,
    `past_key`/`past_value` are `[B, num_kv_heads, P, head_dim]` and the
    results `present_key`/`present_value` are `[B, num_kv_heads, P+T, head_dim]`
    (past then new). Each query head `h` reads kv head
    `h / (num_heads / num_kv_heads)`. `causal` masks key positions after the
    query's own (offset by P). `mask` (optional, `[B, P+T]`, 1 = keep) masks
    padding.

    ```mlir
    %o, %pk, %pv = qwen.attention %q, %k, %v past %pk0, %pv0
        {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal}
        : (tensor<1x1x64xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>,
           tensor<1x2x7x16xf32>, tensor<1x2x7x16xf32>)
        -> (tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$query, Qwen_FloatTensor:$key,
                       Qwen_FloatTensor:$value,
                       Optional<Qwen_FloatTensor>:$past_key,
                       Optional<Qwen_FloatTensor>:$past_value,
                       Optional<RankedTensorOf<[I1, I32, I64]>>:$mask,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads, I64Attr:$head_dim,
                       OptionalAttr<F32Attr>:$scale, UnitAttr:$causal);
  let results = (outs Qwen_FloatTensor:$result, Qwen_FloatTensor:$present_key,
                      Qwen_FloatTensor:$present_value);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`past` $past_key^ `,` $past_value)? (`mask` $mask^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// 1/sqrt(head_dim) unless `scale` is given.
    double getEffectiveScale();
  }];
}

def Qwen_SiluMulOp : Qwen_Op<"silu_mul", [Pure, SameOperandsAndResultType]> {
  let summary = "SwiGLU gate: silu(gate) * up";
  let description = [{
    ```mlir
    %h = qwen.silu_mul %gate, %up : tensor<1x8x128xf32>
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$gate, Qwen_FloatTensor:$up);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def Qwen_AddOp : Qwen_Op<"add", [Pure, Commutative, SameOperandsAndResultType]> {
  let summary = "Residual add";
  let description = [{
    ```mlir
    %h2 = qwen.add %h, %attn : tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$lhs, Qwen_FloatTensor:$rhs);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Qwen_LogitsOp : Qwen_Op<"logits", [Pure]> {
  let summary = "LM head: logits = x * W^T, W laid out [vocab, hidden]";
  let description = [{
    `tied` records that `weight` is the embedding table (Qwen2.5-0.5B ties
    them), so a bundle stores it once.

    ```mlir
    %l = qwen.logits %h, %table {tied} : (tensor<1x8x64xf32>, tensor<256x64xf32>) -> tensor<1x8x256xf32>
    ```
  }];
  let arguments = (ins Qwen_FloatTensor:$input, Qwen_FloatTensor:$weight, UnitAttr:$tied);
  let results = (outs Qwen_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // QWEN_MODEL_OPS
