// RUN: qwen-opt %s -split-input-file -verify-diagnostics

func.func @broadcast_mismatch(%a: tensor<2x3xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{'onnx.Add' op operands don't have broadcast-compatible shapes}}
  %0 = onnx.Add %a, %b : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @element_type_mismatch(%a: tensor<3xf32>, %b: tensor<3xf16>) {
  // expected-error @+1 {{'onnx.Mul' op failed to verify that all of {A, B, C} have same element type}}
  %0 = onnx.Mul %a, %b : (tensor<3xf32>, tensor<3xf16>) -> tensor<3xf32>
  return
}

// -----

func.func @compare_not_bool(%a: tensor<3xf32>) {
  // expected-error @+1 {{'onnx.Equal' op result #0 must be tensor of 1-bit signless integer values}}
  %0 = onnx.Equal %a, %a : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return
}

// -----

func.func @max_no_inputs() {
  // expected-error @+1 {{'onnx.Max' op expected 1 or more operands, but found 0}}
  %0 = "onnx.Max"() : () -> tensor<3xf32>
  return
}

// -----

func.func @cast_to_mismatch(%a: tensor<3xf32>) {
  // expected-error @+1 {{'onnx.Cast' op result element type 'f32' differs from 'to' 'f16'}}
  %0 = onnx.Cast %a {to = f16} : (tensor<3xf32>) -> tensor<3xf32>
  return
}

// -----

func.func @constant_type_mismatch() {
  // expected-error @+1 {{'onnx.Constant' op failed to verify that all of {value, output} have same type}}
  %0 = "onnx.Constant"() {value = dense<1> : tensor<2xi64>} : () -> tensor<3xi64>
  return
}

// -----

func.func @reshape_count(%a: tensor<2x3xf32>, %s: tensor<2xi64>) {
  // expected-error @+1 {{'onnx.Reshape' op reshapes 6 elements into 8}}
  %0 = onnx.Reshape %a, %s : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<2x4xf32>
  return
}

// -----

func.func @transpose_not_perm(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'onnx.Transpose' op perm is not a permutation}}
  %0 = onnx.Transpose %a {perm = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @transpose_rank(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'onnx.Transpose' op perm has 3 entries for rank 2}}
  %0 = onnx.Transpose %a {perm = array<i64: 0, 1, 2>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @transpose_result(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'onnx.Transpose' op result dim 0 is 2, expected 3}}
  %0 = onnx.Transpose %a {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @concat_axis(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'onnx.Concat' op axis 2 is out of range for rank 2}}
  %0 = onnx.Concat %a, %a {axis = 2 : si64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x6xf32>
  return
}

// -----

func.func @concat_ranks(%a: tensor<2x3xf32>, %b: tensor<3xf32>) {
  // expected-error @+1 {{'onnx.Concat' op inputs have different ranks}}
  %0 = onnx.Concat %a, %b {axis = 0 : si64} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x6xf32>
  return
}

// -----

func.func @split_count(%a: tensor<4xf32>) {
  // expected-error @+1 {{'onnx.Split' op num_outputs is 3 but the op has 2 results}}
  %0:2 = onnx.Split %a {num_outputs = 3 : si64} : (tensor<4xf32>) -> (tensor<2xf32>, tensor<2xf32>)
  return
}

// -----

func.func @gather_axis(%d: tensor<8x4xf32>, %i: tensor<2xi64>) {
  // expected-error @+1 {{'onnx.Gather' op axis -3 is out of range for rank 2}}
  %0 = onnx.Gather %d, %i {axis = -3 : si64} : (tensor<8x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
  return
}

// -----

func.func @gather_rank(%d: tensor<8x4xf32>, %i: tensor<2xi64>) {
  // expected-error @+1 {{'onnx.Gather' op result rank 3, expected 2}}
  %0 = onnx.Gather %d, %i : (tensor<8x4xf32>, tensor<2xi64>) -> tensor<2x4x1xf32>
  return
}

// -----

func.func @matmul_k(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) {
  // expected-error @+1 {{'onnx.MatMul' op contracting dimensions differ: 3 vs 4}}
  %0 = onnx.MatMul %a, %b : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  return
}

// -----

func.func @matmul_scalar(%a: tensor<f32>, %b: tensor<4x5xf32>) {
  // expected-error @+1 {{'onnx.MatMul' op operands must have rank >= 1}}
  %0 = onnx.MatMul %a, %b : (tensor<f32>, tensor<4x5xf32>) -> tensor<5xf32>
  return
}

// -----

func.func @softmax_axis(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'onnx.Softmax' op axis 5 is out of range for rank 2}}
  %0 = onnx.Softmax %a {axis = 5 : si64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @quantize_int_input(%a: tensor<4xi32>, %s: tensor<f32>) {
  // expected-error @+1 {{'onnx.QuantizeLinear' op input must be a float tensor}}
  %0 = onnx.QuantizeLinear %a, %s : (tensor<4xi32>, tensor<f32>) -> tensor<4xi8>
  return
}

// -----

func.func @quantize_block(%a: tensor<4xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'onnx.QuantizeLinear' op block_size must be >= 0}}
  %0 = onnx.QuantizeLinear %a, %s {block_size = -1 : si64} : (tensor<4xf32>, tensor<f32>) -> tensor<4xi8>
  return
}

// -----

func.func @dequantize_int_scale(%a: tensor<4xi8>, %s: tensor<i32>) {
  // expected-error @+1 {{'onnx.DequantizeLinear' op x_scale must be a float tensor}}
  %0 = onnx.DequantizeLinear %a, %s : (tensor<4xi8>, tensor<i32>) -> tensor<4xf32>
  return
}

// -----

func.func @gqa_heads(%q: tensor<1x8x128xf32>, %sl: tensor<1xi32>, %tl: tensor<i32>) {
  // expected-error @+1 {{'onnx.ms.GroupQueryAttention' op num_heads (4) must be a positive multiple of kv_num_heads (3)}}
  %0:3 = onnx.ms.GroupQueryAttention %q seqlens_k %sl total_sequence_length %tl {kv_num_heads = 3 : si64, num_heads = 4 : si64}
      : (tensor<1x8x128xf32>, tensor<1xi32>, tensor<i32>) -> (tensor<1x8x64xf32>, tensor<1x3x8x16xf32>, tensor<1x3x8x16xf32>)
  return
}

// -----

func.func @gqa_key_without_value(%q: tensor<1x8x64xf32>, %k: tensor<1x8x32xf32>, %sl: tensor<1xi32>, %tl: tensor<i32>) {
  // expected-error @+1 {{'onnx.ms.GroupQueryAttention' op key and value must be given together}}
  %0:3 = onnx.ms.GroupQueryAttention %q key %k seqlens_k %sl total_sequence_length %tl {kv_num_heads = 2 : si64, num_heads = 4 : si64}
      : (tensor<1x8x64xf32>, tensor<1x8x32xf32>, tensor<1xi32>, tensor<i32>) -> (tensor<1x8x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

func.func @nbits_bits(%x: tensor<1x64xf32>, %b: tensor<96x2x16xui8>, %s: tensor<192xf32>) {
  // expected-error @+1 {{'onnx.ms.MatMulNBits' op bits must be in [2, 8], got 9}}
  %0 = onnx.ms.MatMulNBits %x, %b, %s {K = 64 : si64, N = 96 : si64, bits = 9 : si64, block_size = 32 : si64} : (tensor<1x64xf32>, tensor<96x2x16xui8>, tensor<192xf32>) -> tensor<1x96xf32>
  return
}

// -----

func.func @nbits_block(%x: tensor<1x64xf32>, %b: tensor<96x2x16xui8>, %s: tensor<192xf32>) {
  // expected-error @+1 {{'onnx.ms.MatMulNBits' op block_size must be a power of two >= 16, got 24}}
  %0 = onnx.ms.MatMulNBits %x, %b, %s {K = 64 : si64, N = 96 : si64, block_size = 24 : si64} : (tensor<1x64xf32>, tensor<96x2x16xui8>, tensor<192xf32>) -> tensor<1x96xf32>
  return
}

// -----

func.func @nbits_k(%x: tensor<1x48xf32>, %b: tensor<96x2x16xui8>, %s: tensor<192xf32>) {
  // expected-error @+1 {{'onnx.ms.MatMulNBits' op input's last dimension must equal K (64)}}
  %0 = onnx.ms.MatMulNBits %x, %b, %s {K = 64 : si64, N = 96 : si64, block_size = 32 : si64} : (tensor<1x48xf32>, tensor<96x2x16xui8>, tensor<192xf32>) -> tensor<1x96xf32>
  return
}

// -----

func.func @attention_results(%q: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{'onnx.Attention' op has at most 4 results}}
  %0:5 = onnx.Attention %q, %q, %q : (tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) -> (tensor<1x4x8x16xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>)
  return
}

// -----

func.func @skip_norm_results(%x: tensor<1x8x64xf32>, %g: tensor<64xf32>) {
  // expected-error @+1 {{'onnx.ms.SkipSimplifiedLayerNormalization' op has at most 4 results}}
  %0:5 = onnx.ms.SkipSimplifiedLayerNormalization %x, %x, %g : (tensor<1x8x64xf32>, tensor<1x8x64xf32>, tensor<64xf32>) -> (tensor<1x8x64xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>)
  return
}
