// RUN: qwen-opt %s --qwen-raise-onnx -split-input-file | FileCheck %s

// Shapes: hidden 32, 4 q heads / 2 kv heads, head_dim 8, theta 10000
// (inv_freq = 1, 0.1, 0.01, 0.001). Graph inputs carry their ONNX names:
// the raising relies on input_ids [B, T], attention_mask [B, P+T],
// position_ids [B, T] and past_key_values.* [B, kv, P, d] sharing B, T, P.

// TorchScript with a KV cache: half bounds of rotate_half computed from the
// shape, position_ids, Concat(past, new), repeat_kv, Mul scale, and the
// padding mask gathered from the flattened attention_mask (b * S + j) and
// AND-ed with a causal LessOrEqual(kv_index, cache_position).
qwen.store @w "w.qws"
// CHECK-LABEL: func @torchscript_kvcache
// CHECK-SAME: %[[IDS:[^:]+]]: tensor<?x?xi64> {onnx.name = "input_ids"}, %[[AM:[^:]+]]: tensor<?x?xi64> {onnx.name = "attention_mask"}, %[[POS:[^:]+]]: tensor<?x?xi64> {onnx.name = "position_ids"}, %[[PK:[^:]+]]: tensor<?x2x?x8xf32> {{.*}}, %[[PV:[^:]+]]: tensor<?x2x?x8xf32>
func.func @torchscript_kvcache(
    %ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %am: tensor<?x?xi64> {onnx.name = "attention_mask"},
    %pos: tensor<?x?xi64> {onnx.name = "position_ids"},
    %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
    %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %c2 = onnx.Constant dense<2> : tensor<i64>
  %c3 = onnx.Constant dense<3> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a013 = onnx.Constant dense<[0, 1, 3]> : tensor<3xi64>
  %a012 = onnx.Constant dense<[0, 1, 2]> : tensor<3xi64>
  %a123 = onnx.Constant dense<[1, 2, 3]> : tensor<3xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %one = onnx.Constant dense<1.0> : tensor<f32>
  %min = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  // Sizes: P, T, B.
  %spk = onnx.Shape %pk : (tensor<?x2x?x8xf32>) -> tensor<4xi64>
  %P = onnx.Gather %spk, %c2 : (tensor<4xi64>, tensor<i64>) -> tensor<i64>
  %sh = onnx.Shape %h : (tensor<?x?x32xf32>) -> tensor<3xi64>
  %T = onnx.Gather %sh, %c1 : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %B = onnx.Gather %sh, %c0 : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %PT = onnx.Add %P, %T : (tensor<i64>, tensor<i64>) -> tensor<i64>
  // The mask.
  %cache = onnx.Range %P, %PT, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %kvidx = onnx.Range %c0, %PT, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %bidx = onnx.Range %c0, %B, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %b4 = onnx.Unsqueeze %bidx, %a123 : (tensor<?xi64>, tensor<3xi64>) -> tensor<?x1x1x1xi64>
  %i4 = onnx.Unsqueeze %cache, %a013 : (tensor<?xi64>, tensor<3xi64>) -> tensor<1x1x?x1xi64>
  %j4 = onnx.Unsqueeze %kvidx, %a012 : (tensor<?xi64>, tensor<3xi64>) -> tensor<1x1x1x?xi64>
  %causal = onnx.LessOrEqual %j4, %i4 : (tensor<1x1x1x?xi64>, tensor<1x1x?x1xi64>) -> tensor<1x1x?x?xi1>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %smb = onnx.Shape %mb : (tensor<?x?xi1>) -> tensor<2xi64>
  %S = onnx.Gather %smb, %a1 : (tensor<2xi64>, tensor<1xi64>) -> tensor<1xi64>
  %flat = onnx.Flatten %mb {axis = 2 : si64} : (tensor<?x?xi1>) -> tensor<?x1xi1>
  %off = onnx.Mul %b4, %S : (tensor<?x1x1x1xi64>, tensor<1xi64>) -> tensor<?x1x1x1xi64>
  %gidx = onnx.Add %j4, %off : (tensor<1x1x1x?xi64>, tensor<?x1x1x1xi64>) -> tensor<?x1x1x?xi64>
  %g = onnx.Gather %flat, %gidx : (tensor<?x1xi1>, tensor<?x1x1x?xi64>) -> tensor<?x1x1x?x1xi1>
  %gs = onnx.Shape %gidx : (tensor<?x1x1x?xi64>) -> tensor<4xi64>
  %g1 = onnx.Reshape %g, %m1 : (tensor<?x1x1x?x1xi1>, tensor<1xi64>) -> tensor<?xi1>
  %pad = onnx.Reshape %g1, %gs : (tensor<?xi1>, tensor<4xi64>) -> tensor<?x1x1x?xi1>
  %keep = onnx.And %causal, %pad : (tensor<1x1x?x?xi1>, tensor<?x1x1x?xi1>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %min : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // RoPE tables: inv_freq (expanded to the batch) x position_ids.
  %spos = onnx.Shape %pos : (tensor<?x?xi64>) -> tensor<2xi64>
  %Bp = onnx.Gather %spos, %c0 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %Bp1 = onnx.Unsqueeze %Bp, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %ishape = onnx.Concat %Bp1, %a1, %a1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %invE = onnx.Expand %inv, %ishape : (tensor<1x4x1xf32>, tensor<3xi64>) -> tensor<?x4x1xf32>
  %posu = onnx.Unsqueeze %pos, %a1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %posf = onnx.Cast %posu {to = f32} : (tensor<?x1x?xi64>) -> tensor<?x1x?xf32>
  %fr = onnx.MatMul %invE, %posf : (tensor<?x4x1xf32>, tensor<?x1x?xf32>) -> tensor<?x4x?xf32>
  %frt = onnx.Transpose %fr {perm = array<i64: 0, 2, 1>} : (tensor<?x4x?xf32>) -> tensor<?x?x4xf32>
  %emb = onnx.Concat %frt, %frt {axis = -1 : si64} : (tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
  %cos0 = onnx.Cos %emb : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %cos1 = onnx.Mul %cos0, %one : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  %cos = onnx.Unsqueeze %cos1, %a1 : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x1x?x8xf32>
  %sin0 = onnx.Sin %emb : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %sin1 = onnx.Mul %sin0, %one : (tensor<?x?x8xf32>, tensor<f32>) -> tensor<?x?x8xf32>
  %sin = onnx.Unsqueeze %sin1, %a1 : (tensor<?x?x8xf32>, tensor<1xi64>) -> tensor<?x1x?x8xf32>
  // Projections, split into heads.
  %B1 = onnx.Unsqueeze %B, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %T1 = onnx.Unsqueeze %T, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %tgt = onnx.Concat %B1, %T1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x?x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %k4 = onnx.Reshape %k, %tgt : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %v4 = onnx.Reshape %v, %tgt : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  // RoPE on q: half = Shape(q)[3] / 2.
  %sq = onnx.Shape %qt : (tensor<?x?x?x8xf32>) -> tensor<4xi64>
  %dq = onnx.Gather %sq, %c3 : (tensor<4xi64>, tensor<i64>) -> tensor<i64>
  %hq = onnx.Div %dq, %c2 : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %hq1 = onnx.Unsqueeze %hq, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %qlo = onnx.Slice %qt, %a0, %hq1 axes %a3 steps %a1 : (tensor<?x?x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x?x4xf32>
  %qhi = onnx.Slice %qt, %hq1, %big axes %a3 steps %a1 : (tensor<?x?x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x?x4xf32>
  %qneg = onnx.Neg %qhi : (tensor<?x?x?x4xf32>) -> tensor<?x?x?x4xf32>
  %qrot = onnx.Concat %qneg, %qlo {axis = -1 : si64} : (tensor<?x?x?x4xf32>, tensor<?x?x?x4xf32>) -> tensor<?x?x?x8xf32>
  %qc = onnx.Mul %qt, %cos : (tensor<?x?x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x?x?x8xf32>
  %qs = onnx.Mul %qrot, %sin : (tensor<?x?x?x8xf32>, tensor<?x1x?x8xf32>) -> tensor<?x?x?x8xf32>
  %qr = onnx.Add %qc, %qs : (tensor<?x?x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  // RoPE on k: constant bounds, operands in the other order.
  %klo = onnx.Slice %kt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x?x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x?x4xf32>
  %khi = onnx.Slice %kt, %d4, %big axes %a3 steps %a1 : (tensor<?x?x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x?x4xf32>
  %kneg = onnx.Neg %khi : (tensor<?x?x?x4xf32>) -> tensor<?x?x?x4xf32>
  %krot = onnx.Concat %kneg, %klo {axis = 3 : si64} : (tensor<?x?x?x4xf32>, tensor<?x?x?x4xf32>) -> tensor<?x?x?x8xf32>
  %kc0 = onnx.Mul %cos, %kt : (tensor<?x1x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %ks = onnx.Mul %sin, %krot : (tensor<?x1x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %kr = onnx.Add %ks, %kc0 : (tensor<?x?x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  // KV cache and repeat_kv ([B, 2, S, 8] -> [B, 2, 2, S, 8] -> [B, 4, S, 8]).
  %kcat = onnx.Concat %pk, %kr {axis = -2 : si64} : (tensor<?x2x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x2x?x8xf32>
  %vcat = onnx.Concat %pv, %vt {axis = -2 : si64} : (tensor<?x2x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x2x?x8xf32>
  %skc = onnx.Shape %kcat : (tensor<?x2x?x8xf32>) -> tensor<4xi64>
  %Skv = onnx.Gather %skc, %a2 : (tensor<4xi64>, tensor<1xi64>) -> tensor<1xi64>
  %e5 = onnx.Concat %B1, %a2, %a2, %Skv, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %B1, %d4, %Skv, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kcat, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vcat, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  // Scores, mask (sliced to the key length), softmax, output.
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qr, %ktr : (tensor<?x?x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %mk = onnx.Slice %mask, %a0, %Skv axes %a3 steps %a1 : (tensor<?x1x?x?xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x1x?x?xf32>
  %z = onnx.Add %scs, %mk : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %B1, %T1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x?xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x?xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out, %kcat, %vcat : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}
// CHECK-DAG: %[[Q:.*]] = qwen.linear %[[H:[^,]+]], %{{[^,]+}} : (tensor<?x?x32xf32>, tensor<32x32xf32>)
// CHECK-DAG: %[[K:.*]] = qwen.linear %[[H]], %{{[^,]+}} : (tensor<?x?x32xf32>, tensor<16x32xf32>)
// CHECK-DAG: %[[V:.*]] = qwen.linear %[[H]], %{{[^,]+}} : (tensor<?x?x32xf32>, tensor<16x32xf32>)
// CHECK-DAG: %[[QR:.*]] = qwen.rope %[[Q]], %[[POS]] {head_dim = 8 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[KR:.*]] = qwen.rope %[[K]], %[[POS]] {head_dim = 8 : i64, num_heads = 2 : i64, theta = 1.000000e+04 : f64}
// CHECK: %[[O:.*]], %[[PRK:.*]], %[[PRV:.*]] = qwen.attention %[[QR]], %[[KR]], %[[V]] past %[[PK]], %[[PV]] mask %[[AM]] {causal, head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x16xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?x?xi64>) -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
// CHECK: %[[OUT:.*]] = qwen.linear %[[O]]
// CHECK: return %[[OUT]], %[[PRK]], %[[PRV]]
// CHECK-NOT: onnx.Softmax
// CHECK-NOT: onnx.Cos


// -----

// Dynamo, no cache, Qwen3: sizes read off attention_mask's shape, the
// padding mask through GatherND, positions Range(0, S) broadcast over the
// batch, and q/k RMSNorms on the head-split view (folded to per_head norms
// on the flat projections).
qwen.store @w "w.qws"
// CHECK-LABEL: func @dynamo_qwen3
// CHECK-SAME: (%[[IDS:[^:]+]]: tensor<?x?xi64> {onnx.name = "input_ids"}, %[[AM:[^:]+]]: tensor<?x?xi64>
// CHECK-DAG: %[[Q:.*]] = qwen.linear %[[H:[^,]+]], %{{[^,]+}} : (tensor<?x?x32xf32>, tensor<32x32xf32>)
// CHECK-DAG: %[[K:.*]] = qwen.linear %[[H]], %{{[^,]+}} : (tensor<?x?x32xf32>, tensor<16x32xf32>)
// CHECK-DAG: %[[V:.*]] = qwen.linear %[[H]], %{{[^,]+}} : (tensor<?x?x32xf32>, tensor<16x32xf32>)
// CHECK-DAG: %[[QN:.*]] = qwen.rms_norm %[[Q]], %{{[^ ]+}} {epsilon = 9.99999997E-7 : f32, per_head} : (tensor<?x?x32xf32>, tensor<8xf32>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[KN:.*]] = qwen.rms_norm %[[K]], %{{[^ ]+}} {epsilon = 9.99999997E-7 : f32, per_head} : (tensor<?x?x16xf32>, tensor<8xf32>) -> tensor<?x?x16xf32>
// CHECK-DAG: %[[R:.*]] = onnx.Range
// CHECK-DAG: %[[RU:.*]] = onnx.Unsqueeze %[[R]], %{{.*}} : (tensor<?xi64>, tensor<1xi64>) -> tensor<1x?xi64>
// CHECK-DAG: %[[SH:.*]] = onnx.Shape %[[IDS]] {end = 2 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
// CHECK-DAG: %[[POS:.*]] = onnx.Expand %[[RU]], %[[SH]] : (tensor<1x?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
// CHECK-DAG: %[[QR:.*]] = qwen.rope %[[QN]], %[[POS]] {head_dim = 8 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64}
// CHECK-DAG: %[[KR:.*]] = qwen.rope %[[KN]], %[[POS]] {head_dim = 8 : i64, num_heads = 2 : i64, theta = 1.000000e+04 : f64}
// CHECK: qwen.attention %[[QR]], %[[KR]], %[[V]] mask %[[AM]] {causal, head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x16xf32>, tensor<?x?xi64>) -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
// CHECK-NOT: onnx.Softmax
// CHECK-NOT: onnx.GatherND
func.func @dynamo_qwen3(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %qn = onnx.Constant dense<1.5> : tensor<8xf32>
  %kn = onnx.Constant dense<0.5> : tensor<8xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %q4n = qwen.rms_norm %q4, %qn {epsilon = 1.0e-06 : f32} : (tensor<?x?x4x8xf32>, tensor<8xf32>) -> tensor<?x?x4x8xf32>
  %k4n = qwen.rms_norm %k4, %kn {epsilon = 1.0e-06 : f32} : (tensor<?x?x2x8xf32>, tensor<8xf32>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4n {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4n {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // RoPE: positions Range(0, S) as [1, 1, S].
  %ru = onnx.Unsqueeze %r, %a01 : (tensor<?xi64>, tensor<2xi64>) -> tensor<1x1x?xi64>
  %rf = onnx.Cast %ru {to = f32} : (tensor<1x1x?xi64>) -> tensor<1x1x?xf32>
  %fr = onnx.MatMul %inv, %rf : (tensor<1x4x1xf32>, tensor<1x1x?xf32>) -> tensor<1x4x?xf32>
  %frt = onnx.Transpose %fr {perm = array<i64: 0, 2, 1>} : (tensor<1x4x?xf32>) -> tensor<1x?x4xf32>
  %emb = onnx.Concat %frt, %frt {axis = -1 : si64} : (tensor<1x?x4xf32>, tensor<1x?x4xf32>) -> tensor<1x?x8xf32>
  %cos0 = onnx.Cos %emb : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %sin0 = onnx.Sin %emb : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %cos = onnx.Unsqueeze %cos0, %a1 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %sin = onnx.Unsqueeze %sin0, %a1 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %qc = onnx.Mul %qt, %cos : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %qlo = onnx.Slice %qt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %qhi = onnx.Slice %qt, %d4, %big axes %a3 steps %a1 : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %qng = onnx.Neg %qhi : (tensor<?x4x?x4xf32>) -> tensor<?x4x?x4xf32>
  %qrh = onnx.Concat %qng, %qlo {axis = -1 : si64} : (tensor<?x4x?x4xf32>, tensor<?x4x?x4xf32>) -> tensor<?x4x?x8xf32>
  %qs = onnx.Mul %qrh, %sin : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %qr = onnx.Add %qc, %qs : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %kc = onnx.Mul %kt, %cos : (tensor<?x2x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %klo = onnx.Slice %kt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x2x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x?x4xf32>
  %khi = onnx.Slice %kt, %d4, %big axes %a3 steps %a1 : (tensor<?x2x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x?x4xf32>
  %kng = onnx.Neg %khi : (tensor<?x2x?x4xf32>) -> tensor<?x2x?x4xf32>
  %krh = onnx.Concat %kng, %klo {axis = -1 : si64} : (tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>) -> tensor<?x2x?x8xf32>
  %ks = onnx.Mul %krh, %sin : (tensor<?x2x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %kr = onnx.Add %kc, %ks : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kr, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qr, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// Optimum: the scale split as sqrt on q and k^T, the mask filled with -inf
// and expanded through Where(Equal(shape, -1), 1, shape), and the IsNaN guard
// after the softmax. No RoPE here: attention raises on head-split views of
// any [B, T, H*D] tensors.
qwen.store @w "w.qws"
// CHECK-LABEL: func @optimum
// CHECK-SAME: (%[[IDS:[^:]+]]: tensor<?x?xi64> {onnx.name = "input_ids"}, %[[AM:[^:]+]]: tensor<?x?xi64> {{.*}}, %[[PK:[^:]+]]: tensor<?x2x?x8xf32> {{.*}}, %[[PV:[^:]+]]: tensor<?x2x?x8xf32>
// CHECK-DAG: %[[Q:.*]] = qwen.linear {{.*}} -> tensor<?x?x32xf32>
// CHECK-DAG: %[[K:.*]] = qwen.linear {{.*}} -> tensor<?x?x16xf32>
// CHECK-DAG: %[[V:.*]] = qwen.linear {{.*}} -> tensor<?x?x16xf32>
// CHECK: %{{.*}}, %[[PRK:.*]], %[[PRV:.*]] = qwen.attention %[[Q]], %[[K]], %[[V]] past %[[PK]], %[[PV]] mask %[[AM]] {causal, head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
// CHECK: return %{{.*}}, %[[PRK]], %[[PRV]]
// CHECK-NOT: onnx.IsNaN
func.func @optimum(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %am: tensor<?x?xi64> {onnx.name = "attention_mask"},
    %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
    %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %c2 = onnx.Constant dense<2> : tensor<i64>
  %cm1 = onnx.Constant dense<-1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a013 = onnx.Constant dense<[0, 1, 3]> : tensor<3xi64>
  %a012 = onnx.Constant dense<[0, 1, 2]> : tensor<3xi64>
  %a123 = onnx.Constant dense<[1, 2, 3]> : tensor<3xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<1xf32>
  %ninf = onnx.Constant dense<0xFF800000> : tensor<1xf32>
  %half = onnx.Constant dense<0.594603539> : tensor<f32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %spk = onnx.Shape %pk : (tensor<?x2x?x8xf32>) -> tensor<4xi64>
  %P = onnx.Gather %spk, %c2 : (tensor<4xi64>, tensor<i64>) -> tensor<i64>
  %sh = onnx.Shape %h : (tensor<?x?x32xf32>) -> tensor<3xi64>
  %T = onnx.Gather %sh, %c1 : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %B = onnx.Gather %sh, %c0 : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %PT = onnx.Add %P, %T : (tensor<i64>, tensor<i64>) -> tensor<i64>
  %cache = onnx.Range %P, %PT, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %kvidx = onnx.Range %c0, %PT, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %bidx = onnx.Range %c0, %B, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %b4 = onnx.Unsqueeze %bidx, %a123 : (tensor<?xi64>, tensor<3xi64>) -> tensor<?x1x1x1xi64>
  %i4 = onnx.Unsqueeze %cache, %a013 : (tensor<?xi64>, tensor<3xi64>) -> tensor<1x1x?x1xi64>
  %j4 = onnx.Unsqueeze %kvidx, %a012 : (tensor<?xi64>, tensor<3xi64>) -> tensor<1x1x1x?xi64>
  %causal = onnx.LessOrEqual %j4, %i4 : (tensor<1x1x1x?xi64>, tensor<1x1x?x1xi64>) -> tensor<1x1x?x?xi1>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %smb = onnx.Shape %mb : (tensor<?x?xi1>) -> tensor<2xi64>
  %S = onnx.Gather %smb, %a1 : (tensor<2xi64>, tensor<1xi64>) -> tensor<1xi64>
  %flat = onnx.Flatten %mb {axis = 2 : si64} : (tensor<?x?xi1>) -> tensor<?x1xi1>
  %off = onnx.Mul %b4, %S : (tensor<?x1x1x1xi64>, tensor<1xi64>) -> tensor<?x1x1x1xi64>
  %gidx = onnx.Add %j4, %off : (tensor<1x1x1x?xi64>, tensor<?x1x1x1xi64>) -> tensor<?x1x1x?xi64>
  %g = onnx.Gather %flat, %gidx : (tensor<?x1xi1>, tensor<?x1x1x?xi64>) -> tensor<?x1x1x?x1xi1>
  %gs = onnx.Shape %gidx : (tensor<?x1x1x?xi64>) -> tensor<4xi64>
  %g1 = onnx.Reshape %g, %m1 : (tensor<?x1x1x?x1xi1>, tensor<1xi64>) -> tensor<?xi1>
  %pad = onnx.Reshape %g1, %gs : (tensor<?xi1>, tensor<4xi64>) -> tensor<?x1x1x?xi1>
  %keep = onnx.And %causal, %pad : (tensor<1x1x?x?xi1>, tensor<?x1x1x?xi1>) -> tensor<?x1x?x?xi1>
  // Expand to Where(Equal(x, -1), 1, x) of [B, -1, T, P+T].
  %B1 = onnx.Unsqueeze %B, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %T1 = onnx.Unsqueeze %T, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %PT1 = onnx.Unsqueeze %PT, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %xs = onnx.Concat %B1, %m1, %T1, %PT1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ones = onnx.ConstantOfShape %a3 {value = dense<1> : tensor<1xi64>} : (tensor<1xi64>) -> tensor<4xi64>
  %ones4 = onnx.Concat %ones, %a1 {axis = 0 : si64} : (tensor<4xi64>, tensor<1xi64>) -> tensor<5xi64>
  %ones4s = onnx.Slice %ones4, %a0, %d4 : (tensor<5xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %neg = onnx.Mul %ones4s, %cm1 : (tensor<4xi64>, tensor<i64>) -> tensor<4xi64>
  %isneg = onnx.Equal %xs, %neg : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi1>
  %xshape = onnx.Where %isneg, %ones4s, %xs : (tensor<4xi1>, tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>
  %keepE = onnx.Expand %keep, %xshape : (tensor<?x1x?x?xi1>, tensor<4xi64>) -> tensor<?x1x?x?xi1>
  %tgt = onnx.Concat %B1, %T1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x?x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %k4 = onnx.Reshape %k, %tgt : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %v4 = onnx.Reshape %v, %tgt : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x?x8xf32>) -> tensor<?x?x?x8xf32>
  %kcat = onnx.Concat %pk, %kt {axis = -2 : si64} : (tensor<?x2x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x2x?x8xf32>
  %vcat = onnx.Concat %pv, %vt {axis = -2 : si64} : (tensor<?x2x?x8xf32>, tensor<?x?x?x8xf32>) -> tensor<?x2x?x8xf32>
  %skc = onnx.Shape %kcat : (tensor<?x2x?x8xf32>) -> tensor<4xi64>
  %Skv = onnx.Gather %skc, %a2 : (tensor<4xi64>, tensor<1xi64>) -> tensor<1xi64>
  %e5 = onnx.Concat %B1, %a2, %a2, %Skv, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %B1, %d4, %Skv, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kcat, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vcat, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %mk = onnx.Slice %keepE, %a0, %Skv axes %a3 steps %a1 : (tensor<?x1x?x?xi1>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %qs = onnx.Mul %qt, %half : (tensor<?x?x?x8xf32>, tensor<f32>) -> tensor<?x?x?x8xf32>
  %ks = onnx.Mul %ktr, %half : (tensor<?x4x8x?xf32>, tensor<f32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qs, %ks : (tensor<?x?x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %mask = onnx.Where %mk, %zero, %ninf : (tensor<?x1x?x?xi1>, tensor<1xf32>, tensor<1xf32>) -> tensor<?x1x?x?xf32>
  %z = onnx.Add %sc, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %nan = onnx.IsNaN %p : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xi1>
  %pg = onnx.Where %nan, %zero, %p : (tensor<?x4x?x?xi1>, tensor<1xf32>, tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %pg, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %B1, %T1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  return %o3, %kcat, %vcat : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// Qwen1: fused c_attn split into q/k/v (each becomes its own linear on the
// weight's rows), RoPE on the [B, T, H, D] view with Einsum frequencies and
// computed half bounds, k transposed straight to [B, H, D, T], Div scale,
// the causal mask as masked_fill with Trilu and the padding mask as
// (1 - mask) * -FLT_MAX. No GQA.
qwen.store @w "w.qws"
// CHECK-LABEL: func @qwen1
// CHECK-SAME: (%[[IDS:[^:]+]]: tensor<?x?xi64> {onnx.name = "input_ids"}, %[[AM:[^:]+]]: tensor<?x?xi64>
// CHECK-DAG: %[[W:.*]] = qwen.weight @w::@c_attn : tensor<96x32xf32>
// CHECK-DAG: %[[WQ:.*]] = onnx.Slice %[[W]], {{.*}} -> tensor<32x32xf32>
// CHECK-DAG: %[[Q:.*]] = qwen.linear %[[H:[^,]+]], %[[WQ]], %{{[^ ]+}} : (tensor<?x?x32xf32>, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[K:.*]] = qwen.linear %[[H]], %{{[^,]+}}, %{{[^ ]+}} : (tensor<?x?x32xf32>, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[V:.*]] = qwen.linear %[[H]], %{{[^,]+}}, %{{[^ ]+}} : (tensor<?x?x32xf32>, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[QR:.*]] = qwen.rope %[[Q]], %[[POS:[^ ]+]] {head_dim = 8 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64}
// CHECK-DAG: %[[KR:.*]] = qwen.rope %[[K]], %[[POS]] {head_dim = 8 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64}
// CHECK: qwen.attention %[[QR]], %[[KR]], %[[V]] mask %[[AM]] {causal, head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64}
// CHECK-NOT: onnx.Trilu
// CHECK-NOT: onnx.Split
func.func @qwen1(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %w = qwen.weight @w::@c_attn : tensor<96x32xf32>
  %b = qwen.weight @w::@c_attn_bias : tensor<96xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %d32 = onnx.Constant dense<32> : tensor<1xi64>
  %split = onnx.Constant dense<32> : tensor<3xi64>
  %t = onnx.Constant dense<true> : tensor<1xi1>
  %inv = onnx.Constant dense<[1.0, 0.1, 0.01, 0.001]> : tensor<4xf32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %min = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %sqrtd = onnx.Constant dense<2.82842708> : tensor<f32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %sid = onnx.Shape %ids : (tensor<?x?xi64>) -> tensor<2xi64>
  %T = onnx.Gather %sid, %c1 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %r = onnx.Range %c0, %T, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rf = onnx.Cast %r {to = f32} : (tensor<?xi64>) -> tensor<?xf32>
  %fr = onnx.Einsum %rf, %inv {equation = "i,j->ij"} : (tensor<?xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %emb = onnx.Concat %fr, %fr {axis = -1 : si64} : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x8xf32>
  %cos0 = onnx.Cos %emb : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %cos1 = onnx.Unsqueeze %cos0, %a0 : (tensor<?x8xf32>, tensor<1xi64>) -> tensor<1x?x8xf32>
  %cos = onnx.Unsqueeze %cos1, %a2 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x?x1x8xf32>
  %sin0 = onnx.Sin %emb : (tensor<?x8xf32>) -> tensor<?x8xf32>
  %sin1 = onnx.Unsqueeze %sin0, %a0 : (tensor<?x8xf32>, tensor<1xi64>) -> tensor<1x?x8xf32>
  %sin = onnx.Unsqueeze %sin1, %a2 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x?x1x8xf32>
  // Padding mask: (1 - mask) * -FLT_MAX on [B, 1, 1, S].
  %am1 = onnx.Unsqueeze %am, %a1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x1x?xi64>
  %am2 = onnx.Unsqueeze %am1, %a2 : (tensor<?x1x?xi64>, tensor<1xi64>) -> tensor<?x1x1x?xi64>
  %amf = onnx.Cast %am2 {to = f32} : (tensor<?x1x1x?xi64>) -> tensor<?x1x1x?xf32>
  %inv_m = onnx.Sub %onef, %amf : (tensor<f32>, tensor<?x1x1x?xf32>) -> tensor<?x1x1x?xf32>
  %padm = onnx.Mul %inv_m, %min : (tensor<?x1x1x?xf32>, tensor<f32>) -> tensor<?x1x1x?xf32>
  // Fused projection and split.
  %hs = onnx.Shape %h : (tensor<?x?x32xf32>) -> tensor<3xi64>
  %B = onnx.Gather %hs, %c0 : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %Th = onnx.Gather %hs, %c1 : (tensor<3xi64>, tensor<i64>) -> tensor<i64>
  %B1 = onnx.Unsqueeze %B, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %T1 = onnx.Unsqueeze %Th, %a0 : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64>
  %wt = onnx.Transpose %w {perm = array<i64: 1, 0>} : (tensor<96x32xf32>) -> tensor<32x96xf32>
  %qkv0 = onnx.MatMul %h, %wt : (tensor<?x?x32xf32>, tensor<32x96xf32>) -> tensor<?x?x96xf32>
  %qkv = onnx.Add %qkv0, %b : (tensor<?x?x96xf32>, tensor<96xf32>) -> tensor<?x?x96xf32>
  %s:3 = onnx.Split %qkv split %split {axis = 2 : si64} : (tensor<?x?x96xf32>, tensor<3xi64>) -> (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>)
  %tgt = onnx.Concat %B1, %T1, %d4, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q4 = onnx.Reshape %s#0, %tgt : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %s#1, %tgt : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %v4 = onnx.Reshape %s#2, %tgt : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  // RoPE on q: half = ((D + 1) / 2) * 1, end = half * 2.
  %qs4 = onnx.Shape %q4 : (tensor<?x?x4x8xf32>) -> tensor<4xi64>
  %qd = onnx.Gather %qs4, %m1 : (tensor<4xi64>, tensor<1xi64>) -> tensor<1xi64>
  %qd1 = onnx.Add %qd, %a1 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %qh0 = onnx.Div %qd1, %a2 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %qh = onnx.Mul %qh0, %a1 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %qe = onnx.Mul %qh0, %a2 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %qlo = onnx.Slice %q4, %a0, %qh axes %m1 : (tensor<?x?x4x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x4x4xf32>
  %qhi = onnx.Slice %q4, %qh, %qe axes %m1 : (tensor<?x?x4x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x4x4xf32>
  %qng = onnx.Neg %qhi : (tensor<?x?x4x4xf32>) -> tensor<?x?x4x4xf32>
  %qrh = onnx.Concat %qng, %qlo {axis = -1 : si64} : (tensor<?x?x4x4xf32>, tensor<?x?x4x4xf32>) -> tensor<?x?x4x8xf32>
  %qc = onnx.Mul %q4, %cos : (tensor<?x?x4x8xf32>, tensor<1x?x1x8xf32>) -> tensor<?x?x4x8xf32>
  %qsn = onnx.Mul %qrh, %sin : (tensor<?x?x4x8xf32>, tensor<1x?x1x8xf32>) -> tensor<?x?x4x8xf32>
  %qr = onnx.Add %qc, %qsn : (tensor<?x?x4x8xf32>, tensor<?x?x4x8xf32>) -> tensor<?x?x4x8xf32>
  // RoPE on k: half = ((D + 1) / 2) * 1, end = half * 2.
  %ks4 = onnx.Shape %k4 : (tensor<?x?x4x8xf32>) -> tensor<4xi64>
  %kd = onnx.Gather %ks4, %m1 : (tensor<4xi64>, tensor<1xi64>) -> tensor<1xi64>
  %kd1 = onnx.Add %kd, %a1 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %kh0 = onnx.Div %kd1, %a2 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %kh = onnx.Mul %kh0, %a1 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %ke = onnx.Mul %kh0, %a2 : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64>
  %klo = onnx.Slice %k4, %a0, %kh axes %m1 : (tensor<?x?x4x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x4x4xf32>
  %khi = onnx.Slice %k4, %kh, %ke axes %m1 : (tensor<?x?x4x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x4x4xf32>
  %kng = onnx.Neg %khi : (tensor<?x?x4x4xf32>) -> tensor<?x?x4x4xf32>
  %krh = onnx.Concat %kng, %klo {axis = -1 : si64} : (tensor<?x?x4x4xf32>, tensor<?x?x4x4xf32>) -> tensor<?x?x4x8xf32>
  %kc = onnx.Mul %k4, %cos : (tensor<?x?x4x8xf32>, tensor<1x?x1x8xf32>) -> tensor<?x?x4x8xf32>
  %ksn = onnx.Mul %krh, %sin : (tensor<?x?x4x8xf32>, tensor<1x?x1x8xf32>) -> tensor<?x?x4x8xf32>
  %kr = onnx.Add %kc, %ksn : (tensor<?x?x4x8xf32>, tensor<?x?x4x8xf32>) -> tensor<?x?x4x8xf32>
  %qt = onnx.Transpose %qr {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %kr {perm = array<i64: 0, 2, 3, 1>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qt, %kt : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Div %sc, %sqrtd : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  // Causal: Trilu(ones[T, T]) as [1, 1, T, T].
  %TT = onnx.Concat %T1, %T1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
  %ones = onnx.ConstantOfShape %TT {value = dense<true> : tensor<1xi1>} : (tensor<2xi64>) -> tensor<?x?xi1>
  %tril = onnx.Trilu %ones k %c0 {upper = 0 : si64} : (tensor<?x?xi1>, tensor<i64>) -> tensor<?x?xi1>
  %t4s = onnx.Concat %a1, %a1, %T1, %T1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %tril4 = onnx.Reshape %tril, %t4s : (tensor<?x?xi1>, tensor<4xi64>) -> tensor<1x1x?x?xi1>
  %filled = onnx.Where %tril4, %scs, %min : (tensor<1x1x?x?xi1>, tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %filled, %padm : (tensor<?x4x?x?xf32>, tensor<?x1x1x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vt : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %B1, %T1, %d32 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  return %o3 : tensor<?x?x32xf32>
}

// -----

// onnxruntime-genai: GroupQueryAttention on the packed QKV projection with
// its own rotary (cos/sin caches), past and present. The packed linear is
// split into q/k/v linears; positions are what GQA computes from seqlens_k
// and total_sequence_length; no mask operand (GQA reads only lengths).
qwen.store @w "w.qws"
// CHECK-LABEL: func @genai_gqa
// CHECK-SAME: (%[[IDS:[^:]+]]: tensor<?x?xi64> {{.*}}, %[[AM:[^:]+]]: tensor<?x?xi64> {{.*}}, %[[PK:[^:]+]]: tensor<?x2x?x8xf32> {{.*}}, %[[PV:[^:]+]]: tensor<?x2x?x8xf32>
// CHECK-DAG: %[[Q:.*]] = qwen.linear %[[H:[^,]+]], %{{[^,]+}}, %{{[^ ]+}} : (tensor<?x?x32xf32>, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[K:.*]] = qwen.linear %[[H]], %{{[^,]+}}, %{{[^ ]+}} : (tensor<?x?x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<?x?x16xf32>
// CHECK-DAG: %[[V:.*]] = qwen.linear %[[H]], %{{[^,]+}}, %{{[^ ]+}} : (tensor<?x?x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<?x?x16xf32>
// CHECK-DAG: %[[T1:.*]] = onnx.Shape %[[IDS]] {end = 2 : si64, start = 1 : si64}
// CHECK-DAG: %[[FIRST:.*]] = onnx.Equal %[[T1]], %{{.*}} : (tensor<1xi64>, tensor<i64>) -> tensor<1xi1>
// CHECK-DAG: %[[POS:.*]] = onnx.Where %[[FIRST]], %{{.*}}, %{{.*}} : (tensor<1xi1>, tensor<1x?xi64>, tensor<?x?xi64>) -> tensor<?x?xi64>
// CHECK-DAG: %[[QR:.*]] = qwen.rope %[[Q]], %[[POS]] {head_dim = 8 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64}
// CHECK-DAG: %[[KR:.*]] = qwen.rope %[[K]], %[[POS]] {head_dim = 8 : i64, num_heads = 2 : i64, theta = 1.000000e+04 : f64}
// CHECK: %[[O:.*]], %[[PRK:.*]], %[[PRV:.*]] = qwen.attention %[[QR]], %[[KR]], %[[V]] past %[[PK]], %[[PV]] {causal, head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
// CHECK: return %[[O]], %[[PRK]], %[[PRV]]
// CHECK-NOT: GroupQueryAttention
func.func @genai_gqa(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %am: tensor<?x?xi64> {onnx.name = "attention_mask"},
    %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
    %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %w = qwen.weight @w::@qkv : tensor<32x64xf32>
  %b = qwen.weight @w::@qkv_bias : tensor<64xf32>
  %cos0 = onnx.Constant dense<[[1.0, 1.0, 1.0, 1.0], [0.5403022766113281, 0.9950041770935059, 0.9999499917030334, 0.9999995231628418], [-0.416146844625473, 0.9800665974617004, 0.9998000264167786, 0.9999979734420776], [-0.9899924993515015, 0.9553365111351013, 0.9995500445365906, 0.9999955296516418]]> : tensor<4x4xf32>
  %sin = onnx.Constant dense<[[0.0, 0.0, 0.0, 0.0], [0.8414709568023682, 0.0998334139585495, 0.009999833069741726, 0.0009999998146668077], [0.9092974066734314, 0.19866932928562164, 0.019998665899038315, 0.0019999986980110407], [0.14112000167369843, 0.29552021622657776, 0.029995501041412354, 0.0029999956022948027]]> : tensor<4x4xf32>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %cos = onnx.Identity %cos0 : (tensor<4x4xf32>) -> tensor<4x4xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %sum = onnx.ReduceSum %am axes %a1 {keepdims = 0 : si64} : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?xi64>
  %sk0 = onnx.Sub %sum, %a1 : (tensor<?xi64>, tensor<1xi64>) -> tensor<?xi64>
  %sk = onnx.Cast %sk0 {to = i32} : (tensor<?xi64>) -> tensor<?xi32>
  %sam = onnx.Shape %am : (tensor<?x?xi64>) -> tensor<2xi64>
  %tot0 = onnx.Gather %sam, %c1 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %tot = onnx.Cast %tot0 {to = i32} : (tensor<i64>) -> tensor<i32>
  %qkv0 = onnx.MatMul %h, %w : (tensor<?x?x32xf32>, tensor<32x64xf32>) -> tensor<?x?x64xf32>
  %qkv = onnx.Add %qkv0, %b : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  %o, %pko, %pvo = onnx.ms.GroupQueryAttention %qkv past_key %pk past_value %pv seqlens_k %sk total_sequence_length %tot cos_cache %cos sin_cache %sin {do_rotary = 1 : si64, kv_num_heads = 2 : si64, num_heads = 4 : si64, scale = 0.353553385 : f32} : (tensor<?x?x64xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?xi32>, tensor<i32>, tensor<4x4xf32>, tensor<4x4xf32>) -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
  return %o, %pko, %pvo : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// com.microsoft and opset 23 RotaryEmbedding on [B, T, H*D] with position
// ids: theta (and rotary_dim, style) from the caches and attributes.
// CHECK-LABEL: func @rotary_embedding_ops
// CHECK-SAME: (%[[X:[^:]+]]: tensor<?x?x32xf32>, %[[Y:[^:]+]]: tensor<?x?x16xf32>, %[[POS:[^:]+]]: tensor<?x?xi64>
// CHECK: %[[A:.*]] = qwen.rope %[[X]], %[[POS]] {head_dim = 8 : i64, num_heads = 4 : i64, theta = 1.000000e+04 : f64}
// CHECK: %[[B:.*]] = qwen.rope %[[Y]], %[[POS]] {head_dim = 8 : i64, num_heads = 2 : i64, style = #qwen.rope_style<interleaved>, theta = 1.000000e+04 : f64}
// CHECK: %[[C:.*]] = qwen.rope %[[X]], %[[POS]] {head_dim = 16 : i64, num_heads = 2 : i64, rotary_dim = 8 : i64, theta = 1.000000e+04 : f64}
// CHECK: return %[[A]], %[[B]], %[[C]]
func.func @rotary_embedding_ops(%x: tensor<?x?x32xf32>, %y: tensor<?x?x16xf32>,
    %pos: tensor<?x?xi64> {onnx.name = "position_ids"},
    %ids: tensor<?x?xi64> {onnx.name = "input_ids"})
    -> (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x32xf32>) {
  %cos = onnx.Constant dense<[[1.0, 1.0, 1.0, 1.0], [0.5403022766113281, 0.9950041770935059, 0.9999499917030334, 0.9999995231628418], [-0.416146844625473, 0.9800665974617004, 0.9998000264167786, 0.9999979734420776], [-0.9899924993515015, 0.9553365111351013, 0.9995500445365906, 0.9999955296516418]]> : tensor<4x4xf32>
  %sin = onnx.Constant dense<[[0.0, 0.0, 0.0, 0.0], [0.8414709568023682, 0.0998334139585495, 0.009999833069741726, 0.0009999998146668077], [0.9092974066734314, 0.19866932928562164, 0.019998665899038315, 0.0019999986980110407], [0.14112000167369843, 0.29552021622657776, 0.029995501041412354, 0.0029999956022948027]]> : tensor<4x4xf32>
  %a = onnx.ms.RotaryEmbedding %x, %pos, %cos, %sin {num_heads = 4 : si64} : (tensor<?x?x32xf32>, tensor<?x?xi64>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<?x?x32xf32>
  %b = onnx.RotaryEmbedding %y, %cos, %sin position_ids %pos {interleaved = 1 : si64, num_heads = 2 : si64} : (tensor<?x?x16xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
  %c = onnx.RotaryEmbedding %x, %cos, %sin position_ids %pos {num_heads = 2 : si64, rotary_embedding_dim = 8 : si64} : (tensor<?x?x32xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<?x?xi64>) -> tensor<?x?x32xf32>
  return %a, %b, %c : tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x32xf32>
}

// -----

// Opset 23 Attention on [B, T, H*D]: causal without past, and with a past
// when not causal (its causal mask is top-left aligned, qwen.attention's is
// offset by the past: only equal without one).
qwen.store @w "w.qws"
// CHECK-LABEL: func @onnx_attention
// CHECK: %[[A:.*]], %{{.*}}, %{{.*}} = qwen.attention %[[Q:[^,]+]], %[[K:[^,]+]], %[[V:[^ ]+]] {causal, head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
// CHECK: %[[B:.*]], %[[PRK:.*]], %[[PRV:.*]] = qwen.attention %[[Q]], %[[K]], %[[V]] past %arg1, %arg2 {head_dim = 8 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f32}
// CHECK: return %[[A]], %[[B]], %[[PRK]], %[[PRV]]
// CHECK-NOT: onnx.Attention
func.func @onnx_attention(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
    %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %a = onnx.Attention %q, %k, %v {is_causal = 1 : si64, kv_num_heads = 2 : si64, q_num_heads = 4 : si64} : (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x16xf32>) -> tensor<?x?x32xf32>
  %b, %bk, %bv = onnx.Attention %q, %k, %v past %pk, %pv {kv_num_heads = 2 : si64, q_num_heads = 4 : si64, scale = 0.5 : f32} : (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x16xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
  return %a, %b, %bk, %bv : tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// Not RoPE: the inverse frequencies are not a geometric sequence (0.02
// where theta^(-4/8) = 0.01), so no theta describes them; attention then
// sees no head-split view of a [B, T, H*D] tensor either.
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_rope_bad_inv_freq
// CHECK-NOT: qwen.rope
// CHECK-NOT: qwen.attention
// CHECK: onnx.Cos
func.func @not_rope_bad_inv_freq(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.02], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // RoPE: positions Range(0, S) as [1, 1, S].
  %ru = onnx.Unsqueeze %r, %a01 : (tensor<?xi64>, tensor<2xi64>) -> tensor<1x1x?xi64>
  %rf = onnx.Cast %ru {to = f32} : (tensor<1x1x?xi64>) -> tensor<1x1x?xf32>
  %fr = onnx.MatMul %inv, %rf : (tensor<1x4x1xf32>, tensor<1x1x?xf32>) -> tensor<1x4x?xf32>
  %frt = onnx.Transpose %fr {perm = array<i64: 0, 2, 1>} : (tensor<1x4x?xf32>) -> tensor<1x?x4xf32>
  %emb = onnx.Concat %frt, %frt {axis = -1 : si64} : (tensor<1x?x4xf32>, tensor<1x?x4xf32>) -> tensor<1x?x8xf32>
  %cos0 = onnx.Cos %emb : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %sin0 = onnx.Sin %emb : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %cos = onnx.Unsqueeze %cos0, %a1 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %sin = onnx.Unsqueeze %sin0, %a1 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %qc = onnx.Mul %qt, %cos : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %qlo = onnx.Slice %qt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %qhi = onnx.Slice %qt, %d4, %big axes %a3 steps %a1 : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %qng = onnx.Neg %qhi : (tensor<?x4x?x4xf32>) -> tensor<?x4x?x4xf32>
  %qrh = onnx.Concat %qng, %qlo {axis = -1 : si64} : (tensor<?x4x?x4xf32>, tensor<?x4x?x4xf32>) -> tensor<?x4x?x8xf32>
  %qs = onnx.Mul %qrh, %sin : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %qr = onnx.Add %qc, %qs : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %kc = onnx.Mul %kt, %cos : (tensor<?x2x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %klo = onnx.Slice %kt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x2x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x?x4xf32>
  %khi = onnx.Slice %kt, %d4, %big axes %a3 steps %a1 : (tensor<?x2x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x?x4xf32>
  %kng = onnx.Neg %khi : (tensor<?x2x?x4xf32>) -> tensor<?x2x?x4xf32>
  %krh = onnx.Concat %kng, %klo {axis = -1 : si64} : (tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>) -> tensor<?x2x?x8xf32>
  %ks = onnx.Mul %krh, %sin : (tensor<?x2x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %kr = onnx.Add %kc, %ks : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kr, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qr, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// Not RoPE: cos/sin scaled by an attention factor (YaRN-style) that
// qwen.rope has no attribute for.
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_rope_scaled_tables
// CHECK-NOT: qwen.rope
// CHECK: onnx.Cos
func.func @not_rope_scaled_tables(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // RoPE: positions Range(0, S) as [1, 1, S].
  %ru = onnx.Unsqueeze %r, %a01 : (tensor<?xi64>, tensor<2xi64>) -> tensor<1x1x?xi64>
  %rf = onnx.Cast %ru {to = f32} : (tensor<1x1x?xi64>) -> tensor<1x1x?xf32>
  %fr = onnx.MatMul %inv, %rf : (tensor<1x4x1xf32>, tensor<1x1x?xf32>) -> tensor<1x4x?xf32>
  %frt = onnx.Transpose %fr {perm = array<i64: 0, 2, 1>} : (tensor<1x4x?xf32>) -> tensor<1x?x4xf32>
  %emb = onnx.Concat %frt, %frt {axis = -1 : si64} : (tensor<1x?x4xf32>, tensor<1x?x4xf32>) -> tensor<1x?x8xf32>
  %cos0 = onnx.Cos %emb : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %sin0 = onnx.Sin %emb : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %att = onnx.Constant dense<0.5> : tensor<f32>
  %cos1 = onnx.Mul %cos0, %att : (tensor<1x?x8xf32>, tensor<f32>) -> tensor<1x?x8xf32>
  %sin1 = onnx.Mul %sin0, %att : (tensor<1x?x8xf32>, tensor<f32>) -> tensor<1x?x8xf32>
  %cos = onnx.Unsqueeze %cos1, %a1 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %sin = onnx.Unsqueeze %sin1, %a1 : (tensor<1x?x8xf32>, tensor<1xi64>) -> tensor<1x1x?x8xf32>
  %qc = onnx.Mul %qt, %cos : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %qlo = onnx.Slice %qt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %qhi = onnx.Slice %qt, %d4, %big axes %a3 steps %a1 : (tensor<?x4x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x4x?x4xf32>
  %qng = onnx.Neg %qhi : (tensor<?x4x?x4xf32>) -> tensor<?x4x?x4xf32>
  %qrh = onnx.Concat %qng, %qlo {axis = -1 : si64} : (tensor<?x4x?x4xf32>, tensor<?x4x?x4xf32>) -> tensor<?x4x?x8xf32>
  %qs = onnx.Mul %qrh, %sin : (tensor<?x4x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x4x?x8xf32>
  %qr = onnx.Add %qc, %qs : (tensor<?x4x?x8xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %kc = onnx.Mul %kt, %cos : (tensor<?x2x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %klo = onnx.Slice %kt, %a0, %d4 axes %a3 steps %a1 : (tensor<?x2x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x?x4xf32>
  %khi = onnx.Slice %kt, %d4, %big axes %a3 steps %a1 : (tensor<?x2x?x8xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x2x?x4xf32>
  %kng = onnx.Neg %khi : (tensor<?x2x?x4xf32>) -> tensor<?x2x?x4xf32>
  %krh = onnx.Concat %kng, %klo {axis = -1 : si64} : (tensor<?x2x?x4xf32>, tensor<?x2x?x4xf32>) -> tensor<?x2x?x8xf32>
  %ks = onnx.Mul %krh, %sin : (tensor<?x2x?x8xf32>, tensor<1x1x?x8xf32>) -> tensor<?x2x?x8xf32>
  %kr = onnx.Add %kc, %ks : (tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kr, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qr, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// Not causal: a strict Less keeps j < i only (the diagonal is masked).
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_attention_strict_causal
// CHECK-NOT: qwen.attention
// CHECK: onnx.Softmax
func.func @not_attention_strict_causal(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.Less %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qt, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// Not attention: the softmax normalises over the queries (axis 2).
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_attention_softmax_axis
// CHECK-NOT: qwen.attention
// CHECK: onnx.Softmax
func.func @not_attention_softmax_axis(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qt, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z {axis = 2 : si64} : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// Not attention: a -10000 fill does not zero the masked probabilities.
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_attention_weak_fill
// CHECK-NOT: qwen.attention
// CHECK: onnx.Softmax
func.func @not_attention_weak_fill(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-1.000000e+04> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %am {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qt, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// Not attention: the padding mask is read from another input than
// attention_mask, which qwen.attention's mask operand would not be.
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_attention_other_mask
// CHECK-NOT: qwen.attention
// CHECK: onnx.Softmax
func.func @not_attention_other_mask(%ids: tensor<?x?xi64> {onnx.name = "input_ids"}, %am: tensor<?x?xi64> {onnx.name = "attention_mask"}, %other: tensor<?x?xi64> {onnx.name = "other_mask"}) -> tensor<?x?x32xf32> {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %wq = qwen.weight @w::@q : tensor<32x32xf32>
  %wk = qwen.weight @w::@k : tensor<16x32xf32>
  %wv = qwen.weight @w::@v : tensor<16x32xf32>
  %wo = qwen.weight @w::@o : tensor<32x32xf32>
  %c0 = onnx.Constant dense<0> : tensor<i64>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a0 = onnx.Constant dense<0> : tensor<1xi64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %a2 = onnx.Constant dense<2> : tensor<1xi64>
  %a3 = onnx.Constant dense<3> : tensor<1xi64>
  %a01 = onnx.Constant dense<[0, 1]> : tensor<2xi64>
  %m1 = onnx.Constant dense<-1> : tensor<1xi64>
  %col = onnx.Constant dense<[-1, 1]> : tensor<2xi64>
  %d4 = onnx.Constant dense<4> : tensor<1xi64>
  %d8 = onnx.Constant dense<8> : tensor<1xi64>
  %big = onnx.Constant dense<9223372036854775807> : tensor<1xi64>
  %zero = onnx.Constant dense<0.0> : tensor<f32>
  %onef = onnx.Constant dense<1.0> : tensor<f32>
  %fill = onnx.Constant dense<-3.40282347E+38> : tensor<f32>
  %scale = onnx.Constant dense<0.353553385> : tensor<f32>
  %inv = onnx.Constant dense<[[[1.0], [0.1], [0.01], [0.001]]]> : tensor<1x4x1xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %s0 = onnx.Shape %am {end = 1 : si64, start = 0 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %s1 = onnx.Shape %am {end = 2 : si64, start = 1 : si64} : (tensor<?x?xi64>) -> tensor<1xi64>
  %S = onnx.Squeeze %s1 : (tensor<1xi64>) -> tensor<i64>
  %Bs = onnx.Squeeze %s0 : (tensor<1xi64>) -> tensor<i64>
  %r = onnx.Range %c0, %S, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  %rb = onnx.Range %c0, %Bs, %c1 : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  // Mask: causal [S, S] and attention_mask[b, j] through GatherND.
  %rc = onnx.Reshape %r, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %causal = onnx.LessOrEqual %r, %rc : (tensor<?xi64>, tensor<?x1xi64>) -> tensor<?x?xi1>
  %bc = onnx.Reshape %rb, %col {allowzero = 1 : si64} : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x1xi64>
  %mx = onnx.Max %bc, %r : (tensor<?x1xi64>, tensor<?xi64>) -> tensor<?x?xi64>
  %ms = onnx.Shape %mx {start = 0 : si64} : (tensor<?x?xi64>) -> tensor<2xi64>
  %be = onnx.Expand %bc, %ms : (tensor<?x1xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %bu = onnx.Unsqueeze %be, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %je = onnx.Expand %r, %ms : (tensor<?xi64>, tensor<2xi64>) -> tensor<?x?xi64>
  %ju = onnx.Unsqueeze %je, %m1 : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?x?x1xi64>
  %idx = onnx.Concat %bu, %ju {axis = -1 : si64} : (tensor<?x?x1xi64>, tensor<?x?x1xi64>) -> tensor<?x?x2xi64>
  %mb = onnx.Cast %other {to = i1} : (tensor<?x?xi64>) -> tensor<?x?xi1>
  %pad = onnx.GatherND %mb, %idx : (tensor<?x?xi1>, tensor<?x?x2xi64>) -> tensor<?x?xi1>
  %ps = onnx.Concat %s0, %a1, %s1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %pad3 = onnx.Reshape %pad, %ps {allowzero = 1 : si64} : (tensor<?x?xi1>, tensor<3xi64>) -> tensor<?x1x?xi1>
  %keep3 = onnx.And %causal, %pad3 : (tensor<?x?xi1>, tensor<?x1x?xi1>) -> tensor<?x?x?xi1>
  %keep = onnx.Unsqueeze %keep3, %a1 : (tensor<?x?x?xi1>, tensor<1xi64>) -> tensor<?x1x?x?xi1>
  %mask = onnx.Where %keep, %zero, %fill : (tensor<?x1x?x?xi1>, tensor<f32>, tensor<f32>) -> tensor<?x1x?x?xf32>
  // Heads.
  %tgt = onnx.Concat %s0, %s1, %m1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %q = qwen.linear %h, %wq : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  %k = qwen.linear %h, %wk : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %v = qwen.linear %h, %wv : (tensor<?x?x32xf32>, tensor<16x32xf32>) -> tensor<?x?x16xf32>
  %q4 = onnx.Reshape %q, %tgt {allowzero = 1 : si64} : (tensor<?x?x32xf32>, tensor<4xi64>) -> tensor<?x?x4x8xf32>
  %k4 = onnx.Reshape %k, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %v4 = onnx.Reshape %v, %tgt {allowzero = 1 : si64} : (tensor<?x?x16xf32>, tensor<4xi64>) -> tensor<?x?x2x8xf32>
  %qt = onnx.Transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x4x8xf32>) -> tensor<?x4x?x8xf32>
  %kt = onnx.Transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  %vt = onnx.Transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x?x2x8xf32>) -> tensor<?x2x?x8xf32>
  // repeat_kv.
  %e5 = onnx.Concat %s0, %a2, %a2, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<5xi64>
  %r4 = onnx.Concat %s0, %d4, %s1, %d8 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<4xi64>
  %ku = onnx.Unsqueeze %kt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ke = onnx.Expand %ku, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %krep = onnx.Reshape %ke, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %vu = onnx.Unsqueeze %vt, %a2 : (tensor<?x2x?x8xf32>, tensor<1xi64>) -> tensor<?x2x1x?x8xf32>
  %ve = onnx.Expand %vu, %e5 : (tensor<?x2x1x?x8xf32>, tensor<5xi64>) -> tensor<?x2x2x?x8xf32>
  %vrep = onnx.Reshape %ve, %r4 {allowzero = 1 : si64} : (tensor<?x2x2x?x8xf32>, tensor<4xi64>) -> tensor<?x4x?x8xf32>
  %ktr = onnx.Transpose %krep {perm = array<i64: 0, 1, 3, 2>} : (tensor<?x4x?x8xf32>) -> tensor<?x4x8x?xf32>
  %sc = onnx.MatMul %qt, %ktr : (tensor<?x4x?x8xf32>, tensor<?x4x8x?xf32>) -> tensor<?x4x?x?xf32>
  %scs = onnx.Mul %sc, %scale : (tensor<?x4x?x?xf32>, tensor<f32>) -> tensor<?x4x?x?xf32>
  %z = onnx.Add %scs, %mask : (tensor<?x4x?x?xf32>, tensor<?x1x?x?xf32>) -> tensor<?x4x?x?xf32>
  %p = onnx.Softmax %z : (tensor<?x4x?x?xf32>) -> tensor<?x4x?x?xf32>
  %o = onnx.MatMul %p, %vrep : (tensor<?x4x?x?xf32>, tensor<?x4x?x8xf32>) -> tensor<?x4x?x8xf32>
  %ot = onnx.Transpose %o {perm = array<i64: 0, 2, 1, 3>} : (tensor<?x4x?x8xf32>) -> tensor<?x?x4x8xf32>
  %o3s = onnx.Concat %s0, %s1, %m1 {axis = 0 : si64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64>
  %o3 = onnx.Reshape %ot, %o3s {allowzero = 1 : si64} : (tensor<?x?x4x8xf32>, tensor<3xi64>) -> tensor<?x?x32xf32>
  %out = qwen.linear %o3, %wo : (tensor<?x?x32xf32>, tensor<32x32xf32>) -> tensor<?x?x32xf32>
  return %out : tensor<?x?x32xf32>
}

// -----

// GQA left alone: softcap.
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_gqa_softcap
// CHECK-NOT: qwen.attention
// CHECK: onnx.ms.GroupQueryAttention
func.func @not_gqa_softcap(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %am: tensor<?x?xi64> {onnx.name = "attention_mask"},
    %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
    %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %w = qwen.weight @w::@qkv : tensor<32x64xf32>
  %b = qwen.weight @w::@qkv_bias : tensor<64xf32>
  %cos0 = onnx.Constant dense<[[1.0, 1.0, 1.0, 1.0], [0.5403022766113281, 0.9950041770935059, 0.9999499917030334, 0.9999995231628418], [-0.416146844625473, 0.9800665974617004, 0.9998000264167786, 0.9999979734420776], [-0.9899924993515015, 0.9553365111351013, 0.9995500445365906, 0.9999955296516418]]> : tensor<4x4xf32>
  %sin = onnx.Constant dense<[[0.0, 0.0, 0.0, 0.0], [0.8414709568023682, 0.0998334139585495, 0.009999833069741726, 0.0009999998146668077], [0.9092974066734314, 0.19866932928562164, 0.019998665899038315, 0.0019999986980110407], [0.14112000167369843, 0.29552021622657776, 0.029995501041412354, 0.0029999956022948027]]> : tensor<4x4xf32>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %cos = onnx.Identity %cos0 : (tensor<4x4xf32>) -> tensor<4x4xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %sum = onnx.ReduceSum %am axes %a1 {keepdims = 0 : si64} : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?xi64>
  %sk0 = onnx.Sub %sum, %a1 : (tensor<?xi64>, tensor<1xi64>) -> tensor<?xi64>
  %sk = onnx.Cast %sk0 {to = i32} : (tensor<?xi64>) -> tensor<?xi32>
  %sam = onnx.Shape %am : (tensor<?x?xi64>) -> tensor<2xi64>
  %tot0 = onnx.Gather %sam, %c1 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %tot = onnx.Cast %tot0 {to = i32} : (tensor<i64>) -> tensor<i32>
  %qkv0 = onnx.MatMul %h, %w : (tensor<?x?x32xf32>, tensor<32x64xf32>) -> tensor<?x?x64xf32>
  %qkv = onnx.Add %qkv0, %b : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  %o, %pko, %pvo = onnx.ms.GroupQueryAttention %qkv past_key %pk past_value %pv seqlens_k %sk total_sequence_length %tot cos_cache %cos sin_cache %sin {do_rotary = 1 : si64, kv_num_heads = 2 : si64, num_heads = 4 : si64, softcap = 3.0e+01 : f32} : (tensor<?x?x64xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?xi32>, tensor<i32>, tensor<4x4xf32>, tensor<4x4xf32>) -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
  return %o, %pko, %pvo : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// GQA left alone: a cos cache scaled by an attention factor (no theta
// reproduces it).
qwen.store @w "w.qws"
// CHECK-LABEL: func @not_gqa_scaled_cache
// CHECK-NOT: qwen.attention
// CHECK: onnx.ms.GroupQueryAttention
func.func @not_gqa_scaled_cache(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %am: tensor<?x?xi64> {onnx.name = "attention_mask"},
    %pk: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.key"},
    %pv: tensor<?x2x?x8xf32> {onnx.name = "past_key_values.0.value"})
    -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %table = qwen.weight @w::@embed : tensor<256x32xf32>
  %w = qwen.weight @w::@qkv : tensor<32x64xf32>
  %b = qwen.weight @w::@qkv_bias : tensor<64xf32>
  %cos0 = onnx.Constant dense<[[1.0, 1.0, 1.0, 1.0], [0.5403022766113281, 0.9950041770935059, 0.9999499917030334, 0.9999995231628418], [-0.416146844625473, 0.9800665974617004, 0.9998000264167786, 0.9999979734420776], [-0.9899924993515015, 0.9553365111351013, 0.9995500445365906, 0.9999955296516418]]> : tensor<4x4xf32>
  %sin = onnx.Constant dense<[[0.0, 0.0, 0.0, 0.0], [0.8414709568023682, 0.0998334139585495, 0.009999833069741726, 0.0009999998146668077], [0.9092974066734314, 0.19866932928562164, 0.019998665899038315, 0.0019999986980110407], [0.14112000167369843, 0.29552021622657776, 0.029995501041412354, 0.0029999956022948027]]> : tensor<4x4xf32>
  %c1 = onnx.Constant dense<1> : tensor<i64>
  %a1 = onnx.Constant dense<1> : tensor<1xi64>
  %cos = onnx.Constant dense<[[0.9, 0.9, 0.9, 0.9], [0.4862720489501953, 0.8955037593841553, 0.8999549925327301, 0.8999995708465577], [-0.37453216016292573, 0.8820599377155304, 0.8998200237751007, 0.8999981760978699], [-0.8909932494163514, 0.8598028600215912, 0.8995950400829316, 0.8999959766864777]]> : tensor<4x4xf32>
  %h = qwen.embedding %ids, %table : (tensor<?x?xi64>, tensor<256x32xf32>) -> tensor<?x?x32xf32>
  %sum = onnx.ReduceSum %am axes %a1 {keepdims = 0 : si64} : (tensor<?x?xi64>, tensor<1xi64>) -> tensor<?xi64>
  %sk0 = onnx.Sub %sum, %a1 : (tensor<?xi64>, tensor<1xi64>) -> tensor<?xi64>
  %sk = onnx.Cast %sk0 {to = i32} : (tensor<?xi64>) -> tensor<?xi32>
  %sam = onnx.Shape %am : (tensor<?x?xi64>) -> tensor<2xi64>
  %tot0 = onnx.Gather %sam, %c1 : (tensor<2xi64>, tensor<i64>) -> tensor<i64>
  %tot = onnx.Cast %tot0 {to = i32} : (tensor<i64>) -> tensor<i32>
  %qkv0 = onnx.MatMul %h, %w : (tensor<?x?x32xf32>, tensor<32x64xf32>) -> tensor<?x?x64xf32>
  %qkv = onnx.Add %qkv0, %b : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  %o, %pko, %pvo = onnx.ms.GroupQueryAttention %qkv past_key %pk past_value %pv seqlens_k %sk total_sequence_length %tot cos_cache %cos sin_cache %sin {do_rotary = 1 : si64, kv_num_heads = 2 : si64, num_heads = 4 : si64, scale = 0.353553385 : f32} : (tensor<?x?x64xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>, tensor<?xi32>, tensor<i32>, tensor<4x4xf32>, tensor<4x4xf32>) -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
  return %o, %pko, %pvo : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// Opset 23 Attention left alone: causal with a past (top-left aligned), and
// an explicit attn_mask.
// CHECK-LABEL: func @not_onnx_attention
// CHECK-NOT: qwen.attention
// CHECK-COUNT-2: onnx.Attention
func.func @not_onnx_attention(%ids: tensor<?x?xi64> {onnx.name = "input_ids"},
    %q: tensor<2x3x32xf32>, %k: tensor<2x3x16xf32>, %v: tensor<2x3x16xf32>,
    %pk: tensor<2x2x5x8xf32>, %pv: tensor<2x2x5x8xf32>, %m: tensor<3x8xi1>)
    -> (tensor<2x3x32xf32>, tensor<2x3x32xf32>) {
  %a, %ak, %av = onnx.Attention %q, %k, %v past %pk, %pv {is_causal = 1 : si64, kv_num_heads = 2 : si64, q_num_heads = 4 : si64} : (tensor<2x3x32xf32>, tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2x2x5x8xf32>, tensor<2x2x5x8xf32>) -> (tensor<2x3x32xf32>, tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>)
  %b = onnx.Attention %q, %k, %v mask %m {kv_num_heads = 2 : si64, q_num_heads = 4 : si64} : (tensor<2x3x32xf32>, tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<3x8xi1>) -> tensor<2x3x32xf32>
  return %a, %b : tensor<2x3x32xf32>, tensor<2x3x32xf32>
}

// -----

// A packed projection sliced along its features becomes one linear per
// slice (weight rows and bias sliced); any other use keeps it whole.
qwen.store @w "w.qws"
// CHECK-LABEL: func @split_packed_linear
// CHECK-DAG: %[[W:.*]] = qwen.weight @w::@packed : tensor<48x32xf32>
// CHECK-DAG: %[[B:.*]] = qwen.weight @w::@bias : tensor<48xf32>
// CHECK-DAG: %[[W0:.*]] = onnx.Slice %[[W]], %{{.*}} -> tensor<32x32xf32>
// CHECK-DAG: %[[B0:.*]] = onnx.Slice %[[B]], %{{.*}} -> tensor<32xf32>
// CHECK-DAG: %[[W1:.*]] = onnx.Slice %[[W]], %{{.*}} -> tensor<16x32xf32>
// CHECK-DAG: %[[L0:.*]] = qwen.linear %arg0, %[[W0]], %[[B0]] : (tensor<?x?x32xf32>, tensor<32x32xf32>, tensor<32xf32>) -> tensor<?x?x32xf32>
// CHECK-DAG: %[[L1:.*]] = qwen.linear %arg0, %[[W1]], %{{.*}} : (tensor<?x?x32xf32>, tensor<16x32xf32>, tensor<16xf32>) -> tensor<?x?x16xf32>
// CHECK-DAG: %[[KEEP:.*]] = qwen.linear %arg0, %[[W]], %[[B]] : (tensor<?x?x32xf32>, tensor<48x32xf32>, tensor<48xf32>) -> tensor<?x?x48xf32>
// CHECK: return %[[L0]], %[[L1]], %[[KEEP]]
func.func @split_packed_linear(%x: tensor<?x?x32xf32>)
    -> (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x48xf32>) {
  %w = qwen.weight @w::@packed : tensor<48x32xf32>
  %b = qwen.weight @w::@bias : tensor<48xf32>
  %s0 = onnx.Constant dense<0> : tensor<1xi64>
  %s32 = onnx.Constant dense<32> : tensor<1xi64>
  %s48 = onnx.Constant dense<48> : tensor<1xi64>
  %ax = onnx.Constant dense<-1> : tensor<1xi64>
  %l = qwen.linear %x, %w, %b : (tensor<?x?x32xf32>, tensor<48x32xf32>, tensor<48xf32>) -> tensor<?x?x48xf32>
  %a = onnx.Slice %l, %s0, %s32 axes %ax : (tensor<?x?x48xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x32xf32>
  %c = onnx.Slice %l, %s32, %s48 axes %ax : (tensor<?x?x48xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x16xf32>
  %l2 = qwen.linear %x, %w, %b : (tensor<?x?x32xf32>, tensor<48x32xf32>, tensor<48xf32>) -> tensor<?x?x48xf32>
  %d = onnx.Slice %l2, %s0, %s32 axes %ax : (tensor<?x?x48xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<?x?x32xf32>
  %e = onnx.Add %d, %d : (tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  return %a, %c, %l2 : tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x48xf32>
}
