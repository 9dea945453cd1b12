// RUN: qwen-opt %s -split-input-file | qwen-opt -split-input-file | FileCheck %s
// RUN: qwen-opt %s -split-input-file -mlir-print-op-generic | qwen-opt -split-input-file | FileCheck %s

// CHECK: qwen.store @w "model.qws"
qwen.store @w "model.qws"
// CHECK-LABEL: func @weights
func.func @weights() -> tensor<256x64xf32> {
  // CHECK: qwen.weight @w::@model.embed_tokens.weight : tensor<256x64xf32>
  %0 = qwen.weight @w::@"model.embed_tokens.weight" : tensor<256x64xf32>
  return %0 : tensor<256x64xf32>
}

// -----

// CHECK-LABEL: func @embedding
func.func @embedding(%ids: tensor<1x8xi64>, %t: tensor<256x64xf32>) -> tensor<1x8x64xf32> {
  // CHECK: qwen.embedding %{{.*}}, %{{.*}} : (tensor<1x8xi64>, tensor<256x64xf32>) -> tensor<1x8x64xf32>
  %0 = qwen.embedding %ids, %t : (tensor<1x8xi64>, tensor<256x64xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// CHECK-LABEL: func @rms_norm
func.func @rms_norm(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>, %hw: tensor<16xf32>) {
  // CHECK: qwen.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32}
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  // CHECK: qwen.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32, per_head}
  %1 = qwen.rms_norm %x, %hw {epsilon = 1.0e-6 : f32, per_head} : (tensor<1x8x64xf32>, tensor<16xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

// CHECK-LABEL: func @linear
func.func @linear(%x: tensor<1x?x64xf32>, %w: tensor<96x64xf32>, %b: tensor<96xf32>) {
  // CHECK: qwen.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x?x64xf32>, tensor<96x64xf32>, tensor<96xf32>) -> tensor<1x?x96xf32>
  %0 = qwen.linear %x, %w, %b : (tensor<1x?x64xf32>, tensor<96x64xf32>, tensor<96xf32>) -> tensor<1x?x96xf32>
  // CHECK: qwen.linear %{{.*}}, %{{.*}} : (tensor<1x?x64xf32>, tensor<96x64xf32>) -> tensor<1x?x96xf32>
  %1 = qwen.linear %x, %w : (tensor<1x?x64xf32>, tensor<96x64xf32>) -> tensor<1x?x96xf32>
  return
}

// -----

// CHECK-LABEL: func @rope
func.func @rope(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) {
  // CHECK: qwen.rope %{{.*}}, %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, theta = 1.000000e+06 : f64}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e6 : f64} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  // CHECK: qwen.rope {{.*}} rotary_dim = 8 : i64, style = #qwen.rope_style<interleaved>
  %1 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e4 : f64, rotary_dim = 8 : i64, style = #qwen.rope_style<interleaved>} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return
}

// -----

// CHECK-LABEL: func @attention
func.func @attention(%q: tensor<1x8x64xf32>, %k: tensor<1x8x32xf32>, %pk: tensor<1x2x5x16xf32>, %m: tensor<1x13xi64>) {
  // CHECK: qwen.attention %{{.*}}, %{{.*}}, %{{.*}} {causal, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
  %0:3 = qwen.attention %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal}
      : (tensor<1x8x64xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>) -> (tensor<1x8x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  // CHECK: qwen.attention %{{.*}}, %{{.*}}, %{{.*}} past %{{.*}}, %{{.*}} mask %{{.*}} {causal
  %1:3 = qwen.attention %q, %k, %k past %pk, %pk mask %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal, scale = 0.125 : f32}
      : (tensor<1x8x64xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<1x2x5x16xf32>, tensor<1x2x5x16xf32>, tensor<1x13xi64>)
      -> (tensor<1x8x64xf32>, tensor<1x2x13x16xf32>, tensor<1x2x13x16xf32>)
  return
}

// -----

// CHECK-LABEL: func @mlp_residual_logits
func.func @mlp_residual_logits(%g: tensor<1x8x128xf32>, %h: tensor<1x8x64xf32>, %t: tensor<256x64xf32>) -> tensor<1x8x256xf32> {
  // CHECK: qwen.silu_mul %{{.*}}, %{{.*}} : tensor<1x8x128xf32>
  %0 = qwen.silu_mul %g, %g : tensor<1x8x128xf32>
  // CHECK: qwen.add %{{.*}}, %{{.*}} : tensor<1x8x64xf32>
  %1 = qwen.add %h, %h : tensor<1x8x64xf32>
  // CHECK: qwen.logits %{{.*}}, %{{.*}} {tied} : (tensor<1x8x64xf32>, tensor<256x64xf32>) -> tensor<1x8x256xf32>
  %2 = qwen.logits %1, %t {tied} : (tensor<1x8x64xf32>, tensor<256x64xf32>) -> tensor<1x8x256xf32>
  return %2 : tensor<1x8x256xf32>
}
