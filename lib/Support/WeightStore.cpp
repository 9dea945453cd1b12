//===- WeightStore.cpp - named tensors in one mmappable file --------------===//

#include "qwen/Support/WeightStore.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qwen::ws {

unsigned dtypeBits(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 32;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 16;
  case DType::F64:
  case DType::I64:
    return 64;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 8;
  case DType::I4:
  case DType::U4:
    return 4;
  }
  return 0;
}

uint64_t dtypeBytes(DType t, uint64_t numElements) {
  return (numElements * dtypeBits(t) + 7) / 8;
}

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::F64: return "f64";
  case DType::I8: return "i8";
  case DType::U8: return "u8";
  case DType::I16: return "i16";
  case DType::I32: return "i32";
  case DType::I64: return "i64";
  case DType::Bool: return "bool";
  case DType::I4: return "i4";
  case DType::U4: return "u4";
  }
  return "?";
}

bool isFloat(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 ||
         t == DType::F64;
}

int64_t Entry::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

namespace {
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t alignment;
  uint64_t count;
  uint64_t indexOffset;
  uint64_t indexBytes;
  uint64_t fileBytes;
  char pad[16];
};
static_assert(sizeof(Header) == 64, "header is 64 bytes");

/// Bounds-checked little cursor over the index bytes.
struct Cursor {
  const uint8_t *p, *end;
  template <typename T> bool read(T &v) {
    if (static_cast<size_t>(end - p) < sizeof(T))
      return false;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return true;
  }
  bool readBytes(std::string &s, size_t n) {
    if (static_cast<size_t>(end - p) < n)
      return false;
    s.assign(reinterpret_cast<const char *>(p), n);
    p += n;
    return true;
  }
};

/// Element count of `shape`, or -1 if a dim is negative or the product
/// overflows.
int64_t checkedElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d != 0 && n > INT64_MAX / d))
      return -1;
    n *= d;
  }
  return n;
}
} // namespace

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

std::unique_ptr<WeightStoreReader>
WeightStoreReader::open(const std::string &path, std::string &error,
                        Residence residence) {
  std::unique_ptr<WeightStoreReader> r(new WeightStoreReader());
  r->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open weight store '" + path + "': " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "weight store '" + path + "' is not a regular file";
    ::close(fd);
    return nullptr;
  }
  r->size_ = static_cast<uint64_t>(st.st_size);
  if (r->size_ < sizeof(Header)) {
    error = "weight store '" + path + "' is truncated (" +
            std::to_string(r->size_) + " bytes, smaller than its header)";
    ::close(fd);
    return nullptr;
  }
  if (residence == Residence::HugePages) {
    bool ok = r->readIntoHugePages(fd, error);
    ::close(fd);
    if (!ok || !r->parse(error))
      return nullptr;
    return r;
  }
  void *base = ::mmap(nullptr, r->size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    error = "cannot map weight store '" + path + "': " + std::strerror(errno);
    return nullptr;
  }
  r->base_ = r->mapBase_ = base;
  r->mapBytes_ = r->size_;
  if (!r->parse(error))
    return nullptr;
  return r;
}

bool WeightStoreReader::readIntoHugePages(int fd, std::string &error) {
  constexpr uint64_t kHuge = uint64_t(2) << 20;
  residence_ = Residence::HugePages;
  uint64_t bytes = (size_ + kHuge - 1) / kHuge * kHuge;
  // One huge page of slack to align the start.
  void *m = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    error = "cannot allocate " + std::to_string(size_) +
            " bytes for weight store '" + path_ + "': " + std::strerror(errno);
    return false;
  }
  mapBase_ = m;
  mapBytes_ = bytes + kHuge;
  char *base = reinterpret_cast<char *>(
      (reinterpret_cast<uintptr_t>(m) + kHuge - 1) & ~(kHuge - 1));
  base_ = base;
  // Advice only: without THP (or with it off) the pages are 4 KiB.
  (void)::madvise(base, bytes, MADV_HUGEPAGE);
  // Chunks of 64 MiB. The file's pages stay in the page cache (reclaimable;
  // they make the next open fast).
  constexpr uint64_t kChunk = uint64_t(64) << 20;
  for (uint64_t off = 0; off < size_;) {
    ssize_t n = ::pread(fd, base + off, size_t(std::min(kChunk, size_ - off)),
                        off_t(off));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      error = "cannot read weight store '" + path_ + "' at byte " +
              std::to_string(off) + ": " +
              (n < 0 ? std::strerror(errno) : "unexpected end of file");
      return false;
    }
    off += uint64_t(n);
  }
  if (::mprotect(base, bytes, PROT_READ) != 0) {
    error = "cannot protect weight store '" + path_ + "': " +
            std::strerror(errno);
    return false;
  }
  return true;
}

WeightStoreReader::~WeightStoreReader() {
  if (mapBase_)
    ::munmap(mapBase_, mapBytes_);
}

bool WeightStoreReader::parse(std::string &error) {
  auto fail = [&](const std::string &what) {
    error = "weight store '" + path_ + "': " + what;
    return false;
  };
  Header h;
  std::memcpy(&h, base_, sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0)
    return fail("not a weight store (bad magic)");
  if (h.version != kVersion)
    return fail("unsupported version " + std::to_string(h.version));
  if (h.fileBytes != size_)
    return fail("truncated or padded: header says " +
                std::to_string(h.fileBytes) + " bytes, file has " +
                std::to_string(size_));
  if (h.indexOffset < sizeof(Header) || h.indexOffset > size_ ||
      h.indexBytes > size_ - h.indexOffset)
    return fail("index lies outside the file");

  const uint8_t *bytes = static_cast<const uint8_t *>(base_);
  Cursor c{bytes + h.indexOffset, bytes + h.indexOffset + h.indexBytes};
  entries_.reserve(h.count < 1u << 20 ? h.count : 0);
  for (uint64_t i = 0; i < h.count; ++i) {
    Entry e;
    uint32_t nameLen;
    uint8_t dtype, rank;
    uint16_t reserved;
    if (!c.read(nameLen) || nameLen == 0 || !c.readBytes(e.name, nameLen) ||
        !c.read(dtype) || !c.read(rank) || !c.read(reserved))
      return fail("index entry " + std::to_string(i) + " is corrupt");
    e.dtype = static_cast<DType>(dtype);
    if (dtypeBits(e.dtype) == 0)
      return fail("entry '" + e.name + "' has unknown dtype " +
                  std::to_string(dtype));
    if (rank > kMaxRank)
      return fail("entry '" + e.name + "' has rank " + std::to_string(rank));
    e.shape.resize(rank);
    for (auto &d : e.shape)
      if (!c.read(d))
        return fail("index entry '" + e.name + "' is corrupt");
    if (!c.read(e.offset) || !c.read(e.nbytes))
      return fail("index entry '" + e.name + "' is corrupt");
    int64_t n = checkedElements(e.shape);
    if (n < 0 || static_cast<uint64_t>(n) > UINT64_MAX / 64 ||
        dtypeBytes(e.dtype, static_cast<uint64_t>(n)) != e.nbytes)
      return fail("entry '" + e.name + "' size does not match its shape");
    if (e.offset < sizeof(Header) || e.offset > h.indexOffset ||
        e.nbytes > h.indexOffset - e.offset)
      return fail("entry '" + e.name + "' lies outside the data region");
    if (!byName_.emplace(e.name, entries_.size()).second)
      return fail("duplicate entry '" + e.name + "'");
    entries_.push_back(std::move(e));
  }
  if (c.p != c.end)
    return fail("trailing bytes after the index");
  return true;
}

const Entry *WeightStoreReader::find(std::string_view name) const {
  auto it = byName_.find(std::string(name));
  return it == byName_.end() ? nullptr : &entries_[it->second];
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

std::unique_ptr<WeightStoreWriter>
WeightStoreWriter::create(const std::string &path, std::string &error) {
  std::unique_ptr<WeightStoreWriter> w(new WeightStoreWriter());
  w->path_ = path;
  w->tmpPath_ = path + ".tmp";
  w->file_ = std::fopen(w->tmpPath_.c_str(), "wb");
  if (!w->file_) {
    error = "cannot create weight store '" + path + "': " +
            std::strerror(errno);
    return nullptr;
  }
  Header h{};
  if (!w->writeAll(&h, sizeof(h))) {
    error = "cannot write weight store '" + path + "'";
    return nullptr;
  }
  return w;
}

WeightStoreWriter::~WeightStoreWriter() {
  if (file_)
    std::fclose(file_);
  if (!finished_)
    std::remove(tmpPath_.c_str());
}

bool WeightStoreWriter::writeAll(const void *data, size_t n) {
  if (n && std::fwrite(data, 1, n, file_) != n)
    return false;
  pos_ += n;
  return true;
}

bool WeightStoreWriter::checkNew(const std::string &name, DType dtype,
                                 const std::vector<int64_t> &shape,
                                 size_t nbytes, std::string &error) const {
  if (finished_ || !file_) {
    error = "weight store '" + path_ + "' is already closed";
    return false;
  }
  if (name.empty() || names_.count(name)) {
    error = "weight store '" + path_ + "': entry name '" + name +
            "' is empty or already used";
    return false;
  }
  int64_t n = checkedElements(shape);
  if (dtypeBits(dtype) == 0 || shape.size() > kMaxRank || n < 0 ||
      static_cast<uint64_t>(n) > UINT64_MAX / 64 ||
      dtypeBytes(dtype, static_cast<uint64_t>(n)) != nbytes) {
    error = "weight store '" + path_ + "': entry '" + name +
            "' has a byte size that does not match its shape and dtype";
    return false;
  }
  return true;
}

bool WeightStoreWriter::add(const std::string &name, DType dtype,
                            const std::vector<int64_t> &shape,
                            const void *data, size_t nbytes,
                            std::string &error) {
  if (!checkNew(name, dtype, shape, nbytes, error))
    return false;
  static const char zeros[kAlignment] = {};
  uint64_t pad = (kAlignment - pos_ % kAlignment) % kAlignment;
  if (!writeAll(zeros, pad)) {
    error = "write error on weight store '" + path_ + "'";
    return false;
  }
  Entry e{name, dtype, shape, pos_, nbytes};
  if (!writeAll(data, nbytes)) {
    error = "write error on weight store '" + path_ + "'";
    return false;
  }
  names_.emplace(name, entries_.size());
  entries_.push_back(std::move(e));
  return true;
}

bool WeightStoreWriter::addAlias(const std::string &name, const std::string &of,
                                 DType dtype, const std::vector<int64_t> &shape,
                                 std::string &error) {
  auto it = names_.find(of);
  if (it == names_.end()) {
    error = "weight store '" + path_ + "': alias '" + name +
            "' of missing entry '" + of + "'";
    return false;
  }
  Entry e = entries_[it->second];
  if (!checkNew(name, dtype, shape, e.nbytes, error))
    return false;
  e.name = name;
  e.dtype = dtype;
  e.shape = shape;
  names_.emplace(name, entries_.size());
  entries_.push_back(std::move(e));
  return true;
}

bool WeightStoreWriter::finish(std::string &error) {
  auto fail = [&] {
    error = "write error on weight store '" + path_ + "'";
    return false;
  };
  if (finished_ || !file_)
    return fail();
  uint64_t indexOffset = pos_;
  std::string index;
  auto put = [&](const void *p, size_t n) {
    index.append(static_cast<const char *>(p), n);
  };
  for (const Entry &e : entries_) {
    uint32_t nameLen = static_cast<uint32_t>(e.name.size());
    uint8_t dtype = static_cast<uint8_t>(e.dtype);
    uint8_t rank = static_cast<uint8_t>(e.shape.size());
    uint16_t reserved = 0;
    put(&nameLen, 4);
    put(e.name.data(), e.name.size());
    put(&dtype, 1);
    put(&rank, 1);
    put(&reserved, 2);
    for (int64_t d : e.shape)
      put(&d, 8);
    put(&e.offset, 8);
    put(&e.nbytes, 8);
  }
  if (!writeAll(index.data(), index.size()))
    return fail();
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.alignment = kAlignment;
  h.count = entries_.size();
  h.indexOffset = indexOffset;
  h.indexBytes = index.size();
  h.fileBytes = pos_;
  if (std::fseek(file_, 0, SEEK_SET) != 0 ||
      std::fwrite(&h, 1, sizeof(h), file_) != sizeof(h))
    return fail();
  int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0 || std::rename(tmpPath_.c_str(), path_.c_str()) != 0)
    return fail();
  finished_ = true;
  return true;
}

void releasePages(const void *p, size_t n) {
  uintptr_t page = (uintptr_t)::sysconf(_SC_PAGESIZE);
  uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
  uintptr_t hi = ((uintptr_t)p + n) & ~(page - 1);
  if (hi > lo)
    ::madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

} // namespace qwen::ws
