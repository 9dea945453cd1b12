//===- GPUPipeline.cpp - qwen-compile --target sm_XY ----------------------===//
//
// See include/qwen/Compiler/GPUPipeline.h. The lowering, in order:
//   bufferize, deallocate              as for the CPU
//   --qwen-gpu-fused-kernels           weight-only linears: the fused GEMV
//   convert-linalg-to-parallel-loops   every other linalg op: a loop nest
//   --qwen-gpu-map-kernels             loop nests -> gpu.launch, buffers ->
//                                      device memory, host accesses = error
//   gpu-kernel-outlining, one module   all kernels in one gpu.module
//   gpu-async-region                   kernels, copies, allocations chained
//                                      on one stream, synchronized and
//                                      destroyed before the entry returns
//   nvvm-attach-target, convert-gpu-to-nvvm, gpu-to-llvm
//                                      (dynamic shared memory made extern)
//   gpu-module-to-binary{format=isa}   PTX from LLVM's NVPTX back end
//
//===----------------------------------------------------------------------===//

#include "qwen/Compiler/GPUPipeline.h"
#include "qwen/Compiler/Passes.h"
#include "qwen/Transforms/GPUKernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace fs = llvm::sys::fs;

namespace qwen::compiler::gpu {

const char *const kSupportedArchs = "sm_80, sm_86, sm_89, sm_90";

bool isCudaTarget(llvm::StringRef target) { return target.starts_with("sm_"); }

bool isSupportedArch(llvm::StringRef target) {
  return llvm::is_contained({"sm_80", "sm_86", "sm_89", "sm_90"}, target);
}

std::optional<std::string> findPtxas(llvm::StringRef explicitPath,
                                     std::string &err) {
  if (!explicitPath.empty()) {
    if (fs::can_execute(explicitPath))
      return explicitPath.str();
    err = "--ptxas '" + explicitPath.str() + "' is not an executable file";
    return std::nullopt;
  }
  std::vector<std::string> searched;
  if (std::optional<std::string> home = llvm::sys::Process::GetEnv("CUDA_HOME"))
    if (!home->empty())
      searched.push_back(*home + "/bin/ptxas");
  searched.push_back("/usr/local/cuda/bin/ptxas");
  for (const std::string &p : searched)
    if (fs::can_execute(p))
      return p;
  if (llvm::ErrorOr<std::string> p = llvm::sys::findProgramByName("ptxas"))
    return *p;
  searched.push_back("ptxas on PATH");
  err = "ptxas (CUDA toolkit) not found (searched " +
        llvm::join(searched, ", ") +
        "): a CUDA bundle needs it to assemble model.cubin; set CUDA_HOME or "
        "--ptxas, or use --emit=ptx, which needs no CUDA toolkit";
  return std::nullopt;
}

namespace {

/// Moves every outlined kernel into the first gpu.module (one binary, one
/// model.cubin) and points the launches at it.
struct MergeGPUModulesPass
    : PassWrapper<MergeGPUModulesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(MergeGPUModulesPass)
  StringRef getArgument() const final { return "qwen-gpu-merge-modules"; }
  void runOnOperation() override {
    ModuleOp m = getOperation();
    auto mods = llvm::to_vector(m.getOps<mlir::gpu::GPUModuleOp>());
    if (mods.empty())
      return;
    // Outlining names every kernel after the host function, and its module
    // uniquely: the kernel takes its module's name.
    OpBuilder b = OpBuilder::atBlockBegin(m.getBody());
    auto into = mlir::gpu::GPUModuleOp::create(b, m.getLoc(), "qwen_kernels");
    Block &dst = into.getBodyRegion().front();
    for (mlir::gpu::GPUModuleOp mod : mods) {
      for (Operation &op :
           llvm::make_early_inc_range(mod.getBodyRegion().front())) {
        if (auto f = dyn_cast<mlir::gpu::GPUFuncOp>(op))
          f.setName(mod.getName());
        op.moveBefore(&dst, dst.end());
      }
      mod.erase();
    }
    m.walk([&](mlir::gpu::LaunchFuncOp l) {
      l.setKernelAttr(SymbolRefAttr::get(
          into.getNameAttr(),
          {FlatSymbolRefAttr::get(l.getKernelModuleName())}));
    });
  }
};

/// Gives the dynamic shared memory of the kernels (gpu.dynamic_shared_memory,
/// lowered by convert-gpu-to-nvvm to an internal zero-sized array in address
/// space 3) external linkage: NVPTX prints an internal [0 x i8] as a
/// one-byte static `.shared .b8 name;`, an external one as the
/// `.extern .shared .b8 name[];` that names the launch's dynamic shared
/// memory.
struct ExternDynamicSharedPass
    : PassWrapper<ExternDynamicSharedPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ExternDynamicSharedPass)
  StringRef getArgument() const final {
    return "qwen-gpu-extern-dynamic-shared";
  }
  void runOnOperation() override {
    getOperation().walk([](LLVM::GlobalOp g) {
      auto t = dyn_cast<LLVM::LLVMArrayType>(g.getGlobalType());
      if (g.getAddrSpace() == 3 && t && t.getNumElements() == 0 &&
          g.getLinkage() == LLVM::Linkage::Internal) {
        g.setLinkage(LLVM::Linkage::External);
        g.removeValueAttr();
      }
    });
  }
};

} // namespace

LogicalResult buildGPULoweringPipeline(OpPassManager &pm, llvm::StringRef arch,
                                       int optLevel, llvm::StringRef gemm) {
  auto add = [&](llvm::StringRef text) {
    std::string err;
    llvm::raw_string_ostream os(err);
    if (failed(parsePassPipeline(text, pm, os))) {
      llvm::errs() << "qwen-compile: error: internal pass pipeline '" << text
                   << "': " << err << "\n";
      return failure();
    }
    return success();
  };
  pm.addPass(qwen::createBufferize());
  if (failed(add("buffer-deallocation-pipeline")))
    return failure();
  pm.addPass(qwen::gpu::createGPUFusedKernelsPass(gemm));
  if (failed(add("func.func(scf-forall-to-parallel),"
                 "func.func(convert-linalg-to-parallel-loops)")))
    return failure();
  pm.addPass(qwen::gpu::createGPUMapKernelsPass());
  if (failed(add("gpu-launch-sink-index-computations,gpu-kernel-outlining")))
    return failure();
  pm.addPass(std::make_unique<MergeGPUModulesPass>());
  std::string o = std::to_string(std::clamp(optLevel, 0, 3));
  // The 2:4 kernels' mma.sp m16n8k32 .f16 needs PTX ISA 7.1; LLVM writes
  // 7.0 for sm_80 unless told (7.1 and up for the others).
  std::string features = arch == "sm_80" ? " features=+ptx71" : "";
  if (failed(add("func.func(gpu-async-region),"
                 "nvvm-attach-target{chip=" +
                 arch.str() + " O=" + o + features +
                 "},"
                 "convert-vector-to-scf,expand-strided-metadata,lower-affine,"
                 "convert-scf-to-cf,convert-math-to-llvm,"
                 "gpu.module(convert-gpu-to-nvvm,canonicalize,cse)")))
    return failure();
  pm.addPass(std::make_unique<ExternDynamicSharedPass>());
  return add("convert-nvvm-to-llvm,"
             "gpu-to-llvm,"
             "convert-to-llvm,reconcile-unrealized-casts,"
             "gpu-module-to-binary{format=isa}");
}

namespace {
mlir::gpu::BinaryOp theBinary(ModuleOp m) {
  auto bins = llvm::to_vector(m.getOps<mlir::gpu::BinaryOp>());
  return bins.size() == 1 ? bins.front() : mlir::gpu::BinaryOp();
}
} // namespace

std::optional<std::string> getPTX(ModuleOp m) {
  mlir::gpu::BinaryOp bin = theBinary(m);
  if (!bin || bin.getObjects().size() != 1)
    return std::nullopt;
  auto obj = cast<mlir::gpu::ObjectAttr>(bin.getObjects()[0]);
  if (obj.getFormat() != mlir::gpu::CompilationTarget::Assembly)
    return std::nullopt;
  return obj.getObject().str();
}

bool assembleCubin(ModuleOp m, llvm::StringRef ptxas, llvm::StringRef arch,
                   llvm::StringRef workDir, const std::string &cubinPath,
                   std::string &err) {
  std::optional<std::string> ptx = getPTX(m);
  if (!ptx) {
    err = "internal: the module has no single PTX gpu.binary";
    return false;
  }
  std::string ptxPath = workDir.str() + "/model.ptx";
  std::string log = workDir.str() + "/ptxas.log";
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(ptxPath, ec);
    if (ec) {
      err = "'" + ptxPath + "': " + ec.message();
      return false;
    }
    os << *ptx;
  }
  std::string archFlag = "-arch=" + arch.str();
  llvm::SmallVector<llvm::StringRef> args = {ptxas,   archFlag, "-O3",
                                             ptxPath, "-o",     cubinPath};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log, log};
  std::string execErr;
  int rc = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects, 0, 0,
                                     &execErr);
  if (rc != 0) {
    auto buf = llvm::MemoryBuffer::getFile(log);
    err = "ptxas '" + ptxas.str() + "' failed" +
          (execErr.empty() ? "" : ": " + execErr) +
          (buf ? "\n" + (*buf)->getBuffer().str() : "");
    return false;
  }
  auto cubin = llvm::MemoryBuffer::getFile(cubinPath, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
  if (!cubin) {
    err = "'" + cubinPath + "': " + cubin.getError().message();
    return false;
  }
  mlir::gpu::BinaryOp bin = theBinary(m);
  auto obj = cast<mlir::gpu::ObjectAttr>(bin.getObjects()[0]);
  MLIRContext *ctx = m.getContext();
  auto cubinObj = mlir::gpu::ObjectAttr::get(
      ctx, obj.getTarget(), mlir::gpu::CompilationTarget::Binary,
      StringAttr::get(ctx, (*cubin)->getBuffer()), obj.getProperties(),
      obj.getKernels());
  bin.setObjectsAttr(ArrayAttr::get(ctx, {cubinObj}));
  return true;
}

} // namespace qwen::compiler::gpu
