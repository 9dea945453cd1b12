//===- TokenizerTest.cpp - runtime tokenizer, JSON reader, Unicode --------===//
//
// Expected ids come from Hugging Face `tokenizers` 0.23 on the fixtures in
// test/fixtures/tokenizer (python/tools/make_tokenizer_fixtures.py); the
// corpus-wide comparison is the lit tests' (test/Runtime/tokenizer-*.test).
//
//===----------------------------------------------------------------------===//

#include "qwen/Runtime/Tokenizer.h"
#include "qwen/Runtime/Json.h"
#include "qwen/Runtime/Unicode.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <thread>
#include <unistd.h>

using namespace qwen::rt;
using Ids = std::vector<int32_t>;

namespace {

const std::string kFixtures =
    std::string(QWEN_SOURCE_DIR) + "/test/fixtures/tokenizer";

std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string replaceAll(std::string s, const std::string &from,
                       const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos;
       p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

const Tokenizer &qwenStyle() {
  static std::unique_ptr<Tokenizer> tok = [] {
    std::string error;
    auto t =
        Tokenizer::fromFile(kFixtures + "/qwen2-style/tokenizer.json", error);
    EXPECT_TRUE(t) << error;
    return t;
  }();
  return *tok;
}

// A hand-written byte-level BPE: "ab" by merge, "abc" only in the vocabulary.
const char *kTiny = R"({
  "version": "1.0", "added_tokens": [], "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                    "trim_offsets": true, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true,
              "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "\u0120": 5,
                      "<unk>": 6, "\u0120a": 7},
            "merges": ["a b", "\u0120 a"]}
})";

std::unique_ptr<Tokenizer> load(const std::string &json, std::string &error) {
  return Tokenizer::fromJson(json, "tiny.json", error);
}

std::unique_ptr<Tokenizer> loadOk(const std::string &json) {
  std::string error;
  auto t = load(json, error);
  EXPECT_TRUE(t) << error;
  return t;
}

std::string loadError(const std::string &json) {
  std::string error;
  auto t = load(json, error);
  EXPECT_FALSE(t);
  return error;
}

std::string utf8(const std::u32string &s) {
  std::string out;
  for (char32_t c : s)
    unicode::appendUtf8(out, c);
  return out;
}

} // namespace

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

TEST(Json, Values) {
  json::Value v;
  std::string error;
  ASSERT_TRUE(json::parse(
      R"( {"a": [1, -2, 3.5e2, true, false, null], "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "a": {}} )",
      v, error))
      << error;
  ASSERT_TRUE(v.isObject());
  ASSERT_EQ(v.members().size(), 3u);
  // Duplicate keys: find() gives the last.
  EXPECT_TRUE(v.find("a")->isObject());
  const json::Value &arr = v.members()[0].second;
  ASSERT_EQ(arr.items().size(), 6u);
  int64_t i;
  EXPECT_TRUE(arr.items()[0].asInt64(i));
  EXPECT_EQ(i, 1);
  EXPECT_TRUE(arr.items()[1].asInt64(i));
  EXPECT_EQ(i, -2);
  EXPECT_FALSE(arr.items()[2].asInt64(i));
  EXPECT_DOUBLE_EQ(arr.items()[2].asDouble(), 350.0);
  EXPECT_TRUE(arr.items()[3].asBool());
  EXPECT_FALSE(arr.items()[4].asBool());
  EXPECT_TRUE(arr.items()[5].isNull());
  EXPECT_EQ(v.find("s")->str(), "x\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, Errors) {
  auto err = [](const std::string &text) {
    json::Value v;
    std::string error;
    EXPECT_FALSE(json::parse(text, v, error)) << text;
    return error;
  };
  EXPECT_EQ(err("{\"a\": 1,\n  }"),
            "line 2, column 3: expected a string key in object");
  EXPECT_EQ(err("[1, 2"), "line 1, column 6: unterminated array");
  EXPECT_EQ(err("{\"a\" 1}"),
            "line 1, column 6: expected ':' after object key");
  EXPECT_EQ(err("\"abc"), "line 1, column 5: unterminated string");
  EXPECT_EQ(err("01"),
            "line 1, column 2: trailing characters after the JSON value");
  EXPECT_EQ(err("-"), "line 1, column 2: invalid number");
  EXPECT_EQ(err("tru"), "line 1, column 1: invalid literal");
  EXPECT_EQ(err(""), "line 1, column 1: unexpected end of input");
  EXPECT_EQ(err("\"\\ud800\""),
            "line 1, column 8: lone leading surrogate in \\u escape");
  EXPECT_EQ(err("\"\\udc00\""),
            "line 1, column 8: lone trailing surrogate in \\u escape");
  EXPECT_EQ(err("\"\\x\""), "line 1, column 3: invalid escape in string");
  EXPECT_EQ(err("\"a\tb\""), "line 1, column 3: control character in string");
  EXPECT_EQ(err("\"\xff\""), "line 1, column 2: invalid UTF-8 in string");
  EXPECT_EQ(err("\x01"), "line 1, column 1: unexpected byte 0x01");
  // Deep nesting is an error, not a stack overflow.
  std::string deep(100000, '[');
  EXPECT_NE(err(deep).find("nesting deeper than"), std::string::npos);
}

//===----------------------------------------------------------------------===//
// Unicode
//===----------------------------------------------------------------------===//

TEST(Unicode, Utf8Replacement) {
  // One U+FFFD per maximal invalid subsequence, as String::from_utf8_lossy.
  EXPECT_EQ(unicode::toValidUtf8("a\xff"
                                 "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(unicode::toValidUtf8("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(unicode::toValidUtf8("\xE2\x82"
                                 "A"),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(unicode::toValidUtf8("\xF0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(unicode::toValidUtf8("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // a surrogate
  EXPECT_EQ(unicode::toValidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(unicode::toValidUtf8("\xF4\x90\x80\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(unicode::isValidUtf8("\xF0\x9F\x98\x80 \xC3\xA9"));
  std::vector<uint32_t> offs;
  EXPECT_EQ(unicode::decodeUtf8("a\xC3\xA9\xF0\x9F\x98\x80", &offs),
            U"a\u00E9\U0001F600");
  EXPECT_EQ(offs, (std::vector<uint32_t>{0, 1, 3, 7}));
}

TEST(Unicode, Classes) {
  using namespace unicode;
  EXPECT_TRUE(isLetter('a') && isLetter(U'\u00E9') && isLetter(U'\u6C49'));
  EXPECT_TRUE(isLetter(0x17F));   // long s
  EXPECT_TRUE(isLetter(0x10D4A)); // Garay, Unicode 16
  EXPECT_FALSE(isLetter('1') || isLetter('_') || isLetter(0x301));
  EXPECT_TRUE(isNumber('7') && isNumber(U'\u00B2') && isNumber(U'\u2160') &&
              isNumber(U'\uFF11'));
  // White_Space, not Python's str.isspace.
  EXPECT_TRUE(isWhiteSpace(0x85) && isWhiteSpace(0xA0) &&
              isWhiteSpace(0x3000) && isWhiteSpace(0x2028));
  EXPECT_FALSE(isWhiteSpace(0x1C) || isWhiteSpace(0x180E) ||
               isWhiteSpace(0x200B) || isWhiteSpace(0xFEFF));
  // Rust regex's \w.
  EXPECT_TRUE(isWordChar('_') && isWordChar(0x301) && isWordChar(0x200D) &&
              isWordChar(0x24B6));
  EXPECT_FALSE(isWordChar(U'\u00B2') || isWordChar('-'));
}

TEST(Unicode, Nfc) {
  using unicode::nfc;
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                       // e + acute
  EXPECT_EQ(nfc(utf8(U"\u212B\u2126")), utf8(U"\u00C5\u03A9"));  // singletons
  EXPECT_EQ(nfc(utf8(U"a\u0301\u0323")), utf8(U"\u1EA1\u0301")); // reorder
  EXPECT_EQ(nfc(utf8(U"\u1E9B\u0323")), utf8(U"\u1E9B\u0323"));
  EXPECT_EQ(nfc(utf8(U"\u0958")), utf8(U"\u0915\u093C"));       // exclusion
  EXPECT_EQ(nfc(utf8(U"\u0344")), utf8(U"\u0308\u0301"));       // non-starter
  EXPECT_EQ(nfc(utf8(U"\u1100\u1161\u11A8")), utf8(U"\uAC01")); // Hangul LVT
  EXPECT_EQ(nfc(utf8(U"\uAC00\u11A8")), utf8(U"\uAC01"));
  EXPECT_EQ(nfc(utf8(U"\uF900")), utf8(U"\u8C48"));
  EXPECT_EQ(nfc(utf8(U"=\u0338")), utf8(U"\u2260"));
  // tokenizers' NFC is Unicode 9.0: later marks are starters to it.
  EXPECT_EQ(nfc(utf8(U"a\u1DF6\u0323")), utf8(U"a\u1DF6\u0323"));
  EXPECT_EQ(nfc(utf8(U"\U00011935\U00011930")), utf8(U"\U00011935\U00011930"));
  EXPECT_EQ(nfc(utf8(U"a\U0001E944\u0323")), utf8(U"\u1EA1\U0001E944"));
  EXPECT_STREQ(unicode::nfcVersion(), "9.0.0");
  // Many marks in reverse class order stay stable by class.
  std::u32string many = U"a";
  for (int i = 0; i < 1000; ++i)
    many += i % 2 ? U'\u0301' : U'\u0323';
  std::u32string n = unicode::nfc(many);
  ASSERT_EQ(n.size(), 1000u);
  EXPECT_EQ(n[0], U'\u1EA1');
  EXPECT_EQ(n[1], U'\u0323');
  EXPECT_EQ(n[499], U'\u0323');
  EXPECT_EQ(n[500], U'\u0301');
}

//===----------------------------------------------------------------------===//
// Tokenizer: the Qwen2-style fixture
//===----------------------------------------------------------------------===//

TEST(Tokenizer, QwenEncode) {
  const Tokenizer &t = qwenStyle();
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.encode("Hello world"), (Ids{39, 538, 446, 397, 285, 1520}));
  EXPECT_EQ(t.encode("<|im_start|>user\nHi there!<|im_end|>\n"),
            (Ids{2001, 794, 81, 198, 39, 72, 326, 270, 0, 2002, 198}));
  EXPECT_EQ(
      t.encode("It's DON'T 12345 \xE6\xB1\x89\xE5\xAD\x97 \xF0\x9F\x98\x80"),
      (Ids{40, 83, 1882, 653, 797,  6,   51,  220,  16,  17,
           18, 19, 20,   220, 1118, 231, 431, 1748, 246, 222}));
  EXPECT_EQ(t.encode("a  \n\n  b"), (Ids{64, 256, 198, 198, 220, 352}));
  EXPECT_EQ(t.encode("e\xCC\x81"), (Ids{127, 102})); // NFC: U+00E9
  // Invalid UTF-8 is read as U+FFFD.
  EXPECT_EQ(t.encode("\xff"), (Ids{171, 123, 121}));
  EXPECT_EQ(t.encode("\xEF\xBF\xBD"), (Ids{171, 123, 121}));
}

TEST(Tokenizer, AddedTokensSplitBeforeNormalization) {
  // '>' + U+0338 is U+226F in NFC, but tokenizers splits the special token
  // off first and normalizes the rest alone.
  const Tokenizer &t = qwenStyle();
  Ids ids = t.encode("<|im_end|>\xCC\xB8");
  EXPECT_EQ(ids, (Ids{2002, 136, 116}));
  EXPECT_EQ(t.decode(ids), "<|im_end|>\xCC\xB8");
  EXPECT_EQ(t.encode(">\xCC\xB8"), (Ids{158, 231, 107}));
}

TEST(Tokenizer, QwenPreTokenizer) {
  const Tokenizer &t = qwenStyle();
  using V = std::vector<std::string>;
  EXPECT_EQ(t.preTokenize("a  \n\n  b"), (V{"a", "  \n\n", " ", " b"}));
  EXPECT_EQ(t.preTokenize("a \r\n \t b"), (V{"a", " \r\n", " \t", " b"}));
  EXPECT_EQ(t.preTokenize("x   "), (V{"x", "   "}));
  EXPECT_EQ(t.preTokenize("  ?!"), (V{" ", " ?!"}));
  EXPECT_EQ(t.preTokenize("!!!\r\n\r\nx"), (V{"!!!\r\n\r\n", "x"}));
  EXPECT_EQ(t.preTokenize("it'S DON'T we'LL"),
            (V{"it", "'S", " DON", "'T", " we", "'LL"}));
  EXPECT_EQ(t.preTokenize("x'\xC5\xBFt"), (V{"x", "'\xC5\xBF", "t"})); // long s
  EXPECT_EQ(t.preTokenize("1234"), (V{"1", "2", "3", "4"}));
  EXPECT_EQ(t.preTokenize("a\xC2\x85\xC2\x85"
                          "b"),
            (V{"a", "\xC2\x85",
               "\xC2\x85"
               "b"})); // U+0085 is \s
  EXPECT_EQ(t.preTokenize("a\x1C\x1C"
                          "b"),
            (V{"a", "\x1C\x1C", "b"}));
}

TEST(Tokenizer, QwenLookups) {
  const Tokenizer &t = qwenStyle();
  EXPECT_EQ(t.vocabSize(), 2012);
  EXPECT_EQ(t.tokenToId("<|im_start|>"), 2001);
  EXPECT_EQ(t.tokenToId("\xC4\xA0the"), 326); // "Ġthe"
  EXPECT_EQ(t.tokenToId("no such token"), -1);
  EXPECT_EQ(t.idToToken(2002), "<|im_end|>");
  EXPECT_EQ(t.idToToken(326), "\xC4\xA0the");
  EXPECT_EQ(t.idToToken(2012), "");
  EXPECT_EQ(t.idToToken(-1), "");
  EXPECT_TRUE(t.isSpecial(2000));
  EXPECT_FALSE(t.isSpecial(2005)); // <tool_call>
  EXPECT_FALSE(t.isSpecial(326));
  ASSERT_NE(t.addedToken(2010), nullptr);
  EXPECT_EQ(t.addedToken(2010)->content, "<think>");
  EXPECT_FALSE(t.addedToken(2010)->normalized);
  EXPECT_EQ(t.addedTokens().size(), 12u);
}

TEST(Tokenizer, QwenDecode) {
  const Tokenizer &t = qwenStyle();
  EXPECT_EQ(t.decode({2001, 9, 2002}), "<|im_start|>*<|im_end|>");
  EXPECT_EQ(t.decode({2001, 9, 2002}, /*skipSpecialTokens=*/true), "*");
  EXPECT_EQ(t.decode({2001, 2005, 2002}, true), "<tool_call>");
  EXPECT_EQ(t.decode({160}), "\xEF\xBF\xBD"); // a lone byte 0xE4
  EXPECT_EQ(t.decode({}), "");
  EXPECT_EQ(t.decode({64, 99999, -3, 64}), "aa"); // ids that are no token
}

TEST(Tokenizer, AddedTokenIdsFollowTokenizers) {
  // tokenizers gives added tokens the ids its AddedVocabulary assigns, not
  // the file's: shifted ids in the file change nothing.
  std::string json = readAll(kFixtures + "/qwen2-style/tokenizer.json");
  json = replaceAll(json, "{\"id\":2001,", "{\"id\":5000,");
  json = replaceAll(json, "{\"id\":2010,", "{\"id\":2110,");
  auto t = loadOk(json);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("<|endoftext|><|im_start|><think>"),
            (Ids{2000, 2001, 2010}));
}

TEST(Tokenizer, ThreadSafe) {
  const Tokenizer &t = qwenStyle();
  std::string text = readAll(kFixtures + "/corpus.txt").substr(0, 20000);
  Ids ref = t.encode(text);
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { got[i] = t.encode(text); });
  for (auto &th : threads)
    th.join();
  for (const Ids &g : got)
    EXPECT_EQ(g, ref);
}

//===----------------------------------------------------------------------===//
// Tokenizer: model options on a hand-written vocabulary
//===----------------------------------------------------------------------===//

TEST(Tokenizer, MergeForms) {
  auto strings = loadOk(kTiny);
  auto pairs = loadOk(replaceAll(replaceAll(kTiny, "\"a b\"", "[\"a\", \"b\"]"),
                                 "\"\\u0120 a\"", "[\"\\u0120\", \"a\"]"));
  ASSERT_TRUE(strings && pairs);
  EXPECT_EQ(strings->encode("abc ab abcabc"), (Ids{3, 2, 5, 3, 5, 3, 2, 3, 2}));
  EXPECT_EQ(pairs->encode("abc ab abcabc"), (Ids{3, 2, 5, 3, 5, 3, 2, 3, 2}));
  EXPECT_EQ(strings->encode(" a"), (Ids{7}));
  EXPECT_EQ(strings->decode({7, 3}), " aab");
}

TEST(Tokenizer, IgnoreMerges) {
  auto t = loadOk(
      replaceAll(kTiny, "\"ignore_merges\": false", "\"ignore_merges\": true"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("abc ab abcabc"), (Ids{4, 5, 3, 5, 3, 2, 3, 2}));
}

TEST(Tokenizer, UnknownBytes) {
  // Without unk_token, bytes outside the vocabulary vanish.
  auto none = loadOk(kTiny);
  auto unk = loadOk(
      replaceAll(kTiny, "\"unk_token\": null", "\"unk_token\": \"<unk>\""));
  auto fused = loadOk(replaceAll(
      replaceAll(kTiny, "\"unk_token\": null", "\"unk_token\": \"<unk>\""),
      "\"fuse_unk\": false", "\"fuse_unk\": true"));
  ASSERT_TRUE(none && unk && fused);
  EXPECT_EQ(none->encode("axyb ab zz"), (Ids{3, 5, 3, 5}));
  EXPECT_EQ(unk->encode("axyb ab zz"), (Ids{0, 6, 6, 1, 5, 3, 5, 6, 6}));
  EXPECT_EQ(fused->encode("axyb ab zz"), (Ids{0, 6, 1, 5, 3, 5, 6}));
}

TEST(Tokenizer, AddPrefixSpace) {
  auto t = loadOk(replaceAll(kTiny, "\"add_prefix_space\": false",
                             "\"add_prefix_space\": true"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("ab a"), (Ids{5, 3, 7}));
  EXPECT_EQ(t->encode(" ab"), (Ids{5, 3}));
}

//===----------------------------------------------------------------------===//
// Errors: a message naming the file and what is not supported
//===----------------------------------------------------------------------===//

TEST(Tokenizer, FileErrors) {
  std::string error;
  EXPECT_FALSE(Tokenizer::fromFile("/nonexistent/tokenizer.json", error));
  EXPECT_EQ(
      error,
      "/nonexistent/tokenizer.json: cannot read: No such file or directory");
  EXPECT_FALSE(Tokenizer::fromFile(kFixtures, error));
  EXPECT_EQ(error, kFixtures + ": cannot read: Is a directory");
  EXPECT_EQ(
      loadError("{\"model\": "),
      "tiny.json: invalid JSON: line 1, column 11: unexpected end of input");
  EXPECT_EQ(loadError("[]"),
            "tiny.json: expected a JSON object at the top, not array");
  EXPECT_EQ(loadError("{}"),
            "tiny.json: no 'model' object: not a tokenizer.json");
}

TEST(Tokenizer, UnsupportedComponents) {
  auto err = [](const std::string &from, const std::string &to) {
    std::string json = replaceAll(kTiny, from, to);
    EXPECT_NE(json, kTiny) << from;
    return loadError(json);
  };
  EXPECT_EQ(err("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFKC\"}"),
            "tiny.json: unsupported normalizer type 'NFKC' (supported: NFC, "
            "Sequence, null)");
  EXPECT_EQ(err("\"type\": \"ByteLevel\", \"add_prefix_space\": false",
                "\"type\": \"Metaspace\", \"add_prefix_space\": false"),
            "tiny.json: unsupported pre_tokenizer type 'Metaspace' (supported: "
            "ByteLevel, Split, Sequence)");
  EXPECT_EQ(
      err("\"pre_tokenizer\": {",
          "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
          "[{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"}, "
          "\"behavior\": \"Isolated\", \"invert\": false}]}, \"x\": {"),
      "tiny.json: unsupported pre_tokenizer Split regex '\\s+' (supported: the "
      "Qwen2 and GPT-2 regexes)");
  EXPECT_EQ(
      err("\"pre_tokenizer\": {",
          "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
          "[{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, "
          "\"behavior\": \"Isolated\", \"invert\": false}]}, \"x\": {"),
      "tiny.json: unsupported pre_tokenizer Split pattern String ' ' "
      "(supported: the Qwen2 and GPT-2 regexes)");
  EXPECT_EQ(
      err("\"pre_tokenizer\": {",
          "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
          "[{\"type\": \"Split\", \"pattern\": {\"Regex\": "
          "\"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| "
          "?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": "
          "\"Removed\", \"invert\": false}]}, \"x\": {"),
      "tiny.json: unsupported pre_tokenizer Split behavior 'Removed' "
      "(supported: Isolated)");
  EXPECT_EQ(err("\"pre_tokenizer\": {",
                "\"pre_tokenizer\": {\"type\": \"Sequence\", "
                "\"pretokenizers\": [{\"type\": \"ByteLevel\", \"use_regex\": "
                "false}, {\"type\": \"Split\", \"pattern\": {\"Regex\": "
                "\"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| "
                "?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
                "\"behavior\": \"Isolated\", \"invert\": false}]}, \"x\": {"),
            "tiny.json: unsupported pre_tokenizer: it must end with one "
            "ByteLevel step (byte-level BPE)");
  EXPECT_EQ(err("\"type\": \"BPE\"", "\"type\": \"WordPiece\""),
            "tiny.json: unsupported model type 'WordPiece' (supported: BPE)");
  EXPECT_EQ(err("\"byte_fallback\": false", "\"byte_fallback\": true"),
            "tiny.json: unsupported model option byte_fallback = true");
  EXPECT_EQ(err("\"dropout\": null", "\"dropout\": 0.1"),
            "tiny.json: unsupported model option dropout = 0.1");
  EXPECT_EQ(
      err("\"continuing_subword_prefix\": null",
          "\"continuing_subword_prefix\": \"##\""),
      "tiny.json: unsupported model option continuing_subword_prefix = '##'");
  EXPECT_EQ(err("\"post_processor\": null",
                "\"post_processor\": {\"type\": \"TemplateProcessing\"}"),
            "tiny.json: unsupported post_processor type 'TemplateProcessing' "
            "(supported: ByteLevel or null, which add no tokens)");
  EXPECT_EQ(
      err("\"decoder\": {\"type\": \"ByteLevel\"",
          "\"decoder\": {\"type\": \"WordPiece\""),
      "tiny.json: unsupported decoder type 'WordPiece' (supported: ByteLevel)");
  EXPECT_EQ(err("\"merges\": [\"a b\"", "\"merges\": [\"a x\""),
            "tiny.json: model: merge 1: token 'x' is not in the vocabulary");
  EXPECT_EQ(err("\"merges\": [\"a b\"", "\"merges\": [\"b c\""),
            "tiny.json: model: merge 1: the merged token 'bc' is not in the "
            "vocabulary");
  EXPECT_EQ(err("\"merges\": [\"a b\"", "\"merges\": [\"a b c\""),
            "tiny.json: model: merge 1 'a b c' is not two tokens separated by "
            "one space");
  EXPECT_EQ(err("\"unk_token\": null", "\"unk_token\": \"<nope>\""),
            "tiny.json: model: unk_token '<nope>' is not in the vocabulary");
  EXPECT_EQ(err("\"a\": 0,", "\"a\": -1,"),
            "tiny.json: model: vocab entry 'a' has no valid id");
  EXPECT_EQ(
      err("\"added_tokens\": []", "\"added_tokens\": [{\"content\": \"x\"}]"),
      "tiny.json: added_tokens: each entry needs an 'id' and a non-empty "
      "'content'");
}
