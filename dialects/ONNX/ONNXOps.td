//===- ONNXOps.td - ONNX-level dialect ---------------------*- tablegen -*-===//
//
// The import target: one typed op per ONNX operator that qwen-opt supports,
// with the operator's inputs, outputs and attributes under their ONNX names.
// Ops of the com.microsoft domain live under `onnx.ms.*`.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_ONNX_OPS
#define QWEN_ONNX_OPS

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/BuiltinAttributes.td"

def ONNX_Dialect : Dialect {
  let name = "onnx";
  let cppNamespace = "::qwen::onnxir";
  let summary = "ONNX operators as typed MLIR ops (the import level)";
  let description = [{
    Each op mirrors one ONNX operator (opsets 14 to 23, and the com.microsoft
    contrib operators that onnxruntime's exporters emit). Operands follow the
    operator's input order; an absent optional input is an absent operand,
    spelled with its keyword in the custom syntax. Attributes keep their ONNX
    names. Large initializers never appear here as literals: the importer
    refers to them through `qwen.weight`.

    ```mlir
    %0 = onnx.MatMul %x, %w : (tensor<1x8x64xf32>, tensor<64x64xf32>) -> tensor<1x8x64xf32>
    %1 = onnx.Add %0, %b : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
    ```
  }];
  let useDefaultAttributePrinterParser = 0;
  let useDefaultTypePrinterParser = 0;
}

class ONNX_Op<string mnemonic, list<Trait> traits = []>
    : Op<ONNX_Dialect, mnemonic, !listconcat([Pure], traits)>;

// Ops whose operands are all required print as `onnx.X %a, %b : (..) -> ..`.
class ONNX_SimpleOp<string mnemonic, list<Trait> traits = []>
    : ONNX_Op<mnemonic, traits> {
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

class ONNX_BinaryOp<string mnemonic, string onnxName, list<Trait> traits = []>
    : ONNX_SimpleOp<mnemonic, !listconcat([ResultsBroadcastableShape], traits)> {
  let summary = "ONNX " # onnxName # " (multidirectional broadcasting)";
  let description = "ONNX `" # onnxName # "`: element-wise with numpy-style "
    "broadcasting. The verifier checks that static shapes broadcast.";
  let arguments = (ins AnyTensor:$A, AnyTensor:$B);
  let results = (outs AnyTensor:$C);
}

class ONNX_ArithBinaryOp<string mnemonic, list<Trait> traits = []>
    : ONNX_BinaryOp<mnemonic, mnemonic,
        !listconcat([AllElementTypesMatch<["A", "B", "C"]>], traits)>;
class ONNX_CompareOp<string mnemonic>
    : ONNX_BinaryOp<mnemonic, mnemonic, [AllElementTypesMatch<["A", "B"]>]> {
  let results = (outs TensorOf<[I1]>:$C);
}

def ONNX_AddOp : ONNX_ArithBinaryOp<"Add", [Commutative]>;
def ONNX_SubOp : ONNX_ArithBinaryOp<"Sub">;
def ONNX_MulOp : ONNX_ArithBinaryOp<"Mul", [Commutative]>;
def ONNX_DivOp : ONNX_ArithBinaryOp<"Div">;
def ONNX_PowOp : ONNX_BinaryOp<"Pow", "Pow", [AllElementTypesMatch<["A", "C"]>]>;
def ONNX_ModOp : ONNX_ArithBinaryOp<"Mod"> {
  let arguments = (ins AnyTensor:$A, AnyTensor:$B,
                       DefaultValuedAttr<SI64Attr, "0">:$fmod);
}
def ONNX_EqualOp : ONNX_CompareOp<"Equal">;
def ONNX_LessOp : ONNX_CompareOp<"Less">;
def ONNX_LessOrEqualOp : ONNX_CompareOp<"LessOrEqual">;
def ONNX_GreaterOp : ONNX_CompareOp<"Greater">;
def ONNX_GreaterOrEqualOp : ONNX_CompareOp<"GreaterOrEqual">;
def ONNX_AndOp : ONNX_ArithBinaryOp<"And">;
def ONNX_OrOp : ONNX_ArithBinaryOp<"Or">;
def ONNX_XorOp : ONNX_ArithBinaryOp<"Xor">;

class ONNX_VariadicBroadcastOp<string mnemonic>
    : ONNX_SimpleOp<mnemonic, [ResultsBroadcastableShape, SameOperandsAndResultElementType]> {
  let summary = "ONNX " # mnemonic # " over any number of inputs (broadcasting)";
  let arguments = (ins Variadic<AnyTensor>:$data_0);
  let results = (outs AnyTensor:$result);
}
def ONNX_MaxOp : ONNX_VariadicBroadcastOp<"Max">;
def ONNX_MinOp : ONNX_VariadicBroadcastOp<"Min">;
def ONNX_SumOp : ONNX_VariadicBroadcastOp<"Sum">;

def ONNX_WhereOp : ONNX_SimpleOp<"Where", [ResultsBroadcastableShape,
    AllElementTypesMatch<["X", "Y", "output"]>]> {
  let summary = "ONNX Where: select X where condition else Y";
  let arguments = (ins TensorOf<[I1]>:$condition, AnyTensor:$X, AnyTensor:$Y);
  let results = (outs AnyTensor:$output);
}

class ONNX_UnaryOp<string mnemonic, list<Trait> traits = []>
    : ONNX_SimpleOp<mnemonic, !listconcat([SameOperandsAndResultShape], traits)> {
  let summary = "ONNX " # mnemonic # " (element-wise)";
  let arguments = (ins AnyTensor:$X);
  let results = (outs AnyTensor:$Y);
}
class ONNX_SameTypeUnaryOp<string mnemonic>
    : ONNX_UnaryOp<mnemonic, [SameOperandsAndResultElementType]>;

def ONNX_NegOp : ONNX_SameTypeUnaryOp<"Neg">;
def ONNX_AbsOp : ONNX_SameTypeUnaryOp<"Abs">;
def ONNX_SqrtOp : ONNX_SameTypeUnaryOp<"Sqrt">;
def ONNX_ReciprocalOp : ONNX_SameTypeUnaryOp<"Reciprocal">;
def ONNX_ExpOp : ONNX_SameTypeUnaryOp<"Exp">;
def ONNX_LogOp : ONNX_SameTypeUnaryOp<"Log">;
def ONNX_CosOp : ONNX_SameTypeUnaryOp<"Cos">;
def ONNX_SinOp : ONNX_SameTypeUnaryOp<"Sin">;
def ONNX_TanhOp : ONNX_SameTypeUnaryOp<"Tanh">;
def ONNX_SigmoidOp : ONNX_SameTypeUnaryOp<"Sigmoid">;
def ONNX_ReluOp : ONNX_SameTypeUnaryOp<"Relu">;
def ONNX_ErfOp : ONNX_SameTypeUnaryOp<"Erf">;
def ONNX_FloorOp : ONNX_SameTypeUnaryOp<"Floor">;
def ONNX_CeilOp : ONNX_SameTypeUnaryOp<"Ceil">;
def ONNX_SoftplusOp : ONNX_SameTypeUnaryOp<"Softplus">;
def ONNX_NotOp : ONNX_SameTypeUnaryOp<"Not">;
def ONNX_IdentityOp : ONNX_SameTypeUnaryOp<"Identity"> {
  let hasFolder = 1;
}
def ONNX_IsNaNOp : ONNX_UnaryOp<"IsNaN"> {
  let results = (outs TensorOf<[I1]>:$Y);
}
def ONNX_IsInfOp : ONNX_UnaryOp<"IsInf"> {
  let arguments = (ins AnyTensor:$X,
                       DefaultValuedAttr<SI64Attr, "1">:$detect_negative,
                       DefaultValuedAttr<SI64Attr, "1">:$detect_positive);
  let results = (outs TensorOf<[I1]>:$Y);
}

def ONNX_CastOp : ONNX_UnaryOp<"Cast"> {
  let summary = "ONNX Cast to the element type `to`";
  let arguments = (ins AnyTensor:$input, TypeAttr:$to,
                       DefaultValuedAttr<SI64Attr, "1">:$saturate);
  let results = (outs AnyTensor:$output);
  let hasVerifier = 1;
  let hasFolder = 1;
}
def ONNX_CastLikeOp : ONNX_SimpleOp<"CastLike"> {
  let summary = "ONNX CastLike: cast to the element type of target_type";
  let arguments = (ins AnyTensor:$input, AnyTensor:$target_type,
                       DefaultValuedAttr<SI64Attr, "1">:$saturate);
  let results = (outs AnyTensor:$output);
}

//===----------------------------------------------------------------------===//
// Constants and shapes
//===----------------------------------------------------------------------===//

def ONNX_ConstantOp : ONNX_Op<"Constant", [ConstantLike, AllTypesMatch<["value", "output"]>]> {
  let summary = "ONNX Constant (small values only; weights use qwen.weight)";
  let description = [{
    Every form of ONNX's Constant (`value`, `value_float(s)`, `value_int(s)`)
    is imported as one elements attribute.

    ```mlir
    %shape = onnx.Constant dense<[1, 8, 4, 16]> : tensor<4xi64>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyTensor:$output);
  let assemblyFormat = "$value attr-dict";
  let hasFolder = 1;
}

def ONNX_ConstantOfShapeOp : ONNX_SimpleOp<"ConstantOfShape"> {
  let summary = "ONNX ConstantOfShape: a tensor of the given shape filled with value";
  let arguments = (ins TensorOf<[I64]>:$input, OptionalAttr<ElementsAttr>:$value);
  let results = (outs AnyTensor:$output);
}

def ONNX_ShapeOp : ONNX_SimpleOp<"Shape"> {
  let summary = "ONNX Shape (with optional start/end slicing)";
  let arguments = (ins AnyTensor:$data, OptionalAttr<SI64Attr>:$start,
                       OptionalAttr<SI64Attr>:$end);
  let results = (outs TensorOf<[I64]>:$shape);
}
def ONNX_SizeOp : ONNX_SimpleOp<"Size"> {
  let summary = "ONNX Size: number of elements";
  let arguments = (ins AnyTensor:$data);
  let results = (outs TensorOf<[I64]>:$size);
}
def ONNX_RangeOp : ONNX_SimpleOp<"Range", [AllElementTypesMatch<["start", "limit", "delta", "output"]>]> {
  let summary = "ONNX Range";
  let arguments = (ins AnyTensor:$start, AnyTensor:$limit, AnyTensor:$delta);
  let results = (outs AnyTensor:$output);
}

def ONNX_ReshapeOp : ONNX_SimpleOp<"Reshape", [AllElementTypesMatch<["data", "reshaped"]>]> {
  let summary = "ONNX Reshape";
  let arguments = (ins AnyTensor:$data, TensorOf<[I64]>:$shape,
                       DefaultValuedAttr<SI64Attr, "0">:$allowzero);
  let results = (outs AnyTensor:$reshaped);
  let hasVerifier = 1;
}
def ONNX_TransposeOp : ONNX_SimpleOp<"Transpose", [AllElementTypesMatch<["data", "transposed"]>]> {
  let summary = "ONNX Transpose";
  let arguments = (ins AnyTensor:$data, OptionalAttr<DenseI64ArrayAttr>:$perm);
  let results = (outs AnyTensor:$transposed);
  let hasVerifier = 1;
}
def ONNX_ConcatOp : ONNX_SimpleOp<"Concat", [SameOperandsAndResultElementType]> {
  let summary = "ONNX Concat";
  let arguments = (ins Variadic<AnyTensor>:$inputs, SI64Attr:$axis);
  let results = (outs AnyTensor:$concat_result);
  let hasVerifier = 1;
}
def ONNX_SplitOp : ONNX_Op<"Split"> {
  let summary = "ONNX Split into several outputs";
  let arguments = (ins AnyTensor:$input, Optional<TensorOf<[I64]>>:$split,
                       DefaultValuedAttr<SI64Attr, "0">:$axis,
                       OptionalAttr<SI64Attr>:$num_outputs);
  let results = (outs Variadic<AnyTensor>:$outputs);
  let assemblyFormat = "$input (`split` $split^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}
def ONNX_SliceOp : ONNX_Op<"Slice", [AttrSizedOperandSegments]> {
  let summary = "ONNX Slice";
  let arguments = (ins AnyTensor:$data, TensorOf<[I32, I64]>:$starts,
                       TensorOf<[I32, I64]>:$ends,
                       Optional<TensorOf<[I32, I64]>>:$axes,
                       Optional<TensorOf<[I32, I64]>>:$steps);
  let results = (outs AnyTensor:$output);
  let assemblyFormat = "$data `,` $starts `,` $ends (`axes` $axes^)? (`steps` $steps^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_SqueezeOp : ONNX_Op<"Squeeze"> {
  let summary = "ONNX Squeeze";
  let arguments = (ins AnyTensor:$data, Optional<TensorOf<[I64]>>:$axes);
  let results = (outs AnyTensor:$squeezed);
  let assemblyFormat = "$data (`axes` $axes^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_UnsqueezeOp : ONNX_SimpleOp<"Unsqueeze"> {
  let summary = "ONNX Unsqueeze";
  let arguments = (ins AnyTensor:$data, TensorOf<[I64]>:$axes);
  let results = (outs AnyTensor:$expanded);
}
def ONNX_ExpandOp : ONNX_SimpleOp<"Expand"> {
  let summary = "ONNX Expand (broadcast to shape)";
  let arguments = (ins AnyTensor:$input, TensorOf<[I64]>:$shape);
  let results = (outs AnyTensor:$output);
}
def ONNX_FlattenOp : ONNX_SimpleOp<"Flatten"> {
  let summary = "ONNX Flatten to 2-D";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<SI64Attr, "1">:$axis);
  let results = (outs AnyTensor:$output);
}
def ONNX_TileOp : ONNX_SimpleOp<"Tile"> {
  let summary = "ONNX Tile";
  let arguments = (ins AnyTensor:$input, TensorOf<[I64]>:$repeats);
  let results = (outs AnyTensor:$output);
}
def ONNX_TriluOp : ONNX_Op<"Trilu"> {
  let summary = "ONNX Trilu (upper or lower triangle)";
  let arguments = (ins AnyTensor:$input, Optional<TensorOf<[I64]>>:$k,
                       DefaultValuedAttr<SI64Attr, "1">:$upper);
  let results = (outs AnyTensor:$output);
  let assemblyFormat = "$input (`k` $k^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_CumSumOp : ONNX_SimpleOp<"CumSum"> {
  let summary = "ONNX CumSum";
  let arguments = (ins AnyTensor:$x, TensorOf<[I32, I64]>:$axis,
                       DefaultValuedAttr<SI64Attr, "0">:$exclusive,
                       DefaultValuedAttr<SI64Attr, "0">:$reverse);
  let results = (outs AnyTensor:$y);
}

//===----------------------------------------------------------------------===//
// Indexing
//===----------------------------------------------------------------------===//

def ONNX_GatherOp : ONNX_SimpleOp<"Gather"> {
  let summary = "ONNX Gather along axis";
  let arguments = (ins AnyTensor:$data, TensorOf<[I32, I64]>:$indices,
                       DefaultValuedAttr<SI64Attr, "0">:$axis);
  let results = (outs AnyTensor:$output);
  let hasVerifier = 1;
}
def ONNX_GatherElementsOp : ONNX_SimpleOp<"GatherElements"> {
  let summary = "ONNX GatherElements";
  let arguments = (ins AnyTensor:$data, TensorOf<[I32, I64]>:$indices,
                       DefaultValuedAttr<SI64Attr, "0">:$axis);
  let results = (outs AnyTensor:$output);
}
def ONNX_GatherNDOp : ONNX_SimpleOp<"GatherND"> {
  let summary = "ONNX GatherND";
  let arguments = (ins AnyTensor:$data, TensorOf<[I64]>:$indices,
                       DefaultValuedAttr<SI64Attr, "0">:$batch_dims);
  let results = (outs AnyTensor:$output);
}
def ONNX_ScatterNDOp : ONNX_SimpleOp<"ScatterND"> {
  let summary = "ONNX ScatterND";
  let arguments = (ins AnyTensor:$data, TensorOf<[I64]>:$indices, AnyTensor:$updates,
                       DefaultValuedAttr<StrAttr, "\"none\"">:$reduction);
  let results = (outs AnyTensor:$output);
}
def ONNX_ScatterElementsOp : ONNX_SimpleOp<"ScatterElements"> {
  let summary = "ONNX ScatterElements";
  let arguments = (ins AnyTensor:$data, TensorOf<[I32, I64]>:$indices, AnyTensor:$updates,
                       DefaultValuedAttr<SI64Attr, "0">:$axis,
                       DefaultValuedAttr<StrAttr, "\"none\"">:$reduction);
  let results = (outs AnyTensor:$output);
}

//===----------------------------------------------------------------------===//
// Linear algebra, reductions, normalisation
//===----------------------------------------------------------------------===//

def ONNX_MatMulOp : ONNX_SimpleOp<"MatMul", [AllElementTypesMatch<["A", "B", "Y"]>]> {
  let summary = "ONNX MatMul (numpy matmul semantics)";
  let arguments = (ins AnyTensor:$A, AnyTensor:$B);
  let results = (outs AnyTensor:$Y);
  let hasVerifier = 1;
}
def ONNX_GemmOp : ONNX_Op<"Gemm"> {
  let summary = "ONNX Gemm: alpha * op(A) * op(B) + beta * C";
  let arguments = (ins AnyTensor:$A, AnyTensor:$B, Optional<AnyTensor>:$C,
                       DefaultValuedAttr<F32Attr, "1.0">:$alpha,
                       DefaultValuedAttr<F32Attr, "1.0">:$beta,
                       DefaultValuedAttr<SI64Attr, "0">:$transA,
                       DefaultValuedAttr<SI64Attr, "0">:$transB);
  let results = (outs AnyTensor:$Y);
  let assemblyFormat = "$A `,` $B (`bias` $C^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_EinsumOp : ONNX_SimpleOp<"Einsum"> {
  let summary = "ONNX Einsum";
  let arguments = (ins Variadic<AnyTensor>:$Inputs, StrAttr:$equation);
  let results = (outs AnyTensor:$Output);
}
def ONNX_SoftmaxOp : ONNX_SimpleOp<"Softmax", [SameOperandsAndResultType]> {
  let summary = "ONNX Softmax along axis";
  let arguments = (ins AnyTensor:$input, DefaultValuedAttr<SI64Attr, "-1">:$axis);
  let results = (outs AnyTensor:$output);
  let hasVerifier = 1;
}

class ONNX_ReduceOp<string mnemonic> : ONNX_Op<mnemonic> {
  let summary = "ONNX " # mnemonic # " (axes as an input, opset 18+)";
  let description = "Older opsets' `axes` attribute is imported as a constant input.";
  let arguments = (ins AnyTensor:$data, Optional<TensorOf<[I64]>>:$axes,
                       DefaultValuedAttr<SI64Attr, "1">:$keepdims,
                       DefaultValuedAttr<SI64Attr, "0">:$noop_with_empty_axes);
  let results = (outs AnyTensor:$reduced);
  let assemblyFormat = "$data (`axes` $axes^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_ReduceMeanOp : ONNX_ReduceOp<"ReduceMean">;
def ONNX_ReduceSumOp : ONNX_ReduceOp<"ReduceSum">;
def ONNX_ReduceMaxOp : ONNX_ReduceOp<"ReduceMax">;
def ONNX_ReduceMinOp : ONNX_ReduceOp<"ReduceMin">;

def ONNX_LayerNormalizationOp : ONNX_Op<"LayerNormalization"> {
  let summary = "ONNX LayerNormalization";
  let arguments = (ins AnyTensor:$X, AnyTensor:$Scale, Optional<AnyTensor>:$B,
                       DefaultValuedAttr<SI64Attr, "-1">:$axis,
                       DefaultValuedAttr<F32Attr, "1e-5">:$epsilon,
                       DefaultValuedAttr<SI64Attr, "1">:$stash_type);
  let results = (outs AnyTensor:$Y);
  let assemblyFormat = "$X `,` $Scale (`bias` $B^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_RMSNormalizationOp : ONNX_SimpleOp<"RMSNormalization"> {
  let summary = "ONNX RMSNormalization (opset 23)";
  let arguments = (ins AnyTensor:$X, AnyTensor:$scale,
                       DefaultValuedAttr<SI64Attr, "-1">:$axis,
                       DefaultValuedAttr<F32Attr, "1e-5">:$epsilon,
                       DefaultValuedAttr<SI64Attr, "1">:$stash_type);
  let results = (outs AnyTensor:$Y);
}
def ONNX_RotaryEmbeddingOp : ONNX_Op<"RotaryEmbedding"> {
  let summary = "ONNX RotaryEmbedding (opset 23)";
  let arguments = (ins AnyTensor:$X, AnyTensor:$cos_cache, AnyTensor:$sin_cache,
                       Optional<TensorOf<[I64]>>:$position_ids,
                       DefaultValuedAttr<SI64Attr, "0">:$interleaved,
                       OptionalAttr<SI64Attr>:$num_heads,
                       DefaultValuedAttr<SI64Attr, "0">:$rotary_embedding_dim);
  let results = (outs AnyTensor:$Y);
  let assemblyFormat = "$X `,` $cos_cache `,` $sin_cache (`position_ids` $position_ids^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_AttentionOp : ONNX_Op<"Attention", [AttrSizedOperandSegments]> {
  let summary = "ONNX Attention (opset 23)";
  let description = [{
    The optional outputs present_key, present_value and qk_matmul_output follow
    Y in that order; the importer creates them up to the last one used.
  }];
  let arguments = (ins AnyTensor:$Q, AnyTensor:$K, AnyTensor:$V,
                       Optional<AnyTensor>:$attn_mask,
                       Optional<AnyTensor>:$past_key,
                       Optional<AnyTensor>:$past_value,
                       DefaultValuedAttr<SI64Attr, "0">:$is_causal,
                       OptionalAttr<SI64Attr>:$kv_num_heads,
                       OptionalAttr<SI64Attr>:$q_num_heads,
                       DefaultValuedAttr<SI64Attr, "0">:$qk_matmul_output_mode,
                       OptionalAttr<F32Attr>:$scale,
                       DefaultValuedAttr<F32Attr, "0.0">:$softcap,
                       OptionalAttr<SI64Attr>:$softmax_precision);
  let results = (outs AnyTensor:$Y, Variadic<AnyTensor>:$optional_outputs);
  let extraClassDeclaration = [{
    ::mlir::Value getPresentKey() { return getOptionalResult(0); }
    ::mlir::Value getPresentValue() { return getOptionalResult(1); }
    ::mlir::Value getOptionalResult(unsigned i) {
      return i < getOptionalOutputs().size() ? getOptionalOutputs()[i] : nullptr;
    }
  }];
  let hasVerifier = 1;
  let assemblyFormat = [{
    $Q `,` $K `,` $V (`mask` $attn_mask^)? (`past` $past_key^ `,` $past_value)?
    attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Quantization (ai.onnx)
//===----------------------------------------------------------------------===//

def ONNX_QuantizeLinearOp : ONNX_Op<"QuantizeLinear"> {
  let summary = "ONNX QuantizeLinear (per-tensor, per-axis or blocked)";
  let arguments = (ins AnyTensor:$x, AnyTensor:$y_scale, Optional<AnyTensor>:$y_zero_point,
                       DefaultValuedAttr<SI64Attr, "1">:$axis,
                       DefaultValuedAttr<SI64Attr, "0">:$block_size,
                       DefaultValuedAttr<SI64Attr, "1">:$saturate,
                       OptionalAttr<TypeAttr>:$output_dtype);
  let results = (outs AnyTensor:$y);
  let assemblyFormat = "$x `,` $y_scale (`zero_point` $y_zero_point^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}
def ONNX_DequantizeLinearOp : ONNX_Op<"DequantizeLinear"> {
  let summary = "ONNX DequantizeLinear (per-tensor, per-axis or blocked)";
  let arguments = (ins AnyTensor:$x, AnyTensor:$x_scale, Optional<AnyTensor>:$x_zero_point,
                       DefaultValuedAttr<SI64Attr, "1">:$axis,
                       DefaultValuedAttr<SI64Attr, "0">:$block_size);
  let results = (outs AnyTensor:$y);
  let assemblyFormat = "$x `,` $x_scale (`zero_point` $x_zero_point^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}
def ONNX_DynamicQuantizeLinearOp : ONNX_SimpleOp<"DynamicQuantizeLinear"> {
  let summary = "ONNX DynamicQuantizeLinear (uint8, per-tensor, computed at run time)";
  let arguments = (ins TensorOf<[F32]>:$x);
  let results = (outs TensorOf<[UI8]>:$y, TensorOf<[F32]>:$y_scale,
                      TensorOf<[UI8]>:$y_zero_point);
}
def ONNX_MatMulIntegerOp : ONNX_Op<"MatMulInteger", [AttrSizedOperandSegments]> {
  let summary = "ONNX MatMulInteger: int8/uint8 matmul with int32 result";
  let arguments = (ins TensorOf<[I8, UI8]>:$A, TensorOf<[I8, UI8]>:$B,
                       Optional<TensorOf<[I8, UI8]>>:$a_zero_point,
                       Optional<TensorOf<[I8, UI8]>>:$b_zero_point);
  let results = (outs TensorOf<[I32]>:$Y);
  let assemblyFormat = "$A `,` $B (`a_zero_point` $a_zero_point^)? (`b_zero_point` $b_zero_point^)? attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// com.microsoft contrib operators (onnxruntime-genai builder, optimum)
//===----------------------------------------------------------------------===//

class ONNX_MSOp<string mnemonic, list<Trait> traits = []>
    : ONNX_Op<"ms." # mnemonic, traits>;

def ONNX_MSSimplifiedLayerNormalizationOp : ONNX_Op<"SimplifiedLayerNormalization"> {
  let summary = "onnxruntime SimplifiedLayerNormalization (RMSNorm)";
  let arguments = (ins AnyTensor:$X, AnyTensor:$scale,
                       DefaultValuedAttr<SI64Attr, "-1">:$axis,
                       DefaultValuedAttr<F32Attr, "1e-5">:$epsilon,
                       DefaultValuedAttr<SI64Attr, "1">:$stash_type);
  let results = (outs AnyTensor:$Y, Optional<AnyTensor>:$inv_std_var);
  let assemblyFormat = "$X `,` $scale attr-dict `:` functional-type(operands, results)";
}
def ONNX_MSSkipSimplifiedLayerNormalizationOp
    : ONNX_MSOp<"SkipSimplifiedLayerNormalization"> {
  let summary = "com.microsoft SkipSimplifiedLayerNormalization (residual add + RMSNorm)";
  let description = [{
    The optional outputs mean, inv_std_var and input_skip_bias_sum follow
    `output` in that order; the importer creates them up to the last one used.
  }];
  let arguments = (ins AnyTensor:$input, AnyTensor:$skip, AnyTensor:$gamma,
                       Optional<AnyTensor>:$bias,
                       DefaultValuedAttr<F32Attr, "1e-5">:$epsilon);
  let results = (outs AnyTensor:$output, Variadic<AnyTensor>:$optional_outputs);
  let extraClassDeclaration = [{
    /// The residual sum (input + skip + bias), when the graph uses it.
    ::mlir::Value getInputSkipBiasSum() {
      return getOptionalOutputs().size() == 3 ? getOptionalOutputs()[2] : nullptr;
    }
  }];
  let hasVerifier = 1;
  let assemblyFormat = "$input `,` $skip `,` $gamma (`bias` $bias^)? attr-dict `:` functional-type(operands, results)";
}
def ONNX_MSRotaryEmbeddingOp : ONNX_MSOp<"RotaryEmbedding"> {
  let summary = "com.microsoft RotaryEmbedding";
  let arguments = (ins AnyTensor:$input, TensorOf<[I64]>:$position_ids,
                       AnyTensor:$cos_cache, AnyTensor:$sin_cache,
                       DefaultValuedAttr<SI64Attr, "0">:$interleaved,
                       DefaultValuedAttr<SI64Attr, "0">:$is_packed_batching,
                       DefaultValuedAttr<SI64Attr, "0">:$num_heads,
                       DefaultValuedAttr<SI64Attr, "0">:$rotary_embedding_dim,
                       DefaultValuedAttr<F32Attr, "1.0">:$scale);
  let results = (outs AnyTensor:$output);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}
def ONNX_MSGroupQueryAttentionOp : ONNX_MSOp<"GroupQueryAttention", [AttrSizedOperandSegments]> {
  let summary = "com.microsoft GroupQueryAttention (GQA with KV cache)";
  let arguments = (ins AnyTensor:$query, Optional<AnyTensor>:$key, Optional<AnyTensor>:$value,
                       Optional<AnyTensor>:$past_key, Optional<AnyTensor>:$past_value,
                       TensorOf<[I32]>:$seqlens_k, TensorOf<[I32]>:$total_sequence_length,
                       Optional<AnyTensor>:$cos_cache, Optional<AnyTensor>:$sin_cache,
                       Optional<TensorOf<[I64]>>:$position_ids,
                       Optional<AnyTensor>:$attention_bias,
                       Optional<AnyTensor>:$head_sink,
                       DefaultValuedAttr<SI64Attr, "0">:$do_rotary,
                       SI64Attr:$kv_num_heads,
                       DefaultValuedAttr<SI64Attr, "-1">:$local_window_size,
                       SI64Attr:$num_heads,
                       DefaultValuedAttr<SI64Attr, "0">:$rotary_interleaved,
                       DefaultValuedAttr<F32Attr, "0.0">:$scale,
                       DefaultValuedAttr<SI64Attr, "0">:$smooth_softmax,
                       DefaultValuedAttr<F32Attr, "0.0">:$softcap);
  let results = (outs AnyTensor:$output, AnyTensor:$present_key, AnyTensor:$present_value);
  let assemblyFormat = [{
    $query (`key` $key^)? (`value` $value^)? (`past_key` $past_key^)? (`past_value` $past_value^)?
    `seqlens_k` $seqlens_k `total_sequence_length` $total_sequence_length
    (`cos_cache` $cos_cache^)? (`sin_cache` $sin_cache^)? (`position_ids` $position_ids^)?
    (`attention_bias` $attention_bias^)? (`head_sink` $head_sink^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}
def ONNX_MSMatMulNBitsOp : ONNX_MSOp<"MatMulNBits", [AttrSizedOperandSegments]> {
  let summary = "com.microsoft MatMulNBits: A x dequant(B) with blocked N-bit B";
  let description = [{
    B is [N, K/block_size, block_size*bits/8] uint8; scales are N*K/block_size
    values; zero points (optional) are packed uint8 or float.
  }];
  let arguments = (ins AnyTensor:$A, TensorOf<[UI8, I32]>:$B, AnyTensor:$scales,
                       Optional<AnyTensor>:$zero_points, Optional<TensorOf<[I32]>>:$g_idx,
                       Optional<AnyTensor>:$bias,
                       SI64Attr:$K, SI64Attr:$N,
                       DefaultValuedAttr<SI64Attr, "0">:$accuracy_level,
                       DefaultValuedAttr<SI64Attr, "4">:$bits, SI64Attr:$block_size);
  let results = (outs AnyTensor:$Y);
  let assemblyFormat = [{
    $A `,` $B `,` $scales (`zero_points` $zero_points^)? (`g_idx` $g_idx^)? (`bias` $bias^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}
def ONNX_MSGatherBlockQuantizedOp : ONNX_MSOp<"GatherBlockQuantized"> {
  let summary = "com.microsoft GatherBlockQuantized (quantized embedding lookup)";
  let arguments = (ins AnyTensor:$data, TensorOf<[I32, I64]>:$indices, AnyTensor:$scales,
                       Optional<AnyTensor>:$zero_points,
                       DefaultValuedAttr<SI64Attr, "4">:$bits,
                       DefaultValuedAttr<SI64Attr, "128">:$block_size,
                       DefaultValuedAttr<SI64Attr, "0">:$gather_axis,
                       DefaultValuedAttr<SI64Attr, "1">:$quantize_axis);
  let results = (outs AnyTensor:$output);
  let assemblyFormat = "$data `,` $indices `,` $scales (`zero_points` $zero_points^)? attr-dict `:` functional-type(operands, results)";
}

#endif // QWEN_ONNX_OPS
