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
// linear / logits layers named, see --qwen-instrument-activations). B is 1 for the runtime. A model without past
// inputs ("kv_cache": false) is run on the whole sequence at every step.
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

} // namespace qwen::bundle
#endif

#endif // QWEN_RUNTIME_BUNDLEABI_H
