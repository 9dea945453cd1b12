//===- qwen-eval.cpp - perplexity and KL divergence of a bundle -----------===//
//
//   qwen-eval BUNDLE --text FILE [--reference REF_BUNDLE] [--ctx N=256]
//             [--chunks N=all] [--threads N] [--json OUT.json]
//             [--progress[=auto|always|never]]
//
// Measures a bundle on a text the way llama.cpp's `perplexity` tool does, so
// the numbers are comparable:
//
//  * The text is tokenized with BUNDLE's tokenizer (no BOS is added) and cut
//    into consecutive, non-overlapping chunks of --ctx tokens; the tail
//    shorter than --ctx is dropped. --chunks N takes the first N.
//  * Each chunk is one prefill of a fresh session. The logits at positions
//    first = ctx/2 .. ctx-2 are scored, each predicting the token after it
//    (ctx - 1 - ctx/2 tokens a chunk; llama.cpp's `first = n_ctx/2` and
//    `n_ctx - 1 - first`). The first half only gives the scored tokens context.
//  * perplexity = exp(mean NLL), NLL = logsumexp(logits) - logits[target], in
//    double with the maximum subtracted (a stable log-softmax).
//
// With --reference REF_BUNDLE the same chunks are run through the reference
// too (its tokenizer, when it has one, must give the same ids; the vocabulary
// sizes must agree) and at every scored position the next-token distributions
// are compared: KL(P_ref || P_test) = sum_i p_ref_i (log p_ref_i - log p_test_i)
// in double from stable log-softmaxes; reported as mean, median, p99 and max
// (percentiles interpolate linearly between the sorted values at
// fraction * (n - 1), as llama.cpp's KL-divergence report does), "same top-1"
// (argmax equal, the lowest id on ties), the reference's perplexity, and
// PPL(Q)/PPL(base) and ln(PPL(Q)/PPL(base)) = mean NLL - reference mean NLL.
//
// Memory: only the runtime's logits of the current chunk (one per session) and
// one KL value a scored token are held, never the logits of the whole text.
//
// Exit 2 for bad flags (the message names the flag), 1 for every other error
// ("qwen-eval: error: <message>", runtime errors with qwen_last_error()).
//
//===----------------------------------------------------------------------===//

#include "qwen_runtime.h"
#include "../common/ToolArgs.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

const char *kUsage =
    "usage: qwen-eval BUNDLE --text FILE [--reference REF_BUNDLE] [--ctx N=256]\n"
    "                 [--chunks N=all] [--threads N=all cores] [--json OUT.json]\n"
    "                 [--progress[=auto|always|never]]\n";

[[noreturn]] void usageError(const std::string &msg) {
  std::fprintf(stderr, "qwen-eval: error: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

bool progressLineOpen = false;

[[noreturn]] void runtimeError(const std::string &msg) {
  std::fflush(stdout);
  if (progressLineOpen)
    std::fputc('\n', stderr);
  std::fprintf(stderr, "qwen-eval: error: %s\n", msg.c_str());
  std::exit(1);
}

enum class Progress { Never, Auto, Always };

struct Options {
  std::string bundle, text, reference, json;
  int64_t ctx = 256;
  int64_t chunks = 0; // 0: all
  int64_t threads = 0; // 0: all cores
  Progress progress = Progress::Never;
};

Options parseArgs(int argc, char **argv) {
  Options o;
  bool haveText = false;
  qwen::tools::ArgCursor arg(argc, argv, usageError);
  while (arg.next()) {
    const std::string &a = arg.flag();
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--text") {
      o.text = arg.pathValue();
      haveText = true;
    } else if (a == "--reference") {
      o.reference = arg.pathValue();
    } else if (a == "--json") {
      o.json = arg.pathValue();
    } else if (a == "--ctx") {
      // ctx - 1 - ctx/2 >= 1 scored token a chunk needs ctx >= 3.
      o.ctx = arg.intValue(3);
    } else if (a == "--chunks") {
      o.chunks = arg.intValue(1);
    } else if (a == "--threads") {
      o.threads = arg.intValue(1);
      if (o.threads > 4096)
        usageError("--threads: at most 4096");
    } else if (a == "--progress") {
      const std::string &value = arg.inlineValue();
      if (!arg.hasInlineValue() || value == "auto")
        o.progress = Progress::Auto;
      else if (value == "always")
        o.progress = Progress::Always;
      else if (value == "never")
        o.progress = Progress::Never;
      else
        usageError("--progress: expected auto, always or never, got '" +
                   value + "'");
    } else if (arg.isFlag()) {
      usageError(a + ": unknown flag");
    } else if (o.bundle.empty()) {
      o.bundle = arg.raw();
    } else {
      usageError("unexpected argument '" + arg.raw() +
                 "' (one bundle only; the reference is --reference)");
    }
  }
  if (o.bundle.empty())
    usageError("no bundle directory given");
  if (!haveText)
    usageError("--text: no text file given");
  return o;
}

std::string readText(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    runtimeError(path + ": cannot read the text: " + std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    data.append(buf, n);
  bool bad = std::ferror(f);
  int err = errno;
  std::fclose(f);
  if (bad)
    runtimeError(path + ": cannot read the text: " + std::strerror(err));
  if (data.empty())
    runtimeError(path + ": the text is empty");
  if (data.find('\0') != std::string::npos)
    runtimeError(path + ": the text contains a NUL byte at offset " +
                 std::to_string(data.find('\0')));
  return data;
}

std::vector<int64_t> tokenize(const qwen_bundle *b, const std::string &text) {
  // Byte-level tokenizers give at most about one id a byte: try that first.
  std::vector<int64_t> ids(text.size() + 16);
  int64_t n = 0;
  qwen_status st =
      qwen_tokenize(b, text.c_str(), ids.data(), int64_t(ids.size()), &n);
  if (st == QWEN_ERR_BUFFER_TOO_SMALL) {
    ids.resize(size_t(n));
    st = qwen_tokenize(b, text.c_str(), ids.data(), n, &n);
  }
  if (st != QWEN_OK)
    runtimeError(qwen_last_error());
  ids.resize(size_t(n));
  return ids;
}

qwen_bundle *openBundle(const Options &o, const std::string &path) {
  qwen_bundle *b = nullptr;
  if (qwen_bundle_open(path.c_str(), &b) != QWEN_OK)
    runtimeError(qwen_last_error());
  if (o.threads > 0 &&
      qwen_bundle_set_num_threads(b, int32_t(o.threads)) != QWEN_OK)
    runtimeError(qwen_last_error());
  return b;
}

/// Stable log-softmax pieces of one row of logits: the log of the partition
/// function (max + log sum exp(x - max), in double) and the argmax (the lowest
/// id on ties). False if the row has a NaN or +inf, or no finite logit.
bool logSumExp(const float *x, int64_t V, double &lse, int64_t &argmax) {
  float m = -INFINITY;
  argmax = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (std::isnan(x[i]) || x[i] == INFINITY)
      return false;
    if (argmax < 0 || x[i] > m) { // strictly greater: the lowest id wins ties
      m = x[i];
      argmax = i;
    }
  }
  if (!std::isfinite(m))
    return false;
  double mx = m, sum = 0;
  for (int64_t i = 0; i < V; ++i)
    sum += std::exp(double(x[i]) - mx);
  lse = mx + std::log(sum);
  return true;
}

/// KL(P_ref || P_test) of two rows given their log partition functions.
double klDivergence(const float *ref, double lseRef, const float *test,
                    double lseTest, int64_t V) {
  double kl = 0;
  for (int64_t i = 0; i < V; ++i) {
    double lr = double(ref[i]) - lseRef;
    double pr = std::exp(lr);
    if (pr == 0)
      continue; // 0 * log(0 / q) = 0, even where q is 0 too
    kl += pr * (lr - (double(test[i]) - lseTest));
  }
  return kl;
}

/// Linear interpolation between the sorted values at fraction * (n - 1).
double percentile(const std::vector<double> &sorted, double fraction) {
  if (sorted.empty())
    return NAN;
  double p = fraction * double(sorted.size() - 1);
  size_t ip = size_t(p);
  p -= double(ip);
  size_t ip1 = std::min(ip + 1, sorted.size() - 1);
  return (1 - p) * sorted[ip] + p * sorted[ip1];
}

std::string jsonString(const std::string &s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"': r += "\\\""; break;
    case '\\': r += "\\\\"; break;
    case '\n': r += "\\n"; break;
    case '\t': r += "\\t"; break;
    case '\r': r += "\\r"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        r += buf;
      } else {
        r += char(c);
      }
    }
  }
  return r + "\"";
}

std::string jsonNumber(double v) {
  if (!std::isfinite(v))
    return "null"; // JSON has no inf / NaN
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

void showProgress(int64_t done, int64_t total, int64_t tokens, double secs) {
  const int width = 30;
  int filled = total > 0 ? int(width * done / total) : width;
  std::string bar(size_t(filled), '=');
  if (filled < width)
    bar += '>' + std::string(size_t(width - filled - 1), ' ');
  std::fprintf(stderr, "\r[%s] %lld/%lld chunks, %.1f tokens/s", bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total),
               secs > 0 ? double(tokens) / secs : 0.0);
  std::fflush(stderr);
  progressLineOpen = true;
}

} // namespace

int main(int argc, char **argv) {
  Options o = parseArgs(argc, argv);
  bool progress = o.progress == Progress::Always ||
                  (o.progress == Progress::Auto && isatty(STDERR_FILENO));

  std::string text = readText(o.text);
  // Opened first so that a path that cannot be written fails before the run.
  FILE *jsonFile = nullptr;
  if (!o.json.empty() && !(jsonFile = std::fopen(o.json.c_str(), "wb")))
    runtimeError(o.json + ": cannot write: " + std::strerror(errno));

  qwen_bundle *b = openBundle(o, o.bundle);
  const int64_t V = qwen_bundle_vocab_size(b);
  if (!qwen_bundle_has_tokenizer(b))
    runtimeError(o.bundle + ": the bundle has no tokenizer.json; qwen-eval "
                            "needs one to tokenize the text");

  qwen_bundle *rb = nullptr;
  if (!o.reference.empty()) {
    rb = openBundle(o, o.reference);
    int64_t RV = qwen_bundle_vocab_size(rb);
    if (RV != V)
      runtimeError("vocabulary sizes differ: " + o.bundle + " has " +
                   std::to_string(V) + ", the reference " + o.reference +
                   " has " + std::to_string(RV));
  }

  std::vector<int64_t> ids = tokenize(b, text);
  if (ids.empty())
    runtimeError(o.text + ": the text has no tokens");
  if (rb && qwen_bundle_has_tokenizer(rb)) {
    std::vector<int64_t> rids = tokenize(rb, text);
    if (rids != ids) {
      size_t k = 0;
      while (k < ids.size() && k < rids.size() && ids[k] == rids[k])
        ++k;
      std::string where =
          k < ids.size() && k < rids.size()
              ? "first difference at token " + std::to_string(k) + " (id " +
                    std::to_string(ids[k]) + " vs " + std::to_string(rids[k]) +
                    ")"
              : "one is a prefix of the other";
      runtimeError("the tokenizers of " + o.bundle + " and the reference " +
                   o.reference + " give different ids for " + o.text + ": " +
                   std::to_string(ids.size()) + " vs " +
                   std::to_string(rids.size()) + " tokens, " + where);
    }
  }

  const int64_t ctx = o.ctx;
  const int64_t available = int64_t(ids.size()) / ctx;
  if (available < 1)
    runtimeError(o.text + ": " + std::to_string(ids.size()) +
                 " tokens, fewer than --ctx " + std::to_string(ctx) +
                 ": not even one chunk; give a smaller --ctx or a longer text");
  const int64_t nChunks = o.chunks > 0 ? std::min(o.chunks, available)
                                       : available;

  qwen_session *s = nullptr, *rs = nullptr;
  if (qwen_session_create(b, ctx, &s) != QWEN_OK)
    runtimeError(qwen_last_error());
  if (rb && qwen_session_create(rb, ctx, &rs) != QWEN_OK)
    runtimeError(qwen_last_error());

  const int64_t first = ctx / 2;
  const int64_t perChunk = ctx - 1 - first;
  double nllSum = 0, nll2Sum = 0, refNllSum = 0;
  int64_t scored = 0, sameTop1 = 0;
  std::vector<double> kls;
  if (rb)
    kls.reserve(size_t(nChunks * perChunk));

  auto t0 = std::chrono::steady_clock::now();
  if (progress)
    showProgress(0, nChunks, 0, 0);
  for (int64_t c = 0; c < nChunks; ++c) {
    const int64_t *chunk = ids.data() + c * ctx;
    auto prefill = [&](qwen_session *sess, const std::string &path) {
      qwen_session_reset(sess);
      if (qwen_session_prefill(sess, chunk, ctx) != QWEN_OK)
        runtimeError(qwen_last_error());
      if (qwen_session_num_logits(sess) < ctx)
        runtimeError(path + ": the prefill of " + std::to_string(ctx) +
                     " tokens gave the logits of " +
                     std::to_string(qwen_session_num_logits(sess)) +
                     " positions");
    };
    prefill(s, o.bundle);
    if (rs)
      prefill(rs, o.reference);
    for (int64_t j = first; j < ctx - 1; ++j) {
      const int64_t target = chunk[j + 1];
      auto row = [&](qwen_session *sess, const std::string &path,
                     double &lse, int64_t &argmax) {
        const float *x = qwen_session_logits_at(sess, j);
        if (!x)
          runtimeError(path + ": no logits at position " + std::to_string(j));
        if (!logSumExp(x, V, lse, argmax))
          runtimeError(path + ": the logits of chunk " + std::to_string(c) +
                       " position " + std::to_string(j) +
                       " are not finite (NaN or +inf)");
        return x;
      };
      double lse, rlse;
      int64_t top, rtop;
      const float *x = row(s, o.bundle, lse, top);
      double nll = lse - double(x[target]);
      nllSum += nll;
      nll2Sum += nll * nll;
      if (rs) {
        const float *r = row(rs, o.reference, rlse, rtop);
        refNllSum += rlse - double(r[target]);
        kls.push_back(klDivergence(r, rlse, x, lse, V));
        sameTop1 += top == rtop;
      }
      ++scored;
    }
    if (progress)
      showProgress(c + 1, nChunks, (c + 1) * ctx, secondsSince(t0));
  }
  double secs = secondsSince(t0);
  if (progress) {
    std::fputc('\n', stderr);
    progressLineOpen = false;
  }

  const double meanNll = nllSum / double(scored);
  const double ppl = std::exp(meanNll);
  // llama.cpp's uncertainty of the perplexity estimate.
  double var = nll2Sum / double(scored) - meanNll * meanNll;
  double pplErr = scored > 1 && var > 0
                      ? ppl * std::sqrt(var / double(scored - 1))
                      : 0.0;
  double refMeanNll = 0, refPpl = 0, meanKl = 0, medianKl = 0, p99Kl = 0,
         maxKl = 0, sameTop1Pct = 0;
  if (rs) {
    refMeanNll = refNllSum / double(scored);
    refPpl = std::exp(refMeanNll);
    for (double k : kls)
      meanKl += k;
    meanKl /= double(kls.size());
    std::sort(kls.begin(), kls.end());
    medianKl = percentile(kls, 0.5);
    p99Kl = percentile(kls, 0.99);
    maxKl = kls.back();
    sameTop1Pct = 100.0 * double(sameTop1) / double(scored);
  }

  std::printf("bundle: %s\n", o.bundle.c_str());
  if (rs)
    std::printf("reference: %s\n", o.reference.c_str());
  std::printf("text: %s\n", o.text.c_str());
  std::printf("tokens: %lld\n", static_cast<long long>(ids.size()));
  std::printf("ctx: %lld\n", static_cast<long long>(ctx));
  std::printf("chunks: %lld\n", static_cast<long long>(nChunks));
  std::printf("tokens scored: %lld\n", static_cast<long long>(scored));
  std::printf("mean NLL: %.9f\n", meanNll);
  std::printf("perplexity: %.6f\n", ppl);
  std::printf("perplexity uncertainty: %.6f\n", pplErr);
  if (rs) {
    std::printf("reference mean NLL: %.9f\n", refMeanNll);
    std::printf("reference perplexity: %.6f\n", refPpl);
    std::printf("PPL(Q)/PPL(base): %.9f\n", ppl / refPpl);
    std::printf("ln(PPL(Q)/PPL(base)): %.9e\n", meanNll - refMeanNll);
    std::printf("mean KL: %.9e\n", meanKl);
    std::printf("median KL: %.9e\n", medianKl);
    std::printf("p99 KL: %.9e\n", p99Kl);
    std::printf("max KL: %.9e\n", maxKl);
    std::printf("same top-1: %.4f %%\n", sameTop1Pct);
  }
  std::printf("time: %.3f s\n", secs);
  std::fflush(stdout);

  if (!o.json.empty()) {
    std::string j = "{\n";
    auto field = [&](const char *k, const std::string &v, bool last = false) {
      j += std::string("  \"") + k + "\": " + v + (last ? "\n" : ",\n");
    };
    field("bundle", jsonString(o.bundle));
    if (rs)
      field("reference", jsonString(o.reference));
    field("text", jsonString(o.text));
    field("tokens", std::to_string(ids.size()));
    field("ctx", std::to_string(ctx));
    field("chunks", std::to_string(nChunks));
    field("tokens_scored", std::to_string(scored));
    field("mean_nll", jsonNumber(meanNll));
    field("perplexity", jsonNumber(ppl));
    field("perplexity_uncertainty", jsonNumber(pplErr));
    if (rs) {
      field("reference_mean_nll", jsonNumber(refMeanNll));
      field("reference_perplexity", jsonNumber(refPpl));
      field("ppl_ratio", jsonNumber(ppl / refPpl));
      field("ln_ppl_ratio", jsonNumber(meanNll - refMeanNll));
      field("mean_kl", jsonNumber(meanKl));
      field("median_kl", jsonNumber(medianKl));
      field("p99_kl", jsonNumber(p99Kl));
      field("max_kl", jsonNumber(maxKl));
      field("same_top1_percent", jsonNumber(sameTop1Pct));
    }
    field("seconds", jsonNumber(secs), true);
    j += "}\n";
    FILE *f = jsonFile;
    bool ok = std::fwrite(j.data(), 1, j.size(), f) == j.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok)
      runtimeError(o.json + ": cannot write: " + std::strerror(errno));
  }

  if (rs)
    qwen_session_free(rs);
  qwen_session_free(s);
  if (rb)
    qwen_bundle_free(rb);
  qwen_bundle_free(b);
  return 0;
}
