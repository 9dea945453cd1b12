// RUN: qwen-opt %s --qwen-weights-to-arguments=entry=model | FileCheck %s

// The entry function can be named; other functions keep their signature.
// CHECK-LABEL: func.func @main(
// CHECK-SAME:    %{{.*}}: tensor<4xf32>) -> tensor<4xf32>
// CHECK-LABEL: func.func @model(
// CHECK-SAME:    %{{.*}}: tensor<4xf32> {qwen.weight = "v", qwen.weight_store = "w.qws"})
qwen.store @w "w.qws"
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @model() -> tensor<4xf32> {
  %v = qwen.weight @w::@v : tensor<4xf32>
  return %v : tensor<4xf32>
}
