// RUN: qwen-opt %s --qwen-externalize-weights="store=%t.qws min-elements=4" | FileCheck %s
// RUN: qwen-opt %s --qwen-externalize-weights="store=%t.qws min-elements=4" --qwen-internalize-weights | FileCheck %s --check-prefix=BACK
// RUN: %python -c "from qwen_opt import weight_store as w; print(sorted(w.read('%t.qws')))" | FileCheck %s --check-prefix=STORE

// CHECK: qwen.store @weights "{{.*}}.qws"

// CHECK-LABEL: func @f
func.func @f() -> (tensor<2x3xf32>, tensor<4xi64>, tensor<2xf32>, tensor<8xf32>, tensor<4xi1>, tensor<2x2xf16>) {
  // Named (as the importer names initializers) and anonymous constants move.
  // CHECK: qwen.weight @weights::@model.embed_tokens.weight : tensor<2x3xf32>
  %0 = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32> loc("model.embed_tokens.weight")
  // CHECK: qwen.weight @weights::@const.0 : tensor<4xi64>
  %1 = onnx.Constant dense<[1, 2, 3, 4]> : tensor<4xi64>
  // Small constants and splats stay.
  // CHECK: arith.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
  %2 = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
  // CHECK: arith.constant dense<5.000000e-01> : tensor<8xf32>
  %3 = arith.constant dense<0.5> : tensor<8xf32>
  // CHECK: qwen.weight @weights::@const.1 : tensor<4xi1>
  %4 = arith.constant dense<[true, false, false, true]> : tensor<4xi1>
  // Two constants with one name get distinct entries.
  // CHECK: qwen.weight @weights::@model.embed_tokens.weight.1 : tensor<2x2xf16>
  %5 = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf16> loc("model.embed_tokens.weight")
  return %0, %1, %2, %3, %4, %5 : tensor<2x3xf32>, tensor<4xi64>, tensor<2xf32>, tensor<8xf32>, tensor<4xi1>, tensor<2x2xf16>
}

// BACK-NOT: qwen.store
// BACK-NOT: qwen.weight
// BACK-LITERAL: dense<[[1.000000e+00, 2.000000e+00, 3.000000e+00], [4.000000e+00, 5.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>
// BACK: dense<[1, 2, 3, 4]> : tensor<4xi64>
// BACK: dense<[true, false, false, true]> : tensor<4xi1>
// BACK-LITERAL: dense<[[1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf16>

// STORE: ['const.0', 'const.1', 'model.embed_tokens.weight', 'model.embed_tokens.weight.1']
