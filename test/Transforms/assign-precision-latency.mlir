// --qwen-assign-precision{latency-ms}: the costs' `latency` (from a kernel
// cost model) is the budget's unit. Two layers; i8 is the slow, accurate
// kernel here.
// RUN: qwen-opt %s --qwen-assign-precision="latency-ms=3 print-assignment" | FileCheck %s
// 3 ms: a at i8 (2 ms) and b at i4 (1 ms): loss 0.0101 (b at i8 would need 4 ms).
// CHECK: precision assignment (latency-ms=3, solver exact, 2 layers)
// CHECK: a.weight 64x64 i8-channel 8.500 1.000e-04 sensitivity
// CHECK: b.weight 64x64 i4-g32 5.000 1.000e-02 budget
// CHECK: predicted loss 1.010e-02, predicted 3.000 ms/token
// RUN: qwen-opt %s --qwen-assign-precision="latency-ms=2.5 print-assignment" | FileCheck %s --check-prefix=TIGHT
// TIGHT: a.weight 64x64 i4-g32
// TIGHT: b.weight 64x64 i4-g32
// RUN: not qwen-opt %s --qwen-assign-precision="latency-ms=1" 2>&1 | FileCheck %s --check-prefix=ERR
// ERR: error: --qwen-assign-precision: the budget latency-ms=1 cannot be met: the cheapest assignment needs 2.0000 ms

qwen.store @w "unused.qws"
func.func @f(%x: tensor<1x?x64xf32>) -> tensor<1x?x64xf32> {
  %wa = qwen.weight @w::@a.weight : tensor<64x64xf32>
  %wb = qwen.weight @w::@b.weight : tensor<64x64xf32>
  %a = qwen.linear %x, %wa {qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-4, bits = 8.5, latency = 2.0>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 5.0e-2, bits = 5.0, latency = 1.0>]}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>) -> tensor<1x?x64xf32>
  %b = qwen.linear %a, %wb {qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-4, bits = 8.5, latency = 2.0>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 1.0e-2, bits = 5.0, latency = 1.0>]}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>) -> tensor<1x?x64xf32>
  return %b : tensor<1x?x64xf32>
}
