// RUN: %python %S/Inputs/make_store.py float %t.qws
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-internalize-weights="max-bytes=1024" -split-input-file -verify-diagnostics | FileCheck %s

// The store is dropped once nothing refers to it.
// CHECK-NOT: qwen.store
qwen.store @w "STORE"
// CHECK-LABEL: func @inline
func.func @inline() -> tensor<2x4xf32> {
  // CHECK-LITERAL: arith.constant dense<[[0.000000e+00, 1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00, 5.000000e+00, 6.000000e+00, 7.000000e+00]]> : tensor<2x4xf32>
  %0 = qwen.weight @w::@w : tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

qwen.store @w "STORE"
func.func @too_big() -> tensor<64x64xf32> {
  // expected-error @+1 {{'qwen.weight' op weight 'big' has 16384 bytes, more than max-bytes=1024}}
  %0 = qwen.weight @w::@big : tensor<64x64xf32>
  return %0 : tensor<64x64xf32>
}

// -----

qwen.store @w "STORE"
func.func @missing() -> tensor<2x4xf32> {
  // expected-error @+1 {{'qwen.weight' op weight 'nothere' is not in store}}
  %0 = qwen.weight @w::@nothere : tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

qwen.store @w "STORE"
func.func @type_mismatch() -> tensor<8xf32> {
  // expected-error @+1 {{'qwen.weight' op type 'tensor<8xf32>' does not match store entry 'w' (f32)}}
  %0 = qwen.weight @w::@w : tensor<8xf32>
  return %0 : tensor<8xf32>
}
