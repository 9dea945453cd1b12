//===- RuntimeImpl.h - internals of libqwen_runtime -------------*- C++ -*-===//
//
// Not installed: the C API (include/qwen_runtime.h) is the library's only
// interface. Plain C++17, no LLVM/MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_LIB_RUNTIME_RUNTIMEIMPL_H
#define QWEN_LIB_RUNTIME_RUNTIMEIMPL_H

#include "qwen_runtime.h"

#include "qwen/Runtime/Tokenizer.h"
#include "qwen/Support/WeightStore.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

namespace qwen::rt {
namespace cuda {
struct Device;
} // namespace cuda

/// Sets the thread-local message of qwen_last_error and returns `status`.
qwen_status fail(qwen_status status, std::string message);
void clearError();

/// 1 / 0 / -1 (unknown name), as qwen_cpu_has_feature.
int cpuHasFeature(const char *name);

uint64_t splitmix64(uint64_t &state);
int64_t sample(const float *logits, int64_t vocab, float temperature,
               int32_t topK, float topP, uint64_t *rng);

enum class Role {
  InputIds,
  AttentionMask,
  PositionIds,
  PastKey,
  PastValue,
  LogitsRows, // [1] i64: how many last positions get logits (--qwen-logits-rows)
  Weight,
  Logits,
  PresentKey,
  PresentValue,
  Observe, // an activation returned for calibration (qwen-calibrate)
};

enum class ElemType { F32, I64, I32, I8, U8, I1, F16 };
size_t elemBytes(ElemType t);
const char *elemName(ElemType t);

struct TensorSpec {
  std::string name;
  Role role;
  ElemType dtype;
  std::vector<int64_t> shape; // -1 = dynamic
  int64_t layer = -1;         // past/present
  std::vector<std::string> layers; // observe: the layers that read it
  uint64_t offset = 0, bytes = 0; // weight
  // weight: into the mapped weights.bin, or (CUDA bundles) its device copy
  const void *data = nullptr;
};

qwen_status openBundleChecked(const char *dir, qwen_bundle **out);
qwen_status createSession(qwen_bundle *b, int64_t contextLength,
                          qwen_session **out);
qwen_status runTokens(qwen_session *s, const int64_t *ids, int64_t n);
void resetSession(qwen_session *s);
void freeSession(qwen_session *s);
const float *sessionLogitsAt(const qwen_session *s, int64_t i);
int64_t sessionNumLogits(const qwen_session *s);
void setAllLogits(qwen_session *s, bool all);
int64_t sessionLength(const qwen_session *s);
int64_t sessionContextLength(const qwen_session *s);
qwen_status sessionObserved(const qwen_session *s, int64_t i,
                            const float **data, int64_t *rows, int64_t *cols);

using ForwardFn = void (*)(void **);
using AbiVersionFn = int64_t (*)(void);
using SetThreadsFn = void (*)(int32_t);

} // namespace qwen::rt

struct qwen_bundle {
  std::string dir;
  std::string targetName, architecture;
  int64_t vocabSize = 0, numLayers = 0, numKvHeads = 0, headDim = 0;
  bool kvCache = false;
  std::vector<int64_t> eosIds;
  std::vector<qwen::rt::TensorSpec> inputs, outputs;
  /// Index of the past_key / past_value input and present_key /
  /// present_value output of each layer (kv-cache models).
  std::vector<size_t> pastKeyIn, pastValueIn, presentKeyOut, presentValueOut;
  size_t logitsOut = 0;
  /// The logits_rows input, if the model has one (else logits of all S).
  std::optional<size_t> logitsRowsIn;
  /// Indices of the outputs with role "observe", in manifest order.
  std::vector<size_t> observedOut;

  void *library = nullptr;
  qwen::rt::ForwardFn forward = nullptr;
  qwen::rt::SetThreadsFn setThreads = nullptr;
  std::unique_ptr<qwen::ws::WeightStoreReader> weights;
  std::unique_ptr<qwen::rt::Tokenizer> tokenizer;
  std::mutex forwardMutex;
  /// The GPU of a CUDA bundle (manifest target kind "cuda"); null for CPU.
  std::unique_ptr<qwen::rt::cuda::Device> cuda;

  ~qwen_bundle();
};

#endif // QWEN_LIB_RUNTIME_RUNTIMEIMPL_H
