//===- Bundle.cpp - open and check a bundle directory ---------------------===//
//
// Everything a bundle claims is checked before model code runs: manifest
// versions, every file's size and sha256, the target's CPU features (so a
// bundle for a newer CPU fails with a message instead of SIGILL), the model's
// ABI version, and every weight input against weights.bin's index.
//
//===----------------------------------------------------------------------===//

#include "RuntimeImpl.h"

#include "Cuda.h"

#include "qwen/Runtime/BundleABI.h"
#include "qwen/Runtime/Json.h"
#include "qwen/Support/Sha256.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <sys/stat.h>
#include <thread>

using namespace qwen;
using namespace qwen::rt;
using json::Value;

qwen_bundle::~qwen_bundle() {
  tokenizer.reset();
  weights.reset();
  if (library) {
    // model.so's destructors unload its kernels: in the device's context.
    std::optional<qwen::rt::cuda::Scope> scope;
    if (cuda)
      scope.emplace(*cuda);
    dlclose(library);
  }
  cuda.reset();
}

namespace qwen::rt {

size_t elemBytes(ElemType t) {
  switch (t) {
  case ElemType::F32:
  case ElemType::I32:
    return 4;
  case ElemType::I64:
    return 8;
  case ElemType::F16:
    return 2;
  case ElemType::I8:
  case ElemType::U8:
  case ElemType::I1:
    return 1;
  }
  return 0;
}

const char *elemName(ElemType t) {
  switch (t) {
  case ElemType::F32: return "f32";
  case ElemType::I64: return "i64";
  case ElemType::I32: return "i32";
  case ElemType::I8: return "i8";
  case ElemType::U8: return "u8";
  case ElemType::F16: return "f16";
  case ElemType::I1: return "i1";
  }
  return "?";
}

} // namespace qwen::rt

namespace {

/// Reads manifest fields and reports the first problem with its JSON path.
class ManifestReader {
public:
  explicit ManifestReader(std::string file) : file_(std::move(file)) {}

  qwen_status error(const std::string &path, const std::string &what) {
    return fail(QWEN_ERR_MANIFEST, file_ + ": " + path + ": " + what);
  }

  const Value *get(const Value &obj, const std::string &path, const char *key,
                   Value::Kind kind, qwen_status &st, bool optional = false) {
    const Value *v = obj.find(key);
    if (!v) {
      if (!optional)
        st = error(path, std::string("missing key '") + key + "'");
      return nullptr;
    }
    if (v->kind() != kind) {
      Value want;
      switch (kind) {
      case Value::Kind::Bool: want = Value::boolean(false); break;
      case Value::Kind::Number: want = Value::number("0"); break;
      case Value::Kind::String: want = Value::string(""); break;
      case Value::Kind::Array: want = Value::array(); break;
      case Value::Kind::Object: want = Value::object(); break;
      case Value::Kind::Null: break;
      }
      st = error(path + "." + key, std::string("expected ") + want.kindName() +
                                       ", found " + v->kindName());
      return nullptr;
    }
    return v;
  }

  bool getInt(const Value &obj, const std::string &path, const char *key,
              int64_t &out, qwen_status &st, bool optional = false) {
    const Value *v = get(obj, path, key, Value::Kind::Number, st, optional);
    if (!v)
      return false;
    if (!v->asInt64(out)) {
      st = error(path + "." + key, "expected an integer, found " + v->str());
      return false;
    }
    return true;
  }

  const std::string &file() const { return file_; }

private:
  std::string file_;
};

bool isPlainFileName(const std::string &p) {
  return !p.empty() && p != "." && p != ".." &&
         p.find('/') == std::string::npos && p.find('\0') == std::string::npos;
}

bool parseRole(const std::string &s, bool input, Role &r) {
  static const struct {
    const char *name;
    Role role;
    bool input;
  } kRoles[] = {
      {"input_ids", Role::InputIds, true},
      {"attention_mask", Role::AttentionMask, true},
      {"position_ids", Role::PositionIds, true},
      {"past_key", Role::PastKey, true},
      {"past_value", Role::PastValue, true},
      {"logits_rows", Role::LogitsRows, true},
      {"weight", Role::Weight, true},
      {"logits", Role::Logits, false},
      {"present_key", Role::PresentKey, false},
      {"present_value", Role::PresentValue, false},
      {"observe", Role::Observe, false},
  };
  for (const auto &k : kRoles)
    if (s == k.name && k.input == input) {
      r = k.role;
      return true;
    }
  return false;
}

bool parseDType(const std::string &s, ElemType &t) {
  static const struct {
    const char *name;
    ElemType type;
  } kTypes[] = {{"f32", ElemType::F32}, {"i64", ElemType::I64},
                {"i32", ElemType::I32}, {"i8", ElemType::I8},
                {"u8", ElemType::U8},   {"i1", ElemType::I1},
                {"f16", ElemType::F16}};
  for (const auto &k : kTypes)
    if (s == k.name) {
      t = k.type;
      return true;
    }
  return false;
}

std::string shapeStr(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

qwen_status parseTensors(ManifestReader &m, const Value &root, bool input,
                         std::vector<TensorSpec> &out) {
  qwen_status st = QWEN_OK;
  const char *key = input ? "inputs" : "outputs";
  const Value *arr = m.get(root, "", key, Value::Kind::Array, st);
  if (!arr)
    return st;
  for (size_t i = 0; i < arr->items().size(); ++i) {
    const Value &t = arr->items()[i];
    std::string path = std::string(key) + "[" + std::to_string(i) + "]";
    if (!t.isObject())
      return m.error(path, std::string("expected object, found ") +
                               t.kindName());
    TensorSpec spec;
    const Value *name = m.get(t, path, "name", Value::Kind::String, st);
    const Value *role = name ? m.get(t, path, "role", Value::Kind::String, st)
                             : nullptr;
    const Value *dtype =
        role ? m.get(t, path, "dtype", Value::Kind::String, st) : nullptr;
    const Value *shape =
        dtype ? m.get(t, path, "shape", Value::Kind::Array, st) : nullptr;
    if (!shape)
      return st;
    spec.name = name->str();
    path += " ('" + spec.name + "')";
    if (!parseRole(role->str(), input, spec.role))
      return m.error(path + ".role", "unknown " +
                                         std::string(input ? "input" : "output") +
                                         " role '" + role->str() + "'");
    if (!parseDType(dtype->str(), spec.dtype))
      return m.error(path + ".dtype", "unknown dtype '" + dtype->str() + "'");
    for (const Value &d : shape->items()) {
      int64_t v;
      if (!d.isNumber() || !d.asInt64(v) || v < -1)
        return m.error(path + ".shape",
                       "expected integers >= -1 (-1 = dynamic)");
      spec.shape.push_back(v);
    }
    bool kv = spec.role == Role::PastKey || spec.role == Role::PastValue ||
              spec.role == Role::PresentKey || spec.role == Role::PresentValue;
    if (kv && !m.getInt(t, path, "layer", spec.layer, st))
      return st;
    if (spec.role == Role::Observe) {
      const Value *layers = m.get(t, path, "layers", Value::Kind::Array, st);
      if (!layers)
        return st;
      for (const Value &l : layers->items()) {
        if (!l.isString())
          return m.error(path + ".layers", "expected strings (layer names)");
        spec.layers.push_back(l.str());
      }
      if (spec.layers.empty())
        return m.error(path + ".layers", "expected at least one layer name");
    }
    if (spec.role == Role::Weight) {
      int64_t off, bytes;
      if (!m.getInt(t, path, "offset", off, st) ||
          !m.getInt(t, path, "bytes", bytes, st))
        return st;
      if (off < 0 || bytes < 0)
        return m.error(path, "negative offset or bytes");
      spec.offset = uint64_t(off);
      spec.bytes = uint64_t(bytes);
    }
    out.push_back(std::move(spec));
  }
  return QWEN_OK;
}

/// Checks the roles, ranks and dtypes the runtime relies on and indexes the
/// per-layer KV tensors.
qwen_status checkSignature(ManifestReader &m, qwen_bundle &b) {
  auto bad = [&](const TensorSpec &t, const std::string &what) {
    return m.error(std::string("'") + t.name + "'", what);
  };
  int nIds = 0, nMask = 0, nPos = 0, nLogits = 0;
  size_t L = size_t(b.numLayers);
  constexpr size_t kNone = ~size_t(0);
  b.pastKeyIn.assign(L, kNone);
  b.pastValueIn.assign(L, kNone);
  b.presentKeyOut.assign(L, kNone);
  b.presentValueOut.assign(L, kNone);
  bool anyPast = false, anyPresent = false;
  for (size_t i = 0; i < b.inputs.size(); ++i) {
    const TensorSpec &t = b.inputs[i];
    switch (t.role) {
    case Role::InputIds:
    case Role::PositionIds:
      ++(t.role == Role::InputIds ? nIds : nPos);
      if (t.shape.size() != 2)
        return bad(t, "expected rank 2 [B, S], found " + shapeStr(t.shape));
      if (t.dtype != ElemType::I64 && t.dtype != ElemType::I32)
        return bad(t, std::string("expected dtype i64 or i32, found ") +
                          elemName(t.dtype));
      break;
    case Role::AttentionMask:
      ++nMask;
      if (t.shape.size() != 2)
        return bad(t, "expected rank 2 [B, P + S], found " + shapeStr(t.shape));
      break;
    case Role::PastKey:
    case Role::PastValue: {
      anyPast = true;
      if (t.shape.size() != 4 || t.dtype != ElemType::F32)
        return bad(t, "expected f32 [B, Hkv, P, D], found " +
                          std::string(elemName(t.dtype)) + " " +
                          shapeStr(t.shape));
      if (t.layer < 0 || t.layer >= b.numLayers)
        return bad(t, "layer " + std::to_string(t.layer) + " outside [0, " +
                          std::to_string(b.numLayers) + ")");
      auto &slot = t.role == Role::PastKey ? b.pastKeyIn : b.pastValueIn;
      if (slot[size_t(t.layer)] != kNone)
        return bad(t, "second input of this role for layer " +
                          std::to_string(t.layer));
      slot[size_t(t.layer)] = i;
      if ((t.shape[1] >= 0 && t.shape[1] != b.numKvHeads) ||
          (t.shape[3] >= 0 && t.shape[3] != b.headDim))
        return bad(t, "shape " + shapeStr(t.shape) +
                          " disagrees with num_kv_heads " +
                          std::to_string(b.numKvHeads) + " / head_dim " +
                          std::to_string(b.headDim));
      break;
    }
    case Role::LogitsRows:
      if (b.logitsRowsIn)
        return bad(t, "second logits_rows input");
      if (t.shape != std::vector<int64_t>{1} || t.dtype != ElemType::I64)
        return bad(t, "expected i64 [1], found " +
                          std::string(elemName(t.dtype)) + " " +
                          shapeStr(t.shape));
      b.logitsRowsIn = i;
      break;
    case Role::Weight: {
      for (int64_t d : t.shape)
        if (d < 0)
          return bad(t, "a weight needs a static shape, found " +
                            shapeStr(t.shape));
      uint64_t n = 1;
      for (int64_t d : t.shape)
        n *= uint64_t(d);
      if (n * elemBytes(t.dtype) != t.bytes)
        return bad(t, "bytes " + std::to_string(t.bytes) + " != " +
                          std::to_string(n) + " elements of " +
                          elemName(t.dtype));
      break;
    }
    default:
      break;
    }
  }
  for (size_t i = 0; i < b.outputs.size(); ++i) {
    const TensorSpec &t = b.outputs[i];
    if (t.role == Role::Logits) {
      ++nLogits;
      b.logitsOut = i;
      if (t.shape.size() != 3 || t.dtype != ElemType::F32)
        return bad(t, "expected f32 [B, S, V], found " +
                          std::string(elemName(t.dtype)) + " " +
                          shapeStr(t.shape));
      if (t.shape[2] >= 0 && t.shape[2] != b.vocabSize)
        return bad(t, "vocabulary " + std::to_string(t.shape[2]) +
                          " != model.vocab_size " +
                          std::to_string(b.vocabSize));
      continue;
    }
    if (t.role == Role::Observe) {
      if (t.shape.size() < 2 || t.dtype != ElemType::F32)
        return bad(t, "expected an f32 observed activation of rank >= 2 "
                      "[B, ..., K], found " +
                          std::string(elemName(t.dtype)) + " " +
                          shapeStr(t.shape));
      b.observedOut.push_back(i);
      continue;
    }
    anyPresent = true;
    if (t.shape.size() != 4 || t.dtype != ElemType::F32)
      return bad(t, "expected f32 [B, Hkv, P + S, D], found " +
                        std::string(elemName(t.dtype)) + " " +
                        shapeStr(t.shape));
    if (t.layer < 0 || t.layer >= b.numLayers)
      return bad(t, "layer " + std::to_string(t.layer) + " outside [0, " +
                        std::to_string(b.numLayers) + ")");
    auto &slot = t.role == Role::PresentKey ? b.presentKeyOut
                                            : b.presentValueOut;
    if (slot[size_t(t.layer)] != kNone)
      return bad(t, "second output of this role for layer " +
                        std::to_string(t.layer));
    slot[size_t(t.layer)] = i;
  }
  const std::string sig = "inputs/outputs";
  if (nIds != 1)
    return m.error(sig, "expected one input_ids input, found " +
                            std::to_string(nIds));
  if (nMask > 1 || nPos > 1)
    return m.error(sig, "more than one attention_mask or position_ids input");
  if (nLogits != 1)
    return m.error(sig, "expected one logits output, found " +
                            std::to_string(nLogits));
  if (anyPast != b.kvCache || anyPresent != b.kvCache)
    return m.error(sig, std::string("model.kv_cache is ") +
                            (b.kvCache ? "true" : "false") +
                            " but past/present tensors are " +
                            (anyPast || anyPresent ? "present" : "absent"));
  if (b.kvCache)
    for (size_t l = 0; l < L; ++l)
      if (b.pastKeyIn[l] == kNone || b.pastValueIn[l] == kNone ||
          b.presentKeyOut[l] == kNone || b.presentValueOut[l] == kNone)
        return m.error(sig, "layer " + std::to_string(l) +
                                " lacks a past_key, past_value, present_key "
                                "or present_value");
  return QWEN_OK;
}

bool readFile(const std::string &path, std::string &out, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    error = path + ": cannot read";
    return false;
  }
  out = ss.str();
  return true;
}

/// model.so of a CUDA bundle has undefined references to the mgpu*
/// functions this library defines. They resolve only against libraries in
/// the global scope: true when a program links the runtime, not when it was
/// dlopen()ed with RTLD_LOCAL (Python's ctypes). Reopening our own file with
/// RTLD_NOLOAD | RTLD_GLOBAL promotes it; the handle is kept with the device.
qwen_status exposeGpuRuntime(cuda::Device &dev) {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&qwen_bundle_open), &info) ||
      !info.dli_fname)
    return fail(QWEN_ERR_LOAD, "cannot find the runtime library's own file "
                               "(dladdr) to export the GPU runtime functions");
  dev.runtimeGlobal =
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
  if (!dev.runtimeGlobal) {
    const char *e = dlerror();
    return fail(QWEN_ERR_LOAD, std::string("cannot export the GPU runtime "
                                           "functions of ") +
                                   info.dli_fname + ": " +
                                   (e ? e : "unknown error"));
  }
  return QWEN_OK;
}

/// Copies the span of weights.bin holding every weight input to device
/// memory once and points the weight inputs into it; the host mapping is
/// released (the device copy is what forward reads).
qwen_status uploadWeights(const std::string &dir, qwen_bundle &b,
                          cuda::Scope &scope) {
  cuda::Device &dev = *b.cuda;
  cuda::DeviceBuffer empty(dev), weights(dev);
  uint64_t lo = UINT64_MAX, hi = 0;
  const void *base = nullptr; // host address of offset lo
  for (const TensorSpec &t : b.inputs)
    if (t.role == Role::Weight && t.bytes) {
      if (t.offset < lo) {
        lo = t.offset;
        base = t.data;
      }
      hi = std::max(hi, t.offset + t.bytes);
    }
  if (hi > lo) {
    if (!weights.upload(scope, base, size_t(hi - lo), "weights.bin"))
      return fail(scope.status(), "bundle '" + dir + "': " + scope.error());
  }
  static const unsigned char kZeros[256] = {};
  if (!empty.upload(scope, kZeros, sizeof(kZeros), "zero-size tensors"))
    return fail(scope.status(), "bundle '" + dir + "': " + scope.error());
  for (TensorSpec &t : b.inputs)
    if (t.role == Role::Weight)
      t.data = reinterpret_cast<const void *>(
          t.bytes ? weights.get() + (t.offset - lo) : empty.get());
  dev.weights = weights.release();
  dev.empty = empty.release();
  b.weights.reset();
  return QWEN_OK;
}

qwen_status openBundle(const std::string &dir, qwen_bundle &b) {
  b.dir = dir;
  std::string manifestPath = dir + "/manifest.json";
  struct stat dst;
  if (::stat(dir.c_str(), &dst) != 0)
    return fail(QWEN_ERR_IO, dir + ": cannot open bundle: " +
                                 std::strerror(errno));
  if (!S_ISDIR(dst.st_mode))
    return fail(QWEN_ERR_IO, dir + ": not a bundle directory");
  std::string text, err;
  if (!readFile(manifestPath, text, err))
    return fail(QWEN_ERR_IO, err + " (a bundle without manifest.json is "
                                   "incomplete)");
  Value root;
  if (!json::parse(text, root, err))
    return fail(QWEN_ERR_MANIFEST, manifestPath + ": invalid JSON: " + err);
  ManifestReader m(manifestPath);
  if (!root.isObject())
    return m.error("(root)", std::string("expected object, found ") +
                                 root.kindName());
  qwen_status st = QWEN_OK;

  const Value *format = m.get(root, "", "format", Value::Kind::String, st);
  if (!format)
    return st;
  if (format->str() != QWEN_BUNDLE_FORMAT)
    return m.error("format", "'" + format->str() + "' is not '" +
                                 QWEN_BUNDLE_FORMAT + "'");
  int64_t v;
  if (!m.getInt(root, "", "format_version", v, st))
    return st;
  if (v != QWEN_BUNDLE_FORMAT_VERSION)
    return m.error("format_version",
                   "version " + std::to_string(v) +
                       " is not supported by this runtime (supports " +
                       std::to_string(QWEN_BUNDLE_FORMAT_VERSION) + ")");

  // entry
  const Value *entry = m.get(root, "", "entry", Value::Kind::Object, st);
  if (!entry)
    return st;
  const Value *lib = m.get(*entry, "entry", "library", Value::Kind::String, st);
  const Value *sym =
      lib ? m.get(*entry, "entry", "symbol", Value::Kind::String, st) : nullptr;
  if (!sym || !m.getInt(*entry, "entry", "abi_version", v, st))
    return st;
  if (v != QWEN_MODEL_ABI_VERSION)
    return m.error("entry.abi_version",
                   "ABI version " + std::to_string(v) +
                       " is not supported by this runtime (supports " +
                       std::to_string(QWEN_MODEL_ABI_VERSION) + ")");
  if (!isPlainFileName(lib->str()))
    return m.error("entry.library", "'" + lib->str() +
                                        "' is not a file name in the bundle");

  // model
  const Value *model = m.get(root, "", "model", Value::Kind::Object, st);
  if (!model)
    return st;
  const Value *arch =
      m.get(*model, "model", "architecture", Value::Kind::String, st, true);
  b.architecture = arch ? arch->str() : "unknown";
  if (!m.getInt(*model, "model", "num_layers", b.numLayers, st) ||
      !m.getInt(*model, "model", "num_kv_heads", b.numKvHeads, st) ||
      !m.getInt(*model, "model", "head_dim", b.headDim, st) ||
      !m.getInt(*model, "model", "vocab_size", b.vocabSize, st))
    return st;
  if (b.numLayers < 0 || b.numKvHeads < 0 || b.headDim < 0 ||
      b.vocabSize <= 0 || b.vocabSize > (int64_t(1) << 31))
    return m.error("model", "num_layers, num_kv_heads, head_dim or "
                            "vocab_size out of range");
  const Value *kv = m.get(*model, "model", "kv_cache", Value::Kind::Bool, st);
  if (!kv)
    return st;
  b.kvCache = kv->asBool();
  if (const Value *eos = m.get(*model, "model", "eos_token_ids",
                               Value::Kind::Array, st, true)) {
    for (const Value &e : eos->items()) {
      int64_t id;
      if (!e.isNumber() || !e.asInt64(id) || id < 0 || id >= b.vocabSize)
        return m.error("model.eos_token_ids",
                       "expected token ids in [0, vocab_size)");
      b.eosIds.push_back(id);
    }
  } else if (st != QWEN_OK) {
    return st;
  }

  // target: a CPU (kind "cpu" or none, with features) or a CUDA GPU (kind
  // "cuda", with arch and the kernels' file).
  const Value *target = m.get(root, "", "target", Value::Kind::Object, st);
  const Value *tname =
      target ? m.get(*target, "target", "name", Value::Kind::String, st)
             : nullptr;
  if (!tname)
    return st;
  b.targetName = tname->str();
  const Value *kind =
      m.get(*target, "target", "kind", Value::Kind::String, st, true);
  if (!kind && st != QWEN_OK)
    return st;
  const bool isCuda = kind && kind->str() == "cuda";
  if (kind && !isCuda && kind->str() != "cpu")
    return m.error("target.kind", "unknown target kind '" + kind->str() +
                                      "' (expected 'cpu' or 'cuda')");
  // A CUDA bundle names one "arch", or several "archs" (a fat binary) and
  // optionally the arch of the PTX it carries for newer GPUs ("ptx").
  std::string cudaBinary;
  cuda::Archs cudaArchs;
  if (isCuda) {
    auto parseArch = [&](const Value &v, const char *key,
                         bundle::SmArch &out) {
      if (!v.isString() || !bundle::parseSmArch(v.str().c_str(), out))
        return m.error(std::string("target.") + key,
                       (v.isString() ? "'" + v.str() + "'" : "a non-string") +
                           " is not a CUDA architecture (sm_XY or sm_XYa)");
      return QWEN_OK;
    };
    const Value *arch =
        m.get(*target, "target", "arch", Value::Kind::String, st, true);
    const Value *archs =
        arch || st != QWEN_OK
            ? nullptr
            : m.get(*target, "target", "archs", Value::Kind::Array, st);
    if (!arch && !archs)
      return st;
    for (const Value &a : arch ? std::vector<Value>{*arch} : archs->items()) {
      bundle::SmArch sm;
      if ((st = parseArch(a, arch ? "arch" : "archs", sm)) != QWEN_OK)
        return st;
      cudaArchs.cubins.push_back(sm);
      cudaArchs.names.push_back(a.str());
    }
    if (cudaArchs.cubins.empty())
      return m.error("target.archs", "lists no architecture");
    if (const Value *ptx =
            m.get(*target, "target", "ptx", Value::Kind::String, st, true)) {
      bundle::SmArch sm;
      if ((st = parseArch(*ptx, "ptx", sm)) != QWEN_OK)
        return st;
      cudaArchs.ptx = sm;
      cudaArchs.ptxName = ptx->str();
    } else if (st != QWEN_OK) {
      return st;
    }
    const Value *binary =
        m.get(*target, "target", "binary", Value::Kind::String, st);
    if (!binary)
      return st;
    if (!isPlainFileName(binary->str()))
      return m.error("target.binary", "'" + binary->str() +
                                          "' is not a file name in the bundle");
    cudaBinary = binary->str();
  }
  const Value *features =
      isCuda ? nullptr
             : m.get(*target, "target", "features", Value::Kind::Array, st);
  if (!isCuda && !features)
    return st;
  std::vector<std::string> missing;
  static const std::vector<Value> kNoFeatures;
  for (const Value &f : features ? features->items() : kNoFeatures) {
    if (!f.isString())
      return m.error("target.features", "expected strings");
    int has = cpuHasFeature(f.str().c_str());
    if (has < 0)
      return m.error("target.features",
                     "unknown CPU feature '" + f.str() +
                         "' (this runtime checks the features listed in "
                         "BundleABI.h)");
    if (!has)
      missing.push_back(f.str());
  }

  if ((st = parseTensors(m, root, true, b.inputs)) != QWEN_OK ||
      (st = parseTensors(m, root, false, b.outputs)) != QWEN_OK ||
      (st = checkSignature(m, b)) != QWEN_OK)
    return st;

  // files: sizes first (cheap), then hashes.
  const Value *files = m.get(root, "", "files", Value::Kind::Array, st);
  if (!files)
    return st;
  bool listsLibrary = false, listsWeights = false, listsTokenizer = false,
       listsBinary = false;
  struct Listed {
    std::string path, sha;
    int64_t bytes;
  };
  std::vector<Listed> listed;
  for (size_t i = 0; i < files->items().size(); ++i) {
    const Value &f = files->items()[i];
    std::string path = "files[" + std::to_string(i) + "]";
    if (!f.isObject())
      return m.error(path, "expected object");
    const Value *p = m.get(f, path, "path", Value::Kind::String, st);
    const Value *sha =
        p ? m.get(f, path, "sha256", Value::Kind::String, st) : nullptr;
    int64_t bytes;
    if (!sha || !m.getInt(f, path, "bytes", bytes, st))
      return st;
    if (!isPlainFileName(p->str()))
      return m.error(path + ".path", "'" + p->str() +
                                         "' is not a file name in the bundle");
    for (const Listed &l : listed)
      if (l.path == p->str())
        return m.error(path + ".path", "'" + p->str() + "' listed twice");
    listsLibrary |= p->str() == lib->str();
    listsWeights |= p->str() == "weights.bin";
    listsTokenizer |= p->str() == "tokenizer.json";
    listsBinary |= isCuda && p->str() == cudaBinary;
    listed.push_back({p->str(), sha->str(), bytes});
  }
  bool anyWeight = false;
  for (const TensorSpec &t : b.inputs)
    anyWeight |= t.role == Role::Weight;
  if (!listsLibrary)
    return m.error("files", "'" + lib->str() + "' (entry.library) not listed");
  if (isCuda && !listsBinary)
    return m.error("files", "'" + cudaBinary + "' (target.binary) not listed");
  if (anyWeight && !listsWeights)
    return m.error("files", "'weights.bin' not listed but inputs have weights");
  for (const Listed &l : listed) {
    std::string path = dir + "/" + l.path;
    struct stat fst;
    if (::stat(path.c_str(), &fst) != 0)
      return fail(QWEN_ERR_IO, path + ": cannot open: " + std::strerror(errno));
    if (!S_ISREG(fst.st_mode))
      return fail(QWEN_ERR_IO, path + ": not a regular file");
    if (int64_t(fst.st_size) != l.bytes)
      return fail(QWEN_ERR_INTEGRITY,
                  path + ": size " + std::to_string(fst.st_size) +
                      " bytes, manifest.json says " + std::to_string(l.bytes) +
                      " (truncated or modified file)");
  }
  // CPU features before any model code is loaded (and before hashing
  // gigabytes of weights for a bundle this machine cannot run).
  if (!missing.empty()) {
    std::string names;
    for (const std::string &f : missing)
      names += (names.empty() ? "" : ", ") + f;
    return fail(QWEN_ERR_CPU,
                dir + ": this CPU lacks " + names + ", required by target '" +
                    b.targetName +
                    "'; compile the bundle for a target this machine "
                    "supports (e.g. host)");
  }

  for (const Listed &l : listed) {
    std::string path = dir + "/" + l.path, hex;
    if (!sha256File(path, hex, err))
      return fail(QWEN_ERR_IO, err);
    if (hex != l.sha)
      return fail(QWEN_ERR_INTEGRITY,
                  path + ": sha256 " + hex + " does not match manifest.json (" +
                      l.sha + "): the file is corrupted or was modified");
  }

  // A CUDA bundle's GPU, context current, before model.so's constructors
  // load its kernels.
  std::optional<cuda::Scope> scope;
  if (isCuda) {
    if ((st = cuda::openDevice(dir, cudaArchs, b.cuda)) != QWEN_OK)
      return st;
    if ((st = exposeGpuRuntime(*b.cuda)) != QWEN_OK)
      return st;
    scope.emplace(*b.cuda);
    if (scope->failed())
      return fail(scope->status(), dir + ": " + scope->error());
  }

  // model.so
  std::string libPath = dir + "/" + lib->str();
  if (libPath[0] != '/' && libPath.compare(0, 2, "./") != 0)
    libPath = "./" + libPath; // dlopen searches the library path otherwise
  b.library = dlopen(libPath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!b.library) {
    const char *e = dlerror();
    return fail(QWEN_ERR_LOAD, std::string("cannot load ") + libPath + ": " +
                                   (e ? e : "unknown error"));
  }
  if (scope && scope->failed())
    return fail(scope->status(), libPath + ": " + scope->error());
  auto lookup = [&](const char *name, void *&out) {
    dlerror();
    out = dlsym(b.library, name);
    if (!out)
      return fail(QWEN_ERR_LOAD,
                  libPath + ": missing symbol '" + name + "'");
    return QWEN_OK;
  };
  void *fwd, *abi, *thr;
  if ((st = lookup(sym->str().c_str(), fwd)) != QWEN_OK ||
      (st = lookup(QWEN_MODEL_ABI_VERSION_SYMBOL, abi)) != QWEN_OK ||
      (st = lookup(QWEN_MODEL_SET_THREADS_SYMBOL, thr)) != QWEN_OK)
    return st;
  int64_t libAbi = reinterpret_cast<AbiVersionFn>(abi)();
  if (libAbi != QWEN_MODEL_ABI_VERSION)
    return fail(QWEN_ERR_LOAD, libPath + ": ABI version " +
                                   std::to_string(libAbi) +
                                   ", this runtime supports " +
                                   std::to_string(QWEN_MODEL_ABI_VERSION));
  b.forward = reinterpret_cast<ForwardFn>(fwd);
  b.setThreads = reinterpret_cast<SetThreadsFn>(thr);

  // weights.bin: every weight input must be an entry of the store.
  if (listsWeights) {
    std::string wpath = dir + "/weights.bin";
    // CPU bundles read their weights into transparent huge pages (decode
    // streams all of them every token; 4 KiB file pages cost a TLB walk every
    // 4 KiB: Qwen2.5-0.5B decoded 41 tok/s mapped, 50 in huge pages; README,
    // "Huge pages").
    // QWEN_WEIGHTS=mmap keeps the file mapping (shared between processes, paged
    // on demand); CUDA bundles map it (the weights go to the device).
    const char *wm = std::getenv("QWEN_WEIGHTS");
    if (wm && std::string_view(wm) != "mmap" &&
        std::string_view(wm) != "hugepages")
      return fail(QWEN_ERR_INVALID_ARGUMENT,
                  std::string("QWEN_WEIGHTS='") + wm +
                      "': expected 'hugepages' (default) or 'mmap'");
    const bool mapped = b.cuda || (wm && std::string_view(wm) == "mmap");
    b.weights = ws::WeightStoreReader::open(
        wpath, err,
        mapped ? ws::Residence::Mapped : ws::Residence::HugePages);
    if (!b.weights)
      return fail(QWEN_ERR_WEIGHTS, err);
    for (TensorSpec &t : b.inputs) {
      if (t.role != Role::Weight)
        continue;
      const ws::Entry *e = b.weights->find(t.name);
      if (!e)
        for (const ws::Entry &c : b.weights->entries())
          if (c.offset == t.offset && c.nbytes == t.bytes) {
            e = &c;
            break;
          }
      std::string what = wpath + ": weight '" + t.name + "' (offset " +
                         std::to_string(t.offset) + ", " +
                         std::to_string(t.bytes) + " bytes)";
      if (!e)
        return fail(QWEN_ERR_WEIGHTS, what + " is not an entry of the store");
      if (e->offset != t.offset || e->nbytes != t.bytes)
        return fail(QWEN_ERR_WEIGHTS,
                    what + " disagrees with the store's entry (offset " +
                        std::to_string(e->offset) + ", " +
                        std::to_string(e->nbytes) + " bytes)");
      if (t.offset + t.bytes > b.weights->fileBytes())
        return fail(QWEN_ERR_WEIGHTS, what + " lies outside the file");
      t.data = b.weights->data(*e);
    }
  }

  if (b.cuda && (st = uploadWeights(dir, b, *scope)) != QWEN_OK)
    return st;

  if (listsTokenizer) {
    b.tokenizer = Tokenizer::fromFile(dir + "/tokenizer.json", err);
    if (!b.tokenizer)
      return fail(QWEN_ERR_TOKENIZER, err);
  }

  unsigned hw = std::thread::hardware_concurrency();
  b.setThreads(int32_t(hw ? hw : 1));
  return QWEN_OK;
}

} // namespace

namespace qwen::rt {

qwen_status openBundleChecked(const char *dir, qwen_bundle **out) {
  if (!out)
    return fail(QWEN_ERR_INVALID_ARGUMENT, "qwen_bundle_open: out is null");
  *out = nullptr;
  if (!dir || !*dir)
    return fail(QWEN_ERR_INVALID_ARGUMENT,
                "qwen_bundle_open: empty bundle path");
  std::unique_ptr<qwen_bundle> b(new (std::nothrow) qwen_bundle());
  if (!b)
    return fail(QWEN_ERR_OUT_OF_MEMORY, "out of memory");
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/')
    d.pop_back();
  qwen_status st = openBundle(d, *b);
  if (st != QWEN_OK)
    return st;
  *out = b.release();
  return QWEN_OK;
}

} // namespace qwen::rt
