//===- qwen-quant-check.cpp - drive the quantization numerics -------------===//
//
//   qwen-quant-check rtn|clip|gptq W.npy [H.npy] [scheme flags] -o OUT.npy
//       RTN / clip-searched RTN / GPTQ of W ([rows, cols], f32 or f64) with
//       H = X^T X ([cols, cols]); writes the dequantized weight (f32) to OUT
//       and, with --codes C.npy, the codes (i64); prints the output error
//       sum_r d_r^T H d_r when H is given.
//   qwen-quant-check kmeans W.npy [IMP.npy] [--bits --granularity
//       --group-size --max-iters --tolerance] -o OUT.npy [--codes C.npy]
//       [--codebook CB.npy] [--f16]
//       k-means codebooks of W (WeightSharing.h), weighted by the per-column
//       importance IMP ([1, cols]) when given: the dequantized weight, the
//       indices unpacked from the packed store layout and the codebooks
//       ([books, 2^bits]).
//   qwen-quant-check exec MODEL.mlir --tokens T.json -o LOGITS.npy
//       runs the calibration executor on a raised model and writes the
//       logits ([tokens, vocab], f32).
//
//===----------------------------------------------------------------------===//

#include "qwen/InitAll.h"
#include "qwen/Transforms/Executor.h"
#include "qwen/Transforms/QuantAlgorithms.h"
#include "qwen/Transforms/WeightSharing.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <fstream>

using namespace llvm;
namespace q = qwen::quant;

static cl::opt<std::string> mode(cl::Positional, cl::Required,
                                 cl::desc("rtn|clip|gptq|exec"));
static cl::list<std::string> inputs(cl::Positional, cl::OneOrMore,
                                    cl::desc("inputs"));
static cl::opt<std::string> output("o", cl::Required, cl::desc("output .npy"));
static cl::opt<std::string> codesOut("codes", cl::desc("codes .npy"));
static cl::opt<std::string> tokens("tokens", cl::desc("token file (exec)"));
static cl::opt<unsigned> bits("bits", cl::init(4));
static cl::opt<std::string> gran("granularity", cl::init("group"));
static cl::opt<unsigned> group("group-size", cl::init(128));
static cl::opt<bool> asym("asymmetric", cl::init(false));
static cl::opt<bool> isUnsigned("unsigned", cl::init(false));
static cl::opt<bool> log2Grid("log2", cl::init(false));
static cl::opt<double> damp("damp", cl::init(0.01));
static cl::opt<bool> actOrder("act-order", cl::init(true));
static cl::opt<bool> clipSearch("clip-search", cl::init(false));
static cl::opt<std::string> codebookOut("codebook", cl::desc("codebooks .npy (kmeans)"));
static cl::opt<unsigned> maxIters("max-iters", cl::init(100));
static cl::opt<double> tolerance("tolerance", cl::init(1e-6));
static cl::opt<bool> f16Books("f16", cl::init(false), cl::desc("f16 centroids (kmeans)"));

static int fail(const Twine &msg) {
  errs() << "qwen-quant-check: error: " << msg << "\n";
  return 1;
}

/// Reads a 2-D C-order .npy of <f4 or <f8 as doubles.
static bool readNpy(const std::string &path, std::vector<double> &out,
                    int64_t &rows, int64_t &cols, std::string &err) {
  auto buf = MemoryBuffer::getFile(path);
  if (!buf) {
    err = "cannot read '" + path + "'";
    return false;
  }
  StringRef d = (*buf)->getBuffer();
  if (d.size() < 10 || !d.starts_with("\x93NUMPY")) {
    err = "'" + path + "' is not a .npy file";
    return false;
  }
  unsigned major = uint8_t(d[6]);
  size_t hlen, off;
  if (major == 1) {
    hlen = uint8_t(d[8]) | uint8_t(d[9]) << 8;
    off = 10;
  } else {
    hlen = uint8_t(d[8]) | uint8_t(d[9]) << 8 | uint8_t(d[10]) << 16 |
           size_t(uint8_t(d[11])) << 24;
    off = 12;
  }
  StringRef h = d.substr(off, hlen);
  bool f4 = h.contains("'<f4'"), f8 = h.contains("'<f8'");
  if ((!f4 && !f8) || h.contains("'fortran_order': True")) {
    err = "'" + path + "': need a C-order float32/float64 array";
    return false;
  }
  size_t p = h.find("'shape': (");
  if (p == StringRef::npos) {
    err = "'" + path + "': no shape";
    return false;
  }
  StringRef sh = h.substr(p + 10);
  sh = sh.substr(0, sh.find(')'));
  SmallVector<StringRef> dims;
  sh.split(dims, ',', -1, false);
  if (dims.size() != 2 || dims[0].trim().getAsInteger(10, rows) ||
      dims[1].trim().getAsInteger(10, cols)) {
    err = "'" + path + "': need a 2-D array";
    return false;
  }
  size_t n = size_t(rows * cols), es = f4 ? 4 : 8;
  if (d.size() < off + hlen + n * es) {
    err = "'" + path + "' is truncated";
    return false;
  }
  const char *src = d.data() + off + hlen;
  out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (f4) {
      float f;
      std::memcpy(&f, src + 4 * i, 4);
      out[i] = f;
    } else {
      std::memcpy(&out[i], src + 8 * i, 8);
    }
  }
  return true;
}

template <typename T>
static bool writeNpy(const std::string &path, const T *data, int64_t rows,
                     int64_t cols, const char *descr) {
  std::string h = "{'descr': '" + std::string(descr) +
                  "', 'fortran_order': False, 'shape': (" +
                  std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  while ((10 + h.size() + 1) % 64)
    h += ' ';
  h += '\n';
  std::ofstream os(path, std::ios::binary);
  os.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {char(h.size() & 0xff), char(h.size() >> 8)};
  os.write(len, 2);
  os.write(h.data(), h.size());
  os.write(reinterpret_cast<const char *>(data), sizeof(T) * rows * cols);
  return bool(os);
}

static int runExec() {
  mlir::DialectRegistry registry;
  qwen::registerQwenDialects(registry);
  registry.insert<mlir::func::FuncDialect>();
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  llvm::SourceMgr sm;
  auto buf = MemoryBuffer::getFile(inputs[0]);
  if (!buf)
    return fail("cannot read '" + inputs[0] + "'");
  sm.AddNewSourceBuffer(std::move(*buf), SMLoc());
  mlir::SourceMgrDiagnosticHandler handler(sm, &ctx);
  auto module = mlir::parseSourceFile<mlir::ModuleOp>(sm, &ctx);
  if (!module)
    return 1;
  qwen::exec::Batch batch;
  std::string err;
  if (!qwen::exec::loadTokenFile(tokens, batch, err))
    return fail(err);
  auto ex = qwen::exec::Executor::create(*module);
  if (!ex)
    return 1;
  qwen::exec::Matrix logits;
  if (mlir::failed(ex->run(batch, {}, &logits)))
    return 1;
  if (!writeNpy(output, logits.data.data(), logits.rows, logits.cols, "<f4"))
    return fail("cannot write '" + output + "'");
  return 0;
}

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "qwen-quant-check\n");
  if (mode == "exec")
    return runExec();
  if (mode != "rtn" && mode != "clip" && mode != "gptq" && mode != "kmeans")
    return fail("unknown mode '" + mode + "'");
  std::vector<double> wd, H;
  int64_t rows, cols, hr = 0, hc = 0;
  std::string err;
  if (!readNpy(inputs[0], wd, rows, cols, err))
    return fail(err);
  if (inputs.size() > 1 && !readNpy(inputs[1], H, hr, hc, err))
    return fail(err);
  if (mode != "kmeans" && !H.empty() && (hr != cols || hc != cols))
    return fail("H must be [cols, cols]");
  if (mode != "rtn" && mode != "kmeans" && H.empty())
    return fail(mode + " needs H.npy");
  q::LayerScheme s;
  s.bits = bits;
  s.symmetric = !asym;
  s.isSigned = !isUnsigned;
  s.grid = log2Grid ? qwen::qquant::Grid::log2 : qwen::qquant::Grid::uniform;
  if (mode == "kmeans") {
    s.grid = qwen::qquant::Grid::codebook;
    s.isSigned = false;
    s.symmetric = true;
  }
  auto g = q::parseGranularity(gran);
  if (!g)
    return fail("granularity must be tensor, channel or group");
  s.granularity = *g;
  s.groupSize = s.granularity == qwen::qquant::Granularity::group ? group : 0;
  if (!s.validate(err))
    return fail(err);
  if (s.granularity == qwen::qquant::Granularity::group && cols % group)
    return fail("group size must divide the columns");
  std::vector<float> w(wd.begin(), wd.end()), dq;
  q::Packed p;
  if (mode == "kmeans") {
    if (!H.empty() && (hr != 1 || hc != cols))
      return fail("the importance must be [1, cols]");
    q::KMeansOptions o;
    o.maxIters = maxIters;
    o.tolerance = tolerance;
    o.f16 = f16Books;
    p = q::quantizeCodebook(w.data(), rows, cols, s, H, &dq, o);
    H.clear();
    if (!codebookOut.empty() &&
        !writeNpy(codebookOut, p.scales.data(),
                  int64_t(p.scales.size() >> bits), int64_t(1) << bits, "<f4"))
      return fail("cannot write '" + codebookOut + "'");
  } else if (mode == "gptq") {
    q::GPTQOptions o;
    o.damp = damp;
    o.actOrder = actOrder;
    o.clipSearch = clipSearch;
    if (!q::gptq(w.data(), rows, cols, s, H, o, p, dq, err))
      return fail(err);
  } else {
    std::vector<float> clip;
    if (mode == "clip")
      clip = q::searchClip(w.data(), rows, cols, s, H);
    p = q::quantizeRTN(w.data(), rows, cols, s, clip, &dq);
  }
  if (!writeNpy(output, dq.data(), rows, cols, "<f4"))
    return fail("cannot write '" + output + "'");
  if (!codesOut.empty()) {
    // Unpack the codes back from the store layout (checks pack()).
    std::vector<int64_t> codes(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        uint32_t v = 0;
        for (unsigned i = 0; i < bits; ++i) {
          int64_t bit = c * bits + i;
          v |= uint32_t(p.codes[r * p.rowBytes + bit / 8] >> (bit % 8) & 1) << i;
        }
        int64_t code = v;
        if (s.grid == qwen::qquant::Grid::uniform && s.isSigned &&
            (v >> (bits - 1) & 1))
          code -= int64_t(1) << bits;
        codes[r * cols + c] = code;
      }
    if (!writeNpy(codesOut, codes.data(), rows, cols, "<i8"))
      return fail("cannot write '" + codesOut + "'");
  }
  if (!H.empty())
    outs() << "output_error "
           << format("%.17g", q::outputError(w.data(), dq.data(), rows, cols, H))
           << "\n";
  return 0;
}
