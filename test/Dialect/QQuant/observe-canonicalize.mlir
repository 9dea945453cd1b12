// RUN: qwen-opt %s -canonicalize -cse | FileCheck %s

// Observers survive DCE and CSE (each records its own tensor); pure
// quantized ops with no users are removed.

// CHECK-LABEL: func @f
func.func @f(%x: tensor<4xf32>, %w: !qquant.weight<4x4xf32, i8, symmetric, channel>) {
  // CHECK-COUNT-2: qquant.observe
  %0 = qquant.observe %x {name = "a"} : tensor<4xf32>
  %1 = qquant.observe %x {name = "a"} : tensor<4xf32>
  // CHECK-NOT: qquant.dequantize_weight
  %2 = qquant.dequantize_weight %w : !qquant.weight<4x4xf32, i8, symmetric, channel> -> tensor<4x4xf32>
  return
}
