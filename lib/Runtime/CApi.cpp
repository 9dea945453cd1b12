//===- CApi.cpp - the extern "C" surface of libqwen_runtime ---------------===//
//
// Thin wrappers: argument checks, the thread-local error message, and no C++
// exception ever crossing into C.
//
//===----------------------------------------------------------------------===//

#include "RuntimeImpl.h"

#include "Cuda.h"

#include <cstring>
#include <new>
#include <thread>

using namespace qwen::rt;

namespace {
thread_local std::string tlsError;
} // namespace

namespace qwen::rt {
qwen_status fail(qwen_status status, std::string message) {
  tlsError = std::move(message);
  return status;
}
void clearError() { tlsError.clear(); }
} // namespace qwen::rt

#define QWEN_GUARD_BEGIN try {
#define QWEN_GUARD_END                                                         \
  }                                                                            \
  catch (const std::bad_alloc &) {                                             \
    return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory");                      \
  }                                                                            \
  catch (const std::exception &e) {                                            \
    return fail(QWEN_ERR_INVALID_ARGUMENT, e.what());                          \
  }

extern "C" {

const char *qwen_last_error(void) { return tlsError.c_str(); }

const char *qwen_status_name(qwen_status status) {
  switch (status) {
  case QWEN_OK: return "QWEN_OK";
  case QWEN_ERR_INVALID_ARGUMENT: return "QWEN_ERR_INVALID_ARGUMENT";
  case QWEN_ERR_IO: return "QWEN_ERR_IO";
  case QWEN_ERR_MANIFEST: return "QWEN_ERR_MANIFEST";
  case QWEN_ERR_INTEGRITY: return "QWEN_ERR_INTEGRITY";
  case QWEN_ERR_CPU: return "QWEN_ERR_CPU";
  case QWEN_ERR_LOAD: return "QWEN_ERR_LOAD";
  case QWEN_ERR_WEIGHTS: return "QWEN_ERR_WEIGHTS";
  case QWEN_ERR_TOKENIZER: return "QWEN_ERR_TOKENIZER";
  case QWEN_ERR_CONTEXT: return "QWEN_ERR_CONTEXT";
  case QWEN_ERR_TOKEN: return "QWEN_ERR_TOKEN";
  case QWEN_ERR_MODEL_OUTPUT: return "QWEN_ERR_MODEL_OUTPUT";
  case QWEN_ERR_OUT_OF_MEMORY: return "QWEN_ERR_OUT_OF_MEMORY";
  case QWEN_ERR_BUFFER_TOO_SMALL: return "QWEN_ERR_BUFFER_TOO_SMALL";
  case QWEN_ERR_DEVICE: return "QWEN_ERR_DEVICE";
  }
  return "QWEN_ERR_UNKNOWN";
}

qwen_status qwen_bundle_open(const char *dir, qwen_bundle **out) {
  QWEN_GUARD_BEGIN
  return openBundleChecked(dir, out);
  QWEN_GUARD_END
}

void qwen_bundle_free(qwen_bundle *bundle) { delete bundle; }

int64_t qwen_bundle_vocab_size(const qwen_bundle *b) {
  return b ? b->vocabSize : 0;
}
int64_t qwen_bundle_num_layers(const qwen_bundle *b) {
  return b ? b->numLayers : 0;
}
int qwen_bundle_has_kv_cache(const qwen_bundle *b) {
  return b && b->kvCache ? 1 : 0;
}
int qwen_bundle_has_tokenizer(const qwen_bundle *b) {
  return b && b->tokenizer ? 1 : 0;
}
int64_t qwen_bundle_num_eos_ids(const qwen_bundle *b) {
  return b ? int64_t(b->eosIds.size()) : 0;
}
const int64_t *qwen_bundle_eos_ids(const qwen_bundle *b) {
  return b && !b->eosIds.empty() ? b->eosIds.data() : nullptr;
}
int qwen_bundle_is_eos(const qwen_bundle *b, int64_t id) {
  if (!b)
    return 0;
  for (int64_t e : b->eosIds)
    if (e == id)
      return 1;
  return 0;
}
const char *qwen_bundle_target_name(const qwen_bundle *b) {
  return b ? b->targetName.c_str() : "";
}
const char *qwen_bundle_architecture(const qwen_bundle *b) {
  return b ? b->architecture.c_str() : "";
}
const char *qwen_bundle_device_name(const qwen_bundle *b) {
  return b && b->cuda ? b->cuda->name.c_str() : nullptr;
}

int64_t qwen_bundle_num_observed(const qwen_bundle *b) {
  return b ? int64_t(b->observedOut.size()) : 0;
}
static const qwen::rt::TensorSpec *observedSpec(const qwen_bundle *b,
                                                int64_t i) {
  if (!b || i < 0 || i >= int64_t(b->observedOut.size()))
    return nullptr;
  return &b->outputs[b->observedOut[size_t(i)]];
}
const char *qwen_bundle_observed_name(const qwen_bundle *b, int64_t i) {
  const qwen::rt::TensorSpec *t = observedSpec(b, i);
  return t ? t->name.c_str() : nullptr;
}
int64_t qwen_bundle_observed_num_layers(const qwen_bundle *b, int64_t i) {
  const qwen::rt::TensorSpec *t = observedSpec(b, i);
  return t ? int64_t(t->layers.size()) : 0;
}
const char *qwen_bundle_observed_layer(const qwen_bundle *b, int64_t i,
                                       int64_t j) {
  const qwen::rt::TensorSpec *t = observedSpec(b, i);
  if (!t || j < 0 || j >= int64_t(t->layers.size()))
    return nullptr;
  return t->layers[size_t(j)].c_str();
}
qwen_status qwen_session_observed(const qwen_session *s, int64_t i,
                                  const float **data, int64_t *rows,
                                  int64_t *cols) {
  qwen::rt::clearError();
  return qwen::rt::sessionObserved(s, i, data, rows, cols);
}

qwen_status qwen_bundle_set_num_threads(qwen_bundle *b, int32_t n) {
  if (!b)
    return fail(QWEN_ERR_INVALID_ARGUMENT, "qwen_bundle_set_num_threads: null bundle");
  if (n <= 0) {
    unsigned hw = std::thread::hardware_concurrency();
    n = int32_t(hw ? hw : 1);
  }
  std::lock_guard<std::mutex> lock(b->forwardMutex);
  b->setThreads(n);
  return QWEN_OK;
}

qwen_status qwen_session_create(qwen_bundle *b, int64_t contextLength,
                                qwen_session **out) {
  QWEN_GUARD_BEGIN
  return createSession(b, contextLength, out);
  QWEN_GUARD_END
}

void qwen_session_free(qwen_session *s) { freeSession(s); }

qwen_status qwen_session_prefill(qwen_session *s, const int64_t *ids,
                                 int64_t n) {
  QWEN_GUARD_BEGIN
  return runTokens(s, ids, n);
  QWEN_GUARD_END
}

qwen_status qwen_session_decode(qwen_session *s, int64_t id) {
  QWEN_GUARD_BEGIN
  return runTokens(s, &id, 1);
  QWEN_GUARD_END
}

const float *qwen_session_logits(const qwen_session *s) {
  int64_t n = sessionNumLogits(s);
  return n > 0 ? sessionLogitsAt(s, n - 1) : nullptr;
}
const float *qwen_session_logits_at(const qwen_session *s, int64_t i) {
  return sessionLogitsAt(s, i);
}
int64_t qwen_session_num_logits(const qwen_session *s) {
  return sessionNumLogits(s);
}
qwen_status qwen_session_set_all_logits(qwen_session *s, int all) {
  QWEN_GUARD_BEGIN
  if (!s)
    return fail(QWEN_ERR_INVALID_ARGUMENT, "session is null");
  setAllLogits(s, all != 0);
  return QWEN_OK;
  QWEN_GUARD_END
}
int64_t qwen_session_length(const qwen_session *s) { return sessionLength(s); }
int64_t qwen_session_context_length(const qwen_session *s) {
  return sessionContextLength(s);
}
void qwen_session_reset(qwen_session *s) {
  if (s)
    resetSession(s);
}

qwen_status qwen_tokenize(const qwen_bundle *b, const char *text,
                          int64_t *ids, int64_t cap, int64_t *n) {
  QWEN_GUARD_BEGIN
  if (!b || !text || !n || (cap > 0 && !ids))
    return fail(QWEN_ERR_INVALID_ARGUMENT, "qwen_tokenize: null argument");
  if (!b->tokenizer)
    return fail(QWEN_ERR_TOKENIZER,
                b->dir + ": the bundle has no tokenizer.json");
  std::vector<int32_t> got = b->tokenizer->encode(text);
  *n = int64_t(got.size());
  if (*n > cap)
    return fail(QWEN_ERR_BUFFER_TOO_SMALL,
                "qwen_tokenize: " + std::to_string(*n) + " ids, capacity " +
                    std::to_string(cap));
  for (size_t i = 0; i < got.size(); ++i)
    ids[i] = got[i];
  return QWEN_OK;
  QWEN_GUARD_END
}

qwen_status qwen_detokenize(const qwen_bundle *b, const int64_t *ids,
                            int64_t n, char *buf, int64_t cap, int64_t *len) {
  QWEN_GUARD_BEGIN
  if (!b || (n > 0 && !ids) || n < 0 || !len || (cap > 0 && !buf))
    return fail(QWEN_ERR_INVALID_ARGUMENT, "qwen_detokenize: bad argument");
  if (!b->tokenizer)
    return fail(QWEN_ERR_TOKENIZER,
                b->dir + ": the bundle has no tokenizer.json");
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = ids[i] >= 0 && ids[i] <= INT32_MAX ? int32_t(ids[i]) : -1;
  std::string text = b->tokenizer->decode(v);
  *len = int64_t(text.size());
  if (*len + 1 > cap)
    return fail(QWEN_ERR_BUFFER_TOO_SMALL,
                "qwen_detokenize: " + std::to_string(*len + 1) +
                    " bytes needed, capacity " + std::to_string(cap));
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return QWEN_OK;
  QWEN_GUARD_END
}

int64_t qwen_sample(const float *logits, int64_t vocab, float temperature,
                    int32_t top_k, float top_p, uint64_t *rng_state) {
  try {
    return sample(logits, vocab, temperature, top_k, top_p, rng_state);
  } catch (...) {
    return -1;
  }
}

int qwen_cpu_has_feature(const char *name) { return cpuHasFeature(name); }

} // extern "C"
