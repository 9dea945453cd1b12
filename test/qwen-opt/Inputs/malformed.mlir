func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // %y was never defined.
  %0 = qwen.add %x, %y : tensor<4xf32>
  return %0 : tensor<4xf32>
}
