// RUN: qwen-opt %s -canonicalize -cse | FileCheck %s

// onnx.Constant folds to its value, so equal constants merge and unused
// ops (all onnx ops are pure) go away.

// CHECK-LABEL: func @f
func.func @f(%x: tensor<2x3xf32>) -> (tensor<6xf32>, tensor<6xf32>) {
  // CHECK: %[[S:.*]] = onnx.Constant dense<6> : tensor<1xi64>
  // CHECK-NOT: onnx.Constant
  %s0 = onnx.Constant dense<6> : tensor<1xi64>
  %s1 = onnx.Constant dense<6> : tensor<1xi64>
  // CHECK: %[[R:.*]] = onnx.Reshape %arg0, %[[S]]
  %0 = onnx.Reshape %x, %s0 : (tensor<2x3xf32>, tensor<1xi64>) -> tensor<6xf32>
  %1 = onnx.Reshape %x, %s1 : (tensor<2x3xf32>, tensor<1xi64>) -> tensor<6xf32>
  // CHECK-NOT: onnx.Neg
  %2 = onnx.Neg %x : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: return %[[R]], %[[R]]
  return %0, %1 : tensor<6xf32>, tensor<6xf32>
}
