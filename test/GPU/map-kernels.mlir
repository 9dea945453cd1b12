// RUN: qwen-opt %s --qwen-gpu-map-kernels -split-input-file -verify-diagnostics | FileCheck %s

// A top-level loop nest: one launch of 256-thread blocks over the flattened
// iteration space (last dimension fastest), guarded by the trip count;
// nested parallel loops become scf.for. Buffers live in device memory.
// CHECK-LABEL: func.func @nest
// CHECK: %[[A:.*]] = gpu.alloc (%{{.*}}) : memref<?x8xf32>
// CHECK: %[[GRID:.*]] = arith.maxui
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[GRID]], {{.*}}) threads({{.*}}) in ({{.*}} = %c256{{.*}},
// CHECK:   arith.cmpi ult
// CHECK:   scf.if
// CHECK:     arith.remui
// CHECK:     arith.divui
// CHECK:     scf.for
// CHECK:       memref.load %arg0
// CHECK:       memref.store {{.*}}, %[[A]]
// CHECK: gpu.dealloc %[[A]]
// CHECK-NOT: memref.alloc
func.func @nest(%x: memref<?x8x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %n = memref.dim %x, %c0 : memref<?x8x4xf32>
  %a = memref.alloc(%n) : memref<?x8xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c8) step (%c1, %c1) {
    scf.parallel (%k) = (%c0) to (%c4) step (%c1) {
      %v = memref.load %x[%i, %j, %k] : memref<?x8x4xf32>
      memref.store %v, %a[%i, %j] : memref<?x8xf32>
      scf.reduce
    }
    scf.reduce
  }
  memref.dealloc %a : memref<?x8xf32>
  return
}

// -----

// Constant globals get a device copy for the call; a store of a host value
// runs in a one-thread kernel.
memref.global "private" constant @cst : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>
// CHECK-LABEL: func.func @globals
// CHECK: %[[G:.*]] = memref.get_global @cst
// CHECK: %[[D:.*]] = gpu.alloc () : memref<4xf32>
// CHECK: gpu.memcpy %[[D]], %[[G]]
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c1{{.*}}, {{.*}} = %c1{{.*}}, {{.*}} = %c1{{.*}}) threads
// CHECK:   memref.load %[[D]]
// CHECK:   memref.store
// CHECK: gpu.dealloc %[[D]]
// CHECK-NEXT: return
func.func @globals(%out: memref<f32>) {
  %c2 = arith.constant 2 : index
  %g = memref.get_global @cst : memref<4xf32>
  %v = memref.load %g[%c2] : memref<4xf32>
  memref.store %v, %out[] : memref<f32>
  return
}

// -----

// A value read from a buffer and used by host code has no mapping: one error.
func.func @host_read(%m: memref<4xi64>) -> index {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{'memref.load' reads or writes memory on the host: no GPU kernel covers it}}
  %v = memref.load %m[%c0] : memref<4xi64>
  %i = arith.index_cast %v : i64 to index
  return %i : index
}
