//===- WeightStore.h - named tensors in one mmappable file ------*- C++ -*-===//
//
// The weight store is where weights live instead of the IR. One file holds
// named tensors, each 64-byte aligned so kernels can read them in place from
// a memory map. The index sits at the end, so a writer streams tensors out one
// at a time and a 72B model never needs to fit in memory.
//
// Layout (little-endian):
//   [0, 64)          header: magic "QWENWTS1", u32 version, u32 alignment,
//                    u64 entry count, u64 index offset, u64 index bytes,
//                    u64 file bytes
//   [64, index)      tensor data, each tensor aligned to `alignment`
//   [index, end)     per entry: u32 name length, name, u8 dtype, u8 rank,
//                    u16 reserved, u64 dims[rank], u64 offset, u64 bytes
//
// Plain C++17 with no LLVM/MLIR dependency: the runtime reads bundles with it.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_SUPPORT_WEIGHTSTORE_H
#define QWEN_SUPPORT_WEIGHTSTORE_H

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qwen::ws {

enum class DType : uint8_t {
  F32 = 1,
  F16 = 2,
  BF16 = 3,
  F64 = 4,
  I8 = 5,
  U8 = 6,
  I16 = 7,
  I32 = 8,
  I64 = 9,
  Bool = 10,
  I4 = 11, // two per byte, low nibble first (ONNX's packing)
  U4 = 12,
};

/// Bits per element, or 0 for a value that is not a DType.
unsigned dtypeBits(DType t);
/// Bytes that `numElements` elements occupy (sub-byte types packed).
uint64_t dtypeBytes(DType t, uint64_t numElements);
/// "f32", "i8", ...; "?" for a value that is not a DType.
const char *dtypeName(DType t);
bool isFloat(DType t);

inline constexpr char kMagic[8] = {'Q', 'W', 'E', 'N', 'W', 'T', 'S', '1'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kAlignment = 64;
inline constexpr uint32_t kMaxRank = 8;

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0; // from the start of the file
  uint64_t nbytes = 0;

  int64_t numElements() const;
};

/// Drops the whole pages inside [p, p + n) from the resident set (madvise
/// DONTNEED). Only for read-only FILE mappings, whose pages come back from
/// the file: on heap or anonymous memory it would zero them.
void releasePages(const void *p, size_t n);

/// Where an open store's bytes live.
enum class Residence {
  /// The file mapped read-only (pages come from the page cache on demand;
  /// shared between processes; release() drops them).
  Mapped,
  /// Read into anonymous memory aligned to 2 MiB and advised as transparent
  /// huge pages (MADV_HUGEPAGE), then made read-only: the runtime's decode
  /// streams every weight once per token, and 4 KiB file pages cost a TLB
  /// walk every 4 KiB (README, "Huge pages"). release() is a no-op.
  HugePages,
};

/// A store opened read-only. Every offset and size in the index is
/// validated on open, so data() never points outside the bytes.
class WeightStoreReader {
public:
  /// Returns null and sets `error` (which names the file) on failure.
  static std::unique_ptr<WeightStoreReader>
  open(const std::string &path, std::string &error,
       Residence residence = Residence::Mapped);
  ~WeightStoreReader();
  WeightStoreReader(const WeightStoreReader &) = delete;
  WeightStoreReader &operator=(const WeightStoreReader &) = delete;

  const std::string &path() const { return path_; }
  const std::vector<Entry> &entries() const { return entries_; }
  const Entry *find(std::string_view name) const;
  const void *data(const Entry &e) const {
    return static_cast<const char *>(base_) + e.offset;
  }
  uint64_t fileBytes() const { return size_; }
  /// Drops `e`'s pages from the process's resident set (they are read back
  /// from the file if touched again). For streaming passes over big models.
  void release(const Entry &e) const {
    if (residence_ == Residence::Mapped)
      releasePages(data(e), e.nbytes);
  }
  Residence residence() const { return residence_; }

private:
  WeightStoreReader() = default;
  bool parse(std::string &error);
  bool readIntoHugePages(int fd, std::string &error);

  std::string path_;
  void *base_ = nullptr;
  uint64_t size_ = 0;
  Residence residence_ = Residence::Mapped;
  void *mapBase_ = nullptr; // what munmap takes (base_ is aligned inside it)
  uint64_t mapBytes_ = 0;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> byName_;
};

/// Streams tensors into `<path>.tmp` and renames it to `path` on finish(), so
/// a failed or interrupted write never leaves a partial store behind.
class WeightStoreWriter {
public:
  static std::unique_ptr<WeightStoreWriter> create(const std::string &path,
                                                   std::string &error);
  ~WeightStoreWriter();
  WeightStoreWriter(const WeightStoreWriter &) = delete;
  WeightStoreWriter &operator=(const WeightStoreWriter &) = delete;

  /// Appends one tensor. `nbytes` must equal the shape's element count times
  /// the dtype's size; names must be unique and non-empty.
  bool add(const std::string &name, DType dtype,
           const std::vector<int64_t> &shape, const void *data, size_t nbytes,
           std::string &error);
  /// Adds `name` as another entry for the bytes of the already added entry
  /// `of` (same offset and size: a tensor stored once under two names, e.g.
  /// a tied embedding and LM head). dtype and shape must give its size.
  bool addAlias(const std::string &name, const std::string &of, DType dtype,
                const std::vector<int64_t> &shape, std::string &error);
  bool contains(const std::string &name) const {
    return names_.count(name) != 0;
  }
  /// Writes the index and header and renames the file into place.
  bool finish(std::string &error);

private:
  WeightStoreWriter() = default;
  bool writeAll(const void *data, size_t n);
  /// Whether an entry `name` of `nbytes` may be added (open, new name, the
  /// size of its dtype and shape); else sets `error`.
  bool checkNew(const std::string &name, DType dtype,
                const std::vector<int64_t> &shape, size_t nbytes,
                std::string &error) const;

  std::string path_, tmpPath_;
  std::FILE *file_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> names_;
  bool finished_ = false;
};

} // namespace qwen::ws

#endif // QWEN_SUPPORT_WEIGHTSTORE_H
