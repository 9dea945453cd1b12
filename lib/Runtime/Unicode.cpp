//===- Unicode.cpp - the Unicode the tokenizer needs ----------------------===//

#include "qwen/Runtime/Unicode.h"

#include <algorithm>
#include <iterator>

namespace qwen::rt::unicode {

namespace {

struct CodeRange {
  uint32_t first, last;
};
struct CategoryRange {
  uint32_t first, last;
  uint8_t value;
};
struct Decomposition {
  uint32_t cp, first, second;
};
struct Composition {
  uint32_t first, second, composite;
};

#include "UnicodeTables.inc"

template <typename Range, size_t N>
const Range *findRange(const Range (&table)[N], char32_t cp) {
  const Range *it = std::upper_bound(
      std::begin(table), std::end(table), static_cast<uint32_t>(cp),
      [](uint32_t c, const Range &r) { return c < r.first; });
  if (it == std::begin(table))
    return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

// Hangul syllables (Unicode ch. 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161,
                   kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28,
                   kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

const Decomposition *findDecomposition(char32_t cp) {
  const Decomposition *it = std::lower_bound(
      std::begin(kDecomposition), std::end(kDecomposition),
      static_cast<uint32_t>(cp),
      [](const Decomposition &d, uint32_t c) { return d.cp < c; });
  return it != std::end(kDecomposition) && it->cp == cp ? it : nullptr;
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase &&
      b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 &&
      b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Composition *it = std::lower_bound(
      std::begin(kComposition), std::end(kComposition), std::make_pair(a, b),
      [](const Composition &c, const std::pair<char32_t, char32_t> &k) {
        return c.first != k.first ? c.first < k.first : c.second < k.second;
      });
  if (it != std::end(kComposition) && it->first == a && it->second == b)
    return it->composite;
  return 0;
}

void decompose(char32_t cp, std::u32string &out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    if (s % kTCount)
      out += kTBase + s % kTCount;
    return;
  }
  if (const Decomposition *d = findDecomposition(cp)) {
    decompose(d->first, out);
    if (d->second)
      decompose(d->second, out);
    return;
  }
  out += cp;
}

// Code points NFC may change or that may change their neighbours (the
// complement of NFC_Quick_Check=Yes): a non-zero combining class, a
// decomposition that does not compose back (Full_Composition_Exclusion), or
// the second half of a composition. A text without any is its own NFC.
class NfcActive {
public:
  NfcActive() : bits_((0x110000 + 63) / 64, 0) {
    for (const Composition &c : kComposition)
      set(c.composite);
    std::vector<uint64_t> primary = bits_;
    std::fill(bits_.begin(), bits_.end(), 0);
    for (const CategoryRange &r : kCombiningClass)
      for (uint32_t c = r.first; c <= r.last; ++c)
        set(c);
    for (const Decomposition &d : kDecomposition)
      if (!(primary[d.cp >> 6] >> (d.cp & 63) & 1))
        set(d.cp);
    for (const Composition &c : kComposition)
      set(c.second);
    for (char32_t c = kVBase; c < kVBase + kVCount; ++c)
      set(c);
    for (char32_t c = kTBase + 1; c < kTBase + kTCount; ++c)
      set(c);
  }
  bool test(char32_t c) const {
    return c < 0x110000 && (bits_[c >> 6] >> (c & 63) & 1);
  }

private:
  void set(uint32_t c) { bits_[c >> 6] |= uint64_t(1) << (c & 63); }
  std::vector<uint64_t> bits_;
};

const NfcActive &nfcActive() {
  static const NfcActive active;
  return active;
}

} // namespace

void appendUtf8(std::string &out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

// Decodes one code point at `i`; returns kReplacement for a maximal invalid
// subsequence. Advances `i` past what it consumed (at least one byte).
char32_t decodeOne(std::string_view s, size_t &i, bool &valid) {
  unsigned char b0 = static_cast<unsigned char>(s[i]);
  valid = true;
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  unsigned need;
  unsigned char lo = 0x80, hi = 0xBF;
  char32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0)
      lo = 0xA0;
    else if (b0 == 0xED)
      hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0)
      lo = 0x90;
    else if (b0 == 0xF4)
      hi = 0x8F;
  } else {
    ++i;
    valid = false;
    return kReplacement;
  }
  size_t j = i + 1;
  for (unsigned k = 0; k < need; ++k, ++j) {
    if (j >= s.size()) {
      i = j;
      valid = false;
      return kReplacement;
    }
    unsigned char b = static_cast<unsigned char>(s[j]);
    if (b < lo || b > hi) {
      i = j;
      valid = false;
      return kReplacement;
    }
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
  }
  i = j;
  return cp;
}

} // namespace

std::u32string decodeUtf8(std::string_view bytes,
                          std::vector<uint32_t> *offsets) {
  std::u32string out;
  out.reserve(bytes.size());
  if (offsets) {
    offsets->clear();
    offsets->reserve(bytes.size() + 1);
  }
  size_t i = 0;
  bool valid;
  while (i < bytes.size()) {
    if (offsets)
      offsets->push_back(static_cast<uint32_t>(i));
    out += decodeOne(bytes, i, valid);
  }
  if (offsets)
    offsets->push_back(static_cast<uint32_t>(bytes.size()));
  return out;
}

bool isValidUtf8(std::string_view bytes) {
  size_t i = 0;
  bool valid = true;
  while (i < bytes.size() && valid)
    decodeOne(bytes, i, valid);
  return valid;
}

std::string toValidUtf8(std::string_view bytes) {
  if (isValidUtf8(bytes))
    return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 8);
  size_t i = 0;
  bool valid;
  while (i < bytes.size()) {
    size_t start = i;
    char32_t cp = decodeOne(bytes, i, valid);
    if (valid)
      out.append(bytes.substr(start, i - start));
    else
      appendUtf8(out, cp);
  }
  return out;
}

unsigned charClass(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))
      return kLetter | kWord;
    if (cp >= '0' && cp <= '9')
      return kNumber | kWord;
    if (cp == '_')
      return kWord;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
      return kWhiteSpace;
    return 0;
  }
  // The table's class bits are kLetter, kNumber and kWord.
  unsigned c = 0;
  if (const CategoryRange *r = findRange(kCategoryRanges, cp))
    c = r->value;
  if (findRange(kWhiteSpaceRanges, cp))
    c |= kWhiteSpace;
  return c;
}

uint8_t combiningClass(char32_t cp) {
  if (cp < 0x300)
    return 0;
  const CategoryRange *r = findRange(kCombiningClass, cp);
  return r ? r->value : 0;
}

std::u32string nfc(const std::u32string &text) {
  const NfcActive &active = nfcActive();
  if (std::none_of(text.begin(), text.end(),
                   [&](char32_t c) { return active.test(c); }))
    return text;

  // Canonical decomposition.
  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t c : text)
    decompose(c, d);

  // Canonical ordering: stable sort every run of non-starters by class.
  for (size_t i = 0; i < d.size();) {
    if (combiningClass(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combiningClass(d[j]) != 0)
      ++j;
    if (j - i > 1) {
      // Stable by class: sort (class, position) keys.
      std::vector<uint64_t> keys;
      keys.reserve(j - i);
      for (size_t k = i; k < j; ++k)
        keys.push_back(uint64_t(combiningClass(d[k])) << 53 |
                       uint64_t(k - i) << 21 | d[k]);
      std::sort(keys.begin(), keys.end());
      for (size_t k = i; k < j; ++k)
        d[k] = static_cast<char32_t>(keys[k - i] & 0x1FFFFF);
    }
    i = j;
  }

  // Canonical composition.
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int lastClass = -1; // of the last character kept after the starter
  for (char32_t c : d) {
    int cls = combiningClass(c);
    if (starter != std::u32string::npos &&
        (lastClass == -1 || (lastClass != 0 && lastClass < cls))) {
      if (char32_t comp = compose(out[starter], c)) {
        out[starter] = comp;
        continue;
      }
    }
    if (cls == 0) {
      starter = out.size();
      lastClass = -1;
    } else {
      lastClass = cls;
    }
    out += c;
  }
  return out;
}

std::string nfc(std::string_view text) {
  const NfcActive &active = nfcActive();
  // Fast path: nothing NFC acts on (every byte below 0xCC is below U+0300).
  bool anyActive = false;
  for (size_t i = 0; i < text.size() && !anyActive; ++i)
    anyActive = static_cast<unsigned char>(text[i]) >= 0xCC;
  if (!anyActive)
    return std::string(text);
  std::u32string cps = decodeUtf8(text);
  if (std::none_of(cps.begin(), cps.end(),
                   [&](char32_t c) { return active.test(c); }))
    return std::string(text);
  std::u32string n = nfc(cps);
  std::string out;
  out.reserve(text.size());
  for (char32_t c : n)
    appendUtf8(out, c);
  return out;
}

const char *categoryVersion() { return QWEN_UNICODE_CATEGORY_VERSION; }
const char *nfcVersion() { return QWEN_UNICODE_NFC_VERSION; }

} // namespace qwen::rt::unicode
