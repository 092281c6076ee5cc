// Reference parameter counts of spec megatron-core-gpt.md §8 (tp=2, pp=2 per rank, and whole
// model totals at tp=1, pp=1), for GPT-2 small, Llama-3-8B and Mixtral-8x7B.
#include "core/plan/model_plan.h"
#include "gtest/gtest.h"

namespace gptb::plan {
namespace {

gptbuilder::v1::GPTModelConfig Gpt2Small(int tp, int pp, bool pad) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(12);
  t->set_hidden_size(768);
  t->set_num_attention_heads(12);
  t->set_num_query_groups(12);
  t->set_kv_channels(64);
  t->set_ffn_hidden_size(3072);
  t->set_tensor_model_parallel_size(tp);
  t->set_pipeline_model_parallel_size(pp);
  t->set_expert_tensor_parallel_size(tp);
  if (pp > 1) t->set_pipeline_dtype("float32");
  c.set_vocab_size(50257);
  c.set_should_pad_vocab(pad);
  c.set_share_embeddings_and_output_weights(true);
  return c;  // defaults: LayerNorm, gelu, biases, learned_absolute, seq 1024, TE spec
}

gptbuilder::v1::GPTModelConfig Llama3(int tp, int pp) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(32);
  t->set_hidden_size(4096);
  t->set_num_attention_heads(32);
  t->set_num_query_groups(8);
  t->set_kv_channels(128);
  t->set_ffn_hidden_size(14336);
  t->set_normalization("RMSNorm");
  t->set_activation_func("silu");
  t->set_gated_linear_unit(true);
  t->set_add_bias_linear(false);
  t->set_tensor_model_parallel_size(tp);
  t->set_pipeline_model_parallel_size(pp);
  t->set_expert_tensor_parallel_size(tp);
  if (pp > 1) t->set_pipeline_dtype("float32");
  c.set_vocab_size(128256);
  c.set_position_embedding_type("rope");
  c.set_seq_length(8192);
  return c;
}

gptbuilder::v1::GPTModelConfig Mixtral(int tp, int pp, int ep) {
  gptbuilder::v1::GPTModelConfig c = Llama3(tp, pp);
  c.set_vocab_size(32000);
  auto* t = c.mutable_transformer();
  t->set_num_moe_experts(8);
  t->set_moe_router_topk(2);
  t->set_moe_ffn_hidden_size(14336);
  t->set_expert_model_parallel_size(ep);
  return c;
}

absl::StatusOr<ModelPlan> Plan(const gptbuilder::v1::GPTModelConfig& c, int world) {
  PlanOptions o;
  o.world_size = world;
  return ModelPlan::Create(c, o);
}

const StagePlan& Stage(const ModelPlan& plan, int tp_rank, int pp_rank, int ep_rank = 0) {
  for (const StagePlan& s : plan.stages()) {
    if (s.tp_rank == tp_rank && s.pp_rank == pp_rank && s.ep_rank == ep_rank) return s;
  }
  ADD_FAILURE() << "no stage";
  return plan.stages().front();
}

TEST(ParameterCounts, Gpt2SmallTp2Pp2) {
  absl::StatusOr<ModelPlan> plan = Plan(Gpt2Small(2, 2, true), 4);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->padded_vocab_size(), 50432);
  for (int tp = 0; tp < 2; ++tp) {
    EXPECT_EQ(Stage(*plan, tp, 0).num_params, 41429760);
    EXPECT_EQ(Stage(*plan, tp, 1).num_params, 40644864);  // includes the tied output copy
  }
}

TEST(ParameterCounts, Llama3_8BTp2Pp2) {
  absl::StatusOr<ModelPlan> plan = Plan(Llama3(2, 2), 4);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(Stage(*plan, 0, 0).num_params, 2007629824);
  EXPECT_EQ(Stage(*plan, 1, 1).num_params, 2007633920);
}

TEST(ParameterCounts, Mixtral8x7BTp2Pp2Ep2) {
  absl::StatusOr<ModelPlan> plan = Plan(Mixtral(2, 2, 2), 8);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->topology().dp(), 2);
  EXPECT_EQ(plan->topology().edp(), 1);
  for (int ep = 0; ep < 2; ++ep) {
    const StagePlan& first = Stage(*plan, 0, 0, ep);
    EXPECT_EQ(first.num_params, 6038880256);
    EXPECT_EQ(first.expert_params, 5637144576);
    EXPECT_EQ(first.num_params - first.expert_params, 401735680);
    EXPECT_EQ(Stage(*plan, 1, 1, ep).num_params, 6038884352);
  }
}

TEST(ParameterCounts, MixtralWithoutExpertParallelism) {
  absl::StatusOr<ModelPlan> plan = Plan(Mixtral(2, 2, 1), 4);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(Stage(*plan, 0, 0).num_params, 11676024832);
}

TEST(ParameterCounts, WholeModelTotals) {
  absl::StatusOr<ModelPlan> gpt2 = Plan(Gpt2Small(1, 1, false), 1);
  ASSERT_TRUE(gpt2.ok());
  EXPECT_EQ(gpt2->TotalParameters(), 124439808);
  absl::StatusOr<ModelPlan> gpt2_padded = Plan(Gpt2Small(1, 1, true), 1);
  ASSERT_TRUE(gpt2_padded.ok());
  EXPECT_EQ(gpt2_padded->TotalParameters(), 124475904);
  absl::StatusOr<ModelPlan> llama = Plan(Llama3(1, 1), 1);
  ASSERT_TRUE(llama.ok());
  EXPECT_EQ(llama->TotalParameters(), 8030261248);
  absl::StatusOr<ModelPlan> mixtral = Plan(Mixtral(1, 1, 1), 1);
  ASSERT_TRUE(mixtral.ok());
  EXPECT_EQ(mixtral->TotalParameters(), 46702792704);
  // The totals do not depend on the layout: tied copies and shards are counted once.
  absl::StatusOr<ModelPlan> mixtral_split = Plan(Mixtral(2, 2, 2), 8);
  ASSERT_TRUE(mixtral_split.ok());
  EXPECT_EQ(mixtral_split->TotalParameters(), 46702792704);
}

TEST(RankMemory, FormulaForFp32AndBf16) {
  gptbuilder::v1::GPTModelConfig c = Gpt2Small(2, 2, true);
  PlanOptions o;
  o.world_size = 8;  // dp = 2
  absl::StatusOr<ModelPlan> plan = ModelPlan::Create(c, o);
  ASSERT_TRUE(plan.ok());
  RankPlan r = plan->Rank(0);
  EXPECT_EQ(r.memory.num_params, 41429760);
  EXPECT_EQ(r.memory.param_bytes, 41429760LL * 4);
  EXPECT_EQ(r.memory.grad_bytes, 41429760LL * 4);
  EXPECT_EQ(r.memory.optimizer_bytes, 41429760LL * 8);
  // bf16 with Float16Module: 2-byte params, fp32 grads when asked, 12-byte optimizer state
  // sharded over dp=2 by the distributed optimizer.
  c.mutable_transformer()->set_bf16(true);
  o.ddp.set_grad_reduce_in_fp32(true);
  o.ddp.set_use_distributed_optimizer(true);
  plan = ModelPlan::Create(c, o);
  ASSERT_TRUE(plan.ok());
  r = plan->Rank(0);
  EXPECT_EQ(plan->dtype(), DType::kBFloat16);
  EXPECT_EQ(r.memory.param_bytes, 41429760LL * 2);
  EXPECT_EQ(r.memory.grad_bytes, 41429760LL * 4);
  EXPECT_EQ(r.memory.optimizer_bytes, 41429760LL * 12 / 2);
}

}  // namespace
}  // namespace gptb::plan
