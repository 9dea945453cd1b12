//===- CpuFeatures.cpp - which x86 features this CPU and OS support -------===//
//
// cpuid for the instruction sets, xgetbv for the register state the OS saves
// (AVX needs XMM+YMM, AVX-512 also opmask and the upper ZMM halves): a CPU
// that has AVX-512 under an OS that does not enable it must not run AVX-512
// code.
//
//===----------------------------------------------------------------------===//

#include "RuntimeImpl.h"

#include "qwen/Runtime/BundleABI.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define QWEN_X86 1
#endif

namespace qwen::rt {

namespace {

struct HostFeatures {
  bool sse3 = false, ssse3 = false, sse41 = false, sse42 = false,
       popcnt = false, avx = false, avx2 = false, fma = false, f16c = false,
       bmi = false, bmi2 = false, lzcnt = false, movbe = false,
       avx512f = false, avx512bw = false, avx512cd = false, avx512dq = false,
       avx512vl = false, avx512vnni = false, avx512bf16 = false,
       avx512fp16 = false, avxvnni = false;
};

#ifdef QWEN_X86
uint64_t readXcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

HostFeatures detect() {
  HostFeatures f;
#ifdef QWEN_X86
  unsigned a, b, c, d;
  unsigned maxLeaf = __get_cpuid_max(0, nullptr);
  if (maxLeaf < 1)
    return f;
  __cpuid_count(1, 0, a, b, c, d);
  auto bit = [](unsigned reg, int n) { return ((reg >> n) & 1u) != 0; };
  f.sse3 = bit(c, 0);
  f.ssse3 = bit(c, 9);
  f.fma = bit(c, 12);
  f.sse41 = bit(c, 19);
  f.sse42 = bit(c, 20);
  f.movbe = bit(c, 22);
  f.popcnt = bit(c, 23);
  bool osxsave = bit(c, 27);
  bool avxCpu = bit(c, 28);
  bool f16cCpu = bit(c, 29);
  uint64_t xcr0 = osxsave ? readXcr0() : 0;
  bool avxState = (xcr0 & 0x6) == 0x6;      // XMM, YMM
  bool avx512State = (xcr0 & 0xe6) == 0xe6; // + opmask, ZMM_Hi256, Hi16_ZMM
  f.avx = avxCpu && avxState;
  f.fma = f.fma && avxState;
  f.f16c = f16cCpu && avxState;
  if (maxLeaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    unsigned maxSub = a;
    f.bmi = bit(b, 3);
    f.avx2 = bit(b, 5) && avxState;
    f.bmi2 = bit(b, 8);
    f.avx512f = bit(b, 16) && avx512State;
    f.avx512dq = bit(b, 17) && avx512State;
    f.avx512cd = bit(b, 28) && avx512State;
    f.avx512bw = bit(b, 30) && avx512State;
    f.avx512vl = bit(b, 31) && avx512State;
    f.avx512vnni = bit(c, 11) && avx512State;
    f.avx512fp16 = bit(d, 23) && avx512State;
    if (maxSub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avxvnni = bit(a, 4) && avxState;
      f.avx512bf16 = bit(a, 5) && avx512State;
    }
  }
  unsigned maxExt = __get_cpuid_max(0x80000000u, nullptr);
  if (maxExt >= 0x80000001u) {
    __cpuid_count(0x80000001u, 0, a, b, c, d);
    f.lzcnt = bit(c, 5);
  }
#endif
  return f;
}

const HostFeatures &host() {
  static const HostFeatures f = detect();
  return f;
}

} // namespace

int cpuHasFeature(const char *name) {
  if (!name)
    return -1;
  const HostFeatures &f = host();
  struct {
    const char *name;
    bool value;
  } table[] = {
      {"sse3", f.sse3},         {"ssse3", f.ssse3},
      {"sse4.1", f.sse41},      {"sse4.2", f.sse42},
      {"popcnt", f.popcnt},     {"avx", f.avx},
      {"avx2", f.avx2},         {"fma", f.fma},
      {"f16c", f.f16c},         {"bmi", f.bmi},
      {"bmi2", f.bmi2},         {"lzcnt", f.lzcnt},
      {"movbe", f.movbe},       {"avx512f", f.avx512f},
      {"avx512bw", f.avx512bw}, {"avx512cd", f.avx512cd},
      {"avx512dq", f.avx512dq}, {"avx512vl", f.avx512vl},
      {"avx512vnni", f.avx512vnni}, {"avx512bf16", f.avx512bf16},
      {"avx512fp16", f.avx512fp16}, {"avxvnni", f.avxvnni},
  };
  static_assert(sizeof(table) / sizeof(table[0]) ==
                    sizeof(bundle::kCheckableFeatures) /
                        sizeof(bundle::kCheckableFeatures[0]),
                "every checkable feature has a detector");
  for (const auto &e : table)
    if (std::strcmp(e.name, name) == 0)
      return e.value ? 1 : 0;
  return -1;
}

} // namespace qwen::rt
