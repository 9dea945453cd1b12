// RUN: %python %S/Inputs/make_store.py quant %t.qws
// RUN: sed 's|STORE|%t.qws|' %s | qwen-opt --qwen-lower-model-to-linalg -split-input-file | FileCheck %s

// qquant.linear on an i4 symmetric group-32 weight: the components become
// qwen.weight ops (f16 scales as stored) and the fused weight-only kernel
// (QuantKernels.cpp) reads the packed bytes in an scf.forall over tiles of 4
// output channels: nibbles unpacked in vector registers (sign-extended bytes,
// << 28 for the low nibble, & -16 for the high one), converted, times the
// group's scale, FMA with the activations; no f32 [96, 64] weight.
// CHECK-LABEL: func @linear_i4_sym
// CHECK-DAG: qwen.weight @q::@sym.codes : tensor<96x32xui8>
// CHECK-DAG: qwen.weight @q::@sym.scales : tensor<96x2xf16>
// CHECK-NOT: tensor<96x64xf32>
// CHECK: scf.forall (%{{.*}}) in (24)
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK: vector.transfer_read {{.*}} : tensor<96x32xui8>, vector<16xui8>
// CHECK: arith.extsi %{{.*}} : vector<16xi8> to vector<16xi32>
// CHECK: arith.shli
// CHECK: arith.andi
// CHECK: vector.fma
// CHECK: vector.reduction <add>
// CHECK-NOT: tensor<96x64xf32>
// CHECK-NOT: qquant.
module {
  qwen.store @q "STORE"
  func.func @linear_i4_sym(%x: tensor<?x64xf32>) -> tensor<?x96xf32> {
    %w = qquant.weight @q::@sym : !qquant.weight<96x64xf32, i4, symmetric, group = 32>
    %y = qquant.linear %x, %w : (tensor<?x64xf32>, !qquant.weight<96x64xf32, i4, symmetric, group = 32>) -> tensor<?x96xf32>
    return %y : tensor<?x96xf32>
  }
}

// -----

// Asymmetric u4 per channel: the zero point is read from .zeros; embedding
// dequantizes only the rows it gathers; dequantize_weight the whole weight.
// CHECK-LABEL: func @asym_channel
// CHECK-DAG: qwen.weight @q::@asym.zeros : tensor<96x1xui8>
// CHECK: arith.extui
// CHECK: arith.subi
// CHECK-NOT: qquant.
module {
  qwen.store @q "STORE"
  func.func @asym_channel(%ids: tensor<1x3xi64>) -> (tensor<1x3x64xf32>, tensor<96x64xf32>) {
    %w = qquant.weight @q::@asym : !qquant.weight<96x64xf32, ui4, asymmetric, channel>
    %e = qquant.embedding %ids, %w : (tensor<1x3xi64>, !qquant.weight<96x64xf32, ui4, asymmetric, channel>) -> tensor<1x3x64xf32>
    %d = qquant.dequantize_weight %w : !qquant.weight<96x64xf32, ui4, asymmetric, channel> -> tensor<96x64xf32>
    return %e, %d : tensor<1x3x64xf32>, tensor<96x64xf32>
  }
}

// -----

// Codebook schemes (--qwen-share-weights) lower to a table lookup: the
// unpacked index selects a centroid of the [books, 2^bits] codebook
// (numerics: codebook-lower-qquant.test).
// CHECK-LABEL: func @codebook_left
// CHECK-DAG: qwen.weight @q::@cb.codes : tensor<96x24xui8>
// CHECK-DAG: %[[B:.*]] = qwen.weight @q::@cb.codebook : tensor<1x8xf32>
// CHECK: linalg.generic
// CHECK: tensor.extract %[[B]]
// CHECK-NOT: qquant.
module {
  qwen.store @q "STORE"
  func.func @codebook_left() -> tensor<96x64xf32> {
    %w = qquant.weight @q::@cb : !qquant.weight<96x64xf32, codebook 3, tensor>
    %d = qquant.dequantize_weight %w : !qquant.weight<96x64xf32, codebook 3, tensor> -> tensor<96x64xf32>
    return %d : tensor<96x64xf32>
  }
}
