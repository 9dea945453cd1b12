// RUN: qwen-opt %s --qwen-raise-onnx -split-input-file | FileCheck %s

// Embedding: Gather of a weight table by the graph's token ids.
qwen.store @w "w.qws"
// CHECK-LABEL: func @embedding
func.func @embedding(%ids: tensor<?x?xi64>) -> tensor<?x?x64xf32> {
  %t = qwen.weight @w::@embed : tensor<256x64xf32>
  // CHECK: %[[T:.*]] = qwen.weight @w::@embed
  // CHECK: qwen.embedding %arg0, %[[T]] : (tensor<?x?xi64>, tensor<256x64xf32>) -> tensor<?x?x64xf32>
  // CHECK-NOT: onnx.Gather
  %0 = onnx.Gather %t, %ids : (tensor<256x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
  return %0 : tensor<?x?x64xf32>
}

// -----

// Gathers by computed indices (RoPE caches) are not embeddings.
// CHECK-LABEL: func @gather_by_positions
func.func @gather_by_positions(%x: tensor<?xi64>) -> tensor<?x8xf32> {
  %cos = onnx.Constant dense<1.0> : tensor<128x8xf32>
  %one = onnx.Constant dense<1> : tensor<1xi64>
  %p = onnx.Add %x, %one : (tensor<?xi64>, tensor<1xi64>) -> tensor<?xi64>
  // CHECK: onnx.Gather
  %0 = onnx.Gather %cos, %p : (tensor<128x8xf32>, tensor<?xi64>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}

// -----

// Linear with bias: exporters store W^T, the raised op reads W = W^T^T.
qwen.store @w "w.qws"
// CHECK-LABEL: func @linear_bias
func.func @linear_bias(%x: tensor<?x?x64xf32>) -> tensor<?x?x32xf32> {
  %wt = qwen.weight @w::@k_proj : tensor<64x32xf32>
  %b = qwen.weight @w::@k_bias : tensor<32xf32>
  // CHECK: %[[WT:.*]] = qwen.weight @w::@k_proj : tensor<64x32xf32>
  // CHECK: %[[W:.*]] = onnx.Transpose %[[WT]] {perm = array<i64: 1, 0>} : (tensor<64x32xf32>) -> tensor<32x64xf32>
  // CHECK: %[[B:.*]] = qwen.weight @w::@k_bias
  // CHECK: qwen.linear %arg0, %[[W]], %[[B]] : (tensor<?x?x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  // CHECK-NOT: onnx.MatMul
  // CHECK-NOT: onnx.Add
  %0 = onnx.MatMul %x, %wt : (tensor<?x?x64xf32>, tensor<64x32xf32>) -> tensor<?x?x32xf32>
  %1 = onnx.Add %0, %b : (tensor<?x?x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
  return %1 : tensor<?x?x32xf32>
}

// -----

// A weight already transposed in the graph is read directly; a MatMul of two
// activations (attention scores) stays.
qwen.store @w "w.qws"
// CHECK-LABEL: func @linear_transposed
func.func @linear_transposed(%x: tensor<2x8x64xf32>, %k: tensor<2x64x8xf32>) -> (tensor<2x8x16xf32>, tensor<2x8x8xf32>) {
  %w = qwen.weight @w::@proj : tensor<16x64xf32>
  %wt = onnx.Transpose %w {perm = array<i64: 1, 0>} : (tensor<16x64xf32>) -> tensor<64x16xf32>
  // CHECK: %[[W:.*]] = qwen.weight @w::@proj : tensor<16x64xf32>
  // CHECK: qwen.linear %arg0, %[[W]] : (tensor<2x8x64xf32>, tensor<16x64xf32>) -> tensor<2x8x16xf32>
  %0 = onnx.MatMul %x, %wt : (tensor<2x8x64xf32>, tensor<64x16xf32>) -> tensor<2x8x16xf32>
  // CHECK: onnx.MatMul %arg0, %arg1
  %1 = onnx.MatMul %x, %k : (tensor<2x8x64xf32>, tensor<2x64x8xf32>) -> tensor<2x8x8xf32>
  return %0, %1 : tensor<2x8x16xf32>, tensor<2x8x8xf32>
}

// -----

// RMSNorm as the TorchScript exporter writes it: Div(1, Sqrt), no-op Casts.
// CHECK-LABEL: func @rms_norm_torchscript
func.func @rms_norm_torchscript(%x: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %w = onnx.Constant dense<2.0> : tensor<64xf32>
  %two = onnx.Constant dense<2.0> : tensor<f32>
  %axes = onnx.Constant dense<-1> : tensor<1xi64>
  %eps = onnx.Constant dense<1.0e-6> : tensor<f32>
  %one = onnx.Constant dense<1.0> : tensor<f32>
  %c = onnx.Cast %x {to = f32} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  %p = onnx.Pow %c, %two : (tensor<?x?x64xf32>, tensor<f32>) -> tensor<?x?x64xf32>
  %m = onnx.ReduceMean %p axes %axes : (tensor<?x?x64xf32>, tensor<1xi64>) -> tensor<?x?x1xf32>
  %a = onnx.Add %m, %eps : (tensor<?x?x1xf32>, tensor<f32>) -> tensor<?x?x1xf32>
  %s = onnx.Sqrt %a : (tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %r = onnx.Div %one, %s : (tensor<f32>, tensor<?x?x1xf32>) -> tensor<?x?x1xf32>
  %n = onnx.Mul %c, %r : (tensor<?x?x64xf32>, tensor<?x?x1xf32>) -> tensor<?x?x64xf32>
  %n2 = onnx.Cast %n {to = f32} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: %[[W:.*]] = onnx.Constant dense<2.000000e+00> : tensor<64xf32>
  // CHECK: %[[N:.*]] = qwen.rms_norm %arg0, %[[W]] {epsilon = 9.99999997E-7 : f32} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  // CHECK: return %[[N]]
  %y = onnx.Mul %w, %n2 : (tensor<64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %y : tensor<?x?x64xf32>
}

// -----

// The dynamo spelling: Reciprocal; and Qwen3's per-head q norm on
// [b, s, heads, head_dim].
// CHECK-LABEL: func @rms_norm_dynamo_per_head
func.func @rms_norm_dynamo_per_head(%x: tensor<?x?x4x16xf32>) -> tensor<?x?x4x16xf32> {
  %w = onnx.Constant dense<0.5> : tensor<16xf32>
  %two = onnx.Constant dense<2.0> : tensor<f32>
  %axes = onnx.Constant dense<-1> : tensor<1xi64>
  %eps = onnx.Constant dense<1.0e-6> : tensor<f32>
  %p = onnx.Pow %x, %two : (tensor<?x?x4x16xf32>, tensor<f32>) -> tensor<?x?x4x16xf32>
  %m = onnx.ReduceMean %p axes %axes : (tensor<?x?x4x16xf32>, tensor<1xi64>) -> tensor<?x?x4x1xf32>
  %a = onnx.Add %eps, %m : (tensor<f32>, tensor<?x?x4x1xf32>) -> tensor<?x?x4x1xf32>
  %s = onnx.Sqrt %a : (tensor<?x?x4x1xf32>) -> tensor<?x?x4x1xf32>
  %r = onnx.Reciprocal %s : (tensor<?x?x4x1xf32>) -> tensor<?x?x4x1xf32>
  %n = onnx.Mul %r, %x : (tensor<?x?x4x1xf32>, tensor<?x?x4x16xf32>) -> tensor<?x?x4x16xf32>
  // CHECK: qwen.rms_norm %arg0, %{{.*}} {epsilon = 9.99999997E-7 : f32} : (tensor<?x?x4x16xf32>, tensor<16xf32>) -> tensor<?x?x4x16xf32>
  %y = onnx.Mul %n, %w : (tensor<?x?x4x16xf32>, tensor<16xf32>) -> tensor<?x?x4x16xf32>
  return %y : tensor<?x?x4x16xf32>
}

// -----

// Not a norm: the mean is over the wrong axis.
// CHECK-LABEL: func @not_rms_norm
func.func @not_rms_norm(%x: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %w = onnx.Constant dense<2.0> : tensor<64xf32>
  %two = onnx.Constant dense<2.0> : tensor<f32>
  %axes = onnx.Constant dense<1> : tensor<1xi64>
  %eps = onnx.Constant dense<1.0e-6> : tensor<f32>
  %p = onnx.Pow %x, %two : (tensor<2x8x64xf32>, tensor<f32>) -> tensor<2x8x64xf32>
  %m = onnx.ReduceMean %p axes %axes : (tensor<2x8x64xf32>, tensor<1xi64>) -> tensor<2x1x64xf32>
  %a = onnx.Add %m, %eps : (tensor<2x1x64xf32>, tensor<f32>) -> tensor<2x1x64xf32>
  %s = onnx.Sqrt %a : (tensor<2x1x64xf32>) -> tensor<2x1x64xf32>
  %r = onnx.Reciprocal %s : (tensor<2x1x64xf32>) -> tensor<2x1x64xf32>
  %n = onnx.Mul %x, %r : (tensor<2x8x64xf32>, tensor<2x1x64xf32>) -> tensor<2x8x64xf32>
  // CHECK-NOT: qwen.rms_norm
  %y = onnx.Mul %w, %n : (tensor<64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return %y : tensor<2x8x64xf32>
}

// -----

// onnxruntime's norms: SimplifiedLayerNormalization, opset 23
// RMSNormalization, and the residual-fused SkipSimplifiedLayerNormalization.
// CHECK-LABEL: func @ort_norms
func.func @ort_norms(%x: tensor<?x?x64xf32>, %h: tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>) {
  %w = onnx.Constant dense<1.5> : tensor<64xf32>
  // CHECK: %[[A:.*]] = qwen.rms_norm %arg0, %{{.*}} {epsilon = 9.99999997E-7 : f32}
  %0 = onnx.SimplifiedLayerNormalization %x, %w {epsilon = 1.0e-6 : f32} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  // CHECK: %[[B:.*]] = qwen.rms_norm %arg1, %{{.*}} {epsilon = 9.99999974E-6 : f32}
  %1 = onnx.RMSNormalization %h, %w : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  // CHECK: %[[SUM:.*]] = qwen.add %arg0, %arg1 : tensor<?x?x64xf32>
  // CHECK: %[[C:.*]] = qwen.rms_norm %[[SUM]], %{{.*}} {epsilon = 9.99999997E-7 : f32}
  %2:4 = onnx.ms.SkipSimplifiedLayerNormalization %x, %h, %w {epsilon = 1.0e-6 : f32} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<64xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x1xf32>, tensor<?x?x1xf32>, tensor<?x?x64xf32>)
  // CHECK: return %[[A]], %[[B]], %[[C]], %[[SUM]]
  return %0, %1, %2#0, %2#3 : tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>
}

// -----

// SwiGLU and the residual adds around raised ops.
qwen.store @w "w.qws"
// CHECK-LABEL: func @mlp
func.func @mlp(%h: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %wg = qwen.weight @w::@gate : tensor<64x128xf32>
  %wu = qwen.weight @w::@up : tensor<64x128xf32>
  %wd = qwen.weight @w::@down : tensor<128x64xf32>
  // CHECK: %[[G:.*]] = qwen.linear %arg0
  %g = onnx.MatMul %h, %wg : (tensor<?x?x64xf32>, tensor<64x128xf32>) -> tensor<?x?x128xf32>
  %sg = onnx.Sigmoid %g : (tensor<?x?x128xf32>) -> tensor<?x?x128xf32>
  %silu = onnx.Mul %g, %sg : (tensor<?x?x128xf32>, tensor<?x?x128xf32>) -> tensor<?x?x128xf32>
  // CHECK: %[[U:.*]] = qwen.linear %arg0
  %u = onnx.MatMul %h, %wu : (tensor<?x?x64xf32>, tensor<64x128xf32>) -> tensor<?x?x128xf32>
  // CHECK: %[[S:.*]] = qwen.silu_mul %[[G]], %[[U]] : tensor<?x?x128xf32>
  %m = onnx.Mul %silu, %u : (tensor<?x?x128xf32>, tensor<?x?x128xf32>) -> tensor<?x?x128xf32>
  // CHECK: %[[D:.*]] = qwen.linear %[[S]]
  %d = onnx.MatMul %m, %wd : (tensor<?x?x128xf32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: qwen.add %arg0, %[[D]] : tensor<?x?x64xf32>
  %r = onnx.Add %h, %d : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return %r : tensor<?x?x64xf32>
}

// -----

// The LM head is the linear that produces the graph's `logits`; it is tied
// when it reads the embedding's table (onnxruntime-genai writes the table as
// the transposed head weight).
qwen.store @w "w.qws"
// CHECK-LABEL: func @tied_head
func.func @tied_head(%ids: tensor<?x?xi64>, %x: tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x256xf32> {onnx.name = "logits"}) {
  %wt = qwen.weight @w::@lm_head_t : tensor<64x256xf32>
  %table = onnx.Transpose %wt {perm = array<i64: 1, 0>} : (tensor<64x256xf32>) -> tensor<256x64xf32>
  // CHECK: %[[T:.*]] = onnx.Transpose
  // CHECK: qwen.embedding %arg0, %[[T]]
  %e = onnx.Gather %table, %ids : (tensor<256x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
  // CHECK: qwen.logits %arg1, %[[T]] {tied} : (tensor<?x?x64xf32>, tensor<256x64xf32>) -> tensor<?x?x256xf32>
  %l = onnx.MatMul %x, %wt : (tensor<?x?x64xf32>, tensor<64x256xf32>) -> tensor<?x?x256xf32>
  return %e, %l : tensor<?x?x64xf32>, tensor<?x?x256xf32>
}
