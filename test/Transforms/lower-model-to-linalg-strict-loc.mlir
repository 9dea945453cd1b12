// RUN: not qwen-opt %s --qwen-lower-model-to-linalg=strict=1 -o /dev/null 2>&1 | FileCheck %s

// The error names the op and its location, which the importer sets to the
// ONNX node name; each leftover op is reported once and the pass fails.
// CHECK: error: loc("/model/Tile_3"): 'onnx.Tile' has no lowering to linalg for this form
// CHECK-NOT: error:
func.func @left(%x: tensor<2x3xf32>, %r: tensor<2xi64>) -> (tensor<*xf32>, tensor<2x3xf32>) {
  %0 = onnx.Tile %x, %r : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<*xf32> loc("/model/Tile_3")
  %1 = onnx.Neg %x : (tensor<2x3xf32>) -> tensor<2x3xf32> loc("/model/Neg_1")
  return %0, %1 : tensor<*xf32>, tensor<2x3xf32>
}
