// Finalize applies Megatron's PipelineParallelLayerLayout rules to
// pipeline_model_parallel_layout and derives the virtual pipeline size from it.
#include "core/config/finalize.h"
#include "core/config/violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::config {
namespace {

using ::testing::HasSubstr;

gptbuilder::v1::GPTModelConfig Config(const std::string& layout, int pp, int layers = 8) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(layers);
  t->set_hidden_size(64);
  t->set_num_attention_heads(4);
  t->set_pipeline_model_parallel_size(pp);
  t->set_pipeline_model_parallel_layout(layout);
  c.set_vocab_size(1024);
  return c;
}

TEST(FinalizePipelineLayout, DerivesVirtualPipelineSize) {
  gptbuilder::v1::GPTModelConfig c = Config("E|(tt|)*2,(t|)*4,mL", 4);
  c.mutable_transformer()->set_mtp_num_layers(1);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(c);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->transformer().virtual_pipeline_model_parallel_size(), 2);
  // A layout with one chunk per rank leaves VP unset.
  f = Finalize(Config("Ettttt|tttL", 2));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->transformer().has_virtual_pipeline_model_parallel_size());
}

TEST(FinalizePipelineLayout, ReportsEveryProblem) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(Config("tEtt|ttt", 2));
  ASSERT_FALSE(f.ok());
  std::vector<FieldViolation> v = ViolationsFromStatus(f.status());
  std::string all;
  for (const FieldViolation& x : v) {
    EXPECT_EQ(x.field, "transformer.pipeline_model_parallel_layout");
    all += x.description + "\n";
  }
  EXPECT_THAT(all, HasSubstr("first layer"));
  EXPECT_THAT(all, HasSubstr("loss 'L'"));
  EXPECT_THAT(all, HasSubstr("6 decoder layers"));
}

TEST(FinalizePipelineLayout, GrammarAndStageCount) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(Config("Ett|tq|L", 3));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("invalid layer character 'q'"));
  f = Finalize(Config("Etttt|ttttL|", 2));  // 3 stages over 2 ranks
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("not a multiple"));
}

TEST(FinalizePipelineLayout, VirtualSizeMustAgree) {
  gptbuilder::v1::GPTModelConfig c = Config("Ett|tt|tt|ttL", 2);
  c.mutable_transformer()->set_virtual_pipeline_model_parallel_size(3);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = Finalize(c);
  ASSERT_FALSE(f.ok());
  std::vector<FieldViolation> v = ViolationsFromStatus(f.status());
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].field, "transformer.virtual_pipeline_model_parallel_size");
  EXPECT_EQ(v[0].reason, "LAYOUT_VP_CONFLICT");
  c.mutable_transformer()->set_virtual_pipeline_model_parallel_size(2);
  EXPECT_TRUE(Finalize(c).ok());
}

}  // namespace
}  // namespace gptb::config
