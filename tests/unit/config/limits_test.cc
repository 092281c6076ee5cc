// Request limits (core/config/limits.h): a config a hostile or careless client sends is refused
// by Finalize before anything is derived or allocated, naming the field, the limit and how to
// change it (issue 13).

#include "core/config/limits.h"

#include <cstdint>
#include <string>

#include "core/config/finalize.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::config {
namespace {

using gptbuilder::v1::GPTModelConfig;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::SizeIs;

GPTModelConfig Tiny() {
  GPTModelConfig c;
  c.set_vocab_size(128);
  c.set_seq_length(16);
  auto* t = c.mutable_transformer();
  t->set_num_layers(2);
  t->set_hidden_size(16);
  t->set_num_attention_heads(2);
  return c;
}

std::vector<FieldViolation> Refused(const GPTModelConfig& config, FinalizeOptions options = {}) {
  absl::StatusOr<GPTModelConfig> r = Finalize(config, options);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return {};
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return ViolationsFromStatus(r.status());
}

auto Violation(const std::string& field, const std::string& reason, const std::string& text) {
  return AllOf(Field(&FieldViolation::field, field), Field(&FieldViolation::reason, reason),
               Field(&FieldViolation::description, HasSubstr(text)));
}

TEST(Limits, TheTinyConfigIsWithinThem) { EXPECT_TRUE(Finalize(Tiny(), {8}).ok()); }

// 10^9 layers grew the coordinator to 23.7 GB; now a violation naming the flag.
TEST(Limits, ABillionLayersIsRefusedNamingTheFlag) {
  GPTModelConfig c = Tiny();
  c.mutable_transformer()->set_num_layers(1000000000);
  EXPECT_THAT(Refused(c),
              Contains(Violation("transformer.num_layers", "LIMIT_EXCEEDED", "--max-num-layers")));
  FinalizeOptions raised;
  raised.limits.max_num_layers = 2000000000;
  // Raised, the config is taken as far as the limits go (its own rules still apply).
  absl::StatusOr<GPTModelConfig> r = Finalize(c, raised);
  if (!r.ok()) {
    for (const FieldViolation& v : ViolationsFromStatus(r.status())) {
      EXPECT_NE(v.reason, "LIMIT_EXCEEDED") << v.field;
    }
  }
}

TEST(Limits, WorldSizesOutOfRangeAreRefused) {
  EXPECT_THAT(Refused(Tiny(), {1000000}),
              Contains(Violation("world_size", "LIMIT_EXCEEDED", "--max-world-size")));
  EXPECT_THAT(Refused(Tiny(), {-1}), Contains(Violation("world_size", "NOT_POSITIVE", "-1")));
  EXPECT_THAT(Refused(Tiny(), {0}), Contains(Violation("world_size", "NOT_POSITIVE", "0")));
  FinalizeOptions small;
  small.world_size = 16;
  small.limits.max_world_size = 8;
  EXPECT_THAT(Refused(Tiny(), small),
              Contains(Violation("world_size", "LIMIT_EXCEEDED", "limit of 8 ranks")));
}

// Parallel sizes whose smallest world is past the limit are refused even without a world size,
// and products that would overflow never get computed.
TEST(Limits, ParallelSizesNeedingTooManyRanksAreRefused) {
  GPTModelConfig c = Tiny();
  c.mutable_transformer()->set_tensor_model_parallel_size(2048);
  c.mutable_transformer()->set_pipeline_model_parallel_size(1024);
  EXPECT_THAT(Refused(c), Contains(Violation("world_size", "LIMIT_EXCEEDED", "at least 2097152")));
  c.mutable_transformer()->set_tensor_model_parallel_size(2147483647);
  c.mutable_transformer()->set_context_parallel_size(2147483647);
  EXPECT_THAT(Refused(c), Contains(Violation("transformer.tensor_model_parallel_size",
                                             "LIMIT_EXCEEDED", "--max-world-size")));
}

// vocab_size 2^62 planned to 208,256 parameters (wrapped arithmetic); 2^58 passed validation.
TEST(Limits, HugeVocabulariesAndWidthsAreRefused) {
  GPTModelConfig c = Tiny();
  c.set_vocab_size(int64_t{1} << 62);
  EXPECT_THAT(Refused(c), Contains(Violation("vocab_size", "LIMIT_EXCEEDED", "2147483647")));
  c = Tiny();
  c.mutable_transformer()->set_hidden_size(1 << 30);
  EXPECT_THAT(Refused(c),
              Contains(Violation("transformer.hidden_size", "LIMIT_EXCEEDED", "16777216")));
}

TEST(Limits, PipelineChunksAreBounded) {
  GPTModelConfig c = Tiny();
  c.mutable_transformer()->set_pipeline_model_parallel_size(2);
  c.mutable_transformer()->set_virtual_pipeline_model_parallel_size(1000);
  EXPECT_THAT(Refused(c), Contains(Violation("transformer.pipeline_model_parallel_size",
                                             "LIMIT_EXCEEDED", "model chunks")));
  // A layout string implies its chunks: 2 * 600 stages for pp 2.
  c = Tiny();
  c.mutable_transformer()->set_pipeline_model_parallel_size(2);
  c.mutable_transformer()->set_pipeline_model_parallel_layout("Et|t(|)*1197L");
  EXPECT_THAT(Refused(c), Contains(Violation("transformer.pipeline_model_parallel_size",
                                             "LIMIT_EXCEEDED", "model chunks")));
}

// A list of a million bad entries gives a bounded answer (and no million-line message).
TEST(Limits, ViolationListsAreBounded) {
  GPTModelConfig c = Tiny();
  FinalizeOptions options;
  options.limits.max_num_layers = 1 << 21;
  c.mutable_transformer()->set_num_layers(200000);
  c.mutable_transformer()->set_num_moe_experts(4);
  for (int i = 0; i < 200000; ++i) c.mutable_transformer()->add_moe_layer_freq(7);
  absl::StatusOr<GPTModelConfig> r = Finalize(c, options);
  ASSERT_FALSE(r.ok());
  const std::vector<FieldViolation> violations = ViolationsFromStatus(r.status());
  EXPECT_THAT(violations, SizeIs(Violations::kMaxListed + 1));
  EXPECT_THAT(violations.back(), Violation("", "TOO_MANY_VIOLATIONS", "more violations"));
  EXPECT_LT(r.status().message().size(), 200u * 1024);
}

TEST(Limits, EchoedValuesAreExcerpts) {
  GPTModelConfig c = Tiny();
  c.mutable_transformer()->set_activation_func(std::string(10 << 20, 'x') + "\xff");
  absl::StatusOr<GPTModelConfig> r = Finalize(c);
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 8u * 1024);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("bytes)"));
}

TEST(Limits, MinimalWorldSizeSaturatesInsteadOfOverflowing) {
  gptbuilder::v1::TransformerConfig t;
  t.set_tensor_model_parallel_size(2147483647);
  t.set_context_parallel_size(2147483647);
  t.set_pipeline_model_parallel_size(2147483647);
  EXPECT_EQ(MinimalWorldSize(t), INT64_MAX);
  t.set_tensor_model_parallel_size(2);
  t.set_context_parallel_size(1);
  t.set_pipeline_model_parallel_size(3);
  t.set_expert_model_parallel_size(4);
  EXPECT_EQ(MinimalWorldSize(t), 24);  // pp 3 * lcm(tp * cp = 2, etp (= tp) * ep = 8)
}

}  // namespace
}  // namespace gptb::config
