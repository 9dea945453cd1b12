//===- onnx-import-fuzzer.cpp - libFuzzer target for the ONNX importer ----===//
//
// Feeds arbitrary bytes to the importer: every input must end in a module
// or in a diagnostic, never a crash, hang or out-of-bounds access. Build
// with -DQWEN_ENABLE_FUZZERS=ON (clang, ASan + libFuzzer); see tools/fuzz/README.md.
//
//===----------------------------------------------------------------------===//

#include "qwen/Import/ONNXImporter.h"
#include "qwen/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

static mlir::MLIRContext &context() {
  static mlir::MLIRContext *ctx = [] {
    mlir::DialectRegistry registry;
    qwen::registerQwenDialects(registry);
    registry.insert<mlir::func::FuncDialect>();
    auto *c = new mlir::MLIRContext(registry);
    c->getDiagEngine().registerHandler(
        [](mlir::Diagnostic &) { return mlir::success(); });
    return c;
  }();
  return *ctx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string dir = "/tmp/qwen-fuzz-" + std::to_string(::getpid());
  static bool made = (::mkdir(dir.c_str(), 0700), true);
  (void)made;
  qwen::ONNXImportOptions opts;
  opts.storePath = dir + "/w.qws";
  opts.inlineMaxElements = 16;
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      qwen::importONNXModel(bytes, dir + "/model.onnx", &context(), opts);
  // What the importer returns must verify.
  if (module && mlir::failed(mlir::verify(*module)))
    __builtin_trap();
  std::remove(opts.storePath.c_str());
  return 0;
}
