// RUN: not qwen-opt %s --qwen-gpu-fused-kernels=gemm=fast 2>&1 | FileCheck %s

// The gemm option names the prefill GEMM of the fused linears: one error
// naming the bad value, no output.
// CHECK: error: --qwen-gpu-fused-kernels: gemm='fast' is not a GEMM kind (expected 'tiled' or 'direct')
func.func @f() {
  return
}
