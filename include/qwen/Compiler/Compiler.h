//===- Compiler.h - qwen-compile: ONNX model to an AOT bundle ---*- C++ -*-===//
//
// The whole path of `qwen-compile`: import -> raise -> (recipe) -> lower to
// linalg -> LLVM dialect -> LLVM IR -> object -> shared object, and the
// bundle around it (include/qwen/Runtime/BundleABI.h). Each stage can be
// emitted on its own for inspection.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_COMPILER_COMPILER_H
#define QWEN_COMPILER_COMPILER_H

#include <string>
#include <vector>

namespace qwen::compiler {

/// Where `qwen-compile` stops and what it writes to `-o`.
enum class Emit {
  Bundle,     // a bundle directory
  MLIR,       // model-level IR after raising and weight materialization
  ONNX,       // the source ONNX graph with the quantized weights (Export/)
  LinalgMLIR, // after lowering to linalg on tensors, weights as arguments
  LLVMMLIR,   // the LLVM dialect, with the bundle ABI's entry points
  LLVMIR,     // optimized LLVM IR for the target
  Asm,        // target assembly
  Obj,        // target object file
  PTX,        // CUDA targets: the kernels' PTX (no CUDA toolkit needed)
};

struct Options {
  std::string input;          // model.onnx
  std::string output;         // bundle dir, or file ("-" = stdout) for --emit
  /// An x86 CPU, or CUDA: sm_80/86/89/90 or a comma-separated list of them
  /// (one fat binary for all).
  std::string target = "host";
  /// CUDA targets: the ptxas to assemble the kernels with (empty: search
  /// $CUDA_HOME/bin, /usr/local/cuda/bin, PATH), and the fatbinary that packs
  /// several architectures (empty: beside ptxas, then the same search).
  std::string ptxas;
  std::string fatbinary;
  /// CUDA targets: the prefill GEMM of the fused linears, "tiled" or
  /// "direct" (--qwen-gpu-fused-kernels gemm=, see GPUKernels.h).
  std::string gpuGemm = "tiled";
  std::string recipe = "fp32";
  std::string tokenizer;      // optional tokenizer.json copied into the bundle
  Emit emit = Emit::Bundle;
  int optLevel = 3;           // LLVM optimization level 0..3
  bool raise = true;          // raise to model-level ops (else generic path)
  bool reassociate = true;    // fast-math reassoc + contract on float ops
  bool keepWork = false;      // keep the work folder (intermediate stores)
  bool verbose = false;       // print the stages and their times
  /// qwen-calibrate: after raising, --qwen-instrument-activations makes the
  /// input of every linear / logits op an output with role "observe" (the
  /// recipe must be fp32).
  bool instrumentActivations = false;
  /// --calib stats.json (qwen-calibrate) for static activation scales, and
  /// which threshold of it to use (max, percentile, percentile-99.9,
  /// entropy, mse; empty = the default, kDefaultCalibMethod).
  std::string calib;
  std::string calibMethod;
  /// --calib-text: calibration text for the data-driven recipes (GPTQ,
  /// AWQ, clip search, bias correction, SmoothQuant, static activation
  /// scales), tokenized with --tokenizer into sequences of calibSeqLen
  /// tokens, at most calibMaxTokens in all.
  std::string calibText;
  int64_t calibSeqLen = 256;
  int64_t calibMaxTokens = 16384;
  /// mixed-<bits>: print --qwen-assign-precision's table to stdout.
  bool printAssignment = false;
};

/// The calibration method --calib-method defaults to.
extern const char *const kDefaultCalibMethod;

/// The x86 CPU names accepted by --target besides any CPU LLVM knows.
extern const char *const kNamedTargets[];

/// Runs the compiler. Errors go to stderr as `qwen-compile: error: ...`
/// naming the file, node or flag; returns the process exit code. Never
/// leaves a partial output behind.
int compile(const Options &options);

} // namespace qwen::compiler

#endif // QWEN_COMPILER_COMPILER_H
