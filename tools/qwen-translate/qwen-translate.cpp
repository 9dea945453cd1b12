//===- qwen-translate.cpp - translate between ONNX and MLIR ---------------===//
//
// mlir-translate conventions: `qwen-translate --import-onnx model.onnx -o
// model.mlir`. Initializers go to a weight store (`--weight-store`, by default
// the output path with a .qws extension). Nothing is written on failure.
//
// `qwen-translate --export-onnx q.mlir --source model.onnx -o q.onnx`: the
// quantized module (qwen-compile --emit=mlir) back to ONNX, as the source
// graph with its weights replaced (include/qwen/Export/ONNXExporter.h).
//
//===----------------------------------------------------------------------===//

#include "qwen/Export/ONNXExporter.h"
#include "qwen/Import/ONNXImporter.h"
#include "qwen/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
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
static cl::opt<bool> exportOnnx(
    "export-onnx",
    cl::desc(
        "Translate a quantized module (qwen-compile --emit=mlir) to ONNX: the "
        "--source graph with each weight in the form onnxruntime runs: "
        "uniform 2/4/8-bit MatMul weights as com.microsoft.MatMulNBits "
        "(8-bit ones as QDQ with --int8-weights=qdq); 8-bit embedding "
        "tables as int8 + DequantizeLinear (QDQ); log2 and codebook "
        "grids, 3/5/6/7-bit codes and group sizes MatMulNBits cannot take "
        "(not a power of two >= 16) as dequantized f32 initializers; static "
        "int8 activations as Clip + QuantizeLinear + DequantizeLinear, "
        "dynamic per-token int8 ones as the same arithmetic in float ops; "
        "smoothed RMSNorm gammas and corrected biases with their new values. "
        "Initializers go to <output>.data when they exceed 1.8 GB"));
static cl::opt<std::string>
    sourceModel("source",
                cl::desc("--export-onnx: the ONNX model the module was "
                         "compiled from"),
                cl::value_desc("model.onnx"));
static cl::opt<int64_t> accuracyLevel(
    "accuracy-level",
    cl::desc("--export-onnx: MatMulNBits accuracy_level (0: not set, float "
             "compute; 4 lets onnxruntime quantize activations to int8)"),
    cl::init(0));
static cl::opt<std::string> int8Weights(
    "int8-weights",
    cl::desc("--export-onnx: 8-bit per-channel/tensor MatMul weights as "
             "'nbits' (MatMulNBits bits=8, float compute: the default) or "
             "'qdq' (int8 + DequantizeLinear, portable; onnxruntime 1.32 "
             "fuses it into MatMulNBits with session option "
             "session.qdq_matmulnbits_accuracy_level, default 4 = int8 "
             "activations: set it to 0 for the bundle's numbers). Embedding "
             "tables are always QDQ"),
    cl::init("nbits"));
static cl::opt<uint64_t> externalDataThreshold(
    "external-data-threshold",
    cl::desc("--export-onnx: initializers go to <output>.data when their "
             "total exceeds this many bytes (default 1.8 GB; protobuf's limit "
             "is 2 GB)"),
    cl::init(uint64_t(1800) << 20), cl::Hidden);
static cl::opt<bool> verbose("v", cl::desc("Print what each weight became"));
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
  if (importOnnx == exportOnnx) {
    errs() << "qwen-translate: choose one translation (--import-onnx or "
              "--export-onnx)\n";
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

  if (exportOnnx) {
    mlir::OwningOpRef<mlir::ModuleOp> module =
        mlir::parseSourceFile<mlir::ModuleOp>(inputFilename, &ctx);
    if (!module) {
      errs() << "qwen-translate: cannot parse '" << inputFilename << "'\n";
      return 1;
    }
    qwen::ONNXExportOptions eo;
    eo.sourcePath = sourceModel;
    eo.outputPath = outputFilename;
    eo.accuracyLevel = accuracyLevel;
    eo.verbose = verbose;
    eo.externalDataThreshold = externalDataThreshold;
    if (int8Weights != "qdq" && int8Weights != "nbits") {
      errs() << "qwen-translate: --int8-weights must be qdq or nbits\n";
      return 1;
    }
    eo.int8WeightsAsNBits = int8Weights == "nbits";
    qwen::ONNXExportSummary sum;
    if (failed(qwen::exportONNX(*module, eo, &sum)))
      return 1;
    if (verbose)
      errs() << "qwen-translate: " << outputFilename << ": " << sum.matMulNBits
             << " MatMulNBits, " << sum.dequantizeLinear
             << " DequantizeLinear weights, " << sum.dequantizedF32
             << " dequantized f32 weights, " << sum.staticActs
             << " static and " << sum.dynamicActs
             << " dynamic int8 activations, " << sum.floatsReplaced
             << " float tensors replaced"
             << (sum.externalData ? ", external data" : "") << "\n";
    return 0;
  }

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
