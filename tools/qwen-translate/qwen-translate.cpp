//===- qwen-translate.cpp - translate between ONNX and MLIR ---------------===//
//
// mlir-translate conventions: `qwen-translate --import-onnx model.onnx -o
// model.mlir`. Initializers go to a weight store (`--weight-store`, by default
// the output path with a .qws extension). Nothing is written on failure.
//
//===----------------------------------------------------------------------===//

#include "qwen/Import/ONNXImporter.h"
#include "qwen/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace llvm;

static cl::opt<std::string> inputFilename(cl::Positional,
                                          cl::desc("<input file>"),
                                          cl::Required);
static cl::opt<std::string> outputFilename("o", cl::desc("Output filename"),
                                           cl::value_desc("filename"),
                                           cl::init("-"));
static cl::opt<bool> importOnnx("import-onnx",
                                cl::desc("Translate an ONNX model to MLIR"));
static cl::opt<std::string>
    weightStore("weight-store",
                cl::desc("Weight store for initializers (default: the output "
                         "path with extension .qws)"),
                cl::value_desc("path"));
static cl::opt<int64_t> inlineMaxElements(
    "inline-max-elements",
    cl::desc("Tensors with at most this many elements stay in the IR"),
    cl::init(64));

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  cl::ParseCommandLineOptions(argc, argv,
                              "qwen-translate: ONNX <-> MLIR for qwen-opt\n");
  if (!importOnnx) {
    errs() << "qwen-translate: choose a translation (--import-onnx)\n";
    return 1;
  }

  mlir::DialectRegistry registry;
  qwen::registerQwenDialects(registry);
  registry.insert<mlir::func::FuncDialect>();
  mlir::MLIRContext ctx(registry);
  // Import errors name the file and node in their text; print them plainly.
  ctx.getDiagEngine().registerHandler([](mlir::Diagnostic &d) {
    errs() << "qwen-translate: "
           << (d.getSeverity() == mlir::DiagnosticSeverity::Error ? "error: "
                                                                   : "note: ")
           << d.str() << "\n";
    return mlir::success();
  });

  qwen::ONNXImportOptions opts;
  opts.inlineMaxElements = inlineMaxElements;
  opts.storePath = weightStore;
  if (opts.storePath.empty() && outputFilename != "-") {
    SmallString<256> p(outputFilename);
    sys::path::replace_extension(p, ".qws");
    opts.storePath = std::string(p);
  }

  mlir::OwningOpRef<mlir::ModuleOp> module =
      qwen::importONNXFile(inputFilename, &ctx, opts);
  if (!module)
    return 1;

  std::string error;
  auto output = mlir::openOutputFile(outputFilename, &error);
  if (!output) {
    errs() << "qwen-translate: " << error << "\n";
    if (!opts.storePath.empty())
      sys::fs::remove(opts.storePath);
    return 1;
  }
  module->print(output->os(), mlir::OpPrintingFlags().enableDebugInfo(
                                  false));
  output->keep();
  return 0;
}
