/*===- FakeModel.c - a model.so implementing BundleABI.h, for tests -------===*
 *
 * Lets the runtime be tested without the compiler. One layer, one KV head,
 * head_dim 2. Inputs in manifest order (FAKE_NO_KV drops the past inputs and
 * present outputs):
 *   input_ids [1, S] i64, attention_mask [1, P+S] i64, position_ids [1, S] i64,
 *   past_key [1, 1, P, 2] f32, past_value [1, 1, P, 2] f32,
 *   fake.config (weight) i64 [2] = {V, unused}, fake.scale (weight) f32 [1]
 * Outputs: logits [1, S, V], present_key / present_value [1, 1, P+S, 2].
 *
 * The KV row of a token t at position p is K = (t, p), V = (t*t, 1).
 * Logits at position p attend to rows 0..p (past and new):
 *   target = (sum of ids + p) mod V
 *   logit[v] = (v == target) * 10 * scale
 *            + 0.01 * ((sum of t*t + sum of positions + rows) mod 13)
 *            + 0.001 * (v mod 7)
 * so a wrong past, position, mask or weight changes the logits. Inputs that
 * break the contract (mask not all ones of length P+S, positions not P..,
 * past of the wrong shape) give NaN logits.
 *
 * FAKE_OBSERVE adds an output with role "observe" after the present ones:
 * [1, S, 3] f32, row j = (id, position, id / 2) of the j-th new token
 * (column-major strides with QWEN_FAKE_MODEL_MODE=transposed-kv).
 *
 * QWEN_FAKE_MODEL_MODE=bad-logits-shape returns one logits row too many;
 * =transposed-kv returns present_* with D-major strides (still valid memrefs).
 *
 * FAKE_CUDA makes it a CUDA bundle's model.so (BundleABI.h) for the fake
 * driver's host-memory mode (FakeCudaDriver.c, FAKE_CUDA_MEMORY=host, where
 * device pointers are host pointers): it computes as above on the host, then
 * returns its outputs in buffers from mgpuMemAlloc filled with mgpuMemcpy on
 * a stream of its own, through libqwen_runtime's MLIR GPU runtime functions.
 * QWEN_FAKE_MODEL_MODE=launch first launches a kernel (which the fake driver
 * refuses), so every later mgpu* call is a no-op and the outputs are null.
 *===----------------------------------------------------------------------===*/

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static int32_t gThreads = -1;
static int64_t gCalls = 0;

EXPORT int64_t qwen_model_abi_version(void) { return 1; }
EXPORT void qwen_model_set_num_threads(int32_t n) { gThreads = n; }
EXPORT int32_t fake_model_num_threads(void) { return gThreads; }
EXPORT int64_t fake_model_forward_calls(void) { return gCalls; }

/* Descriptor words: allocated, aligned, offset, sizes[r], strides[r]. */
static void *dataOf(const int64_t *d) {
  return (char *)(intptr_t)d[1];
}
static int64_t size(const int64_t *d, int i) { return d[3 + i]; }
static int64_t stride(const int64_t *d, int r, int i) { return d[3 + r + i]; }

#ifdef FAKE_CUDA
#include <stdbool.h>
void *mgpuStreamCreate(void);
void mgpuStreamSynchronize(void *stream);
void mgpuStreamDestroy(void *stream);
void *mgpuMemAlloc(uint64_t bytes, void *stream, bool isHostShared);
void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream);
void mgpuLaunchKernel(void *fn, intptr_t gx, intptr_t gy, intptr_t gz,
                      intptr_t bx, intptr_t by, intptr_t bz, int32_t smem,
                      void *stream, void **params, void **extra, size_t n);

/* Moves a host output of `bytes` bytes into "device" memory and points its
 * descriptor there. */
static void toDevice(int64_t *desc, size_t bytes, void *stream) {
  void *host = (void *)(intptr_t)desc[0];
  void *dev = mgpuMemAlloc(bytes, stream, false);
  mgpuMemcpy(dev, host, bytes, stream);
  free(host);
  desc[0] = desc[1] = (int64_t)(intptr_t)dev;
}
#endif

static void putDesc(int64_t *out, void *buf, int r, const int64_t *sizes,
                    const int64_t *strides) {
  out[0] = (int64_t)(intptr_t)buf;
  out[1] = (int64_t)(intptr_t)buf;
  out[2] = 0;
  for (int i = 0; i < r; ++i) {
    out[3 + i] = sizes[i];
    out[3 + r + i] = strides[i];
  }
}

EXPORT void qwen_model_forward(void **args) {
  ++gCalls;
  const char *mode = getenv("QWEN_FAKE_MODEL_MODE");
  int badShape = mode && strcmp(mode, "bad-logits-shape") == 0;
  int transposed = mode && strcmp(mode, "transposed-kv") == 0;
  (void)transposed;

  const int64_t *ids = args[0], *mask = args[1], *pos = args[2];
#ifdef FAKE_NO_KV
  const int64_t *pk = NULL, *pv = NULL;
  const int64_t *cfg = args[3], *scl = args[4];
  int64_t *out = args[5];
#else
  const int64_t *pk = args[3], *pv = args[4];
  const int64_t *cfg = args[5], *scl = args[6];
  int64_t *out = args[7];
#endif
  const int64_t V = ((const int64_t *)dataOf(cfg))[0];
  const double scale = ((const float *)dataOf(scl))[0];
  const int64_t S = size(ids, 1);
  const int64_t P = pk ? size(pk, 2) : 0;
  const int64_t T = P + S;
  int bad = size(ids, 0) != 1 || size(mask, 1) != T || size(pos, 1) != S ||
            size(cfg, 0) != 2 || size(scl, 0) != 1;
  if (pk)
    bad |= size(pk, 1) != 1 || size(pk, 3) != 2 || size(pv, 2) != P ||
           size(pv, 1) != 1 || size(pv, 3) != 2;
  const int64_t *idv = dataOf(ids), *maskv = dataOf(mask), *posv = dataOf(pos);
  for (int64_t j = 0; !bad && j < T; ++j)
    bad |= maskv[j * stride(mask, 2, 1)] != 1;
  for (int64_t j = 0; !bad && j < S; ++j)
    bad |= posv[j * stride(pos, 2, 1)] != P + j;

  /* All KV rows, [T][2] each, contiguous. */
  float *K = malloc(sizeof(float) * 2 * (size_t)(T ? T : 1));
  float *Vv = malloc(sizeof(float) * 2 * (size_t)(T ? T : 1));
  if (!K || !Vv)
    abort();
  for (int64_t r = 0; r < P; ++r)
    for (int d = 0; d < 2; ++d) {
      const float *kp = dataOf(pk), *vp = dataOf(pv);
      K[2 * r + d] = kp[pk[2] + r * stride(pk, 4, 2) + d * stride(pk, 4, 3)];
      Vv[2 * r + d] = vp[pv[2] + r * stride(pv, 4, 2) + d * stride(pv, 4, 3)];
    }
  for (int64_t j = 0; j < S; ++j) {
    int64_t t = idv[j * stride(ids, 2, 1)];
    K[2 * (P + j)] = (float)t;
    K[2 * (P + j) + 1] = (float)(P + j);
    Vv[2 * (P + j)] = (float)(t * t);
    Vv[2 * (P + j) + 1] = 1.0f;
  }

  int64_t rows = badShape ? S + 1 : S;
  float *logits = malloc(sizeof(float) * (size_t)(rows * V));
  if (!logits)
    abort();
  for (int64_t j = 0; j < rows; ++j) {
    int64_t p = P + (j < S ? j : S - 1);
    double sumId = 0, sumPos = 0, sumSq = 0, cnt = 0;
    for (int64_t r = 0; r <= p; ++r) {
      sumId += K[2 * r];
      sumPos += K[2 * r + 1];
      sumSq += Vv[2 * r];
      cnt += Vv[2 * r + 1];
    }
    int64_t target = ((int64_t)sumId + p) % V;
    double shared = 0.01 * (double)(((int64_t)(sumSq + sumPos + cnt)) % 13);
    for (int64_t v = 0; v < V; ++v) {
      double x = (v == target ? 10.0 * scale : 0.0) + shared +
                 0.001 * (double)(v % 7);
      logits[j * V + v] = bad ? NAN : (float)x;
    }
  }
  {
    int64_t sz[3] = {1, rows, V}, st[3] = {rows * V, V, 1};
    putDesc(out, logits, 3, sz, st);
  }
#ifndef FAKE_NO_KV
  {
    float *bufs[2] = {K, Vv};
    for (int k = 0; k < 2; ++k) {
      int64_t *o = out + 9 + 11 * k;
      int64_t sz[4] = {1, 1, T, 2};
      if (transposed) {
        float *t = malloc(sizeof(float) * 2 * (size_t)(T ? T : 1));
        if (!t)
          abort();
        for (int64_t r = 0; r < T; ++r)
          for (int d = 0; d < 2; ++d)
            t[d * T + r] = bufs[k][2 * r + d];
        free(bufs[k]);
        int64_t st[4] = {2 * T, 2 * T, 1, T};
        putDesc(o, t, 4, sz, st);
      } else {
        int64_t st[4] = {2 * T, 2 * T, 2, 1};
        putDesc(o, bufs[k], 4, sz, st);
      }
    }
  }
#else
  free(K);
  free(Vv);
#endif
#ifdef FAKE_OBSERVE
  {
    int64_t *o = out + 9 + 22;
    float *x = malloc(sizeof(float) * 3 * (size_t)(S ? S : 1));
    if (!x)
      abort();
    for (int64_t j = 0; j < S; ++j) {
      float v[3] = {(float)idv[j * stride(ids, 2, 1)], (float)(P + j),
                    (float)idv[j * stride(ids, 2, 1)] / 2};
      for (int c = 0; c < 3; ++c)
        x[transposed ? c * S + j : 3 * j + c] = v[c];
    }
    int64_t sz[3] = {1, S, 3};
    int64_t st[3] = {3 * S, transposed ? 1 : 3, transposed ? S : 1};
    putDesc(o, x, 3, sz, st);
  }
#endif
#ifdef FAKE_CUDA
  {
    void *stream = mgpuStreamCreate();
    if (mode && strcmp(mode, "launch") == 0)
      mgpuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, stream, NULL, NULL, 0);
    toDevice(out, sizeof(float) * (size_t)(rows * V), stream);
#ifndef FAKE_NO_KV
    for (int k = 0; k < 2; ++k)
      toDevice(out + 9 + 11 * k, sizeof(float) * 2 * (size_t)(T ? T : 1),
               stream);
#endif
    mgpuStreamSynchronize(stream);
    mgpuStreamDestroy(stream);
  }
#endif
}
