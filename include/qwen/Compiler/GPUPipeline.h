//===- GPUPipeline.h - qwen-compile --target sm_XY --------------*- C++ -*-===//
//
// The CUDA back end of qwen-compile: the pass pipeline from linalg on
// tensors to an LLVM-dialect module whose host code launches the kernels of
// one gpu.binary, ptxas, and the helpers the driver needs for the bundle
// (include/qwen/Runtime/BundleABI.h; the CUDA form is in the contract of
// issue 10: model.so host code + model.cubin, "target" with kind "cuda").
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_COMPILER_GPUPIPELINE_H
#define QWEN_COMPILER_GPUPIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <optional>
#include <string>

namespace qwen::compiler::gpu {

/// The CUDA architectures --target accepts, comma separated ("sm_80, ...").
extern const char *const kSupportedArchs;

/// Whether --target names a CUDA architecture (sm_*), supported or not.
bool isCudaTarget(llvm::StringRef target);
/// Whether it is one qwen-compile supports.
bool isSupportedArch(llvm::StringRef target);

/// The ptxas to run: `explicitPath` if given (it must exist), else
/// $CUDA_HOME/bin/ptxas, /usr/local/cuda/bin/ptxas, then ptxas on PATH.
/// On failure `err` says what was searched.
std::optional<std::string> findPtxas(llvm::StringRef explicitPath,
                                     std::string &err);

/// Adds the passes from linalg on tensors (the entry function named
/// `qwen_model_main` with llvm.emit_c_interface) to the LLVM dialect: one
/// gpu.module of NVVM kernels for `arch`, serialized to PTX (a gpu.binary of
/// format isa), and host code calling the mgpu* runtime functions. `gemm`
/// picks the prefill GEMM of the fused linears ("tiled" or "direct").
mlir::LogicalResult buildGPULoweringPipeline(mlir::OpPassManager &pm,
                                             llvm::StringRef arch, int optLevel,
                                             llvm::StringRef gemm = "tiled");

/// The PTX of the module's single gpu.binary (after the pipeline).
std::optional<std::string> getPTX(mlir::ModuleOp m);

/// Assembles the PTX with ptxas for `arch` into `cubinPath` and replaces the
/// gpu.binary's object by the cubin, so the host code embeds the binary the
/// bundle ships. Errors (with ptxas's log) go to `err`.
bool assembleCubin(mlir::ModuleOp m, llvm::StringRef ptxas,
                   llvm::StringRef arch, llvm::StringRef workDir,
                   const std::string &cubinPath, std::string &err);

} // namespace qwen::compiler::gpu

#endif // QWEN_COMPILER_GPUPIPELINE_H
