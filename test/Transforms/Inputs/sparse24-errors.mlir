qwen.store @q "STORE"
func.func @sparse_act(%x: tensor<2x64xf32>) -> tensor<2x24xf32> {
  %w = qquant.weight @q::@a : !qquant.weight<24x64xf32, i4, symmetric, group = 32, sparsity = 2:4>
  // expected-error @+1 {{2:4 sparse weights have a weight-only lowering for uniform and log2 grids (float activations)}}
  %y = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<2x64xf32>, !qquant.weight<24x64xf32, i4, symmetric, group = 32, sparsity = 2:4>) -> tensor<2x24xf32>
  return %y : tensor<2x24xf32>
}
