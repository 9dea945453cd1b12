// RUN: qwen-opt %s --qwen-lower-model-to-linalg -split-input-file | FileCheck %s
// RUN: qwen-opt %s --qwen-lower-model-to-linalg --qwen-bufferize --qwen-gpu-fused-kernels -split-input-file | FileCheck %s --check-prefix=KERNEL

// qwen.attention in a module lowered for a CUDA target: the present K / V
// (past then new) as for the reference, then ONE generic over the output
// (b, t, h * D + d) tagged {kind = "attention"} whose body is an online
// softmax over the keys (no [B, H, T, S] scores, no reductions).
// CHECK-LABEL: func @decode
// CHECK: tensor.insert_slice
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME: ins(%arg0, %{{.*}}, %{{.*}} : tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
// CHECK-SAME: attrs = {qwen.gpu_kernel = {causal = true, head_dim = 16 : i64, kind = "attention", mma_prefill = true, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f32}}
// CHECK: scf.for
// CHECK: scf.for
// CHECK: math.exp
// CHECK-NOT: "reduction"
// CHECK: return

// --qwen-gpu-fused-kernels: the scratch of the decode splits, one launch
// whose grid and body take the split-K decode (T <= 8) or the tiled
// prefill (tensor cores: 64 queries per block; K / V tiles of 32 x (16 + 4)
// floats), then the combine of the splits.
// KERNEL-LABEL: func @decode
// KERNEL: %[[T:.*]] = memref.dim %arg0, %c1
// KERNEL: %[[DEC:.*]] = arith.cmpi ule, %[[T]], %c8
// KERNEL: %[[ACC:.*]] = memref.alloc(%{{.*}}) : memref<?x16xf32>
// KERNEL: %[[ML:.*]] = memref.alloc(%{{.*}}) : memref<?x2xf32>
// KERNEL: %[[QT:.*]] = arith.ceildivui %[[T]], %c64
// KERNEL: gpu.launch {{.*}} threads({{.*}}) in ({{.*}} = %c128, {{.*}}) workgroup(%[[SM:.*]] : memref<1280xf32, #gpu.address_space<workgroup>>)
// KERNEL: %[[KDEC:.*]] = arith.cmpi ule, %[[T]], %c8
// KERNEL: scf.if %[[KDEC]] {
// Decode: a lane's features of q, of the K and V rows of a key.
// KERNEL: vector.load %arg0{{.*}} : memref<1x1x64xf32>, vector<1xf32>
// KERNEL: scf.for
// KERNEL: vector.load %{{.*}} : memref<1x2x8x16xf32>, vector<1xf32>
// KERNEL: vector.load %{{.*}} : memref<1x2x8x16xf32>, vector<1xf32>
// KERNEL: gpu.shuffle xor
// KERNEL: math.exp
// The warps' states merge through shared memory.
// KERNEL: memref.store %{{.*}}, %[[SM]]
// KERNEL: gpu.barrier
// KERNEL: memref.load %{{.*}}[[SM]]
// KERNEL: vector.store %{{.*}}, %[[ACC]]
// KERNEL: memref.store %{{.*}}, %[[ML]]
// KERNEL: } else {
// Prefill: Q's A fragments in f16, K and V tiles to shared memory between
// barriers, S = Q K^T on tensor cores (B = K rows as f16 pairs), the row
// max and sum over the quad (shuffles xor 1, 2), O += P V on tensor cores.
// KERNEL-COUNT-4: arith.truncf {{.*}} : vector<2xf32> to vector<2xf16>
// KERNEL: scf.for
// KERNEL: gpu.barrier
// KERNEL: vector.load {{.*}} {alignment = 16 : i64} : memref<1x2x8x16xf32>, vector<4xf32>
// KERNEL: vector.store {{.*}}, %[[SM]]{{.*}} {alignment = 16 : i64}
// KERNEL: gpu.barrier
// KERNEL: vector.load %[[SM]]{{.*}} {alignment = 8 : i64} : memref<1280xf32, #gpu.address_space<workgroup>>, vector<2xf32>
// KERNEL: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// KERNEL: gpu.shuffle xor %{{.*}}, %c1_i32
// KERNEL: gpu.shuffle xor %{{.*}}, %c2_i32
// KERNEL: math.exp
// KERNEL: nvvm.mma.sync
// KERNEL: memref.store %{{.*}}, %{{.*}} : memref<1x1x64xf32>
// KERNEL: gpu.launch
// KERNEL: %[[CDEC:.*]] = arith.cmpi ule, %[[T]], %c8
// KERNEL: scf.if %[[CDEC]] {
// KERNEL: memref.load %[[ML]]
// KERNEL: vector.load %[[ACC]]
// KERNEL: vector.store %{{.*}}, %{{.*}} : memref<1x1x64xf32>, vector<1xf32>
// KERNEL: memref.dealloc %[[ACC]]
// KERNEL: memref.dealloc %[[ML]]
// KERNEL-NOT: qwen.gpu_kernel
// KERNEL: return
module attributes {qwen.gpu_target = "sm_80"} {
func.func @decode(%q: tensor<1x1x64xf32>, %k: tensor<1x1x32xf32>, %v: tensor<1x1x32xf32>, %pk: tensor<1x2x7x16xf32>, %pv: tensor<1x2x7x16xf32>) -> (tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v past %pk, %pv {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal} : (tensor<1x1x64xf32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>, tensor<1x2x7x16xf32>, tensor<1x2x7x16xf32>) -> (tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return %o, %pk1, %pv1 : tensor<1x1x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>
}
}

// -----

// A 7B-like shape (28 query heads on 4 kv heads, D = 128), dynamic batch,
// tokens and past, a padding mask: the mask is an operand; a lane holds 4
// features (128-bit loads); a decode block keeps the 7 heads of its group.
// CHECK-LABEL: func @gqa_mask
// CHECK: linalg.generic {{.*}} ins(%arg0, %{{.*}}, %{{.*}}, %arg5 : tensor<?x?x3584xf32>, tensor<?x4x?x128xf32>, tensor<?x4x?x128xf32>, tensor<?x?xi64>)
// CHECK-SAME: kind = "attention", mma_prefill = true, num_heads = 28 : i64, num_kv_heads = 4 : i64, scale = 0.0883883461 : f32
// KERNEL-LABEL: func @gqa_mask
// KERNEL: memref.alloc(%{{.*}}) : memref<?x128xf32>
// KERNEL: gpu.launch {{.*}} workgroup(%{{.*}} : memref<8448xf32, #gpu.address_space<workgroup>>)
// KERNEL-COUNT-7: vector.load %arg0{{.*}} {alignment = 16 : i64} : memref<?x?x3584xf32>, vector<4xf32>
// KERNEL: scf.for
// KERNEL: memref.load %arg5
// KERNEL: } else {
// KERNEL: memref.load %arg5
module attributes {qwen.gpu_target = "sm_90"} {
func.func @gqa_mask(%q: tensor<?x?x3584xf32>, %k: tensor<?x?x512xf32>, %v: tensor<?x?x512xf32>, %pk: tensor<?x4x?x128xf32>, %pv: tensor<?x4x?x128xf32>, %m: tensor<?x?xi64>) -> (tensor<?x?x3584xf32>, tensor<?x4x?x128xf32>, tensor<?x4x?x128xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v past %pk, %pv mask %m {num_heads = 28 : i64, num_kv_heads = 4 : i64, head_dim = 128 : i64, causal} : (tensor<?x?x3584xf32>, tensor<?x?x512xf32>, tensor<?x?x512xf32>, tensor<?x4x?x128xf32>, tensor<?x4x?x128xf32>, tensor<?x?xi64>) -> (tensor<?x?x3584xf32>, tensor<?x4x?x128xf32>, tensor<?x4x?x128xf32>)
  return %o, %pk1, %pv1 : tensor<?x?x3584xf32>, tensor<?x4x?x128xf32>, tensor<?x4x?x128xf32>
}
}

// -----

// qwen.quant_kernel = {gpu_attention_mma = false} (QWEN_QUANT_KERNEL=
// gpu_attention_mma=0): the prefill on CUDA cores, 16 queries per block:
// K (rows padded to 17 floats) and V tiles and the queries in shared
// memory, a lane per key, max and sum across the warp, the probabilities
// broadcast by index shuffles.
// CHECK-LABEL: func @prefill_simt
// CHECK: mma_prefill = false
// KERNEL-LABEL: func @prefill_simt
// KERNEL: %[[T:.*]] = memref.dim %arg0, %c1
// KERNEL: arith.ceildivui %[[T]], %c16
// KERNEL: gpu.launch {{.*}} workgroup(%[[SM:.*]] : memref<1312xf32, #gpu.address_space<workgroup>>)
// KERNEL: } else {
// KERNEL: vector.load %arg0{{.*}} : memref<1x20x64xf32>, vector<4xf32>
// KERNEL: scf.for
// KERNEL: gpu.barrier
// KERNEL: vector.load {{.*}} {alignment = 16 : i64} : memref<1x2x20x16xf32>, vector<4xf32>
// KERNEL: gpu.barrier
// KERNEL: gpu.shuffle xor
// KERNEL: arith.maximumf
// KERNEL: gpu.shuffle idx
// KERNEL: memref.store %{{.*}}, %{{.*}} : memref<1x20x64xf32>
// KERNEL-NOT: nvvm.mma.sync
// KERNEL: return
module attributes {qwen.gpu_target = "sm_80", qwen.quant_kernel = {gpu_attention_mma = false}} {
func.func @prefill_simt(%q: tensor<1x20x64xf32>, %k: tensor<1x20x32xf32>, %v: tensor<1x20x32xf32>) -> (tensor<1x20x64xf32>, tensor<1x2x20x16xf32>, tensor<1x2x20x16xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal} : (tensor<1x20x64xf32>, tensor<1x20x32xf32>, tensor<1x20x32xf32>) -> (tensor<1x20x64xf32>, tensor<1x2x20x16xf32>, tensor<1x2x20x16xf32>)
  return %o, %pk1, %pv1 : tensor<1x20x64xf32>, tensor<1x2x20x16xf32>, tensor<1x2x20x16xf32>
}
}

// -----

// A head dim that is not a multiple of 16 (20): the prefill on CUDA cores.
// CHECK-LABEL: func @d20
// CHECK: head_dim = 20 : i64, kind = "attention", mma_prefill = false
module attributes {qwen.gpu_target = "sm_80"} {
func.func @d20(%q: tensor<1x3x80xf32>, %k: tensor<1x3x40xf32>, %v: tensor<1x3x40xf32>) -> (tensor<1x3x80xf32>, tensor<1x2x3x20xf32>, tensor<1x2x3x20xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 20 : i64, causal} : (tensor<1x3x80xf32>, tensor<1x3x40xf32>, tensor<1x3x40xf32>) -> (tensor<1x3x80xf32>, tensor<1x2x3x20xf32>, tensor<1x2x3x20xf32>)
  return %o, %pk1, %pv1 : tensor<1x3x80xf32>, tensor<1x2x3x20xf32>, tensor<1x2x3x20xf32>
}
}

// -----

// qwen.quant_kernel = {gpu_attention = false} (QWEN_QUANT_KERNEL=
// gpu_attention=0) keeps the reference: scores, row max and sum as
// reductions, no tag; so does a head dim the kernels do not take (not a
// multiple of 4), and the CPU.
// CHECK-LABEL: func @generic_path
// CHECK-NOT: qwen.gpu_kernel
// CHECK: iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK-NOT: qwen.gpu_kernel
// CHECK: return
// KERNEL-LABEL: func @generic_path
// KERNEL-NOT: workgroup
// KERNEL: return
module attributes {qwen.gpu_target = "sm_80", qwen.quant_kernel = {gpu_attention = false}} {
func.func @generic_path(%q: tensor<1x3x64xf32>, %k: tensor<1x3x32xf32>, %v: tensor<1x3x32xf32>) -> (tensor<1x3x64xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal} : (tensor<1x3x64xf32>, tensor<1x3x32xf32>, tensor<1x3x32xf32>) -> (tensor<1x3x64xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>)
  return %o, %pk1, %pv1 : tensor<1x3x64xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>
}
}

// -----

// CHECK-LABEL: func @odd_head_dim
// CHECK-NOT: qwen.gpu_kernel
// CHECK: "reduction"
// CHECK-NOT: qwen.gpu_kernel
// CHECK: return
module attributes {qwen.gpu_target = "sm_80"} {
func.func @odd_head_dim(%q: tensor<1x3x24xf32>, %k: tensor<1x3x12xf32>, %v: tensor<1x3x12xf32>) -> (tensor<1x3x24xf32>, tensor<1x2x3x6xf32>, tensor<1x2x3x6xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 6 : i64, causal} : (tensor<1x3x24xf32>, tensor<1x3x12xf32>, tensor<1x3x12xf32>) -> (tensor<1x3x24xf32>, tensor<1x2x3x6xf32>, tensor<1x2x3x6xf32>)
  return %o, %pk1, %pv1 : tensor<1x3x24xf32>, tensor<1x2x3x6xf32>, tensor<1x2x3x6xf32>
}
}

// -----

// CHECK-LABEL: func @cpu
// CHECK-NOT: qwen.gpu_kernel
// CHECK: return
module {
func.func @cpu(%q: tensor<1x3x64xf32>, %k: tensor<1x3x32xf32>, %v: tensor<1x3x32xf32>) -> (tensor<1x3x64xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>) {
  %o, %pk1, %pv1 = qwen.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, causal} : (tensor<1x3x64xf32>, tensor<1x3x32xf32>, tensor<1x3x32xf32>) -> (tensor<1x3x64xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>)
  return %o, %pk1, %pv1 : tensor<1x3x64xf32>, tensor<1x2x3x16xf32>, tensor<1x2x3x16xf32>
}
}
