// RUN: qwen-opt %s -split-input-file -verify-diagnostics \
// RUN:   --convert-func-to-llvm --reconcile-unrealized-casts \
// RUN:   --qwen-emit-model-abi=num-inputs=2 | FileCheck %s

// The bundle ABI's three exports around the entry's C interface: forward
// loads args[0..n-1] (input descriptors) and args[n] (the results buffer)
// and calls the wrapper with the results pointer first.

// CHECK-LABEL: llvm.func @qwen_model_abi_version() -> i64
// CHECK:         %[[V:.*]] = llvm.mlir.constant(1 : i64) : i64
// CHECK:         llvm.return %[[V]] : i64
// CHECK:       llvm.func @omp_set_num_threads(i32)
// CHECK-LABEL: llvm.func @qwen_model_set_num_threads(%{{.*}}: i32)
// CHECK:         llvm.icmp "slt"
// CHECK:         llvm.select
// CHECK:         llvm.call @omp_set_num_threads
// CHECK-LABEL: llvm.func @qwen_model_forward(
// CHECK-SAME:    %[[ARGV:.*]]: !llvm.ptr)
// CHECK:         %[[P2:.*]] = llvm.getelementptr %[[ARGV]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK:         %[[RES:.*]] = llvm.load %[[P2]] : !llvm.ptr -> !llvm.ptr
// CHECK:         %[[P0:.*]] = llvm.getelementptr %[[ARGV]][0]
// CHECK:         %[[A0:.*]] = llvm.load %[[P0]]
// CHECK:         %[[P1:.*]] = llvm.getelementptr %[[ARGV]][1]
// CHECK:         %[[A1:.*]] = llvm.load %[[P1]]
// CHECK:         llvm.call @_mlir_ciface_qwen_model_main(%[[RES]], %[[A0]], %[[A1]])
// CHECK:         llvm.return
func.func @qwen_model_main(%a: memref<?xf32>, %b: memref<4xf32>) -> (memref<?xf32>, memref<4xf32>)
    attributes {llvm.emit_c_interface} {
  return %a, %b : memref<?xf32>, memref<4xf32>
}

// -----

// expected-error @+1 {{C interface takes 1 argument descriptors, expected 2}}
func.func @qwen_model_main(%a: memref<?xf32>) -> memref<?xf32>
    attributes {llvm.emit_c_interface} {
  return %a : memref<?xf32>
}

// -----

// expected-error @+1 {{no LLVM function @qwen_model_main with its C interface}}
module {
  func.func @qwen_model_main(%a: memref<?xf32>, %b: memref<4xf32>) {
    return
  }
}

// -----

// expected-error @+1 {{symbol @qwen_model_forward is already defined}}
module {
  func.func @qwen_model_main(%a: memref<?xf32>, %b: memref<4xf32>)
      attributes {llvm.emit_c_interface} {
    return
  }
  func.func @qwen_model_forward() {
    return
  }
}
