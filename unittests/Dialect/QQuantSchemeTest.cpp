//===- QQuantSchemeTest.cpp - scheme sizes and component layout -----------===//

#include "qwen/Dialect/QQuant/QQuantDialect.h"
#include "qwen/InitAll.h"
#include "qwen/Transforms/WeightStoreAccess.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace qwen;
using namespace qwen::qquant;

namespace {

class SchemeTest : public testing::Test {
protected:
  SchemeTest() {
    DialectRegistry registry;
    registerQwenDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }
  WeightType parse(StringRef text) {
    return cast<WeightType>(parseType(text, &ctx));
  }
  MLIRContext ctx;
};

TEST_F(SchemeTest, BitsPerWeight) {
  // 4 bits + one f16 scale per 128 weights = 4.125.
  EXPECT_DOUBLE_EQ(parse("!qquant.weight<4096x4096xf32, i4, symmetric, group = 128>")
                       .getScheme()
                       .getBitsPerWeight(4096, 4096),
                   4.125);
  // Asymmetric adds an 8-bit zero point per group: 4 + 24/32 = 4.75.
  EXPECT_DOUBLE_EQ(parse("!qquant.weight<64x64xf32, ui4, asymmetric, group = 32>")
                       .getScheme()
                       .getBitsPerWeight(64, 64),
                   4.75);
  // Per-channel int8 on 1024 inputs: 8 + 16/1024.
  EXPECT_DOUBLE_EQ(parse("!qquant.weight<16x1024xf32, i8, symmetric, channel>")
                       .getScheme()
                       .getBitsPerWeight(16, 1024),
                   8.0 + 16.0 / 1024);
  // 2:4 halves the codes and adds 2 bits per kept value: (4.125 / 2) + 1.
  EXPECT_DOUBLE_EQ(
      parse("!qquant.weight<128x128xf32, i4, symmetric, group = 128, sparsity = 2:4>")
          .getScheme()
          .getBitsPerWeight(128, 128),
      4.125 / 2 + 1);
}

TEST_F(SchemeTest, ComponentsFollowTheScheme) {
  auto sym = getWeightComponents(
      parse("!qquant.weight<96x64xf32, i4, symmetric, group = 32>"));
  ASSERT_EQ(sym.size(), 2u);
  EXPECT_EQ(sym[0].suffix, ".codes");
  EXPECT_EQ(sym[0].shape, (SmallVector<int64_t, 3>{96, 32}));
  EXPECT_EQ(sym[1].suffix, ".scales");
  EXPECT_EQ(sym[1].shape, (SmallVector<int64_t, 3>{96, 2}));

  auto asym = getWeightComponents(
      parse("!qquant.weight<96x64xf32, ui8, asymmetric, channel>"));
  ASSERT_EQ(asym.size(), 3u);
  EXPECT_EQ(asym[2].suffix, ".zeros");
  EXPECT_EQ(asym[2].shape, (SmallVector<int64_t, 3>{96, 1}));

  // 3-bit codes pack 64 weights into 24 bytes.
  auto cb = getWeightComponents(
      parse("!qquant.weight<96x64xf32, codebook 3, group = 32>"));
  ASSERT_EQ(cb.size(), 2u);
  EXPECT_EQ(cb[0].shape, (SmallVector<int64_t, 3>{96, 24}));
  EXPECT_EQ(cb[1].suffix, ".codebook");
  EXPECT_EQ(cb[1].shape, (SmallVector<int64_t, 3>{192, 8}));

  auto sparse = getWeightComponents(
      parse("!qquant.weight<96x64xf32, i4, symmetric, channel, sparsity = unstructured>"));
  ASSERT_EQ(sparse.size(), 3u);
  EXPECT_EQ(sparse[2].suffix, ".mask");
  EXPECT_EQ(sparse[2].shape, (SmallVector<int64_t, 3>{96, 8}));
}

TEST_F(SchemeTest, StoreDTypesRoundTrip) {
  for (auto d : {ws::DType::F32, ws::DType::F16, ws::DType::BF16,
                 ws::DType::F64, ws::DType::I8, ws::DType::U8, ws::DType::I16,
                 ws::DType::I32, ws::DType::I64, ws::DType::Bool})
    EXPECT_EQ(toStoreDType(fromStoreDType(&ctx, d)), d);
}

} // namespace
