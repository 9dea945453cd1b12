// RUN: qwen-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'qwen.store' op path must not be empty}}
qwen.store @w ""

// -----

func.func @store_outside_module() {
  // expected-error @+1 {{'qwen.store' op expects parent op 'builtin.module'}}
  "qwen.store"() {sym_name = "w", path = "x.qws"} : () -> ()
  return
}

// -----

func.func @weight_unknown_store() {
  // expected-error @+1 {{'qwen.weight' op 'nowhere' does not name a qwen.store}}
  %0 = qwen.weight @nowhere::@x : tensor<4xf32>
  return
}

// -----

qwen.store @w "m.qws"
func.func @weight_flat_ref() {
  // expected-error @+1 {{'qwen.weight' op weight reference @w must be @store::@entry}}
  %0 = qwen.weight @w : tensor<4xf32>
  return
}

// -----

func.func @not_a_store() {
  return
}
func.func @weight_ref_to_func() {
  // expected-error @+1 {{'qwen.weight' op 'not_a_store' does not name a qwen.store}}
  %0 = qwen.weight @not_a_store::@x : tensor<4xf32>
  return
}

// -----

qwen.store @w "m.qws"
func.func @weight_dynamic() {
  // expected-error @+1 {{'qwen.weight' op weights must have a static shape}}
  %0 = qwen.weight @w::@x : tensor<?xf32>
  return
}

// -----

func.func @embedding_table_rank(%ids: tensor<1x8xi64>, %t: tensor<256xf32>) {
  // expected-error @+1 {{'qwen.embedding' op table must be 2-D [vocab, hidden]}}
  %0 = qwen.embedding %ids, %t : (tensor<1x8xi64>, tensor<256xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @embedding_shape(%ids: tensor<1x8xi64>, %t: tensor<256x64xf32>) {
  // expected-error @+1 {{'qwen.embedding' op result has shape [1, 8, 32], expected [1, 8, 64]}}
  %0 = qwen.embedding %ids, %t : (tensor<1x8xi64>, tensor<256x64xf32>) -> tensor<1x8x32xf32>
  return
}

// -----

func.func @embedding_float_ids(%ids: tensor<1x8xf32>, %t: tensor<256x64xf32>) {
  // expected-error @+1 {{'qwen.embedding' op operand #0 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = qwen.embedding %ids, %t : (tensor<1x8xf32>, tensor<256x64xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'qwen.rms_norm' op epsilon must be positive}}
  %0 = qwen.rms_norm %x, %w {epsilon = 0.0 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<1x8x64xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'qwen.rms_norm' op weight has 16 entries for 64 features (use per_head for a per-head norm)}}
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<16xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @rms_norm_per_head(%x: tensor<1x8x64xf32>, %w: tensor<24xf32>) {
  // expected-error @+1 {{'qwen.rms_norm' op per_head weight size 24 does not divide 64 features}}
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-6 : f32, per_head} : (tensor<1x8x64xf32>, tensor<24xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @rms_norm_result(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'qwen.rms_norm' op result type must equal the input type}}
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-6 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf16>
  return
}

// -----

func.func @linear_in_features(%x: tensor<1x8x32xf32>, %w: tensor<96x64xf32>) {
  // expected-error @+1 {{'qwen.linear' op input features (32) differ from weight in_features (64)}}
  %0 = qwen.linear %x, %w : (tensor<1x8x32xf32>, tensor<96x64xf32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<1x8x64xf32>, %w: tensor<96x64xf32>) {
  // expected-error @+1 {{'qwen.linear' op result has shape [1, 8, 64], expected [1, 8, 96]}}
  %0 = qwen.linear %x, %w : (tensor<1x8x64xf32>, tensor<96x64xf32>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<1x8x64xf32>, %w: tensor<96x64xf32>, %b: tensor<64xf32>) {
  // expected-error @+1 {{'qwen.linear' op bias has shape [64], expected [96]}}
  %0 = qwen.linear %x, %w, %b : (tensor<1x8x64xf32>, tensor<96x64xf32>, tensor<64xf32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'qwen.linear' op weight must be 2-D [out, in], got [64]}}
  %0 = qwen.linear %x, %w : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @linear_types(%x: tensor<1x8x64xf16>, %w: tensor<96x64xf32>) {
  // expected-error @+1 {{'qwen.linear' op input, weight and result element types differ}}
  %0 = qwen.linear %x, %w : (tensor<1x8x64xf16>, tensor<96x64xf32>) -> tensor<1x8x96xf32>
  return
}

// -----

func.func @rope_features(%q: tensor<1x8x60xf32>, %pos: tensor<1x8xi64>) {
  // expected-error @+1 {{'qwen.rope' op input features (60) != num_heads*head_dim (64)}}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e6 : f64} : (tensor<1x8x60xf32>, tensor<1x8xi64>) -> tensor<1x8x60xf32>
  return
}

// -----

func.func @rope_rotary_dim(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) {
  // expected-error @+1 {{'qwen.rope' op rotary_dim 20 must be even and in (0, head_dim=16]}}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e6 : f64, rotary_dim = 20 : i64} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @rope_odd_head_dim(%q: tensor<1x8x60xf32>, %pos: tensor<1x8xi64>) {
  // expected-error @+1 {{'qwen.rope' op num_heads must be positive and head_dim positive and even}}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 15 : i64, theta = 1.0e6 : f64} : (tensor<1x8x60xf32>, tensor<1x8xi64>) -> tensor<1x8x60xf32>
  return
}

// -----

func.func @rope_theta(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) {
  // expected-error @+1 {{'qwen.rope' op theta must be positive}}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = -1.0 : f64} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @rope_positions(%q: tensor<1x8x64xf32>, %pos: tensor<1x7xi64>) {
  // expected-error @+1 {{'qwen.rope' op positions has shape [1, 7], expected [1, 8]}}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e6 : f64} : (tensor<1x8x64xf32>, tensor<1x7xi64>) -> tensor<1x8x64xf32>
  return
}

// -----

func.func @attention_gqa(%q: tensor<1x8x64xf32>, %k: tensor<1x8x48xf32>) {
  // expected-error @+1 {{'qwen.attention' op num_heads (4) must be a positive multiple of num_kv_heads (3)}}
  %0:3 = qwen.attention %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 3 : i64, head_dim = 16 : i64}
      : (tensor<1x8x64xf32>, tensor<1x8x48xf32>, tensor<1x8x48xf32>) -> (tensor<1x8x64xf32>, tensor<1x3x8x16xf32>, tensor<1x3x8x16xf32>)
  return
}

// -----

func.func @attention_key(%q: tensor<1x8x64xf32>, %k: tensor<1x8x64xf32>) {
  // expected-error @+1 {{'qwen.attention' op key has shape [1, 8, 64], expected [1, 8, 32]}}
  %0:3 = qwen.attention %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64}
      : (tensor<1x8x64xf32>, tensor<1x8x64xf32>, tensor<1x8x64xf32>) -> (tensor<1x8x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

func.func @attention_present(%q: tensor<1x8x64xf32>, %k: tensor<1x8x32xf32>, %pk: tensor<1x2x5x16xf32>) {
  // expected-error @+1 {{'qwen.attention' op present_key has shape [1, 2, 8, 16], expected [1, 2, 13, 16]}}
  %0:3 = qwen.attention %q, %k, %k past %pk, %pk {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64}
      : (tensor<1x8x64xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<1x2x5x16xf32>, tensor<1x2x5x16xf32>)
      -> (tensor<1x8x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

func.func @attention_past_rank(%q: tensor<1x8x64xf32>, %k: tensor<1x8x32xf32>, %pk: tensor<2x5x16xf32>) {
  // expected-error @+1 {{'qwen.attention' op past_key must be [batch, num_kv_heads, past, head_dim]}}
  %0:3 = qwen.attention %q, %k, %k past %pk, %pk {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64}
      : (tensor<1x8x64xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<2x5x16xf32>, tensor<2x5x16xf32>)
      -> (tensor<1x8x64xf32>, tensor<1x2x13x16xf32>, tensor<1x2x13x16xf32>)
  return
}

// -----

func.func @attention_mask(%q: tensor<1x8x64xf32>, %k: tensor<1x8x32xf32>, %m: tensor<1x9xi64>) {
  // expected-error @+1 {{'qwen.attention' op mask has shape [1, 9], expected [1, 8]}}
  %0:3 = qwen.attention %q, %k, %k mask %m {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64}
      : (tensor<1x8x64xf32>, tensor<1x8x32xf32>, tensor<1x8x32xf32>, tensor<1x9xi64>) -> (tensor<1x8x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

func.func @silu_mul_types(%g: tensor<1x8x128xf32>, %u: tensor<1x8x64xf32>) {
  // expected-error @+1 {{'qwen.silu_mul' op requires the same type for all operands and results}}
  %0 = "qwen.silu_mul"(%g, %u) : (tensor<1x8x128xf32>, tensor<1x8x64xf32>) -> tensor<1x8x128xf32>
  return
}

// -----

func.func @logits_vocab(%h: tensor<1x8x64xf32>, %t: tensor<256x64xf32>) {
  // expected-error @+1 {{'qwen.logits' op result has shape [1, 8, 128], expected [1, 8, 256]}}
  %0 = qwen.logits %h, %t : (tensor<1x8x64xf32>, tensor<256x64xf32>) -> tensor<1x8x128xf32>
  return
}

// -----

func.func @rope_style_bad(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) {
  // expected-error @+2 {{expected ::qwen::RoPEStyle to be one of: half, interleaved}}
  // expected-error @+1 {{failed to parse Qwen_RoPEStyleAttr parameter 'value'}}
  %0 = qwen.rope %q, %pos {num_heads = 4 : i64, head_dim = 16 : i64, theta = 1.0e6 : f64, style = #qwen.rope_style<neox>} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return
}
