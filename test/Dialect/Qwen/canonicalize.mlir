// RUN: qwen-opt %s -canonicalize -cse -split-input-file | FileCheck %s

// References to one weight are one value after CSE; the model-level ops are
// pure, so unused ones disappear.

qwen.store @w "m.qws"
// CHECK-LABEL: func @cse_weights
func.func @cse_weights(%x: tensor<1x4x8xf32>) -> (tensor<1x4x8xf32>, tensor<1x4x8xf32>) {
  // CHECK-COUNT-1: qwen.weight @w::@norm
  // CHECK-NOT: qwen.weight
  %a = qwen.weight @w::@norm : tensor<8xf32>
  %b = qwen.weight @w::@norm : tensor<8xf32>
  %0 = qwen.rms_norm %x, %a {epsilon = 1.0e-6 : f32} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  %1 = qwen.rms_norm %x, %b {epsilon = 1.0e-6 : f32} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  // CHECK: %[[N:.*]] = qwen.rms_norm
  // CHECK-NOT: qwen.rms_norm
  // CHECK: return %[[N]], %[[N]]
  return %0, %1 : tensor<1x4x8xf32>, tensor<1x4x8xf32>
}

// -----

// CHECK-LABEL: func @dce
func.func @dce(%x: tensor<1x4x8xf32>, %w: tensor<16x8xf32>) -> tensor<1x4x8xf32> {
  // CHECK-NOT: qwen.linear
  // CHECK-NOT: qwen.silu_mul
  %0 = qwen.linear %x, %w : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %1 = qwen.silu_mul %0, %0 : tensor<1x4x16xf32>
  // CHECK: return %arg0
  return %x : tensor<1x4x8xf32>
}
