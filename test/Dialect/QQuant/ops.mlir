// RUN: qwen-opt %s -split-input-file | qwen-opt -split-input-file | FileCheck %s
// RUN: qwen-opt %s -split-input-file -mlir-print-op-generic | qwen-opt -split-input-file | FileCheck %s

qwen.store @q "q.qws"
// CHECK-LABEL: func @weight_and_linear
func.func @weight_and_linear(%x: tensor<1x8x64xf32>, %b: tensor<96xf32>) -> tensor<1x8x96xf32> {
  // CHECK: qquant.weight @q::@l0.q_proj : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  %w = qquant.weight @q::@"l0.q_proj" : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  // CHECK: qquant.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>, tensor<96xf32>) -> tensor<1x8x96xf32>
  %y = qquant.linear %x, %w, %b : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>, tensor<96xf32>) -> tensor<1x8x96xf32>
  return %y : tensor<1x8x96xf32>
}

// -----

// CHECK-LABEL: func @w8a8
func.func @w8a8(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i8, symmetric, channel>) {
  // CHECK: qquant.linear %{{.*}}, %{{.*}} {act = #qquant.act<dynamic, i8, per_token>}
  %0 = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
  // CHECK: qquant.linear %{{.*}}, %{{.*}} {act = #qquant.act<static : !quant.uniform<i8:f32, 5.000000e-02:3>>}
  %1 = qquant.linear %x, %w {act = #qquant.act<static : !quant.uniform<i8:f32, 0.05:3>>} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<1x8x96xf32>
  return
}

// -----

// CHECK-LABEL: func @bf16_input
func.func @bf16_input(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32> {
  // CHECK: qquant.linear %{{.*}}, %{{.*}} {bf16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  %0 = qquant.linear %x, %w {bf16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  return %0 : tensor<1x8x96xf32>
}

// -----

// CHECK-LABEL: func @i16_input
func.func @i16_input(%x: tensor<1x8x64xf32>, %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32> {
  // CHECK: qquant.linear %{{.*}}, %{{.*}} {i16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  %0 = qquant.linear %x, %w {i16_input} : (tensor<1x8x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x96xf32>
  return %0 : tensor<1x8x96xf32>
}

// -----

// An LM head at 4 bits in groups takes the linears' input roundings.
// CHECK-LABEL: func @logits_rounded_input
func.func @logits_rounded_input(%h: tensor<1x8x64xf32>, %t: !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> (tensor<1x8x256xf32>, tensor<1x8x256xf32>) {
  // CHECK: qquant.logits %{{.*}}, %{{.*}} {i16_input, tied} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x256xf32>
  %0 = qquant.logits %h, %t {tied, i16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x256xf32>
  // CHECK: qquant.logits %{{.*}}, %{{.*}} {bf16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x256xf32>
  %1 = qquant.logits %h, %t {bf16_input} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i4, symmetric, group = 32>) -> tensor<1x8x256xf32>
  return %0, %1 : tensor<1x8x256xf32>, tensor<1x8x256xf32>
}

// -----

// CHECK-LABEL: func @embedding_logits
func.func @embedding_logits(%ids: tensor<1x8xi64>, %t: !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x256xf32> {
  // CHECK: qquant.embedding %{{.*}}, %{{.*}} : (tensor<1x8xi64>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x64xf32>
  %h = qquant.embedding %ids, %t : (tensor<1x8xi64>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x64xf32>
  // CHECK: qquant.logits %{{.*}}, %{{.*}} {tied}
  %l = qquant.logits %h, %t {tied} : (tensor<1x8x64xf32>, !qquant.weight<256x64xf32, i8, symmetric, channel>) -> tensor<1x8x256xf32>
  return %l : tensor<1x8x256xf32>
}

// -----

// CHECK-LABEL: func @dequantize_weight
func.func @dequantize_weight(%w: !qquant.weight<96x64xf32, codebook 4, channel>) -> tensor<96x64xf32> {
  // CHECK: qquant.dequantize_weight %{{.*}} : !qquant.weight<96x64xf32, codebook 4, channel> -> tensor<96x64xf32>
  %0 = qquant.dequantize_weight %w : !qquant.weight<96x64xf32, codebook 4, channel> -> tensor<96x64xf32>
  return %0 : tensor<96x64xf32>
}

// -----

// CHECK-LABEL: func @dynamic_quantize
func.func @dynamic_quantize(%x: tensor<1x8x64xf32>) {
  // CHECK: qquant.dynamic_quantize %{{.*}} {per_token} : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x8x1xf32>)
  %q, %s = qquant.dynamic_quantize %x {per_token} : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x8x1xf32>)
  // CHECK: qquant.dynamic_quantize %{{.*}} : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x1x1xf32>)
  %q2, %s2 = qquant.dynamic_quantize %x : tensor<1x8x64xf32> -> (tensor<1x8x64xi8>, tensor<1x1x1xf32>)
  return
}

// -----

// CHECK-LABEL: func @fused_act_quant
func.func @fused_act_quant(%x: tensor<?x?x64xf32>, %g: tensor<64xf32>, %u: tensor<?x?x64xf32>,
                           %w: !qquant.weight<96x64xf32, i4, symmetric, group = 32>, %b: tensor<96xf32>) -> tensor<?x?x96xf32> {
  // CHECK: qquant.rms_norm_quantize %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32} : (tensor<?x?x64xf32>, tensor<64xf32>) -> (tensor<?x?x64xi8>, tensor<?x?x1xf32>)
  %q, %s = qquant.rms_norm_quantize %x, %g {epsilon = 1.0e-06 : f32} : (tensor<?x?x64xf32>, tensor<64xf32>) -> (tensor<?x?x64xi8>, tensor<?x?x1xf32>)
  // CHECK: qquant.silu_mul_quantize %{{.*}}, %{{.*}} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xi8>, tensor<?x?x1xf32>)
  %q2, %s2 = qquant.silu_mul_quantize %x, %u : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xi8>, tensor<?x?x1xf32>)
  // CHECK: qquant.qlinear %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x?x64xi8>, tensor<?x?x1xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>, tensor<96xf32>) -> tensor<?x?x96xf32>
  %y = qquant.qlinear %q, %s, %w, %b : (tensor<?x?x64xi8>, tensor<?x?x1xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>, tensor<96xf32>) -> tensor<?x?x96xf32>
  // CHECK: qquant.qlinear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x?x64xi8>, tensor<?x?x1xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<?x?x96xf32>
  %y2 = qquant.qlinear %q2, %s2, %w : (tensor<?x?x64xi8>, tensor<?x?x1xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<?x?x96xf32>
  return %y : tensor<?x?x96xf32>
}

// -----

// CHECK-LABEL: func @observe
func.func @observe(%x: tensor<1x8x64xf32>) -> tensor<1x8x64xf32> {
  // CHECK: qquant.observe %{{.*}} {moment2, name = "l0.q_proj.in", per_channel} : tensor<1x8x64xf32>
  %0 = qquant.observe %x {name = "l0.q_proj.in", per_channel, moment2} : tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// Static per-tensor activation quantization reuses upstream quant ops.
// CHECK-LABEL: func @upstream_quant
func.func @upstream_quant(%x: tensor<4xf32>) -> tensor<4xf32> {
  // CHECK: quant.qcast
  %q = quant.qcast %x : tensor<4xf32> to tensor<4x!quant.uniform<i8:f32, 0.1>>
  // CHECK: quant.dcast
  %d = quant.dcast %q : tensor<4x!quant.uniform<i8:f32, 0.1>> to tensor<4xf32>
  return %d : tensor<4xf32>
}

// -----

// The observe op has a write effect: canonicalization must not drop it.
// CHECK-LABEL: func @observe_kept
func.func @observe_kept(%x: tensor<4xf32>) {
  // CHECK: qquant.observe
  %0 = qquant.observe %x {name = "unused"} : tensor<4xf32>
  return
}
