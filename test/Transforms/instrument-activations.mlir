// RUN: qwen-opt %s --split-input-file --qwen-instrument-activations | FileCheck %s
// RUN: qwen-opt %s --split-input-file --qwen-instrument-activations | not qwen-opt --qwen-instrument-activations --split-input-file 2>&1 | FileCheck %s --check-prefix=TWICE

// The input of every linear / logits op with a named weight becomes a result
// of @main, after the original ones, in program order; a value read by two
// ops (q and k) is returned once, naming both layers. The constant-weight
// linear (no layer name) and the embedding are not observed.
// CHECK-LABEL: func.func @main
// CHECK-SAME: -> (tensor<1x?x32xf32> {onnx.name = "q"}, tensor<1x?x48xf32> {onnx.name = "logits"},
// CHECK-SAME: tensor<1x?x64xf32> {onnx.name = "observe.layers.0.q_proj.weight", qwen.observe = ["layers.0.q_proj.weight", "layers.0.k_proj.weight"]},
// CHECK-SAME: tensor<1x?x128xf32> {onnx.name = "observe.layers.0.down_proj.weight", qwen.observe = ["layers.0.down_proj.weight"]},
// CHECK-SAME: tensor<1x?x64xf32> {onnx.name = "observe.embed.weight", qwen.observe = ["embed.weight"]})
// CHECK: %[[H:.*]] = qwen.embedding
// CHECK: %[[CAT:.*]] = tensor.concat
// CHECK: %[[D:.*]] = qwen.linear %[[CAT]]
// CHECK: %[[S:.*]] = qwen.linear %[[D]], %{{.*}} : (tensor<1x?x64xf32>, tensor<8x64xf32>)
// CHECK: %[[L:.*]] = qwen.logits %[[D]]
// CHECK: return %{{.*}}, %[[L]], %[[H]], %[[CAT]], %[[D]] :
// TWICE: error: 'func.func' op is already instrumented (result #2 has qwen.observe)
qwen.store @w "model.qws"
func.func @main(%ids: tensor<1x?xi64>, %bq: tensor<32xf32>) -> (tensor<1x?x32xf32> {onnx.name = "q"}, tensor<1x?x48xf32> {onnx.name = "logits"}) {
  %emb = qwen.weight @w::@embed.weight : tensor<48x64xf32>
  %wq = qwen.weight @w::@layers.0.q_proj.weight : tensor<32x64xf32>
  %wk = qwen.weight @w::@layers.0.k_proj.weight : tensor<16x64xf32>
  %wd = qwen.weight @w::@layers.0.down_proj.weight : tensor<64x128xf32>
  %ws = arith.constant dense<1.0> : tensor<8x64xf32>
  %h = qwen.embedding %ids, %emb : (tensor<1x?xi64>, tensor<48x64xf32>) -> tensor<1x?x64xf32>
  %q = qwen.linear %h, %wq, %bq : (tensor<1x?x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<1x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<1x?x64xf32>, tensor<16x64xf32>) -> tensor<1x?x16xf32>
  %h2 = qwen.silu_mul %h, %h : tensor<1x?x64xf32>
  %cat = tensor.concat dim(2) %h2, %h : (tensor<1x?x64xf32>, tensor<1x?x64xf32>) -> tensor<1x?x128xf32>
  %d = qwen.linear %cat, %wd : (tensor<1x?x128xf32>, tensor<64x128xf32>) -> tensor<1x?x64xf32>
  %s = qwen.linear %d, %ws : (tensor<1x?x64xf32>, tensor<8x64xf32>) -> tensor<1x?x8xf32>
  %l = qwen.logits %d, %emb {tied} : (tensor<1x?x64xf32>, tensor<48x64xf32>) -> tensor<1x?x48xf32>
  return %q, %l : tensor<1x?x32xf32>, tensor<1x?x48xf32>
}

// -----

// A quantized linear is observed too (its qquant.weight names the layer).
// CHECK-LABEL: func.func @main
// CHECK-SAME: tensor<2x64xf32> {onnx.name = "observe.lin", qwen.observe = ["lin"]}
// CHECK: %[[X:.*]] = arith.addf
// CHECK: return %{{.*}}, %[[X]]
qwen.store @q "q.qws"
func.func @main(%a: tensor<2x64xf32>) -> tensor<2x24xf32> {
  %x = arith.addf %a, %a : tensor<2x64xf32>
  %w = qquant.weight @q::@lin : !qquant.weight<24x64xf32, i8, symmetric, channel>
  %y = qquant.linear %x, %w : (tensor<2x64xf32>, !qquant.weight<24x64xf32, i8, symmetric, channel>) -> tensor<2x24xf32>
  return %y : tensor<2x24xf32>
}
