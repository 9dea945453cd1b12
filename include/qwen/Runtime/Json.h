//===- Json.h - a small JSON reader for the runtime -------------*- C++ -*-===//
//
// Reads RFC 8259 JSON into a tree of json::Value. Enough for tokenizer.json
// and model configs: objects keep their key order (and duplicate keys: find()
// returns the last, as serde's maps do), numbers keep their text so integers
// round-trip exactly, strings are UTF-8 (\u escapes decoded, surrogate pairs
// joined; a lone surrogate is an error). Nesting is limited to kMaxDepth so a
// hostile file cannot overflow the stack.
//
// Plain C++17 with no LLVM/MLIR dependency.
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_RUNTIME_JSON_H
#define QWEN_RUNTIME_JSON_H

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qwen::rt::json {

inline constexpr int kMaxDepth = 512;

class Value {
public:
  enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b);
  static Value number(std::string text);
  static Value string(std::string s);
  static Value array();
  static Value object();

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::Null; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isNumber() const { return kind_ == Kind::Number; }
  bool isString() const { return kind_ == Kind::String; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isObject() const { return kind_ == Kind::Object; }

  bool asBool() const { return bool_; }
  /// The string of a String, the text of a Number.
  const std::string &str() const { return str_; }
  /// True and sets `out` when this is an integral Number in range.
  bool asInt64(int64_t &out) const;
  /// A Number as a double (0 otherwise).
  double asDouble() const;

  /// Array elements (empty for other kinds).
  const std::vector<Value> &items() const { return items_; }
  std::vector<Value> &items() { return items_; }
  /// Object members in file order (empty for other kinds).
  const std::vector<std::pair<std::string, Value>> &members() const {
    return members_;
  }
  std::vector<std::pair<std::string, Value>> &members() { return members_; }
  /// The last member named `key`, or null if none (or not an object).
  const Value *find(std::string_view key) const;

  /// "null", "boolean", "number", "string", "array", "object".
  const char *kindName() const;

private:
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  std::string str_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

/// Parses `text`. On failure returns false and sets `error` to
/// "line L, column C: what" (columns count bytes from 1).
bool parse(std::string_view text, Value &out, std::string &error);

} // namespace qwen::rt::json

#endif // QWEN_RUNTIME_JSON_H
