#include "core/config/vocab.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::config {
namespace {

using ::testing::HasSubstr;

// Bridge's test vectors (tests/unit_tests/utils/test_vocab_utils.py).
TEST(CalculatePaddedVocabSize, BridgeVectors) {
  EXPECT_EQ(*CalculatePaddedVocabSize(1024, 128, 8), 1024);
  EXPECT_EQ(*CalculatePaddedVocabSize(32000, 128, 8), 32768);
  EXPECT_EQ(*CalculatePaddedVocabSize(50000, 64, 4), 50176);
  EXPECT_EQ(*CalculatePaddedVocabSize(1000, 128, 1), 1024);
}

TEST(CalculatePaddedVocabSize, Gpt2DependsOnTensorParallelSize) {
  EXPECT_EQ(*CalculatePaddedVocabSize(50257, 128, 1), 50304);
  EXPECT_EQ(*CalculatePaddedVocabSize(50257, 128, 2), 50432);
}

TEST(CalculatePaddedVocabSize, RejectsNonPositiveArgumentsWithBridgeMessages) {
  struct Case {
    int64_t v, d, t;
    const char* prefix;
  };
  const Case cases[] = {
      {0, 128, 1, "vocab_size must be positive, got 0"},
      {-5, 128, 1, "vocab_size must be positive, got -5"},
      {1000, 0, 1, "make_vocab_size_divisible_by must be positive, got 0"},
      {1000, -1, 1, "make_vocab_size_divisible_by must be positive, got -1"},
      {1000, 128, 0, "tensor_model_parallel_size must be positive, got 0"},
      {1000, 128, -2, "tensor_model_parallel_size must be positive, got -2"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<int64_t> r = CalculatePaddedVocabSize(c.v, c.d, c.t);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.prefix));
  }
}

TEST(ModelVocabSize, PadsOnlyWhenAsked) {
  gptbuilder::v1::GPTModelConfig config;
  config.mutable_transformer()->set_tensor_model_parallel_size(2);
  config.set_vocab_size(32001);
  EXPECT_EQ(*ModelVocabSize(config), 32001);
  config.set_should_pad_vocab(true);
  EXPECT_EQ(*ModelVocabSize(config), 32256);  // multiple of 128 * 2
}

TEST(ModelVocabSize, UnsetVocabIsAnError) {
  gptbuilder::v1::GPTModelConfig config;
  absl::StatusOr<int64_t> r = ModelVocabSize(config);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("vocab_size"));
}

}  // namespace
}  // namespace gptb::config
