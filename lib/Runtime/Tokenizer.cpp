//===- Tokenizer.cpp - byte-level BPE from tokenizer.json -----------------===//
//
// Mirrors the encode path of Hugging Face `tokenizers` (tokenizer/mod.rs,
// added_vocabulary.rs, pre_tokenizers/{split,byte_level}.rs, models/bpe):
//
//   1. split the text on the added tokens whose `normalized` is false;
//   2. normalize every other piece, then split it on the normalized ones;
//   3. pre-tokenize every remaining piece (regex splits, byte-level mapping);
//   4. run BPE on each pre-token.
//
//===----------------------------------------------------------------------===//

#include "qwen/Runtime/Tokenizer.h"

#include "qwen/Runtime/Json.h"
#include "qwen/Runtime/Unicode.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <queue>
#include <sys/stat.h>
#include <unordered_map>
#include <unordered_set>

namespace qwen::rt {

using unicode::charClass;
using unicode::kLetter;
using unicode::kNumber;
using unicode::kWhiteSpace;

namespace {

//===----------------------------------------------------------------------===//
// The pre-tokenizer regexes, as scanners
//===----------------------------------------------------------------------===//

/// The Split regexes we recognize (compared as strings with the file's).
enum class SplitRegex { Qwen2, Gpt2 };

// Qwen2 / Qwen2.5 / Qwen3.
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2: what ByteLevel(use_regex=true) splits with.
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// A decoded piece of text: code points and their classes.
struct Chars {
  std::u32string cp;
  std::vector<unsigned> cls;
  std::vector<uint32_t> offsets; // byte offset of each code point, + end

  explicit Chars(std::string_view utf8) {
    cp = unicode::decodeUtf8(utf8, &offsets);
    cls.resize(cp.size());
    for (size_t i = 0; i < cp.size(); ++i)
      cls[i] = charClass(cp[i]);
  }
  size_t size() const { return cp.size(); }
  bool has(size_t i, unsigned c) const { return i < cp.size() && (cls[i] & c); }
  // [^\s\p{L}\p{N}]
  bool other(size_t i) const {
    return i < cp.size() && !(cls[i] & (kLetter | kNumber | kWhiteSpace));
  }
  bool newline(size_t i) const {
    return i < cp.size() && (cp[i] == '\r' || cp[i] == '\n');
  }
  size_t run(size_t i, unsigned c) const {
    while (has(i, c))
      ++i;
    return i;
  }
  size_t runOther(size_t i) const {
    while (other(i))
      ++i;
    return i;
  }
};

/// `\s+(?!\S)|\s+` at i (a white-space character): the run, less its last
/// character when that is followed by a non-space and leaves at least one.
size_t matchSpaces(const Chars &c, size_t i) {
  size_t j = c.run(i, kWhiteSpace);
  if (j == c.size() || j - 1 == i)
    return j;
  return j - 1;
}

/// Case-insensitive ASCII letter of the contraction alternatives; Oniguruma's
/// case folding also maps U+017F (long s) to 's'.
char32_t foldContraction(char32_t c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A' + 'a';
  if (c == 0x17F)
    return 's';
  return c;
}

/// Where the match of the Qwen2 regex starting at i ends (i if none).
size_t matchQwen2(const Chars &c, size_t i) {
  const size_t n = c.size();
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c.cp[i] == '\'' && i + 1 < n) {
    char32_t a = foldContraction(c.cp[i + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
      return i + 2;
    if (i + 2 < n) {
      char32_t b = foldContraction(c.cp[i + 2]);
      if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l'))
        return i + 3;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.has(i, kLetter))
    return c.run(i, kLetter);
  if (!c.newline(i) && !c.has(i, kNumber) && c.has(i + 1, kLetter))
    return c.run(i + 1, kLetter);
  // \p{N}
  if (c.has(i, kNumber))
    return i + 1;
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  size_t k = c.cp[i] == ' ' && c.other(i + 1) ? i + 1 : i;
  if (c.other(k)) {
    size_t j = c.runOther(k);
    while (c.newline(j))
      ++j;
    return j;
  }
  if (!c.has(i, kWhiteSpace))
    return i;
  // \s*[\r\n]+ : backtracks to the last newline of the white-space run.
  size_t j = c.run(i, kWhiteSpace);
  for (size_t p = j; p-- > i;)
    if (c.newline(p))
      return p + 1;
  // \s+(?!\S)|\s+
  return matchSpaces(c, i);
}

/// Where the match of the GPT-2 regex starting at i ends (i if none).
size_t matchGpt2(const Chars &c, size_t i) {
  const size_t n = c.size();
  // 's|'t|'re|'ve|'m|'ll|'d
  if (c.cp[i] == '\'' && i + 1 < n) {
    char32_t a = c.cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
      return i + 2;
    if (i + 2 < n) {
      char32_t b = c.cp[i + 2];
      if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l'))
        return i + 3;
    }
  }
  bool space = c.cp[i] == ' ';
  // ' '?\p{L}+ | ' '?\p{N}+
  for (unsigned cls : {unsigned(kLetter), unsigned(kNumber)}) {
    size_t k = space && c.has(i + 1, cls) ? i + 1 : i;
    if (c.has(k, cls))
      return c.run(k, cls);
  }
  // ' '?[^\s\p{L}\p{N}]+
  size_t k = space && c.other(i + 1) ? i + 1 : i;
  if (c.other(k))
    return c.runOther(k);
  if (!c.has(i, kWhiteSpace))
    return i;
  return matchSpaces(c, i);
}

/// Split with behavior Isolated: every match and every gap between matches
/// is a piece. Appends the pieces of `text` to `out`.
void splitIsolated(std::string_view text, SplitRegex regex,
                   std::vector<std::string> &out) {
  Chars c(text);
  size_t gap = 0, i = 0;
  auto emit = [&](size_t b, size_t e) {
    out.emplace_back(text.substr(c.offsets[b], c.offsets[e] - c.offsets[b]));
  };
  while (i < c.size()) {
    size_t e = regex == SplitRegex::Qwen2 ? matchQwen2(c, i) : matchGpt2(c, i);
    if (e == i) {
      ++i;
      continue;
    }
    if (gap < i)
      emit(gap, i);
    emit(i, e);
    i = gap = e;
  }
  if (gap < c.size())
    emit(gap, c.size());
}

//===----------------------------------------------------------------------===//
// Byte-level mapping (GPT-2's bytes_to_unicode)
//===----------------------------------------------------------------------===//

struct ByteLevel {
  std::string utf8[256]; // byte -> its character, UTF-8
  int16_t byteOf[0x144]; // character -> byte, or -1

  ByteLevel() {
    std::fill(std::begin(byteOf), std::end(byteOf), -1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                       (b >= 0xAE && b <= 0xFF);
      char32_t ch = printable ? char32_t(b) : next++;
      unicode::appendUtf8(utf8[b], ch);
      byteOf[ch] = static_cast<int16_t>(b);
    }
  }

  /// The bytes a byte-level token stands for; false if some character of it
  /// is not a byte-level character.
  bool toBytes(std::string_view token, std::string &out) const {
    std::u32string cps = unicode::decodeUtf8(token);
    std::string bytes;
    bytes.reserve(cps.size());
    for (char32_t ch : cps) {
      if (ch >= 0x144 || byteOf[ch] < 0)
        return false;
      bytes += static_cast<char>(byteOf[ch]);
    }
    out += bytes;
    return true;
  }
};

const ByteLevel &byteLevel() {
  static const ByteLevel map;
  return map;
}

//===----------------------------------------------------------------------===//
// Added tokens
//===----------------------------------------------------------------------===//

/// One of the two sets the text is split with; patterns are matched
/// leftmost-longest as tokenizers' Aho-Corasick automaton does.
struct MatchSet {
  struct Entry {
    std::string text;
    size_t token; // index into Impl::added
  };
  std::vector<Entry> patterns;
  bool firstByte[256] = {};

  void add(std::string text, size_t token) {
    if (text.empty())
      return;
    firstByte[static_cast<unsigned char>(text[0])] = true;
    patterns.push_back({std::move(text), token});
  }
  bool empty() const { return patterns.empty(); }

  /// The longest pattern at `pos`, or null.
  const Entry *longestAt(std::string_view s, size_t pos) const {
    if (!firstByte[static_cast<unsigned char>(s[pos])])
      return nullptr;
    const Entry *best = nullptr;
    for (const Entry &p : patterns)
      if (p.text.size() <= s.size() - pos &&
          s.compare(pos, p.text.size(), p.text) == 0 &&
          (!best || p.text.size() > best->text.size()))
        best = &p;
    return best;
  }
};

} // namespace

//===----------------------------------------------------------------------===//
// Impl
//===----------------------------------------------------------------------===//

struct Tokenizer::Impl {
  std::string name;

  // Model (BPE).
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<const std::string *> idToModelToken;
  struct Merge {
    int32_t rank, newId;
  };
  std::unordered_map<uint64_t, Merge> merges;
  int32_t byteToId[256];
  int32_t unkId = -1;
  bool fuseUnk = false;
  bool ignoreMerges = false;

  // Added tokens.
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> addedById;
  std::unordered_map<std::string, size_t> addedByContent;
  std::unordered_set<std::string> specialContents;
  MatchSet rawSet, normalizedSet;

  // Normalizer and pre-tokenizer.
  bool nfc = false;
  struct Step {
    enum Kind { Split, ByteLevel } kind;
    SplitRegex regex = SplitRegex::Qwen2; // Split
    bool addPrefixSpace = false;          // ByteLevel
    bool useRegex = false;                // ByteLevel
  };
  std::vector<Step> steps;

  int32_t vocabSize = 0;

  bool load(const json::Value &root, std::string &error);
  bool loadModel(const json::Value &model, std::string &error);
  bool loadAddedTokens(const json::Value *list, std::string &error);
  bool loadNormalizer(const json::Value &n, std::string &error);
  bool loadPreTokenizer(const json::Value &p, std::string &error, int depth);
  bool fail(std::string &error, const std::string &msg) const {
    error = name + ": " + msg;
    return false;
  }

  std::string normalize(std::string_view s) const {
    return nfc ? unicode::nfc(s) : std::string(s);
  }
  void preTokenize(std::string_view s, std::vector<std::string> &out) const;
  void bpe(std::string_view bytes, std::vector<int32_t> &ids) const;
  template <typename Fn>
  void splitAdded(std::string_view s, const MatchSet &set, Fn &&fn) const;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

namespace {

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out + "'";
}

/// The "type" of a component, or "" if it has none.
std::string typeOf(const json::Value &v) {
  const json::Value *t = v.find("type");
  return t && t->isString() ? t->str() : std::string();
}

/// A boolean member: `def` if absent or null; false and an error if it is
/// something else.
bool getBool(const json::Value &obj, const char *key, bool def, bool &out,
             std::string &what) {
  const json::Value *v = obj.find(key);
  if (!v || v->isNull()) {
    out = def;
    return true;
  }
  if (!v->isBool()) {
    what = std::string("'") + key + "' must be a boolean, not " + v->kindName();
    return false;
  }
  out = v->asBool();
  return true;
}

bool toId(const json::Value &v, int32_t &out) {
  int64_t i;
  if (!v.asInt64(i) || i < 0 || i > INT32_MAX - 1)
    return false;
  out = static_cast<int32_t>(i);
  return true;
}

} // namespace

bool Tokenizer::Impl::load(const json::Value &root, std::string &error) {
  if (!root.isObject())
    return fail(error, std::string("expected a JSON object at the top, not ") +
                           root.kindName());
  const json::Value *model = root.find("model");
  if (!model || !model->isObject())
    return fail(error, "no 'model' object: not a tokenizer.json");
  if (!loadModel(*model, error))
    return false;

  if (const json::Value *n = root.find("normalizer"); n && !n->isNull())
    if (!loadNormalizer(*n, error))
      return false;

  const json::Value *pre = root.find("pre_tokenizer");
  if (!pre || pre->isNull())
    return fail(error, "unsupported pre_tokenizer null: a byte-level BPE "
                       "model needs a ByteLevel pre-tokenizer");
  if (!loadPreTokenizer(*pre, error, 0))
    return false;
  // Exactly one ByteLevel, last: the steps before it see text, the model
  // sees its byte-level characters.
  size_t byteLevels =
      std::count_if(steps.begin(), steps.end(),
                    [](const Step &s) { return s.kind == Step::ByteLevel; });
  if (byteLevels != 1 || steps.back().kind != Step::ByteLevel)
    return fail(error, "unsupported pre_tokenizer: it must end with one "
                       "ByteLevel step (byte-level BPE)");

  if (const json::Value *post = root.find("post_processor");
      post && !post->isNull()) {
    std::string t = typeOf(*post);
    if (t != "ByteLevel")
      return fail(error, "unsupported post_processor type " + quoted(t) +
                             " (supported: ByteLevel or null, which add no "
                             "tokens)");
  }

  const json::Value *dec = root.find("decoder");
  std::string dt = dec && !dec->isNull() ? typeOf(*dec) : "null";
  if (dt != "ByteLevel")
    return fail(error, "unsupported decoder type " + quoted(dt) +
                           " (supported: ByteLevel)");

  if (!loadAddedTokens(root.find("added_tokens"), error))
    return false;

  int32_t maxId = -1;
  for (size_t i = 0; i < idToModelToken.size(); ++i)
    if (idToModelToken[i])
      maxId = static_cast<int32_t>(i);
  for (const AddedToken &t : added)
    maxId = std::max(maxId, t.id);
  vocabSize = maxId + 1;
  return true;
}

bool Tokenizer::Impl::loadModel(const json::Value &model, std::string &error) {
  std::string t = typeOf(model);
  if (!t.empty() && t != "BPE")
    return fail(error,
                "unsupported model type " + quoted(t) + " (supported: BPE)");
  const json::Value *v = model.find("vocab");
  if (!v || !v->isObject())
    return fail(error, "model: 'vocab' must be an object of token: id");
  const json::Value *m = model.find("merges");
  if (!m || !m->isArray())
    return fail(error, "model: 'merges' must be an array");

  std::string what;
  bool byteFallback = false;
  if (!getBool(model, "byte_fallback", false, byteFallback, what) ||
      !getBool(model, "fuse_unk", false, fuseUnk, what) ||
      !getBool(model, "ignore_merges", false, ignoreMerges, what))
    return fail(error, "model: " + what);
  if (byteFallback)
    return fail(error, "unsupported model option byte_fallback = true");
  if (const json::Value *d = model.find("dropout");
      d && !d->isNull() && !(d->isNumber() && d->asDouble() == 0.0))
    return fail(error, "unsupported model option dropout = " +
                           (d->isNumber() ? d->str() : d->kindName()));
  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json::Value *s = model.find(key);
        s && !s->isNull() && !(s->isString() && s->str().empty()))
      return fail(error,
                  std::string("unsupported model option ") + key + " = " +
                      (s->isString() ? quoted(s->str()) : s->kindName()));

  vocab.reserve(v->members().size());
  for (const auto &[token, idv] : v->members()) {
    int32_t id;
    if (!toId(idv, id))
      return fail(error,
                  "model: vocab entry " + quoted(token) + " has no valid id");
    vocab[token] = id;
  }
  for (const auto &[token, id] : vocab) {
    if (static_cast<size_t>(id) >= idToModelToken.size())
      idToModelToken.resize(static_cast<size_t>(id) + 1, nullptr);
    idToModelToken[id] = &token;
  }

  if (const json::Value *u = model.find("unk_token"); u && !u->isNull()) {
    if (!u->isString())
      return fail(error, "model: 'unk_token' must be a string");
    auto it = vocab.find(u->str());
    if (it == vocab.end())
      return fail(error, "model: unk_token " + quoted(u->str()) +
                             " is not in the vocabulary");
    unkId = it->second;
  }

  const ByteLevel &bl = byteLevel();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(bl.utf8[b]);
    byteToId[b] = it == vocab.end() ? -1 : it->second;
  }

  merges.reserve(m->items().size());
  int32_t rank = 0;
  for (size_t i = 0; i < m->items().size(); ++i) {
    const json::Value &e = m->items()[i];
    std::string a, b;
    if (e.isString()) {
      // The legacy form, "a b"; tokenizers skips "#version" lines.
      const std::string &s = e.str();
      if (s.rfind("#version", 0) == 0)
        continue;
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        return fail(error, "model: merge " + std::to_string(i + 1) + " " +
                               quoted(s) +
                               " is not two tokens separated by "
                               "one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.isArray() && e.items().size() == 2 &&
               e.items()[0].isString() && e.items()[1].isString()) {
      a = e.items()[0].str();
      b = e.items()[1].str();
    } else {
      return fail(error, "model: merge " + std::to_string(i + 1) +
                             " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto ia = vocab.find(a), ib = vocab.find(b), ic = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end())
      return fail(error, "model: merge " + std::to_string(i + 1) + ": token " +
                             quoted(ia == vocab.end() ? a : b) +
                             " is not in the vocabulary");
    if (ic == vocab.end())
      return fail(error, "model: merge " + std::to_string(i + 1) +
                             ": the merged token " + quoted(a + b) +
                             " is not in the vocabulary");
    uint64_t key =
        (uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second);
    // A repeated pair takes the later rank, as the Rust HashMap collect does.
    merges[key] = Merge{rank++, ic->second};
  }
  return true;
}

bool Tokenizer::Impl::loadNormalizer(const json::Value &n, std::string &error) {
  std::string t = typeOf(n);
  if (t == "NFC") {
    nfc = true;
    return true;
  }
  if (t == "Sequence") {
    const json::Value *list = n.find("normalizers");
    if (!list || !list->isArray())
      return fail(error, "normalizer: Sequence without a 'normalizers' array");
    for (const json::Value &e : list->items())
      if (!loadNormalizer(e, error))
        return false;
    return true;
  }
  return fail(error, "unsupported normalizer type " + quoted(t) +
                         " (supported: NFC, Sequence, null)");
}

bool Tokenizer::Impl::loadPreTokenizer(const json::Value &p, std::string &error,
                                       int depth) {
  std::string t = typeOf(p);
  std::string what;
  if (t == "Sequence" && depth == 0) {
    const json::Value *list = p.find("pretokenizers");
    if (!list || !list->isArray())
      return fail(error, "pre_tokenizer: Sequence without a 'pretokenizers' "
                         "array");
    for (const json::Value &e : list->items())
      if (!loadPreTokenizer(e, error, depth + 1))
        return false;
    return true;
  }
  if (t == "ByteLevel") {
    Step s{Step::ByteLevel};
    bool trim;
    if (!getBool(p, "add_prefix_space", true, s.addPrefixSpace, what) ||
        !getBool(p, "use_regex", true, s.useRegex, what) ||
        !getBool(p, "trim_offsets", true, trim, what))
      return fail(error, "pre_tokenizer ByteLevel: " + what);
    steps.push_back(s);
    return true;
  }
  if (t == "Split") {
    Step s{Step::Split};
    const json::Value *pat = p.find("pattern");
    const json::Value *re =
        pat && pat->isObject() ? pat->find("Regex") : nullptr;
    if (!re || !re->isString()) {
      const json::Value *str =
          pat && pat->isObject() ? pat->find("String") : nullptr;
      return fail(error,
                  "unsupported pre_tokenizer Split pattern " +
                      (str && str->isString() ? "String " + quoted(str->str())
                                              : std::string("(not a Regex)")) +
                      " (supported: the Qwen2 and GPT-2 regexes)");
    }
    if (re->str() == kQwen2Regex)
      s.regex = SplitRegex::Qwen2;
    else if (re->str() == kGpt2Regex)
      s.regex = SplitRegex::Gpt2;
    else
      return fail(error, "unsupported pre_tokenizer Split regex " +
                             quoted(re->str()) +
                             " (supported: the Qwen2 and GPT-2 regexes)");
    const json::Value *beh = p.find("behavior");
    std::string b = beh && beh->isString() ? beh->str() : "";
    if (b != "Isolated")
      return fail(error, "unsupported pre_tokenizer Split behavior " +
                             quoted(b) + " (supported: Isolated)");
    bool invert;
    if (!getBool(p, "invert", false, invert, what))
      return fail(error, "pre_tokenizer Split: " + what);
    if (invert)
      return fail(error, "unsupported pre_tokenizer Split option invert = "
                         "true");
    steps.push_back(s);
    return true;
  }
  return fail(error, "unsupported pre_tokenizer type " + quoted(t) +
                         (depth ? " in a Sequence" : "") +
                         " (supported: ByteLevel, Split, Sequence)");
}

bool Tokenizer::Impl::loadAddedTokens(const json::Value *list,
                                      std::string &error) {
  if (!list || list->isNull())
    return true;
  if (!list->isArray())
    return fail(error, "'added_tokens' must be an array");
  int32_t maxAddedId = -1;
  for (const json::Value &e : list->items()) {
    AddedToken t;
    const json::Value *id = e.find("id");
    const json::Value *content = e.find("content");
    if (!e.isObject() || !id || !toId(*id, t.id) || !content ||
        !content->isString() || content->str().empty())
      return fail(error, "added_tokens: each entry needs an 'id' and a "
                         "non-empty 'content'");
    t.content = content->str();
    std::string what;
    if (!getBool(e, "special", false, t.special, what) ||
        !getBool(e, "normalized", !t.special, t.normalized, what) ||
        !getBool(e, "lstrip", false, t.lstrip, what) ||
        !getBool(e, "rstrip", false, t.rstrip, what) ||
        !getBool(e, "single_word", false, t.singleWord, what))
      return fail(error, "added token " + quoted(t.content) + ": " + what);
    if (addedByContent.count(t.content))
      continue; // tokenizers keeps the first
    // The id is the one tokenizers' AddedVocabulary::add_tokens gives: the
    // model's for a token in its vocabulary, else the next after the model's
    // vocabulary and the added tokens so far. (The file's "id" only draws a
    // warning there when it differs; for Qwen they agree.)
    int32_t modelSize = static_cast<int32_t>(vocab.size());
    if (auto it = vocab.find(t.content); it != vocab.end())
      t.id = it->second;
    else if (maxAddedId < 0)
      t.id = modelSize;
    else
      t.id = maxAddedId >= modelSize || modelSize == 0 ? maxAddedId + 1
                                                       : modelSize;
    maxAddedId = std::max(maxAddedId, t.id);
    addedByContent[t.content] = added.size();
    addedById[t.id] = added.size();
    if (t.special)
      specialContents.insert(t.content);
    added.push_back(std::move(t));
  }
  for (size_t i = 0; i < added.size(); ++i) {
    if (added[i].normalized)
      normalizedSet.add(normalize(added[i].content), i);
    else
      rawSet.add(added[i].content, i);
  }
  return true;
}

std::unique_ptr<Tokenizer> Tokenizer::fromJson(std::string_view text,
                                               const std::string &name,
                                               std::string &error) {
  json::Value root;
  std::string jsonError;
  if (!json::parse(text, root, jsonError)) {
    error = name + ": invalid JSON: " + jsonError;
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  if (!impl->load(root, error))
    return nullptr;
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::unique_ptr<Tokenizer> Tokenizer::fromFile(const std::string &path,
                                               std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = path + ": cannot read: " + std::strerror(errno);
    return nullptr;
  }
  if (S_ISDIR(st.st_mode)) {
    error = path + ": cannot read: Is a directory";
    return nullptr;
  }
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = path + ": cannot read: " + std::strerror(errno);
    return nullptr;
  }
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    text.append(buf, n);
  bool bad = std::ferror(f);
  int err = errno;
  std::fclose(f);
  if (bad) {
    error = path + ": cannot read: " + std::strerror(err);
    return nullptr;
  }
  return fromJson(text, path, error);
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

/// tokenizers' AddedVocabulary::find_matches + split_with_indices: calls
/// fn(piece, -1) for text and fn(piece, id) for an added token, in order,
/// skipping empty pieces.
template <typename Fn>
void Tokenizer::Impl::splitAdded(std::string_view s, const MatchSet &set,
                                 Fn &&fn) const {
  if (set.empty()) {
    if (!s.empty())
      fn(s, -1);
    return;
  }
  auto lastChar = [](std::string_view t) -> char32_t {
    size_t i = t.size();
    while (i > 0 && (static_cast<unsigned char>(t[i - 1]) & 0xC0) == 0x80)
      --i;
    return i > 0 ? unicode::decodeUtf8(t.substr(i - 1))[0] : 0;
  };
  auto firstChar = [](std::string_view t) -> char32_t {
    return t.empty() ? 0 : unicode::decodeUtf8(t.substr(0, 4))[0];
  };
  size_t startOffset = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const MatchSet::Entry *p = set.longestAt(s, pos);
    if (!p) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + p->text.size();
    pos = stop; // the automaton goes on after the match, used or not
    const AddedToken &tok = added[p->token];
    if (tok.singleWord) {
      // tokenizers tests \w (Rust's regex crate) on either side.
      bool startSpace =
          start == 0 || !unicode::isWordChar(lastChar(s.substr(0, start)));
      bool stopSpace =
          stop == s.size() || !unicode::isWordChar(firstChar(s.substr(stop)));
      if (!startSpace || !stopSpace)
        continue;
    }
    if (tok.lstrip) {
      // Back over the white space before the token, not into the previous
      // match.
      size_t b = start;
      while (b > 0) {
        size_t c = b - 1;
        while (c > 0 && (static_cast<unsigned char>(s[c]) & 0xC0) == 0x80)
          --c;
        if (!unicode::isWhiteSpace(unicode::decodeUtf8(s.substr(c, b - c))[0]))
          break;
        b = c;
      }
      start = std::max(b, startOffset);
    }
    if (tok.rstrip) {
      std::vector<uint32_t> offs;
      std::u32string rest = unicode::decodeUtf8(s.substr(stop), &offs);
      size_t k = 0;
      while (k < rest.size() && unicode::isWhiteSpace(rest[k]))
        ++k;
      stop += offs[k];
    }
    if (startOffset < start)
      fn(s.substr(startOffset, start - startOffset), -1);
    fn(s.substr(start, stop - start), tok.id);
    startOffset = stop;
  }
  if (startOffset < s.size())
    fn(s.substr(startOffset), -1);
}

void Tokenizer::Impl::preTokenize(std::string_view s,
                                  std::vector<std::string> &out) const {
  std::vector<std::string> cur{std::string(s)}, next;
  for (const Step &step : steps) {
    next.clear();
    for (std::string &piece : cur) {
      if (step.kind == Step::Split) {
        splitIsolated(piece, step.regex, next);
        continue;
      }
      if (step.addPrefixSpace && (piece.empty() || piece[0] != ' '))
        piece.insert(piece.begin(), ' ');
      if (step.useRegex)
        splitIsolated(piece, SplitRegex::Gpt2, next);
      else
        next.push_back(std::move(piece));
    }
    std::swap(cur, next);
  }
  for (std::string &piece : cur)
    if (!piece.empty())
      out.push_back(std::move(piece));
}

/// BPE of one pre-token (raw bytes; each byte is one byte-level character):
/// tokenizers' BPE::merge_word and Word::merge_all, merge for merge.
void Tokenizer::Impl::bpe(std::string_view bytes,
                          std::vector<int32_t> &ids) const {
  if (bytes.empty())
    return;
  const ByteLevel &bl = byteLevel();
  if (ignoreMerges) {
    std::string word;
    for (unsigned char b : bytes)
      word += bl.utf8[b];
    auto it = vocab.find(word);
    if (it != vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }

  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(bytes.size());
  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(sym.size());
    if (n > 0)
      sym.back().next = n;
    sym.push_back({id, n - 1, -1, true});
  };
  bool pendingUnk = false;
  for (unsigned char b : bytes) {
    int32_t id = byteToId[b];
    if (id >= 0) {
      if (pendingUnk)
        add(unkId);
      pendingUnk = false;
      add(id);
    } else if (unkId >= 0) {
      if (pendingUnk && !fuseUnk)
        add(unkId);
      pendingUnk = true;
    }
  }
  if (pendingUnk)
    add(unkId);

  struct Cand {
    int32_t rank;
    int32_t pos;
    int32_t newId;
    bool operator<(const Cand &o) const { // max-heap: lowest rank, then pos
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  auto lookup = [&](int32_t a, int32_t b) -> const Merge * {
    auto it = merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
    return it == merges.end() ? nullptr : &it->second;
  };
  std::priority_queue<Cand> queue;
  for (size_t i = 0; i + 1 < sym.size(); ++i)
    if (const Merge *m = lookup(sym[i].id, sym[i + 1].id))
      queue.push({m->rank, static_cast<int32_t>(i), m->newId});

  while (!queue.empty()) {
    Cand top = queue.top();
    queue.pop();
    Symbol &cur = sym[top.pos];
    if (!cur.alive || cur.next == -1)
      continue;
    Symbol &right = sym[cur.next];
    // A stale entry: the pair changed since it was queued.
    const Merge *m = lookup(cur.id, right.id);
    if (!m || m->newId != top.newId)
      continue;
    cur.id = top.newId;
    right.alive = false;
    int32_t after = right.next;
    cur.next = after;
    if (after != -1)
      sym[after].prev = top.pos;
    if (cur.prev >= 0)
      if (const Merge *pm = lookup(sym[cur.prev].id, cur.id))
        queue.push({pm->rank, cur.prev, pm->newId});
    if (after != -1)
      if (const Merge *nm = lookup(cur.id, sym[after].id))
        queue.push({nm->rank, top.pos, nm->newId});
  }
  for (const Symbol &s : sym)
    if (s.alive)
      ids.push_back(s.id);
}

std::vector<int32_t> Tokenizer::encode(std::string_view utf8) const {
  const Impl &im = *impl_;
  std::string text = unicode::toValidUtf8(utf8);
  std::vector<int32_t> ids;
  std::vector<std::string> words;
  auto model = [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    words.clear();
    im.preTokenize(piece, words);
    for (const std::string &w : words)
      im.bpe(w, ids);
  };
  im.splitAdded(text, im.rawSet, [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
    std::string normalized = im.normalize(piece);
    im.splitAdded(normalized, im.normalizedSet, model);
  });
  return ids;
}

//===----------------------------------------------------------------------===//
// Decoding and lookups
//===----------------------------------------------------------------------===//

std::string Tokenizer::decode(const std::vector<int32_t> &ids,
                              bool skipSpecialTokens) const {
  const Impl &im = *impl_;
  const ByteLevel &bl = byteLevel();
  std::string bytes;
  for (int32_t id : ids) {
    std::string_view token = idToToken(id);
    if (token.empty())
      continue;
    if (skipSpecialTokens && im.specialContents.count(std::string(token)))
      continue;
    // The ByteLevel decoder: a token made of byte-level characters becomes
    // those bytes, any other (an added token like "<|im_start|>" is made of
    // them too) its own UTF-8.
    if (!bl.toBytes(token, bytes))
      bytes += token;
  }
  return unicode::toValidUtf8(bytes);
}

int32_t Tokenizer::vocabSize() const { return impl_->vocabSize; }

int32_t Tokenizer::tokenToId(std::string_view token) const {
  std::string key(token);
  auto a = impl_->addedByContent.find(key);
  if (a != impl_->addedByContent.end())
    return impl_->added[a->second].id;
  auto it = impl_->vocab.find(key);
  return it == impl_->vocab.end() ? -1 : it->second;
}

std::string_view Tokenizer::idToToken(int32_t id) const {
  if (const AddedToken *t = addedToken(id))
    return t->content;
  if (id >= 0 && static_cast<size_t>(id) < impl_->idToModelToken.size() &&
      impl_->idToModelToken[id])
    return *impl_->idToModelToken[id];
  return {};
}

const Tokenizer::AddedToken *Tokenizer::addedToken(int32_t id) const {
  auto it = impl_->addedById.find(id);
  return it == impl_->addedById.end() ? nullptr : &impl_->added[it->second];
}

const std::vector<Tokenizer::AddedToken> &Tokenizer::addedTokens() const {
  return impl_->added;
}

bool Tokenizer::isSpecial(int32_t id) const {
  const AddedToken *t = addedToken(id);
  return t && t->special;
}

std::string Tokenizer::normalize(std::string_view utf8) const {
  return impl_->normalize(unicode::toValidUtf8(utf8));
}

std::vector<std::string> Tokenizer::preTokenize(std::string_view utf8) const {
  std::vector<std::string> out;
  impl_->preTokenize(unicode::toValidUtf8(utf8), out);
  return out;
}

} // namespace qwen::rt
