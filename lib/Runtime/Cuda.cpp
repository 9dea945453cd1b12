//===- Cuda.cpp - CUDA driver loading and the MLIR GPU runtime ABI --------===//
//
// The driver is dlopen()ed (no CUDA at build time). A CUDA bundle's model.so
// calls the MLIR GPU runtime functions (mgpu*, the ABI of LLVM 22's
// mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp, as emitted by
// --gpu-to-llvm and gpu.binary's LLVM translation); this library defines them
// over the loaded driver. Their errors cannot travel back through the
// generated code, so each one is recorded in the runtime call (Scope) that
// runs the model on this thread and reported by that call when forward
// returns; after an error, every further call is a no-op except the ones
// that release resources.
//
//===----------------------------------------------------------------------===//

#include "Cuda.h"

#include "RuntimeImpl.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <mutex>

using namespace qwen::rt;
using namespace qwen::rt::cuda;

namespace {

/// The Scope of the runtime call running model code on this thread.
thread_local Scope *tlsScope = nullptr;

/// An mgpu* call on a thread without a Scope (model code the runtime did
/// not call): there is no device to run it on, so it is reported by the next
/// Scope on any thread.
std::mutex gOrphanMutex;
std::string gOrphanError;

void recordOrphan(const char *fn) {
  std::lock_guard<std::mutex> lock(gOrphanMutex);
  if (gOrphanError.empty())
    gOrphanError = std::string(fn) +
                   " was called outside a forward call of the runtime (no "
                   "CUDA context to run it in)";
}

} // namespace

namespace qwen::rt::cuda {

std::string Driver::describe(const char *call, CUresult r) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName(r, &name) != CUDA_SUCCESS || !name)
    name = nullptr;
  if (cuGetErrorString(r, &text) != CUDA_SUCCESS || !text)
    text = nullptr;
  std::string s = std::string(call) + " failed: ";
  s += name ? name : "CUDA error " + std::to_string(r);
  if (text)
    s += std::string(" (") + text + ")";
  return s;
}

const Driver *loadDriver(std::string &error) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Driver>> loaded;
  const char *env = std::getenv("QWEN_CUDA_DRIVER");
  std::string path = env && *env ? env : "libcuda.so.1";
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(path);
  if (it != loaded.end())
    return it->second.get();
  dlerror();
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *e = dlerror();
    error = e ? e : path + ": cannot be loaded";
    return nullptr;
  }
  auto d = std::make_unique<Driver>();
  d->path = path;
#define QWEN_CUDA_RESOLVE(field, symbol, type)                                 \
  d->field = reinterpret_cast<type>(dlsym(handle, symbol));                    \
  if (!d->field) {                                                             \
    error = path + ": the driver lacks " symbol " (too old a driver?)";        \
    dlclose(handle);                                                           \
    return nullptr;                                                            \
  }
  QWEN_CUDA_ENTRY_POINTS(QWEN_CUDA_RESOLVE)
#undef QWEN_CUDA_RESOLVE
  return (loaded[path] = std::move(d)).get();
}

std::string smName(int major, int minor) {
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

bool Archs::runOn(int major, int minor) const {
  for (const qwen::bundle::SmArch &a : cubins)
    if (qwen::bundle::smArchRunsOn(a, major, minor))
      return true;
  return ptx && qwen::bundle::ptxArchRunsOn(*ptx, major, minor);
}

std::string Archs::describe() const {
  std::string s;
  for (const std::string &n : names)
    s += (s.empty() ? "" : ", ") + n;
  if (ptx)
    s += " (and PTX for " + ptxName + " or newer)";
  return s;
}

qwen_status openDevice(const std::string &dir, const Archs &want,
                       std::unique_ptr<Device> &out) {
  const std::string arch = want.describe();
  const std::string bundle =
      "bundle '" + dir + "' is compiled for CUDA " + arch;
  std::string error;
  const Driver *d = loadDriver(error);
  if (!d)
    return fail(QWEN_ERR_DEVICE,
                bundle + " but the NVIDIA driver cannot be loaded: " + error);
  auto driverError = [&](const char *call, CUresult r) {
    return fail(QWEN_ERR_DEVICE,
                bundle + " but the driver (" + d->path +
                    ") cannot use a GPU: " + d->describe(call, r));
  };
  if (CUresult r = d->cuInit(0))
    return driverError("cuInit", r);
  int count = 0;
  if (CUresult r = d->cuDeviceGetCount(&count))
    return driverError("cuDeviceGetCount", r);
  int ordinal = 0;
  if (const char *env = std::getenv("QWEN_CUDA_DEVICE"); env && *env) {
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(env, &end, 10);
    if (*end || errno || v < 0 || v >= count)
      return fail(QWEN_ERR_DEVICE,
                  "QWEN_CUDA_DEVICE='" + std::string(env) +
                      "' is not a CUDA device index (this machine has " +
                      std::to_string(count) + " device" +
                      (count == 1 ? "" : "s") + ")");
    ordinal = int(v);
  } else if (count < 1) {
    return fail(QWEN_ERR_DEVICE,
                bundle + " but this machine has no CUDA device");
  }
  auto dev = std::make_unique<Device>();
  dev->driver = d;
  dev->ordinal = ordinal;
  char name[256] = {0};
  CUresult r;
  if ((r = d->cuDeviceGet(&dev->device, ordinal)))
    return driverError("cuDeviceGet", r);
  if ((r = d->cuDeviceGetName(name, int(sizeof(name) - 1), dev->device)))
    return driverError("cuDeviceGetName", r);
  if ((r = d->cuDeviceGetAttribute(&dev->ccMajor,
                                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                   dev->device)) ||
      (r = d->cuDeviceGetAttribute(&dev->ccMinor,
                                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                   dev->device)))
    return driverError("cuDeviceGetAttribute", r);
  dev->name = name;
  if (!want.runOn(dev->ccMajor, dev->ccMinor)) {
    std::string has = smName(dev->ccMajor, dev->ccMinor);
    return fail(QWEN_ERR_DEVICE,
                "bundle '" + dir + "' is compiled for " + arch +
                    "; this GPU (" + dev->name + ") is " + has +
                    ": recompile with qwen-compile --target " + has);
  }
  if ((r = d->cuDevicePrimaryCtxRetain(&dev->context, dev->device))) {
    dev->context = nullptr;
    return driverError("cuDevicePrimaryCtxRetain", r);
  }
  out = std::move(dev);
  return QWEN_OK;
}

Device::~Device() {
  if (runtimeGlobal)
    dlclose(runtimeGlobal);
  if (!context)
    return;
  if (weights || empty) {
    Scope scope(*this);
    if (weights)
      driver->cuMemFree(weights);
    if (empty)
      driver->cuMemFree(empty);
  }
  driver->cuDevicePrimaryCtxRelease(device);
}

Scope::Scope(Device &device) : device_(device), previous_(tlsScope) {
  tlsScope = this;
  {
    std::lock_guard<std::mutex> lock(gOrphanMutex);
    if (!gOrphanError.empty()) {
      error_ = std::move(gOrphanError);
      gOrphanError.clear();
      status_ = QWEN_ERR_DEVICE;
    }
  }
  pushed_ = check(device.driver->cuCtxPushCurrent(device.context),
                  "cuCtxPushCurrent", "making the CUDA context current");
}

Scope::~Scope() {
  if (pushed_) {
    CUcontext popped;
    device_.driver->cuCtxPopCurrent(&popped);
  }
  tlsScope = previous_;
}

bool Scope::check(CUresult r, const char *call, const std::string &what) {
  if (r == CUDA_SUCCESS)
    return true;
  if (error_.empty()) {
    error_ =
        what + " on " + device_.name + ": " + device_.driver->describe(call, r);
    status_ = r == CUDA_ERROR_OUT_OF_MEMORY ? QWEN_ERR_OUT_OF_MEMORY
                                            : QWEN_ERR_DEVICE;
  }
  return false;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_)
    device_.driver->cuMemFree(ptr_);
}

bool DeviceBuffer::upload(Scope &scope, const void *host, size_t bytes,
                          const std::string &what) {
  const Driver &d = *device_.driver;
  if (!scope.check(d.cuMemAlloc(&ptr_, bytes ? bytes : 1), "cuMemAlloc",
                   "allocating " + std::to_string(bytes) + " bytes for " +
                       what)) {
    ptr_ = 0;
    return false;
  }
  return bytes == 0 ||
         scope.check(d.cuMemcpyHtoD(ptr_, host, bytes), "cuMemcpyHtoD",
                     "copying " + what + " to the device");
}

} // namespace qwen::rt::cuda

//===----------------------------------------------------------------------===//
// The MLIR GPU runtime ABI (called by model.so)
//===----------------------------------------------------------------------===//

namespace {

/// The Scope an mgpu* call runs in, or null when the call must do nothing:
/// no Scope on this thread (recorded), or an earlier error in this one.
Scope *active(const char *fn) {
  Scope *s = tlsScope;
  if (!s) {
    recordOrphan(fn);
    return nullptr;
  }
  return s->failed() ? nullptr : s;
}

/// For calls that release resources: they run even after an error.
Scope *releasing(const char *fn) {
  Scope *s = tlsScope;
  if (!s)
    recordOrphan(fn);
  return s;
}

const Driver &drv(Scope *s) { return *s->device().driver; }

CUdeviceptr devPtr(void *p) { return reinterpret_cast<CUdeviceptr>(p); }

} // namespace

#define QWEN_MGPU extern "C" QWEN_API

QWEN_MGPU CUmodule mgpuModuleLoad(void *data, size_t /*gpuBlobSize*/) {
  Scope *s = active("mgpuModuleLoad");
  CUmodule module = nullptr;
  if (s)
    s->check(drv(s).cuModuleLoadData(&module, data), "cuModuleLoadData",
             "loading the model's kernels");
  return module;
}

/// PTX (gpu.binary with format = assembly), compiled by the driver's JIT.
QWEN_MGPU CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  Scope *s = active("mgpuModuleLoadJIT");
  CUmodule module = nullptr;
  if (!s)
    return nullptr;
  char log[4096] = {0};
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {log, reinterpret_cast<void *>(sizeof(log)),
                    reinterpret_cast<void *>(intptr_t(optLevel))};
  CUresult r = drv(s).cuModuleLoadDataEx(&module, data, 3, options, values);
  s->check(r, "cuModuleLoadDataEx",
           std::string("JIT-compiling the model's PTX") +
               (log[0] ? std::string(" (") + log + ")" : std::string()));
  return module;
}

QWEN_MGPU void mgpuModuleUnload(CUmodule module) {
  if (Scope *s = releasing("mgpuModuleUnload"); s && module)
    s->check(drv(s).cuModuleUnload(module), "cuModuleUnload",
             "unloading the model's kernels");
}

QWEN_MGPU CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  Scope *s = active("mgpuModuleGetFunction");
  CUfunction fn = nullptr;
  if (s)
    s->check(drv(s).cuModuleGetFunction(&fn, module, name),
             "cuModuleGetFunction",
             std::string("looking up kernel '") + (name ? name : "") + "'");
  return fn;
}

QWEN_MGPU void mgpuLaunchKernel(CUfunction fn, intptr_t gridX, intptr_t gridY,
                                intptr_t gridZ, intptr_t blockX,
                                intptr_t blockY, intptr_t blockZ, int32_t smem,
                                CUstream stream, void **params, void **extra,
                                size_t /*paramsCount*/) {
  Scope *s = active("mgpuLaunchKernel");
  if (!s)
    return;
  intptr_t dims[] = {gridX, gridY, gridZ, blockX, blockY, blockZ};
  for (intptr_t d : dims)
    if (d < 1 || uintptr_t(d) > UINT_MAX) {
      s->check(1 /*CUDA_ERROR_INVALID_VALUE*/, "cuLaunchKernel",
               "launching a kernel with grid/block dimension " +
                   std::to_string(d));
      return;
    }
  if (smem < 0) {
    s->check(1 /*CUDA_ERROR_INVALID_VALUE*/, "cuLaunchKernel",
             "launching a kernel with " + std::to_string(smem) +
                 " bytes of shared memory");
    return;
  }
  // Beyond 48 KiB, dynamic shared memory must be opted into per kernel.
  if (smem > 48 * 1024 &&
      !s->check(drv(s).cuFuncSetAttribute(
                    fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
                "cuFuncSetAttribute",
                "allowing " + std::to_string(smem) +
                    " bytes of dynamic shared memory"))
    return;
  s->check(drv(s).cuLaunchKernel(fn, unsigned(gridX), unsigned(gridY),
                                 unsigned(gridZ), unsigned(blockX),
                                 unsigned(blockY), unsigned(blockZ),
                                 unsigned(smem), stream, params, extra),
           "cuLaunchKernel", "launching a kernel");
}

QWEN_MGPU CUstream mgpuStreamCreate() {
  Scope *s = active("mgpuStreamCreate");
  CUstream stream = nullptr;
  if (s)
    s->check(drv(s).cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
             "cuStreamCreate", "creating a stream");
  return stream;
}

QWEN_MGPU void mgpuStreamSynchronize(CUstream stream) {
  // Runs after an error too: buffers freed next must be idle.
  if (Scope *s = releasing("mgpuStreamSynchronize"); s && stream)
    s->check(drv(s).cuStreamSynchronize(stream), "cuStreamSynchronize",
             "running the model's kernels");
}

QWEN_MGPU void mgpuStreamDestroy(CUstream stream) {
  if (Scope *s = releasing("mgpuStreamDestroy"); s && stream)
    s->check(drv(s).cuStreamDestroy(stream), "cuStreamDestroy",
             "destroying a stream");
}

QWEN_MGPU void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  if (Scope *s = active("mgpuStreamWaitEvent"))
    s->check(drv(s).cuStreamWaitEvent(stream, event, 0), "cuStreamWaitEvent",
             "ordering two streams");
}

QWEN_MGPU CUevent mgpuEventCreate() {
  Scope *s = active("mgpuEventCreate");
  CUevent event = nullptr;
  if (s)
    s->check(drv(s).cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
             "cuEventCreate", "creating an event");
  return event;
}

QWEN_MGPU void mgpuEventDestroy(CUevent event) {
  if (Scope *s = releasing("mgpuEventDestroy"); s && event)
    s->check(drv(s).cuEventDestroy(event), "cuEventDestroy",
             "destroying an event");
}

QWEN_MGPU void mgpuEventSynchronize(CUevent event) {
  if (Scope *s = releasing("mgpuEventSynchronize"); s && event)
    s->check(drv(s).cuEventSynchronize(event), "cuEventSynchronize",
             "waiting for an event");
}

QWEN_MGPU void mgpuEventRecord(CUevent event, CUstream stream) {
  if (Scope *s = active("mgpuEventRecord"))
    s->check(drv(s).cuEventRecord(event, stream), "cuEventRecord",
             "recording an event");
}

QWEN_MGPU void *mgpuMemAlloc(uint64_t sizeBytes, CUstream /*stream*/,
                             bool isHostShared) {
  Scope *s = active("mgpuMemAlloc");
  CUdeviceptr ptr = 0;
  if (!s)
    return nullptr;
  // cuMemAlloc refuses 0 bytes; an empty tensor still needs an address.
  size_t bytes = sizeBytes ? size_t(sizeBytes) : 1;
  std::string what = "allocating " + std::to_string(sizeBytes) +
                     " bytes of device memory for the model";
  CUresult r = isHostShared
                   ? drv(s).cuMemAllocManaged(&ptr, bytes, CU_MEM_ATTACH_GLOBAL)
                   : drv(s).cuMemAlloc(&ptr, bytes);
  if (!s->check(r, isHostShared ? "cuMemAllocManaged" : "cuMemAlloc", what))
    return nullptr;
  return reinterpret_cast<void *>(ptr);
}

QWEN_MGPU void mgpuMemFree(void *ptr, CUstream /*stream*/) {
  if (Scope *s = releasing("mgpuMemFree"); s && ptr)
    s->check(drv(s).cuMemFree(devPtr(ptr)), "cuMemFree",
             "freeing device memory");
}

QWEN_MGPU void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                          CUstream stream) {
  if (Scope *s = active("mgpuMemcpy"))
    s->check(drv(s).cuMemcpyAsync(devPtr(dst), devPtr(src), sizeBytes, stream),
             "cuMemcpyAsync",
             "copying " + std::to_string(sizeBytes) + " bytes");
}

QWEN_MGPU void mgpuMemset32(void *dst, unsigned int value, size_t count,
                            CUstream stream) {
  if (Scope *s = active("mgpuMemset32"))
    s->check(drv(s).cuMemsetD32Async(devPtr(dst), value, count, stream),
             "cuMemsetD32Async",
             "filling " + std::to_string(count) + " 32-bit words");
}

QWEN_MGPU void mgpuMemset16(void *dst, unsigned short value, size_t count,
                            CUstream stream) {
  if (Scope *s = active("mgpuMemset16"))
    s->check(drv(s).cuMemsetD16Async(devPtr(dst), value, count, stream),
             "cuMemsetD16Async",
             "filling " + std::to_string(count) + " 16-bit words");
}

/// The runtime picks the device ($QWEN_CUDA_DEVICE) before model code runs;
/// a model asking for another one is an error, not a silent switch.
QWEN_MGPU void mgpuSetDefaultDevice(int32_t device) {
  Scope *s = active("mgpuSetDefaultDevice");
  if (s && device != s->device().ordinal)
    s->check(101 /*CUDA_ERROR_INVALID_DEVICE*/, "mgpuSetDefaultDevice",
             "the model selects CUDA device " + std::to_string(device) +
                 " but the runtime runs it on device " +
                 std::to_string(s->device().ordinal) + " (QWEN_CUDA_DEVICE)");
}
