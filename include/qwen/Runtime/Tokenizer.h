//===- Tokenizer.h - byte-level BPE from tokenizer.json ---------*- C++ -*-===//
//
// A native reader of Hugging Face `tokenizer.json` files for byte-level BPE
// models (Qwen2, Qwen2.5, Qwen3, GPT-2 style), producing the ids the
// `tokenizers` library produces. What it reads:
//
//   added_tokens   split out of the text first (leftmost-longest), with their
//                  special / normalized / lstrip / rstrip / single_word flags
//   normalizer     null, NFC, or a Sequence of those
//   pre_tokenizer  ByteLevel (use_regex: the GPT-2 regex), or a Sequence of
//                  Split steps (the Qwen2 or GPT-2 regex, behavior Isolated)
//                  ending in ByteLevel
//   model          BPE (merges as "a b" strings or [a, b] pairs), without
//                  dropout, byte_fallback or subword prefixes/suffixes
//   post_processor null or ByteLevel (no tokens added)
//   decoder        ByteLevel
//
// Anything else is refused with an error that names the file and the thing
// not supported. The regexes are hand-written scanners over Unicode tables
// (see Unicode.h), not a regex engine.
//
// encode() adds no special tokens: Qwen's post-processor adds none.
// A Tokenizer is immutable after loading and safe to use from many threads.
//
// Plain C++17 with no LLVM/MLIR dependency.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_RUNTIME_TOKENIZER_H
#define QWEN_RUNTIME_TOKENIZER_H

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qwen::rt {

class Tokenizer {
public:
  /// An entry of tokenizer.json's "added_tokens".
  struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool normalized = false; // matched after normalization (else on raw text)
    bool lstrip = false;     // also takes the whitespace on its left
    bool rstrip = false;     // also takes the whitespace on its right
    bool singleWord = false; // only where not inside a word
  };

  /// Reads a tokenizer.json. Returns null and sets `error` (which starts with
  /// `path`) on failure: unreadable file, bad JSON, or a configuration this
  /// implementation does not support.
  static std::unique_ptr<Tokenizer> fromFile(const std::string &path,
                                             std::string &error);
  /// The same from the file's text; `name` stands for the file in errors.
  static std::unique_ptr<Tokenizer>
  fromJson(std::string_view json, const std::string &name, std::string &error);
  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  /// Token ids of `utf8` (invalid UTF-8 is first replaced by U+FFFD).
  std::vector<int32_t> encode(std::string_view utf8) const;
  /// Text of `ids`: byte-level tokens become their bytes, added tokens their
  /// content, and bytes that do not form UTF-8 become U+FFFD as in
  /// `tokenizers` (ids that are no token are skipped). With
  /// `skipSpecialTokens`, special added tokens are left out.
  std::string decode(const std::vector<int32_t> &ids,
                     bool skipSpecialTokens = false) const;

  /// One more than the largest id (model vocabulary and added tokens): the
  /// number of tokens when ids are dense, as they are for Qwen.
  int32_t vocabSize() const;
  /// The id of a token as it is spelled in tokenizer.json (byte-level
  /// spelling for model tokens: "Ġthe"), or -1.
  int32_t tokenToId(std::string_view token) const;
  /// The spelling of a token, or "" for an id that is none.
  std::string_view idToToken(int32_t id) const;
  /// The added token with this id, or null.
  const AddedToken *addedToken(int32_t id) const;
  const std::vector<AddedToken> &addedTokens() const;
  bool isSpecial(int32_t id) const;

  /// The normalizer alone (NFC for Qwen); valid UTF-8 in and out.
  std::string normalize(std::string_view utf8) const;
  /// The pieces the pre-tokenizer makes of `utf8` (raw UTF-8, before the
  /// byte-level mapping), without normalization or added tokens.
  std::vector<std::string> preTokenize(std::string_view utf8) const;

  struct Impl;

private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace qwen::rt

#endif // QWEN_RUNTIME_TOKENIZER_H
