// RUN: qwen-opt %s --qwen-gpu-fused-kernels -split-input-file | FileCheck %s --check-prefixes=CHECK,TILED
// RUN: qwen-opt %s --qwen-gpu-fused-kernels=gemm=direct -split-input-file | FileCheck %s --check-prefixes=CHECK,DIRECT

// A weight-only linear tagged by --qwen-lower-model-to-linalg (4-bit codes,
// groups of 32): one launch of 4-warp blocks whose grid and body pick the
// GEMV (fewer than 16 tokens) or the tensor-core GEMM. The tiled GEMM
// (default) asks for its dynamic shared memory only for prefill: 3 stages
// of x (64 x 32 f32, 8 KB) and codes (64 x 16 bytes), the f16 tiles of x
// and W (64 rows of 80 bytes): 37888 bytes.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 2)>
#s = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 32)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @woq
// CHECK: %[[M:.*]] = memref.dim %arg0, %c0
// CHECK: %[[SMALL:.*]] = arith.cmpi ult, %[[M]], %c16
// CHECK: arith.select %[[SMALL]]
// TILED: %[[SH:.*]] = arith.select %[[SMALL]], %c0_i32, %c37888_i32 : i32
// TILED: gpu.launch {{.*}} dynamic_shared_memory_size %[[SH]]
// DIRECT: gpu.launch
// CHECK:   scf.if
// GEMV: 128-bit invariant loads of the codes and of x, sign extension by
// shifts, FMAs, scaled per group, butterfly shuffles.
// CHECK:     llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xi32>
// CHECK:     llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:     arith.shli
// CHECK:     arith.shrsi
// CHECK:     math.fma
// CHECK:     memref.load %arg2
// CHECK:     gpu.shuffle xor
// CHECK:   } else {
// Direct: each warp builds its fragments from global memory.
// DIRECT:     arith.truncf {{.*}} : vector<2xf32> to vector<2xf16>
// DIRECT:     arith.sitofp {{.*}} : i32 to f16
// DIRECT:     nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// Tiled: the prologue stages 0 and 1 (K = 64: two stages, the second
// issued and committed, then an empty group), 16-byte cp.async.cg with a
// src-size (zero fill at the tails); the 4-bit codes are 64 chunks, so
// only threads 0..63 copy one.
// TILED:     gpu.dynamic_shared_memory
// TILED:     nvvm.cp.async.shared.global {{.*}}, 16, cache =  cg, %{{.*}} : !llvm.ptr<3>, !llvm.ptr<1>, i32
// TILED:     scf.if
// TILED:       nvvm.cp.async.shared.global
// TILED:     nvvm.cp.async.commit.group
// TILED:     nvvm.cp.async.commit.group
// TILED:     scf.for {{.*}} to %c2{{.*}} iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// TILED:       nvvm.cp.async.wait.group 1
// TILED-NEXT:  gpu.barrier
// TILED:       scf.if
// TILED:         nvvm.cp.async.shared.global
// TILED:       nvvm.cp.async.commit.group
// The next stage's group scale, then x rounded to f16 and the codes
// dequantized (times the scale) into the f16 tiles, a barrier.
// TILED:       memref.load %arg2
// TILED:       llvm.load {{.*}} : !llvm.ptr<3> -> vector<4xf32>
// TILED:       arith.truncf {{.*}} : vector<4xf32> to vector<4xf16>
// TILED:       llvm.store {{.*}} : vector<4xf16>, !llvm.ptr<3>
// TILED:       llvm.load {{.*}} : !llvm.ptr<3> -> vector<2xi32>
// TILED:       arith.sitofp {{.*}} : vector<8xi32> to vector<8xf32>
// TILED:       arith.mulf
// TILED:       arith.truncf {{.*}} : vector<8xf32> to vector<8xf16>
// TILED:       llvm.store {{.*}} : vector<8xf16>, !llvm.ptr<3>
// TILED:       gpu.barrier
// Per k step of 16: two ldmatrix.x4 for A, two for B, eight mma.sync.
// TILED-COUNT-4: nvvm.ldmatrix {{.*}} {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<row>, num = 4 : i32, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>} : (!llvm.ptr<3>) -> !llvm.struct<(i32, i32, i32, i32)>
// TILED-COUNT-8: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// TILED:       nvvm.ldmatrix
// TILED:       scf.yield
// CHECK-NOT: linalg.generic
func.func @woq(%x: memref<?x64xf32>, %c: memref<16x32xui8>, %s: memref<16x2xf32>,
               %y: memref<?x16xf32>) {
  linalg.generic {indexing_maps = [#x, #w, #s, #o],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %c, %s : memref<?x64xf32>, memref<16x32xui8>, memref<16x2xf32>)
      outs(%y : memref<?x16xf32>)
      attrs = {qwen.gpu_kernel = {kind = "woq_gemv", bits = 4 : i64, group = 32 : i64}} {
  // The meaning (lowerWeightOnlyLinearGPU writes the nibble selection); the
  // pass reads only the attribute and the operands.
  ^bb0(%a: f32, %b: ui8, %sc: f32, %acc: f32):
    %bi = builtin.unrealized_conversion_cast %b : ui8 to i8
    %k = linalg.index 2 : index
    %ki = arith.index_cast %k : index to i32
    %c2 = arith.constant 2 : i32
    %c4 = arith.constant 4 : i32
    %c28 = arith.constant 28 : i32
    %odd = arith.remui %ki, %c2 : i32
    %sh = arith.muli %odd, %c4 : i32
    %up = arith.subi %c28, %sh : i32
    %v = arith.extsi %bi : i8 to i32
    %l = arith.shli %v, %up : i32
    %code = arith.shrsi %l, %c28 : i32
    %cf = arith.sitofp %code : i32 to f32
    %wv = arith.mulf %cf, %sc : f32
    %p = arith.mulf %a, %wv : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// The int8 matmul of int8 activations: dp4a GEMV / mma.sync m16n8k32 s8.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @int8
// CHECK: gpu.launch
// CHECK:   nvvm.dot.accumulate.4way {{.*}} <signed>, {{.*}} <signed>
// CHECK:   gpu.shuffle xor
// DIRECT:  nvvm.mma.sync {{.*}} {intOverflowBehavior = #nvvm.mma_int_overflow<wrapped>, layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<s8>, multiplicandBPtxType = #nvvm.mma_type<s8>, shape = #nvvm.shape<m = 16, n = 8, k = 32>}
// Tiled: K = 64 is one stage of 64 bytes a row; q_x and the codes go from
// the cp.async stages straight to ldmatrix, two m16n8k32 steps a stage.
// TILED:   nvvm.cp.async.shared.global
// TILED:   scf.for
// TILED:     nvvm.cp.async.wait.group 1
// TILED-COUNT-4: nvvm.ldmatrix
// TILED-COUNT-8: nvvm.mma.sync {{.*}} {intOverflowBehavior = #nvvm.mma_int_overflow<wrapped>, layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<s8>, multiplicandBPtxType = #nvvm.mma_type<s8>, shape = #nvvm.shape<m = 16, n = 8, k = 32>}
// TILED-COUNT-4: nvvm.ldmatrix
// TILED-COUNT-8: nvvm.mma.sync
// TILED:     scf.yield
// CHECK-NOT: linalg.generic
func.func @int8(%x: memref<?x64xi8>, %w: memref<16x64xi8>, %y: memref<?x16xi32>) {
  linalg.generic {indexing_maps = [#x, #w, #o],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x64xi8>, memref<16x64xi8>) outs(%y : memref<?x16xi32>) {
  ^bb0(%a: i8, %b: i8, %acc: i32):
    %u = arith.extsi %a : i8 to i32
    %v = arith.extsi %b : i8 to i32
    %m = arith.muli %u, %v : i32
    %r = arith.addi %acc, %m : i32
    linalg.yield %r : i32
  }
  return
}

// -----

// Any other generic whose only reduction is innermost (a float matmul here;
// norms, softmax, attention scores): one warp per output element, lanes
// striding over k, a shuffle reduction, lane 0 folds in the initial value.
// CHECK-LABEL: func.func @warp_reduce
// CHECK: gpu.launch blocks({{.*}}) threads({{.*}}) in ({{.*}} = %c256{{.*}},
// CHECK:   %[[LANE:.*]] = arith.remui %{{.*}}, %c32
// CHECK:   scf.for %{{.*}} = %[[LANE]] to %c64 step %c32{{.*}} iter_args(%[[ACC:.*]] = %cst)
// CHECK:     memref.load %arg0
// CHECK:     memref.load %arg1
// CHECK:     arith.mulf
// CHECK:     arith.addf %[[ACC]]
// CHECK:   gpu.shuffle xor
// CHECK:   memref.load %arg2
// CHECK:   memref.store
// CHECK-NOT: linalg.generic
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @warp_reduce(%x: memref<?x64xf32>, %w: memref<16x64xf32>, %y: memref<?x16xf32>) {
  linalg.generic {indexing_maps = [#x, #w, #o],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x64xf32>, memref<16x64xf32>) outs(%y : memref<?x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A reduction that is not the innermost loop stays a generic (its loops
// are mapped later, by --qwen-gpu-map-kernels).
// CHECK-LABEL: func.func @column_sum
// CHECK: linalg.generic
// CHECK-NOT: gpu.launch
#i = affine_map<(d0, d1) -> (d0, d1)>
#c = affine_map<(d0, d1) -> (d1)>
func.func @column_sum(%x: memref<?x64xf32>, %y: memref<64xf32>) {
  linalg.generic {indexing_maps = [#i, #c], iterator_types = ["reduction", "parallel"]}
      ins(%x : memref<?x64xf32>) outs(%y : memref<64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// An RMSNorm over the last dim (K = 1000 = 250 16-byte chunks: 256 threads,
// the only chunk of a thread guarded) tagged by
// --qwen-lower-model-to-linalg on its normalising generic: one kernel, a
// block per token. The sum of squares the generic reads is computed in the
// kernel (warp shuffles, shared memory across the 8 warps, a barrier); its
// separate fill, reduction and buffer go.
// CHECK-LABEL: func.func @rms_norm
// CHECK-NOT: memref.alloc
// CHECK-NOT: linalg.fill
// CHECK: %[[G:.*]] = arith.maxui %{{.*}}, %c1
// CHECK: gpu.launch blocks(%[[B:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[G]], {{.*}} threads({{.*}}) in ({{.*}} = %c256{{.*}}) workgroup(%[[SH:.*]] : memref<8xf32, #gpu.address_space<workgroup>>)
// CHECK:   scf.if
// CHECK:     scf.if
// CHECK:       llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:     math.fma
// CHECK:     gpu.shuffle xor
// CHECK:     memref.store %{{.*}}, %[[SH]]
// CHECK:     gpu.barrier
// CHECK:     memref.load %[[SH]][%c7]
// CHECK:     arith.constant 9.99999997E-7 : f32
// CHECK:     math.rsqrt
// CHECK:     scf.if
// CHECK:       llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:       arith.mulf
// CHECK:       arith.mulf
// CHECK:       llvm.store {{.*}} {alignment = 16 : i64} : vector<4xf32>, !llvm.ptr<1>
// CHECK-NOT: linalg.generic
// CHECK-NOT: memref.dealloc
#i = affine_map<(d0, d1) -> (d0, d1)>
#r = affine_map<(d0, d1) -> (d0)>
#c = affine_map<(d0, d1) -> (d1)>
func.func @rms_norm(%x: memref<?x1000xf32>, %g: memref<1000xf32>, %y: memref<?x1000xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %n = arith.constant 1000.0 : f32
  %eps = arith.constant 1.0e-6 : f32
  %m = memref.dim %x, %c0 : memref<?x1000xf32>
  %ss = memref.alloc(%m) : memref<?xf32>
  linalg.fill ins(%zero : f32) outs(%ss : memref<?xf32>)
  linalg.generic {indexing_maps = [#i, #r], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<?x1000xf32>) outs(%ss : memref<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %sq = arith.mulf %a, %a : f32
    %s = arith.addf %acc, %sq : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#i, #r, #c, #i],
                  iterator_types = ["parallel", "parallel"]}
      ins(%x, %ss, %g : memref<?x1000xf32>, memref<?xf32>, memref<1000xf32>)
      outs(%y : memref<?x1000xf32>)
      attrs = {qwen.gpu_kernel = {kind = "rms_norm", eps = 1.0e-6 : f32}} {
  ^bb0(%a: f32, %s: f32, %w: f32, %o: f32):
    %mean = arith.divf %s, %n : f32
    %v = arith.addf %mean, %eps : f32
    %inv = math.rsqrt %v : f32
    %t = arith.mulf %a, %inv : f32
    %r = arith.mulf %t, %w : f32
    linalg.yield %r : f32
  }
  memref.dealloc %ss : memref<?xf32>
  return
}

// -----

// A norm whose sum of squares is read elsewhere too: the kernel still
// computes its own, the reduction into ss stays (a warp per row).
// CHECK-LABEL: func.func @rms_norm_shared_ss
// CHECK: memref.alloc
// CHECK: gpu.launch
// CHECK:   gpu.shuffle xor
// CHECK: gpu.launch {{.*}} workgroup
// CHECK: memref.copy
#i = affine_map<(d0, d1) -> (d0, d1)>
#r = affine_map<(d0, d1) -> (d0)>
#c = affine_map<(d0, d1) -> (d1)>
func.func @rms_norm_shared_ss(%x: memref<?x64xf32>, %g: memref<64xf32>, %y: memref<?x64xf32>, %keep: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %n = arith.constant 64.0 : f32
  %eps = arith.constant 1.0e-6 : f32
  %m = memref.dim %x, %c0 : memref<?x64xf32>
  %ss = memref.alloc(%m) : memref<?xf32>
  linalg.generic {indexing_maps = [#i, #r], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<?x64xf32>) outs(%ss : memref<?xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %sq = arith.mulf %a, %a : f32
    %s = arith.addf %acc, %sq : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#i, #r, #c, #i],
                  iterator_types = ["parallel", "parallel"]}
      ins(%x, %ss, %g : memref<?x64xf32>, memref<?xf32>, memref<64xf32>)
      outs(%y : memref<?x64xf32>)
      attrs = {qwen.gpu_kernel = {kind = "rms_norm", eps = 1.0e-6 : f32}} {
  ^bb0(%a: f32, %s: f32, %w: f32, %o: f32):
    %mean = arith.divf %s, %n : f32
    %v = arith.addf %mean, %eps : f32
    %inv = math.rsqrt %v : f32
    %t = arith.mulf %a, %inv : f32
    %r = arith.mulf %t, %w : f32
    linalg.yield %r : f32
  }
  memref.copy %ss, %keep : memref<?xf32> to memref<?xf32>
  return
}

// -----

// SwiGLU, silu(gate) * up (and any elementwise generic on f32 buffers with
// identity maps and a last dim a multiple of 4): a thread per 4 elements,
// v4 loads of each input (not invariant: the output may reuse an input's
// buffer), the body four times, one v4 store.
// CHECK-LABEL: func.func @silu_mul
// CHECK: %[[Q:.*]] = arith.muli %c8, %{{.*}} : index
// CHECK: %[[G:.*]] = arith.ceildivui %[[Q]], %c256
// CHECK: gpu.launch
// CHECK:   arith.cmpi ult, %{{.*}}, %[[Q]]
// CHECK:   llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:   llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK-COUNT-4: math.exp
// CHECK:   vector.from_elements
// CHECK:   llvm.store {{.*}} {alignment = 16 : i64} : vector<4xf32>, !llvm.ptr<1>
// CHECK-NOT: linalg.generic
#i = affine_map<(d0, d1) -> (d0, d1)>
func.func @silu_mul(%g: memref<?x32xf32>, %u: memref<?x32xf32>, %y: memref<?x32xf32>) {
  linalg.generic {indexing_maps = [#i, #i, #i], iterator_types = ["parallel", "parallel"]}
      ins(%g, %u : memref<?x32xf32>, memref<?x32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %one = arith.constant 1.0 : f32
    %n = arith.negf %a : f32
    %e = math.exp %n : f32
    %d = arith.addf %one, %e : f32
    %s = arith.divf %a, %d : f32
    %r = arith.mulf %s, %b : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A broadcast operand (a bias) or a last dim not a multiple of 4: the
// generic stays (mapped later, a thread per element).
// CHECK-LABEL: func.func @not_vectorized
// CHECK-NOT: gpu.launch
// CHECK: linalg.generic
// CHECK: linalg.generic
#i = affine_map<(d0, d1) -> (d0, d1)>
#c = affine_map<(d0, d1) -> (d1)>
func.func @not_vectorized(%x: memref<?x32xf32>, %b: memref<32xf32>, %y: memref<?x32xf32>,
                          %p: memref<?x6xf32>, %q: memref<?x6xf32>) {
  linalg.generic {indexing_maps = [#i, #c, #i], iterator_types = ["parallel", "parallel"]}
      ins(%x, %b : memref<?x32xf32>, memref<32xf32>) outs(%y : memref<?x32xf32>) {
  ^bb0(%a: f32, %c: f32, %o: f32):
    %r = arith.addf %a, %c : f32
    linalg.yield %r : f32
  }
  linalg.generic {indexing_maps = [#i, #i], iterator_types = ["parallel", "parallel"]}
      ins(%p : memref<?x6xf32>) outs(%q : memref<?x6xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  }
  return
}

// -----

// A half-split RoPE over heads of 16 (tagged by --qwen-lower-model-to-linalg
// on a CUDA target): a thread per 4 pairs (i, i + 8) of a head of a token
// (2 heads x 2 threads per token), v4 loads of both halves and of the
// inv_freq table the generic reads, one cos and one sin per pair, two v4
// stores.
// CHECK-LABEL: func.func @rope
// CHECK: %[[POS:.*]] = memref.collapse_shape %arg1 {{\[\[}}0, 1]]
// CHECK: %[[N:.*]] = arith.muli %{{.*}}, %c4 : index
// CHECK: gpu.launch
// CHECK:   arith.cmpi ult, %{{.*}}, %[[N]]
// CHECK:   llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:   llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:   llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:   memref.load %[[POS]]
// CHECK:   arith.sitofp {{.*}} : i64 to f32
// CHECK-COUNT-4: math.sin
// CHECK:   llvm.store {{.*}} {alignment = 16 : i64} : vector<4xf32>, !llvm.ptr<1>
// CHECK:   llvm.store {{.*}} {alignment = 16 : i64} : vector<4xf32>, !llvm.ptr<1>
// CHECK-NOT: linalg.generic
memref.global "private" constant @inv_freq : memref<8xf32> = dense<[1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]>
#i = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#p = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @rope(%x: memref<?x?x32xf32>, %pos: memref<?x?xi64>, %y: memref<?x?x32xf32>) {
  %t = memref.get_global @inv_freq : memref<8xf32>
  %c0 = arith.constant 0 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  linalg.generic {indexing_maps = [#i, #p, #i], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%x, %pos : memref<?x?x32xf32>, memref<?x?xi64>) outs(%y : memref<?x?x32xf32>)
      attrs = {qwen.gpu_kernel = {head_dim = 16 : i64, kind = "rope"}} {
  ^bb0(%in: f32, %pi: i64, %out: f32):
    %b = linalg.index 0 : index
    %s = linalg.index 1 : index
    %j = linalg.index 2 : index
    %d = arith.remui %j, %c16 : index
    %base = arith.subi %j, %d : index
    %first = arith.cmpi ult, %d, %c8 : index
    %fi = arith.remui %d, %c8 : index
    %up = arith.addi %d, %c8 : index
    %dn = arith.subi %d, %c8 : index
    %partner = arith.select %first, %up, %dn : index
    %pj = arith.addi %base, %partner : index
    %xp = memref.load %x[%b, %s, %pj] : memref<?x?x32xf32>
    %f = memref.load %t[%fi] : memref<8xf32>
    %pf = arith.sitofp %pi : i64 to f32
    %ang = arith.mulf %pf, %f : f32
    %cs = math.cos %ang : f32
    %sn = math.sin %ang : f32
    %xc = arith.mulf %in, %cs : f32
    %ps = arith.mulf %xp, %sn : f32
    %r1 = arith.subf %xc, %ps : f32
    %r2 = arith.addf %xc, %ps : f32
    %r = arith.select %first, %r1, %r2 : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A codebook linear (4-bit codes, a 16-entry book per group of 32 inputs:
// 2 books a row) tagged by lowerCodebookLinearGPU: a warp per output
// channel, the row's books copied to the warp's slice of shared memory
// (f16 -> f32) and a warp sync, then 128-bit loads of the codes, a
// shared-memory lookup per nibble, FMAs, a shuffle reduction.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @lut
// CHECK: gpu.launch {{.*}} threads({{.*}}) in ({{.*}} = %c128{{.*}}) workgroup(%[[LUT:.*]] : memref<4x32xf32, #gpu.address_space<workgroup>>)
// CHECK:   scf.for
// CHECK:     memref.load %arg2
// CHECK:     arith.extf
// CHECK:     memref.store %{{.*}}, %[[LUT]]
// CHECK:   nvvm.bar.warp.sync
// CHECK:   scf.for
// CHECK:     llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xi32>
// CHECK:     arith.divui %{{.*}}, %c32
// CHECK:     arith.shrui
// CHECK:     arith.andi
// CHECK:     memref.load %[[LUT]]
// CHECK:     math.fma
// CHECK:   gpu.shuffle xor
// CHECK-NOT: linalg.generic
func.func @lut(%x: memref<?x64xf32>, %c: memref<16x32xui8>, %t: memref<32x16xf16>,
               %y: memref<?x16xf32>) {
  linalg.generic {indexing_maps = [#x, #w, #o],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %c : memref<?x64xf32>, memref<16x32xui8>)
      outs(%y : memref<?x16xf32>)
      attrs = {qwen.gpu_kernel = {books_per_row = 2 : i64, gran = 2 : i64, group = 32 : i64, kind = "lut_gemv"}} {
  ^bb0(%a: f32, %b: ui8, %acc: f32):
    %n = linalg.index 1 : index
    %k = linalg.index 2 : index
    %c2 = arith.constant 2 : index
    %c32 = arith.constant 32 : index
    %c4 = arith.constant 4 : i32
    %c15 = arith.constant 15 : i32
    %bi = builtin.unrealized_conversion_cast %b : ui8 to i8
    %v = arith.extui %bi : i8 to i32
    %odd = arith.remui %k, %c2 : index
    %oi = arith.index_cast %odd : index to i32
    %sh = arith.muli %oi, %c4 : i32
    %s = arith.shrui %v, %sh : i32
    %code = arith.andi %s, %c15 : i32
    %ci = arith.index_cast %code : i32 to index
    %n2 = arith.muli %n, %c2 : index
    %g = arith.divui %k, %c32 : index
    %book = arith.addi %n2, %g : index
    %e = memref.load %t[%book, %ci] : memref<32x16xf16>
    %ef = arith.extf %e : f16 to f32
    %p = arith.mulf %a, %ef : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A 2:4 sparse linear tagged by lowerSparse24LinearGPU (4-bit kept codes,
// groups of 32 inputs = 16 slots): one launch; decode is the sparse GEMV
// (a warp per channel, lanes over blocks of 32 inputs = 16 slots: 8 bytes of
// codes and 4 of positions, x selected by position), prefill mma.sp
// m16n8k32 with the positions as the metadata. Tiled: the dense tiled
// GEMM's pipeline with stages of 32 inputs (x: 8 KB, codes: 64 rows of 8
// bytes by 8-byte cp.async.ca, positions: 64 rows of 4 bytes by 4-byte
// ones), shared memory 3 x (8192 + 512 + 256) + 64 x 80 + 64 x 48 = 35072
// bytes; direct: fragments from global memory, no shared memory.
#p = affine_map<(d0, d1, d2) -> (d2)>
#c = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 2)>
#m = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 4)>
#s = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 16)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @sparse24
// TILED: %[[SH:.*]] = arith.select %{{.*}}, %c0_i32, %c35072_i32 : i32
// TILED: gpu.launch {{.*}} dynamic_shared_memory_size %[[SH]]
// DIRECT: gpu.launch
// DIRECT-NOT: dynamic_shared_memory_size
// CHECK:   scf.if
// CHECK:     scf.for {{.*}} step %c1024
// CHECK:       llvm.load {{.*}} invariant {alignment = 8 : i64} : !llvm.ptr<1> -> vector<2xi32>
// CHECK:       llvm.load {{.*}} invariant {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// CHECK:       llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK:       arith.shrui
// CHECK:       arith.select
// CHECK:       math.fma
// CHECK:     gpu.shuffle xor
// CHECK:   } else {
// DIRECT:     scf.for {{.*}} step %c32
// DIRECT:       arith.truncf {{.*}} : vector<2xf32> to vector<2xf16>
// DIRECT:       llvm.load {{.*}} invariant {alignment = 2 : i64} : !llvm.ptr<1> -> i16
// DIRECT:       nvvm.mma.sp.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] sparseMetadata[%{{.*}}] selector[%c0_i32{{.*}}] {shape = #nvvm.shape<m = 16, n = 8, k = 32>}
// DIRECT:       nvvm.mma.sp.sync
// TILED:     gpu.dynamic_shared_memory
// TILED:     nvvm.cp.async.shared.global {{.*}}, 16, cache =  cg
// TILED:     nvvm.cp.async.shared.global {{.*}}, 8, cache =  ca
// TILED:     nvvm.cp.async.shared.global {{.*}}, 4, cache =  ca
// TILED:     nvvm.cp.async.commit.group
// TILED:     scf.for
// TILED:       nvvm.cp.async.wait.group 1
// TILED:       gpu.barrier
// The stage into f16 tiles (x, then the kept codes times the group scale),
// a barrier, then per 16-channel tile ldmatrix.x4 of the kept values and
// the two metadata half-words from the staged positions, and per 8-token
// tile an ldmatrix.x4 of x and two mma.sp.
// TILED:       arith.truncf {{.*}} : vector<4xf32> to vector<4xf16>
// TILED:       arith.truncf {{.*}} : vector<8xf32> to vector<8xf16>
// TILED:       gpu.barrier
// TILED:       nvvm.ldmatrix
// TILED:       llvm.load {{.*}} {alignment = 2 : i64} : !llvm.ptr<3> -> i16
// TILED:       llvm.load {{.*}} {alignment = 2 : i64} : !llvm.ptr<3> -> i16
// TILED:       nvvm.ldmatrix
// TILED:       nvvm.ldmatrix
// TILED-COUNT-2: nvvm.mma.sp.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] sparseMetadata[%{{.*}}] selector[%c0_i32{{.*}}] {shape = #nvvm.shape<m = 16, n = 8, k = 32>}
// TILED:       scf.yield
// CHECK-NOT: linalg.generic
func.func @sparse24(%x: memref<?x64xf32>, %slots: memref<32xi8>, %c: memref<16x16xui8>,
                    %mk: memref<16x8xui8>, %s: memref<16x2xf32>, %y: memref<?x16xf32>) {
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  linalg.generic {indexing_maps = [#p, #c, #m, #s, #o],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%slots, %c, %mk, %s : memref<32xi8>, memref<16x16xui8>, memref<16x8xui8>, memref<16x2xf32>)
      outs(%y : memref<?x16xf32>)
      attrs = {qwen.gpu_kernel = {kind = "sparse24", bits = 4 : i64, group = 32 : i64}} {
  // The meaning: slot j of row n is input 4 (j / 2) + pos (2 bits of the
  // mask byte); the pass reads the attribute, the operands and the memref
  // the body gathers x from.
  ^bb0(%u: i8, %b: ui8, %pm: ui8, %sc: f32, %acc: f32):
    %tok = linalg.index 0 : index
    %j = linalg.index 2 : index
    %c3i = arith.constant 3 : i32
    %pmi = builtin.unrealized_conversion_cast %pm : ui8 to i8
    %pw = arith.extui %pmi : i8 to i32
    %jr = arith.remui %j, %c4 : index
    %sh = arith.muli %jr, %c2 : index
    %shi = arith.index_cast %sh : index to i32
    %ps = arith.shrui %pw, %shi : i32
    %pos = arith.andi %ps, %c3i : i32
    %posx = arith.index_cast %pos : i32 to index
    %g = arith.divui %j, %c2 : index
    %g4 = arith.muli %g, %c4 : index
    %col = arith.addi %g4, %posx : index
    %xv = memref.load %x[%tok, %col] : memref<?x64xf32>
    %bi = builtin.unrealized_conversion_cast %b : ui8 to i8
    %ji = arith.index_cast %j : index to i32
    %c2i = arith.constant 2 : i32
    %c4i = arith.constant 4 : i32
    %c28 = arith.constant 28 : i32
    %odd = arith.remui %ji, %c2i : i32
    %nsh = arith.muli %odd, %c4i : i32
    %up = arith.subi %c28, %nsh : i32
    %v = arith.extsi %bi : i8 to i32
    %l = arith.shli %v, %up : i32
    %code = arith.shrsi %l, %c28 : i32
    %cf = arith.sitofp %code : i32 to f32
    %wv = arith.mulf %cf, %sc : f32
    %p = arith.mulf %xv, %wv : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  }
  return
}
