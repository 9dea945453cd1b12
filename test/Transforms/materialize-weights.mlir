// RUN: %python %S/Inputs/make_store.py float %t.qws
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-materialize-weights="store=%t.derived.qws min-elements=4" --qwen-internalize-weights | FileCheck %s
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-materialize-weights="min-elements=4" 2>&1 | FileCheck %s --check-prefix=NOSTORE

// The transpose of a stored weight becomes a stored transposed weight (here
// read back with --qwen-internalize-weights to check the numbers).
qwen.store @w "STORE"
// CHECK-LABEL: func @transposed
func.func @transposed(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = qwen.weight @w::@w : tensor<2x4xf32>
  %wt = onnx.Transpose %w {perm = array<i64: 1, 0>} : (tensor<2x4xf32>) -> tensor<4x2xf32>
  // CHECK: %[[W:.*]] = arith.constant dense<{{.*}}0.000000e+00, 4.000000e+00], [1.000000e+00, 5.000000e+00], [2.000000e+00, 6.000000e+00], [3.000000e+00, 7.000000e+00]{{.*}}> : tensor<4x2xf32>
  // CHECK: onnx.MatMul %arg0, %[[W]]
  %y = onnx.MatMul %x, %wt : (tensor<3x4xf32>, tensor<4x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// NOSTORE: error: --qwen-materialize-weights needs store=<path> to write 'w.transposed'

// Writing the derived store over a store the module still reads is refused
// (it would destroy the weights being copied).
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-materialize-weights="store=%t.qws min-elements=4" 2>&1 | FileCheck %s --check-prefix=CLOBBER
// RUN: %python -c "from qwen_opt import weight_store as w; assert 'w' in w.read('%t.qws'); print('store intact')" | FileCheck %s --check-prefix=INTACT
// CLOBBER: error: weight store '{{.*}}.qws' is the file of @w, which the module still reads; write to another path
// INTACT: store intact
