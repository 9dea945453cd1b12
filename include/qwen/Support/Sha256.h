//===- Sha256.h - SHA-256 (FIPS 180-4) with no dependencies -----*- C++ -*-===//
//
// Used by qwen-compile to record the hashes of a bundle's files and by the
// runtime to check them. Plain C++17, no LLVM/MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_SUPPORT_SHA256_H
#define QWEN_SUPPORT_SHA256_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace qwen {

/// Incremental SHA-256: update() any number of times, then finish().
class Sha256 {
public:
  Sha256();
  void update(const void *data, size_t n);
  /// The 32-byte digest; the object must not be updated afterwards.
  void finish(uint8_t digest[32]);
  /// finish() as 64 lowercase hex digits.
  std::string finishHex();

private:
  void blocks(const uint8_t *p, size_t n);
  void blockGeneric(const uint8_t *p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t bufLen_ = 0;
  uint64_t totalBytes_ = 0;
};

/// The SHA-256 of `n` bytes at `data` as 64 lowercase hex digits.
std::string sha256Hex(const void *data, size_t n);

/// The SHA-256 of the file at `path` (read in 1 MiB chunks) as 64 lowercase
/// hex digits. Returns false and sets `error` (which names the file) when the
/// file cannot be opened or read.
bool sha256File(const std::string &path, std::string &hex, std::string &error);

namespace detail {
/// The x86 SHA extensions are used where the CPU has them; tests turn them
/// off to check the portable code. Returns whether they are used now.
bool sha256SetAccelerated(bool enable);
} // namespace detail

} // namespace qwen

#endif // QWEN_SUPPORT_SHA256_H
