// The integer-only qquant ops print and parse back.
// RUN: qwen-opt %s | qwen-opt | FileCheck %s

qwen.store @q "unused.qws"

// CHECK-LABEL: func.func @ops
func.func @ops(%x: tensor<2x8x64xf32>, %b: tensor<96xf32>) -> (tensor<2x8x96xf32>, tensor<2x8x96xi8>) {
  // CHECK: qquant.quantize %{{.*}} {scale = 1.250000e-02 : f64} : tensor<2x8x64xf32> -> tensor<2x8x64xi8>
  %q = qquant.quantize %x {scale = 0.0125 : f64} : tensor<2x8x64xf32> -> tensor<2x8x64xi8>
  %w = qquant.weight @q::@w : !qquant.weight<96x64xf32, i8, symmetric, channel>
  // CHECK: qquant.int_linear %{{.*}}, %{{.*}} : (tensor<2x8x64xi8>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<2x8x96xi32>
  %acc = qquant.int_linear %q, %w : (tensor<2x8x64xi8>, !qquant.weight<96x64xf32, i8, symmetric, channel>) -> tensor<2x8x96xi32>
  // CHECK: qquant.dequantize %{{.*}}, %{{.*}} {scale = array<f32: 2.500000e-04>} : (tensor<2x8x96xi32>, tensor<96xf32>) -> tensor<2x8x96xf32>
  %y = qquant.dequantize %acc, %b {scale = array<f32: 2.5e-4>} : (tensor<2x8x96xi32>, tensor<96xf32>) -> tensor<2x8x96xf32>
  // CHECK: qquant.requantize %{{.*}} {multiplier = array<i32: 1518500250>, shift = array<i32: 7>, zero_point = 2 : i32} : tensor<2x8x96xi32> -> tensor<2x8x96xi8>
  %r = qquant.requantize %acc {multiplier = array<i32: 1518500250>, shift = array<i32: 7>, zero_point = 2 : i32} : tensor<2x8x96xi32> -> tensor<2x8x96xi8>
  // CHECK: qquant.lookup %{{.*}} {table = array<i8: 0, 1, 2
  %s = qquant.lookup %r {table = array<i8: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, -128, -127, -126, -125, -124, -123, -122, -121, -120, -119, -118, -117, -116, -115, -114, -113, -112, -111, -110, -109, -108, -107, -106, -105, -104, -103, -102, -101, -100, -99, -98, -97, -96, -95, -94, -93, -92, -91, -90, -89, -88, -87, -86, -85, -84, -83, -82, -81, -80, -79, -78, -77, -76, -75, -74, -73, -72, -71, -70, -69, -68, -67, -66, -65, -64, -63, -62, -61, -60, -59, -58, -57, -56, -55, -54, -53, -52, -51, -50, -49, -48, -47, -46, -45, -44, -43, -42, -41, -40, -39, -38, -37, -36, -35, -34, -33, -32, -31, -30, -29, -28, -27, -26, -25, -24, -23, -22, -21, -20, -19, -18, -17, -16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1>} : tensor<2x8x96xi8> -> tensor<2x8x96xi8>
  // CHECK: qquant.int_mul %{{.*}}, %{{.*}} : (tensor<2x8x96xi8>, tensor<2x8x96xi8>) -> tensor<2x8x96xi32>
  %p = qquant.int_mul %s, %r : (tensor<2x8x96xi8>, tensor<2x8x96xi8>) -> tensor<2x8x96xi32>
  // Per-channel multipliers, dynamic batch.
  // CHECK: qquant.requantize %{{.*}} {multiplier = array<i32: 1073741824, 0>, shift = array<i32: 0, 31>} : tensor<?x2xi32> -> tensor<?x2xi8>
  %c = tensor.cast %p : tensor<2x8x96xi32> to tensor<?x?x96xi32>
  %d = tensor.empty() : tensor<4x2xi32>
  %dc = tensor.cast %d : tensor<4x2xi32> to tensor<?x2xi32>
  %pc = qquant.requantize %dc {multiplier = array<i32: 1073741824, 0>, shift = array<i32: 0, 31>} : tensor<?x2xi32> -> tensor<?x2xi8>
  %r2 = qquant.requantize %p {multiplier = array<i32: 1073741824>, shift = array<i32: 0>} : tensor<2x8x96xi32> -> tensor<2x8x96xi8>
  // CHECK: %[[H:.*]] = qquant.quantize %{{.*}} {scale = 1.000000e-03 : f64} : tensor<2x8x64xf32> -> tensor<2x8x64xi16>
  // CHECK: qquant.int_rms_norm %[[H]] {eps = 12 : i64, gain = array<i64: 65536, {{.*}}>} : tensor<2x8x64xi16> -> tensor<2x8x64xi8>
  %h = qquant.quantize %x {scale = 0.001 : f64} : tensor<2x8x64xf32> -> tensor<2x8x64xi16>
  %n = qquant.int_rms_norm %h {gain = array<i64: 65536, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63>, eps = 12 : i64} : tensor<2x8x64xi16> -> tensor<2x8x64xi8>
  return %y, %r2 : tensor<2x8x96xf32>, tensor<2x8x96xi8>
}
