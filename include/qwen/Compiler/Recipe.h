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
  bool quantizes() const;
};

/// The named recipes, in the order --help lists them.
const std::vector<std::string> &recipeNames();

/// Resolves `--recipe`: a name, or a path ending in .json. On failure `err`
/// holds one message naming the problem (unknown recipe, unknown key, bad
/// scheme, w8a8 without calibration statistics).
bool resolveRecipe(const std::string &arg, Recipe &out, std::string &err);

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
