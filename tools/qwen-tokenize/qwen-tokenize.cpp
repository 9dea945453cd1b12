//===- qwen-tokenize.cpp - the runtime tokenizer on the command line ------===//
//
//   qwen-tokenize tokenizer.json < lines.txt         ids of each line
//   qwen-tokenize --whole tokenizer.json < text.txt  ids of all of stdin
//   qwen-tokenize --decode tokenizer.json < ids.txt  text of each line of ids
//   qwen-tokenize --normalize tokenizer.json < lines.txt
//   qwen-tokenize --vocab-size tokenizer.json
//
// Lines are split on '\n' only (a '\r' before it belongs to the line); ids
// are written space-separated, one line per input line. --skip-special drops
// special tokens when decoding.
//
//===----------------------------------------------------------------------===//

#include "qwen/Runtime/Tokenizer.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

using qwen::rt::Tokenizer;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: qwen-tokenize [--whole | --decode [--skip-special] | "
               "--normalize | --vocab-size] tokenizer.json\n");
  return 2;
}

std::string readStdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), {});
}

std::vector<std::string_view> lines(const std::string &text) {
  std::vector<std::string_view> out;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos)
      e = text.size();
    out.emplace_back(text.data() + b, e - b);
    b = e + 1;
  }
  return out;
}

void writeIds(const std::vector<int32_t> &ids, std::string &out) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i)
      out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
}

} // namespace

int main(int argc, char **argv) {
  std::ios::sync_with_stdio(false);
  enum { Encode, Whole, Decode, Normalize, VocabSize } mode = Encode;
  bool skipSpecial = false;
  const char *path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--whole"))
      mode = Whole;
    else if (!std::strcmp(argv[i], "--decode"))
      mode = Decode;
    else if (!std::strcmp(argv[i], "--normalize"))
      mode = Normalize;
    else if (!std::strcmp(argv[i], "--vocab-size"))
      mode = VocabSize;
    else if (!std::strcmp(argv[i], "--skip-special"))
      skipSpecial = true;
    else if (argv[i][0] == '-' || path)
      return usage();
    else
      path = argv[i];
  }
  if (!path)
    return usage();

  std::string error;
  std::unique_ptr<Tokenizer> tok = Tokenizer::fromFile(path, error);
  if (!tok) {
    std::fprintf(stderr, "qwen-tokenize: %s\n", error.c_str());
    return 1;
  }
  if (mode == VocabSize) {
    std::printf("%d\n", tok->vocabSize());
    return 0;
  }

  std::string input = readStdin(), out;
  if (mode == Whole) {
    writeIds(tok->encode(input), out);
  } else {
    size_t lineNo = 0;
    for (std::string_view line : lines(input)) {
      ++lineNo;
      if (mode == Encode) {
        writeIds(tok->encode(line), out);
      } else if (mode == Normalize) {
        out += tok->normalize(line);
        out += '\n';
      } else {
        std::vector<int32_t> ids;
        std::string s(line);
        const char *p = s.c_str();
        while (*p) {
          if (*p == ' ') {
            ++p;
            continue;
          }
          char *end;
          long v = std::strtol(p, &end, 10);
          if (end == p || (*end && *end != ' ') || v < 0 || v > INT32_MAX) {
            std::fprintf(stderr,
                         "qwen-tokenize: stdin line %zu: not a token id: %s\n",
                         lineNo, p);
            return 1;
          }
          ids.push_back(static_cast<int32_t>(v));
          p = end;
        }
        out += tok->decode(ids, skipSpecial);
        out += '\n';
      }
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
