module {
func.func @attention(%q: tensor<1x3x64xf32>, %k: tensor<1x3x32xf32>, %v: tensor<1x3x32xf32>,
                     %pk: tensor<1x2x7x16xf32>, %pv: tensor<1x2x7x16xf32>, %m: tensor<1x10xi64>)
    -> (tensor<1x3x64xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x16xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v past %pk, %pv mask %m
      {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal}
      : (tensor<1x3x64xf32>, tensor<1x3x32xf32>, tensor<1x3x32xf32>,
         tensor<1x2x7x16xf32>, tensor<1x2x7x16xf32>, tensor<1x10xi64>)
      -> (tensor<1x3x64xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x16xf32>)
  return %o, %pk1, %pv1 : tensor<1x3x64xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x16xf32>
}
func.func @norm_rope_swiglu(%x: tensor<1x3x64xf32>, %w: tensor<64xf32>, %pos: tensor<1x3xi64>) -> tensor<1x3x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<1x3x64xf32>, tensor<64xf32>) -> tensor<1x3x64xf32>
  %1 = qwen.rope %0, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e+06 : f64} : (tensor<1x3x64xf32>, tensor<1x3xi64>) -> tensor<1x3x64xf32>
  %2 = qwen.silu_mul %1, %x : tensor<1x3x64xf32>
  return %2 : tensor<1x3x64xf32>
}
}
