func.func @f(%x: tensor<1x8x32xf32>, %w: tensor<96x64xf32>) -> tensor<1x8x96xf32> {
  %0 = qwen.linear %x, %w : (tensor<1x8x32xf32>, tensor<96x64xf32>) -> tensor<1x8x96xf32>
  return %0 : tensor<1x8x96xf32>
}
