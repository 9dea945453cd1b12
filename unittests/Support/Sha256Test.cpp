//===- Sha256Test.cpp - SHA-256 against the NIST test vectors -------------===//

#include "qwen/Support/Sha256.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

using qwen::Sha256;
using qwen::sha256File;
using qwen::sha256Hex;

namespace {

TEST(Sha256, Empty) {
  EXPECT_EQ(sha256Hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Abc) {
  EXPECT_EQ(sha256Hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, TwoBlockMessage448Bits) {
  const std::string m =
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  ASSERT_EQ(m.size() * 8, 448u);
  EXPECT_EQ(sha256Hex(m.data(), m.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, Message896Bits) {
  const std::string m =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
      "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  EXPECT_EQ(sha256Hex(m.data(), m.size()),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, MillionAs) {
  const std::string m(1000000, 'a');
  EXPECT_EQ(sha256Hex(m.data(), m.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Incremental updates in odd pieces give the one-shot digest, including at
// the padding boundaries (55, 56, 63, 64 bytes).
TEST(Sha256, IncrementalMatchesOneShot) {
  std::string m;
  for (int i = 0; i < 300; ++i)
    m.push_back(char(i * 7 + 3));
  for (size_t len : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300}) {
    std::string whole = sha256Hex(m.data(), len);
    for (size_t piece : {1, 3, 13, 64, 100}) {
      Sha256 h;
      for (size_t at = 0; at < len; at += piece)
        h.update(m.data() + at, std::min(piece, len - at));
      EXPECT_EQ(h.finishHex(), whole) << "len " << len << " piece " << piece;
    }
  }
}

// The x86 SHA-extension path (used above where the CPU has it) and the
// portable path give the same digests.
TEST(Sha256, PortableAndAcceleratedPathsAgree) {
  const bool hadAccel = qwen::detail::sha256SetAccelerated(true);
  std::string data(5000, '\0');
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = char((i * 2654435761u) >> 7);
  std::vector<std::string> accel;
  for (size_t len : {0, 3, 55, 56, 64, 65, 127, 128, 1000, 4999, 5000})
    accel.push_back(sha256Hex(data.data(), len));
  qwen::detail::sha256SetAccelerated(false);
  EXPECT_EQ(sha256Hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string m(1000000, 'a');
  EXPECT_EQ(sha256Hex(m.data(), m.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  size_t k = 0;
  for (size_t len : {0, 3, 55, 56, 64, 65, 127, 128, 1000, 4999, 5000})
    EXPECT_EQ(sha256Hex(data.data(), len), accel[k++]) << len;
  qwen::detail::sha256SetAccelerated(hadAccel);
  if (!hadAccel)
    GTEST_SKIP() << "no SHA extensions on this CPU: only the portable path ran";
}

TEST(Sha256, FileAcrossChunks) {
  std::string path = testing::TempDir() + "/sha-" + std::to_string(getpid());
  // Larger than the 1 MiB read chunk so the stream crosses a boundary.
  std::string data(3 * (1 << 20) + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = char((i * 2654435761u) >> 13);
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size());
  std::fclose(f);
  std::string hex, error;
  ASSERT_TRUE(sha256File(path, hex, error)) << error;
  EXPECT_EQ(hex, sha256Hex(data.data(), data.size()));
  std::remove(path.c_str());

  EXPECT_FALSE(sha256File(path, hex, error));
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

} // namespace
