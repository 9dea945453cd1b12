//===- BundleABI.h - The contract between qwen-compile and the runtime ---===//
//
// A bundle is a directory written by `qwen-compile` and read by the runtime
// (libqwen_runtime, `qwen-run`). This header is the single description of
// that contract; it is plain C/C++ (no LLVM, no MLIR) so both sides include
// it.
//
// Files of a bundle
// -----------------
//   manifest.json   what is below; written last, so a bundle without it is
//                   incomplete (qwen-compile writes into `<out>.tmp.<pid>`
//                   and renames the folder at the end).
//   model.so        the compiled model (ELF shared object for the target).
//   weights.bin     a qwen weight store (include/qwen/Support/WeightStore.h:
//                   mmappable, every tensor 64-byte aligned).
//   tokenizer.json  optional, an HF tokenizer.json copied unchanged.
//
// manifest.json (keys in this order; integers are JSON numbers)
// -------------
// {
//   "format": "qwen-bundle", "format_version": 1,
//   "compiler": "qwen-compile <version>",
//   "source": {"file": "<basename of the ONNX file>", "sha256": "<hex>"},
//   "model": {"architecture": "qwen2"|"qwen3"|"qwen"|"unknown",
//             "num_layers": L, "num_attention_heads": H, "num_kv_heads": Hkv,
//             "head_dim": D, "hidden_size": E, "vocab_size": V,
//             "kv_cache": true|false,
//             "eos_token_ids": [ids...]},          // may be empty
//   "recipe": {"name": "fp32"},
//   "target": {"name": "host"|"x86-64-v3"|"x86-64-v4",
//              "triple": "x86_64-unknown-linux-gnu", "cpu": "<llvm cpu>",
//              "features": ["avx", "avx2", ...]},  // see kCheckableFeatures
//   "entry": {"library": "model.so", "symbol": "qwen_model_forward",
//             "abi_version": 1},
//   "inputs": [ {"name": "<onnx name or weight name>", "role": ROLE,
//                "dtype": "f32"|"f16"|"i64"|"i32"|"i8"|"u8"|"i1",
//                "shape": [d0, d1, ...],           // -1 = dynamic
//                ("layer": l)                      // past_key / past_value
//                ("offset": o, "bytes": n)         // weight: in weights.bin
//              }, ... ],
//   "outputs": [ {"name", "role", "dtype", "shape", ("layer")}, ... ],
//   "files": [ {"path": "model.so", "bytes": n, "sha256": "<hex>"},
//              {"path": "weights.bin", ...}, {"path": "tokenizer.json", ...} ]
// }
//
// Input roles: "input_ids" [B, S] i64; "attention_mask" [B, P + S] (all
// ones, dtype as declared); "position_ids" [B, S] (P .. P+S-1);
// "past_key" / "past_value" [B, Hkv, P, D] f32 (P may be 0); "weight"
// (static shape, data at `offset` in weights.bin, never written).
// Output roles: "logits" [B, S, V] f32; "present_key" / "present_value"
// [B, Hkv, P + S, D] f32; "observe" [B, ..., K] f32 with "layers": [names]
// (only in bundles compiled for calibration: the input activation of the
// linear / logits layers named, see --qwen-instrument-activations). B is 1 for
// the runtime. A model without past inputs ("kv_cache": false) is run on the
// whole sequence at every step.
//
// model.so exports (C linkage)
// ---------------------------
//   int64_t qwen_model_abi_version(void);        // == QWEN_MODEL_ABI_VERSION
//   void    qwen_model_set_num_threads(int32_t);  // worker threads for forward
//   void    qwen_model_forward(void **args);
//
// args[i], for i < number of inputs (manifest order, weights included),
// points to a memref descriptor of the input's rank r:
//   struct { void *allocated; void *aligned; int64_t offset;
//            int64_t sizes[r]; int64_t strides[r]; }   // row-major strides
// args[n_inputs] points to a buffer of sum over outputs of
// QWEN_DESCRIPTOR_BYTES(rank) bytes, which forward fills with the output
// descriptors, in manifest order, back to back. Each output's buffer is
// allocated by the model with malloc; the caller owns it and releases it with
// free(descriptor.allocated). Outputs never alias inputs.
//
// CUDA bundles
// ------------
// A bundle for an NVIDIA GPU (qwen-compile --target sm_XY) is the same
// directory with one more file and a "target" of kind "cuda":
//   "target": {"name": "sm_90", "kind": "cuda", "arch": "sm_90",
//              "triple": "x86_64-unknown-linux-gnu",   // of model.so
//              "device_triple": "nvptx64-nvidia-cuda",
//              "binary": "model.cubin"}
// A target without "kind" (or "kind": "cpu") is the CPU target above; CUDA
// targets have no "features". "files" lists "binary" (model.cubin: the
// kernels as an sm_XY ELF, for inspection and checksums; model.so embeds the
// same kernels) with its size and sha256 like every other file.
// Several architectures (--target sm_80,sm_90) replace "arch" by
//   "archs": ["sm_80", "sm_90"], "ptx": "sm_90", "binary": "model.fatbin"
// (a CUDA fat binary: one cubin per arch and the PTX of "ptx", optional,
// which the driver JIT-compiles on newer GPUs).
//
// Opening a CUDA bundle: the runtime dlopen()s the NVIDIA driver
// (libcuda.so.1; $QWEN_CUDA_DRIVER names another file, for tests), cuInit,
// takes device $QWEN_CUDA_DEVICE (default 0), checks its compute capability
// against "arch" / "archs" (smArchRunsOn below: a cubin for sm_XY runs on X.Z
// with Z >= Y; "sm_XYa" only on exactly X.Y) and "ptx" (ptxArchRunsOn: any
// capability >= X.Y; one of them must run), retains the device's primary context
// and makes it current, and only then dlopen()s model.so (whose global
// constructors load the kernels). Every weight is copied once into device
// memory (freed when the bundle is closed).
//
// qwen_model_forward(args) of a CUDA bundle: every input descriptor's
// allocated/aligned pointer (weights included) is a CUDA device pointer
// (CUdeviceptr cast to void *) owned by the runtime; the descriptors
// themselves (sizes, strides, offset) are host memory. Outputs are device
// buffers allocated by the model with mgpuMemAlloc(bytes, stream,
// /*isHostShared=*/false); the caller owns them and releases them with
// mgpuMemFree (cuMemFree). forward enqueues its work on a stream of its own
// (mgpuStreamCreate) and synchronizes and destroys it before returning, so
// outputs are complete on return. Host code never dereferences device memory.
// qwen_model_set_num_threads is a no-op.
//
// model.so has undefined references to the MLIR GPU runtime ABI (LLVM 22,
// mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp), which libqwen_runtime
// defines and exports, and makes global before it dlopen()s model.so (also
// when the runtime itself was loaded with RTLD_LOCAL, e.g. by ctypes):
//   CUmodule   mgpuModuleLoad(void *cubin, size_t bytes);
//   CUmodule   mgpuModuleLoadJIT(void *ptx, int optLevel);
//   void       mgpuModuleUnload(CUmodule);
//   CUfunction mgpuModuleGetFunction(CUmodule, const char *name);
//   void       mgpuLaunchKernel(CUfunction, intptr_t gridX, intptr_t gridY,
//                               intptr_t gridZ, intptr_t blockX,
//                               intptr_t blockY, intptr_t blockZ,
//                               int32_t sharedBytes, CUstream, void **params,
//                               void **extra, size_t numParams);
//   CUstream   mgpuStreamCreate(void);
//   void       mgpuStreamSynchronize(CUstream), mgpuStreamDestroy(CUstream);
//   void       mgpuStreamWaitEvent(CUstream, CUevent);
//   CUevent    mgpuEventCreate(void);
//   void       mgpuEventDestroy(CUevent), mgpuEventSynchronize(CUevent);
//   void       mgpuEventRecord(CUevent, CUstream);
//   void      *mgpuMemAlloc(uint64_t bytes, CUstream, bool isHostShared);
//   void       mgpuMemFree(void *, CUstream);
//   void       mgpuMemcpy(void *dst, void *src, size_t bytes, CUstream);
//   void       mgpuMemset32(void *, uint32_t value, size_t count, CUstream);
//   void       mgpuMemset16(void *, uint16_t value, size_t count, CUstream);
//   void       mgpuSetDefaultDevice(int32_t);  // must name the runtime's
//                                              // device
// They cannot return errors to the generated code: the first driver error of
// a forward call is recorded, every later call of that forward is a no-op
// (except frees, destroys and synchronizations), and the runtime reports the
// error (qwen_last_error, naming the driver call and its CUDA error) once
// forward returns, freeing its outputs and leaving the session unchanged.
// model.so is linked without -lcuda and without libmlir_cuda_runtime.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_RUNTIME_BUNDLEABI_H
#define QWEN_RUNTIME_BUNDLEABI_H

#define QWEN_BUNDLE_FORMAT "qwen-bundle"
#define QWEN_BUNDLE_FORMAT_VERSION 1
#define QWEN_MODEL_ABI_VERSION 1
#define QWEN_MODEL_FORWARD_SYMBOL "qwen_model_forward"
#define QWEN_MODEL_ABI_VERSION_SYMBOL "qwen_model_abi_version"
#define QWEN_MODEL_SET_THREADS_SYMBOL "qwen_model_set_num_threads"

/// Bytes of a memref descriptor of rank r (two pointers, offset, sizes,
/// strides; all 8 bytes on x86-64).
#define QWEN_DESCRIPTOR_BYTES(r) (8 * (3 + 2 * (r)))

#ifdef __cplusplus
namespace qwen::bundle {

/// CPU features a manifest may require, by LLVM's names. The compiler lists
/// the target's features that are in this set; the runtime checks each with
/// cpuid (and xgetbv for the OS-enabled AVX / AVX-512 state) and refuses a
/// name it does not know.
inline constexpr const char *kCheckableFeatures[] = {
    "sse3",     "ssse3",    "sse4.1",   "sse4.2",     "popcnt",
    "avx",      "avx2",     "fma",      "f16c",       "bmi",
    "bmi2",     "lzcnt",    "movbe",    "avx512f",    "avx512bw",
    "avx512cd", "avx512dq", "avx512vl", "avx512vnni", "avx512bf16",
    "avx512fp16", "avxvnni"};

/// A CUDA target architecture "sm_XY" or "sm_XYa" (X: one or more digits,
/// Y: one digit): compute capability X.Y; `specific` for the "a" variants,
/// whose cubins use features of exactly that GPU generation.
struct SmArch {
  int major = 0, minor = 0;
  bool specific = false;
};

/// Parses "sm_XY" / "sm_XYa"; false for anything else.
inline bool parseSmArch(const char *s, SmArch &out) {
  if (!s || s[0] != 's' || s[1] != 'm' || s[2] != '_')
    return false;
  const char *p = s + 3;
  int digits = 0;
  long value = 0;
  for (; *p >= '0' && *p <= '9'; ++p, ++digits) {
    value = value * 10 + (*p - '0');
    if (value > 10000)
      return false;
  }
  if (digits < 2 || (p[0] != '\0' && (p[0] != 'a' || p[1] != '\0')))
    return false;
  out.major = int(value / 10);
  out.minor = int(value % 10);
  out.specific = p[0] == 'a';
  return out.major > 0;
}

/// Whether a cubin for `arch` runs on a device of compute capability
/// major.minor: same major and a minor at least the cubin's (SASS is
/// compatible within a major version, upwards only); "a" variants only on
/// exactly their capability.
inline bool smArchRunsOn(const SmArch &arch, int major, int minor) {
  if (arch.specific)
    return major == arch.major && minor == arch.minor;
  return major == arch.major && minor >= arch.minor;
}

/// Whether PTX for `arch` (compute_XY) JIT-compiles for a device of compute
/// capability major.minor: any capability at least X.Y; "a" variants only on
/// exactly theirs.
inline bool ptxArchRunsOn(const SmArch &arch, int major, int minor) {
  if (arch.specific)
    return major == arch.major && minor == arch.minor;
  return major > arch.major || (major == arch.major && minor >= arch.minor);
}

} // namespace qwen::bundle
#endif

#endif // QWEN_RUNTIME_BUNDLEABI_H
