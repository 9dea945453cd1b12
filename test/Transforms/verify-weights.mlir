// RUN: %python %S/Inputs/make_store.py float %t.f.qws
// RUN: %python %S/Inputs/make_store.py quant %t.q.qws
// RUN: sed -e 's|FSTORE|%t.f.qws|; s|QSTORE|%t.q.qws|' %s | qwen-opt --qwen-verify-weights="check-finite" -split-input-file -verify-diagnostics | FileCheck %s

// A module whose weights all match passes unchanged.
// CHECK-LABEL: func @good
qwen.store @f "FSTORE"
qwen.store @q "QSTORE"
func.func @good() {
  %0 = qwen.weight @f::@w : tensor<2x4xf32>
  %1 = qwen.weight @f::@ids : tensor<3xi64>
  // CHECK: qquant.weight @q::@sym
  %2 = qquant.weight @q::@sym : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  %3 = qquant.weight @q::@asym : !qquant.weight<96x64xf32, ui4, asymmetric, channel>
  %4 = qquant.weight @q::@cb : !qquant.weight<96x64xf32, codebook 3, tensor>
  %5 = qquant.weight @q::@sp : !qquant.weight<96x64xf32, i4, symmetric, group = 32, sparsity = 2:4>
  return
}

// -----

qwen.store @f "FSTORE"
func.func @shape() {
  // expected-error @+1 {{'qwen.weight' op shape [4, 2] differs from store entry 'w' [2, 4]}}
  %0 = qwen.weight @f::@w : tensor<4x2xf32>
  return
}

// -----

qwen.store @f "FSTORE"
func.func @dtype() {
  // expected-error @+1 {{'qwen.weight' op element type 'f16' differs from store entry 'w' (f32)}}
  %0 = qwen.weight @f::@w : tensor<2x4xf16>
  return
}

// -----

qwen.store @f "FSTORE"
func.func @nan() {
  // expected-error @+1 {{'qwen.weight' op weight 'nan' has a NaN or Inf at element 1}}
  %0 = qwen.weight @f::@nan : tensor<3xf32>
  return
}

// -----

qwen.store @f "FSTORE"
func.func @inf_f16() {
  // expected-error @+1 {{'qwen.weight' op weight 'inf16' has a NaN or Inf at element 1}}
  %0 = qwen.weight @f::@inf16 : tensor<2xf16>
  return
}

// -----

qwen.store @q "QSTORE"
func.func @missing_zeros() {
  // Asymmetric needs a zero-point entry, which `sym` lacks.
  // expected-error @+1 {{'qquant.weight' op weight 'sym.zeros' is not in store}}
  %0 = qquant.weight @q::@sym : !qquant.weight<96x64xf32, i4, asymmetric, group = 32>
  return
}

// -----

qwen.store @q "QSTORE"
func.func @scales_shape() {
  // expected-error @+1 {{'qquant.weight' op store entry 'badshape.scales' has shape [96, 4], the scheme needs [96, 2]}}
  %0 = qquant.weight @q::@badshape : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  return
}

// -----

qwen.store @q "QSTORE"
func.func @scales_dtype() {
  // expected-error @+1 {{'qquant.weight' op store entry 'baddtype.scales' has dtype i32, not what the scheme needs}}
  %0 = qquant.weight @q::@baddtype : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  return
}

// -----

qwen.store @q "QSTORE"
func.func @codes_bits() {
  // 3-bit codes need [96, 24] bytes, `sym` has [96, 32].
  // expected-error @+1 {{'qquant.weight' op store entry 'sym.codes' has shape [96, 32], the scheme needs [96, 24]}}
  %0 = qquant.weight @q::@sym : !qquant.weight<96x64xf32, i3, symmetric, group = 32>
  return
}

// -----

qwen.store @q "QSTORE"
func.func @nan_scales() {
  // expected-error @+1 {{'qquant.weight' op weight 'nan.scales' has a NaN or Inf at element 0}}
  %0 = qquant.weight @q::@nan : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
  return
}
