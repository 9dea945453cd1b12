qwen.store @q "STORE"
func.func @w4(%x: tensor<2x64xf32>) -> tensor<2x24xf32> {
  %w = qquant.weight @q::@ch : !qquant.weight<24x64xf32, i3, symmetric, group = 32>
  // expected-error @+1 {{dynamic int8 activations need signed symmetric 8-bit weights per tensor or per channel (w8a8) or 4-bit ones per tensor, channel or group (w4a8), got '!qquant.weight<24x64xf32, i3, symmetric, group = 32>'}}
  %y = qquant.linear %x, %w {act = #qquant.act<dynamic, i8, per_token>} : (tensor<2x64xf32>, !qquant.weight<24x64xf32, i3, symmetric, group = 32>) -> tensor<2x24xf32>
  return %y : tensor<2x24xf32>
}

// -----

qwen.store @q "STORE"
func.func @static_asym(%x: tensor<2x64xf32>) -> tensor<2x24xf32> {
  %w = qquant.weight @q::@ch : !qquant.weight<24x64xf32, i8, symmetric, channel>
  // expected-error @+1 {{only static per-tensor symmetric int8 activations}}
  %y = qquant.linear %x, %w {act = #qquant.act<static : !quant.uniform<i8:f32, 0.02:3>>} : (tensor<2x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>) -> tensor<2x24xf32>
  return %y : tensor<2x24xf32>
}

// -----

qwen.store @q "STORE"
func.func @static_w4(%x: tensor<2x64xf32>) -> tensor<2x24xf32> {
  %w = qquant.weight @q::@ch : !qquant.weight<24x64xf32, i8, symmetric, group = 32>
  // expected-error @+1 {{static int8 activations need signed symmetric 8-bit weights per tensor or per channel (w8a8) or 4-bit ones per tensor, channel or group (w4a8)}}
  %y = qquant.linear %x, %w {act = #qquant.act<static : !quant.uniform<i8:f32, 0.02:0>>} : (tensor<2x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, group = 32>) -> tensor<2x24xf32>
  return %y : tensor<2x24xf32>
}
