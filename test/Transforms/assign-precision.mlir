// RUN: %python %S/Inputs/quantize_store.py %t.qws %t.layers
// --qwen-assign-precision on hand-made costs (what --qwen-sensitivity
// writes): one decision per layer, the tied embedding / LM head one layer.
// Weights: q 32x64, k 16x64, down 64x128, embed 48x64 (14336 in all).
// Stored bits per weight: i8 channel 8.5 (64 columns) / 8.25 (128),
// i4 g32 5, i2 g32 3.

// Everything at 8 bits fits 8.5 bits per weight.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-assign-precision="avg-bits=8.5" | FileCheck %s --check-prefix=ALL8
// ALL8-COUNT-5: qquant.decision = #qquant.decision<scheme = <i8, symmetric, channel>, reason = budget

// 5 bits per weight (71680 bits): all-i4 fits (loss 0.161), but k_proj
// loses 0.1 at 4 bits; the optimum (0.07001, 71168 bits) keeps k at 8 bits
// (reason: sensitivity, above the budget's 5 bits) and pays with q at 2.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-assign-precision="avg-bits=5 print-assignment" | FileCheck %s --check-prefix=B5
// B5-LABEL: precision assignment (avg-bits=5, solver exact, 4 layers)
// B5-NEXT: layer shape scheme bits/w  loss (KL) reason
// B5-NEXT: embed.weight 48x64 i4-g32 5.000  1.000e-02   budget
// B5-NEXT: layers.0.q_proj.weight 32x64 i2-g32 3.000  1.000e-02   budget
// B5-NEXT: layers.0.k_proj.weight 16x64 i8-channel 8.500  1.000e-05   sensitivity
// B5-NEXT: layers.0.down_proj.weight 64x128 i4-g32 5.000  5.000e-02   budget
// B5-NEXT: total: 14336 weights, 4.9643 bits/weight, 0.0089 MB, predicted loss 7.001e-02
// B5: qwen.embedding {{.*}}qquant.decision = #qquant.decision<scheme = <i4, symmetric, group = 32>, reason = budget, loss = 1.000000e-02, budget = "avg-bits=5">
// B5: qwen.linear {{.*}}qquant.decision = #qquant.decision<scheme = <i2, symmetric, group = 32>, reason = budget, loss = 1.000000e-02, budget = "avg-bits=5">
// B5: qwen.linear {{.*}}qquant.decision = #qquant.decision<scheme = <i8, symmetric, channel>, reason = sensitivity, loss = 1.000000e-05, budget = "avg-bits=5">
// B5: qwen.linear {{.*}}qquant.decision = #qquant.decision<scheme = <i4, symmetric, group = 32>, reason = budget
// B5: qwen.logits {{.*}}qquant.decision = #qquant.decision<scheme = <i4, symmetric, group = 32>, reason = budget

// --qwen-quantize-weights follows the decisions (whatever its own options
// say), and the tied table is stored once.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-assign-precision="avg-bits=5" --qwen-quantize-weights="bits=2 ops=linear,logits,embedding store=%t.q.qws" --qwen-verify-weights | FileCheck %s --check-prefix=Q
// Q-DAG: qquant.weight @quantized::@embed.weight : !qquant.weight<48x64xf32, i4, symmetric, group = 32>
// Q-DAG: qquant.weight @quantized::@layers.0.q_proj.weight : !qquant.weight<32x64xf32, i2, symmetric, group = 32>
// Q-DAG: qquant.weight @quantized::@layers.0.k_proj.weight : !qquant.weight<16x64xf32, i8, symmetric, channel>
// Q-DAG: qquant.weight @quantized::@layers.0.down_proj.weight : !qquant.weight<64x128xf32, i4, symmetric, group = 32>
// Q-NOT: qquant.weight @quantized::@embed.weight.q1

// Pins: a recipe file's layers (fields over i8 per channel); a pinned
// scheme outside the candidates gets loss 0 and its exact size.
// RUN: echo '{"base": "fp32", "layers": {"layers.0.down_proj.weight": {"bits": 8}, "layers.0.q*": {"bits": 3, "group_size": 64}}}' > %t.pins.json
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-assign-precision="avg-bits=7 pins=%t.pins.json print-assignment" | FileCheck %s --check-prefix=PIN
// PIN: layers.0.q_proj.weight    32x64  i3-g64  3.500  0.000e+00   pinned
// PIN: layers.0.down_proj.weight 64x128 i8-channel  8.250  1.000e-04   pinned

// Size budget: every weight the module references (here only the layers).
// 0.007 MB = 56000 bits, 3.91 a weight.
// RUN: sed -e 's|STORE|%t.qws|' %s | qwen-opt --qwen-assign-precision="size-mb=0.007 print-assignment" | FileCheck %s --check-prefix=MB
// MB: embed.weight 48x64 i4-g32 5.000 1.000e-02 sensitivity
// MB: total: 14336 weights, 3.8214 bits/weight, 0.0068 MB (incl. other weights), predicted loss 5.200e-01

// Errors.
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-assign-precision="avg-bits=2.5" 2>&1 | FileCheck %s --check-prefix=INFEASIBLE
// INFEASIBLE: error: --qwen-assign-precision: the budget avg-bits=2.5 cannot be met: the cheapest assignment needs 3.0000 bits per weight
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-assign-precision 2>&1 | FileCheck %s --check-prefix=NOBUDGET
// NOBUDGET: error: --qwen-assign-precision needs exactly one budget: avg-bits=, size-mb= or latency-ms=
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-assign-precision="latency-ms=3" 2>&1 | FileCheck %s --check-prefix=NOLAT
// NOLAT: error: 'qwen.embedding' op layer 'embed.weight' has no latency for scheme i8-channel (run --qwen-sensitivity with cost-model=)
// RUN: echo '{"nothing.*": {"bits": 8}}' > %t.badpin.json
// RUN: sed -e 's|STORE|%t.qws|' %s | not qwen-opt --qwen-assign-precision="avg-bits=5 pins=%t.badpin.json" 2>&1 | FileCheck %s --check-prefix=BADPIN
// BADPIN: error: pin 'nothing.*' matches no layer with qquant.sensitivity

qwen.store @w "STORE"
func.func @model(%ids: tensor<1x?xi64>, %bq: tensor<32xf32>, %bk: tensor<16xf32>) -> (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x64xf32>, tensor<1x?x48xf32>) {
  %emb = qwen.weight @w::@embed.weight : tensor<48x64xf32>
  %wq = qwen.weight @w::@layers.0.q_proj.weight : tensor<32x64xf32>
  %wk = qwen.weight @w::@layers.0.k_proj.weight : tensor<16x64xf32>
  %wd = qwen.weight @w::@layers.0.down_proj.weight : tensor<64x128xf32>
  %h = qwen.embedding %ids, %emb {qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-4, bits = 8.5>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 1.0e-2, bits = 5.0>,
      #qquant.cost<scheme = #qquant.scheme<i2, symmetric, group = 32>, loss = 0.3, bits = 3.0>]}
      : (tensor<1x?xi64>, tensor<48x64xf32>) -> tensor<1x?x64xf32>
  %q = qwen.linear %h, %wq, %bq {qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-5, bits = 8.5>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 1.0e-3, bits = 5.0>,
      #qquant.cost<scheme = #qquant.scheme<i2, symmetric, group = 32>, loss = 1.0e-2, bits = 3.0>]}
      : (tensor<1x?x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<1x?x32xf32>
  %k = qwen.linear %h, %wk, %bk {qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-5, bits = 8.5>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 1.0e-1, bits = 5.0>,
      #qquant.cost<scheme = #qquant.scheme<i2, symmetric, group = 32>, loss = 0.5, bits = 3.0>]}
      : (tensor<1x?x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> tensor<1x?x16xf32>
  %h2 = qwen.silu_mul %h, %h : tensor<1x?x64xf32>
  %cat = tensor.concat dim(2) %h2, %h : (tensor<1x?x64xf32>, tensor<1x?x64xf32>) -> tensor<1x?x128xf32>
  %d = qwen.linear %cat, %wd {qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-4, bits = 8.25>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 5.0e-2, bits = 5.0>,
      #qquant.cost<scheme = #qquant.scheme<i2, symmetric, group = 32>, loss = 0.5, bits = 3.0>]}
      : (tensor<1x?x128xf32>, tensor<64x128xf32>) -> tensor<1x?x64xf32>
  %l = qwen.logits %d, %emb {tied, qquant.sensitivity = [
      #qquant.cost<scheme = #qquant.scheme<i8, symmetric, channel>, loss = 1.0e-4, bits = 8.5>,
      #qquant.cost<scheme = #qquant.scheme<i4, symmetric, group = 32>, loss = 1.0e-2, bits = 5.0>,
      #qquant.cost<scheme = #qquant.scheme<i2, symmetric, group = 32>, loss = 0.3, bits = 3.0>]}
      : (tensor<1x?x64xf32>, tensor<48x64xf32>) -> tensor<1x?x48xf32>
  return %q, %k, %d, %l : tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x64xf32>, tensor<1x?x48xf32>
}
