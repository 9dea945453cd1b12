//===- CudaArchTest.cpp - the sm_XY compatibility rule of BundleABI.h -----===//

#include "qwen/Runtime/BundleABI.h"

#include <gtest/gtest.h>

using qwen::bundle::parseSmArch;
using qwen::bundle::SmArch;
using qwen::bundle::smArchRunsOn;

namespace {

TEST(CudaArch, Parses) {
  SmArch a;
  ASSERT_TRUE(parseSmArch("sm_80", a));
  EXPECT_EQ(a.major, 8);
  EXPECT_EQ(a.minor, 0);
  EXPECT_FALSE(a.specific);
  ASSERT_TRUE(parseSmArch("sm_90a", a));
  EXPECT_EQ(a.major, 9);
  EXPECT_EQ(a.minor, 0);
  EXPECT_TRUE(a.specific);
  ASSERT_TRUE(parseSmArch("sm_120", a));
  EXPECT_EQ(a.major, 12);
  EXPECT_EQ(a.minor, 0);
  for (const char *bad : {"", "sm_", "sm_8", "sm80", "compute_80", "sm_80b",
                          "sm_80aa", "sm_8x", "sm_05", "SM_80", "sm_999999"})
    EXPECT_FALSE(parseSmArch(bad, a)) << bad;
  EXPECT_FALSE(parseSmArch(nullptr, a));
}

TEST(CudaArch, SameMajorAndMinorAtLeast) {
  SmArch a;
  ASSERT_TRUE(parseSmArch("sm_80", a));
  EXPECT_TRUE(smArchRunsOn(a, 8, 0));
  EXPECT_TRUE(smArchRunsOn(a, 8, 6));
  EXPECT_TRUE(smArchRunsOn(a, 8, 9));
  EXPECT_FALSE(smArchRunsOn(a, 9, 0)); // SASS does not run across majors
  EXPECT_FALSE(smArchRunsOn(a, 7, 5));
  ASSERT_TRUE(parseSmArch("sm_86", a));
  EXPECT_FALSE(smArchRunsOn(a, 8, 0));
  EXPECT_TRUE(smArchRunsOn(a, 8, 9));
  ASSERT_TRUE(parseSmArch("sm_90", a));
  EXPECT_TRUE(smArchRunsOn(a, 9, 0));
  EXPECT_FALSE(smArchRunsOn(a, 8, 9));
  EXPECT_FALSE(smArchRunsOn(a, 10, 0));
}

TEST(CudaArch, ArchSpecificOnlyOnItsCapability) {
  SmArch a;
  ASSERT_TRUE(parseSmArch("sm_90a", a));
  EXPECT_TRUE(smArchRunsOn(a, 9, 0));
  EXPECT_FALSE(smArchRunsOn(a, 9, 1));
  EXPECT_FALSE(smArchRunsOn(a, 10, 0));
}

TEST(CudaArch, PtxJitsOnAnyNewerCapability) {
  SmArch a;
  ASSERT_TRUE(parseSmArch("sm_86", a));
  EXPECT_TRUE(ptxArchRunsOn(a, 8, 6));
  EXPECT_TRUE(ptxArchRunsOn(a, 8, 9));
  EXPECT_TRUE(ptxArchRunsOn(a, 9, 0)); // across majors, unlike SASS
  EXPECT_TRUE(ptxArchRunsOn(a, 12, 0));
  EXPECT_FALSE(ptxArchRunsOn(a, 8, 0));
  EXPECT_FALSE(ptxArchRunsOn(a, 7, 5));
  ASSERT_TRUE(parseSmArch("sm_90a", a));
  EXPECT_TRUE(ptxArchRunsOn(a, 9, 0));
  EXPECT_FALSE(ptxArchRunsOn(a, 10, 0));
}

} // namespace
