// RUN: %python %S/Inputs/quantize_store.py %t.qws %t.layers
// Defaults: linear and logits, i4 symmetric groups of 128 (64 columns: the
// group falls back to 64); the embedding stays f32; tied and bias are kept.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-quantize-weights="store=%t.q.qws" --qwen-verify-weights | FileCheck %s
// CHECK-DAG: qwen.store @quantized "{{.*}}.q.qws"
// CHECK-LABEL: func.func @model
// CHECK-DAG: %[[Q:.*]] = qquant.weight @quantized::@layers.0.q_proj.weight : !qquant.weight<32x64xf32, i4, symmetric, group = 64>
// CHECK-DAG: %[[D:.*]] = qquant.weight @quantized::@layers.0.down_proj.weight : !qquant.weight<64x128xf32, i4, symmetric, group = 128>
// CHECK-DAG: %[[E:.*]] = qquant.weight @quantized::@embed.weight : !qquant.weight<48x64xf32, i4, symmetric, group = 64>
// CHECK-DAG: %[[T:.*]] = qwen.weight @w::@embed.weight : tensor<48x64xf32>
// CHECK: qwen.embedding %{{.*}}, %[[T]]
// CHECK: qquant.linear %{{.*}}, %[[Q]], %{{.*}} : (tensor<1x?x64xf32>, !qquant.weight<32x64xf32, i4, symmetric, group = 64>, tensor<32xf32>) -> tensor<1x?x32xf32>
// CHECK: qquant.linear %{{.*}}, %[[D]] :
// CHECK: qquant.logits %{{.*}}, %[[E]] {tied}
// CHECK-NOT: qwen.linear
// CHECK-NOT: qwen.logits

// Everything at 8 bits per channel with dynamic int8 activations; the
// embedding shares the LM head's quantized table (one weight, both ops).
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-quantize-weights="bits=8 granularity=channel act=dynamic ops=linear,logits,embedding store=%t.q8.qws" --qwen-verify-weights | FileCheck %s --check-prefix=W8A8
// W8A8: %[[E:.*]] = qquant.weight @quantized::@embed.weight : !qquant.weight<48x64xf32, i8, symmetric, channel>
// W8A8-NOT: qquant.weight @quantized::@embed.weight
// W8A8: qquant.embedding %{{.*}}, %[[E]]
// W8A8: qquant.linear {{.*}} {act = #qquant.act<dynamic, i8, per_token>} : (tensor<1x?x64xf32>, !qquant.weight<32x64xf32, i8, symmetric, channel>
// W8A8: qquant.logits %{{.*}}, %[[E]] {act = #qquant.act<dynamic, i8, per_token>, tied}

// Asymmetric unsigned 2-bit per tensor.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-quantize-weights="bits=2 mode=asymmetric signed=false granularity=tensor ops=linear store=%t.q2.qws" --qwen-verify-weights | FileCheck %s --check-prefix=ASYM
// ASYM: !qquant.weight<32x64xf32, ui2, asymmetric, tensor>
// ASYM: qwen.logits
// RUN: %python -c "from qwen_opt import weight_store as w; s = w.read('%t.q2.qws'); print(sorted((k, v.dtype.name, v.shape) for k, v in s.items() if k.startswith('layers.0.q_proj')))" | FileCheck %s --check-prefix=ASYMSTORE
// ASYMSTORE: [('layers.0.q_proj.weight.codes', 'uint8', (32, 16)), ('layers.0.q_proj.weight.scales', 'float32', (1,)), ('layers.0.q_proj.weight.zeros', 'uint8', (1,))]

// Per-layer overrides: a pinned layer at 8 bits per channel, one kept f32.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-quantize-weights="layers-file=%t.layers/pin.json store=%t.qp.qws" --qwen-verify-weights | FileCheck %s --check-prefix=PIN
// PIN-DAG: qquant.weight @quantized::@layers.0.down_proj.weight : !qquant.weight<64x128xf32, i8, symmetric, channel>
// PIN-DAG: qwen.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x?x64xf32>, tensor<16x64xf32>, tensor<16xf32>)
// PIN-DAG: qquant.weight @quantized::@layers.0.q_proj.weight : !qquant.weight<32x64xf32, i4, symmetric, group = 64>
// A glob: 3 bits, groups of 32, for q/k/down projections.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-quantize-weights="layers-file=%t.layers/glob.json store=%t.qg.qws" --qwen-verify-weights | FileCheck %s --check-prefix=GLOB
// GLOB-DAG: !qquant.weight<32x64xf32, i3, symmetric, group = 32>
// GLOB-DAG: !qquant.weight<16x64xf32, i3, symmetric, group = 32>
// GLOB-DAG: !qquant.weight<64x128xf32, i3, symmetric, group = 32>
// GLOB-DAG: !qquant.weight<48x64xf32, i4, symmetric, group = 64>

// Errors in the overrides and options.
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="layers-file=%t.layers/unknown.json store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: error: unknown layer name(s) in the per-layer overrides: 'layers.7.q_proj.weight' 'nothing.*' (layers are named by their weight's store entry, e.g.
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="layers-file=%t.layers/badkey.json store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=BADKEY
// BADKEY: error: layers-file '{{.*}}badkey.json': layer 'layers.0.q_proj.weight': unknown key 'clip' (known: bits, granularity, group_size, symmetric, signed, act, grid, sparsity, algorithm, clip_search, bias_correction)
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="layers-file=%t.layers/ambiguous.json store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=AMBIG
// AMBIG: error: 'qwen.linear' op layer 'layers.0.q_proj.weight' is matched by several globs: '*q_proj*' 'layers.0.q*'; name it exactly
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="layers-file=%t.layers/badbits.json store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=BADBITS
// BADBITS: error: 'qwen.linear' op layer 'layers.0.q_proj.weight': bits must be 2, 3, 4 or 8, got 5
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="layers-file=%t.layers/dyn4.json store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=DYN4
// DYN4: error: 'qwen.linear' op layer 'layers.0.q_proj.weight': dynamic int8 activations (w8a8, w4a8) need signed symmetric 8-bit weights per tensor or per channel or 4-bit ones, got i3 symmetric group=64 act=dynamic-i8
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="bits=5 store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=BITS5
// BITS5: error: --qwen-quantize-weights: bits must be 2, 3, 4 or 8, got 5
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="granularity=row store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=GRAN
// GRAN: error: --qwen-quantize-weights: granularity must be tensor, channel or group, got 'row'
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="ops=linear,attention store=%t.qe.qws" 2>&1 | FileCheck %s --check-prefix=OPS
// OPS: error: --qwen-quantize-weights: ops takes linear, logits, embedding; got 'attention'
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights 2>&1 | FileCheck %s --check-prefix=NOSTORE
// NOSTORE: error: --qwen-quantize-weights needs store=<path> to write 'layers.0.q_proj.weight'
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-quantize-weights="store=%t.qws" 2>&1 | FileCheck %s --check-prefix=CLOBBER
// CLOBBER: error: weight store '{{.*}}.qws' is the file of @w, which the module still reads; write to another path

qwen.store @w "STORE"
func.func @model(%ids: tensor<1x?xi64>, %bq: tensor<32xf32>, %bk: tensor<16xf32>) -> (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x64xf32>, tensor<1x?x48xf32>) {
  %emb = qwen.weight @w::@embed.weight : tensor<48x64xf32>
  %wq = qwen.weight @w::@layers.0.q_proj.weight : tensor<32x64xf32>
  %wk = qwen.weight @w::@layers.0.k_proj.weight : tensor<16x64xf32>
  %wd = qwen.weight @w::@layers.0.down_proj.weight : tensor<64x128xf32>
  %h = qwen.embedding %ids, %emb : (tensor<1x?xi64>, tensor<48x64xf32>) -> tensor<1x?x64xf32>
  %q = qwen.linear %h, %wq, %bq : (tensor<1x?x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<1x?x32xf32>
  %k = qwen.linear %h, %wk, %bk : (tensor<1x?x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> tensor<1x?x16xf32>
  %h2 = qwen.silu_mul %h, %h : tensor<1x?x64xf32>
  %cat = tensor.concat dim(2) %h2, %h : (tensor<1x?x64xf32>, tensor<1x?x64xf32>) -> tensor<1x?x128xf32>
  %d = qwen.linear %cat, %wd : (tensor<1x?x128xf32>, tensor<64x128xf32>) -> tensor<1x?x64xf32>
  %l = qwen.logits %d, %emb {tied} : (tensor<1x?x64xf32>, tensor<48x64xf32>) -> tensor<1x?x48xf32>
  return %q, %k, %d, %l : tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x64xf32>, tensor<1x?x48xf32>
}
