qwen.store @w "STORE"
func.func @all() -> (tensor<2x3xf32>, tensor<2xf16>, tensor<1x3xi8>, tensor<2xui8>, tensor<1xi32>, tensor<2x2xi64>, tensor<3xi1>, tensor<f64>) {
  %0 = qwen.weight @w::@f32 : tensor<2x3xf32>
  %1 = qwen.weight @w::@f16 : tensor<2xf16>
  %2 = qwen.weight @w::@i8 : tensor<1x3xi8>
  %3 = qwen.weight @w::@u8 : tensor<2xui8>
  %4 = qwen.weight @w::@i32 : tensor<1xi32>
  %5 = qwen.weight @w::@i64 : tensor<2x2xi64>
  %6 = qwen.weight @w::@bool : tensor<3xi1>
  %7 = qwen.weight @w::@scalar : tensor<f64>
  return %0, %1, %2, %3, %4, %5, %6, %7 : tensor<2x3xf32>, tensor<2xf16>, tensor<1x3xi8>, tensor<2xui8>, tensor<1xi32>, tensor<2x2xi64>, tensor<3xi1>, tensor<f64>
}
