/*===- qwen_runtime.h - C API of the bundle runtime ----------------------===*
 *
 * libqwen_runtime runs a bundle written by qwen-compile (the bundle format and
 * the model.so calling convention are described in
 * include/qwen/Runtime/BundleABI.h). Plain C, usable from C, C++ and ctypes.
 *
 *   qwen_bundle *b;
 *   if (qwen_bundle_open("model.bundle", &b) != QWEN_OK)
 *     fprintf(stderr, "%s\n", qwen_last_error());
 *   qwen_session *s;
 *   qwen_session_create(b, 4096, &s);
 *   qwen_session_prefill(s, ids, n);          // logits of all n positions
 *   int64_t next = qwen_sample(qwen_session_logits(s),
 *                              qwen_bundle_vocab_size(b), 0, 0, 1, &rng);
 *   qwen_session_decode(s, next);             // one more token
 *   qwen_session_free(s);
 *   qwen_bundle_free(b);
 *
 * Every function returning qwen_status sets a thread-local message on failure
 * (qwen_last_error) that names the file, the manifest field, or the token at
 * fault. A failed call changes nothing: a session is left as it was.
 *
 * Threads: a bundle is immutable after open and may be shared; forward calls
 * of the sessions of one bundle are serialized (the model parallelizes a
 * forward itself, see qwen_bundle_set_num_threads). One session must not be
 * used from two threads at once.
 *
 *===----------------------------------------------------------------------===*/

#ifndef QWEN_RUNTIME_H
#define QWEN_RUNTIME_H

#include <stdint.h>

#if defined(__GNUC__)
#define QWEN_API __attribute__((visibility("default")))
#else
#define QWEN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qwen_bundle qwen_bundle;
typedef struct qwen_session qwen_session;

typedef enum qwen_status {
  QWEN_OK = 0,
  QWEN_ERR_INVALID_ARGUMENT = 1, /* null pointer, negative count, ...      */
  QWEN_ERR_IO = 2,               /* a file cannot be read / mapped          */
  QWEN_ERR_MANIFEST = 3,         /* manifest.json malformed or unsupported  */
  QWEN_ERR_INTEGRITY = 4,        /* a file's size or sha256 does not match  */
  QWEN_ERR_CPU = 5,              /* this CPU lacks a feature the target needs */
  QWEN_ERR_LOAD = 6,             /* model.so: dlopen, symbols, ABI version  */
  QWEN_ERR_WEIGHTS = 7,          /* weights.bin disagrees with the manifest */
  QWEN_ERR_TOKENIZER = 8,        /* tokenizer.json invalid, or none in bundle */
  QWEN_ERR_CONTEXT = 9,          /* tokens beyond the session's context     */
  QWEN_ERR_TOKEN = 10,           /* token id outside [0, vocab_size)        */
  QWEN_ERR_MODEL_OUTPUT = 11,    /* forward returned unexpected outputs     */
  QWEN_ERR_OUT_OF_MEMORY = 12,
  QWEN_ERR_BUFFER_TOO_SMALL = 13, /* *n / *len says how much is needed      */
  QWEN_ERR_DEVICE = 14 /* CUDA bundle: no driver / GPU, wrong arch, a driver
                          call failed (named in the message)             */
} qwen_status;

/* The message of the last failed call on this thread ("" if none). Valid
 * until the next failing call on the same thread. */
QWEN_API const char *qwen_last_error(void);
/* A short name of a status: "QWEN_ERR_CONTEXT", ... */
QWEN_API const char *qwen_status_name(qwen_status status);

/*--- bundles --------------------------------------------------------------*/

/* Opens the bundle directory `dir`: checks manifest.json (format, versions),
 * the size and sha256 of every file it lists, the target's CPU features
 * against this CPU, loads model.so, maps weights.bin and checks every weight
 * input against it, and loads tokenizer.json when listed. The model is set to
 * use all cores. A CUDA bundle (BundleABI.h) is run on GPU $QWEN_CUDA_DEVICE
 * (default 0) through the NVIDIA driver, loaded at this point: its compute
 * capability is checked against the bundle's arch and the weights are copied
 * to device memory once. */
QWEN_API qwen_status qwen_bundle_open(const char *dir, qwen_bundle **out);
QWEN_API void qwen_bundle_free(qwen_bundle *bundle);

QWEN_API int64_t qwen_bundle_vocab_size(const qwen_bundle *bundle);
QWEN_API int64_t qwen_bundle_num_layers(const qwen_bundle *bundle);
/* 1 if the model takes past_key/past_value inputs (decode is incremental). */
QWEN_API int qwen_bundle_has_kv_cache(const qwen_bundle *bundle);
QWEN_API int qwen_bundle_has_tokenizer(const qwen_bundle *bundle);
QWEN_API int64_t qwen_bundle_num_eos_ids(const qwen_bundle *bundle);
/* The end-of-sequence ids (qwen_bundle_num_eos_ids of them; may be null). */
QWEN_API const int64_t *qwen_bundle_eos_ids(const qwen_bundle *bundle);
QWEN_API int qwen_bundle_is_eos(const qwen_bundle *bundle, int64_t id);
/* manifest "target"."name" and "model"."architecture". */
QWEN_API const char *qwen_bundle_target_name(const qwen_bundle *bundle);
QWEN_API const char *qwen_bundle_architecture(const qwen_bundle *bundle);
/* The GPU a CUDA bundle runs on ("NVIDIA H100 80GB HBM3"), or null for a
 * CPU bundle. */
QWEN_API const char *qwen_bundle_device_name(const qwen_bundle *bundle);

/* Worker threads of the model's forward; n <= 0 means all cores
 * (std::thread::hardware_concurrency). */
QWEN_API qwen_status qwen_bundle_set_num_threads(qwen_bundle *bundle,
                                                 int32_t n);

/*--- sessions -------------------------------------------------------------*/

/* A generation state of batch 1 holding at most `context_length` tokens. The
 * bundle must outlive the session. */
QWEN_API qwen_status qwen_session_create(qwen_bundle *bundle,
                                         int64_t context_length,
                                         qwen_session **out);
QWEN_API void qwen_session_free(qwen_session *session);

/* Appends `n` >= 1 tokens and computes the logits of each of the n new
 * positions (qwen_session_logits_at). */
QWEN_API qwen_status qwen_session_prefill(qwen_session *session,
                                          const int64_t *ids, int64_t n);
/* Appends one token (prefill of 1). */
QWEN_API qwen_status qwen_session_decode(qwen_session *session, int64_t id);
/* The logits (vocab_size floats) of the last position, or null before the
 * first prefill/decode. Valid until the next call on the session. */
QWEN_API const float *qwen_session_logits(const qwen_session *session);
/* The logits of the i-th position of the most recent prefill/decode call
 * (0 <= i < qwen_session_num_logits), or null. */
QWEN_API const float *qwen_session_logits_at(const qwen_session *session,
                                             int64_t i);
/* Positions the most recent prefill/decode computed logits for. */
QWEN_API int64_t qwen_session_num_logits(const qwen_session *session);
/* all != 0 (the default): prefill computes the logits of every new position;
 * 0: of the last one only (num_logits is then 1), which is all generation
 * needs. Bundles with a "logits_rows" input (BundleABI.h) then skip the LM
 * head for the other positions: for long prompts a large part of the
 * prefill. Takes effect from the next prefill/decode. */
QWEN_API qwen_status qwen_session_set_all_logits(qwen_session *session,
                                                 int all);
/* Tokens in the session so far. */
QWEN_API int64_t qwen_session_length(const qwen_session *session);
QWEN_API int64_t qwen_session_context_length(const qwen_session *session);
/* Forgets all tokens (keeps the context length). */
QWEN_API void qwen_session_reset(qwen_session *session);

/*--- observed activations (calibration) -----------------------------------*/

/* A bundle compiled for calibration (qwen-calibrate) has outputs with role
 * "observe": the input activation of linear / logits ops, [1, ..., K] f32.
 * One output may serve several layers (q/k/v read the same tensor). Bundles
 * without them have 0; nothing else changes. */
QWEN_API int64_t qwen_bundle_num_observed(const qwen_bundle *bundle);
/* The output's manifest name, or null for an index outside [0, num). */
QWEN_API const char *qwen_bundle_observed_name(const qwen_bundle *bundle,
                                               int64_t i);
/* The layers (weight store entry names) reading observed tensor i. */
QWEN_API int64_t qwen_bundle_observed_num_layers(const qwen_bundle *bundle,
                                                 int64_t i);
QWEN_API const char *qwen_bundle_observed_layer(const qwen_bundle *bundle,
                                                int64_t i, int64_t j);
/* Observed tensor i of the most recent prefill/decode as a row-major
 * [rows, cols] matrix (rows = every position the forward computed: the new
 * tokens, or the whole sequence for a model without a KV cache; cols = K).
 * Valid until the next call on the session. QWEN_ERR_INVALID_ARGUMENT for a
 * bad index or before the first prefill. */
QWEN_API qwen_status qwen_session_observed(const qwen_session *session,
                                           int64_t i, const float **data,
                                           int64_t *rows, int64_t *cols);

/*--- tokenizer ------------------------------------------------------------*/

/* Token ids of the UTF-8 `text`. Sets *n to the number of ids; if it exceeds
 * `cap`, nothing is written to `ids` and QWEN_ERR_BUFFER_TOO_SMALL is
 * returned. QWEN_ERR_TOKENIZER if the bundle has no tokenizer. */
QWEN_API qwen_status qwen_tokenize(const qwen_bundle *bundle, const char *text,
                                   int64_t *ids, int64_t cap, int64_t *n);
/* UTF-8 text of `ids` (special tokens included), NUL-terminated in `buf`.
 * Sets *len to the text's length without the NUL; if len + 1 exceeds `cap`,
 * QWEN_ERR_BUFFER_TOO_SMALL. */
QWEN_API qwen_status qwen_detokenize(const qwen_bundle *bundle,
                                     const int64_t *ids, int64_t n, char *buf,
                                     int64_t cap, int64_t *len);

/*--- sampling -------------------------------------------------------------*/

/* Draws a token id from `logits`. temperature <= 0: greedy (argmax, the
 * lowest id on ties; rng_state untouched). Otherwise softmax(logits / T)
 * restricted to the top_k most likely ids (top_k <= 0: all) and then to the
 * smallest set of most likely ids whose probability reaches top_p (top_p >= 1:
 * all), sampled with a deterministic generator advancing *rng_state
 * (splitmix64: the same seed gives the same ids everywhere). Returns -1 for
 * invalid arguments (null logits, vocab <= 0, rng_state null when sampling,
 * NaN everywhere). */
QWEN_API int64_t qwen_sample(const float *logits, int64_t vocab,
                             float temperature, int32_t top_k, float top_p,
                             uint64_t *rng_state);

/*--- CPU ------------------------------------------------------------------*/

/* 1 if this CPU (and OS, for AVX/AVX-512 state) supports the feature named as
 * in BundleABI.h's kCheckableFeatures ("avx2", "sse4.2", ...), 0 if not, -1
 * for a name the runtime does not know. */
QWEN_API int qwen_cpu_has_feature(const char *name);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QWEN_RUNTIME_H */
