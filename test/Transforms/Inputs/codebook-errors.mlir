qwen.store @q "STORE"
func.func @codebook_act(%x: tensor<2x64xf32>) -> tensor<2x24xf32> {
  %w = qquant.weight @q::@g : !qquant.weight<24x64xf32, codebook 4, group = 32>
  // expected-error @+1 {{int8 activations need uniform integer weights; a codebook has a weight-only lowering}}
  %y = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<2x64xf32>, !qquant.weight<24x64xf32, codebook 4, group = 32>) -> tensor<2x24xf32>
  return %y : tensor<2x24xf32>
}
