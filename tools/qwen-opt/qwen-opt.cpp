//===- qwen-opt.cpp - run any pass pipeline on .mlir ----------------------===//
//
// mlir-opt with our dialects and passes registered next to all of upstream's.
//
//===----------------------------------------------------------------------===//

#include "qwen/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  qwen::registerAllQwenPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  qwen::registerQwenDialects(registry);

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "qwen-opt: the qwen-opt quantizing compiler's pass driver\n",
      registry));
}
