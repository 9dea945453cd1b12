//===- Sha256.cpp - SHA-256 (FIPS 180-4) with no dependencies -------------===//

#include "qwen/Support/Sha256.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <cpuid.h>
#include <immintrin.h>
#define QWEN_SHA_NI 1
#endif

namespace qwen {

namespace {

constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}


#ifdef QWEN_SHA_NI
// The x86 SHA extensions: four rounds per pair of sha256rnds2, the message
// schedule by sha256msg1/msg2. The state lives as (A,B,E,F) and (C,D,G,H).
__attribute__((target("sha,sse4.1,ssse3"))) void
blocksShaNi(uint32_t h[8], const uint8_t *p, size_t nblocks) {
  const __m128i byteSwap =
      _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
  __m128i abcd = _mm_loadu_si128(reinterpret_cast<const __m128i *>(h));
  __m128i efgh = _mm_loadu_si128(reinterpret_cast<const __m128i *>(h + 4));
  __m128i cdab = _mm_shuffle_epi32(abcd, 0xB1);
  efgh = _mm_shuffle_epi32(efgh, 0x1B);             // lanes h g f e
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);    // A B E F
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0); // C D G H
  for (; nblocks; --nblocks, p += 64) {
    const __m128i abefIn = abef, cdghIn = cdgh;
    __m128i w[4];
    for (int i = 0; i < 16; ++i) {
      __m128i wi;
      if (i < 4) {
        wi = _mm_shuffle_epi8(
            _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * i)),
            byteSwap);
      } else {
        // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at once.
        __m128i t = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
        t = _mm_add_epi32(t, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
        wi = _mm_sha256msg2_epu32(t, w[(i + 3) & 3]);
      }
      w[i & 3] = wi;
      __m128i m = _mm_add_epi32(
          wi, _mm_loadu_si128(reinterpret_cast<const __m128i *>(kRound + 4 * i)));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0E));
    }
    abef = _mm_add_epi32(abef, abefIn);
    cdgh = _mm_add_epi32(cdgh, cdghIn);
  }
  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  abcd = _mm_blend_epi16(feba, dchg, 0xF0); // lanes a b c d
  efgh = _mm_alignr_epi8(dchg, feba, 8);    // lanes e f g h
  _mm_storeu_si128(reinterpret_cast<__m128i *>(h), abcd);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(h + 4), efgh);
}

bool cpuHasShaNi() {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7)
    return false;
  __cpuid_count(1, 0, a, b, c, d);
  bool sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
  __cpuid_count(7, 0, a, b, c, d);
  return sse41 && ssse3 && ((b >> 29) & 1);
}
#endif

bool &accelerated() {
#ifdef QWEN_SHA_NI
  static bool on = cpuHasShaNi();
#else
  static bool on = false;
#endif
  return on;
}

} // namespace

namespace detail {
bool sha256SetAccelerated(bool enable) {
#ifdef QWEN_SHA_NI
  accelerated() = enable && cpuHasShaNi();
#else
  (void)enable;
#endif
  return accelerated();
}
} // namespace detail

namespace {
} // namespace

Sha256::Sha256()
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f,
         0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::blockGeneric(const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) |
           (uint32_t(p[4 * i + 2]) << 8) | uint32_t(p[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5],
           g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + S1 + ch + kRound[i] + w[i];
    uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void Sha256::blocks(const uint8_t *p, size_t n) {
#ifdef QWEN_SHA_NI
  if (accelerated()) {
    blocksShaNi(h_, p, n);
    return;
  }
#endif
  for (; n; --n, p += 64)
    blockGeneric(p);
}

void Sha256::update(const void *data, size_t n) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  totalBytes_ += n;
  if (bufLen_) {
    size_t take = 64 - bufLen_ < n ? 64 - bufLen_ : n;
    std::memcpy(buf_ + bufLen_, p, take);
    bufLen_ += take;
    p += take;
    n -= take;
    if (bufLen_ < 64)
      return;
    blocks(buf_, 1);
    bufLen_ = 0;
  }
  if (n >= 64) {
    blocks(p, n / 64);
    p += n / 64 * 64;
    n %= 64;
  }
  if (n) {
    std::memcpy(buf_, p, n);
    bufLen_ = n;
  }
}

void Sha256::finish(uint8_t digest[32]) {
  uint64_t bits = totalBytes_ * 8;
  uint8_t pad[72] = {0x80};
  // Pad to 56 mod 64, then the 64-bit big-endian bit length.
  size_t padLen = bufLen_ < 56 ? 56 - bufLen_ : 120 - bufLen_;
  for (int i = 0; i < 8; ++i)
    pad[padLen + i] = uint8_t(bits >> (56 - 8 * i));
  update(pad, padLen + 8);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j)
      digest[4 * i + j] = uint8_t(h_[i] >> (24 - 8 * j));
}

std::string Sha256::finishHex() {
  uint8_t d[32];
  finish(d);
  static const char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (int i = 0; i < 32; ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 15];
  }
  return s;
}

std::string sha256Hex(const void *data, size_t n) {
  Sha256 h;
  h.update(data, n);
  return h.finishHex();
}

bool sha256File(const std::string &path, std::string &hex, std::string &error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    error = path + ": cannot read: Is a directory";
    return false;
  }
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<uint8_t[]> buf(new (std::nothrow) uint8_t[kChunk]);
  if (!buf) {
    ::close(fd);
    error = path + ": out of memory";
    return false;
  }
  Sha256 h;
  for (;;) {
    ssize_t got = ::read(fd, buf.get(), kChunk);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      error = path + ": cannot read: " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (got == 0)
      break;
    h.update(buf.get(), size_t(got));
  }
  ::close(fd);
  hex = h.finishHex();
  return true;
}

} // namespace qwen
