qwen.store @w "STORE"
func.func @f() -> tensor<2x4xf32> {
  %0 = qwen.weight @w::@w : tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}
