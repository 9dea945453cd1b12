// RUN: qwen-opt %s --qwen-lower-model-to-linalg -split-input-file | FileCheck %s

// Binary op with a static broadcast: the [4] operand is read through a map,
// no tensor.extract.
// CHECK-DAG: #[[B:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func @add_static_bcast
// CHECK-NOT: onnx.Add
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #[[B]], #{{.*}}]
// CHECK-NOT: tensor.extract
// CHECK: arith.addf
func.func @add_static_bcast(%a: tensor<2x3x4xf32>, %b: tensor<4xf32>) -> tensor<2x3x4xf32> {
  %0 = onnx.Add %a, %b : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  return %0 : tensor<2x3x4xf32>
}

// -----

// Dynamic dims that may broadcast at run time: output dim select(d == 1, ..)
// and the operands read with tensor.extract at select(d == 1, 0, i).
// CHECK-LABEL: func @sub_dynamic
// CHECK: arith.cmpi eq
// CHECK: arith.select
// CHECK: linalg.generic
// CHECK: linalg.index
// CHECK: arith.select
// CHECK: tensor.extract
// CHECK: arith.subi
func.func @sub_dynamic(%a: tensor<?x?xi64>, %b: tensor<?x?xi64>) -> tensor<?x?xi64> {
  %0 = onnx.Sub %a, %b : (tensor<?x?xi64>, tensor<?x?xi64>) -> tensor<?x?xi64>
  return %0 : tensor<?x?xi64>
}

// -----

// Comparisons, Where and Cast.
// CHECK-LABEL: func @cmp_where_cast
// CHECK: arith.cmpi eq
// CHECK: arith.select
// CHECK: arith.sitofp %{{.*}} : i64 to f32
// CHECK: arith.fptosi %{{.*}} : f32 to i32
// CHECK: arith.cmpf une
// CHECK-NOT: onnx.
func.func @cmp_where_cast(%a: tensor<4xi64>, %b: tensor<4xi64>, %x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xi32>, tensor<4xi1>) {
  %c = onnx.Equal %a, %b : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi1>
  %w = onnx.Where %c, %a, %b : (tensor<4xi1>, tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>
  %f = onnx.Cast %w {to = f32} : (tensor<4xi64>) -> tensor<4xf32>
  %i = onnx.Cast %x {to = i32} : (tensor<4xf32>) -> tensor<4xi32>
  %t = onnx.Cast %x {to = i1} : (tensor<4xf32>) -> tensor<4xi1>
  return %f, %i, %t : tensor<4xf32>, tensor<4xi32>, tensor<4xi1>
}

// -----

// Reductions: the reduced dims are reduction iterators; keepdims reshapes.
// CHECK-LABEL: func @reduce_sum_keep
// CHECK: linalg.fill
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: arith.addf
// CHECK-NOT: onnx.ReduceSum
func.func @reduce_sum_keep(%x: tensor<?x8xf32>) -> tensor<?x1xf32> {
  %ax = onnx.Constant dense<[-1]> : tensor<1xi64>
  %0 = onnx.ReduceSum %x axes %ax : (tensor<?x8xf32>, tensor<1xi64>) -> tensor<?x1xf32>
  return %0 : tensor<?x1xf32>
}

// -----

// Non-constant axes cannot be lowered: left.
// CHECK-LABEL: func @reduce_runtime_axes
// CHECK: onnx.ReduceMax
func.func @reduce_runtime_axes(%x: tensor<2x8xf32>, %ax: tensor<1xi64>) -> tensor<*xf32> {
  %0 = onnx.ReduceMax %x axes %ax : (tensor<2x8xf32>, tensor<1xi64>) -> tensor<*xf32>
  return %0 : tensor<*xf32>
}

// -----

// Softmax: max, exp, sum, divide.
// CHECK-LABEL: func @softmax
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: arith.divf
func.func @softmax(%x: tensor<2x?xf32>) -> tensor<2x?xf32> {
  %0 = onnx.Softmax %x {axis = -1 : si64} : (tensor<2x?xf32>) -> tensor<2x?xf32>
  return %0 : tensor<2x?xf32>
}

// -----

// Batched MatMul with a 2-D right operand: loops (b, m, n, k).
// CHECK-DAG: #[[A:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[W:.*]] = affine_map<(d0, d1, d2, d3) -> (d3, d2)>
// CHECK-DAG: #[[O:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func @matmul
// CHECK: linalg.generic {indexing_maps = [#[[A]], #[[W]], #[[O]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
func.func @matmul(%a: tensor<?x?x4xf32>, %w: tensor<4x5xf32>) -> tensor<?x?x5xf32> {
  %0 = onnx.MatMul %a, %w : (tensor<?x?x4xf32>, tensor<4x5xf32>) -> tensor<?x?x5xf32>
  return %0 : tensor<?x?x5xf32>
}

// -----

// Reshape with a run-time shape tensor: 0 copies the input dim, -1 is
// inferred; the copy unravels the linear index over the input dims.
// CHECK-LABEL: func @reshape_runtime
// CHECK: tensor.extract %{{.*}} : tensor<2xi64>
// CHECK: arith.divui
// CHECK: linalg.generic
// CHECK: arith.remui
// CHECK-NOT: onnx.Reshape
func.func @reshape_runtime(%x: tensor<?x?xf32>, %s: tensor<2xi64>) -> tensor<?x?xf32> {
  %0 = onnx.Reshape %x, %s : (tensor<?x?xf32>, tensor<2xi64>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// Concat by insert_slice; Transpose by a permuted map; Slice and Gather by
// generics that tensor.extract.
// CHECK-DAG: #[[T:.*]] = affine_map<(d0, d1) -> (d1, d0)>
// CHECK-LABEL: func @data_movement
// CHECK: tensor.insert_slice
// CHECK: tensor.insert_slice
// CHECK: linalg.generic {indexing_maps = [#[[T]]
// CHECK: arith.ceildivsi
// CHECK: tensor.extract
// CHECK-NOT: onnx.
func.func @data_movement(%a: tensor<2x?xf32>, %b: tensor<2x3xf32>, %st: tensor<1xi64>, %en: tensor<1xi64>, %i: tensor<3xi64>)
    -> (tensor<?x2xf32>, tensor<2x?xf32>, tensor<3x?xf32>) {
  %c = onnx.Concat %a, %b {axis = 1 : si64} : (tensor<2x?xf32>, tensor<2x3xf32>) -> tensor<2x?xf32>
  %t = onnx.Transpose %c {perm = array<i64: 1, 0>} : (tensor<2x?xf32>) -> tensor<?x2xf32>
  %ax = onnx.Constant dense<[1]> : tensor<1xi64>
  %s = onnx.Slice %c, %st, %en axes %ax : (tensor<2x?xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<2x?xf32>
  %g = onnx.Gather %c, %i {axis = 0 : si64} : (tensor<2x?xf32>, tensor<3xi64>) -> tensor<3x?xf32>
  return %t, %s, %g : tensor<?x2xf32>, tensor<2x?xf32>, tensor<3x?xf32>
}

// -----

// Unranked results (shape inference could not tell the rank) are left.
// CHECK-LABEL: func @unranked_left
// CHECK: onnx.Tile
func.func @unranked_left(%x: tensor<2x3xf32>, %r: tensor<2xi64>) -> tensor<*xf32> {
  %0 = onnx.Tile %x, %r : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<*xf32>
  return %0 : tensor<*xf32>
}

// -----

// com.microsoft MatMulNBits: B dequantized in a generic (4-bit fields
// unpacked from bytes, zero point 8 without zero_points), then the product.
// CHECK-LABEL: func @matmul_nbits
// CHECK: linalg.generic
// CHECK: arith.shrui
// CHECK: arith.andi
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: linalg.generic {{.*}}"reduction"
// CHECK-NOT: onnx.ms.MatMulNBits
func.func @matmul_nbits(%a: tensor<?x64xf32>) -> tensor<?x6xf32> {
  %b = onnx.Constant dense<17> : tensor<6x2x16xui8>
  %s = onnx.Constant dense<0.5> : tensor<12xf32>
  %0 = onnx.ms.MatMulNBits %a, %b, %s {K = 64 : si64, N = 6 : si64, bits = 4 : si64, block_size = 32 : si64}
      : (tensor<?x64xf32>, tensor<6x2x16xui8>, tensor<12xf32>) -> tensor<?x6xf32>
  return %0 : tensor<?x6xf32>
}
