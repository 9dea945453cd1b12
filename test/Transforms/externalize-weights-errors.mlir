// RUN: not qwen-opt %s --qwen-externalize-weights 2>&1 | FileCheck %s --check-prefix=NOSTORE
// RUN: not qwen-opt %s --qwen-externalize-weights="store=%t.missing-dir/w.qws" 2>&1 | FileCheck %s --check-prefix=NODIR
// RUN: not qwen-opt %s --qwen-externalize-weights="store=%t.qws store-name=taken" 2>&1 | FileCheck %s --check-prefix=TAKEN

// NOSTORE: error: --qwen-externalize-weights needs store=<path>
// NODIR: error: cannot create weight store '{{.*}}missing-dir/w.qws': No such file or directory
// TAKEN: error: symbol @taken already exists; pick store-name=

func.func @taken() -> tensor<2048xf32> {
  %0 = arith.constant dense<1.0> : tensor<2048xf32>
  return %0 : tensor<2048xf32>
}
