//===- Cuda.h - the CUDA driver API, loaded at run time ---------*- C++ -*-===//
//
// libqwen_runtime must build and run without CUDA: the driver (libcuda.so.1,
// or the file named by $QWEN_CUDA_DRIVER) is opened with dlopen when a CUDA
// bundle is opened, and only the few driver types and entry points the
// runtime calls are declared here (their ABI is stable across drivers; the
// _v2 names are the ones the driver exports for the 64-bit API).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_LIB_RUNTIME_CUDA_H
#define QWEN_LIB_RUNTIME_CUDA_H

#include "qwen_runtime.h"

#include "qwen/Runtime/BundleABI.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qwen::rt::cuda {

/// What a CUDA bundle's kernels run on (manifest target.arch / archs / ptx):
/// a cubin per architecture, and optionally PTX that the driver compiles for
/// GPUs at least as new as its architecture.
struct Archs {
  std::vector<qwen::bundle::SmArch> cubins;
  std::vector<std::string> names; // of the cubins, as in the manifest
  std::optional<qwen::bundle::SmArch> ptx;
  std::string ptxName;

  /// Whether a device of compute capability major.minor runs one of them.
  bool runOn(int major, int minor) const;
  /// "sm_80", or "sm_80, sm_90 (and PTX for sm_90 or newer)".
  std::string describe() const;
};

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUevent = struct CUevent_st *;

enum : int {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
  CU_STREAM_NON_BLOCKING = 1,
  CU_EVENT_DISABLE_TIMING = 2,
  CU_MEM_ATTACH_GLOBAL = 1,
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
  CU_JIT_ERROR_LOG_BUFFER = 5,
  CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
  CU_JIT_OPTIMIZATION_LEVEL = 7,
};

/// The driver's entry points, resolved with dlsym. The list is the X-macro
/// below: field name, exported symbol, signature.
#define QWEN_CUDA_ENTRY_POINTS(X)                                              \
  X(cuGetErrorName, "cuGetErrorName", CUresult (*)(CUresult, const char **))   \
  X(cuGetErrorString, "cuGetErrorString",                                      \
    CUresult (*)(CUresult, const char **))                                     \
  X(cuInit, "cuInit", CUresult (*)(unsigned))                                  \
  X(cuDeviceGetCount, "cuDeviceGetCount", CUresult (*)(int *))                 \
  X(cuDeviceGet, "cuDeviceGet", CUresult (*)(CUdevice *, int))                 \
  X(cuDeviceGetName, "cuDeviceGetName", CUresult (*)(char *, int, CUdevice))   \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute",                              \
    CUresult (*)(int *, int, CUdevice))                                        \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain",                      \
    CUresult (*)(CUcontext *, CUdevice))                                       \
  X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2",                 \
    CUresult (*)(CUdevice))                                                    \
  X(cuCtxPushCurrent, "cuCtxPushCurrent_v2", CUresult (*)(CUcontext))          \
  X(cuCtxPopCurrent, "cuCtxPopCurrent_v2", CUresult (*)(CUcontext *))          \
  X(cuMemAlloc, "cuMemAlloc_v2", CUresult (*)(CUdeviceptr *, size_t))          \
  X(cuMemAllocManaged, "cuMemAllocManaged",                                    \
    CUresult (*)(CUdeviceptr *, size_t, unsigned))                             \
  X(cuMemFree, "cuMemFree_v2", CUresult (*)(CUdeviceptr))                      \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2",                                           \
    CUresult (*)(CUdeviceptr, const void *, size_t))                           \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2",                                           \
    CUresult (*)(void *, CUdeviceptr, size_t))                                 \
  X(cuMemcpyAsync, "cuMemcpyAsync",                                            \
    CUresult (*)(CUdeviceptr, CUdeviceptr, size_t, CUstream))                  \
  X(cuMemsetD32Async, "cuMemsetD32Async",                                      \
    CUresult (*)(CUdeviceptr, unsigned, size_t, CUstream))                     \
  X(cuMemsetD16Async, "cuMemsetD16Async",                                      \
    CUresult (*)(CUdeviceptr, unsigned short, size_t, CUstream))               \
  X(cuModuleLoadData, "cuModuleLoadData",                                      \
    CUresult (*)(CUmodule *, const void *))                                    \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx",                                  \
    CUresult (*)(CUmodule *, const void *, unsigned, int *, void **))          \
  X(cuModuleUnload, "cuModuleUnload", CUresult (*)(CUmodule))                  \
  X(cuModuleGetFunction, "cuModuleGetFunction",                                \
    CUresult (*)(CUfunction *, CUmodule, const char *))                        \
  X(cuFuncSetAttribute, "cuFuncSetAttribute",                                  \
    CUresult (*)(CUfunction, int, int))                                        \
  X(cuLaunchKernel, "cuLaunchKernel",                                          \
    CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, \
                 unsigned, unsigned, CUstream, void **, void **))              \
  X(cuStreamCreate, "cuStreamCreate", CUresult (*)(CUstream *, unsigned))      \
  X(cuStreamSynchronize, "cuStreamSynchronize", CUresult (*)(CUstream))        \
  X(cuStreamDestroy, "cuStreamDestroy_v2", CUresult (*)(CUstream))             \
  X(cuStreamWaitEvent, "cuStreamWaitEvent",                                    \
    CUresult (*)(CUstream, CUevent, unsigned))                                 \
  X(cuEventCreate, "cuEventCreate", CUresult (*)(CUevent *, unsigned))         \
  X(cuEventDestroy, "cuEventDestroy_v2", CUresult (*)(CUevent))                \
  X(cuEventSynchronize, "cuEventSynchronize", CUresult (*)(CUevent))           \
  X(cuEventRecord, "cuEventRecord", CUresult (*)(CUevent, CUstream))

/// Names a function pointer type written in declarator form.
template <typename T> using FnPtr = T;

struct Driver {
  std::string path; // as given to dlopen
#define QWEN_CUDA_FIELD(field, symbol, type) FnPtr<type> field = nullptr;
  QWEN_CUDA_ENTRY_POINTS(QWEN_CUDA_FIELD)
#undef QWEN_CUDA_FIELD

  /// "<call> failed: CUDA_ERROR_X (the driver's description)".
  std::string describe(const char *call, CUresult r) const;
};

/// The driver named by $QWEN_CUDA_DRIVER, else libcuda.so.1, opened once per
/// process and path and never closed (contexts and modules may outlive any
/// one bundle). Null with `error` set (dlerror, or the missing entry point).
const Driver *loadDriver(std::string &error);

/// The GPU a CUDA bundle runs on: its primary context, retained for the
/// bundle's lifetime, and the bundle's weights in device memory.
struct Device {
  const Driver *driver = nullptr;
  int ordinal = 0;
  CUdevice device = 0;
  CUcontext context = nullptr;
  std::string name;
  int ccMajor = 0, ccMinor = 0;
  /// weights.bin's weight span [base offset, end) in device memory.
  CUdeviceptr weights = 0;
  uint64_t weightsBase = 0;
  /// A small allocation standing for zero-size tensors (the past KV of the
  /// first call, empty weights): memref descriptors need a valid address.
  CUdeviceptr empty = 0;
  /// This library reopened RTLD_GLOBAL (see exposeGpuRuntime in Bundle.cpp).
  void *runtimeGlobal = nullptr;

  ~Device();
};

/// While alive, the device's context is current on this thread and the
/// MLIR GPU runtime functions (mgpu*) that model.so calls on this thread run
/// on `device`, recording their first driver error here (they cannot return
/// it through the generated code); calls after an error are no-ops, frees
/// excepted. Restores the thread's previous context on exit.
class Scope {
public:
  explicit Scope(Device &device);
  ~Scope();
  Scope(const Scope &) = delete;
  Scope &operator=(const Scope &) = delete;

  /// False when the context could not be made current (error() says why).
  bool failed() const { return !error_.empty(); }
  const std::string &error() const { return error_; }
  /// The status for error(): QWEN_ERR_OUT_OF_MEMORY for device memory
  /// exhaustion, QWEN_ERR_DEVICE otherwise.
  qwen_status status() const { return status_; }
  /// Records `r` if it is an error and none was recorded; true if r is OK.
  bool check(CUresult r, const char *call, const std::string &what);

  Device &device() { return device_; }

private:
  Device &device_;
  Scope *previous_;
  bool pushed_ = false;
  std::string error_;
  qwen_status status_ = QWEN_OK;
};

/// A device allocation freed on scope exit unless released.
class DeviceBuffer {
public:
  explicit DeviceBuffer(Device &device) : device_(device) {}
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  /// Allocates `bytes` (at least 1) and copies `host` into it.
  bool upload(Scope &scope, const void *host, size_t bytes,
              const std::string &what);
  CUdeviceptr get() const { return ptr_; }
  /// The caller owns the allocation from now on.
  CUdeviceptr release() {
    CUdeviceptr p = ptr_;
    ptr_ = 0;
    return p;
  }

private:
  Device &device_;
  CUdeviceptr ptr_ = 0;
};

/// "sm_XY" of a compute capability.
std::string smName(int major, int minor);

/// Opens the device a bundle compiled for `arch` (manifest "target"."arch",
/// parsed as `want`) runs on: loads the driver, cuInit, device
/// $QWEN_CUDA_DEVICE (default 0), checks its compute capability against
/// `want` and retains its primary context. On failure, sets qwen_last_error
/// (naming `dir`) and returns its status.
qwen_status openDevice(const std::string &dir, const Archs &want,
                       std::unique_ptr<Device> &out);

} // namespace qwen::rt::cuda

#endif // QWEN_LIB_RUNTIME_CUDA_H
