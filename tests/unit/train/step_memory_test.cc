// A train step's memory estimate (issue 13: num_micro_batches 2^31-1 or micro_batch_size 10^9
// failed a worker with bad_alloc, which failed and released the model).

#include "core/train/step_memory.h"

#include "core/config/finalize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::train {
namespace {

using ::testing::HasSubstr;

plan::ModelPlan TinyPlan(int pp, int world) {
  gptbuilder::v1::GPTModelConfig c;
  c.set_vocab_size(1000);
  c.set_seq_length(128);
  auto* t = c.mutable_transformer();
  t->set_num_layers(4);
  t->set_hidden_size(64);
  t->set_num_attention_heads(8);
  t->set_pipeline_model_parallel_size(pp);
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> f = config::Finalize(c, {world});
  EXPECT_TRUE(f.ok()) << f.status();
  plan::PlanOptions options;
  options.world_size = world;
  absl::StatusOr<plan::ModelPlan> p = plan::ModelPlan::Create(*f, options);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

gptbuilder::v1::TrainOptions Sizes(int mbs, int num_mb) {
  gptbuilder::v1::TrainOptions o;
  o.set_micro_batch_size(mbs);
  o.set_num_micro_batches(num_mb);
  return o;
}

TEST(StepMemory, GrowsWithTheBatchAndCountsTheModelState) {
  const plan::ModelPlan plan = TinyPlan(1, 1);
  const StepMemory small = EstimateStepMemory(plan, 0, Sizes(1, 1), 128);
  EXPECT_EQ(small.model_state, plan.Rank(0).memory.total_bytes());
  EXPECT_GT(small.activations, 0);
  EXPECT_GT(small.logits, 0);
  const StepMemory wide = EstimateStepMemory(plan, 0, Sizes(8, 1), 128);
  EXPECT_EQ(wide.activations, 8 * small.activations);
  // Without a pipeline one micro-batch is in flight: more of them add token ids only.
  const StepMemory many = EstimateStepMemory(plan, 0, Sizes(1, 64), 128);
  EXPECT_EQ(many.activations, small.activations);
  EXPECT_GT(many.token_ids, small.token_ids);
}

TEST(StepMemory, PipelineRanksHoldTheirWarmUpMicroBatches) {
  const plan::ModelPlan plan = TinyPlan(2, 2);
  const StepMemory first = EstimateStepMemory(plan, 0, Sizes(1, 8), 128);
  const StepMemory last = EstimateStepMemory(plan, 1, Sizes(1, 8), 128);
  EXPECT_EQ(first.in_flight_micro_batches, 2);
  EXPECT_EQ(last.in_flight_micro_batches, 1);
  EXPECT_EQ(first.logits, 0);
  EXPECT_GT(last.logits, 0);
}

TEST(StepMemory, AbsurdBatchesAreRefusedNamingTheRankAndTheFix) {
  const plan::ModelPlan plan = TinyPlan(1, 1);
  const int64_t budget = int64_t{1} << 30;
  EXPECT_TRUE(CheckStepMemory(plan, {budget}, Sizes(4, 4), 128).ok());
  const absl::Status huge = CheckStepMemory(plan, {budget}, Sizes(1000000000, 1), 128);
  EXPECT_EQ(huge.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(huge.message()), HasSubstr("rank 0"));
  EXPECT_THAT(std::string(huge.message()), HasSubstr("lower micro_batch_size"));
  EXPECT_EQ(CheckStepMemory(plan, {budget}, Sizes(2147483647, 2147483647), 128).code(),
            absl::StatusCode::kResourceExhausted);
  // An unknown budget is not checked.
  EXPECT_TRUE(CheckStepMemory(plan, {0}, Sizes(1000000000, 1), 128).ok());
}

}  // namespace
}  // namespace gptb::train
