// RUN: qwen-opt %s --qwen-lower-model-to-linalg=strict=1 -split-input-file -verify-diagnostics

// One error per op left, at the op's location (the importer's ONNX node
// name); lowered ops and weight references are not reported.
func.func @left(%x: tensor<2x3xf32>, %r: tensor<2xi64>, %q: tensor<1x4x16xf32>, %k: tensor<1x4x16xf32>,
                %v: tensor<1x4x16xf32>, %s: tensor<1xi32>, %t: tensor<i32>) -> (tensor<*xf32>, tensor<2x3xf32>, tensor<1x4x16xf32>) {
  // expected-error @+1 {{'onnx.Tile' has no lowering to linalg for this form}}
  %0 = onnx.Tile %x, %r : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<*xf32>
  %1 = onnx.Neg %x : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // expected-error @+1 {{'onnx.ms.GroupQueryAttention' has no lowering to linalg for this form}}
  %o, %pk, %pv = onnx.ms.GroupQueryAttention %q key %k value %v seqlens_k %s total_sequence_length %t
      {kv_num_heads = 2 : si64, num_heads = 2 : si64}
      : (tensor<1x4x16xf32>, tensor<1x4x16xf32>, tensor<1x4x16xf32>, tensor<1xi32>, tensor<i32>)
      -> (tensor<1x4x16xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>)
  return %0, %1, %o : tensor<*xf32>, tensor<2x3xf32>, tensor<1x4x16xf32>
}

// -----

func.func @f16_qwen(%a: tensor<4xf16>, %b: tensor<4xf16>) -> tensor<4xf16> {
  // expected-error @+1 {{'qwen.add' has no lowering to linalg for this form}}
  %0 = qwen.add %a, %b : tensor<4xf16>
  return %0 : tensor<4xf16>
}

// -----

// Without leftovers the pass succeeds.
func.func @all_lowered(%a: tensor<4xf32>) -> tensor<4xf32> {
  %0 = onnx.Sqrt %a : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
