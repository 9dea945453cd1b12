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
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
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

bool parseCudaTargets(llvm::StringRef target,
                      llvm::SmallVectorImpl<std::string> &archs,
                      std::string &err) {
  llvm::SmallVector<llvm::StringRef> parts;
  target.split(parts, ',');
  for (llvm::StringRef a : parts) {
    a = a.trim();
    if (!isSupportedArch(a)) {
      err = "--target '" + target.str() + "': " +
            (parts.size() == 1 ? "unsupported CUDA architecture"
                               : "'" + a.str() +
                                     "' is not a supported CUDA architecture") +
            " (supported: " + kSupportedArchs + ")";
      return false;
    }
    if (llvm::is_contained(archs, a)) {
      err = "--target '" + target.str() + "': " + a.str() + " is listed twice";
      return false;
    }
    archs.push_back(a.str());
  }
  // sm_XY names of one length sort by capability.
  llvm::sort(archs);
  return true;
}

std::optional<std::string> findCudaTool(llvm::StringRef name,
                                        llvm::StringRef flag,
                                        llvm::StringRef explicitPath,
                                        llvm::StringRef besides,
                                        std::string &err) {
  if (!explicitPath.empty()) {
    if (fs::can_execute(explicitPath))
      return explicitPath.str();
    err = "--" + flag.str() + " '" + explicitPath.str() +
          "' is not an executable file";
    return std::nullopt;
  }
  std::vector<std::string> searched;
  if (!besides.empty())
    searched.push_back(llvm::sys::path::parent_path(besides).str() + "/" +
                       name.str());
  if (std::optional<std::string> home = llvm::sys::Process::GetEnv("CUDA_HOME"))
    if (!home->empty())
      searched.push_back(*home + "/bin/" + name.str());
  searched.push_back("/usr/local/cuda/bin/" + name.str());
  for (const std::string &p : searched)
    if (fs::can_execute(p))
      return p;
  if (llvm::ErrorOr<std::string> p = llvm::sys::findProgramByName(name))
    return *p;
  searched.push_back(name.str() + " on PATH");
  err = name.str() + " (CUDA toolkit) not found (searched " +
        llvm::join(searched, ", ") + ")";
  return std::nullopt;
}

std::optional<std::string> findPtxas(llvm::StringRef explicitPath,
                                     std::string &err) {
  std::optional<std::string> p =
      findCudaTool("ptxas", "ptxas", explicitPath, "", err);
  if (!p && explicitPath.empty())
    err += ": a CUDA bundle needs it to assemble the kernels; set CUDA_HOME or "
           "--ptxas, or use --emit=ptx, which needs no CUDA toolkit";
  return p;
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
        if (auto f = dyn_cast<mlir::gpu::GPUFuncOp>(op)) {
          f.setName(mod.getName());
          // LLVM assumes a shared array without explicit alignment has its
          // preferred one (16 bytes above 128 bits) and vectorizes accesses
          // to 16-byte ld/st.shared.v4, while the NVPTX printer emits the
          // element type's .align 4: state the 16 explicitly.
          for (unsigned i = 0; i < f.getNumWorkgroupAttributions(); ++i)
            f.setWorkgroupAttributionAttr(
                i, LLVM::LLVMDialect::getAlignAttrName(),
                b.getI64IntegerAttr(16));
        }
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

LogicalResult buildGPULoweringPipeline(OpPassManager &pm,
                                       llvm::ArrayRef<std::string> archs,
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
  // One NVVM target per architecture: gpu-module-to-binary then makes one
  // PTX object per target from the same kernels (they use sm_80 features
  // only, so every listed arch takes the same IR).
  std::string o = std::to_string(std::clamp(optLevel, 0, 3));
  std::string attach;
  for (const std::string &arch : archs) {
    // The 2:4 kernels' mma.sp m16n8k32 .f16 needs PTX ISA 7.1; LLVM writes
    // 7.0 for sm_80 unless told (7.1 and up for the others).
    std::string features = arch == "sm_80" ? " features=+ptx71" : "";
    attach +=
        "nvvm-attach-target{chip=" + arch + " O=" + o + features + "},";
  }
  if (failed(add("func.func(gpu-async-region)," + attach +
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

namespace {
/// Runs `tool args`, its output into `log`; on failure `err` says which tool
/// failed with its log.
bool runTool(llvm::StringRef tool, llvm::ArrayRef<std::string> args,
             llvm::StringRef log, std::string &err) {
  llvm::SmallVector<llvm::StringRef> argv = {tool};
  argv.append(args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log, log};
  std::string execErr;
  int rc = llvm::sys::ExecuteAndWait(tool, argv, std::nullopt, redirects, 0, 0,
                                     &execErr);
  if (rc == 0)
    return true;
  auto buf = llvm::MemoryBuffer::getFile(log);
  err = llvm::sys::path::filename(tool).str() + " '" + tool.str() +
        "' failed" + (execErr.empty() ? "" : ": " + execErr) +
        (buf ? "\n" + (*buf)->getBuffer().str() : "");
  return false;
}

bool writeFile(const std::string &path, llvm::StringRef data,
               std::string &err) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (!ec)
    os << data;
  if (ec || os.has_error()) {
    err = "'" + path + "': " + (ec ? ec : os.error()).message();
    return false;
  }
  return true;
}
} // namespace

bool assembleBinary(ModuleOp m, const CudaTools &tools,
                    llvm::ArrayRef<std::string> archs, llvm::StringRef workDir,
                    const std::string &outPath, std::string &err) {
  mlir::gpu::BinaryOp bin = theBinary(m);
  if (!bin || bin.getObjects().size() != archs.size()) {
    err = "internal: the module has no gpu.binary with one PTX object per "
          "architecture";
    return false;
  }
  // ptxas per architecture; the objects follow nvvm-attach-target's order,
  // which is `archs`'.
  std::vector<std::string> fatArgs = {"--64", "--create=" + outPath};
  std::string cubinPath, ptxPath;
  for (auto [arch, attr] : llvm::zip_equal(archs, bin.getObjects())) {
    auto obj = cast<mlir::gpu::ObjectAttr>(attr);
    if (obj.getFormat() != mlir::gpu::CompilationTarget::Assembly) {
      err = "internal: the gpu.binary object for " + arch + " is not PTX";
      return false;
    }
    ptxPath = workDir.str() + "/model." + arch + ".ptx";
    cubinPath = archs.size() == 1 ? outPath
                                  : workDir.str() + "/model." + arch + ".cubin";
    if (!writeFile(ptxPath, obj.getObject().getValue(), err) ||
        !runTool(tools.ptxas,
                 {"-arch=" + arch, "-O3", ptxPath, "-o", cubinPath},
                 workDir.str() + "/ptxas.log", err))
      return false;
    fatArgs.push_back("--image3=kind=elf,sm=" + arch.substr(3) +
                      ",file=" + cubinPath);
  }
  // Several: one fat binary with every cubin and the newest arch's PTX,
  // which the driver JIT-compiles on GPUs newer than all of them.
  if (archs.size() > 1) {
    fatArgs.push_back("--image3=kind=ptx,sm=" + archs.back().substr(3) +
                      ",file=" + ptxPath);
    if (!runTool(tools.fatbinary, fatArgs, workDir.str() + "/fatbinary.log",
                 err))
      return false;
  }
  auto binary = llvm::MemoryBuffer::getFile(outPath, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!binary) {
    err = "'" + outPath + "': " + binary.getError().message();
    return false;
  }
  // The host code embeds the one object (cuModuleLoadData takes a cubin or
  // a fat binary alike).
  auto first = cast<mlir::gpu::ObjectAttr>(bin.getObjects()[0]);
  MLIRContext *ctx = m.getContext();
  auto object = mlir::gpu::ObjectAttr::get(
      ctx, first.getTarget(), mlir::gpu::CompilationTarget::Binary,
      StringAttr::get(ctx, (*binary)->getBuffer()), first.getProperties(),
      first.getKernels());
  bin.setObjectsAttr(ArrayAttr::get(ctx, {object}));
  return true;
}

} // namespace qwen::compiler::gpu
