// RUN: qwen-opt %s -split-input-file --qwen-omp-schedule | FileCheck %s
// RUN: qwen-opt %s -split-input-file --qwen-omp-schedule="kind=guided chunk=4" | FileCheck %s --check-prefix=GUIDED
// RUN: qwen-opt %s -split-input-file --qwen-omp-schedule="kind=static" | FileCheck %s --check-prefix=STATIC

// The worksharing loops convert-scf-to-openmp emits get a dynamic schedule
// handing out one iteration (a tile of output channels) at a time; a loop
// that already has a schedule keeps it.

// CHECK-LABEL: func.func @tiles
// CHECK: omp.parallel
// CHECK-NEXT: %[[C:.*]] = arith.constant 1 : index
// CHECK: omp.wsloop schedule(dynamic = %[[C]] : index)
// GUIDED-LABEL: func.func @tiles
// GUIDED: omp.parallel
// GUIDED-NEXT: %[[C:.*]] = arith.constant 4 : index
// GUIDED: omp.wsloop schedule(guided = %[[C]] : index)
// STATIC-LABEL: func.func @tiles
// STATIC: omp.wsloop schedule(static)
func.func @tiles(%n: index, %buf: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  omp.parallel {
    omp.wsloop {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        memref.store %f, %buf[%i] : memref<?xf32>
        omp.yield
      }
    }
    omp.terminator
  }
  return
}

// -----

// CHECK-LABEL: func.func @kept
// CHECK: omp.wsloop schedule(static)
// GUIDED: omp.wsloop schedule(static)
func.func @kept(%n: index, %buf: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  omp.parallel {
    omp.wsloop schedule(static) {
      omp.loop_nest (%i) : index = (%c0) to (%n) step (%c1) {
        memref.store %f, %buf[%i] : memref<?xf32>
        omp.yield
      }
    }
    omp.terminator
  }
  return
}
