// Bounded planning (issue 13): a plan refuses to list more than its tensor budget, size
// arithmetic never wraps, and the JSON of a large world grows linearly with it (PlanModel on a
// world of 4,000 ranks peaked at 2.2 GB with per-rank group member lists).

#include <cstdint>
#include <string>

#include "core/config/finalize.h"
#include "core/plan/model_plan.h"
#include "core/plan/plan_description.h"
#include "core/plan/plan_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::plan {
namespace {

using gptbuilder::v1::GPTModelConfig;
using ::testing::HasSubstr;

GPTModelConfig Finalized(int layers, int tp, int64_t world) {
  GPTModelConfig c;
  c.set_vocab_size(128);
  c.set_seq_length(16);
  auto* t = c.mutable_transformer();
  t->set_num_layers(layers);
  t->set_hidden_size(16);
  t->set_num_attention_heads(4);
  t->set_tensor_model_parallel_size(tp);
  absl::StatusOr<GPTModelConfig> f = config::Finalize(c, {world});
  EXPECT_TRUE(f.ok()) << f.status();
  return *f;
}

TEST(PlanLimits, ThePlanTensorBudgetIsEnforcedWhilePlanning) {
  const GPTModelConfig config = Finalized(64, 2, 2);
  PlanOptions options;
  options.world_size = 2;
  absl::StatusOr<ModelPlan> full = ModelPlan::Create(config, options);
  ASSERT_TRUE(full.ok()) << full.status();
  int64_t entries = static_cast<int64_t>(full->stages().size());
  for (const StagePlan& s : full->stages()) entries += static_cast<int64_t>(s.params.size());
  options.max_plan_tensors = entries;
  EXPECT_TRUE(ModelPlan::Create(config, options).ok());
  options.max_plan_tensors = entries - 1;
  absl::StatusOr<ModelPlan> over = ModelPlan::Create(config, options);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("--max-plan-tensors"));
}

// A config past Finalize's fixed bounds (planned directly) must not wrap: 2^40 rows of 2^24.
TEST(PlanLimits, SizesThatDoNotFitInt64AreRefusedNotWrapped) {
  GPTModelConfig config = Finalized(2, 1, 1);
  config.set_vocab_size(int64_t{1} << 40);
  config.set_should_pad_vocab(false);
  config.mutable_transformer()->set_hidden_size(1 << 24);
  config.mutable_transformer()->set_num_attention_heads(1);
  config.mutable_transformer()->set_kv_channels(1 << 24);
  config.mutable_transformer()->set_ffn_hidden_size(16);
  PlanOptions options;
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(config, options);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("too large to plan"));
}

TEST(PlanLimits, JsonOfALargeWorldIsLinearInIt) {
  const int world = 4096;
  const GPTModelConfig config = Finalized(2, 1, world);
  PlanOptions options;
  options.world_size = world;
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(config, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::string json = PlanToJson(DescribePlan(*plan)).dump();
  // Every group once plus a fixed-size record per rank; members per rank would be ~world^2.
  EXPECT_LT(json.size(), static_cast<size_t>(world) * 1024);
  const nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["ranks"].size(), static_cast<size_t>(world));
  EXPECT_EQ(parsed["process_groups"]["dp"].size(), 1u);
  EXPECT_EQ(parsed["process_groups"]["dp"][0].size(), static_cast<size_t>(world));
  EXPECT_EQ(parsed["ranks"][5]["groups"]["dp"], 0);
  EXPECT_EQ(parsed["ranks"][5]["groups"]["tp"], 5);
  // A page of ranks.
  DescribeOptions page;
  page.first_rank = 4000;
  page.num_ranks = 1000;
  page.process_groups = false;
  const nlohmann::json tail = PlanToJson(DescribePlan(*plan, page));
  ASSERT_EQ(tail["ranks"].size(), 96u);
  EXPECT_EQ(tail["ranks"][0]["rank"], 4000);
  EXPECT_FALSE(tail.contains("process_groups"));
}

}  // namespace
}  // namespace gptb::plan
