//===- qwen-calibrate.cpp - activation statistics of a float model --------===//
//
//   qwen-calibrate model.onnx --tokenizer tokenizer.json
//                  (--calib-data calib.txt | --calib-ids ids.txt)
//                  [--calib-samples N=128] [--calib-seq-len L=512]
//                  -o stats.json [--threads N=all cores]
//                  [--progress[=auto|always|never]] [--keep-bundle DIR]
//
//  1. Compiles the float model for this CPU through qwen-compile's stages
//     (lib/Compiler) with --qwen-instrument-activations into a temporary
//     bundle: the input of every linear / logits op is an extra output with
//     role "observe", tagged with the layers (weight store entries) that
//     read it.
//  2. Tokenizes the calibration text with the tokenizer (or reads ids) and
//     runs N consecutive, non-overlapping sequences of L tokens, each one
//     prefill of a fresh session, through libqwen_runtime's C API.
//  3. Streams every observed tensor into qwen::calib::TensorStats (memory
//     independent of N: per-channel min/max, E[x_j^2], a 2048-bin histogram
//     of |x|, X^T X in double when K <= --xtx-max-k) and writes stats.json
//     with the clipping thresholds (max, percentile 99.99 / 99.9, entropy,
//     mse; see ActivationStats.h) per layer, for `qwen-compile --recipe w8a8
//     --calib stats.json`. X^T X matrices go to <stats>.xtx/NNN.npy, named
//     relative to stats.json.
//
// stats.json (and its .xtx folder) is written to temporary names and renamed
// at the end; nothing is written on an error. Errors: an empty or too short
// calibration text, a sequence longer than the model's context, a NaN/Inf in
// an activation (naming the layer, the sample and the position).
//
//===----------------------------------------------------------------------===//

#include "qwen/Calibration/ActivationStats.h"
#include "qwen/Compiler/Compiler.h"
#include "qwen/Support/Sha256.h"
#include "qwen/Transforms/IntegerOnly.h"
#include "qwen_runtime.h"

#include "qwen/InitAll.h"

#include "mlir/IR/AsmState.h"
#include "mlir/InitAllPasses.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <sstream>
#include <unistd.h>

namespace cl = llvm::cl;
namespace fs = llvm::sys::fs;
namespace path = llvm::sys::path;
using qwen::calib::TensorStats;

namespace {

bool progressOpen = false;

int fail(const std::string &msg) {
  if (progressOpen)
    llvm::errs() << "\n";
  progressOpen = false;
  llvm::errs() << "qwen-calibrate: error: " << msg << "\n";
  return 1;
}

/// Paths removed at exit and on fatal signals unless released.
std::vector<std::string> tempPaths;
void removeTemps(void *) {
  for (const std::string &p : tempPaths)
    fs::remove_directories(p), fs::remove(p);
}
struct TempGuard {
  ~TempGuard() { removeTemps(nullptr); }
};

using qwen::calib::jsonQuote;

/// Ids separated by whitespace or commas.
bool readIds(const std::string &file, std::vector<int64_t> &ids,
             std::string &err) {
  auto buf = llvm::MemoryBuffer::getFile(file);
  if (!buf) {
    err = "--calib-ids '" + file + "': " + buf.getError().message();
    return false;
  }
  std::string text = (*buf)->getBuffer().str();
  for (char &c : text)
    if (c == ',')
      c = ' ';
  std::istringstream is(text);
  std::string tok;
  while (is >> tok) {
    char *end = nullptr;
    long long v = std::strtoll(tok.c_str(), &end, 10);
    if (*end || v < 0) {
      err = "--calib-ids '" + file + "': '" + tok + "' is not a token id";
      return false;
    }
    ids.push_back(v);
  }
  return true;
}

/// max_position_embeddings from a config.json next to the model, or 0.
int64_t configContext(const std::string &model) {
  llvm::SmallString<256> p(path::parent_path(model));
  path::append(p, "config.json");
  auto buf = llvm::MemoryBuffer::getFile(p);
  if (!buf)
    return 0;
  std::string s = (*buf)->getBuffer().str();
  size_t at = s.find("\"max_position_embeddings\"");
  if (at == std::string::npos)
    return 0;
  at = s.find(':', at);
  return at == std::string::npos ? 0 : std::atoll(s.c_str() + at + 1);
}

void drawProgress(int64_t done, int64_t total) {
  const int W = 30;
  int fill = total ? int(W * done / total) : W;
  llvm::errs() << "\rcalibrating [" << std::string(size_t(fill), '#')
               << std::string(size_t(W - fill), ' ') << "] " << done << "/"
               << total << " samples";
  progressOpen = true;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // lib/Compiler builds textual pipelines and applies the pass manager's
  // command-line options, as in qwen-compile.
  mlir::registerAllPasses();
  qwen::registerAllQwenPasses();
  mlir::registerPassManagerCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerAsmPrinterCLOptions();
  cl::OptionCategory cat("qwen-calibrate options");
  cl::opt<std::string> model(cl::Positional, cl::desc("<model.onnx>"),
                             cl::Required, cl::cat(cat));
  cl::opt<std::string> output("o", cl::desc("Statistics file to write"),
                              cl::value_desc("stats.json"), cl::Required,
                              cl::cat(cat));
  cl::opt<std::string> tokenizer(
      "tokenizer", cl::desc("HF tokenizer.json of the model"),
      cl::value_desc("file"), cl::cat(cat));
  cl::opt<std::string> data("calib-data",
                            cl::desc("Calibration text (UTF-8)"),
                            cl::value_desc("file"), cl::cat(cat));
  cl::opt<std::string> idsFile(
      "calib-ids",
      cl::desc("Calibration token ids (whitespace or comma separated), "
               "instead of --calib-data"),
      cl::value_desc("file"), cl::cat(cat));
  cl::opt<int64_t> samples("calib-samples",
                           cl::desc("Sequences to run (default 128)"),
                           cl::init(128), cl::cat(cat));
  cl::opt<int64_t> seqLen("calib-seq-len",
                          cl::desc("Tokens per sequence (default 512)"),
                          cl::init(512), cl::cat(cat));
  cl::opt<int> bins("histogram-bins",
                    cl::desc("Bins of the |x| histogram (default 2048)"),
                    cl::init(2048), cl::cat(cat));
  cl::opt<int64_t> xtxMaxK(
      "xtx-max-k",
      cl::desc("Write X^T X of inputs with at most this many features "
               "(default 2048; 0: never)"),
      cl::init(2048), cl::cat(cat));
  cl::opt<bool> intOnlySites(
      "int-only-sites",
      cl::desc("Also observe the gate/up linear outputs (layers "
               "\"<layer>#out\", for --qwen-integer-only / w8a8-int-only)"),
      cl::init(false), cl::cat(cat));
  cl::opt<std::string> keepBundle(
      "keep-bundle",
      cl::desc("Also keep the instrumented bundle in this (new) folder"),
      cl::value_desc("dir"), cl::cat(cat));
  cl::opt<std::string> progress(
      "progress", cl::desc("Progress bar on stderr: auto (a terminal), "
                           "always, never"),
      cl::init("auto"), cl::ValueOptional, cl::cat(cat));
  // --threads N: libLLVM registers its own "threads" option, so it is taken
  // out of argv before llvm::cl sees it.
  int threads = 0;
  std::vector<char *> args;
  for (int i = 0; i < argc; ++i) {
    llvm::StringRef a(argv[i]);
    std::string v;
    if (a == "--threads" || a == "-threads") {
      if (i + 1 >= argc) {
        llvm::errs() << "qwen-calibrate: error: --threads needs a value\n";
        return 2;
      }
      v = argv[++i];
    } else if (a.starts_with("--threads=") || a.starts_with("-threads=")) {
      v = a.split('=').second.str();
    } else {
      args.push_back(argv[i]);
      continue;
    }
    if (llvm::StringRef(v).getAsInteger(10, threads) || threads < 0) {
      llvm::errs() << "qwen-calibrate: error: --threads: expected a count "
                      ">= 0 (0: all cores), got '"
                   << v << "'\n";
      return 2;
    }
  }
  cl::HideUnrelatedOptions(cat);
  if (!cl::ParseCommandLineOptions(
          int(args.size()), args.data(),
          "qwen-calibrate: activation statistics of a float model for "
          "static quantization\n"))
    return 2;

  auto usage = [](const std::string &m) {
    llvm::errs() << "qwen-calibrate: error: " << m << "\n";
    return 2;
  };
  if (data.empty() == idsFile.empty())
    return usage("give one of --calib-data (text) or --calib-ids (token ids)");
  if (!data.empty() && tokenizer.empty())
    return usage("--calib-data needs --tokenizer tokenizer.json");
  if (samples < 1)
    return usage("--calib-samples must be at least 1");
  if (seqLen < 1)
    return usage("--calib-seq-len must be at least 1");
  if (bins < 256 || bins % 2)
    return usage("--histogram-bins must be an even number >= 256");
  if (progress.empty())
    progress = "always";
  if (progress != "auto" && progress != "always" && progress != "never")
    return usage("--progress: expected auto, always or never");
  bool showProgress = progress == "always" ||
                      (progress == "auto" && isatty(STDERR_FILENO));

  // Inputs first: cheap checks before the compile.
  std::string text;
  std::vector<int64_t> ids;
  if (!data.empty()) {
    auto buf = llvm::MemoryBuffer::getFile(data, /*IsText=*/false);
    if (!buf)
      return fail("--calib-data '" + data + "': " + buf.getError().message());
    text = (*buf)->getBuffer().str();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
      return fail("--calib-data '" + data + "' is empty");
  } else {
    std::string err;
    if (!readIds(idsFile, ids, err))
      return fail(err);
    if (ids.empty())
      return fail("--calib-ids '" + idsFile + "' is empty");
  }
  int64_t ctx = configContext(model);
  if (ctx > 0 && seqLen > ctx)
    return fail("--calib-seq-len " + std::to_string(seqLen) +
                " exceeds the model context (max_position_embeddings " +
                std::to_string(ctx) + " in config.json)");
  llvm::SmallString<256> outAbs(output);
  fs::make_absolute(outAbs);
  std::string outDir = path::parent_path(outAbs).str();
  if (!fs::is_directory(outDir))
    return fail("-o '" + output + "': folder '" + outDir + "' does not exist");
  std::string stem = path::filename(outAbs).str();

  TempGuard guard;
  llvm::sys::AddSignalHandler(removeTemps, nullptr);
  llvm::SmallString<256> work;
  if (std::error_code ec = fs::createUniqueDirectory(
          outDir + "/." + stem + ".qwen-calibrate", work))
    return fail("cannot create a work folder in '" + outDir +
                "': " + ec.message());
  tempPaths.push_back(std::string(work));

  // 1. The instrumented float bundle.
  if (!keepBundle.empty() && fs::exists(keepBundle))
    return fail("--keep-bundle '" + keepBundle + "' already exists");
  qwen::compiler::Options co;
  co.input = model;
  co.output = std::string(work) + "/bundle";
  co.tokenizer = tokenizer;
  co.instrumentActivations = true;
  qwen::setInstrumentIntegerOnlySites(intOnlySites);
  if (int rc = qwen::compiler::compile(co))
    return fail("compiling the instrumented model failed (see above)"), rc;

  qwen_bundle *bundle = nullptr;
  if (qwen_bundle_open(co.output.c_str(), &bundle) != QWEN_OK)
    return fail(qwen_last_error());
  std::unique_ptr<qwen_bundle, void (*)(qwen_bundle *)> bundleOwner(
      bundle, qwen_bundle_free);
  qwen_bundle_set_num_threads(bundle, threads);

  // 2. Tokens.
  if (!text.empty()) {
    int64_t n = 0;
    qwen_status st = qwen_tokenize(bundle, text.c_str(), nullptr, 0, &n);
    if (st != QWEN_OK && st != QWEN_ERR_BUFFER_TOO_SMALL)
      return fail("--calib-data '" + data + "': " + qwen_last_error());
    ids.resize(size_t(n));
    if (n && qwen_tokenize(bundle, text.c_str(), ids.data(), n, &n) != QWEN_OK)
      return fail("--calib-data '" + data + "': " + qwen_last_error());
    if (ids.empty())
      return fail("--calib-data '" + data + "' gives no tokens");
  }
  int64_t need = samples * seqLen;
  if (int64_t(ids.size()) < need)
    return fail(std::string(!data.empty() ? "--calib-data '" + data + "'"
                                          : "--calib-ids '" + idsFile + "'") +
                " has " + std::to_string(ids.size()) + " tokens; " +
                std::to_string(samples) + " samples of " +
                std::to_string(seqLen) + " tokens need " +
                std::to_string(need));

  // 3. Run and accumulate.
  int64_t nObs = qwen_bundle_num_observed(bundle);
  if (nObs == 0)
    return fail("the instrumented model observes no activation");
  std::vector<std::unique_ptr<TensorStats>> stats(static_cast<size_t>(nObs));
  unsigned workers = threads > 0 ? unsigned(threads)
                                 : std::max(1u, std::thread::hardware_concurrency());
  if (showProgress)
    drawProgress(0, samples);
  for (int64_t k = 0; k < samples; ++k) {
    qwen_session *s = nullptr;
    if (qwen_session_create(bundle, seqLen, &s) != QWEN_OK)
      return fail(qwen_last_error());
    std::unique_ptr<qwen_session, void (*)(qwen_session *)> sOwner(
        s, qwen_session_free);
    if (qwen_session_prefill(s, ids.data() + k * seqLen, seqLen) != QWEN_OK)
      return fail("sample " + std::to_string(k) + ": " + qwen_last_error());
    // Fetch every observed tensor, then accumulate them in parallel (each
    // TensorStats is independent; X^T X dominates).
    std::vector<const float *> xs(static_cast<size_t>(nObs));
    std::vector<int64_t> rowsOf(static_cast<size_t>(nObs));
    for (int64_t i = 0; i < nObs; ++i) {
      int64_t rows, cols;
      if (qwen_session_observed(s, i, &xs[size_t(i)], &rows, &cols) != QWEN_OK)
        return fail(qwen_last_error());
      rowsOf[size_t(i)] = rows;
      auto &st = stats[size_t(i)];
      if (!st)
        st = std::make_unique<TensorStats>(cols, xtxMaxK > 0 && cols <= xtxMaxK,
                                           bins);
      if (st->cols() != cols)
        return fail("observed tensor '" +
                    std::string(qwen_bundle_observed_name(bundle, i)) +
                    "' changed width");
    }
    std::vector<int64_t> badAt(static_cast<size_t>(nObs), -1);
    std::atomic<int64_t> next{0};
    auto work = [&] {
      for (int64_t i; (i = next++) < nObs;)
        badAt[size_t(i)] = stats[size_t(i)]->add(xs[size_t(i)], rowsOf[size_t(i)]);
    };
    {
      std::vector<std::thread> pool;
      for (unsigned t = 1; t < workers && int64_t(t) < nObs; ++t)
        pool.emplace_back(work);
      work();
      for (std::thread &t : pool)
        t.join();
    }
    for (int64_t i = 0; i < nObs; ++i) {
      int64_t bad = badAt[size_t(i)];
      if (bad < 0)
        continue;
      int64_t cols = stats[size_t(i)]->cols();
      int64_t nl = qwen_bundle_observed_num_layers(bundle, i);
      std::string layers;
      for (int64_t j = 0; j < nl; ++j)
        layers += std::string(j ? ", " : "") + "'" +
                  qwen_bundle_observed_layer(bundle, i, j) + "'";
      float v = xs[size_t(i)][bad];
      return fail(std::string(std::isnan(v) ? "NaN" : "Inf") +
                  " in the input activation of layer" + (nl > 1 ? "s " : " ") +
                  layers + " in sample " + std::to_string(k) + " (token " +
                  std::to_string(bad / cols) + " of the sequence, channel " +
                  std::to_string(bad % cols) +
                  "); the float model is not finite on this text");
    }
    if (showProgress)
      drawProgress(k + 1, samples);
  }
  if (showProgress) {
    llvm::errs() << "\n";
    progressOpen = false;
  }

  // 4. stats.json + <stats>.xtx/, atomically.
  std::string modelHash, dataHash, err;
  if (!qwen::sha256File(model, modelHash, err))
    return fail(err);
  const std::string &src = data.empty() ? idsFile : data;
  if (!qwen::sha256File(src, dataHash, err))
    return fail(err);
  std::string xtxName = stem;
  if (llvm::StringRef(xtxName).ends_with(".json"))
    xtxName.resize(xtxName.size() - 5);
  xtxName += ".xtx";
  std::string pid = std::to_string(getpid());
  std::string xtxTmp = outDir + "/." + xtxName + ".tmp." + pid;
  std::string jsonTmp = std::string(outAbs) + ".tmp." + pid;
  tempPaths.push_back(xtxTmp);
  tempPaths.push_back(jsonTmp);
  bool anyXtx = false;
  std::vector<std::string> xtxRef(static_cast<size_t>(nObs));
  for (int64_t i = 0; i < nObs; ++i) {
    const TensorStats &st = *stats[size_t(i)];
    if (!st.hasFullMoment())
      continue;
    if (!anyXtx) {
      if (std::error_code ec = fs::create_directory(xtxTmp))
        return fail("cannot create '" + xtxTmp + "': " + ec.message());
      anyXtx = true;
    }
    char name[32];
    std::snprintf(name, sizeof(name), "%03lld.npy", (long long)i);
    if (!qwen::calib::writeNpy(xtxTmp + "/" + name, st.xtx(), st.cols(),
                               st.cols(), err))
      return fail(err);
    xtxRef[size_t(i)] = xtxName + "/" + name;
  }
  {
    std::ofstream os(jsonTmp);
    if (!os)
      return fail("cannot write '" + jsonTmp + "'");
    os << "{\n  \"format\": \"qwen-calib\",\n  \"version\": 1,\n"
       << "  \"model\": {\"file\": " << jsonQuote(path::filename(model).str())
       << ", \"sha256\": \"" << modelHash << "\"},\n"
       << "  \"calibration\": {\"" << (data.empty() ? "ids" : "data")
       << "\": " << jsonQuote(path::filename(src).str()) << ", \"sha256\": \""
       << dataHash << "\", \"samples\": " << samples
       << ", \"seq_len\": " << seqLen << ", \"tokens\": " << need
       << ", \"histogram_bins\": " << bins << "},\n"
       << "  \"layers\": {";
    bool first = true;
    for (int64_t i = 0; i < nObs; ++i) {
      qwen::calib::Thresholds t = stats[size_t(i)]->thresholds();
      for (int64_t j = 0; j < qwen_bundle_observed_num_layers(bundle, i); ++j) {
        char buf[256];
        std::snprintf(buf, sizeof(buf),
                      "{\"observed\": %lld, \"thresholds\": {\"max\": %.17g, "
                      "\"percentile_99.99\": %.17g, \"percentile_99.9\": "
                      "%.17g, \"entropy\": %.17g, \"mse\": %.17g}}",
                      (long long)i, t.max, t.p9999, t.p999, t.entropy, t.mse);
        os << (first ? "\n    " : ",\n    ")
           << jsonQuote(qwen_bundle_observed_layer(bundle, i, j)) << ": " << buf;
        first = false;
      }
    }
    os << "\n  },\n  \"observed\": [";
    for (int64_t i = 0; i < nObs; ++i) {
      os << (i ? ",\n    " : "\n    ") << "{\"name\": "
         << jsonQuote(qwen_bundle_observed_name(bundle, i)) << ", \"layers\": [";
      for (int64_t j = 0; j < qwen_bundle_observed_num_layers(bundle, i); ++j)
        os << (j ? ", " : "") << jsonQuote(qwen_bundle_observed_layer(bundle, i, j));
      os << "],\n     \"stats\": ";
      stats[size_t(i)]->writeJson(os, xtxRef[size_t(i)], "     ");
      os << "}";
    }
    os << "\n  ]\n}\n";
    os.close();
    if (!os)
      return fail("writing '" + jsonTmp + "' failed");
  }
  if (!keepBundle.empty()) {
    bundleOwner.reset();
    if (std::error_code ec = fs::rename(co.output, keepBundle))
      return fail("--keep-bundle '" + keepBundle + "': " + ec.message());
  }
  std::string xtxFinal = outDir + "/" + xtxName;
  fs::remove_directories(xtxFinal);
  if (anyXtx)
    if (std::error_code ec = fs::rename(xtxTmp, xtxFinal))
      return fail("cannot rename '" + xtxTmp + "': " + ec.message());
  if (std::error_code ec = fs::rename(jsonTmp, outAbs))
    return fail("cannot rename '" + jsonTmp + "': " + ec.message());
  llvm::outs() << "qwen-calibrate: " << nObs << " observed tensors, "
               << samples << " samples x " << seqLen << " tokens -> "
               << output << "\n";
  return 0;
}
