//===- WeightStoreTest.cpp - weight store reader/writer -------------------===//

#include "qwen/Support/WeightStore.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <unistd.h>

using namespace qwen::ws;

namespace {

std::string tempPath(const char *name) {
  return (testing::TempDir() + "/qws-" + std::to_string(::getpid()) + "-" +
          name);
}

std::string writeSample(const char *name) {
  std::string path = tempPath(name), error;
  auto w = WeightStoreWriter::create(path, error);
  EXPECT_TRUE(w) << error;
  float f[6] = {1, 2, 3, 4, 5, 6};
  int8_t q[3] = {-1, 0, 1};
  EXPECT_TRUE(w->add("a.weight", DType::F32, {2, 3}, f, sizeof(f), error));
  EXPECT_TRUE(w->add("q", DType::I8, {3}, q, sizeof(q), error));
  EXPECT_TRUE(w->add("scalar", DType::F32, {}, f, 4, error));
  EXPECT_TRUE(w->finish(error)) << error;
  return path;
}

std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeAll(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(WeightStore, RoundTrip) {
  std::string path = writeSample("roundtrip"), error;
  auto r = WeightStoreReader::open(path, error);
  ASSERT_TRUE(r) << error;
  ASSERT_EQ(r->entries().size(), 3u);
  const Entry *a = r->find("a.weight");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->offset % kAlignment, 0u);
  EXPECT_EQ(static_cast<const float *>(r->data(*a))[5], 6.0f);
  const Entry *q = r->find("q");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->offset % kAlignment, 0u);
  EXPECT_EQ(static_cast<const int8_t *>(r->data(*q))[0], -1);
  EXPECT_EQ(r->find("scalar")->numElements(), 1);
  EXPECT_EQ(r->find("missing"), nullptr);
}

// The runtime's residence: the same bytes in 2 MiB-aligned anonymous memory,
// read-only; release() leaves them (they have no file to come back from).
TEST(WeightStore, HugePagesResidence) {
  std::string path = writeSample("huge"), error;
  auto m = WeightStoreReader::open(path, error);
  auto h = WeightStoreReader::open(path, error, Residence::HugePages);
  ASSERT_TRUE(m && h) << error;
  EXPECT_EQ(h->residence(), Residence::HugePages);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(h->data(h->entries()[0])) %
                (uintptr_t(2) << 20),
            h->entries()[0].offset);
  ASSERT_EQ(h->entries().size(), m->entries().size());
  for (const Entry &e : m->entries()) {
    const Entry *he = h->find(e.name);
    ASSERT_TRUE(he);
    EXPECT_EQ(std::memcmp(h->data(*he), m->data(e), e.nbytes), 0) << e.name;
  }
  const Entry *a = h->find("a.weight");
  h->release(*a);
  EXPECT_EQ(static_cast<const float *>(h->data(*a))[5], 6.0f);
  // Truncated files fail the same way in both residences.
  std::string bytes = readAll(path);
  writeAll(path, bytes.substr(0, bytes.size() - 1));
  EXPECT_FALSE(WeightStoreReader::open(path, error, Residence::HugePages));
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  EXPECT_NE(error.find(path), std::string::npos) << error;
}

TEST(WeightStore, WriterRejectsBadEntries) {
  std::string path = tempPath("reject"), error;
  auto w = WeightStoreWriter::create(path, error);
  ASSERT_TRUE(w);
  float f[4] = {};
  EXPECT_FALSE(w->add("", DType::F32, {4}, f, sizeof(f), error));
  EXPECT_FALSE(w->add("x", DType::F32, {5}, f, sizeof(f), error));
  EXPECT_NE(error.find("does not match"), std::string::npos);
  EXPECT_FALSE(w->add("neg", DType::F32, {-4}, f, sizeof(f), error));
  EXPECT_TRUE(w->add("x", DType::F32, {4}, f, sizeof(f), error));
  EXPECT_FALSE(w->add("x", DType::F32, {4}, f, sizeof(f), error));
  EXPECT_NE(error.find("already used"), std::string::npos);
}

TEST(WeightStore, UnfinishedWriterLeavesNothing) {
  std::string path = tempPath("unfinished"), error;
  {
    auto w = WeightStoreWriter::create(path, error);
    float f[4] = {};
    ASSERT_TRUE(w->add("x", DType::F32, {4}, f, sizeof(f), error));
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);
}

TEST(WeightStore, EveryTruncationIsRejected) {
  std::string bytes = readAll(writeSample("truncate"));
  std::string path = tempPath("truncated"), error;
  for (size_t n = 0; n < bytes.size(); ++n) {
    writeAll(path, bytes.substr(0, n));
    EXPECT_FALSE(WeightStoreReader::open(path, error)) << "length " << n;
    EXPECT_NE(error.find(path), std::string::npos);
  }
}

TEST(WeightStore, EveryIndexByteFlipIsSafe) {
  // Flipping any byte of the header or index must give an error or a store
  // whose entries all lie inside the file, never an out-of-bounds read.
  std::string bytes = readAll(writeSample("flip"));
  std::string path = tempPath("flipped"), error;
  uint64_t indexOffset;
  std::memcpy(&indexOffset, bytes.data() + 24, 8);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i >= 64 && i < indexOffset)
      continue; // tensor data: any value is a valid payload
    std::string mutated = bytes;
    mutated[i] = static_cast<char>(mutated[i] ^ 0x5a);
    writeAll(path, mutated);
    auto r = WeightStoreReader::open(path, error);
    if (!r)
      continue;
    for (const Entry &e : r->entries())
      EXPECT_LE(e.offset + e.nbytes, r->fileBytes()) << "byte " << i;
  }
}

TEST(WeightStore, AliasSharesBytes) {
  std::string path = tempPath("alias"), error;
  auto w = WeightStoreWriter::create(path, error);
  ASSERT_TRUE(w) << error;
  int8_t q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(w->add("embed", DType::I8, {2, 4}, q, sizeof(q), error));
  ASSERT_TRUE(w->add("other", DType::I8, {8}, q, sizeof(q), error));
  // Another name, shape and dtype for the same 8 bytes.
  ASSERT_TRUE(w->addAlias("lm_head", "embed", DType::U8, {4, 2}, error)) << error;
  EXPECT_TRUE(w->contains("lm_head"));
  // Errors: a missing target, a used name, another byte size.
  EXPECT_FALSE(w->addAlias("x", "missing", DType::I8, {8}, error));
  EXPECT_NE(error.find("missing entry 'missing'"), std::string::npos) << error;
  EXPECT_FALSE(w->addAlias("other", "embed", DType::I8, {8}, error));
  EXPECT_FALSE(w->addAlias("y", "embed", DType::F32, {8}, error));
  EXPECT_NE(error.find("byte size"), std::string::npos) << error;
  ASSERT_TRUE(w->finish(error)) << error;
  auto r = WeightStoreReader::open(path, error);
  ASSERT_TRUE(r) << error;
  ASSERT_EQ(r->entries().size(), 3u);
  const Entry *e = r->find("embed"), *h = r->find("lm_head"), *o = r->find("other");
  ASSERT_TRUE(e && h && o);
  EXPECT_EQ(h->offset, e->offset);
  EXPECT_EQ(h->nbytes, e->nbytes);
  EXPECT_NE(o->offset, e->offset);
  EXPECT_EQ(h->dtype, DType::U8);
  EXPECT_EQ(h->shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(static_cast<const int8_t *>(r->data(*h))[7], 8);
}

TEST(WeightStore, MissingFile) {
  std::string error;
  EXPECT_FALSE(WeightStoreReader::open("/nonexistent/x.qws", error));
  EXPECT_NE(error.find("/nonexistent/x.qws"), std::string::npos);
}

} // namespace
