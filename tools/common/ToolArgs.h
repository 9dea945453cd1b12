//===- ToolArgs.h - command lines of the runtime's tools -------*- C++ -*-===//
//
// Shared by qwen-run and qwen-eval, which link only libqwen_runtime (no
// LLVM, so no llvm::cl): strict number parsing and a cursor over argv that
// understands `--flag value`, `--flag=value` and positionals, reporting every
// problem through the tool's usage-error function (exit 2, naming the flag).
//
//===----------------------------------------------------------------------===//

#ifndef QWEN_TOOLS_TOOLARGS_H
#define QWEN_TOOLS_TOOLARGS_H

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace qwen::tools {

/// Whole-string base-10 integer; false on junk, overflow or empty input.
inline bool parseInt(const std::string &s, int64_t &out) {
  if (s.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end || end == s.c_str())
    return false;
  out = v;
  return true;
}

inline bool parseUInt64(const std::string &s, uint64_t &out) {
  if (s.empty() || s[0] == '-')
    return false;
  errno = 0;
  char *end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno || *end || end == s.c_str())
    return false;
  out = v;
  return true;
}

/// Whole-string finite float.
inline bool parseFloat(const std::string &s, float &out) {
  if (s.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  float v = std::strtof(s.c_str(), &end);
  if (errno || *end || end == s.c_str() || !std::isfinite(v))
    return false;
  out = v;
  return true;
}

/// Walks argv. For each argument: `flag()` is its name ("--ctx" of
/// "--ctx=5"), `value()` its value (inline, else the next argument).
class ArgCursor {
public:
  using UsageError = void (*)(const std::string &);
  ArgCursor(int argc, char **argv, UsageError usageError)
      : argc(argc), argv(argv), usageError(usageError) {}

  /// Moves to the next argument; false when there is none.
  bool next() {
    if (++i >= argc)
      return false;
    flag_ = argv[i];
    inline_.clear();
    hasInline = false;
    if (flag_.compare(0, 2, "--") == 0) {
      size_t eq = flag_.find('=');
      if (eq != std::string::npos) {
        inline_ = flag_.substr(eq + 1);
        flag_ = flag_.substr(0, eq);
        hasInline = true;
      }
    }
    return true;
  }
  const std::string &flag() const { return flag_; }
  /// The argument as written (for positionals).
  std::string raw() const { return argv[i]; }
  bool isFlag() const { return flag_.size() > 1 && flag_[0] == '-'; }
  bool hasInlineValue() const { return hasInline; }
  const std::string &inlineValue() const { return inline_; }

  std::string value() {
    if (hasInline)
      return inline_;
    if (i + 1 >= argc)
      fail(flag_ + ": missing value");
    return argv[++i];
  }
  /// An integer >= lo.
  int64_t intValue(int64_t lo) {
    std::string v = value();
    int64_t out;
    if (!parseInt(v, out) || out < lo)
      fail(flag_ + ": expected an integer >= " + std::to_string(lo) +
           ", got '" + v + "'");
    return out;
  }
  /// A non-empty path.
  std::string pathValue() {
    std::string v = value();
    if (v.empty())
      fail(flag_ + ": expected a path, got ''");
    return v;
  }
  /// A flag without a value (--flag=x is an error).
  void noValue() {
    if (hasInline)
      fail(flag_ + ": takes no value");
  }
  [[noreturn]] void fail(const std::string &msg) {
    usageError(msg);
    std::abort(); // usageError exits
  }

private:
  int argc;
  char **argv;
  UsageError usageError;
  int i = 0;
  std::string flag_, inline_;
  bool hasInline = false;
};

} // namespace qwen::tools

#endif // QWEN_TOOLS_TOOLARGS_H
