//===- WeightStoreAccess.h - weight stores seen from the IR -----*- C++ -*-===//
//
// The bridge between the IR's weight references and the store files: element
// type <-> store dtype, opening the store a `qwen.store` op names (once per
// pass), and the component layout a `!qquant.weight` scheme implies.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_WEIGHTSTOREACCESS_H
#define QWEN_TRANSFORMS_WEIGHTSTOREACCESS_H

#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/Dialect/Qwen/QwenDialect.h"
#include "qwen/Support/WeightStore.h"

#include "llvm/ADT/StringMap.h"
#include <optional>
#include <vector>

namespace qwen {

/// The store dtype of an MLIR element type, if the store can hold it.
std::optional<ws::DType> toStoreDType(mlir::Type elementType);
/// The MLIR element type of a store dtype.
mlir::Type fromStoreDType(mlir::MLIRContext *ctx, ws::DType dtype);

/// The bytes of a dense constant in the store's layout (little-endian; i1 one
/// byte per value; i4/ui4 two per byte, low nibble first).
std::vector<char> toStoreBytes(mlir::DenseElementsAttr attr);
/// The constant that store-layout `bytes` hold, as `type`. `bytes` must have
/// the size the type needs in that layout.
mlir::DenseElementsAttr fromStoreBytes(mlir::RankedTensorType type,
                                       llvm::ArrayRef<char> bytes);

/// Opens each store file once and keeps it mapped for the pass's lifetime.
class WeightStoreCache {
public:
  /// Resolves `ref`'s store through the symbol table and opens it; emits an
  /// error on `user` naming the store file when it cannot be opened.
  const ws::WeightStoreReader *open(mlir::Operation *user,
                                    mlir::SymbolRefAttr ref);
  /// Finds `ref`'s entry (`suffix` appended to its name); emits an error
  /// naming the entry and file when missing.
  const ws::Entry *find(mlir::Operation *user, mlir::SymbolRefAttr ref,
                        llvm::StringRef suffix = "");

private:
  llvm::StringMap<std::unique_ptr<ws::WeightStoreReader>> readers;
};

/// The value of IEEE half-precision bits `h` (exact, subnormals included).
float halfToFloat(uint16_t h);

/// Reads `ref`'s entry, which must have `n` elements of dtype f32, f16 or
/// bf16, as floats. Errors (on `user`) name the entry.
mlir::LogicalResult readFloatEntry(WeightStoreCache &stores,
                                   mlir::Operation *user,
                                   mlir::SymbolRefAttr ref, int64_t n,
                                   std::vector<float> &out);

/// Reads a float operand that is a `qwen.weight` or a constant (any op with
/// the ConstantLike trait holding dense f32 elements), `n` elements.
mlir::LogicalResult readFloatValue(WeightStoreCache &stores,
                                   mlir::Operation *user, mlir::Value v,
                                   int64_t n, std::vector<float> &out);

/// Fails (with an error on `module`) when `path` is the file of a store the
/// module refers to: writing there would destroy weights still being read.
mlir::LogicalResult checkNewStorePath(mlir::ModuleOp module,
                                      llvm::StringRef path);

/// Finishes a store a pass wrote (`writer` is null when it wrote nothing:
/// then nothing happens) and declares it at the top of `module` as
/// `qwen.store @storeName "storePath"`.
mlir::LogicalResult finishNewStore(mlir::ModuleOp module,
                                   ws::WeightStoreWriter *writer,
                                   llvm::StringRef storeName,
                                   llvm::StringRef storePath);

/// One store entry that a quantized weight consists of.
struct WeightComponent {
  std::string suffix; // ".codes", ".scales", ...
  llvm::SmallVector<ws::DType, 2> dtypes; // accepted dtypes
  llvm::SmallVector<int64_t, 3> shape;
};

/// The entries (and their shapes) that a `!qquant.weight` of this type keeps
/// in its store. This is the contract between the packing passes, the
/// kernels and the bundle writer.
llvm::SmallVector<WeightComponent> getWeightComponents(qquant::WeightType type);

} // namespace qwen

#endif // QWEN_TRANSFORMS_WEIGHTSTOREACCESS_H
