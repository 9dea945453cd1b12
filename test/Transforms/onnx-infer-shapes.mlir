// RUN: qwen-opt %s --qwen-onnx-infer-shapes -split-input-file -verify-diagnostics | FileCheck %s

// Element-wise families broadcast; MatMul follows numpy.
// CHECK-LABEL: func @elementwise
func.func @elementwise(%x: tensor<?x8x64xf32>, %w: tensor<64x32xf32>, %b: tensor<32xf32>) -> tensor<*xf32> {
  // CHECK: onnx.MatMul {{.*}} -> tensor<?x8x32xf32>
  %0 = onnx.MatMul %x, %w : (tensor<?x8x64xf32>, tensor<64x32xf32>) -> tensor<*xf32>
  // CHECK: onnx.Add {{.*}} -> tensor<?x8x32xf32>
  %1 = onnx.Add %0, %b : (tensor<*xf32>, tensor<32xf32>) -> tensor<*xf32>
  // CHECK: onnx.Sigmoid {{.*}} -> tensor<?x8x32xf32>
  %2 = onnx.Sigmoid %1 : (tensor<*xf32>) -> tensor<*xf32>
  // CHECK: onnx.Less {{.*}} -> tensor<?x8x32xi1>
  %3 = onnx.Less %2, %b : (tensor<*xf32>, tensor<32xf32>) -> tensor<*xi1>
  // CHECK: onnx.Where {{.*}} -> tensor<?x8x32xf32>
  %4 = onnx.Where %3, %2, %b : (tensor<*xi1>, tensor<*xf32>, tensor<32xf32>) -> tensor<*xf32>
  // The function's result type follows.
  // CHECK: return {{.*}} : tensor<?x8x32xf32>
  return %4 : tensor<*xf32>
}

// -----

// Shape arithmetic is evaluated: Reshape to [batch, seq, -1, 16] built from
// Shape/Gather/Unsqueeze/Concat gives a ranked result with the static dims.
// CHECK-LABEL: func @reshape_from_shape
func.func @reshape_from_shape(%x: tensor<2x8x64xf32>) -> tensor<*xf32> {
  %s = onnx.Shape %x : (tensor<2x8x64xf32>) -> tensor<*xi64>
  %i0 = onnx.Constant dense<0> : tensor<i64>
  %i1 = onnx.Constant dense<1> : tensor<i64>
  %ax = onnx.Constant dense<0> : tensor<1xi64>
  %b = onnx.Gather %s, %i0 : (tensor<*xi64>, tensor<i64>) -> tensor<*xi64>
  %t = onnx.Gather %s, %i1 : (tensor<*xi64>, tensor<i64>) -> tensor<*xi64>
  %bu = onnx.Unsqueeze %b, %ax : (tensor<*xi64>, tensor<1xi64>) -> tensor<*xi64>
  %tu = onnx.Unsqueeze %t, %ax : (tensor<*xi64>, tensor<1xi64>) -> tensor<*xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %hd = onnx.Constant dense<16> : tensor<1xi64>
  %shape = onnx.Concat %bu, %tu, %m1, %hd {axis = 0 : si64} : (tensor<*xi64>, tensor<*xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<*xi64>
  // CHECK: onnx.Reshape {{.*}} -> tensor<2x8x4x16xf32>
  %r = onnx.Reshape %x, %shape : (tensor<2x8x64xf32>, tensor<*xi64>) -> tensor<*xf32>
  // CHECK: onnx.Transpose {{.*}} -> tensor<2x4x8x16xf32>
  %p = onnx.Transpose %r {perm = array<i64: 0, 2, 1, 3>} : (tensor<*xf32>) -> tensor<*xf32>
  return %p : tensor<*xf32>
}

// -----

// CHECK-LABEL: func @slice_split_concat
func.func @slice_split_concat(%x: tensor<1x4x8x16xf32>) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>) {
  %s = onnx.Constant dense<8> : tensor<1xi64>
  %e = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %a = onnx.Constant dense<3> : tensor<1xi64>
  %one = onnx.Constant dense<1> : tensor<1xi64>
  // CHECK: onnx.Slice {{.*}} -> tensor<1x4x8x8xf32>
  %0 = onnx.Slice %x, %s, %e axes %a steps %one : (tensor<1x4x8x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<*xf32>
  // CHECK: onnx.Split {{.*}} -> (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>)
  %1:2 = onnx.Split %x {axis = 3 : si64, num_outputs = 2 : si64} : (tensor<1x4x8x16xf32>) -> (tensor<*xf32>, tensor<*xf32>)
  // CHECK: onnx.Concat {{.*}} -> tensor<1x4x8x16xf32>
  %2 = onnx.Concat %0, %1#1 {axis = -1 : si64} : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  // CHECK: onnx.Neg {{.*}} -> tensor<1x4x8x8xf32>
  %3 = onnx.Neg %1#0 : (tensor<*xf32>) -> tensor<*xf32>
  return %2, %3, %1#1 : tensor<*xf32>, tensor<*xf32>, tensor<*xf32>
}

// -----

// CHECK-LABEL: func @reductions_and_expand
func.func @reductions_and_expand(%x: tensor<1x8x64xf32>, %ids: tensor<1x8xi64>, %t: tensor<256x64xf32>) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>, tensor<*xi64>) {
  %ax = onnx.Constant dense<-1> : tensor<1xi64>
  // CHECK: onnx.ReduceMean {{.*}} -> tensor<1x8x1xf32>
  %0 = onnx.ReduceMean %x axes %ax : (tensor<1x8x64xf32>, tensor<1xi64>) -> tensor<*xf32>
  // CHECK: onnx.Gather {{.*}} -> tensor<1x8x64xf32>
  %1 = onnx.Gather %t, %ids : (tensor<256x64xf32>, tensor<1x8xi64>) -> tensor<*xf32>
  %shape = onnx.Constant dense<[3, 1, 1]> : tensor<3xi64>
  // CHECK: onnx.Expand {{.*}} -> tensor<3x8x1xf32>
  %2 = onnx.Expand %0, %shape : (tensor<*xf32>, tensor<3xi64>) -> tensor<*xf32>
  %start = onnx.Constant dense<0> : tensor<i64>
  %lim = onnx.Constant dense<8> : tensor<i64>
  %d = onnx.Constant dense<1> : tensor<i64>
  // CHECK: onnx.Range {{.*}} -> tensor<8xi64>
  %3 = onnx.Range %start, %lim, %d : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<*xi64>
  return %0, %1, %2, %3 : tensor<*xf32>, tensor<*xf32>, tensor<*xf32>, tensor<*xi64>
}

// -----

// A declared type is kept where it is more precise, merged where it is not.
// CHECK-LABEL: func @merge
func.func @merge(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  // CHECK: onnx.Relu {{.*}} -> tensor<4x64xf32>
  %0 = onnx.Relu %x : (tensor<?x64xf32>) -> tensor<4x64xf32>
  %1 = onnx.Neg %0 : (tensor<4x64xf32>) -> tensor<?x64xf32>
  return %1 : tensor<?x64xf32>
}

// -----

func.func @contradiction(%x: tensor<2x64xf32>, %w: tensor<64x32xf32>) {
  // expected-error @+1 {{'onnx.MatMul' op declared result type 'tensor<2x16xf32>' contradicts the inferred dimension 1 = 32}}
  %0 = onnx.MatMul %x, %w : (tensor<2x64xf32>, tensor<64x32xf32>) -> tensor<2x16xf32>
  return
}

// -----

// onnxruntime contrib ops.
// CHECK-LABEL: func @contrib
func.func @contrib(%x: tensor<1x8x64xf32>, %b: tensor<96x2x16xui8>, %s: tensor<192xf32>, %q: tensor<1x8x128xf32>, %sl: tensor<1xi32>, %tl: tensor<i32>) {
  // CHECK: onnx.ms.MatMulNBits {{.*}} -> tensor<1x8x96xf32>
  %0 = onnx.ms.MatMulNBits %x, %b, %s {K = 64 : si64, N = 96 : si64, block_size = 32 : si64} : (tensor<1x8x64xf32>, tensor<96x2x16xui8>, tensor<192xf32>) -> tensor<*xf32>
  // Packed QKV: 128 = (4 + 2*2) * 16.
  // CHECK: onnx.ms.GroupQueryAttention {{.*}} -> (tensor<1x8x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>)
  %1:3 = onnx.ms.GroupQueryAttention %q seqlens_k %sl total_sequence_length %tl {kv_num_heads = 2 : si64, num_heads = 4 : si64}
      : (tensor<1x8x128xf32>, tensor<1xi32>, tensor<i32>) -> (tensor<*xf32>, tensor<*xf32>, tensor<*xf32>)
  return
}
