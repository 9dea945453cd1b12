// RUN: qwen-opt %s -split-input-file | qwen-opt -split-input-file | FileCheck %s
// RUN: qwen-opt %s -split-input-file -mlir-print-op-generic | qwen-opt -split-input-file | FileCheck %s

// Round trip (custom and generic form) of every onnx op.

// CHECK-LABEL: func @elementwise
func.func @elementwise(%a: tensor<2x3xf32>, %b: tensor<3xf32>, %i: tensor<2x3xi64>, %c: tensor<2x3xi1>) {
  // CHECK: onnx.Add %{{.*}}, %{{.*}} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %0 = onnx.Add %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Sub
  %1 = onnx.Sub %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Mul
  %2 = onnx.Mul %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Div
  %3 = onnx.Div %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Pow
  %4 = onnx.Pow %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Mod %{{.*}} {fmod = 1 : si64}
  %5 = onnx.Mod %a, %b {fmod = 1 : si64} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Equal {{.*}} -> tensor<2x3xi1>
  %6 = onnx.Equal %i, %i : (tensor<2x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi1>
  // CHECK: onnx.Less
  %7 = onnx.Less %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
  // CHECK: onnx.LessOrEqual
  %8 = onnx.LessOrEqual %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
  // CHECK: onnx.Greater
  %9 = onnx.Greater %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
  // CHECK: onnx.GreaterOrEqual
  %10 = onnx.GreaterOrEqual %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
  // CHECK: onnx.And
  %11 = onnx.And %c, %c : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
  // CHECK: onnx.Or
  %12 = onnx.Or %c, %c : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
  // CHECK: onnx.Xor
  %13 = onnx.Xor %c, %c : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
  // CHECK: onnx.Not
  %14 = onnx.Not %c : (tensor<2x3xi1>) -> tensor<2x3xi1>
  // CHECK: onnx.Where %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x3xi1>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %15 = onnx.Where %c, %a, %b : (tensor<2x3xi1>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Max %{{.*}}, %{{.*}}, %{{.*}} :
  %16 = onnx.Max %a, %b, %a : (tensor<2x3xf32>, tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Min
  %17 = onnx.Min %a, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Sum
  %18 = onnx.Sum %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

// CHECK-LABEL: func @unary
func.func @unary(%a: tensor<2x3xf32>) {
  // CHECK: onnx.Neg
  %0 = onnx.Neg %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Abs
  %1 = onnx.Abs %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Sqrt
  %2 = onnx.Sqrt %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Reciprocal
  %3 = onnx.Reciprocal %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Exp
  %4 = onnx.Exp %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Log
  %5 = onnx.Log %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Cos
  %6 = onnx.Cos %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Sin
  %7 = onnx.Sin %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Tanh
  %8 = onnx.Tanh %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Sigmoid
  %9 = onnx.Sigmoid %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Relu
  %10 = onnx.Relu %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Erf
  %11 = onnx.Erf %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Floor
  %12 = onnx.Floor %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Ceil
  %13 = onnx.Ceil %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Softplus
  %14 = onnx.Softplus %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.Identity
  %15 = onnx.Identity %a : (tensor<2x3xf32>) -> tensor<2x3xf32>
  // CHECK: onnx.IsNaN {{.*}} -> tensor<2x3xi1>
  %16 = onnx.IsNaN %a : (tensor<2x3xf32>) -> tensor<2x3xi1>
  // CHECK: onnx.IsInf %{{.*}} {detect_negative = 0 : si64}
  %17 = onnx.IsInf %a {detect_negative = 0 : si64} : (tensor<2x3xf32>) -> tensor<2x3xi1>
  // CHECK: onnx.Cast %{{.*}} {to = f16}
  %18 = onnx.Cast %a {to = f16} : (tensor<2x3xf32>) -> tensor<2x3xf16>
  // CHECK: onnx.CastLike
  %19 = onnx.CastLike %a, %18 : (tensor<2x3xf32>, tensor<2x3xf16>) -> tensor<2x3xf16>
  // CHECK: onnx.Softmax %{{.*}} {axis = 1 : si64}
  %20 = onnx.Softmax %a {axis = 1 : si64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

// CHECK-LABEL: func @shapes
func.func @shapes(%a: tensor<2x3x4xf32>, %s: tensor<2xi64>, %i: tensor<1xi64>) {
  // CHECK: onnx.Constant dense<[6, 4]> : tensor<2xi64>
  %c = onnx.Constant dense<[6, 4]> : tensor<2xi64>
  // CHECK: onnx.ConstantOfShape %{{.*}} {value = dense<0.000000e+00> : tensor<1xf32>}
  %0 = onnx.ConstantOfShape %s {value = dense<0.0> : tensor<1xf32>} : (tensor<2xi64>) -> tensor<?x?xf32>
  // CHECK: onnx.Shape %{{.*}} {start = 1 : si64}
  %1 = onnx.Shape %a {start = 1 : si64} : (tensor<2x3x4xf32>) -> tensor<2xi64>
  // CHECK: onnx.Size
  %2 = onnx.Size %a : (tensor<2x3x4xf32>) -> tensor<i64>
  // CHECK: onnx.Range
  %r0 = onnx.Constant dense<0> : tensor<i64>
  %3 = onnx.Range %r0, %2, %r0 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // CHECK: onnx.Reshape
  %4 = onnx.Reshape %a, %c : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<6x4xf32>
  // CHECK: onnx.Transpose %{{.*}} {perm = array<i64: 2, 0, 1>}
  %5 = onnx.Transpose %a {perm = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  // CHECK: onnx.Concat %{{.*}}, %{{.*}} {axis = -1 : si64}
  %6 = onnx.Concat %a, %a {axis = -1 : si64} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  // CHECK: onnx.Split %{{.*}} split %{{.*}} {axis = 2 : si64}
  %7:2 = onnx.Split %a split %s {axis = 2 : si64} : (tensor<2x3x4xf32>, tensor<2xi64>) -> (tensor<2x3x2xf32>, tensor<2x3x2xf32>)
  // CHECK: onnx.Split %{{.*}} {axis = 2 : si64, num_outputs = 2 : si64}
  %8:2 = onnx.Split %a {axis = 2 : si64, num_outputs = 2 : si64} : (tensor<2x3x4xf32>) -> (tensor<2x3x2xf32>, tensor<2x3x2xf32>)
  // CHECK: onnx.Slice %{{.*}}, %{{.*}}, %{{.*}} axes %{{.*}} steps %{{.*}} :
  %9 = onnx.Slice %a, %i, %i axes %i steps %i : (tensor<2x3x4xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x3x4xf32>
  // CHECK: onnx.Slice %{{.*}}, %{{.*}}, %{{.*}} :
  %10 = onnx.Slice %a, %i, %i : (tensor<2x3x4xf32>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x3x4xf32>
  // CHECK: onnx.Unsqueeze
  %11 = onnx.Unsqueeze %a, %i : (tensor<2x3x4xf32>, tensor<1xi64>) -> tensor<1x2x3x4xf32>
  // CHECK: onnx.Squeeze %{{.*}} axes
  %12 = onnx.Squeeze %11 axes %i : (tensor<1x2x3x4xf32>, tensor<1xi64>) -> tensor<2x3x4xf32>
  // CHECK: onnx.Squeeze %{{.*}} :
  %13 = onnx.Squeeze %11 : (tensor<1x2x3x4xf32>) -> tensor<2x3x4xf32>
  // CHECK: onnx.Expand
  %14 = onnx.Expand %a, %s : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<2x3x4xf32>
  // CHECK: onnx.Flatten %{{.*}} {axis = 2 : si64}
  %15 = onnx.Flatten %a {axis = 2 : si64} : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  // CHECK: onnx.Tile
  %16 = onnx.Tile %a, %s : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<?x?x?xf32>
  // CHECK: onnx.Trilu %{{.*}} k %{{.*}} {upper = 0 : si64}
  %k = onnx.Constant dense<1> : tensor<i64>
  %17 = onnx.Trilu %a k %k {upper = 0 : si64} : (tensor<2x3x4xf32>, tensor<i64>) -> tensor<2x3x4xf32>
  // CHECK: onnx.CumSum
  %18 = onnx.CumSum %a, %k : (tensor<2x3x4xf32>, tensor<i64>) -> tensor<2x3x4xf32>
  return
}

// -----

// CHECK-LABEL: func @indexing
func.func @indexing(%d: tensor<8x4xf32>, %i: tensor<2x3xi64>, %u: tensor<2x3x4xf32>, %n: tensor<2x1xi64>) {
  // CHECK: onnx.Gather %{{.*}}, %{{.*}} :
  %0 = onnx.Gather %d, %i : (tensor<8x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>
  // CHECK: onnx.GatherElements %{{.*}} {axis = 1 : si64}
  %1 = onnx.GatherElements %d, %i {axis = 1 : si64} : (tensor<8x4xf32>, tensor<2x3xi64>) -> tensor<2x3xf32>
  // CHECK: onnx.GatherND
  %2 = onnx.GatherND %d, %n : (tensor<8x4xf32>, tensor<2x1xi64>) -> tensor<2x4xf32>
  // CHECK: onnx.ScatterND
  %upd = onnx.Constant dense<1.0> : tensor<2x4xf32>
  %3 = onnx.ScatterND %d, %n, %upd : (tensor<8x4xf32>, tensor<2x1xi64>, tensor<2x4xf32>) -> tensor<8x4xf32>
  // CHECK: onnx.ScatterElements {{.*}} {reduction = "add"}
  %4 = onnx.ScatterElements %d, %i, %1 {axis = 0 : si64, reduction = "add"} : (tensor<8x4xf32>, tensor<2x3xi64>, tensor<2x3xf32>) -> tensor<8x4xf32>
  return
}

// -----

// CHECK-LABEL: func @linalg
func.func @linalg(%x: tensor<1x8x64xf32>, %w: tensor<64x96xf32>, %b: tensor<96xf32>, %s: tensor<64xf32>, %x2: tensor<8x64xf32>) {
  // CHECK: onnx.MatMul {{.*}} -> tensor<1x8x96xf32>
  %0 = onnx.MatMul %x, %w : (tensor<1x8x64xf32>, tensor<64x96xf32>) -> tensor<1x8x96xf32>
  // CHECK: onnx.Gemm %{{.*}}, %{{.*}} bias %{{.*}} {alpha = 5.000000e-01 : f32}
  %1 = onnx.Gemm %x2, %w bias %b {alpha = 0.5 : f32} : (tensor<8x64xf32>, tensor<64x96xf32>, tensor<96xf32>) -> tensor<8x96xf32>
  // CHECK: onnx.Einsum {{.*}} {equation = "bij,jk->bik"}
  %2 = onnx.Einsum %x, %w {equation = "bij,jk->bik"} : (tensor<1x8x64xf32>, tensor<64x96xf32>) -> tensor<1x8x96xf32>
  %axes = onnx.Constant dense<[-1]> : tensor<1xi64>
  // CHECK: onnx.ReduceMean %{{.*}} axes %{{.*}} :
  %3 = onnx.ReduceMean %x axes %axes : (tensor<1x8x64xf32>, tensor<1xi64>) -> tensor<1x8x1xf32>
  // CHECK: onnx.ReduceSum %{{.*}} axes %{{.*}} {keepdims = 0 : si64}
  %4 = onnx.ReduceSum %x axes %axes {keepdims = 0 : si64} : (tensor<1x8x64xf32>, tensor<1xi64>) -> tensor<1x8xf32>
  // CHECK: onnx.ReduceMax
  %5 = onnx.ReduceMax %x : (tensor<1x8x64xf32>) -> tensor<1x1x1xf32>
  // CHECK: onnx.ReduceMin
  %6 = onnx.ReduceMin %x axes %axes : (tensor<1x8x64xf32>, tensor<1xi64>) -> tensor<1x8x1xf32>
  // CHECK: onnx.LayerNormalization %{{.*}}, %{{.*}} bias %{{.*}} {epsilon = 9.99999997E-7 : f32}
  %7 = onnx.LayerNormalization %x, %s bias %s {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  // CHECK: onnx.RMSNormalization
  %8 = onnx.RMSNormalization %x, %s {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  // CHECK: onnx.SimplifiedLayerNormalization
  %9 = onnx.SimplifiedLayerNormalization %x, %s {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

// CHECK-LABEL: func @attention
func.func @attention(%q: tensor<1x4x8x16xf32>, %k: tensor<1x2x8x16xf32>, %pk: tensor<1x2x3x16xf32>,
                     %cos: tensor<64x8xf32>, %pos: tensor<1x8xi64>) {
  // CHECK: onnx.RotaryEmbedding %{{.*}}, %{{.*}}, %{{.*}} position_ids %{{.*}} {num_heads = 4 : si64}
  %0 = onnx.RotaryEmbedding %q, %cos, %cos position_ids %pos {num_heads = 4 : si64} : (tensor<1x4x8x16xf32>, tensor<64x8xf32>, tensor<64x8xf32>, tensor<1x8xi64>) -> tensor<1x4x8x16xf32>
  // CHECK: onnx.Attention %{{.*}}, %{{.*}}, %{{.*}} past %{{.*}}, %{{.*}} {is_causal = 1 : si64}
  %1:3 = onnx.Attention %q, %k, %k past %pk, %pk {is_causal = 1 : si64}
      : (tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>)
      -> (tensor<1x4x8x16xf32>, tensor<1x2x11x16xf32>, tensor<1x2x11x16xf32>)
  return
}

// -----

// CHECK-LABEL: func @quant
func.func @quant(%x: tensor<4x64xf32>, %s: tensor<f32>, %zp: tensor<ui8>, %w: tensor<64x8xi8>, %bs: tensor<4x2xf32>) {
  // CHECK: onnx.QuantizeLinear %{{.*}}, %{{.*}} zero_point %{{.*}} :
  %0 = onnx.QuantizeLinear %x, %s zero_point %zp : (tensor<4x64xf32>, tensor<f32>, tensor<ui8>) -> tensor<4x64xui8>
  // CHECK: onnx.DequantizeLinear %{{.*}}, %{{.*}} zero_point
  %1 = onnx.DequantizeLinear %0, %s zero_point %zp : (tensor<4x64xui8>, tensor<f32>, tensor<ui8>) -> tensor<4x64xf32>
  // CHECK: onnx.DequantizeLinear %{{.*}}, %{{.*}} {block_size = 32 : si64}
  %i4 = onnx.Constant dense<1> : tensor<4x64xi4>
  %2 = onnx.DequantizeLinear %i4, %bs {axis = 1 : si64, block_size = 32 : si64} : (tensor<4x64xi4>, tensor<4x2xf32>) -> tensor<4x64xf32>
  // CHECK: onnx.DynamicQuantizeLinear
  %3:3 = onnx.DynamicQuantizeLinear %x : (tensor<4x64xf32>) -> (tensor<4x64xui8>, tensor<f32>, tensor<ui8>)
  // CHECK: onnx.MatMulInteger %{{.*}}, %{{.*}} a_zero_point %{{.*}} :
  %4 = onnx.MatMulInteger %3#0, %w a_zero_point %3#2 : (tensor<4x64xui8>, tensor<64x8xi8>, tensor<ui8>) -> tensor<4x8xi32>
  return
}

// -----

// CHECK-LABEL: func @contrib
func.func @contrib(%x: tensor<1x8x64xf32>, %g: tensor<64xf32>, %pos: tensor<1x8xi64>, %cos: tensor<32x8xf32>,
                   %q: tensor<1x8x128xf32>, %pk: tensor<1x2x32x16xf32>, %sl: tensor<1xi32>, %tl: tensor<i32>,
                   %b: tensor<96x2x16xui8>, %sc: tensor<192xf32>, %emb: tensor<256x32xui8>, %es: tensor<256x2xf32>, %ids: tensor<1x8xi64>) {
  // CHECK: onnx.ms.SkipSimplifiedLayerNormalization {{.*}} -> (tensor<1x8x64xf32>, tensor<1x8x1xf32>, tensor<1x8x1xf32>, tensor<1x8x64xf32>)
  %0:4 = onnx.ms.SkipSimplifiedLayerNormalization %x, %x, %g {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<1x8x64xf32>, tensor<64xf32>) -> (tensor<1x8x64xf32>, tensor<1x8x1xf32>, tensor<1x8x1xf32>, tensor<1x8x64xf32>)
  // CHECK: onnx.ms.RotaryEmbedding
  %1 = onnx.ms.RotaryEmbedding %x, %pos, %cos, %cos {num_heads = 4 : si64} : (tensor<1x8x64xf32>, tensor<1x8xi64>, tensor<32x8xf32>, tensor<32x8xf32>) -> tensor<1x8x64xf32>
  // CHECK: onnx.ms.GroupQueryAttention %{{.*}} past_key %{{.*}} past_value %{{.*}} seqlens_k %{{.*}} total_sequence_length %{{.*}} {kv_num_heads = 2 : si64, num_heads = 4 : si64}
  %2:3 = onnx.ms.GroupQueryAttention %q past_key %pk past_value %pk seqlens_k %sl total_sequence_length %tl {kv_num_heads = 2 : si64, num_heads = 4 : si64}
      : (tensor<1x8x128xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>, tensor<1xi32>, tensor<i32>)
      -> (tensor<1x8x64xf32>, tensor<1x2x32x16xf32>, tensor<1x2x32x16xf32>)
  // CHECK: onnx.ms.MatMulNBits {{.*}} {K = 64 : si64, N = 96 : si64, block_size = 32 : si64}
  %3 = onnx.ms.MatMulNBits %x, %b, %sc {K = 64 : si64, N = 96 : si64, block_size = 32 : si64} : (tensor<1x8x64xf32>, tensor<96x2x16xui8>, tensor<192xf32>) -> tensor<1x8x96xf32>
  // CHECK: onnx.ms.GatherBlockQuantized {{.*}} {block_size = 32 : si64}
  %4 = onnx.ms.GatherBlockQuantized %emb, %ids, %es {block_size = 32 : si64} : (tensor<256x32xui8>, tensor<1x8xi64>, tensor<256x2xf32>) -> tensor<1x8x64xf32>
  return
}
