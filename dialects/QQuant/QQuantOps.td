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

    `bf16_input` (weight-only only): the input is first rounded to bfloat16
    (round to nearest even), a 16-bit activation; the products and sums stay
    f32. It is what lets the x86 4-bit kernel multiply with vdpbf16ps
    (QuantKernels.cpp) instead of converting every weight to f32.

    `i16_input` (weight-only, group-wise weights only): the input is first
    quantized to int16 and dequantized, symmetric per block of k the size of
    the weight's group (scale = absmax / 32767; an all-zero block stays 0;
    round half to even), a 16-bit activation with a 15-bit mantissa per
    block where bfloat16 has 8 bits per element. The products and sums are
    then those of the dequantized input. It is what lets the x86 4-bit
    kernel multiply in int16 with vpdpwssd and scale once per group.

    ```mlir
    %y = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>}
        : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
    %z = qquant.linear %x, %w4 {bf16_input}
        : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
    %u = qquant.linear %x, %w4 {i16_input}
        : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input, QQuant_AnyWeight:$weight,
                       Optional<QQuant_FloatTensor>:$bias,
                       OptionalAttr<QQuant_ActivationAttr>:$act,
                       UnitAttr:$bf16_input, UnitAttr:$i16_input);
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
    `logits = h * dequant(W)^T`; `act`, `bf16_input` and `i16_input` mean
    what they mean on `qquant.linear` (an LM head at 4 bits in groups takes
    the same int16 kernel as the linears).

    ```mlir
    %l = qquant.logits %h, %t {tied} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x256xf32>
    %m = qquant.logits %h, %t4 {i16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x256xf32>
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input, QQuant_AnyWeight:$weight,
                       UnitAttr:$tied, OptionalAttr<QQuant_ActivationAttr>:$act,
                       UnitAttr:$bf16_input, UnitAttr:$i16_input);
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
    over the whole tensor; `q = clamp(roundeven(x / scale), -qmax, qmax)` in f32 (`qmax = 2^(bits-1) - 1`;
    0 where the scale is 0). The scale result has the
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

def QQuant_QLinearOp : QQuant_Op<"qlinear", [Pure]> {
  let summary = "Linear layer on activations already quantized per token (W8A8, W4A8)";
  let description = [{
    The second half of `qquant.linear` with `#qquant.act<dynamic, i8,
    per_token>`: `input` and `input_scale` are what `qquant.dynamic_quantize
    {per_token}` (or a fused producer: `qquant.rms_norm_quantize`,
    `qquant.silu_mul_quantize`) made of the float activation, so

    ```
    acc = sum_k input[..., k] * code(W[n, k])          (i32)
    y   = f32(acc) * input_scale[..., 0] * s_w[n] (+ bias[n])
    ```

    per tensor or channel, and per group of G inputs
    `y = (sum_g f32(acc_g) * s_w[n, g]) * input_scale (+ bias)` (g ascending):
    bit for bit the arithmetic of the `qquant.linear` it replaces.
    `--qquant-fuse-act-quant` creates it so that the linears reading one
    activation (q/k/v, gate/up) share one quantization of it.

    ```mlir
    %y = qquant.qlinear %q, %s, %w : (tensor<1x8x64xi8>, tensor<1x8x1xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8]>:$input, RankedTensorOf<[F32]>:$input_scale,
                       QQuant_AnyWeight:$weight, Optional<QQuant_FloatTensor>:$bias);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$input `,` $input_scale `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_RMSNormQuantizeOp : QQuant_Op<"rms_norm_quantize", [Pure]> {
  let summary = "RMSNorm followed by per-token dynamic int8 quantization, fused";
  let description = [{
    `qquant.dynamic_quantize {per_token}` of `qwen.rms_norm %input, %weight`
    over the last dimension, in one kernel: the normalized row is never
    stored as floats. Same f32 arithmetic as the two ops.

    ```mlir
    %q, %s = qquant.rms_norm_quantize %x, %g {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> (tensor<1x8x64xi8>, tensor<1x8x1xf32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$input, RankedTensorOf<[F32]>:$weight, F32Attr:$epsilon);
  let results = (outs RankedTensorOf<[I8]>:$output, RankedTensorOf<[F32]>:$scale);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_SiluMulQuantizeOp : QQuant_Op<"silu_mul_quantize", [Pure]> {
  let summary = "SwiGLU silu(gate) * up followed by per-token dynamic int8 quantization, fused";
  let description = [{
    `qquant.dynamic_quantize {per_token}` of `qwen.silu_mul %gate, %up` in
    one kernel (the input of a W8A8 down projection): the product is never
    stored as floats. Same f32 arithmetic as the two ops.

    ```mlir
    %q, %s = qquant.silu_mul_quantize %g, %u : (tensor<1x8x128xf32>, tensor<1x8x128xf32>) -> (tensor<1x8x128xi8>, tensor<1x8x1xf32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$gate, RankedTensorOf<[F32]>:$up);
  let results = (outs RankedTensorOf<[I8]>:$output, RankedTensorOf<[F32]>:$scale);
  let assemblyFormat = "$gate `,` $up attr-dict `:` functional-type(operands, results)";
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

//===----------------------------------------------------------------------===//
// Integer-only ops (--qwen-integer-only)
//
// Every int8 value is symmetric with zero point 0 and the restricted range
// [-127, 127] unless an op says otherwise; its real value is q * s with a
// static scale s from calibration that the pass folded into the ops'
// attributes (the ops themselves carry no float scale on int8 types).
//===----------------------------------------------------------------------===//

def QQuant_I8Tensor : RankedTensorOf<[I8]>;
def QQuant_I32Tensor : RankedTensorOf<[I32]>;

def QQuant_QuantizeOp : QQuant_Op<"quantize", [Pure]> {
  let summary = "Static per-tensor quantization of a float tensor to int8";
  let description = [{
    `q = clamp(roundeven(x / scale), -127, 127)` with the division in f32
    (`scale` rounded to f32 first), the same arithmetic as the static
    activation quantization of `qquant.linear`; to int16 (the input of
    `qquant.int_rms_norm`) the clamp is [-32767, 32767].

    ```mlir
    %q = qquant.quantize %x {scale = 0.0125} : tensor<1x8x64xf32> -> tensor<1x8x64xi8>
    ```
  }];
  let arguments = (ins QQuant_FloatTensor:$input, F64Attr:$scale);
  let results = (outs RankedTensorOf<[I8, I16]>:$output);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($output)";
  let hasVerifier = 1;
}

def QQuant_DequantizeOp : QQuant_Op<"dequantize", [Pure]> {
  let summary = "int8 / int32 to float with per-tensor or per-channel scales";
  let description = [{
    `y[..., c] = f32(x[..., c]) * scale[c] (+ bias[c])` (f32 arithmetic);
    `scale` has one entry (per tensor) or one per element of the last
    dimension (per channel: an integer linear's accumulator times
    `s_x * s_w[n]`).

    ```mlir
    %y = qquant.dequantize %acc, %b {scale = array<f32: 1.0e-4, 2.0e-4>} : (tensor<1x8x2xi32>, tensor<2xf32>) -> tensor<1x8x2xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8, I32]>:$input,
                       Optional<QQuant_FloatTensor>:$bias,
                       DenseF32ArrayAttr:$scale);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$input (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_RequantizeOp : QQuant_Op<"requantize", [Pure]> {
  let summary = "int32 to int8 with fixed-point multipliers (gemmlowp)";
  let description = [{
    Rescales int32 values by real multipliers `M = multiplier * 2^-31 *
    2^-shift` with `multiplier` in [2^30, 2^31) (or 0: the result is the
    zero point) and `shift` in [0, 31], so 0 < M < 1; one pair per tensor or
    one per element of the last dimension. Bit-exact definition (int64
    intermediates, `/` truncating toward zero, `>>` arithmetic):

    ```
    high(a, m) = (a == m == INT32_MIN) ? INT32_MAX
               : (a * m + (a * m >= 0 ? 2^30 : 1 - 2^30)) / 2^31
    rshift(x, e) = (x >> e) + ((x & (2^e - 1)) > ((2^e - 1) >> 1) + (x < 0) ? 1 : 0)
    y = clamp(rshift(high(x, multiplier), shift) + zero_point, -127, 127)
    ```

    i.e. gemmlowp's SaturatingRoundingDoublingHighMul followed by
    RoundingDivideByPOT (round half away from zero), as TFLite's
    MultiplyByQuantizedMultiplier for M < 1.
    `test/Transforms/int-only-requantize.test` checks it against numpy bit
    for bit.

    ```mlir
    %q = qquant.requantize %acc {multiplier = array<i32: 1518500250>, shift = array<i32: 7>} : tensor<1x8x64xi32> -> tensor<1x8x64xi8>
    ```
  }];
  let arguments = (ins QQuant_I32Tensor:$input, DenseI32ArrayAttr:$multiplier,
                       DenseI32ArrayAttr:$shift,
                       DefaultValuedAttr<I32Attr, "0">:$zero_point);
  let results = (outs QQuant_I8Tensor:$output);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($output)";
  let hasVerifier = 1;
}

def QQuant_IntLinearOp : QQuant_Op<"int_linear", [Pure]> {
  let summary = "int8 activations times integer weight codes, int32 result";
  let description = [{
    `acc[..., n] = sum_k x[..., k] * code(W[n, k])` exactly in int32, on
    signed symmetric uniform 8- or 4-bit weights per tensor or per channel
    (the scales are applied by the consumer: `qquant.requantize` or
    `qquant.dequantize`).

    ```mlir
    %acc = qquant.int_linear %q, %w : (tensor<1x8x64xi8>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xi32>
    ```
  }];
  let arguments = (ins QQuant_I8Tensor:$input, QQuant_AnyWeight:$weight);
  let results = (outs QQuant_I32Tensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_LookupOp : QQuant_Op<"lookup", [Pure]> {
  let summary = "Elementwise int8 -> int8 table lookup (e.g. SiLU)";
  let description = [{
    `y = table[x + 128]` with 256 entries, for -128 <= x <= 127.
    --qwen-integer-only builds SiLU's table from the input and output scales:
    `table[i] = clamp(roundeven(silu((i - 128) * s_in) / s_out), -127, 127)`.

    ```mlir
    %s = qquant.lookup %g {table = array<i8: ...256 values...>} : tensor<1x8x64xi8> -> tensor<1x8x64xi8>
    ```
  }];
  let arguments = (ins QQuant_I8Tensor:$input, DenseI8ArrayAttr:$table);
  let results = (outs QQuant_I8Tensor:$output);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($output)";
  let hasVerifier = 1;
}

def QQuant_IntMulOp : QQuant_Op<"int_mul", [Pure]> {
  let summary = "Elementwise int8 x int8 -> int32 product";
  let description = [{
    `y = x * z` (exact; |y| <= 16384), e.g. SwiGLU's silu(gate) * up before
    one `qquant.requantize`.

    ```mlir
    %p = qquant.int_mul %s, %u : (tensor<1x8x64xi8>, tensor<1x8x64xi8>) -> tensor<1x8x64xi32>
    ```
  }];
  let arguments = (ins QQuant_I8Tensor:$lhs, QQuant_I8Tensor:$rhs);
  let results = (outs QQuant_I32Tensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def QQuant_IntRMSNormOp : QQuant_Op<"int_rms_norm", [Pure]> {
  let summary = "RMSNorm of int16 values to int8, integer arithmetic only";
  let description = [{
    Over the last dimension (K entries), with int64 intermediates, `/`
    truncating toward zero:

    ```
    v    = eps + sum_k x[k]^2
    r    = isqrt(v) = floor(sqrt(v))   (integer Newton: r0 = 2^ceil(bitlen(v)/2),
                                        8 x r = min(r, (r + v / r) / 2))
    y[k] = r == 0 ? 0 : clamp(rdiv(x[k] * gain[k], r * 2^16), -127, 127)
    rdiv(n, d) = sign(n) * ((|n| + d / 2) / d)          (half away from zero)
    ```

    For `y = rms_norm(x * s_in, gamma, eps_f)` quantized with `s_out`
    (RMSNorm does not depend on the input scale except through eps):
    `gain[k] = round(gamma[k] * sqrt(K) / s_out * 2^16)`,
    `eps = round(K * eps_f / s_in^2)`.

    ```mlir
    %y = qquant.int_rms_norm %x {gain = array<i64: 65536, 131072>, eps = 12 : i64} : tensor<1x8x2xi16> -> tensor<1x8x2xi8>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I16]>:$input, DenseI64ArrayAttr:$gain,
                       I64Attr:$eps);
  let results = (outs QQuant_I8Tensor:$output);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($output)";
  let hasVerifier = 1;
}

#endif // QWEN_QQUANT_OPS
