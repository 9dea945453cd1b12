//===- Recipe.h - qwen-compile's quantization recipes -----------*- C++ -*-===//
//
// `--recipe NAME|file.json`: which weights --qwen-quantize-weights quantizes
// and how. The named recipes, the policy for the LM head and the embedding,
// and the file format are documented in Recipe.cpp and README.md.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_COMPILER_RECIPE_H
#define QWEN_COMPILER_RECIPE_H

#include "qwen/Transforms/QuantizeWeights.h"

#include "mlir/IR/BuiltinOps.h"
#include <map>
#include <string>
#include <vector>

namespace qwen::compiler {

struct Recipe {
  std::string name; // the named recipe, or the file's base recipe
  std::string file; // the recipe file, if --recipe named one
  quant::QuantizePlan plan;
  /// mixed-<bits>: per-layer schemes chosen by --qwen-sensitivity on the
  /// calibration text and --qwen-assign-precision{avg-bits=<bits>} (a recipe
  /// file's "layers" are pinned); 0 otherwise.
  double mixedBits = 0;
  /// Equivalent rescaling before quantization (--qwen-smooth): "" (none),
  /// "awq" or "smoothquant", with its exponent (< 0: searched).
  std::string smooth;
  double smoothAlpha = -1;
  /// Pruning before quantization (--qwen-prune): "" (none), "2:4" or
  /// "unstructured" (suffixes -2:4 and -sp<percent>), by "wanda" (needs
  /// --calib-text) or "magnitude" (suffix -magnitude).
  std::string prune;
  double pruneSparsity = 0.5;
  std::string pruneMethod = "wanda";
  bool quantizes() const;
};

/// The named recipes, in the order --help lists them.
const std::vector<std::string> &recipeNames();

/// Resolves `--recipe`: a name, or a path ending in .json. On failure `err`
/// holds one message naming the problem (unknown recipe, unknown key, bad
/// scheme, w8a8 without calibration statistics).
bool resolveRecipe(const std::string &arg, Recipe &out, std::string &err);

/// Whether any op of the recipe gets static activation scales (w8a8, or a
/// recipe file layer with "act": "static").
bool needsCalibration(const Recipe &r);

/// Whether the recipe needs calibration text (--calib-text): GPTQ, clip
/// search, bias correction, AWQ or SmoothQuant anywhere.
bool needsCalibText(const Recipe &r);

/// The calibration methods of --calib-method, in --help order.
const std::vector<std::string> &calibMethods();

/// Reads qwen-calibrate's stats.json: for each layer, the static scale
/// threshold(method) / 127 into `scales`; `sha256` is the file's hash.
/// Errors (unreadable file, wrong format, unknown method, a layer without
/// the threshold, a non-finite one) name the file and the layer.
bool loadCalibration(const std::string &path, const std::string &method,
                     std::map<std::string, double> &scales,
                     std::string &sha256, std::string &err);

/// What the quantized module holds, for the manifest's "recipe" object.
struct RecipeSummary {
  /// Scheme string ("fp32", "i4 symmetric group=128", ...) -> ops using it.
  std::map<std::string, int64_t> schemes;
  /// Stored bits per logical weight over the linear / logits / embedding
  /// weights (a weight read by two ops counted once; scales and zero points
  /// included).
  double bitsPerWeight = 32.0;
  int64_t weights = 0; // logical elements counted
};
RecipeSummary summarizeRecipe(mlir::ModuleOp module);

} // namespace qwen::compiler

#endif // QWEN_COMPILER_RECIPE_H
