//===- IntegerOnly.h - integer-only inference helpers -----------*- C++ -*-===//
//
// --qwen-integer-only (lib/Transforms/IntegerOnly.cpp) and the calibration
// sites it needs (lib/Transforms/InstrumentActivations.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TRANSFORMS_INTEGERONLY_H
#define QWEN_TRANSFORMS_INTEGERONLY_H

#include <cstdint>

namespace qwen {

/// Makes --qwen-instrument-activations also observe the sites of
/// --qwen-instrument-integer-only-sites (process-wide default, for
/// qwen-calibrate --int-only-sites, which compiles through lib/Compiler).
void setInstrumentIntegerOnlySites(bool on);

namespace intonly {
/// Real multiplier m in [0, 1) as multiplier * 2^-31 * 2^-shift, multiplier
/// in [2^30, 2^31) (rounded to nearest), shift in [0, 31]; m < 2^-32 gives
/// (0, 0). False when m >= 1 or is not finite.
bool quantizeMultiplier(double m, int32_t &multiplier, int32_t &shift);
} // namespace intonly

} // namespace qwen

#endif // QWEN_TRANSFORMS_INTEGERONLY_H
