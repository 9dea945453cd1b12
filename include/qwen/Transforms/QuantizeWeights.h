//===- QuantizeWeights.h - round-to-nearest weight quantization -*- C++ -*-===//
//
// The configuration of --qwen-quantize-weights as a C++ value, so that
// qwen-compile's recipes (lib/Compiler/Recipe.cpp) can run the pass without
// going through option strings, and the JSON form of per-layer overrides that
// both the pass (`layers-file=`) and recipe files (`"layers"`) read.
//
// A layer is named by the store entry of its weight (the leaf of the
// `qwen.weight @store::@"name"` the op reads), e.g.
// "model.layers.3.mlp.down_proj.weight" or, for exporters that name weights
// after nodes, what --qwen-materialize-weights produced
// ("onnx::MatMul_710.transposed").
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_QUANTIZEWEIGHTS_H
#define QWEN_TRANSFORMS_QUANTIZEWEIGHTS_H

#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "mlir/Pass/Pass.h"

#include "llvm/Support/JSON.h"
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qwen::quant {

/// How a weight's codes are chosen.
enum class Algorithm {
  rtn, // round to nearest
  gptq // GPTQ: second-order error compensation from calibration Hessians
};

/// How one weight is quantized (uniform or log2 grid, dense), or kept in float.
struct LayerScheme {
  bool keepFloat = false;
  qquant::Grid grid = qquant::Grid::uniform; // uniform, log2 or codebook
                                             // (WeightSharing.h; unsigned)
  Algorithm algorithm = Algorithm::rtn;
  bool clipSearch = false;     // per-block clipping ratio from calibration
  bool biasCorrection = false; // add E[x] (W - Q)^T to the bias
  bool weighted = false; // codebook: k-means weighted by E[x_j^2]
  unsigned bits = 4;        // 2, 3, 4 or 8
  bool isSigned = true;     // codes iN (two's complement) or uN
  bool symmetric = true;    // no zero points
  qquant::Granularity granularity = qquant::Granularity::group;
  unsigned groupSize = 128; // 32, 64 or 128 (group granularity only)
  bool dynamicAct = false;  // #qquant.act<dynamic, i8, per_token> (w8a8-dyn)
  bool staticAct = false;   // #qquant.act<static : !quant.uniform<i8:f32, s>>
                            // with s from QuantizePlan::actScales (w8a8)
  /// Weight-only linears: the input is rounded to bfloat16 (qquant.linear
  /// {bf16_input}; recipe suffix -bf16, e.g. w4a16-g128-bf16).
  bool bf16Act = false;
  /// Group-wise weight-only linears: the input is quantized to int16 and
  /// dequantized per weight group (qquant.linear {i16_input}; recipe suffix
  /// -i16, e.g. w4a16-g128-i16).
  bool i16Act = false;
  /// 2:4: the weight was pruned to 2 of every 4 inputs (--qwen-prune marks
  /// the op `qquant.pruned = "2:4"`); only the kept codes are stored, with a
  /// 2-bit position each. Pruned weights (exact zeros) stay zero.
  qquant::Sparsity sparsity = qquant::Sparsity::dense;

  /// "fp32", or e.g. "i4 symmetric group=128", "i8 symmetric channel act=dynamic-i8".
  std::string str() const;
  /// Checks the combination; `err` says what is wrong.
  bool validate(std::string &err) const;
  bool operator==(const LayerScheme &o) const;
  /// Drops the activation scheme (int8 dynamic / static, bf16, int16): what
  /// a lookup or the stored weight alone has.
  void clearActivation() { dynamicAct = staticAct = bf16Act = i16Act = false; }
};

/// A per-layer override: the fields it sets replace the op's scheme, or the
/// whole layer is kept in float ("fp32").
struct LayerOverride {
  std::string pattern; // exact layer name, or a glob (* ? [..])
  bool keepFloat = false;
  std::optional<unsigned> bits, groupSize;
  std::optional<bool> isSigned, symmetric, dynamicAct, staticAct, bf16Act, i16Act;
  std::optional<qquant::Granularity> granularity;
  std::optional<qquant::Grid> grid;
  std::optional<qquant::Sparsity> sparsity; // 2:4: pruned by the quantizer
                                            // unless --qwen-prune marked it
  std::optional<Algorithm> algorithm;
  std::optional<bool> clipSearch, biasCorrection;

  LayerScheme apply(LayerScheme base) const;
  bool isGlob() const;
};

/// What the pass does. An op kind without a scheme stays in float.
struct QuantizePlan {
  std::optional<LayerScheme> linear, logits, embedding;
  std::vector<LayerOverride> layers;
  /// Where a layer override quantizes an op whose kind has no scheme, the
  /// fields it does not set come from here.
  LayerScheme fallback;
  /// Static activation scale s_x (threshold / 127) per layer name, for the
  /// ops whose scheme has staticAct (from qwen-calibrate's statistics). A
  /// static op without an entry is an error naming the layer.
  std::map<std::string, double> actScales;
  /// Calibration token sequences for the data-driven choices (GPTQ, clip
  /// search, bias correction, static activation scales of layers missing
  /// from actScales), run through the model by qwen::exec::Executor with
  /// the already-quantized ops in place (sequential).
  std::string calibTokens;
  double gptqDamp = 0.01;
  bool gptqActOrder = true;
  /// How a static activation scale is found from the observed inputs:
  /// max, percentile-99.99, entropy or mse (threshold / 127).
  std::string actMethod = "mse";
  /// Codebook grids (--qwen-share-weights): Lloyd iteration limit and
  /// convergence tolerance (relative to the block's max |w|).
  unsigned kmeansMaxIters = 100;
  double kmeansTolerance = 1e-6;
  bool kmeansF16 = false; // f16 centroids (`.codebook` stored as f16)

  /// Gives `s` to the op kinds in `kinds` ("linear", "logits", "embedding";
  /// an embedding gets no activation quantization and no data-driven method:
  /// a lookup has no input). Returns the first unknown kind, else "".
  std::string assign(llvm::ArrayRef<std::string> kinds, const LayerScheme &s);
};

/// "tensor", "channel" or "group" (how options and recipe files spell a
/// granularity); nullopt for anything else.
std::optional<qquant::Granularity> parseGranularity(llvm::StringRef s);

/// Parses one override value: "fp32" or an object with keys "bits",
/// "granularity" ("tensor"|"channel"|"group"), "group_size", "symmetric"
/// (bool), "signed" (bool), "act" ("none"|"dynamic"|"static"), "grid"
/// ("uniform"|"log2"|"codebook"), "sparsity" ("2:4"|"dense": a 2:4 layer
/// not pruned by --qwen-prune is pruned by Wanda on the calibration tokens,
/// else by magnitude), "algorithm" ("rtn"|"gptq"), "clip_search" (bool),
/// "bias_correction" (bool). Unknown keys are errors.
bool parseLayerOverride(llvm::StringRef pattern, const llvm::json::Value &v,
                        LayerOverride &out, std::string &err);
/// Parses `{"<layer name or glob>": <override>, ...}`, sorted by pattern so
/// the result does not depend on hash order.
bool parseLayerOverrides(const llvm::json::Object &o,
                         std::vector<LayerOverride> &out, std::string &err);

/// The pass with a preset plan (the option strings are ignored).
std::unique_ptr<mlir::Pass>
createQuantizeWeightsPass(QuantizePlan plan, std::string storePath,
                          std::string storeName = "quantized");

} // namespace qwen::quant

#endif // QWEN_TRANSFORMS_QUANTIZEWEIGHTS_H
