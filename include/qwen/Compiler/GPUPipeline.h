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

#include "llvm/ADT/SmallVector.h"

#include <optional>
#include <string>

namespace qwen::compiler::gpu {

/// The CUDA architectures --target accepts, comma separated ("sm_80, ...").
extern const char *const kSupportedArchs;

/// Whether --target names a CUDA architecture (sm_*), supported or not.
bool isCudaTarget(llvm::StringRef target);
/// Whether it is one qwen-compile supports.
bool isSupportedArch(llvm::StringRef target);

/// The architectures of --target: one or a comma-separated list of
/// supported ones ("sm_80,sm_90"), sorted, each once. On failure `err` is the
/// message naming the flag and the bad entry.
bool parseCudaTargets(llvm::StringRef target,
                      llvm::SmallVectorImpl<std::string> &archs,
                      std::string &err);

/// The CUDA toolkit program `name` to run: `explicitPath` if given (it must
/// be executable; `flag` names the option in the error), else beside the
/// file `besides` (the same toolkit), $CUDA_HOME/bin, /usr/local/cuda/bin,
/// then PATH. On failure `err` says what was searched.
std::optional<std::string> findCudaTool(llvm::StringRef name,
                                        llvm::StringRef flag,
                                        llvm::StringRef explicitPath,
                                        llvm::StringRef besides,
                                        std::string &err);

/// findCudaTool for ptxas, with what to do when it is missing in `err`.
std::optional<std::string> findPtxas(llvm::StringRef explicitPath,
                                     std::string &err);

/// The toolkit programs a bundle needs: ptxas, and fatbinary for several
/// architectures.
struct CudaTools {
  std::string ptxas;
  std::string fatbinary;
};

/// Adds the passes from linalg on tensors (the entry function named
/// `qwen_model_main` with llvm.emit_c_interface) to the LLVM dialect: one
/// gpu.module of NVVM kernels serialized to PTX once per architecture of
/// `archs` (a gpu.binary of format isa with one object each, in that order),
/// and host code calling the mgpu* runtime functions. `gemm` picks the
/// prefill GEMM of the fused linears ("tiled" or "direct").
mlir::LogicalResult buildGPULoweringPipeline(mlir::OpPassManager &pm,
                                             llvm::ArrayRef<std::string> archs,
                                             int optLevel,
                                             llvm::StringRef gemm = "tiled");

/// The PTX of the module's gpu.binary when it has a single object (after the
/// pipeline for one architecture).
std::optional<std::string> getPTX(mlir::ModuleOp m);

/// Assembles the PTX of each architecture with ptxas; one architecture: the
/// cubin is written to `outPath`; several: their cubins and the newest one's
/// PTX (for the driver's JIT on newer GPUs) are packed by fatbinary into
/// `outPath`. The gpu.binary's objects are replaced by that one file, so
/// the host code embeds what the bundle ships. Errors (with the tool's log)
/// go to `err`.
bool assembleBinary(mlir::ModuleOp m, const CudaTools &tools,
                    llvm::ArrayRef<std::string> archs,
                    llvm::StringRef workDir, const std::string &outPath,
                    std::string &err);

} // namespace qwen::compiler::gpu

#endif // QWEN_COMPILER_GPUPIPELINE_H
