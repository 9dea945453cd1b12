// RUN: qwen-opt %s --split-input-file --qwen-logits-rows | FileCheck %s

// The LM head reads the last r = clamp(logits_rows[0], 1, S) rows of its
// input, copied into a dense [1, r, 64] tensor; @main takes logits_rows as
// its last argument. The other result (q) still covers every position.
// CHECK-LABEL: func.func @main
// CHECK-SAME: %[[IDS:[^:]*]]: tensor<1x?xi64>, %[[ROWS:[^:]*]]: tensor<1xi64> {onnx.name = "logits_rows"}
// CHECK: %[[H:.*]] = qwen.embedding %[[IDS]]
// CHECK: qwen.linear %[[H]]
// CHECK: %[[R0:.*]] = tensor.extract %[[ROWS]][%{{.*}}] : tensor<1xi64>
// CHECK: %[[R1:.*]] = arith.index_cast %[[R0]] : i64 to index
// CHECK: %[[S:.*]] = tensor.dim %[[H]], %{{.*}} : tensor<1x?x64xf32>
// CHECK: %[[R2:.*]] = arith.maxsi %[[R1]], %{{.*}} : index
// CHECK: %[[R:.*]] = arith.minsi %[[R2]], %[[S]] : index
// CHECK: %[[OFF:.*]] = arith.subi %[[S]], %[[R]] : index
// CHECK: %[[SL:.*]] = tensor.extract_slice %[[H]][0, %[[OFF]], 0] [1, %[[R]], 64] [1, 1, 1] : tensor<1x?x64xf32> to tensor<1x?x64xf32>
// CHECK: %[[E:.*]] = tensor.empty(%[[R]]) : tensor<1x?x64xf32>
// CHECK: %[[C:.*]] = linalg.copy ins(%[[SL]] : tensor<1x?x64xf32>) outs(%[[E]] : tensor<1x?x64xf32>)
// CHECK: %[[L:.*]] = qwen.logits %[[C]], %{{.*}} {tied}
// CHECK: return %{{.*}}, %[[L]]
qwen.store @w "model.qws"
func.func @main(%ids: tensor<1x?xi64>) -> (tensor<1x?x32xf32> {onnx.name = "q"}, tensor<1x?x48xf32> {onnx.name = "logits"}) {
  %emb = qwen.weight @w::@embed.weight : tensor<48x64xf32>
  %wq = qwen.weight @w::@layers.0.q_proj.weight : tensor<32x64xf32>
  %h = qwen.embedding %ids, %emb : (tensor<1x?xi64>, tensor<48x64xf32>) -> tensor<1x?x64xf32>
  %q = qwen.linear %h, %wq : (tensor<1x?x64xf32>, tensor<32x64xf32>) -> tensor<1x?x32xf32>
  %l = qwen.logits %h, %emb {tied} : (tensor<1x?x64xf32>, tensor<48x64xf32>) -> tensor<1x?x48xf32>
  return %q, %l : tensor<1x?x32xf32>, tensor<1x?x48xf32>
}

// -----

// A quantized head and a dynamic batch: the slice keeps dim 0.
// CHECK-LABEL: func.func @main
// CHECK-SAME: %{{[^:]*}}: tensor<1xi64> {onnx.name = "logits_rows"}
// CHECK: %[[B:.*]] = tensor.dim %[[X:.*]], %c0
// CHECK: tensor.extract_slice %[[X]][0, %{{.*}}, 0] [%[[B]], %{{.*}}, 64] [1, 1, 1] : tensor<?x?x64xf32> to tensor<?x?x64xf32>
// CHECK: tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x?x64xf32>
// CHECK: qquant.logits %{{.*}}, %{{.*}} : (tensor<?x?x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>) -> tensor<?x?x24xf32>
qwen.store @q "q.qws"
func.func @main(%a: tensor<?x?x64xf32>) -> (tensor<?x?x24xf32> {onnx.name = "logits"}) {
  %x = arith.addf %a, %a : tensor<?x?x64xf32>
  %w = qquant.weight @q::@lm_head : !qquant.weight<24x64xf32, i8, symmetric, channel>
  %y = qquant.logits %x, %w : (tensor<?x?x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>) -> tensor<?x?x24xf32>
  return %y : tensor<?x?x24xf32>
}

// -----

// Nothing to do: a static sequence, or no result named "logits". No
// argument is added.
// CHECK-LABEL: func.func @main(%{{[^:]*}}: tensor<1x4x64xf32>) -> (tensor<1x4x24xf32> {onnx.name = "logits"})
// CHECK-NOT: extract_slice
qwen.store @q "q.qws"
func.func @main(%a: tensor<1x4x64xf32>) -> (tensor<1x4x24xf32> {onnx.name = "logits"}) {
  %w = qquant.weight @q::@lm_head : !qquant.weight<24x64xf32, i8, symmetric, channel>
  %y = qquant.logits %a, %w : (tensor<1x4x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>) -> tensor<1x4x24xf32>
  return %y : tensor<1x4x24xf32>
}

// -----

// CHECK-LABEL: func.func @main(%{{[^:]*}}: tensor<1x?x64xf32>) -> (tensor<1x?x24xf32> {onnx.name = "scores"})
// CHECK-NOT: extract_slice
qwen.store @q "q.qws"
func.func @main(%a: tensor<1x?x64xf32>) -> (tensor<1x?x24xf32> {onnx.name = "scores"}) {
  %w = qquant.weight @q::@lm_head : !qquant.weight<24x64xf32, i8, symmetric, channel>
  %y = qquant.logits %a, %w : (tensor<1x?x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>) -> tensor<1x?x24xf32>
  return %y : tensor<1x?x24xf32>
}
