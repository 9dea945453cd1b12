//===- BundleTest.cpp - the runtime on a fake model.so ---------------------===//
//
// Writes bundles around unittests/Runtime/FakeModel.c (see there for the
// logits it computes) and checks sessions and every load-time check.
//
//===----------------------------------------------------------------------===//

#include "qwen/Runtime/BundleABI.h"
#include "qwen/Support/Sha256.h"
#include "qwen/Support/WeightStore.h"
#include "qwen_runtime.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

/// Removes the bundles this process wrote once all tests ran.
class RemoveBundles : public testing::Environment {
public:
  void TearDown() override {
    std::string cmd = "rm -rf '" + testing::TempDir() + "'/qwen-bundle-" +
                      std::to_string(getpid()) + "-*";
    if (std::system(cmd.c_str()) != 0)
      std::fprintf(stderr, "warning: could not remove test bundles\n");
  }
};
testing::Environment *const removeBundles =
    testing::AddGlobalTestEnvironment(new RemoveBundles);

std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeAll(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

struct FakeBundle {
  bool kv = true;
  int64_t vocab = 16;
  float scale = 1.0f;
  std::vector<std::string> features;
  std::vector<int64_t> eos;
  std::string tokenizer;       // path of a tokenizer.json to include
  std::string formatVersion = "1";
  std::string abiVersion = "1";
  int64_t scaleOffsetDelta = 0; // corrupts the manifest's weight offset
  bool observe = false;         // FAKE_OBSERVE's model and its output
  std::string observeLayers = "[\"fake.q\", \"fake.k\"]";
  /// Non-empty: a CUDA bundle for this arch (FAKE_CUDA's model, a
  /// model.cubin, target kind "cuda"); `target` replaces its target object.
  std::string cudaArch;
  std::string target;
  bool listCubin = true;

  /// Writes the bundle into a fresh directory and returns its path.
  std::string write(const std::string &name) const {
    std::string dir = testing::TempDir() + "/qwen-bundle-" +
                      std::to_string(getpid()) + "-" + name;
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    EXPECT_EQ(::mkdir(dir.c_str(), 0755), 0);
    writeAll(dir + "/model.so", readAll(!cudaArch.empty() ? QWEN_FAKE_MODEL_CUDA
                                        : observe ? QWEN_FAKE_MODEL_OBSERVE
                                        : kv      ? QWEN_FAKE_MODEL
                                                  : QWEN_FAKE_MODEL_NOKV));
    std::string error;
    auto w = qwen::ws::WeightStoreWriter::create(dir + "/weights.bin", error);
    EXPECT_TRUE(w) << error;
    uint8_t pad[100] = {7};
    int64_t config[2] = {vocab, 0};
    EXPECT_TRUE(w->add("fake.pad", qwen::ws::DType::U8, {100}, pad, 100, error));
    EXPECT_TRUE(w->add("fake.config", qwen::ws::DType::I64, {2}, config, 16,
                       error));
    EXPECT_TRUE(w->add("fake.scale", qwen::ws::DType::F32, {1}, &scale, 4,
                       error));
    EXPECT_TRUE(w->finish(error)) << error;
    auto r = qwen::ws::WeightStoreReader::open(dir + "/weights.bin", error);
    EXPECT_TRUE(r) << error;
    const qwen::ws::Entry *cfg = r->find("fake.config");
    const qwen::ws::Entry *scl = r->find("fake.scale");

    std::vector<std::string> files = {"model.so", "weights.bin"};
    if (!cudaArch.empty()) {
      writeAll(dir + "/model.cubin", "placeholder kernels\n");
      if (listCubin)
        files.push_back("model.cubin");
    }
    if (!tokenizer.empty()) {
      writeAll(dir + "/tokenizer.json", readAll(tokenizer));
      files.push_back("tokenizer.json");
    }
    std::ostringstream m;
    m << "{\"format\": \"qwen-bundle\", \"format_version\": " << formatVersion
      << ", \"compiler\": \"fake\", \"source\": {\"file\": \"fake.onnx\", "
         "\"sha256\": \"00\"},\n"
      << "\"model\": {\"architecture\": \"unknown\", \"num_layers\": 1, "
         "\"num_attention_heads\": 1, \"num_kv_heads\": 1, \"head_dim\": 2, "
         "\"hidden_size\": 2, \"vocab_size\": "
      << vocab << ", \"kv_cache\": " << (kv ? "true" : "false")
      << ", \"eos_token_ids\": [";
    for (size_t i = 0; i < eos.size(); ++i)
      m << (i ? ", " : "") << eos[i];
    m << "]},\n\"recipe\": {\"name\": \"fp32\"},\n\"target\": ";
    if (!target.empty()) {
      m << target;
    } else if (!cudaArch.empty()) {
      m << "{\"name\": \"" << cudaArch << "\", \"kind\": \"cuda\", \"arch\": \""
        << cudaArch
        << "\", \"triple\": \"x86_64-unknown-linux-gnu\", "
           "\"device_triple\": \"nvptx64-nvidia-cuda\", \"binary\": "
           "\"model.cubin\"}";
    } else {
      m << "{\"name\": \"fake-target\", \"triple\": "
           "\"x86_64-unknown-linux-gnu\", \"cpu\": \"generic\", \"features\": "
           "[";
      for (size_t i = 0; i < features.size(); ++i)
        m << (i ? ", " : "") << "\"" << features[i] << "\"";
      m << "]}";
    }
    m << ",\n\"entry\": {\"library\": \"model.so\", \"symbol\": "
         "\"qwen_model_forward\", \"abi_version\": "
      << abiVersion << "},\n\"inputs\": [\n"
      << "{\"name\": \"input_ids\", \"role\": \"input_ids\", \"dtype\": "
         "\"i64\", \"shape\": [1, -1]},\n"
      << "{\"name\": \"attention_mask\", \"role\": \"attention_mask\", "
         "\"dtype\": \"i64\", \"shape\": [1, -1]},\n"
      << "{\"name\": \"position_ids\", \"role\": \"position_ids\", \"dtype\": "
         "\"i64\", \"shape\": [1, -1]},\n";
    if (kv)
      m << "{\"name\": \"past_key_values.0.key\", \"role\": \"past_key\", "
           "\"dtype\": \"f32\", \"shape\": [1, 1, -1, 2], \"layer\": 0},\n"
        << "{\"name\": \"past_key_values.0.value\", \"role\": \"past_value\", "
           "\"dtype\": \"f32\", \"shape\": [1, 1, -1, 2], \"layer\": 0},\n";
    m << "{\"name\": \"fake.config\", \"role\": \"weight\", \"dtype\": "
         "\"i64\", \"shape\": [2], \"offset\": "
      << cfg->offset << ", \"bytes\": " << cfg->nbytes << "},\n"
      << "{\"name\": \"fake.scale\", \"role\": \"weight\", \"dtype\": "
         "\"f32\", \"shape\": [1], \"offset\": "
      << int64_t(scl->offset) + scaleOffsetDelta << ", \"bytes\": "
      << scl->nbytes << "}],\n"
      << "\"outputs\": [\n{\"name\": \"logits\", \"role\": \"logits\", "
         "\"dtype\": \"f32\", \"shape\": [1, -1, "
      << vocab << "]}";
    if (kv)
      m << ",\n{\"name\": \"present.0.key\", \"role\": \"present_key\", "
           "\"dtype\": \"f32\", \"shape\": [1, 1, -1, 2], \"layer\": 0},\n"
        << "{\"name\": \"present.0.value\", \"role\": \"present_value\", "
           "\"dtype\": \"f32\", \"shape\": [1, 1, -1, 2], \"layer\": 0}";
    if (observe)
      m << ",\n{\"name\": \"observe.fake.q\", \"role\": \"observe\", "
           "\"dtype\": \"f32\", \"shape\": [1, -1, 3], \"layers\": "
        << observeLayers << "}";
    m << "],\n\"files\": [";
    for (size_t i = 0; i < files.size(); ++i) {
      std::string hex;
      EXPECT_TRUE(qwen::sha256File(dir + "/" + files[i], hex, error));
      struct stat st;
      ::stat((dir + "/" + files[i]).c_str(), &st);
      m << (i ? ",\n" : "\n") << "{\"path\": \"" << files[i]
        << "\", \"bytes\": " << st.st_size << ", \"sha256\": \"" << hex
        << "\"}";
    }
    m << "]}\n";
    writeAll(dir + "/manifest.json", m.str());
    return dir;
  }
};

/// The logits FakeModel.c computes at each position of `tokens`.
std::vector<std::vector<float>> reference(const std::vector<int64_t> &tokens,
                                          int64_t V, float scale = 1.0f) {
  std::vector<std::vector<float>> out;
  double sumId = 0, sumPos = 0, sumSq = 0, cnt = 0;
  for (size_t p = 0; p < tokens.size(); ++p) {
    sumId += double(tokens[p]);
    sumPos += double(p);
    sumSq += double(tokens[p] * tokens[p]);
    cnt += 1;
    int64_t target = (int64_t(sumId) + int64_t(p)) % V;
    double shared = 0.01 * double(int64_t(sumSq + sumPos + cnt) % 13);
    std::vector<float> row(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v)
      row[size_t(v)] = float((v == target ? 10.0 * double(scale) : 0.0) +
                             shared + 0.001 * double(v % 7));
    out.push_back(row);
  }
  return out;
}

std::vector<float> row(const float *p, int64_t V) {
  return p ? std::vector<float>(p, p + V) : std::vector<float>();
}

struct Opened {
  qwen_bundle *b = nullptr;
  ~Opened() { qwen_bundle_free(b); }
};

qwen_bundle *openOk(const std::string &dir, Opened &holder) {
  qwen_status st = qwen_bundle_open(dir.c_str(), &holder.b);
  EXPECT_EQ(st, QWEN_OK) << qwen_last_error();
  return holder.b;
}

/// Opening fails with `want` and a message containing every `needles`.
void expectOpenError(const std::string &dir, qwen_status want,
                     std::vector<std::string> needles) {
  qwen_bundle *b = nullptr;
  qwen_status st = qwen_bundle_open(dir.c_str(), &b);
  EXPECT_EQ(st, want) << qwen_status_name(st) << ": " << qwen_last_error();
  EXPECT_EQ(b, nullptr);
  std::string msg = qwen_last_error();
  for (const std::string &n : needles)
    EXPECT_NE(msg.find(n), std::string::npos)
        << "'" << n << "' not in: " << msg;
  qwen_bundle_free(b);
}

TEST(Bundle, OpensAndReportsMetadata) {
  FakeBundle fb;
  fb.eos = {3, 9};
  fb.features = {"sse3"};
  std::string dir = fb.write("meta");
  Opened h;
  qwen_bundle *b = openOk(dir, h);
  ASSERT_TRUE(b);
  EXPECT_EQ(qwen_bundle_vocab_size(b), 16);
  EXPECT_EQ(qwen_bundle_num_layers(b), 1);
  EXPECT_EQ(qwen_bundle_has_kv_cache(b), 1);
  EXPECT_EQ(qwen_bundle_has_tokenizer(b), 0);
  ASSERT_EQ(qwen_bundle_num_eos_ids(b), 2);
  EXPECT_EQ(qwen_bundle_eos_ids(b)[1], 9);
  EXPECT_TRUE(qwen_bundle_is_eos(b, 3));
  EXPECT_FALSE(qwen_bundle_is_eos(b, 4));
  EXPECT_STREQ(qwen_bundle_target_name(b), "fake-target");

  // The model got all cores at open, then what we ask for.
  void *lib = dlopen((dir + "/model.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_TRUE(lib) << "the runtime should have model.so loaded";
  auto threads = reinterpret_cast<int32_t (*)()>(
      dlsym(lib, "fake_model_num_threads"));
  ASSERT_TRUE(threads);
  EXPECT_EQ(threads(), int32_t(std::thread::hardware_concurrency()));
  EXPECT_EQ(qwen_bundle_set_num_threads(b, 3), QWEN_OK);
  EXPECT_EQ(threads(), 3);
  EXPECT_EQ(qwen_bundle_set_num_threads(b, 0), QWEN_OK);
  EXPECT_EQ(threads(), int32_t(std::thread::hardware_concurrency()));
  dlclose(lib);
}

TEST(Bundle, PrefillAndDecodeGiveExpectedLogits) {
  FakeBundle fb;
  fb.scale = 0.75f; // read from weights.bin by the model
  Opened h;
  qwen_bundle *b = openOk(fb.write("prefill"), h);
  ASSERT_TRUE(b);
  qwen_session *s = nullptr;
  ASSERT_EQ(qwen_session_create(b, 64, &s), QWEN_OK) << qwen_last_error();
  EXPECT_EQ(qwen_session_logits(s), nullptr);
  std::vector<int64_t> prompt = {3, 1, 4, 1, 5};
  ASSERT_EQ(qwen_session_prefill(s, prompt.data(), 5), QWEN_OK)
      << qwen_last_error();
  EXPECT_EQ(qwen_session_length(s), 5);
  ASSERT_EQ(qwen_session_num_logits(s), 5);
  std::vector<int64_t> all = prompt;
  auto ref = reference(all, 16, 0.75f);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(row(qwen_session_logits_at(s, i), 16), ref[size_t(i)]) << i;
  EXPECT_EQ(qwen_session_logits_at(s, 5), nullptr);
  EXPECT_EQ(qwen_session_logits_at(s, -1), nullptr);
  EXPECT_EQ(row(qwen_session_logits(s), 16), ref[4]);

  for (int64_t t : {9, 2, 6, 15, 0}) {
    ASSERT_EQ(qwen_session_decode(s, t), QWEN_OK) << qwen_last_error();
    all.push_back(t);
    EXPECT_EQ(qwen_session_num_logits(s), 1);
    EXPECT_EQ(row(qwen_session_logits(s), 16),
              reference(all, 16, 0.75f).back())
        << "after " << all.size() << " tokens";
  }
  EXPECT_EQ(qwen_session_length(s), 10);

  // Greedy ids follow the fake's rule (sum of ids + position) mod V.
  int64_t next = qwen_sample(qwen_session_logits(s), 16, 0, 0, 1, nullptr);
  int64_t sum = 0;
  for (int64_t t : all)
    sum += t;
  EXPECT_EQ(next, (sum + 9) % 16);

  // Reset: a fresh start gives the same logits as a new session.
  qwen_session_reset(s);
  EXPECT_EQ(qwen_session_length(s), 0);
  EXPECT_EQ(qwen_session_logits(s), nullptr);
  ASSERT_EQ(qwen_session_prefill(s, prompt.data(), 3), QWEN_OK);
  EXPECT_EQ(row(qwen_session_logits(s), 16), ref[2]);
  qwen_session_free(s);
}

// Last logits only (qwen_session_set_all_logits 0): one row per call, the
// last position's, also from a model without a logits_rows input (which
// computes every row; the runtime keeps the last), with and without a KV
// cache. A null session is an error.
TEST(Bundle, LastLogitsOnly) {
  EXPECT_EQ(qwen_session_set_all_logits(nullptr, 0), QWEN_ERR_INVALID_ARGUMENT);
  for (bool kv : {true, false}) {
    FakeBundle fb;
    fb.kv = kv;
    Opened h;
    qwen_bundle *b = openOk(fb.write(kv ? "last-kv" : "last-nokv"), h);
    ASSERT_TRUE(b);
    qwen_session *s = nullptr;
    ASSERT_EQ(qwen_session_create(b, 64, &s), QWEN_OK) << qwen_last_error();
    ASSERT_EQ(qwen_session_set_all_logits(s, 0), QWEN_OK);
    std::vector<int64_t> all = {3, 1, 4, 1, 5};
    ASSERT_EQ(qwen_session_prefill(s, all.data(), 5), QWEN_OK)
        << qwen_last_error();
    ASSERT_EQ(qwen_session_num_logits(s), 1);
    EXPECT_EQ(row(qwen_session_logits_at(s, 0), 16), reference(all, 16).back());
    EXPECT_EQ(qwen_session_logits_at(s, 1), nullptr);
    ASSERT_EQ(qwen_session_decode(s, 9), QWEN_OK) << qwen_last_error();
    all.push_back(9);
    EXPECT_EQ(row(qwen_session_logits(s), 16), reference(all, 16).back());
    // Back to every position from the next call on.
    ASSERT_EQ(qwen_session_set_all_logits(s, 1), QWEN_OK);
    std::vector<int64_t> more = {2, 6};
    ASSERT_EQ(qwen_session_prefill(s, more.data(), 2), QWEN_OK);
    EXPECT_EQ(qwen_session_num_logits(s), 2);
    all.insert(all.end(), more.begin(), more.end());
    EXPECT_EQ(row(qwen_session_logits_at(s, 0), 16), reference(all, 16)[6]);
    qwen_session_free(s);
  }
}

// Decoding through the KV cache gives bit-identical logits to running the
// whole sequence at once, with and without a KV-cache model.
TEST(Bundle, KvDecodeEqualsFullRecompute) {
  FakeBundle kvb, full;
  full.kv = false;
  Opened h1, h2;
  qwen_bundle *b = openOk(kvb.write("kv"), h1);
  qwen_bundle *nb = openOk(full.write("nokv"), h2);
  ASSERT_TRUE(b && nb);
  EXPECT_EQ(qwen_bundle_has_kv_cache(nb), 0);
  std::vector<int64_t> seq = {2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5};
  qwen_session *inc, *whole, *nokv;
  ASSERT_EQ(qwen_session_create(b, 32, &inc), QWEN_OK);
  ASSERT_EQ(qwen_session_create(b, 32, &whole), QWEN_OK);
  ASSERT_EQ(qwen_session_create(nb, 32, &nokv), QWEN_OK);
  ASSERT_EQ(qwen_session_prefill(inc, seq.data(), 4), QWEN_OK);
  ASSERT_EQ(qwen_session_prefill(nokv, seq.data(), 4), QWEN_OK);
  EXPECT_EQ(qwen_session_num_logits(nokv), 4) << "new positions only";
  for (size_t i = 4; i < seq.size(); ++i) {
    ASSERT_EQ(qwen_session_decode(inc, seq[i]), QWEN_OK) << qwen_last_error();
    ASSERT_EQ(qwen_session_decode(nokv, seq[i]), QWEN_OK) << qwen_last_error();
    EXPECT_EQ(qwen_session_num_logits(nokv), 1);
    EXPECT_EQ(row(qwen_session_logits(inc), 16),
              row(qwen_session_logits(nokv), 16))
        << i;
  }
  ASSERT_EQ(qwen_session_prefill(whole, seq.data(), int64_t(seq.size())),
            QWEN_OK);
  EXPECT_EQ(row(qwen_session_logits(inc), 16),
            row(qwen_session_logits(whole), 16));
  EXPECT_EQ(row(qwen_session_logits(whole), 16), reference(seq, 16).back());
  // Chunked prefill (3 + 5 + 4) equals one prefill, position by position.
  qwen_session_reset(inc);
  ASSERT_EQ(qwen_session_prefill(inc, seq.data(), 3), QWEN_OK);
  ASSERT_EQ(qwen_session_prefill(inc, seq.data() + 3, 5), QWEN_OK);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(row(qwen_session_logits_at(inc, i), 16),
              row(qwen_session_logits_at(whole, 3 + i), 16));
  qwen_session_free(inc);
  qwen_session_free(whole);
  qwen_session_free(nokv);
}

// A model may return KV tensors with any valid strides.
TEST(Bundle, NonContiguousPresentOutputs) {
  FakeBundle fb;
  Opened h;
  qwen_bundle *b = openOk(fb.write("strided"), h);
  ASSERT_TRUE(b);
  setenv("QWEN_FAKE_MODEL_MODE", "transposed-kv", 1);
  qwen_session *s;
  ASSERT_EQ(qwen_session_create(b, 32, &s), QWEN_OK);
  std::vector<int64_t> seq = {5, 4, 3, 2, 1, 0, 15};
  ASSERT_EQ(qwen_session_prefill(s, seq.data(), 3), QWEN_OK);
  for (size_t i = 3; i < seq.size(); ++i)
    ASSERT_EQ(qwen_session_decode(s, seq[i]), QWEN_OK);
  unsetenv("QWEN_FAKE_MODEL_MODE");
  EXPECT_EQ(row(qwen_session_logits(s), 16), reference(seq, 16).back());
  qwen_session_free(s);
}

TEST(Bundle, ContextLengthEnforcedWithoutPartialState) {
  FakeBundle fb;
  Opened h;
  qwen_bundle *b = openOk(fb.write("ctx"), h);
  ASSERT_TRUE(b);
  qwen_session *s;
  EXPECT_EQ(qwen_session_create(b, 0, &s), QWEN_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(qwen_session_create(b, 4, &s), QWEN_OK);
  std::vector<int64_t> ids = {1, 2, 3, 4, 5};
  EXPECT_EQ(qwen_session_prefill(s, ids.data(), 5), QWEN_ERR_CONTEXT);
  EXPECT_NE(std::string(qwen_last_error()).find("context length 4"),
            std::string::npos)
      << qwen_last_error();
  EXPECT_EQ(qwen_session_length(s), 0);
  ASSERT_EQ(qwen_session_prefill(s, ids.data(), 3), QWEN_OK);
  ASSERT_EQ(qwen_session_decode(s, 4), QWEN_OK);
  std::vector<float> before = row(qwen_session_logits(s), 16);
  EXPECT_EQ(qwen_session_decode(s, 5), QWEN_ERR_CONTEXT);
  EXPECT_EQ(qwen_session_length(s), 4);
  EXPECT_EQ(row(qwen_session_logits(s), 16), before);
  EXPECT_EQ(qwen_session_prefill(s, ids.data(), 0), QWEN_ERR_INVALID_ARGUMENT);
  qwen_session_free(s);
}

TEST(Bundle, TokenIdsOutOfRange) {
  FakeBundle fb;
  Opened h;
  qwen_bundle *b = openOk(fb.write("tokens"), h);
  ASSERT_TRUE(b);
  qwen_session *s;
  ASSERT_EQ(qwen_session_create(b, 32, &s), QWEN_OK);
  std::vector<int64_t> ids = {1, 16, 2};
  EXPECT_EQ(qwen_session_prefill(s, ids.data(), 3), QWEN_ERR_TOKEN);
  std::string msg = qwen_last_error();
  EXPECT_NE(msg.find("token id 16 at input index 1"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("[0, 16)"), std::string::npos) << msg;
  EXPECT_EQ(qwen_session_length(s), 0);
  ASSERT_EQ(qwen_session_prefill(s, ids.data(), 1), QWEN_OK);
  EXPECT_EQ(qwen_session_decode(s, -1), QWEN_ERR_TOKEN);
  EXPECT_NE(std::string(qwen_last_error()).find("token id -1"),
            std::string::npos);
  // The failed calls left the cache as it was.
  ASSERT_EQ(qwen_session_decode(s, 2), QWEN_OK);
  EXPECT_EQ(row(qwen_session_logits(s), 16), reference({1, 2}, 16).back());
  qwen_session_free(s);
}

TEST(Bundle, UnexpectedForwardOutputShape) {
  FakeBundle fb;
  Opened h;
  qwen_bundle *b = openOk(fb.write("badshape"), h);
  ASSERT_TRUE(b);
  qwen_session *s;
  ASSERT_EQ(qwen_session_create(b, 32, &s), QWEN_OK);
  std::vector<int64_t> ids = {1, 2};
  ASSERT_EQ(qwen_session_prefill(s, ids.data(), 2), QWEN_OK);
  setenv("QWEN_FAKE_MODEL_MODE", "bad-logits-shape", 1);
  EXPECT_EQ(qwen_session_decode(s, 3), QWEN_ERR_MODEL_OUTPUT);
  unsetenv("QWEN_FAKE_MODEL_MODE");
  std::string msg = qwen_last_error();
  EXPECT_NE(msg.find("'logits' of shape [1, 2, 16], expected [1, 1, 16]"),
            std::string::npos)
      << msg;
  EXPECT_EQ(qwen_session_length(s), 2);
  ASSERT_EQ(qwen_session_decode(s, 3), QWEN_OK);
  EXPECT_EQ(row(qwen_session_logits(s), 16), reference({1, 2, 3}, 16).back());
  qwen_session_free(s);
}

TEST(BundleErrors, MissingDirectoryAndManifest) {
  expectOpenError(testing::TempDir() + "/no-such-bundle", QWEN_ERR_IO,
                  {"no-such-bundle", "No such file"});
  FakeBundle fb;
  std::string dir = fb.write("nomanifest");
  std::remove((dir + "/manifest.json").c_str());
  expectOpenError(dir, QWEN_ERR_IO, {"manifest.json", "incomplete"});
  qwen_bundle *b = nullptr;
  EXPECT_EQ(qwen_bundle_open(nullptr, &b), QWEN_ERR_INVALID_ARGUMENT);
}

TEST(BundleErrors, MissingModelSo) {
  FakeBundle fb;
  std::string dir = fb.write("nomodel");
  std::remove((dir + "/model.so").c_str());
  expectOpenError(dir, QWEN_ERR_IO, {"model.so", "No such file"});
}

TEST(BundleErrors, CorruptedWeights) {
  FakeBundle fb;
  std::string dir = fb.write("corrupt");
  std::string w = readAll(dir + "/weights.bin");
  w[70] ^= 1; // same size, one bit flipped
  writeAll(dir + "/weights.bin", w);
  expectOpenError(dir, QWEN_ERR_INTEGRITY,
                  {"weights.bin", "sha256", "does not match"});
  w.resize(w.size() - 8);
  writeAll(dir + "/weights.bin", w);
  expectOpenError(dir, QWEN_ERR_INTEGRITY, {"weights.bin", "size"});
}

TEST(BundleErrors, TruncatedManifest) {
  FakeBundle fb;
  std::string dir = fb.write("truncmanifest");
  std::string m = readAll(dir + "/manifest.json");
  writeAll(dir + "/manifest.json", m.substr(0, m.size() / 2));
  expectOpenError(dir, QWEN_ERR_MANIFEST, {"manifest.json", "invalid JSON"});
  writeAll(dir + "/manifest.json", "[]");
  expectOpenError(dir, QWEN_ERR_MANIFEST, {"expected object"});
}

TEST(BundleErrors, VersionsChecked) {
  FakeBundle fb;
  fb.formatVersion = "2";
  expectOpenError(fb.write("fmt"), QWEN_ERR_MANIFEST,
                  {"format_version", "version 2"});
  FakeBundle fa;
  fa.abiVersion = "7";
  expectOpenError(fa.write("abi"), QWEN_ERR_MANIFEST,
                  {"entry.abi_version", "ABI version 7"});
}

TEST(BundleErrors, UnknownCpuFeature) {
  FakeBundle fb;
  fb.features = {"sse3", "avx9000"};
  expectOpenError(fb.write("unknownfeat"), QWEN_ERR_MANIFEST,
                  {"target.features", "unknown CPU feature 'avx9000'"});
}

TEST(BundleErrors, CpuLacksRequiredFeature) {
  std::vector<std::string> lacking;
  for (const char *f : qwen::bundle::kCheckableFeatures)
    if (qwen_cpu_has_feature(f) == 0)
      lacking.push_back(f);
  if (lacking.empty())
    GTEST_SKIP() << "this CPU has every checkable feature";
  FakeBundle fb;
  fb.features = {"sse3", lacking[0]};
  std::string dir = fb.write("lacking");
  // Never loaded: the check comes before dlopen.
  expectOpenError(dir, QWEN_ERR_CPU,
                  {"lacks " + lacking[0], "target 'fake-target'"});
  EXPECT_EQ(dlopen((dir + "/model.so").c_str(), RTLD_NOW | RTLD_NOLOAD),
            nullptr);
}

TEST(BundleErrors, WeightDisagreesWithStore) {
  FakeBundle fb;
  fb.scaleOffsetDelta = 64;
  expectOpenError(fb.write("weightoff"), QWEN_ERR_WEIGHTS,
                  {"weights.bin", "'fake.scale'", "disagrees"});
}

TEST(BundleErrors, FilePathsStayInTheBundle) {
  FakeBundle fb;
  std::string dir = fb.write("paths");
  std::string m = readAll(dir + "/manifest.json");
  size_t at = m.find("\"path\": \"weights.bin\"");
  ASSERT_NE(at, std::string::npos);
  m.replace(at, 21, "\"path\": \"../weights.bin\"");
  writeAll(dir + "/manifest.json", m);
  expectOpenError(dir, QWEN_ERR_MANIFEST, {"files[1].path", "not a file name"});
}

TEST(Bundle, Tokenizer) {
  FakeBundle fb;
  fb.vocab = 2012;
  fb.tokenizer = QWEN_SOURCE_DIR "/test/fixtures/tokenizer/qwen2-style/tokenizer.json";
  Opened h;
  qwen_bundle *b = openOk(fb.write("tok"), h);
  ASSERT_TRUE(b);
  EXPECT_EQ(qwen_bundle_has_tokenizer(b), 1);
  const char *text = "Hello world, the tokenizer runs";
  int64_t n = 0;
  EXPECT_EQ(qwen_tokenize(b, text, nullptr, 0, &n), QWEN_ERR_BUFFER_TOO_SMALL);
  ASSERT_GT(n, 1);
  std::vector<int64_t> ids(static_cast<size_t>(n));
  ASSERT_EQ(qwen_tokenize(b, text, ids.data(), n, &n), QWEN_OK);
  char buf[256];
  int64_t len = 0;
  ASSERT_EQ(qwen_detokenize(b, ids.data(), n, buf, sizeof(buf), &len), QWEN_OK);
  EXPECT_EQ(std::string(buf, size_t(len)), text);
  EXPECT_EQ(qwen_detokenize(b, ids.data(), n, buf, 4, &len),
            QWEN_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, int64_t(std::strlen(text)));
  // The ids run through the model.
  qwen_session *s;
  ASSERT_EQ(qwen_session_create(b, 128, &s), QWEN_OK);
  ASSERT_EQ(qwen_session_prefill(s, ids.data(), n), QWEN_OK);
  EXPECT_EQ(row(qwen_session_logits(s), 2012), reference(ids, 2012).back());
  qwen_session_free(s);

  FakeBundle none;
  Opened h2;
  qwen_bundle *nb = openOk(none.write("notok"), h2);
  EXPECT_EQ(qwen_tokenize(nb, text, ids.data(), n, &n), QWEN_ERR_TOKENIZER);
}

} // namespace

// Outputs with role "observe" (calibration bundles): names, layers, and the
// latest call's rows, dense or strided; none in an ordinary bundle.
TEST(Bundle, ObservedActivations) {
  for (bool strided : {false, true}) {
    FakeBundle fb;
    fb.observe = true;
    Opened h;
    qwen_bundle *b = openOk(fb.write(strided ? "observe-t" : "observe"), h);
    ASSERT_TRUE(b);
    ASSERT_EQ(qwen_bundle_num_observed(b), 1);
    EXPECT_STREQ(qwen_bundle_observed_name(b, 0), "observe.fake.q");
    ASSERT_EQ(qwen_bundle_observed_num_layers(b, 0), 2);
    EXPECT_STREQ(qwen_bundle_observed_layer(b, 0, 0), "fake.q");
    EXPECT_STREQ(qwen_bundle_observed_layer(b, 0, 1), "fake.k");
    EXPECT_EQ(qwen_bundle_observed_layer(b, 0, 2), nullptr);
    EXPECT_EQ(qwen_bundle_observed_name(b, 1), nullptr);
    qwen_session *s;
    ASSERT_EQ(qwen_session_create(b, 32, &s), QWEN_OK);
    const float *x = nullptr;
    int64_t rows = -1, cols = -1;
    EXPECT_EQ(qwen_session_observed(s, 0, &x, &rows, &cols),
              QWEN_ERR_INVALID_ARGUMENT); // nothing ran yet
    if (strided)
      setenv("QWEN_FAKE_MODEL_MODE", "transposed-kv", 1);
    std::vector<int64_t> seq = {5, 4, 3};
    ASSERT_EQ(qwen_session_prefill(s, seq.data(), 3), QWEN_OK)
        << qwen_last_error();
    ASSERT_EQ(qwen_session_observed(s, 0, &x, &rows, &cols), QWEN_OK);
    ASSERT_EQ(rows, 3);
    ASSERT_EQ(cols, 3);
    for (int64_t j = 0; j < 3; ++j) {
      EXPECT_EQ(x[3 * j], float(seq[size_t(j)]));
      EXPECT_EQ(x[3 * j + 1], float(j));
      EXPECT_EQ(x[3 * j + 2], float(seq[size_t(j)]) / 2);
    }
    ASSERT_EQ(qwen_session_decode(s, 9), QWEN_OK);
    ASSERT_EQ(qwen_session_observed(s, 0, &x, &rows, &cols), QWEN_OK);
    ASSERT_EQ(rows, 1);
    EXPECT_EQ(x[0], 9.f);
    EXPECT_EQ(x[1], 3.f);
    unsetenv("QWEN_FAKE_MODEL_MODE");
    // Logits are unaffected by the extra output.
    seq.push_back(9);
    EXPECT_EQ(row(qwen_session_logits(s), 16), reference(seq, 16).back());
    EXPECT_EQ(qwen_session_observed(s, 1, &x, &rows, &cols),
              QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_free(s);
  }
  FakeBundle plain;
  Opened h;
  qwen_bundle *b = openOk(plain.write("no-observe"), h);
  ASSERT_TRUE(b);
  EXPECT_EQ(qwen_bundle_num_observed(b), 0);
  qwen_session *s;
  ASSERT_EQ(qwen_session_create(b, 8, &s), QWEN_OK);
  int64_t id = 1, rows, cols;
  const float *x;
  ASSERT_EQ(qwen_session_prefill(s, &id, 1), QWEN_OK);
  EXPECT_EQ(qwen_session_observed(s, 0, &x, &rows, &cols),
            QWEN_ERR_INVALID_ARGUMENT);
  qwen_session_free(s);
}

TEST(BundleErrors, ObserveWithoutLayers) {
  FakeBundle fb;
  fb.observe = true;
  fb.observeLayers = "[]";
  expectOpenError(fb.write("observe-nolayers"), QWEN_ERR_MANIFEST,
                  {"observe.fake.q", "layers"});
}

//===----------------------------------------------------------------------===//
// CUDA bundles, on the fake driver (FakeCudaDriver.c) and FAKE_CUDA's model
//===----------------------------------------------------------------------===//

/// Sets environment variables for one test and restores them after.
class ScopedEnv {
public:
  ScopedEnv(std::initializer_list<std::pair<const char *, const char *>> vars) {
    for (const auto &[name, value] : vars) {
      const char *old = std::getenv(name);
      saved_.push_back(
          {name, old ? std::optional<std::string>(old) : std::nullopt});
      if (value)
        ::setenv(name, value, 1);
      else
        ::unsetenv(name);
    }
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;
  ~ScopedEnv() {
    for (const auto &[name, old] : saved_) {
      if (old)
        ::setenv(name.c_str(), old->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }

private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/// The fake driver with host memory, on a device of compute capability `cc`.
ScopedEnv fakeGpu(const char *cc) {
  return ScopedEnv({{"QWEN_CUDA_DRIVER", QWEN_FAKE_CUDA_DRIVER},
                    {"FAKE_CUDA_CC", cc},
                    {"FAKE_CUDA_MEMORY", "host"},
                    {"QWEN_CUDA_DEVICE", nullptr},
                    {"QWEN_FAKE_MODEL_MODE", nullptr}});
}

TEST(CudaBundle, SessionsKeepTheKvCacheOnTheDevice) {
  ScopedEnv env = fakeGpu("86");
  FakeBundle fb;
  fb.cudaArch = "sm_80";
  fb.scale = 0.75f; // read by the model from the device copy of the weights
  Opened h;
  qwen_bundle *b = openOk(fb.write("cuda"), h);
  ASSERT_TRUE(b);
  EXPECT_STREQ(qwen_bundle_device_name(b), "Fake GPU");
  EXPECT_STREQ(qwen_bundle_target_name(b), "sm_80");
  qwen_session *s = nullptr;
  ASSERT_EQ(qwen_session_create(b, 64, &s), QWEN_OK);
  std::vector<int64_t> all = {3, 1, 4, 1, 5};
  ASSERT_EQ(qwen_session_prefill(s, all.data(), 5), QWEN_OK)
      << qwen_last_error();
  auto ref = reference(all, 16, 0.75f);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(row(qwen_session_logits_at(s, i), 16), ref[size_t(i)]) << i;
  for (int64_t t : {9, 2, 6}) {
    ASSERT_EQ(qwen_session_decode(s, t), QWEN_OK) << qwen_last_error();
    all.push_back(t);
    EXPECT_EQ(row(qwen_session_logits(s), 16),
              reference(all, 16, 0.75f).back());
  }

  // A driver error inside forward (a kernel launch the fake refuses) is
  // reported after forward returns, and the session is left as it was.
  std::vector<float> before = row(qwen_session_logits(s), 16);
  {
    ScopedEnv launch({{"QWEN_FAKE_MODEL_MODE", "launch"}});
    EXPECT_EQ(qwen_session_decode(s, 7), QWEN_ERR_DEVICE);
  }
  std::string msg = qwen_last_error();
  EXPECT_NE(msg.find("model forward failed: launching a kernel on Fake GPU: "
                     "cuLaunchKernel failed: CUDA_ERROR_NOT_SUPPORTED "
                     "(operation not supported)"),
            std::string::npos)
      << msg;
  EXPECT_EQ(qwen_session_length(s), 8);
  EXPECT_EQ(row(qwen_session_logits(s), 16), before);
  ASSERT_EQ(qwen_session_decode(s, 7), QWEN_OK) << qwen_last_error();
  all.push_back(7);
  EXPECT_EQ(row(qwen_session_logits(s), 16), reference(all, 16, 0.75f).back());
  qwen_session_free(s);

  // Every device allocation (weights, inputs, outputs, KV cache) was freed.
  qwen_bundle_free(h.b);
  h.b = nullptr;
  void *driver = dlopen(QWEN_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_TRUE(driver);
  auto live = reinterpret_cast<long (*)(void)>(
      dlsym(driver, "fake_cuda_live_allocations"));
  ASSERT_TRUE(live);
  EXPECT_EQ(live(), 0);
  dlclose(driver);
}

TEST(CudaBundle, DriverAndDeviceErrors) {
  FakeBundle fb;
  fb.cudaArch = "sm_80";
  std::string dir = fb.write("cuda-errors");
  {
    ScopedEnv env({{"QWEN_CUDA_DRIVER", "/nonexistent/libcuda.so.1"}});
    expectOpenError(
        dir, QWEN_ERR_DEVICE,
        {"bundle '" + dir +
         "' is compiled for CUDA sm_80 but the "
         "NVIDIA driver cannot be loaded: /nonexistent/libcuda.so.1"});
  }
  {
    // A library that is no CUDA driver.
    ScopedEnv env({{"QWEN_CUDA_DRIVER", QWEN_FAKE_MODEL}});
    expectOpenError(
        dir, QWEN_ERR_DEVICE,
        {"the NVIDIA driver cannot be loaded", "lacks cuGetErrorName"});
  }
  {
    ScopedEnv env = fakeGpu("75");
    expectOpenError(dir, QWEN_ERR_DEVICE,
                    {"bundle '" + dir +
                     "' is compiled for sm_80; this GPU "
                     "(Fake GPU) is sm_75: recompile with qwen-compile "
                     "--target sm_75"});
  }
  {
    ScopedEnv env = fakeGpu("80");
    ScopedEnv device({{"QWEN_CUDA_DEVICE", "1"}});
    expectOpenError(dir, QWEN_ERR_DEVICE,
                    {"QWEN_CUDA_DEVICE='1' is not a CUDA device index (this "
                     "machine has 1 device)"});
  }
  {
    // Device memory exhausted while uploading the weights.
    ScopedEnv env = fakeGpu("80");
    ScopedEnv noMemory({{"FAKE_CUDA_MEMORY", nullptr}});
    expectOpenError(dir, QWEN_ERR_OUT_OF_MEMORY,
                    {"bundle '" + dir + "': allocating ",
                     "weights.bin on Fake GPU: cuMemAlloc failed: "
                     "CUDA_ERROR_OUT_OF_MEMORY (out of memory)"});
  }
}

TEST(CudaBundle, ManifestErrors) {
  ScopedEnv env = fakeGpu("80");
  FakeBundle fb;
  fb.cudaArch = "sm_80";
  fb.target = "{\"name\": \"x\", \"kind\": \"rocm\"}";
  expectOpenError(fb.write("kind"), QWEN_ERR_MANIFEST,
                  {"target.kind: unknown target kind 'rocm' (expected 'cpu' "
                   "or 'cuda')"});
  fb.target = "{\"name\": \"x\", \"kind\": \"cuda\", \"arch\": \"sm_8\", "
              "\"binary\": \"model.cubin\"}";
  expectOpenError(fb.write("arch"), QWEN_ERR_MANIFEST,
                  {"target.arch: 'sm_8' is not a CUDA architecture"});
  fb.target = "{\"name\": \"x\", \"kind\": \"cuda\", \"arch\": \"sm_80\"}";
  expectOpenError(fb.write("nobinary"), QWEN_ERR_MANIFEST,
                  {"target: missing key 'binary'"});
  fb.target = "{\"name\": \"x\", \"kind\": \"cuda\", \"arch\": \"sm_80\", "
              "\"binary\": \"../model.cubin\"}";
  expectOpenError(fb.write("binarypath"), QWEN_ERR_MANIFEST,
                  {"target.binary: '../model.cubin' is not a file name"});
  fb.target.clear();
  fb.listCubin = false;
  expectOpenError(fb.write("unlisted"), QWEN_ERR_MANIFEST,
                  {"files: 'model.cubin' (target.binary) not listed"});
  // The kernels' file is checksummed like every other file.
  fb.listCubin = true;
  std::string dir = fb.write("cubin-sha");
  writeAll(dir + "/model.cubin", "placeholder kernelZ\n");
  expectOpenError(dir, QWEN_ERR_INTEGRITY,
                  {"model.cubin: sha256", "does not match manifest.json"});
  // "kind": "cpu" is the CPU target.
  FakeBundle cpu;
  cpu.target = "{\"name\": \"x\", \"kind\": \"cpu\", \"features\": []}";
  Opened h;
  qwen_bundle *b = openOk(cpu.write("kind-cpu"), h);
  EXPECT_EQ(qwen_bundle_device_name(b), nullptr);
}
