// RUN: qwen-opt %s --qwen-lower-model-to-linalg -split-input-file | FileCheck %s

// In a module lowered for a CUDA target, the normalising generic of an
// RMSNorm over the last dim carries qwen.gpu_kernel = {kind = "rms_norm",
// eps}: --qwen-gpu-fused-kernels fuses it with the sum of squares it reads.
// CHECK-LABEL: func @rms_norm
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-NOT: qwen.gpu_kernel
// CHECK: linalg.generic
// CHECK-SAME: attrs = {qwen.gpu_kernel = {eps = 9.99999997E-7 : f32, kind = "rms_norm"}}
// CHECK: math.rsqrt
module attributes {qwen.gpu_target = "sm_80"} {
func.func @rms_norm(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
}

// -----

// Per head (Qwen3's q / k norms) and on the CPU: no tag.
// CHECK-LABEL: func @rms_norm_per_head
// CHECK-NOT: qwen.gpu_kernel
// CHECK-LABEL: func @rms_norm_cpu
// CHECK-NOT: qwen.gpu_kernel
module attributes {qwen.gpu_target = "sm_80"} {
func.func @rms_norm_per_head(%x: tensor<1x8x64xf32>, %w: tensor<16xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32, per_head} : (tensor<1x8x64xf32>, tensor<16xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
}

// -----

module {
func.func @rms_norm_cpu(%x: tensor<1x8x64xf32>, %w: tensor<64xf32>) -> tensor<1x8x64xf32> {
  %0 = qwen.rms_norm %x, %w {epsilon = 1.0e-06 : f32} : (tensor<1x8x64xf32>, tensor<64xf32>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
}

// -----

// RoPE, half-split over whole heads: tagged {kind = "rope", head_dim}.
// Interleaved pairs or a partial rotary dim are not.
// CHECK-LABEL: func @rope
// CHECK: linalg.generic
// CHECK-SAME: attrs = {qwen.gpu_kernel = {head_dim = 8 : i64, kind = "rope"}}
// CHECK-LABEL: func @rope_interleaved
// CHECK-NOT: qwen.gpu_kernel
// CHECK: return
module attributes {qwen.gpu_target = "sm_80"} {
func.func @rope(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) -> tensor<1x8x64xf32> {
  %0 = qwen.rope %q, %pos {num_heads = 8 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
func.func @rope_interleaved(%q: tensor<1x8x64xf32>, %pos: tensor<1x8xi64>) -> tensor<1x8x64xf32> {
  %0 = qwen.rope %q, %pos {num_heads = 8 : i64, head_dim = 8 : i64, theta = 1.0e+04 : f64, style = #qwen.rope_style<interleaved>} : (tensor<1x8x64xf32>, tensor<1x8xi64>) -> tensor<1x8x64xf32>
  return %0 : tensor<1x8x64xf32>
}
}
