// RUN: qwen-opt %s -split-input-file | qwen-opt -split-input-file | FileCheck %s

// Round trip of every scheme form, !qquant.weight, #qquant.act, #qquant.stats
// and #qquant.decision.

// CHECK-LABEL: func @schemes
// CHECK-SAME: !qquant.weight<96x64xf32, i4, symmetric, group = 32>
// CHECK-SAME: !qquant.weight<96x64xf32, ui4, asymmetric, group = 64>
// CHECK-SAME: !qquant.weight<96x128xf32, ui8, asymmetric, channel>
// CHECK-SAME: !qquant.weight<96x128xf32, i8, symmetric, tensor>
// CHECK-SAME: !qquant.weight<96x128xf32, i3, symmetric, group = 128>
// CHECK-SAME: !qquant.weight<96x64xf32, i2, asymmetric, group = 64>
// CHECK-SAME: !qquant.weight<96x64xf32, codebook 4, channel>
// CHECK-SAME: !qquant.weight<96x64xf32, codebook 3, group = 32>
// CHECK-SAME: !qquant.weight<96x64xf32, log2 i4, channel>
// CHECK-SAME: !qquant.weight<96x64xf32, i4, symmetric, group = 32, sparsity = 2:4>
// CHECK-SAME: !qquant.weight<96x64xbf16, i8, symmetric, channel, sparsity = unstructured>
func.func @schemes(
    %a: !qquant.weight<96x64xf32, i4, symmetric, group = 32>,
    %b: !qquant.weight<96x64xf32, ui4, asymmetric, group = 64>,
    %c: !qquant.weight<96x128xf32, ui8, asymmetric, channel>,
    %d: !qquant.weight<96x128xf32, i8, tensor>,
    %e: !qquant.weight<96x128xf32, si3, group = 128>,
    %f: !qquant.weight<96x64xf32, i2, asymmetric, group = 64>,
    %g: !qquant.weight<96x64xf32, codebook 4, channel>,
    %h: !qquant.weight<96x64xf32, codebook 3, group = 32>,
    %i: !qquant.weight<96x64xf32, log2 i4, channel>,
    %j: !qquant.weight<96x64xf32, i4, symmetric, group = 32, sparsity = 2:4>,
    %k: !qquant.weight<96x64xbf16, i8, channel, sparsity = unstructured>) {
  return
}

// -----

// CHECK-LABEL: func @scheme_attr
// CHECK: some.scheme = #qquant.scheme<ui4, asymmetric, group = 128>
func.func @scheme_attr() attributes {some.scheme = #qquant.scheme<ui4, asymmetric, group = 128>} {
  return
}

// -----

// CHECK-LABEL: func @activations
func.func @activations() attributes {
  // CHECK-SAME: a = #qquant.act<static : !quant.uniform<i8:f32, 2.350000e-02:-3>>
  a = #qquant.act<static : !quant.uniform<i8:f32, 0.0235:-3>>,
  // CHECK-SAME: b = #qquant.act<dynamic, i8, per_token>
  b = #qquant.act<dynamic, i8, per_token>,
  // CHECK-SAME: c = #qquant.act<dynamic, i4, per_tensor>
  c = #qquant.act<dynamic, i4, per_tensor>} {
  return
}

// -----

// CHECK-LABEL: func @stats
// CHECK: qquant.stats = #qquant.stats<count = 4096, min = -3.500000e+00, max = 4.250000e+00, absmax_p9999 = 3.900000e+00, clip_kl = 3.100000e+00, clip_mse = 3.300000e+00, channels = @calib::@l0.in.absmax, histogram = @calib::@l0.in.hist, moment2 = @calib::@l0.in.xtx>
func.func @stats(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.negf %x {qquant.stats = #qquant.stats<count = 4096, min = -3.5, max = 4.25, absmax_p9999 = 3.9,
        clip_kl = 3.1, clip_mse = 3.3, channels = @calib::@"l0.in.absmax",
        histogram = @calib::@"l0.in.hist", moment2 = @calib::@"l0.in.xtx">} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func @stats_minimal
// CHECK: #qquant.stats<count = 10, min = 0.000000e+00, max = 1.000000e+00>
func.func @stats_minimal() attributes {s = #qquant.stats<count = 10, min = 0.0, max = 1.0>} {
  return
}

// -----

// CHECK-LABEL: func @decision
func.func @decision(%x: tensor<1x8x64xf32>, %w: tensor<96x64xf32>) -> tensor<1x8x96xf32> {
  // CHECK: qwen.linear %{{.*}}, %{{.*}} {qquant.decision = #qquant.decision<scheme = <i4, symmetric, group = 32>, reason = budget, loss = 1.200000e-03, budget = "avg-bits=4.5">}
  %0 = qwen.linear %x, %w {qquant.decision = #qquant.decision<scheme = #qquant.scheme<i4, symmetric, group = 32>,
                                                              reason = budget, loss = 1.2e-3, budget = "avg-bits=4.5">}
      : (tensor<1x8x64xf32>, tensor<96x64xf32>) -> tensor<1x8x96xf32>
  // CHECK: qwen.linear %{{.*}}, %{{.*}} {qquant.decision = #qquant.decision<scheme = <i8, symmetric, channel>, reason = pinned>}
  %1 = qwen.linear %x, %w {qquant.decision = #qquant.decision<scheme = #qquant.scheme<i8, symmetric, channel>, reason = pinned>}
      : (tensor<1x8x64xf32>, tensor<96x64xf32>) -> tensor<1x8x96xf32>
  return %0 : tensor<1x8x96xf32>
}
