// RUN: %python %S/Inputs/quantize_store.py %t.qws
// --qwen-share-weights: k-means codebooks (WeightSharing.h). Defaults: 4-bit
// indices, one codebook per output channel, linear ops only; the tied
// embedding / LM head stay f32.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-share-weights="store=%t.cb.qws" --qwen-verify-weights | FileCheck %s
// CHECK-DAG: qwen.store @shared "{{.*}}.cb.qws"
// CHECK-LABEL: func.func @model
// CHECK-DAG: %[[Q:.*]] = qquant.weight @shared::@layers.0.q_proj.weight : !qquant.weight<32x64xf32, codebook 4, channel>
// CHECK-DAG: %[[D:.*]] = qquant.weight @shared::@layers.0.down_proj.weight : !qquant.weight<64x128xf32, codebook 4, channel>
// CHECK: qquant.linear %{{.*}}, %[[Q]], %{{.*}} : (tensor<1x?x64xf32>, !qquant.weight<32x64xf32, codebook 4, channel>, tensor<32xf32>) -> tensor<1x?x32xf32>
// CHECK: qquant.linear %{{.*}}, %[[D]] :
// CHECK: qwen.logits
// CHECK-NOT: qwen.linear
// The store: packed indices and [rows, 16] f32 codebooks, as
// getWeightComponents says; decoding them gives the numpy mirror's weight.
// RUN: %python %S/Inputs/share_weights_check.py %t.qws %t.cb.qws channel 4 0 | FileCheck %s --check-prefix=STORE
// STORE: layers.0.q_proj.weight.codebook float32 (32, 16)
// STORE: layers.0.q_proj.weight.codes uint8 (32, 32)
// STORE: OK 3 weights equal the numpy k-means bit for bit

// 3-bit codebooks per group of 32 over every op kind; the tied table is
// shared once and read by both the embedding and the LM head.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-share-weights="bits=3 granularity=group group-size=32 ops=linear,logits,embedding store=%t.g.qws store-name=cb" --qwen-verify-weights | FileCheck %s --check-prefix=GROUP
// GROUP: %[[E:.*]] = qquant.weight @cb::@embed.weight : !qquant.weight<48x64xf32, codebook 3, group = 32>
// GROUP-NOT: qquant.weight @cb::@embed.weight
// GROUP: qquant.embedding %{{.*}}, %[[E]]
// GROUP: !qquant.weight<32x64xf32, codebook 3, group = 32>
// GROUP: qquant.logits %{{.*}}, %[[E]] {tied}
// RUN: %python %S/Inputs/share_weights_check.py %t.qws %t.g.qws group 3 32 | FileCheck %s --check-prefix=GSTORE
// GSTORE: layers.0.q_proj.weight.codebook float32 (64, 8)
// GSTORE: layers.0.q_proj.weight.codes uint8 (32, 24)
// GSTORE: OK 4 weights equal the numpy k-means bit for bit

// f16 centroids (the k-means rounds to f16; half the codebook bytes).
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-share-weights="codebook-type=f16 store=%t.h.qws" --qwen-verify-weights | FileCheck %s --check-prefix=HALF
// HALF: !qquant.weight<32x64xf32, codebook 4, channel>
// RUN: %python %S/Inputs/share_weights_check.py %t.qws %t.h.qws channel 4 0 f16 | FileCheck %s --check-prefix=HSTORE
// HSTORE: layers.0.q_proj.weight.codebook float16 (32, 16)
// HSTORE: OK 3 weights equal the numpy k-means bit for bit

// One 256-entry codebook per tensor.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-share-weights="bits=8 granularity=tensor store=%t.t.qws" --qwen-verify-weights | FileCheck %s --check-prefix=TENSOR
// TENSOR: !qquant.weight<32x64xf32, codebook 8, tensor>
// RUN: %python %S/Inputs/share_weights_check.py %t.qws %t.t.qws tensor 8 0 | FileCheck %s --check-prefix=TSTORE
// TSTORE: layers.0.q_proj.weight.codebook float32 (1, 256)
// TSTORE: OK 3 weights equal the numpy k-means bit for bit

// Bad options.
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="bits=5 store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: error: --qwen-share-weights: bits must be 2, 3, 4 or 8, got 5
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="bits=8 store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=BITS8
// BITS8: error: --qwen-share-weights: codebooks take 2, 3 or 4 index bits (8 with one codebook per tensor), got 8 per channel
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="granularity=row store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=GRAN
// GRAN: error: --qwen-share-weights: granularity must be tensor, channel or group, got 'row'
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="granularity=group group-size=48 store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=GSIZE
// GSIZE: error: --qwen-share-weights: group size must be 32, 64 or 128, got 48
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="ops=linear,attention store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=OPS
// OPS: error: --qwen-share-weights: ops takes linear, logits, embedding; got 'attention'
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="codebook-type=bf16 store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=CBTYPE
// CBTYPE: error: --qwen-share-weights: codebook-type must be f32 or f16, got 'bf16'
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="max-iters=0 store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=ITERS
// ITERS: error: --qwen-share-weights: max-iters must be at least 1
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights="weighted=true store=%t.e.qws" 2>&1 | FileCheck %s --check-prefix=WEIGHTED
// WEIGHTED: error: 'qwen.linear' op layer 'layers.0.q_proj.weight' (codebook4 channel weighted) needs calibration data: give calib-tokens=<file> (qwen-compile --calib-text)
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-share-weights 2>&1 | FileCheck %s --check-prefix=NOSTORE
// NOSTORE: error: --qwen-quantize-weights needs store=<path> to write 'layers.0.q_proj.weight'

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
