// RUN: qwen-opt %s -split-input-file -verify-diagnostics --qwen-weights-to-arguments | FileCheck %s

// Each distinct weight becomes one trailing argument, in order of first use,
// carrying its entry name and store file; the store ops are gone.

// CHECK-NOT: qwen.store
// CHECK-LABEL: func.func @main(
// CHECK-SAME:    %[[X:.*]]: tensor<2x4xf32> {onnx.name = "x"},
// CHECK-SAME:    %[[A:.*]]: tensor<4x4xf32> {qwen.weight = "a", qwen.weight_store = "w.qws"},
// CHECK-SAME:    %[[B:.*]]: tensor<4xf32> {qwen.weight = "b", qwen.weight_store = "d.qws"})
// CHECK-NOT:   qwen.weight @
// CHECK:       qwen.linear %[[X]], %[[A]], %[[B]]
// CHECK:       qwen.linear %{{.*}}, %[[A]]
qwen.store @w "w.qws"
qwen.store @d "d.qws"
func.func @main(%x: tensor<2x4xf32> {onnx.name = "x"}) -> tensor<2x4xf32> {
  %a = qwen.weight @w::@a : tensor<4x4xf32>
  %b = qwen.weight @d::@b : tensor<4xf32>
  %y = qwen.linear %x, %a, %b : (tensor<2x4xf32>, tensor<4x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %a2 = qwen.weight @w::@a : tensor<4x4xf32>
  %z = qwen.linear %y, %a2 : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32>
  return %z : tensor<2x4xf32>
}

// -----

// expected-error @+1 {{no entry function @main with a body}}
module {
  func.func private @main(tensor<4xf32>) -> tensor<4xf32>
}

// -----

qwen.store @w "w.qws"
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @helper() -> tensor<4xf32> {
  // expected-error @+1 {{weight reference outside the entry function @main}}
  %v = qwen.weight @w::@v : tensor<4xf32>
  return %v : tensor<4xf32>
}

// -----

qwen.store @q "q.qws"
func.func @main(%x: tensor<1x64xf32>) -> tensor<1x128xf32> {
  // expected-error @+1 {{quantized weight is not lowered yet}}
  %w = qquant.weight @q::@up : !qquant.weight<128x64xf32, i4, symmetric, group = 32>
  %y = qquant.linear %x, %w : (tensor<1x64xf32>, !qquant.weight<128x64xf32, i4, symmetric, group = 32>) -> tensor<1x128xf32>
  return %y : tensor<1x128xf32>
}
