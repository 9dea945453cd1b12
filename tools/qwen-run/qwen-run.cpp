//===- qwen-run.cpp - generate text with a compiled bundle ----------------===//
//
//   qwen-run BUNDLE (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N]
//            [--temperature T] [--top-k K] [--top-p P] [--seed S]
//            [--threads N] [--ctx N] [--print-ids] [--ignore-eos]
//
// Prints the generated text as it is produced (the ids, space-separated, when
// the bundle has no tokenizer), then the prefill and decode timings, the GPU
// for a CUDA bundle, and with --print-ids the generated ids. Exit 2 for bad
// flags, 1 for runtime errors.
//
//===----------------------------------------------------------------------===//

#include "qwen_runtime.h"
#include "../common/ToolArgs.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using qwen::tools::parseFloat;
using qwen::tools::parseInt;
using qwen::tools::parseUInt64;

const char *kUsage =
    "usage: qwen-run BUNDLE (--prompt TEXT | --prompt-ids ID,ID,...)\n"
    "                [--max-new-tokens N=32] [--temperature T=0] [--top-k K=0]\n"
    "                [--top-p P=1] [--seed S=0] [--threads N=all cores]\n"
    "                [--ctx N=4096] [--print-ids] [--ignore-eos]\n";

[[noreturn]] void usageError(const std::string &msg) {
  std::fprintf(stderr, "qwen-run: error: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

[[noreturn]] void runtimeError(const std::string &msg) {
  std::fflush(stdout);
  std::fprintf(stderr, "qwen-run: error: %s\n", msg.c_str());
  std::exit(1);
}

struct Options {
  std::string bundle;
  bool havePrompt = false, havePromptIds = false;
  std::string prompt;
  std::vector<int64_t> promptIds;
  int64_t maxNewTokens = 32;
  float temperature = 0, topP = 1;
  int64_t topK = 0;
  uint64_t seed = 0;
  int64_t threads = 0; // 0: all cores
  int64_t ctx = 4096;
  bool printIds = false, ignoreEos = false;
};

Options parseArgs(int argc, char **argv) {
  Options o;
  qwen::tools::ArgCursor arg(argc, argv, usageError);
  while (arg.next()) {
    const std::string &a = arg.flag();
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--prompt") {
      o.prompt = arg.value();
      o.havePrompt = true;
    } else if (a == "--prompt-ids") {
      std::string v = arg.value();
      o.havePromptIds = true;
      size_t start = 0;
      while (true) {
        size_t comma = v.find(',', start);
        std::string item = v.substr(start, comma == std::string::npos
                                               ? std::string::npos
                                               : comma - start);
        int64_t id;
        if (!parseInt(item, id))
          usageError("--prompt-ids: expected comma-separated integers, got '" +
                     v + "'");
        o.promptIds.push_back(id);
        if (comma == std::string::npos)
          break;
        start = comma + 1;
      }
    } else if (a == "--max-new-tokens") {
      o.maxNewTokens = arg.intValue(0);
    } else if (a == "--temperature") {
      std::string v = arg.value();
      if (!parseFloat(v, o.temperature) || o.temperature < 0)
        usageError("--temperature: expected a number >= 0, got '" + v + "'");
    } else if (a == "--top-k") {
      o.topK = arg.intValue(0);
      if (o.topK > INT32_MAX)
        usageError("--top-k: too large");
    } else if (a == "--top-p") {
      std::string v = arg.value();
      if (!parseFloat(v, o.topP) || !(o.topP > 0) || o.topP > 1)
        usageError("--top-p: expected a number in (0, 1], got '" + v + "'");
    } else if (a == "--seed") {
      std::string v = arg.value();
      if (!parseUInt64(v, o.seed))
        usageError("--seed: expected a non-negative integer, got '" + v + "'");
    } else if (a == "--threads") {
      o.threads = arg.intValue(1);
      if (o.threads > 4096)
        usageError("--threads: at most 4096");
    } else if (a == "--ctx") {
      o.ctx = arg.intValue(1);
    } else if (a == "--print-ids") {
      arg.noValue();
      o.printIds = true;
    } else if (a == "--ignore-eos") {
      arg.noValue();
      o.ignoreEos = true;
    } else if (arg.isFlag()) {
      usageError(a + ": unknown flag");
    } else if (o.bundle.empty()) {
      o.bundle = arg.raw();
    } else {
      usageError("unexpected argument '" + arg.raw() + "' (one bundle only)");
    }
  }
  if (o.bundle.empty())
    usageError("no bundle directory given");
  if (o.havePrompt && o.havePromptIds)
    usageError("--prompt and --prompt-ids: give one, not both");
  if (!o.havePrompt && !o.havePromptIds)
    usageError("no prompt: give --prompt TEXT or --prompt-ids ID,ID,...");
  return o;
}

std::string detokenize(qwen_bundle *b, const std::vector<int64_t> &ids) {
  std::vector<char> buf(256);
  int64_t len = 0;
  qwen_status st = qwen_detokenize(b, ids.data(), int64_t(ids.size()),
                                   buf.data(), int64_t(buf.size()), &len);
  if (st == QWEN_ERR_BUFFER_TOO_SMALL) {
    buf.resize(size_t(len) + 1);
    st = qwen_detokenize(b, ids.data(), int64_t(ids.size()), buf.data(),
                         int64_t(buf.size()), &len);
  }
  if (st != QWEN_OK)
    runtimeError(qwen_last_error());
  return std::string(buf.data(), size_t(len));
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

void printRate(const char *what, int64_t n, double ms) {
  std::printf("%s: %lld tokens, %.2f ms, %.2f tokens/s\n", what,
              static_cast<long long>(n), ms, ms > 0 ? n * 1000.0 / ms : 0.0);
}

} // namespace

int main(int argc, char **argv) {
  Options o = parseArgs(argc, argv);

  qwen_bundle *b = nullptr;
  if (qwen_bundle_open(o.bundle.c_str(), &b) != QWEN_OK)
    runtimeError(qwen_last_error());
  if (o.threads > 0 &&
      qwen_bundle_set_num_threads(b, int32_t(o.threads)) != QWEN_OK)
    runtimeError(qwen_last_error());
  const bool haveTokenizer = qwen_bundle_has_tokenizer(b);
  const int64_t V = qwen_bundle_vocab_size(b);

  std::vector<int64_t> prompt = o.promptIds;
  if (o.havePrompt) {
    if (!haveTokenizer)
      runtimeError(o.bundle +
                   ": the bundle has no tokenizer.json; use --prompt-ids");
    int64_t n = 0;
    qwen_status st = qwen_tokenize(b, o.prompt.c_str(), nullptr, 0, &n);
    if (st != QWEN_OK && st != QWEN_ERR_BUFFER_TOO_SMALL)
      runtimeError(qwen_last_error());
    prompt.resize(size_t(n));
    if (n > 0 && qwen_tokenize(b, o.prompt.c_str(), prompt.data(), n, &n) !=
                     QWEN_OK)
      runtimeError(qwen_last_error());
  }
  if (prompt.empty())
    runtimeError("the prompt has no tokens");

  qwen_session *s = nullptr;
  if (qwen_session_create(b, o.ctx, &s) != QWEN_OK ||
      // Sampling reads the last position's logits only.
      qwen_session_set_all_logits(s, 0) != QWEN_OK)
    runtimeError(qwen_last_error());

  auto t0 = std::chrono::steady_clock::now();
  if (qwen_session_prefill(s, prompt.data(), int64_t(prompt.size())) != QWEN_OK)
    runtimeError(qwen_last_error());
  double prefillMs = msSince(t0);

  uint64_t rng = o.seed;
  std::vector<int64_t> generated, shown; // shown: generated minus a final eos
  std::string printed; // text written to stdout so far
  double decodeMs = 0;
  int64_t decodeTokens = 0;
  for (int64_t i = 0; i < o.maxNewTokens; ++i) {
    int64_t id = qwen_sample(qwen_session_logits(s), V, o.temperature,
                             int32_t(o.topK), o.topP, &rng);
    if (id < 0)
      runtimeError("the model produced no valid logits (all NaN) at position " +
                   std::to_string(qwen_session_length(s)));
    generated.push_back(id);
    if (!o.ignoreEos && qwen_bundle_is_eos(b, id))
      break;
    shown.push_back(id);
    if (haveTokenizer) {
      // Hold back a trailing incomplete UTF-8 sequence (decoded as U+FFFD).
      std::string text = detokenize(b, shown);
      bool incomplete = text.size() >= 3 &&
                        text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
      // Print only what extends the text printed so far.
      if (!incomplete && text.size() > printed.size() &&
          text.compare(0, printed.size(), printed) == 0) {
        std::fwrite(text.data() + printed.size(), 1,
                    text.size() - printed.size(), stdout);
        printed = text;
      }
    } else {
      std::printf("%s%lld", shown.size() > 1 ? " " : "",
                  static_cast<long long>(id));
    }
    std::fflush(stdout);
    if (i + 1 == o.maxNewTokens ||
        qwen_session_length(s) >= qwen_session_context_length(s))
      break;
    auto t1 = std::chrono::steady_clock::now();
    if (qwen_session_decode(s, id) != QWEN_OK)
      runtimeError(qwen_last_error());
    decodeMs += msSince(t1);
    ++decodeTokens;
  }
  if (haveTokenizer) {
    std::string text = detokenize(b, shown);
    if (text.size() > printed.size() &&
        text.compare(0, printed.size(), printed) == 0)
      std::fwrite(text.data() + printed.size(), 1,
                  text.size() - printed.size(), stdout);
  }
  std::printf("\n");
  printRate("prefill", int64_t(prompt.size()), prefillMs);
  printRate("decode", decodeTokens, decodeMs);
  if (const char *device = qwen_bundle_device_name(b))
    std::printf("device: %s (%s)\n", device, qwen_bundle_target_name(b));
  if (o.printIds) {
    std::printf("ids: ");
    for (size_t i = 0; i < generated.size(); ++i)
      std::printf("%s%lld", i ? "," : "",
                  static_cast<long long>(generated[i]));
    std::printf("\n");
  }
  qwen_session_free(s);
  qwen_bundle_free(b);
  return 0;
}
