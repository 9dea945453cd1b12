// A module with an integer-only op (what --qwen-integer-only writes), for
// export-errors.test.
module {
  func.func @main(%arg0: tensor<2x4xf32>) -> tensor<2x4xi8> {
    %0 = qquant.quantize %arg0 {scale = 5.000000e-01 : f64} : tensor<2x4xf32> -> tensor<2x4xi8>
    return %0 : tensor<2x4xi8>
  }
}
