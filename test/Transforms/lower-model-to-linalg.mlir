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
// The reference lowering (the fused kernels: fused-kernel-sweep.test).
module attributes {qwen.quant_kernel = {fused = false}} {
func.func @silu_mul(%g: tensor<1x8x128xf32>, %u: tensor<1x8x128xf32>) -> tensor<1x8x128xf32> {
  %0 = qwen.silu_mul %g, %u : tensor<1x8x128xf32>
  return %0 : tensor<1x8x128xf32>
}
}

// -----

// The reference lowering (the register-blocked kernel is tested by
// dense-kernel-sweep.test): bias broadcast into the init, then a reduction
// over k with W read [n, k];
// the output feature n is the outermost loop (d0), k the innermost (d3);
// dynamic batch dims come from tensor.dim of the input.
// CHECK-DAG: #[[X:.*]] = affine_map<(d0, d1, d2, d3) -> (d1, d2, d3)>
// CHECK-DAG: #[[W:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG: #[[Y:.*]] = affine_map<(d0, d1, d2, d3) -> (d1, d2, d0)>
// CHECK-LABEL: func @linear
// CHECK-DAG: tensor.dim %{{.*}}, %c0
// CHECK-DAG: tensor.dim %{{.*}}, %c1
// CHECK: %[[INIT:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<96xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[Y]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} {{.*}} outs(%[[INIT]]
// CHECK-NOT: qwen.linear
// CHECK: return
module attributes {qwen.quant_kernel = {fused = false}} {
func.func @linear(%x: tensor<?x?x64xf32>, %w: tensor<96x64xf32>, %b: tensor<96xf32>) -> tensor<?x?x96xf32> {
  %0 = qwen.linear %x, %w, %b : (tensor<?x?x64xf32>, tensor<96x64xf32>, tensor<96xf32>) -> tensor<?x?x96xf32>
  return %0 : tensor<?x?x96xf32>
}
}

// -----

// CHECK-LABEL: func @logits
// CHECK: linalg.fill
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-NOT: qwen.logits
// CHECK: return
module attributes {qwen.quant_kernel = {fused = false}} {
func.func @logits(%h: tensor<1x8x64xf32>, %t: tensor<256x64xf32>) -> tensor<1x8x256xf32> {
  %0 = qwen.logits %h, %t {tied} : (tensor<1x8x64xf32>, tensor<256x64xf32>) -> tensor<1x8x256xf32>
  return %0 : tensor<1x8x256xf32>
}
}

// -----

// CHECK-LABEL: func @rms_norm
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME: outs(%{{.*}} : tensor<1x8xf32>)
// CHECK: linalg.generic
// CHECK: math.rsqrt
// CHECK-NOT: qwen.rms_norm
// CHECK: return
// The reference lowering (the fused kernels: fused-kernel-sweep.test).
module attributes {qwen.quant_kernel = {fused = false}} {
func.func @rms_norm(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
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
// The reference lowering (the fused kernels: fused-kernel-sweep.test).
module attributes {qwen.quant_kernel = {fused = false}} {
func.func @rms_norm_per_head(%x: tensor<1x8x64xf32>, %w: tensor<16xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32, per_head} : (tensor<1x8x64xf32>, tensor<16xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
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
// The reference lowering (the fused kernels: fused-kernel-sweep.test).
module attributes {qwen.quant_kernel = {fused = false}} {
func.func @rope(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) -> tensor<1x8x64xf32> {
  %0 = qwen.rope %q, %pos {num_heads = 8 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
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
// The reference lowering (the fused kernels: fused-kernel-sweep.test).
module attributes {qwen.quant_kernel = {fused = false}} {
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

// onnx.Constant becomes arith.constant (any element type); other onnx ops go
// through the generic lowering (onnx.Size: the product of the dims).
// CHECK-LABEL: func @onnx_constant
// CHECK-DAG: arith.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-DAG: arith.constant dense<[1, 8]> : tensor<2xi64>
// CHECK-NOT: onnx.Constant
// CHECK-NOT: onnx.Size
// CHECK: tensor.from_elements %{{.*}} : tensor<i64>
func.func @onnx_constant() -> (tensor<2xf32>, tensor<2xi64>, tensor<i64>) {
  %0 = onnx.Constant dense<[1.0, 2.0]> : tensor<2xf32>
  %1 = onnx.Constant dense<[1, 8]> : tensor<2xi64>
  %2 = onnx.Size %0 : (tensor<2xf32>) -> tensor<i64>
  return %0, %1, %2 : tensor<2xf32>, tensor<2xi64>, tensor<i64>
}

// -----

// onnx.Shape (with start/end) becomes tensor.from_elements of the i64 dims.
// CHECK-LABEL: func @onnx_shape
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x64xf32>)
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK: %[[D1:.*]] = tensor.dim %[[X]], %[[C1]]
// CHECK: %[[I1:.*]] = arith.index_cast %[[D1]] : index to i64
// CHECK: %[[C64:.*]] = arith.constant 64 : index
// CHECK: %[[I2:.*]] = arith.index_cast %[[C64]] : index to i64
// CHECK: tensor.from_elements %[[I1]], %[[I2]] : tensor<2xi64>
// CHECK-NOT: onnx.Shape
func.func @onnx_shape(%x: tensor<?x?x64xf32>) -> tensor<2xi64> {
  %0 = onnx.Shape %x {start = 1 : si64} : (tensor<?x?x64xf32>) -> tensor<2xi64>
  return %0 : tensor<2xi64>
}

// -----

// onnx.Gather of a 1-D tensor by a scalar index: tensor.extract at the index
// (negative indices wrap by the length), packed into a 0-D tensor.
// CHECK-LABEL: func @onnx_gather
// CHECK-SAME: (%[[D:.*]]: tensor<3xi64>, %[[I:.*]]: tensor<i64>)
// CHECK: %[[E:.*]] = tensor.extract %[[I]][] : tensor<i64>
// CHECK: %[[IX:.*]] = arith.index_cast %[[E]] : i64 to index
// CHECK: %[[NEG:.*]] = arith.cmpi slt, %[[IX]]
// CHECK: %[[W:.*]] = arith.addi %[[IX]]
// CHECK: %[[SEL:.*]] = arith.select %[[NEG]], %[[W]], %[[IX]] : index
// CHECK: %[[V:.*]] = tensor.extract %[[D]][%[[SEL]]] : tensor<3xi64>
// CHECK: tensor.from_elements %[[V]] : tensor<i64>
// CHECK-NOT: onnx.Gather
func.func @onnx_gather(%d: tensor<3xi64>, %i: tensor<i64>) -> tensor<i64> {
  %0 = onnx.Gather %d, %i : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  return %0 : tensor<i64>
}

// -----

// onnx.Unsqueeze / onnx.Squeeze with constant (or no) axes become
// tensor.expand_shape / tensor.collapse_shape.
// CHECK-LABEL: func @onnx_unsqueeze_squeeze
// CHECK-SAME: (%[[X:.*]]: tensor<?xi64>, %[[S:.*]]: tensor<1xi64>, %[[T:.*]]: tensor<?x1xf32>)
// CHECK: tensor.expand_shape %[[X]] {{\[\[}}0, 1]] output_shape [1, %{{.*}}] : tensor<?xi64> into tensor<1x?xi64>
// CHECK: tensor.collapse_shape %[[S]] [] : tensor<1xi64> into tensor<i64>
// CHECK: tensor.collapse_shape %[[T]] {{\[\[}}0, 1]] : tensor<?x1xf32> into tensor<?xf32>
// CHECK-NOT: onnx.Unsqueeze
// CHECK-NOT: onnx.Squeeze
func.func @onnx_unsqueeze_squeeze(%x: tensor<?xi64>, %s: tensor<1xi64>, %t: tensor<?x1xf32>)
    -> (tensor<1x?xi64>, tensor<i64>, tensor<?xf32>) {
  %ax0 = onnx.Constant dense<[0]> : tensor<1xi64>
  %ax1 = onnx.Constant dense<[-1]> : tensor<1xi64>
  %0 = onnx.Unsqueeze %x, %ax0 : (tensor<?xi64>, tensor<1xi64>) -> tensor<1x?xi64>
  %1 = onnx.Squeeze %s : (tensor<1xi64>) -> tensor<i64>
  %2 = onnx.Squeeze %t axes %ax1 : (tensor<?x1xf32>, tensor<1xi64>) -> tensor<?xf32>
  return %0, %1, %2 : tensor<1x?xi64>, tensor<i64>, tensor<?xf32>
}

// -----

// A Squeeze without axes of a dynamic dim (which may be 1 at run time) is
// left untouched.
// CHECK-LABEL: func @onnx_squeeze_dynamic_untouched
// CHECK: onnx.Squeeze
func.func @onnx_squeeze_dynamic_untouched(%s: tensor<?xi64>) -> tensor<?xi64> {
  %0 = onnx.Squeeze %s : (tensor<?xi64>) -> tensor<?xi64>
  return %0 : tensor<?xi64>
}

// -----

// onnx.Range of i64 scalars: max(0, ceil((limit - start) / delta)) elements
// of start + i * delta, via tensor.generate.
// CHECK-LABEL: func @onnx_range
// CHECK-SAME: (%[[A:.*]]: tensor<i64>, %[[B:.*]]: tensor<i64>, %[[D:.*]]: tensor<i64>)
// CHECK-DAG: %[[S:.*]] = tensor.extract %[[A]][]
// CHECK-DAG: %[[L:.*]] = tensor.extract %[[B]][]
// CHECK-DAG: %[[DL:.*]] = tensor.extract %[[D]][]
// CHECK: %[[DIFF:.*]] = arith.subi %[[L]], %[[S]] : i64
// CHECK: %[[CNT:.*]] = arith.ceildivsi %[[DIFF]], %[[DL]] : i64
// CHECK: %[[MX:.*]] = arith.maxsi %[[CNT]], %{{.*}} : i64
// CHECK: %[[N:.*]] = arith.index_cast %[[MX]] : i64 to index
// CHECK: tensor.generate %[[N]] {
// CHECK: ^bb0(%[[IV:.*]]: index):
// CHECK:   %[[I:.*]] = arith.index_cast %[[IV]] : index to i64
// CHECK:   %[[M:.*]] = arith.muli %[[I]], %[[DL]] : i64
// CHECK:   %[[R:.*]] = arith.addi %[[S]], %[[M]] : i64
// CHECK:   tensor.yield %[[R]] : i64
// CHECK: } : tensor<?xi64>
// CHECK-NOT: onnx.Range
func.func @onnx_range(%a: tensor<i64>, %b: tensor<i64>, %d: tensor<i64>) -> tensor<?xi64> {
  %0 = onnx.Range %a, %b, %d : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  return %0 : tensor<?xi64>
}

// -----

// onnx.Expand of a static input to a shape tensor: broadcasting
// linalg.generic whose init has the broadcast (static-1 input) dims read from
// the shape tensor.
// CHECK-DAG: #[[IN:.*]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-DAG: #[[ID:.*]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func @onnx_expand
// CHECK-SAME: (%[[X:.*]]: tensor<1x4xi64>, %[[S:.*]]: tensor<2xi64>)
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[E0:.*]] = tensor.extract %[[S]][%[[C0]]] : tensor<2xi64>
// CHECK: %[[D0:.*]] = arith.index_cast %[[E0]] : i64 to index
// CHECK: %[[INIT:.*]] = tensor.empty(%[[D0]]) : tensor<?x4xi64>
// CHECK: linalg.generic {indexing_maps = [#[[IN]], #[[ID]]], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME: ins(%[[X]] : tensor<1x4xi64>) outs(%[[INIT]] : tensor<?x4xi64>)
// CHECK: linalg.yield
// CHECK-NOT: onnx.Expand
func.func @onnx_expand(%x: tensor<1x4xi64>, %s: tensor<2xi64>) -> tensor<?x4xi64> {
  %0 = onnx.Expand %x, %s : (tensor<1x4xi64>, tensor<2xi64>) -> tensor<?x4xi64>
  return %0 : tensor<?x4xi64>
}

// -----

// A dynamic input dim may be 1 at run time and broadcast: the generic
// lowering reads it at select(dim == 1, 0, i) and sizes the output with
// select(dim == 1, shape[i], dim).
// CHECK-LABEL: func @onnx_expand_dynamic
// CHECK-NOT: onnx.Expand
// CHECK: arith.cmpi eq
// CHECK: linalg.generic
// CHECK: arith.select
// CHECK: tensor.extract
func.func @onnx_expand_dynamic(%x: tensor<1x?xi64>, %s: tensor<2xi64>) -> tensor<?x?xi64> {
  %0 = onnx.Expand %x, %s : (tensor<1x?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  return %0 : tensor<?x?xi64>
}
