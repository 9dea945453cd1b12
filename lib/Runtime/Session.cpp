//===- Session.cpp - prefill / decode on a bundle's model -----------------===//
//
// One forward call per prefill/decode. Inputs are memref descriptors built by
// role (BundleABI.h); the present_* outputs of one call are the past_* inputs
// of the next. A call either completes or leaves the session untouched: new
// buffers are allocated and checked before anything old is released.
//
// For a CUDA bundle the same happens in device memory: ids, mask and
// positions are copied to the device each call, the KV cache stays there
// (present outputs become the next past inputs without a host copy), and the
// logits (and observed activations) are copied back to host memory.
//
//===----------------------------------------------------------------------===//

#include "RuntimeImpl.h"

#include "Cuda.h"

#include "qwen/Runtime/BundleABI.h"

#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>

using namespace qwen::rt;

namespace {

/// A KV tensor kept between calls: contiguous row-major [1, Hkv, P, D], in
/// device memory for CUDA bundles.
struct KvBuffer {
  void *allocated = nullptr; // released (releaseOutputs) when replaced
  float *data = nullptr;
};

/// A tensor returned by forward, read from its descriptor.
struct OutTensor {
  void *allocated = nullptr;
  float *data = nullptr; // aligned + offset
  std::vector<int64_t> sizes, strides;
};

/// An observed activation of the latest call, as [rows, cols] row-major.
struct ObservedBuf {
  void *allocated = nullptr; // free()d when replaced
  float *data = nullptr;
  int64_t rows = 0, cols = 0;
};

struct MallocBuf {
  void *p = nullptr;
  MallocBuf() = default;
  MallocBuf(const MallocBuf &) = delete;
  ~MallocBuf() { std::free(p); }
  bool alloc(size_t n) {
    p = std::malloc(n ? n : 1);
    return p != nullptr;
  }
  void *release() {
    void *r = p;
    p = nullptr;
    return r;
  }
};

// A valid, non-null address for zero-size tensors (P = 0 on the first call).
alignas(64) float kEmpty[16];

std::vector<int64_t> rowMajorStrides(const std::vector<int64_t> &sizes) {
  std::vector<int64_t> st(sizes.size());
  int64_t s = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    st[i] = s;
    s *= sizes[i];
  }
  return st;
}

int64_t numElements(const std::vector<int64_t> &sizes) {
  int64_t n = 1;
  for (int64_t d : sizes)
    n *= d;
  return n;
}

/// Whether a strided tensor is laid out row-major without gaps.
bool isDense(const std::vector<int64_t> &sizes,
             const std::vector<int64_t> &strides) {
  std::vector<int64_t> contiguous = rowMajorStrides(sizes);
  for (size_t d = 0; d < sizes.size(); ++d)
    if (sizes[d] != 1 && strides[d] != contiguous[d])
      return false;
  return true;
}

/// Copies a strided tensor (host memory) into `dst`, row-major.
void gather(const float *src, const std::vector<int64_t> &sizes,
            const std::vector<int64_t> &strides, float *dst) {
  const int64_t elems = numElements(sizes);
  if (elems == 0)
    return;
  const size_t r = sizes.size();
  const int64_t inner = r ? sizes[r - 1] : 1;
  const bool innerDense = r == 0 || strides[r - 1] == 1;
  std::vector<int64_t> idx(r, 0);
  for (int64_t k = 0; k < elems; k += inner) {
    int64_t off = 0;
    for (size_t d = 0; d < r; ++d)
      off += idx[d] * strides[d];
    if (innerDense)
      std::memcpy(dst + k, src + off, size_t(inner) * sizeof(float));
    else
      for (int64_t j = 0; j < inner; ++j)
        dst[k + j] = src[off + j * strides[r - 1]];
    // Next row: increment the index over all dimensions but the last.
    for (size_t d = r ? r - 1 : 0; d-- > 0;) {
      if (++idx[d] < sizes[d])
        break;
      idx[d] = 0;
    }
  }
}

/// Releases buffers forward returned: host memory of a CPU bundle, device
/// memory of a CUDA bundle. Observed activations and logits are always host
/// copies (std::free).
template <typename Range>
void releaseOutputs(qwen_bundle &b, const Range &buffers) {
  if (!b.cuda) {
    for (void *p : buffers)
      std::free(p);
    return;
  }
  qwen::rt::cuda::Scope scope(*b.cuda);
  for (void *p : buffers)
    if (p)
      b.cuda->driver->cuMemFree(
          reinterpret_cast<qwen::rt::cuda::CUdeviceptr>(p));
}

} // namespace

struct qwen_session {
  qwen_bundle *bundle = nullptr;
  int64_t contextLength = 0;
  std::vector<int64_t> tokens;
  std::vector<KvBuffer> pastKey, pastValue; // per layer, length tokens.size()
  float *logits = nullptr;                  // [numLogits, V]
  int64_t numLogits = 0;
  /// Logits of every new position (default), or of the last one only.
  bool allLogits = true;
  std::vector<ObservedBuf> observed; // per observe output, latest call

  void releaseObserved() {
    for (ObservedBuf &o : observed)
      std::free(o.allocated);
    observed.clear();
  }
  void releaseState() {
    std::vector<void *> kv;
    for (KvBuffer &k : pastKey)
      kv.push_back(k.allocated);
    for (KvBuffer &k : pastValue)
      kv.push_back(k.allocated);
    releaseOutputs(*bundle, kv);
    for (KvBuffer &k : pastKey)
      k = KvBuffer();
    for (KvBuffer &k : pastValue)
      k = KvBuffer();
    std::free(logits);
    logits = nullptr;
    numLogits = 0;
    releaseObserved();
    tokens.clear();
  }
  ~qwen_session() { releaseState(); }
};

namespace qwen::rt {

void resetSession(qwen_session *s) { s->releaseState(); }
void freeSession(qwen_session *s) { delete s; }
const float *sessionLogitsAt(const qwen_session *s, int64_t i) {
  if (!s || !s->logits || i < 0 || i >= s->numLogits)
    return nullptr;
  return s->logits + i * s->bundle->vocabSize;
}
int64_t sessionNumLogits(const qwen_session *s) { return s ? s->numLogits : 0; }
void setAllLogits(qwen_session *s, bool all) { s->allLogits = all; }
int64_t sessionLength(const qwen_session *s) {
  return s ? int64_t(s->tokens.size()) : 0;
}
int64_t sessionContextLength(const qwen_session *s) {
  return s ? s->contextLength : 0;
}

qwen_status sessionObserved(const qwen_session *s, int64_t i,
                            const float **data, int64_t *rows, int64_t *cols) {
  if (!s || !data || !rows || !cols)
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "qwen_session_observed: null argument");
  int64_t n = int64_t(s->bundle->observedOut.size());
  if (i < 0 || i >= n)
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "qwen_session_observed: index " + std::to_string(i) +
                    " outside [0, " + std::to_string(n) +
                    ") (observed activations of the bundle)");
  if (size_t(i) >= s->observed.size())
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "qwen_session_observed: no prefill/decode has run yet");
  const ObservedBuf &o = s->observed[size_t(i)];
  *data = o.data;
  *rows = o.rows;
  *cols = o.cols;
  return QWEN_OK;
}

qwen_status createSession(qwen_bundle *b, int64_t contextLength,
                          qwen_session **out) {
  if (!out)
    return fail(QWEN_ERR_INVALID_ARGUMENT, "qwen_session_create: out is null");
  *out = nullptr;
  if (!b)
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "qwen_session_create: bundle is null");
  if (contextLength < 1)
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "qwen_session_create: context length " +
                    std::to_string(contextLength) + " must be at least 1");
  auto *s = new (std::nothrow) qwen_session();
  if (!s)
    return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory creating a session");
  s->bundle = b;
  s->contextLength = contextLength;
  if (b->kvCache) {
    s->pastKey.resize(size_t(b->numLayers));
    s->pastValue.resize(size_t(b->numLayers));
  }
  *out = s;
  return QWEN_OK;
}

namespace {

/// Writes `value` as element `i` of a buffer of type `t`.
void storeInt(void *buf, ElemType t, size_t i, int64_t value) {
  switch (t) {
  case ElemType::I64: static_cast<int64_t *>(buf)[i] = value; break;
  case ElemType::I32: static_cast<int32_t *>(buf)[i] = int32_t(value); break;
  case ElemType::F32: static_cast<float *>(buf)[i] = float(value); break;
  case ElemType::I8:
  case ElemType::U8:
  case ElemType::I1: static_cast<uint8_t *>(buf)[i] = uint8_t(value); break;
  case ElemType::F16: break; // weights only (codebooks); never an input
  }
}

std::string sizesStr(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

} // namespace

qwen_status runTokens(qwen_session *s, const int64_t *ids, int64_t n) {
  if (!s)
    return fail(QWEN_ERR_INVALID_ARGUMENT, "session is null");
  if (n < 1 || !ids)
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "prefill needs at least one token (got " + std::to_string(n) +
                    ")");
  qwen_bundle &b = *s->bundle;
  const int64_t V = b.vocabSize;
  const int64_t have = int64_t(s->tokens.size());
  if (n > s->contextLength - have)
    return fail(QWEN_ERR_CONTEXT,
                std::to_string(n) + " new token" + (n == 1 ? "" : "s") +
                    " after " + std::to_string(have) +
                    " exceed the context length " +
                    std::to_string(s->contextLength));
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      return fail(QWEN_ERR_TOKEN,
                  "token id " + std::to_string(ids[i]) + " at input index " +
                      std::to_string(i) + " (position " +
                      std::to_string(have + i) +
                      ") is outside the vocabulary [0, " + std::to_string(V) +
                      ")");

  // Sequence fed to this call: the new tokens after P cached ones, or the
  // whole history for a model without a KV cache.
  const int64_t P = b.kvCache ? have : 0;
  const int64_t S = b.kvCache ? n : have + n;
  const int64_t firstNew = S - n;
  const int64_t Hkv = b.numKvHeads, D = b.headDim;
  // The positions that get logits: the last R of the n new ones. A model
  // with a logits_rows input computes just those (its output is [1, R, V]);
  // another computes all S and the rows are picked here.
  const int64_t R = s->allLogits ? n : 1;
  const int64_t outRows = b.logitsRowsIn ? R : S;

  // tokens.insert must not fail after forward: reserve first.
  s->tokens.reserve(size_t(have + n));

  // A CUDA bundle's context is current for the whole call; driver errors of
  // the runtime's copies and of the model's mgpu* calls are recorded in it.
  std::optional<cuda::Scope> scope;
  if (b.cuda) {
    scope.emplace(*b.cuda);
    if (scope->failed())
      return fail(scope->status(), b.dir + ": " + scope->error());
  }
  auto deviceError = [&] {
    return fail(scope->status(), b.dir + ": " + scope->error());
  };

  MallocBuf idsBuf, maskBuf, posBuf, rowsBuf;
  std::optional<cuda::DeviceBuffer> idsDev, maskDev, posDev, rowsDev;
  if (b.cuda) {
    idsDev.emplace(*b.cuda);
    maskDev.emplace(*b.cuda);
    posDev.emplace(*b.cuda);
    rowsDev.emplace(*b.cuda);
  }
  // Host inputs are copied to the device for CUDA bundles.
  auto place = [&](MallocBuf &host, std::optional<cuda::DeviceBuffer> &dev,
                   size_t bytes, const TensorSpec &t, void *&data) {
    data = host.p;
    if (!dev)
      return true;
    if (!dev->upload(*scope, host.p, bytes, "'" + t.name + "'"))
      return false;
    data = reinterpret_cast<void *>(dev->get());
    return true;
  };
  // Zero-size tensors (P = 0 on the first call, empty weights) still need a
  // valid address.
  void *empty = b.cuda ? reinterpret_cast<void *>(b.cuda->empty)
                       : static_cast<void *>(kEmpty);
  std::vector<int64_t> desc; // all input descriptors back to back
  size_t descWords = 0;
  for (const TensorSpec &t : b.inputs)
    descWords += 3 + 2 * t.shape.size();
  desc.resize(descWords);
  std::vector<void *> args(b.inputs.size() + 1);
  size_t outDescBytes = 0;
  for (const TensorSpec &t : b.outputs)
    outDescBytes += QWEN_DESCRIPTOR_BYTES(t.shape.size());
  std::vector<int64_t> outDesc(outDescBytes / 8, 0);

  size_t at = 0;
  for (size_t i = 0; i < b.inputs.size(); ++i) {
    const TensorSpec &t = b.inputs[i];
    void *data = nullptr;
    std::vector<int64_t> sizes;
    switch (t.role) {
    case Role::InputIds: {
      sizes = {1, S};
      size_t bytes = size_t(S) * elemBytes(t.dtype);
      if (!idsBuf.alloc(bytes))
        return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory for input_ids");
      for (int64_t j = 0; j < S; ++j)
        storeInt(idsBuf.p, t.dtype, size_t(j),
                 j < firstNew ? s->tokens[size_t(j)] : ids[j - firstNew]);
      if (!place(idsBuf, idsDev, bytes, t, data))
        return deviceError();
      break;
    }
    case Role::AttentionMask: {
      sizes = {1, P + S};
      size_t bytes = size_t(P + S) * elemBytes(t.dtype);
      if (!maskBuf.alloc(bytes))
        return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory for attention_mask");
      for (int64_t j = 0; j < P + S; ++j)
        storeInt(maskBuf.p, t.dtype, size_t(j), 1);
      if (!place(maskBuf, maskDev, bytes, t, data))
        return deviceError();
      break;
    }
    case Role::PositionIds: {
      sizes = {1, S};
      size_t bytes = size_t(S) * elemBytes(t.dtype);
      if (!posBuf.alloc(bytes))
        return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory for position_ids");
      for (int64_t j = 0; j < S; ++j)
        storeInt(posBuf.p, t.dtype, size_t(j), P + j);
      if (!place(posBuf, posDev, bytes, t, data))
        return deviceError();
      break;
    }
    case Role::LogitsRows: {
      sizes = {1};
      if (!rowsBuf.alloc(sizeof(int64_t)))
        return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory for logits_rows");
      storeInt(rowsBuf.p, t.dtype, 0, R);
      if (!place(rowsBuf, rowsDev, sizeof(int64_t), t, data))
        return deviceError();
      break;
    }
    case Role::PastKey:
    case Role::PastValue: {
      sizes = {1, Hkv, P, D};
      const KvBuffer &kv = (t.role == Role::PastKey ? s->pastKey
                                                    : s->pastValue)[size_t(t.layer)];
      data = P > 0 ? static_cast<void *>(kv.data) : empty;
      break;
    }
    case Role::Weight:
      sizes = t.shape;
      data = const_cast<void *>(t.data);
      if (!data) // zero-size weights (no bytes to map)
        data = empty;
      break;
    default:
      return fail(QWEN_ERR_MANIFEST, "input '" + t.name + "' has an output role");
    }
    args[i] = &desc[at];
    void *ptrs[2] = {data, data};
    std::memcpy(&desc[at], ptrs, sizeof(ptrs));
    desc[at + 2] = 0;
    std::vector<int64_t> strides = rowMajorStrides(sizes);
    for (size_t d = 0; d < sizes.size(); ++d) {
      desc[at + 3 + d] = sizes[d];
      desc[at + 3 + sizes.size() + d] = strides[d];
    }
    at += 3 + 2 * sizes.size();
  }
  args[b.inputs.size()] = outDesc.data();

  {
    std::lock_guard<std::mutex> lock(b.forwardMutex);
    b.forward(args.data());
  }

  // Read the output descriptors.
  std::vector<OutTensor> outs(b.outputs.size());
  {
    const char *p = reinterpret_cast<const char *>(outDesc.data());
    for (size_t i = 0; i < b.outputs.size(); ++i) {
      size_t r = b.outputs[i].shape.size();
      OutTensor &o = outs[i];
      void *ptrs[2];
      int64_t offset;
      std::memcpy(ptrs, p, sizeof(ptrs));
      std::memcpy(&offset, p + 16, 8);
      o.sizes.resize(r);
      o.strides.resize(r);
      std::memcpy(o.sizes.data(), p + 24, 8 * r);
      std::memcpy(o.strides.data(), p + 24 + 8 * r, 8 * r);
      o.allocated = ptrs[0];
      o.data = static_cast<float *>(ptrs[1]) + offset;
      p += QWEN_DESCRIPTOR_BYTES(r);
    }
  }
  // Every distinct buffer, released on every path but the kept KV ones.
  std::set<void *> owned;
  for (const OutTensor &o : outs)
    if (o.allocated)
      owned.insert(o.allocated);
  auto releaseAll = [&] { releaseOutputs(b, owned); };
  // A driver error inside forward (recorded by the mgpu* functions).
  if (scope && scope->failed()) {
    releaseAll();
    return fail(scope->status(),
                b.dir + ": model forward failed: " + scope->error());
  }
  auto badOutput = [&](const std::string &what) {
    releaseAll();
    return fail(QWEN_ERR_MODEL_OUTPUT,
                b.dir + ": model forward returned " + what);
  };
  if (owned.size() != [&] {
        size_t k = 0;
        for (const OutTensor &o : outs)
          k += o.allocated != nullptr;
        return k;
      }())
    return badOutput("outputs sharing one buffer");
  for (size_t i = 0; i < outs.size(); ++i) {
    const TensorSpec &t = b.outputs[i];
    const OutTensor &o = outs[i];
    if (t.role == Role::Observe) {
      // [1, ..., K]: static dims as declared, batch 1.
      bool ok = o.sizes.size() == t.shape.size() && o.sizes[0] == 1;
      for (size_t d = 0; ok && d < o.sizes.size(); ++d)
        ok = o.sizes[d] >= 0 && (t.shape[d] < 0 || o.sizes[d] == t.shape[d]);
      if (!ok)
        return badOutput("observed activation '" + t.name + "' of shape " +
                         sizesStr(o.sizes) + ", expected " +
                         sizesStr(t.shape) + " with batch 1");
      if (!o.allocated || !o.data)
        return badOutput("a null buffer for '" + t.name + "'");
      continue;
    }
    std::vector<int64_t> want =
        t.role == Role::Logits ? std::vector<int64_t>{1, outRows, V}
                               : std::vector<int64_t>{1, Hkv, P + S, D};
    if (o.sizes != want)
      return badOutput("'" + t.name + "' of shape " + sizesStr(o.sizes) +
                       ", expected " + sizesStr(want));
    if (!o.allocated || !o.data)
      return badOutput("a null buffer for '" + t.name + "'");
    // The KV cache stays on the device, where it cannot be repacked.
    if (b.cuda && t.role != Role::Logits && !isDense(o.sizes, o.strides))
      return badOutput("'" + t.name + "' with strides " + sizesStr(o.strides) +
                       "; a CUDA bundle must return its KV cache row-major");
  }

  std::vector<void *> copies; // host copies made here (std::free)
  auto releaseCopies = [&] {
    for (void *c : copies)
      std::free(c);
    releaseAll();
  };
  // A row-major host copy of an output (a strided view of it) in a fresh
  // malloc'ed buffer, recorded in `copies`; null on failure (copyStatus and
  // the error message set).
  qwen_status copyStatus = QWEN_OK;
  auto hostCopy = [&](const float *data, const std::vector<int64_t> &sizes,
                      const std::vector<int64_t> &strides,
                      const std::string &what) -> float * {
    const size_t elems = size_t(numElements(sizes));
    float *c = static_cast<float *>(std::malloc(elems * sizeof(float) + 1));
    if (!c) {
      copyStatus =
          fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory copying " + what);
      return nullptr;
    }
    copies.push_back(c);
    if (!b.cuda) {
      gather(data, sizes, strides, c);
      return c;
    }
    // From the device: the span the view covers (all of it when dense), then
    // gathered on the host unless dense.
    const bool dense = isDense(sizes, strides);
    size_t span = 1;
    for (size_t d = 0; d < sizes.size(); ++d)
      span += size_t((sizes[d] - 1) * strides[d]);
    std::vector<float> staging(dense || !elems ? 0 : span);
    float *dst = dense ? c : staging.data();
    size_t bytes = (dense ? elems : staging.size()) * sizeof(float);
    if (bytes && !scope->check(
                     b.cuda->driver->cuMemcpyDtoH(
                         dst, reinterpret_cast<cuda::CUdeviceptr>(data), bytes),
                     "cuMemcpyDtoH", "copying " + what + " to the host")) {
      copyStatus = deviceError();
      return nullptr;
    }
    if (!dense)
      gather(staging.data(), sizes, strides, c);
    return c;
  };

  // The logits of the last R new positions, row-major on the host.
  const OutTensor &lo = outs[b.logitsOut];
  float *newLogits =
      hostCopy(lo.data + (outRows - R) * lo.strides[1], {1, R, V}, lo.strides,
               std::to_string(R) + " x " + std::to_string(V) + " logits");
  if (!newLogits) {
    releaseCopies();
    return copyStatus;
  }
  // KV buffers: kept as returned when dense (always, for CUDA), else copied.
  std::vector<KvBuffer> newKey, newValue;
  if (b.kvCache) {
    std::vector<int64_t> want = {1, Hkv, P + S, D};
    auto take = [&](size_t outIndex, KvBuffer &kb) {
      const OutTensor &o = outs[outIndex];
      if (isDense(want, o.strides)) {
        kb.allocated = o.allocated;
        kb.data = o.data;
        return true;
      }
      float *c = hostCopy(o.data, want, o.strides, "the KV cache");
      kb.allocated = c;
      kb.data = c;
      return c != nullptr;
    };
    newKey.resize(size_t(b.numLayers));
    newValue.resize(size_t(b.numLayers));
    for (size_t l = 0; l < size_t(b.numLayers); ++l)
      if (!take(b.presentKeyOut[l], newKey[l]) ||
          !take(b.presentValueOut[l], newValue[l])) {
        releaseCopies();
        return copyStatus;
      }
  }
  // Observed activations: kept as returned when dense on the host, else
  // copied.
  std::vector<ObservedBuf> newObserved;
  for (size_t oi : b.observedOut) {
    const OutTensor &o = outs[oi];
    ObservedBuf ob;
    ob.cols = o.sizes.back();
    ob.rows = 1;
    for (size_t d = 0; d + 1 < o.sizes.size(); ++d)
      ob.rows *= o.sizes[d];
    if (!b.cuda && isDense(o.sizes, o.strides)) {
      ob.allocated = o.allocated;
      ob.data = o.data;
    } else {
      float *c = hostCopy(o.data, o.sizes, o.strides,
                          "observed activation '" + b.outputs[oi].name + "'");
      if (!c) {
        releaseCopies();
        return copyStatus;
      }
      ob.allocated = c;
      ob.data = c;
    }
    newObserved.push_back(ob);
  }
  // Commit: release the outputs not kept, then the previous state.
  std::set<void *> kept;
  for (const ObservedBuf &ob : newObserved)
    kept.insert(ob.allocated);
  for (size_t l = 0; l < newKey.size(); ++l) {
    kept.insert(newKey[l].allocated);
    kept.insert(newValue[l].allocated);
  }
  std::vector<void *> dropped;
  for (void *p : owned)
    if (!kept.count(p))
      dropped.push_back(p);
  for (size_t l = 0; l < newKey.size(); ++l) {
    dropped.push_back(s->pastKey[l].allocated);
    dropped.push_back(s->pastValue[l].allocated);
    s->pastKey[l] = newKey[l];
    s->pastValue[l] = newValue[l];
  }
  releaseOutputs(b, dropped);
  s->releaseObserved();
  s->observed = std::move(newObserved);
  std::free(s->logits);
  s->logits = newLogits;
  s->numLogits = R;
  s->tokens.insert(s->tokens.end(), ids, ids + n);
  return QWEN_OK;
}

} // namespace qwen::rt
