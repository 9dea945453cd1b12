//===- CpuFeaturesTest.cpp - qwen_cpu_has_feature --------------------------===//

#include "qwen/Runtime/BundleABI.h"
#include "qwen_runtime.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace {

std::set<std::string> procCpuFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, 5, "flags") == 0) {
      std::set<std::string> flags;
      std::istringstream ss(line.substr(line.find(':') + 1));
      std::string f;
      while (ss >> f)
        flags.insert(f);
      return flags;
    }
  return {};
}

TEST(CpuFeatures, EveryCheckableNameIsKnown) {
  for (const char *f : qwen::bundle::kCheckableFeatures)
    EXPECT_NE(qwen_cpu_has_feature(f), -1) << f;
}

TEST(CpuFeatures, UnknownNamesRejected) {
  EXPECT_EQ(qwen_cpu_has_feature("avx9000"), -1);
  EXPECT_EQ(qwen_cpu_has_feature(""), -1);
  EXPECT_EQ(qwen_cpu_has_feature(nullptr), -1);
  EXPECT_EQ(qwen_cpu_has_feature("AVX2"), -1) << "names are LLVM's, lowercase";
}

#if defined(__x86_64__)
TEST(CpuFeatures, BaselineOfX8664V2) {
  std::set<std::string> flags = procCpuFlags();
  if (!flags.count("sse4_2"))
    GTEST_SKIP() << "not an x86-64-v2 machine";
  EXPECT_EQ(qwen_cpu_has_feature("sse3"), 1);
  EXPECT_EQ(qwen_cpu_has_feature("ssse3"), 1);
  EXPECT_EQ(qwen_cpu_has_feature("sse4.1"), 1);
  EXPECT_EQ(qwen_cpu_has_feature("sse4.2"), 1);
  EXPECT_EQ(qwen_cpu_has_feature("popcnt"), 1);
}

// cpuid agrees with the kernel's view (which also accounts for OS support).
TEST(CpuFeatures, AgreesWithProcCpuinfo) {
  std::set<std::string> flags = procCpuFlags();
  if (flags.empty())
    GTEST_SKIP() << "no /proc/cpuinfo";
  const std::map<std::string, std::string> kernelName = {
      {"sse3", "pni"},         {"sse4.1", "sse4_1"},
      {"sse4.2", "sse4_2"},    {"bmi", "bmi1"},
      {"lzcnt", "abm"},        {"avx512bf16", "avx512_bf16"},
      {"avx512vnni", "avx512_vnni"}, {"avx512fp16", "avx512_fp16"},
      {"avxvnni", "avx_vnni"}};
  for (const char *f : qwen::bundle::kCheckableFeatures) {
    auto it = kernelName.find(f);
    std::string k = it == kernelName.end() ? f : it->second;
    EXPECT_EQ(qwen_cpu_has_feature(f), flags.count(k) ? 1 : 0)
        << f << " (kernel flag " << k << ")";
  }
}
#endif

} // namespace
