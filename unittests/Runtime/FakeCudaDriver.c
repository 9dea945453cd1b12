/*===- FakeCudaDriver.c - a CUDA driver stand-in, for tests only ----------===*
 *
 * Tests of CUDA bundles run where no GPU exists (CI). The runtime loads this
 * library instead of libcuda.so.1 only when $QWEN_CUDA_DRIVER names it; it is
 * built into the build tree for the tests and never installed.
 *
 * It implements every driver entry point the runtime resolves (lib/Runtime/
 * Cuda.h), with the driver's signatures and error codes, for one device
 * named "Fake GPU" whose compute capability is $FAKE_CUDA_CC (e.g. 86;
 * default 80).
 *
 * Device memory: by default every allocation fails with
 * CUDA_ERROR_OUT_OF_MEMORY. With FAKE_CUDA_MEMORY=host, allocations are host
 * memory (malloc) and copies are memcpy, so a fake model.so that computes on
 * the host (unittests/Runtime/FakeModel.c, FAKE_CUDA) can exercise the
 * runtime's device-memory paths. Kernels cannot run: module loads fail with
 * CUDA_ERROR_INVALID_IMAGE and launches with CUDA_ERROR_NOT_SUPPORTED.
 * With FAKE_CUDA_REPORT=1, the number of allocations still live at exit is
 * printed to stderr ("fake cuda: N live allocations"), to catch leaks.
 *===----------------------------------------------------------------------===*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_INVALID_HANDLE = 400,
  CUDA_ERROR_NOT_SUPPORTED = 801,
};

static const struct {
  CUresult code;
  const char *name, *text;
} kErrors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED",
     "initialization error"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE",
     "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE",
     "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT",
     "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE",
     "invalid resource handle"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED",
     "operation not supported"},
};

static int gInitialized = 0;
static int gContext; /* the primary context's identity */
static int gContextDepth = 0;
static long gLive = 0; /* live host-memory allocations */

static int hostMemory(void) {
  const char *m = getenv("FAKE_CUDA_MEMORY");
  return m && strcmp(m, "host") == 0;
}

static void report(void) {
  fprintf(stderr, "fake cuda: %ld live allocations\n", gLive);
}

/* For tests: allocations made and not yet freed. */
EXPORT long fake_cuda_live_allocations(void) { return gLive; }

EXPORT CUresult cuGetErrorName(CUresult r, const char **out) {
  for (size_t i = 0; i < sizeof(kErrors) / sizeof(kErrors[0]); ++i)
    if (kErrors[i].code == r) {
      *out = kErrors[i].name;
      return CUDA_SUCCESS;
    }
  *out = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuGetErrorString(CUresult r, const char **out) {
  for (size_t i = 0; i < sizeof(kErrors) / sizeof(kErrors[0]); ++i)
    if (kErrors[i].code == r) {
      *out = kErrors[i].text;
      return CUDA_SUCCESS;
    }
  *out = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuInit(unsigned flags) {
  if (flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (!gInitialized) {
    const char *r = getenv("FAKE_CUDA_REPORT");
    if (r && strcmp(r, "1") == 0)
      atexit(report);
  }
  gInitialized = 1;
  return CUDA_SUCCESS;
}

#define REQUIRE_INIT                                                           \
  if (!gInitialized)                                                           \
    return CUDA_ERROR_NOT_INITIALIZED;
#define REQUIRE_CONTEXT                                                        \
  REQUIRE_INIT                                                                 \
  if (gContextDepth == 0)                                                      \
    return CUDA_ERROR_INVALID_CONTEXT;

EXPORT CUresult cuDeviceGetCount(int *n) {
  REQUIRE_INIT
  *n = 1;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(int *dev, int ordinal) {
  REQUIRE_INIT
  if (ordinal != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  *dev = 0;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, int dev) {
  REQUIRE_INIT
  if (dev != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  if (len < 1)
    return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, (size_t)len, "%s", "Fake GPU");
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int *value, int attr, int dev) {
  REQUIRE_INIT
  if (dev != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  const char *cc = getenv("FAKE_CUDA_CC");
  int v = cc && *cc ? atoi(cc) : 80;
  if (attr == 75) /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    *value = v / 10;
  else if (attr == 76) /* ..._MINOR */
    *value = v % 10;
  else
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
  REQUIRE_INIT
  if (dev != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  *ctx = &gContext;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int dev) {
  REQUIRE_INIT
  return dev == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

EXPORT CUresult cuCtxPushCurrent_v2(void *ctx) {
  REQUIRE_INIT
  if (ctx != &gContext)
    return CUDA_ERROR_INVALID_CONTEXT;
  ++gContextDepth;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPopCurrent_v2(void **ctx) {
  REQUIRE_CONTEXT
  --gContextDepth;
  if (ctx)
    *ctx = &gContext;
  return CUDA_SUCCESS;
}

static CUresult allocate(CUdeviceptr *p, size_t bytes) {
  REQUIRE_CONTEXT
  if (bytes == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (!hostMemory())
    return CUDA_ERROR_OUT_OF_MEMORY;
  void *m = malloc(bytes);
  if (!m)
    return CUDA_ERROR_OUT_OF_MEMORY;
  ++gLive;
  *p = (CUdeviceptr)(uintptr_t)m;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
  return allocate(p, bytes);
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *p, size_t bytes,
                                  unsigned flags) {
  return allocate(p, bytes);
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr p) {
  REQUIRE_CONTEXT
  if (!p || !hostMemory())
    return CUDA_ERROR_INVALID_VALUE;
  free((void *)(uintptr_t)p);
  --gLive;
  return CUDA_SUCCESS;
}

static CUresult copy(void *dst, const void *src, size_t bytes) {
  REQUIRE_CONTEXT
  if (!hostMemory() || !dst || !src)
    return CUDA_ERROR_INVALID_VALUE;
  memcpy(dst, src, bytes);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src,
                                size_t bytes) {
  return copy((void *)(uintptr_t)dst, src, bytes);
}

EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  return copy(dst, (const void *)(uintptr_t)src, bytes);
}

EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                              void *stream) {
  return copy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
}

EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t n,
                                 void *stream) {
  REQUIRE_CONTEXT
  if (!hostMemory() || !dst)
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n; ++i)
    ((uint32_t *)(uintptr_t)dst)[i] = value;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value,
                                 size_t n, void *stream) {
  REQUIRE_CONTEXT
  if (!hostMemory() || !dst)
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n; ++i)
    ((uint16_t *)(uintptr_t)dst)[i] = value;
  return CUDA_SUCCESS;
}

/* No kernel can run here. */
EXPORT CUresult cuModuleLoadData(void **module, const void *image) {
  REQUIRE_CONTEXT
  return CUDA_ERROR_INVALID_IMAGE;
}

EXPORT CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned n,
                                   int *options, void **values) {
  REQUIRE_CONTEXT
  return CUDA_ERROR_INVALID_IMAGE;
}

EXPORT CUresult cuModuleUnload(void *module) {
  REQUIRE_INIT
  return CUDA_ERROR_INVALID_HANDLE;
}

EXPORT CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
  REQUIRE_CONTEXT
  return CUDA_ERROR_INVALID_HANDLE;
}

EXPORT CUresult cuFuncSetAttribute(void *fn, int attr, int value) {
  REQUIRE_CONTEXT
  return CUDA_ERROR_INVALID_HANDLE;
}

EXPORT CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz,
                               unsigned bx, unsigned by, unsigned bz,
                               unsigned smem, void *stream, void **params,
                               void **extra) {
  REQUIRE_CONTEXT
  return CUDA_ERROR_NOT_SUPPORTED;
}

/* Streams and events: work is synchronous here, so they only need to be
 * distinct valid handles. */
static int gHandles;

EXPORT CUresult cuStreamCreate(void **stream, unsigned flags) {
  REQUIRE_CONTEXT
  *stream = &gHandles;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(void *stream) {
  REQUIRE_CONTEXT
  return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamDestroy_v2(void *stream) {
  REQUIRE_CONTEXT
  return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamWaitEvent(void *stream, void *event, unsigned flags) {
  REQUIRE_CONTEXT
  return CUDA_SUCCESS;
}

EXPORT CUresult cuEventCreate(void **event, unsigned flags) {
  REQUIRE_CONTEXT
  *event = &gHandles;
  return CUDA_SUCCESS;
}

EXPORT CUresult cuEventDestroy_v2(void *event) {
  REQUIRE_CONTEXT
  return CUDA_SUCCESS;
}

EXPORT CUresult cuEventSynchronize(void *event) {
  REQUIRE_CONTEXT
  return CUDA_SUCCESS;
}

EXPORT CUresult cuEventRecord(void *event, void *stream) {
  REQUIRE_CONTEXT
  return CUDA_SUCCESS;
}
