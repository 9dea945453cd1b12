//===- Json.cpp - a small JSON reader for the runtime ---------------------===//

#include "qwen/Runtime/Json.h"
#include "qwen/Runtime/Unicode.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace qwen::rt::json {

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.bool_ = b;
  return v;
}

Value Value::number(std::string text) {
  Value v;
  v.kind_ = Kind::Number;
  v.str_ = std::move(text);
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.str_ = std::move(s);
  return v;
}

Value Value::array() {
  Value v;
  v.kind_ = Kind::Array;
  return v;
}

Value Value::object() {
  Value v;
  v.kind_ = Kind::Object;
  return v;
}

bool Value::asInt64(int64_t &out) const {
  if (kind_ != Kind::Number || str_.empty())
    return false;
  // Integral text only: "-"? digits. 1.0 and 1e3 are not ids.
  size_t i = str_[0] == '-' ? 1 : 0;
  if (i == str_.size())
    return false;
  for (size_t k = i; k < str_.size(); ++k)
    if (str_[k] < '0' || str_[k] > '9')
      return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(str_.c_str(), &end, 10);
  if (errno == ERANGE || end != str_.c_str() + str_.size())
    return false;
  out = v;
  return true;
}

double Value::asDouble() const {
  if (kind_ != Kind::Number)
    return 0;
  return std::strtod(str_.c_str(), nullptr);
}

const Value *Value::find(std::string_view key) const {
  for (size_t i = members_.size(); i-- > 0;)
    if (members_[i].first == key)
      return &members_[i].second;
  return nullptr;
}

const char *Value::kindName() const {
  switch (kind_) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "boolean";
  case Kind::Number:
    return "number";
  case Kind::String:
    return "string";
  case Kind::Array:
    return "array";
  case Kind::Object:
    return "object";
  }
  return "?";
}

namespace {

class Parser {
public:
  explicit Parser(std::string_view text) : s_(text) {}

  bool run(Value &out, std::string &error) {
    skipSpace();
    bool ok = parseValue(out, 0);
    if (ok) {
      skipSpace();
      if (!atEnd())
        ok = fail("trailing characters after the JSON value");
    }
    if (!ok)
      error = where() + ": " + msg_;
    return ok;
  }

private:
  bool atEnd() const { return pos_ >= s_.size(); }

  // Always returns false so callers can `return fail(...)`; keeps the first
  // message and the position where it happened.
  bool fail(const std::string &msg) {
    if (msg_.empty()) {
      msg_ = msg;
      failPos_ = pos_;
    }
    return false;
  }

  std::string where() const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < failPos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
  }

  void skipSpace() {
    while (!atEnd() && (s_[pos_] == ' ' || s_[pos_] == '\t' ||
                        s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word)
      return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool parseValue(Value &out, int depth) {
    if (atEnd())
      return fail("unexpected end of input");
    char c = s_[pos_];
    switch (c) {
    case '{':
      return parseObject(out, depth + 1);
    case '[':
      return parseArray(out, depth + 1);
    case '"': {
      std::string str;
      if (!parseString(str))
        return false;
      out = Value::string(std::move(str));
      return true;
    }
    case 't':
      out = Value::boolean(true);
      return literal("true");
    case 'f':
      out = Value::boolean(false);
      return literal("false");
    case 'n':
      out = Value::null();
      return literal("null");
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parseNumber(out);
      if (static_cast<unsigned char>(c) < 0x20 ||
          static_cast<unsigned char>(c) >= 0x7F) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "0x%02X",
                      static_cast<unsigned>(static_cast<unsigned char>(c)));
        return fail(std::string("unexpected byte ") + buf);
      }
      return fail(std::string("unexpected character '") + c + "'");
    }
  }

  bool parseNumber(Value &out) {
    size_t start = pos_;
    auto digits = [&] {
      size_t b = pos_;
      while (!atEnd() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      return pos_ - b;
    };
    if (s_[pos_] == '-')
      ++pos_;
    if (!atEnd() && s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return fail("invalid number");
    }
    if (!atEnd() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0)
        return fail("invalid number");
    }
    if (!atEnd() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!atEnd() && (s_[pos_] == '+' || s_[pos_] == '-'))
        ++pos_;
      if (digits() == 0)
        return fail("invalid number");
    }
    out = Value::number(std::string(s_.substr(start, pos_ - start)));
    return true;
  }

  bool hex4(uint32_t &v) {
    if (s_.size() - pos_ < 4)
      return fail("truncated \\u escape");
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return fail("invalid \\u escape");
    }
    pos_ += 4;
    return true;
  }

  // Length of the valid UTF-8 sequence at pos_, or 0.
  size_t utf8Length() const {
    auto b = [&](size_t i) -> unsigned {
      return pos_ + i < s_.size() ? static_cast<unsigned char>(s_[pos_ + i])
                                  : 0u;
    };
    unsigned c = b(0);
    auto cont = [&](size_t i) { return (b(i) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF)
      return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
      unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      return b(1) >= lo && b(1) <= hi && cont(2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
      unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      return b(1) >= lo && b(1) <= hi && cont(2) && cont(3) ? 4 : 0;
    }
    return 0;
  }

  bool parseString(std::string &out) {
    ++pos_; // opening quote
    while (true) {
      if (atEnd())
        return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20)
        return fail("control character in string");
      if (c >= 0x80) {
        size_t n = utf8Length();
        if (n == 0)
          return fail("invalid UTF-8 in string");
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        // Copy a run of plain ASCII at once.
        size_t b = pos_;
        while (!atEnd()) {
          unsigned char d = static_cast<unsigned char>(s_[pos_]);
          if (d == '"' || d == '\\' || d < 0x20 || d >= 0x80)
            break;
          ++pos_;
        }
        out.append(s_.substr(b, pos_ - b));
        continue;
      }
      ++pos_;
      if (atEnd())
        return fail("unterminated string");
      char e = s_[pos_++];
      switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!hex4(cp))
          return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return fail("lone trailing surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (s_.substr(pos_, 2) != "\\u")
            return fail("lone leading surrogate in \\u escape");
          pos_ += 2;
          if (!hex4(lo))
            return false;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return fail("lone leading surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        unicode::appendUtf8(out, static_cast<char32_t>(cp));
        break;
      }
      default:
        --pos_;
        return fail("invalid escape in string");
      }
    }
  }

  bool parseArray(Value &out, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting deeper than " + std::to_string(kMaxDepth));
    ++pos_;
    out = Value::array();
    skipSpace();
    if (!atEnd() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      skipSpace();
      out.items().emplace_back();
      if (!parseValue(out.items().back(), depth))
        return false;
      skipSpace();
      if (atEnd())
        return fail("unterminated array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']' in array");
    }
  }

  bool parseObject(Value &out, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting deeper than " + std::to_string(kMaxDepth));
    ++pos_;
    out = Value::object();
    skipSpace();
    if (!atEnd() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      skipSpace();
      if (atEnd())
        return fail("unterminated object");
      if (s_[pos_] != '"')
        return fail("expected a string key in object");
      std::string key;
      if (!parseString(key))
        return false;
      skipSpace();
      if (atEnd() || s_[pos_] != ':')
        return fail("expected ':' after object key");
      ++pos_;
      skipSpace();
      out.members().emplace_back(std::move(key), Value());
      if (!parseValue(out.members().back().second, depth))
        return false;
      skipSpace();
      if (atEnd())
        return fail("unterminated object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}' in object");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  size_t failPos_ = 0;
  std::string msg_;
};

} // namespace

bool parse(std::string_view text, Value &out, std::string &error) {
  Parser p(text);
  return p.run(out, error);
}

} // namespace qwen::rt::json
