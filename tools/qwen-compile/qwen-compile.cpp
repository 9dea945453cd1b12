//===- qwen-compile.cpp - ONNX model of a Qwen LLM to an AOT bundle -------===//
//
//   qwen-compile model.onnx -o bundle/
//                [--target host|x86-64-v3|x86-64-v4|CPU|sm_XY[,sm_XY...]]
//                [--recipe NAME|file.json] [--tokenizer tokenizer.json]
//                [--emit=bundle|mlir|onnx|linalg|llvm-mlir|llvm|asm|obj]
//
// See include/qwen/Compiler/Compiler.h for the stages and
// include/qwen/Runtime/BundleABI.h for what a bundle holds.
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/Compiler.h"
#include "qwen/InitAll.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;
using qwen::compiler::Emit;

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::registerAllPasses();
  qwen::registerAllQwenPasses();
  mlir::registerPassManagerCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerAsmPrinterCLOptions();

  cl::OptionCategory cat("qwen-compile options");
  cl::opt<std::string> input(cl::Positional, cl::desc("<model.onnx>"),
                             cl::Required, cl::cat(cat));
  cl::opt<std::string> output(
      "o", cl::desc("Output: a bundle folder, or a file for --emit stages "
                    "('-' = stdout)"),
      cl::value_desc("path"), cl::Required, cl::cat(cat));
  cl::opt<std::string> target(
      "target",
      cl::desc("CPU to compile for: host (this machine's CPU and features), "
               "x86-64-v3 (AVX2), x86-64-v4 (AVX-512), or any LLVM x86 CPU "
               "name; or an NVIDIA GPU: sm_80, sm_86, sm_89, sm_90 (CUDA "
               "bundle: x86-64 host code + model.cubin), or a comma list "
               "of them (model.fatbin: a cubin each + the newest one's PTX)"),
      cl::init("host"), cl::cat(cat));
  cl::opt<std::string> recipe("recipe", cl::desc("Quantization recipe: fp32, w8a16, w4a16-g128, "
                                       "w4a16-g32, w3a16-g128, w2a16-g64, "
                                       "w8a8-dyn, w8a8 (needs --calib), "
                                       "mixed-<bits> (per-layer schemes at <bits> "
                                       "stored bits per weight, needs --calib-text), "
                                       "or a recipe .json file"),
                              cl::value_desc("name|file.json"),
                              cl::init("fp32"), cl::cat(cat));
  cl::opt<std::string> calib(
      "calib",
      cl::desc("Calibration statistics from qwen-calibrate (stats.json): "
               "static activation scales for --recipe w8a8"),
      cl::value_desc("stats.json"), cl::cat(cat));
  static const std::string calibMethodHelp =
      "Which clipping threshold of --calib: max, percentile (99.99%), "
      "percentile-99.9, entropy (KL), mse (default " +
      std::string(qwen::compiler::kDefaultCalibMethod) + ")";
  cl::opt<std::string> calibMethod(
      "calib-method", cl::desc(calibMethodHelp),
      cl::value_desc("method"), cl::cat(cat));
  cl::opt<std::string> calibText(
      "calib-text",
      cl::desc("Calibration text (tokenized with --tokenizer) for the "
               "data-driven recipes: mixed-<bits>, -gptq, -awq, -clip, -bc, -smooth, and "
               "static activation scales without --calib"),
      cl::value_desc("file"), cl::cat(cat));
  cl::opt<int64_t> calibSeqLen(
      "calib-seq-len", cl::desc("Tokens per calibration sequence (256)"),
      cl::init(256), cl::cat(cat));
  cl::opt<bool> printAssignment(
      "print-assignment",
      cl::desc("mixed-<bits>: print each layer's scheme, bits, measured loss "
               "and reason"),
      cl::cat(cat));
  cl::opt<int64_t> calibMaxTokens(
      "calib-max-tokens",
      cl::desc("Calibration tokens used at most (16384)"), cl::init(16384),
      cl::cat(cat));
  cl::opt<std::string> ptxas(
      "ptxas",
      cl::desc("CUDA targets: the ptxas that assembles the kernels (default: "
               "$CUDA_HOME/bin, /usr/local/cuda/bin, then PATH)"),
      cl::value_desc("path"), cl::cat(cat));
  cl::opt<std::string> fatbinary(
      "fatbinary",
      cl::desc("Several CUDA targets: the fatbinary that packs them into "
               "model.fatbin (default: beside ptxas, then as --ptxas)"),
      cl::value_desc("path"), cl::cat(cat));
  enum class GpuGemm { Tiled, Direct };
  cl::opt<GpuGemm> gpuGemm(
      "gpu-gemm",
      cl::desc("CUDA targets: the prefill GEMM of the quantized linears"),
      cl::values(clEnumValN(GpuGemm::Tiled, "tiled",
                            "block tiles staged through shared memory "
                            "(cp.async, ldmatrix, mma.sync; default)"),
                 clEnumValN(GpuGemm::Direct, "direct",
                            "each warp loads its mma fragments from global "
                            "memory (the reference to check 'tiled' "
                            "against)")),
      cl::init(GpuGemm::Tiled), cl::cat(cat));
  cl::opt<std::string> tokenizer(
      "tokenizer", cl::desc("HF tokenizer.json to put into the bundle"),
      cl::value_desc("file"), cl::cat(cat));
  cl::opt<Emit> emit(
      "emit", cl::desc("Stop at a stage and write it to -o"),
      cl::values(
          clEnumValN(Emit::Bundle, "bundle", "the bundle folder (default)"),
          clEnumValN(Emit::MLIR, "mlir", "model-level MLIR after raising"),
          clEnumValN(Emit::ONNX, "onnx",
                     "the input ONNX graph with the recipe's quantized "
                     "weights (as qwen-translate --export-onnx)"),
          clEnumValN(Emit::LinalgMLIR, "linalg",
                     "MLIR lowered to linalg on tensors"),
          clEnumValN(Emit::LLVMMLIR, "llvm-mlir", "MLIR in the LLVM dialect"),
          clEnumValN(Emit::LLVMIR, "llvm", "optimized LLVM IR"),
          clEnumValN(Emit::Asm, "asm", "target assembly"),
          clEnumValN(Emit::Obj, "obj", "target object file"),
          clEnumValN(Emit::PTX, "ptx",
                     "CUDA targets: the kernels' PTX (needs no CUDA toolkit)")),
      cl::init(Emit::Bundle), cl::cat(cat));
  cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimization level (0-3)"),
                             cl::init(3), cl::Prefix, cl::cat(cat));
  cl::opt<bool> reassoc(
      "fp-reassociate",
      cl::desc("Allow LLVM to reassociate float sums and form FMAs (vectorized "
               "reductions; default on)"),
      cl::init(true), cl::cat(cat));
  cl::opt<bool> noRaise(
      "no-raise",
      cl::desc("Skip raising to model-level ops: compile the ONNX graph "
               "through the generic lowering (for debugging and comparison)"),
      cl::cat(cat));
  cl::opt<bool> keepWork("keep-work",
                         cl::desc("Keep the work folder (intermediate stores)"),
                         cl::cat(cat));
  cl::opt<bool> verbose("v", cl::desc("Print each stage and its time"),
                        cl::cat(cat));
  cl::HideUnrelatedOptions(cat);
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          "qwen-compile: compile an ONNX Qwen model into an ahead-of-time "
          "bundle\n"))
    return 2;
  if (optLevel > 3) {
    llvm::errs() << "qwen-compile: error: -O" << optLevel
                 << ": expected 0, 1, 2 or 3\n";
    return 2;
  }
  if (emit == Emit::Bundle && output == "-") {
    llvm::errs() << "qwen-compile: error: -o -: a bundle is a folder, not "
                    "stdout\n";
    return 2;
  }
  if (emit == Emit::ONNX && output == "-") {
    llvm::errs() << "qwen-compile: error: -o -: --emit=onnx writes a file "
                    "(and <file>.data for models over 1.8 GB)\n";
    return 2;
  }
  qwen::compiler::Options o;
  o.input = input;
  o.output = output;
  o.target = target;
  o.recipe = recipe;
  o.tokenizer = tokenizer;
  o.calib = calib;
  o.calibMethod = calibMethod;
  o.calibText = calibText;
  o.calibSeqLen = calibSeqLen;
  o.calibMaxTokens = calibMaxTokens;
  o.printAssignment = printAssignment;
  o.emit = emit;
  o.ptxas = ptxas;
  o.fatbinary = fatbinary;
  o.gpuGemm = gpuGemm == GpuGemm::Tiled ? "tiled" : "direct";
  o.optLevel = optLevel;
  o.keepWork = keepWork;
  o.reassociate = reassoc;
  o.raise = !noRaise;
  o.verbose = verbose;
  return qwen::compiler::compile(o);
}
