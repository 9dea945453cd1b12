// RUN: qwen-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{uniform grids take 2, 3, 4 or 8 bits, got 5}}
func.func @bits(%w: !qquant.weight<96x64xf32, i5, symmetric, channel>) { return }

// -----

// expected-error @+1 {{group size must be 32, 64 or 128, got 48}}
func.func @group(%w: !qquant.weight<96x96xf32, i4, symmetric, group = 48>) { return }

// -----

// expected-error @+1 {{cols (96) must be a multiple of the group size (64)}}
func.func @group_divides(%w: !qquant.weight<96x96xf32, i4, symmetric, group = 64>) { return }

// -----

// expected-error @+1 {{codebooks take 2 to 8 index bits, got 9}}
func.func @codebook_bits(%w: !qquant.weight<96x64xf32, codebook 9, channel>) { return }

// -----

// expected-error @+1 {{codebook indices are unsigned and have no zero point}}
func.func @codebook_asym(%w: !qquant.weight<96x64xf32, codebook 4, asymmetric, channel>) { return }

// -----

// expected-error @+1 {{log2 grids are symmetric}}
func.func @log2_asym(%w: !qquant.weight<96x64xf32, log2 i4, asymmetric, channel>) { return }

// -----

// expected-error @+1 {{log2 grids take 3 to 8 bits (sign + exponent), got 2}}
func.func @log2_bits(%w: !qquant.weight<96x64xf32, log2 i2, channel>) { return }

// -----

// expected-error @+1 {{only 2:4 semi-structured sparsity is supported}}
func.func @sparsity(%w: !qquant.weight<96x64xf32, i4, channel, sparsity = 1:4>) { return }

// -----

// expected-error @+1 {{unknown scheme entry 'blocked'}}
func.func @entry(%w: !qquant.weight<96x64xf32, i4, blocked>) { return }

// -----

// expected-error @+1 {{expected an integer storage type like i4 or ui4}}
func.func @storage(%w: !qquant.weight<96x64xf32, f16, channel>) { return }

// -----

// expected-error @+1 {{quantized weights are 2-D [rows, cols]}}
func.func @rank(%w: !qquant.weight<96x64x2xf32, i4, channel>) { return }

// -----

// expected-error @+1 {{a quantized weight dequantizes to a float type}}
func.func @expressed(%w: !qquant.weight<96x64xi32, i4, channel>) { return }

// -----

// expected-error @+1 {{2:4 sparsity needs cols to be a multiple of 4}}
func.func @sparse_cols(%w: !qquant.weight<96x66xf32, i4, channel, sparsity = 2:4>) { return }

// -----

// expected-error @+1 {{group size is only meaningful with 'group'}}
func.func @group_attr() attributes {s = #qquant.scheme<i4, group = 32, channel>} { return }

// -----

// expected-error @+1 {{dynamic activation quantization takes 4 or 8 bits, got 16}}
func.func @act_bits() attributes {a = #qquant.act<dynamic, i16, per_token>} { return }

// -----

// expected-error @+1 {{expected per_token or per_tensor}}
func.func @act_gran() attributes {a = #qquant.act<dynamic, i8, per_row>} { return }

// -----

// expected-error @+1 {{expected a !quant.uniform per-tensor type}}
func.func @act_static() attributes {a = #qquant.act<static : i8>} { return }

// -----

// expected-error @+1 {{min (2.000000e+00) is greater than max (1.000000e+00)}}
func.func @stats_order() attributes {s = #qquant.stats<count = 1, min = 2.0, max = 1.0>} { return }

// -----

// expected-error @+1 {{clipping thresholds must be >= 0}}
func.func @stats_clip() attributes {s = #qquant.stats<count = 1, min = 0.0, max = 1.0, clip_kl = -1.0>} { return }

// -----

// expected-error @+1 {{statistics references must be @store::@entry}}
func.func @stats_ref() attributes {s = #qquant.stats<count = 1, min = 0.0, max = 1.0, histogram = @hist>} { return }

// -----

// expected-error @+1 {{'qquant.decision' must be a #qquant.decision}}
func.func @decision_kind() attributes {qquant.decision = 4 : i64} { return }

// -----

// expected-error @+1 {{'qquant.stats' must be a #qquant.stats}}
func.func @stats_kind() attributes {qquant.stats = "x"} { return }

// -----

// expected-error @+1 {{unknown qquant attribute 'qquant.bits'}}
func.func @unknown_attr() attributes {qquant.bits = 4 : i64} { return }

// -----

func.func @linear_k(%x: tensor<1x8x32xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>) {
  // expected-error @+1 {{'qquant.linear' op input features (32) differ from weight in_features (64)}}
  %0 = qquant.linear %x, %w : (tensor<1x8x32xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_bf16_act(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.linear' op bf16_input applies to a float input; the input is already quantized by 'act'}}
  %0 = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>, bf16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_i16_act(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>) {
  // expected-error @+1 {{'qquant.linear' op i16_input applies to a float input; the input is already quantized by 'act'}}
  %0 = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>, i16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_i16_bf16(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>) {
  // expected-error @+1 {{'qquant.linear' op bf16_input and i16_input are two roundings of the same input; give one}}
  %0 = qquant.linear %x, %w {bf16_input, i16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_i16_channel(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, channel>) {
  // expected-error @+1 {{'qquant.linear' op i16_input quantizes the input per weight group; the weight is not group-wise}}
  %0 = qquant.linear %x, %w {i16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @logits_i16_channel(%h: tensor<1x8x64xf32>, %t: !qquant.weight<256x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.logits' op i16_input quantizes the input per weight group; the weight is not group-wise}}
  %0 = qquant.logits %h, %t {i16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x256xf32>
  return
}

// -----

func.func @logits_i16_act(%h: tensor<1x8x64xf32>, %t: !qquant.weight<256x64xf32, i4, symmetric, group = 32>) {
  // expected-error @+1 {{'qquant.logits' op i16_input applies to a float input; the input is already quantized by 'act'}}
  %0 = qquant.logits %h, %t {act = #qquant.act<dynamic, i8, per_token>, i16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x256xf32>
  return
}

// -----

func.func @logits_bf16_act(%h: tensor<1x8x64xf32>, %t: !qquant.weight<256x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.logits' op bf16_input applies to a float input; the input is already quantized by 'act'}}
  %0 = qquant.logits %h, %t {act = #qquant.act<dynamic, i8, per_token>, bf16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x256xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>, %b: tensor<64xf32>) {
  // expected-error @+1 {{'qquant.linear' op bias must be 1-D with 96 entries}}
  %0 = qquant.linear %x, %w, %b : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>, tensor<64xf32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_act_type(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.linear' op activation quant type expresses 'f16' but the weight dequantizes to 'f32'}}
  %0 = qquant.linear %x, %w {act = #qquant.act<static : !quant.uniform<i8:f16, 0.05>>} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @logits_shape(%x: tensor<1x8x64xf32>, %w: !qquant.weight<256x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.logits' op result has shape [1, 8, 64], expected [1, 8, 256]}}
  %0 = qquant.logits %x, %w : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @embedding_shape(%ids: tensor<1x8xi64>, %t: !qquant.weight<256x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.embedding' op result must be the ids' shape followed by 64}}
  %0 = qquant.embedding %ids, %t : (tensor<1x8xi64>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x7x64xf32>
  return
}

// -----

func.func @dequantize_type(%w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>) {
  // expected-error @+1 {{'qquant.dequantize_weight' op result must be 'tensor<96x64xf32>'}}
  %0 = qquant.dequantize_weight %w : !qquant.weight<96x64xf32, i4, symmetric, group = 32> -> tensor<64x96xf32>
  return
}

// -----

func.func @dynamic_quantize_scale(%x: tensor<1x8x64xf32>) {
  // expected-error @+1 {{'qquant.dynamic_quantize' op scale shape must be the input shape with the last dimension 1}}
  %q, %s = qquant.dynamic_quantize %x {per_token} : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x1x1xf32>)
  return
}

// -----

func.func @dynamic_quantize_bits(%x: tensor<1x8x64xf32>) {
  // expected-error @+1 {{'qquant.dynamic_quantize' op bits must be 4 or 8, got 2}}
  %q, %s = qquant.dynamic_quantize %x {bits = 2 : i64} : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x1x1xf32>)
  return
}

// -----

func.func @observe_name(%x: tensor<4xf32>) {
  // expected-error @+1 {{'qquant.observe' op name must not be empty}}
  %0 = qquant.observe %x {name = ""} : tensor<4xf32>
  return
}

// -----

func.func @weight_no_store() {
  // expected-error @+1 {{'qquant.weight' op 'q' does not name a qwen.store}}
  %0 = qquant.weight @q::@w : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  return
}

// -----

func.func @qlinear_scheme(%q: tensor<1x8x64xi8>, %s: tensor<1x8x1xf32>, %w: !qquant.weight<96x64xf32, codebook 4, channel>) {
  // expected-error @+1 {{'qquant.qlinear' op needs signed symmetric dense 8- or 4-bit uniform weights, got '!qquant.weight<96x64xf32, codebook 4, channel>'}}
  %y = qquant.qlinear %q, %s, %w : (tensor<1x8x64xi8>, tensor<1x8x1xf32>, !qquant.weight<96x64xf32, codebook 4, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @qlinear_scale(%q: tensor<1x8x64xi8>, %s: tensor<1x8xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.qlinear' op scale must be the input's shape with the last dimension 1}}
  %y = qquant.qlinear %q, %s, %w : (tensor<1x8x64xi8>, tensor<1x8xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @qlinear_features(%q: tensor<1x8x32xi8>, %s: tensor<1x8x1xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.qlinear' op input has 32 features, the weight 64}}
  %y = qquant.qlinear %q, %s, %w : (tensor<1x8x32xi8>, tensor<1x8x1xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @qlinear_result(%q: tensor<1x8x64xi8>, %s: tensor<1x8x1xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>) {
  // expected-error @+1 {{'qquant.qlinear' op result must be the input's shape with the last dimension 96}}
  %y = qquant.qlinear %q, %s, %w : (tensor<1x8x64xi8>, tensor<1x8x1xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x4x96xf32>
  return
}

// -----

func.func @qlinear_bias(%q: tensor<1x8x64xi8>, %s: tensor<1x8x1xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>, %b: tensor<64xf32>) {
  // expected-error @+1 {{'qquant.qlinear' op bias must be 1-D with 96 entries}}
  %y = qquant.qlinear %q, %s, %w, %b : (tensor<1x8x64xi8>, tensor<1x8x1xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>, tensor<64xf32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @rms_norm_quantize_weight(%x: tensor<1x8x64xf32>, %g: tensor<32xf32>) {
  // expected-error @+1 {{'qquant.rms_norm_quantize' op weight must be 1-D with the input's (static) number of features}}
  %q, %s = qquant.rms_norm_quantize %x, %g {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<32xf32>) -> (tensor<1x8x64xi8>, tensor<1x8x1xf32>)
  return
}

// -----

func.func @rms_norm_quantize_output(%x: tensor<1x8x64xf32>, %g: tensor<64xf32>) {
  // expected-error @+1 {{'qquant.rms_norm_quantize' op output shape differs from the input's}}
  %q, %s = qquant.rms_norm_quantize %x, %g {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> (tensor<1x8x32xi8>, tensor<1x8x1xf32>)
  return
}

// -----

func.func @silu_mul_quantize_shapes(%g: tensor<1x8x64xf32>, %u: tensor<1x8x32xf32>) {
  // expected-error @+1 {{'qquant.silu_mul_quantize' op gate and up shapes differ}}
  %q, %s = qquant.silu_mul_quantize %g, %u : (tensor<1x8x64xf32>, tensor<1x8x32xf32>) -> (tensor<1x8x64xi8>, tensor<1x8x1xf32>)
  return
}

// -----

func.func @silu_mul_quantize_scale(%g: tensor<1x8x64xf32>, %u: tensor<1x8x64xf32>) {
  // expected-error @+1 {{'qquant.silu_mul_quantize' op scale must be the input's shape with the last dimension 1}}
  %q, %s = qquant.silu_mul_quantize %g, %u : (tensor<1x8x64xf32>, tensor<1x8x64xf32>) -> (tensor<1x8x64xi8>, tensor<1x1x1xf32>)
  return
}
