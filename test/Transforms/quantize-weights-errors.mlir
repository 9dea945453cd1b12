// RUN: %python %S/Inputs/quantize_store.py %t.qws
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-quantize-weights="store=%t.q.qws" -split-input-file -verify-diagnostics

// A NaN in a weight is an error naming it.
qwen.store @w "STORE"
func.func @nan(%x: tensor<2x64xf32>) -> tensor<2x8xf32> {
  %w = qwen.weight @w::@nan.weight : tensor<8x64xf32>
  // expected-error @+1 {{weight 'nan.weight' has a NaN or Inf at element 133 (row 2, column 5); it cannot be quantized}}
  %y = qwen.linear %x, %w : (tensor<2x64xf32>, tensor<8x64xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}

// -----

// A weight missing from its store.
qwen.store @w "STORE"
func.func @missing(%x: tensor<2x64xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{weight 'absent.weight' is not in store}}
  %w = qwen.weight @w::@absent.weight : tensor<8x64xf32>
  %y = qwen.linear %x, %w : (tensor<2x64xf32>, tensor<8x64xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}
