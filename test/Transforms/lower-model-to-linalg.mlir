// RUN: qwen-opt %s --qwen-lower-model-to-linalg -split-input-file | FileCheck %s

// CHECK-LABEL: func @add
// CHECK: linalg.generic
// CHECK: arith.addf
// CHECK-NOT: qwen.add
// CHECK: return
func.func @add(%a: tensor<1x8x64xf32>, %b: tensor<1x8x64xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.add %a, %b : tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// CHECK-LABEL: func @silu_mul
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: arith.mulf
// CHECK-NOT: qwen.silu_mul
// CHECK: return
func.func @silu_mul(%g: tensor<1x8x128xf32>, %u: tensor<1x8x128xf32>) -> tensor<1x8x128xf32> {
  %0 = qwen.silu_mul %g, %u : tensor<1x8x128xf32>
  return %0 : tensor<1x8x128xf32>
}

// -----

// Bias broadcast into the init, then a reduction over k with W read [n, k];
// dynamic batch dims come from tensor.dim of the input.
// CHECK-DAG: #[[X:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[W:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[Y:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func @linear
// CHECK-DAG: tensor.dim %{{.*}}, %c0
// CHECK-DAG: tensor.dim %{{.*}}, %c1
// CHECK: %[[INIT:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<96xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[Y]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} {{.*}} outs(%[[INIT]]
// CHECK-NOT: qwen.linear
// CHECK: return
func.func @linear(%x: tensor<?x?x64xf32>, %w: tensor<96x64xf32>, %b: tensor<96xf32>) -> tensor<?x?x96xf32> {
  %0 = qwen.linear %x, %w, %b : (tensor<?x?x64xf32>, tensor<96x64xf32>, tensor<96xf32>) -> tensor<?x?x96xf32>
  return %0 : tensor<?x?x96xf32>
}

// -----

// CHECK-LABEL: func @logits
// CHECK: linalg.fill
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-NOT: qwen.logits
// CHECK: return
func.func @logits(%h: tensor<1x8x64xf32>, %t: tensor<256x64xf32>) -> tensor<1x8x256xf32> {
  %0 = qwen.logits %h, %t {tied} : (tensor<1x8x64xf32>, tensor<256x64xf32>) -> tensor<1x8x256xf32>
  return %0 : tensor<1x8x256xf32>
}

// -----

// CHECK-LABEL: func @rms_norm
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME: outs(%{{.*}} : tensor<1x8xf32>)
// CHECK: linalg.generic
// CHECK: math.rsqrt
// CHECK-NOT: qwen.rms_norm
// CHECK: return
func.func @rms_norm(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// Per head: the sum of squares is [B, T, num_heads], read at j / head_dim.
// CHECK-DAG: #[[XH:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 * 16 + d3)>
// CHECK-LABEL: func @rms_norm_per_head
// CHECK: linalg.generic {indexing_maps = [#[[XH]], {{.*}}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: outs(%{{.*}} : tensor<1x8x4xf32>)
// CHECK: linalg.generic
// CHECK: arith.divui
// CHECK: tensor.extract
// CHECK: math.rsqrt
// CHECK-NOT: qwen.rms_norm
// CHECK: return
func.func @rms_norm_per_head(%x: tensor<1x8x64xf32>, %w: tensor<16xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32, per_head} : (tensor<1x8x64xf32>, tensor<16xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// CHECK-LABEL: func @embedding
// CHECK: linalg.generic
// CHECK: arith.index_cast %{{.*}} : i64 to index
// CHECK: linalg.index 2
// CHECK: tensor.extract %{{.*}} : tensor<256x64xf32>
// CHECK-NOT: qwen.embedding
// CHECK: return
func.func @embedding(%ids: tensor<1x8xi64>, %t: tensor<256x64xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.embedding %ids, %t : (tensor<1x8xi64>, tensor<256x64xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// inv_freq is folded: theta = 10000, rotary_dim 8 -> 1, 0.1, 0.01, 0.001.
// CHECK-LABEL: func @rope
// CHECK: arith.constant dense<[1.000000e+00, 1.000000e-01, 0.00999999977, 1.000000e-03]> : tensor<4xf32>
// CHECK: linalg.generic
// CHECK: math.cos
// CHECK: math.sin
// CHECK-NOT: qwen.rope
// CHECK: return
func.func @rope(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) -> tensor<1x8x64xf32> {
  %0 = qwen.rope %q, %pos {num_heads = 8 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// CHECK-LABEL: func @rope_interleaved
// CHECK: linalg.generic
// CHECK: arith.remui
// CHECK: math.cos
// CHECK-NOT: qwen.rope
// CHECK: return
func.func @rope_interleaved(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e+06 : f64, style = #qwen.rope_style<interleaved>} : (tensor<1x8x64xf32>, tensor<1x8xi32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}

// -----

// GQA: query head h reads kv head h floordiv 2; present = concat(past, new).
// CHECK-DAG: #[[KG:.*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1 floordiv 2, d3, d4)>
// CHECK-LABEL: func @attention
// CHECK: tensor.insert_slice %{{.*}}[0, 0, 0, 0] [1, 2, 7, 16] [1, 1, 1, 1] : tensor<1x2x7x16xf32> into tensor<1x2x8x16xf32>
// CHECK: tensor.insert_slice %{{.*}}[0, 0, 7, 0] [1, 2, 1, 16] [1, 1, 1, 1] : tensor<1x2x1x16xf32> into tensor<1x2x8x16xf32>
// CHECK: linalg.generic {indexing_maps = [{{.*}}, #[[KG]], {{.*}}]
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: tensor.collapse_shape {{.*}} tensor<1x1x4x16xf32> into tensor<1x1x64xf32>
// CHECK-NOT: qwen.attention
// CHECK: return
func.func @attention(%q: tensor<1x1x64xf32>, %k: tensor<1x1x32xf32>, %v: tensor<1x1x32xf32>,
                     %pk: tensor<1x2x7x16xf32>, %pv: tensor<1x2x7x16xf32>, %m: tensor<1x8xi64>)
    -> (tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v past %pk, %pv mask %m
      {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal}
      : (tensor<1x1x64xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>,
         tensor<1x2x7x16xf32>, tensor<1x2x7x16xf32>, tensor<1x8xi64>)
      -> (tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return %o, %pk1, %pv1 : tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>
}

// -----

// Non-f32 ops are left untouched.
// CHECK-LABEL: func @f16_untouched
// CHECK: qwen.add
func.func @f16_untouched(%a: tensor<4xf16>, %b: tensor<4xf16>) -> tensor<4xf16> {
  %0 = qwen.add %a, %b : tensor<4xf16>
  return %0 : tensor<4xf16>
}

// -----

// onnx.Constant becomes arith.constant (any element type); other onnx ops are
// left untouched.
// CHECK-LABEL: func @onnx_constant
// CHECK-DAG: arith.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-DAG: arith.constant dense<[1, 8]> : tensor<2xi64>
// CHECK-NOT: onnx.Constant
// CHECK: onnx.Shape
func.func @onnx_constant() -> (tensor<2xf32>, tensor<2xi64>, tensor<1xi64>) {
  %0 = onnx.Constant dense<[1.0, 2.0]> : tensor<2xf32>
  %1 = onnx.Constant dense<[1, 8]> : tensor<2xi64>
  %2 = onnx.Shape %0 : (tensor<2xf32>) -> tensor<1xi64>
  return %0, %1, %2 : tensor<2xf32>, tensor<2xi64>, tensor<1xi64>
}
