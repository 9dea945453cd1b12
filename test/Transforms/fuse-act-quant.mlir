// RUN: qwen-opt %s -split-input-file --qwen-fuse-act-quant | FileCheck %s
// RUN: qwen-opt %s -split-input-file --qwen-fuse-act-quant=producers=false | FileCheck %s --check-prefix=SHARE

// A layer's attention input: q, k and v share one quantization, fused into
// the norm (which no longer exists as floats); the attention output gets a
// plain one; recorded attributes survive.
// CHECK-LABEL: func @layer
// CHECK-SAME: (%[[X:[a-z0-9_]+]]: tensor<1x?x64xf32>, %[[G:[a-z0-9_]+]]: tensor<64xf32>
// CHECK-NOT: qwen.rms_norm
// CHECK: %[[Q:[a-z0-9_]+]], %[[S:[a-z0-9_]+]] = qquant.rms_norm_quantize %[[X]], %[[G]] {epsilon = 9.99999997E-7 : f32} : (tensor<1x?x64xf32>, tensor<64xf32>) -> (tensor<1x?x64xi8>, tensor<1x?x1xf32>)
// CHECK: qquant.qlinear %[[Q]], %[[S]], %{{.*}}, %{{.*}} {tag = "q_proj"} : (tensor<1x?x64xi8>, tensor<1x?x1xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>, tensor<64xf32>) -> tensor<1x?x64xf32>
// CHECK: qquant.qlinear %[[Q]], %[[S]], %{{.*}} : (tensor<1x?x64xi8>, tensor<1x?x1xf32>, !qquant.weight<32x64xf32, i4, symmetric, group = 32>) -> tensor<1x?x32xf32>
// CHECK: qquant.qlinear %[[Q]], %[[S]], %{{.*}} : (tensor<1x?x64xi8>, tensor<1x?x1xf32>, !qquant.weight<32x64xf32, i8, symmetric, tensor>) -> tensor<1x?x32xf32>
// CHECK: %[[A:[a-z0-9_]+]] = qwen.add
// CHECK-NEXT: %[[AQ:[a-z0-9_]+]], %[[AS:[a-z0-9_]+]] = qquant.dynamic_quantize %[[A]] {per_token} : tensor<1x?x64xf32> -> (tensor<1x?x64xi8>, tensor<1x?x1xf32>)
// CHECK: qquant.qlinear %[[AQ]], %[[AS]]
// CHECK-NOT: qquant.linear
// SHARE-LABEL: func @layer
// SHARE: %[[N:[a-z0-9_]+]] = qwen.rms_norm
// SHARE-NEXT: %[[Q:[a-z0-9_]+]], %[[S:[a-z0-9_]+]] = qquant.dynamic_quantize %[[N]] {per_token}
// SHARE-COUNT-3: qquant.qlinear %[[Q]], %[[S]]
// SHARE-NOT: rms_norm_quantize
func.func @layer(%x: tensor<1x?x64xf32>, %g: tensor<64xf32>,
                 %wq: !qquant.weight<64x64xf32, i8, symmetric, channel>, %bq: tensor<64xf32>,
                 %wk: !qquant.weight<32x64xf32, i4, symmetric, group = 32>,
                 %wv: !qquant.weight<32x64xf32, i8, symmetric, tensor>,
                 %wo: !qquant.weight<64x64xf32, i8, symmetric, channel>)
    -> (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x64xf32>) {
  %n = qwen.rms_norm %x, %g {epsilon = 1.0e-06 : f32} : (tensor<1x?x64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
  %q = qquant.linear %n, %wq, %bq {act = #qquant.act<dynamic, i8, per_token>, tag = "q_proj"} : (tensor<1x?x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>, tensor<64xf32>) -> tensor<1x?x64xf32>
  %k = qquant.linear %n, %wk {act = #qquant.act<dynamic, i8, per_token>} : (tensor<1x?x64xf32>, !qquant.weight<32x64xf32, i4, symmetric, group = 32>) -> tensor<1x?x32xf32>
  %v = qquant.linear %n, %wv {act = #qquant.act<dynamic, i8, per_token>} : (tensor<1x?x64xf32>, !qquant.weight<32x64xf32, i8, symmetric, tensor>) -> tensor<1x?x32xf32>
  %a = qwen.add %q, %x : tensor<1x?x64xf32>
  %o = qquant.linear %a, %wo {act = #qquant.act<dynamic, i8, per_token>} : (tensor<1x?x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<1x?x64xf32>
  return %q, %k, %v, %o : tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x?x64xf32>
}

// -----

// The MLP: gate and up share the norm's quantization; down reads the fused
// SwiGLU quantization.
// CHECK-LABEL: func @mlp
// CHECK: %[[Q:[a-z0-9_]+]], %[[S:[a-z0-9_]+]] = qquant.rms_norm_quantize
// CHECK: %[[GT:[a-z0-9_]+]] = qquant.qlinear %[[Q]], %[[S]]
// CHECK: %[[UP:[a-z0-9_]+]] = qquant.qlinear %[[Q]], %[[S]]
// CHECK-NOT: qwen.silu_mul
// CHECK: %[[HQ:[a-z0-9_]+]], %[[HS:[a-z0-9_]+]] = qquant.silu_mul_quantize %[[GT]], %[[UP]] : (tensor<2x3x128xf32>, tensor<2x3x128xf32>) -> (tensor<2x3x128xi8>, tensor<2x3x1xf32>)
// CHECK: qquant.qlinear %[[HQ]], %[[HS]]
// SHARE-LABEL: func @mlp
// SHARE: qwen.silu_mul
// SHARE-NEXT: qquant.dynamic_quantize
func.func @mlp(%x: tensor<2x3x64xf32>, %g: tensor<64xf32>,
               %wg: !qquant.weight<128x64xf32, i8, symmetric, channel>,
               %wu: !qquant.weight<128x64xf32, i8, symmetric, channel>,
               %wd: !qquant.weight<64x128xf32, i4, symmetric, channel>) -> tensor<2x3x64xf32> {
  %n = qwen.rms_norm %x, %g {epsilon = 1.0e-06 : f32} : (tensor<2x3x64xf32>, tensor<64xf32>) -> tensor<2x3x64xf32>
  %gt = qquant.linear %n, %wg {act = #qquant.act<dynamic, i8, per_token>} : (tensor<2x3x64xf32>, !qquant.weight<128x64xf32, i8, symmetric, channel>) -> tensor<2x3x128xf32>
  %up = qquant.linear %n, %wu {act = #qquant.act<dynamic, i8, per_token>} : (tensor<2x3x64xf32>, !qquant.weight<128x64xf32, i8, symmetric, channel>) -> tensor<2x3x128xf32>
  %h = qwen.silu_mul %gt, %up : tensor<2x3x128xf32>
  %d = qquant.linear %h, %wd {act = #qquant.act<dynamic, i8, per_token>} : (tensor<2x3x128xf32>, !qquant.weight<64x128xf32, i4, symmetric, channel>) -> tensor<2x3x64xf32>
  return %d : tensor<2x3x64xf32>
}

// -----

// The norm has another user (a weight-only linear, a residual, a return):
// it stays, and the quantization follows it. A per-head norm is never fused.
// Static activations, weight-only linears and block arguments.
// CHECK-LABEL: func @kept
// CHECK: %[[N:[a-z0-9_]+]] = qwen.rms_norm %{{.*}}
// CHECK-NEXT: %[[Q:[a-z0-9_]+]], %[[S:[a-z0-9_]+]] = qquant.dynamic_quantize %[[N]] {per_token}
// CHECK: qquant.qlinear %[[Q]], %[[S]]
// CHECK: qquant.linear %[[N]], %{{.*}} : (tensor<4x64xf32>
// CHECK: %[[P:[a-z0-9_]+]] = qwen.rms_norm %{{.*}} {epsilon = 9.99999997E-7 : f32, per_head}
// CHECK-NEXT: qquant.dynamic_quantize %[[P]]
// CHECK: qquant.linear %{{.*}}, %{{.*}} {act = #qquant.act<static : !quant.uniform<i8:f32, 5.000000e-02>>}
func.func @kept(%x: tensor<4x64xf32>, %g: tensor<64xf32>, %g16: tensor<16xf32>,
                %w: !qquant.weight<64x64xf32, i8, symmetric, channel>) -> (tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>) {
  %n = qwen.rms_norm %x, %g {epsilon = 1.0e-06 : f32} : (tensor<4x64xf32>, tensor<64xf32>) -> tensor<4x64xf32>
  %a = qquant.linear %n, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<4x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<4x64xf32>
  %b = qquant.linear %n, %w : (tensor<4x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<4x64xf32>
  %p = qwen.rms_norm %x, %g16 {epsilon = 1.0e-06 : f32, per_head} : (tensor<4x64xf32>, tensor<16xf32>) -> tensor<4x64xf32>
  %c = qquant.linear %p, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<4x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<4x64xf32>
  %d = qquant.linear %x, %w {act = #qquant.act<static : !quant.uniform<i8:f32, 0.05>>} : (tensor<4x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<4x64xf32>
  return %a, %b, %c, %d : tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>
}

// -----

// A block argument is quantized at the top of its block; a per-tensor
// dynamic activation has no qlinear form and stays.
// CHECK-LABEL: func @arg
// CHECK-NEXT: %[[Q:[a-z0-9_]+]], %[[S:[a-z0-9_]+]] = qquant.dynamic_quantize %arg0 {per_token}
// CHECK: qquant.qlinear %[[Q]], %[[S]]
// CHECK: qquant.linear %arg0, %{{.*}} {act = #qquant.act<dynamic, i8, per_tensor>}
func.func @arg(%x: tensor<4x64xf32>, %w: !qquant.weight<64x64xf32, i8, symmetric, channel>) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  %a = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<4x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<4x64xf32>
  %b = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_tensor>} : (tensor<4x64xf32>, !qquant.weight<64x64xf32, i8, symmetric, channel>) -> tensor<4x64xf32>
  return %a, %b : tensor<4x64xf32>, tensor<4x64xf32>
}
