// Verifier errors of the integer-only qquant ops.
// RUN: qwen-opt %s -split-input-file -verify-diagnostics

func.func @quantize_scale(%x: tensor<4xf32>) -> tensor<4xi8> {
  // expected-error @+1 {{scale must be a positive normal f32 number, got 0}}
  %q = qquant.quantize %x {scale = 0.0 : f64} : tensor<4xf32> -> tensor<4xi8>
  return %q : tensor<4xi8>
}

// -----

func.func @quantize_shape(%x: tensor<4xf32>) -> tensor<5xi8> {
  // expected-error @+1 {{result shape differs from the input's}}
  %q = qquant.quantize %x {scale = 0.5 : f64} : tensor<4xf32> -> tensor<5xi8>
  return %q : tensor<5xi8>
}

// -----

func.func @dequantize_channels(%x: tensor<2x4xi32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'scale' must have 1 entry or one per element of the static last dimension, got 3}}
  %y = qquant.dequantize %x {scale = array<f32: 1.0, 2.0, 3.0>} : (tensor<2x4xi32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

func.func @dequantize_bias(%x: tensor<2x4xi32>, %b: tensor<3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{bias must be 1-D with one entry per element of the static last dimension}}
  %y = qquant.dequantize %x, %b {scale = array<f32: 1.0>} : (tensor<2x4xi32>, tensor<3xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

func.func @requantize_count(%x: tensor<2x4xi32>) -> tensor<2x4xi8> {
  // expected-error @+1 {{'multiplier' and 'shift' must have the same, non-zero number of entries, got 1 and 2}}
  %y = qquant.requantize %x {multiplier = array<i32: 1073741824>, shift = array<i32: 1, 2>} : tensor<2x4xi32> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

func.func @requantize_multiplier(%x: tensor<2x4xi32>) -> tensor<2x4xi8> {
  // expected-error @+1 {{multiplier #0 = 1000 is not 0 or in [2^30, 2^31)}}
  %y = qquant.requantize %x {multiplier = array<i32: 1000>, shift = array<i32: 1>} : tensor<2x4xi32> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

func.func @requantize_shift(%x: tensor<2x4xi32>) -> tensor<2x4xi8> {
  // expected-error @+1 {{shift #0 = 32 is not in [0, 31]}}
  %y = qquant.requantize %x {multiplier = array<i32: 1073741824>, shift = array<i32: 32>} : tensor<2x4xi32> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

func.func @requantize_zp(%x: tensor<2x4xi32>) -> tensor<2x4xi8> {
  // expected-error @+1 {{zero point 128 is not in [-127, 127]}}
  %y = qquant.requantize %x {multiplier = array<i32: 1073741824>, shift = array<i32: 3>, zero_point = 128 : i32} : tensor<2x4xi32> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

func.func @requantize_channels(%x: tensor<2x4xi32>) -> tensor<2x4xi8> {
  // expected-error @+1 {{'multiplier' must have 1 entry or one per element of the static last dimension, got 2}}
  %y = qquant.requantize %x {multiplier = array<i32: 1073741824, 1073741824>, shift = array<i32: 3, 3>} : tensor<2x4xi32> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

qwen.store @q "unused.qws"
func.func @int_linear_group(%x: tensor<2x64xi8>) -> tensor<2x96xi32> {
  %w = qquant.weight @q::@w : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  // expected-error @+1 {{needs signed symmetric dense 8- or 4-bit weights per tensor or per channel, got '!qquant.weight<96x64xf32, i4, symmetric, group = 32>'}}
  %y = qquant.int_linear %x, %w : (tensor<2x64xi8>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<2x96xi32>
  return %y : tensor<2x96xi32>
}

// -----

qwen.store @q "unused.qws"
func.func @int_linear_k(%x: tensor<2x32xi8>) -> tensor<2x96xi32> {
  %w = qquant.weight @q::@w : !qquant.weight<96x64xf32, i8, symmetric, channel>
  // expected-error @+1 {{input has 32 features, the weight 64}}
  %y = qquant.int_linear %x, %w : (tensor<2x32xi8>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<2x96xi32>
  return %y : tensor<2x96xi32>
}

// -----

qwen.store @q "unused.qws"
func.func @int_linear_n(%x: tensor<2x64xi8>) -> tensor<2x95xi32> {
  %w = qquant.weight @q::@w : !qquant.weight<96x64xf32, i8, symmetric, channel>
  // expected-error @+1 {{result has 95 features, the weight 96}}
  %y = qquant.int_linear %x, %w : (tensor<2x64xi8>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<2x95xi32>
  return %y : tensor<2x95xi32>
}

// -----

func.func @lookup_size(%x: tensor<4xi8>) -> tensor<4xi8> {
  // expected-error @+1 {{table must have 256 entries, got 3}}
  %y = qquant.lookup %x {table = array<i8: 1, 2, 3>} : tensor<4xi8> -> tensor<4xi8>
  return %y : tensor<4xi8>
}

// -----

func.func @int_mul_shape(%a: tensor<4xi8>, %b: tensor<5xi8>) -> tensor<4xi32> {
  // expected-error @+1 {{operands and result must have the same shape}}
  %y = qquant.int_mul %a, %b : (tensor<4xi8>, tensor<5xi8>) -> tensor<4xi32>
  return %y : tensor<4xi32>
}

// -----

func.func @int_mul_type(%a: tensor<4xi8>, %b: tensor<4xi32>) -> tensor<4xi32> {
  // expected-error @+1 {{operand #1 must be ranked tensor of 8-bit signless integer values}}
  %y = qquant.int_mul %a, %b : (tensor<4xi8>, tensor<4xi32>) -> tensor<4xi32>
  return %y : tensor<4xi32>
}

// -----

func.func @rms_gain(%x: tensor<2x4xi16>) -> tensor<2x4xi8> {
  // expected-error @+1 {{'gain' must have one entry per element of the static last dimension, got 3}}
  %y = qquant.int_rms_norm %x {gain = array<i64: 1, 2, 3>, eps = 0 : i64} : tensor<2x4xi16> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

func.func @rms_eps(%x: tensor<2x4xi16>) -> tensor<2x4xi8> {
  // expected-error @+1 {{eps must be >= 0, got -1}}
  %y = qquant.int_rms_norm %x {gain = array<i64: 1, 2, 3, 4>, eps = -1 : i64} : tensor<2x4xi16> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}

// -----

func.func @rms_type(%x: tensor<2x4xi8>) -> tensor<2x4xi8> {
  // expected-error @+1 {{operand #0 must be ranked tensor of 16-bit signless integer values}}
  %y = qquant.int_rms_norm %x {gain = array<i64: 1, 2, 3, 4>, eps = 0 : i64} : tensor<2x4xi8> -> tensor<2x4xi8>
  return %y : tensor<2x4xi8>
}
