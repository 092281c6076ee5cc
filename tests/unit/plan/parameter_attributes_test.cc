// Megatron's tensor attributes that decide gradient reductions, as the plan marks them: which
// replicated parameters are `sequence_parallel`, and which gradients finalize_model_grads sums
// over the tensor-parallel group (sequence-parallel parameters; q/k norms with qk_layernorm).
#include <map>
#include <string>

#include "core/config/finalize.h"
#include "core/plan/model_plan.h"
#include "gmock/gmock.h"

namespace gptb::plan {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

gptbuilder::v1::GPTModelConfig TinyMoe(int tp, bool sequence_parallel, const std::string& spec) {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(2);
  t->set_hidden_size(64);
  t->set_num_attention_heads(8);
  t->set_num_query_groups(2);
  t->set_ffn_hidden_size(128);
  t->set_normalization("LayerNorm");
  t->set_add_bias_linear(true);
  t->set_qk_layernorm(true);
  t->set_num_moe_experts(4);
  t->set_moe_router_topk(2);
  t->set_moe_shared_expert_intermediate_size(64);
  t->set_moe_shared_expert_gate(true);
  t->add_moe_layer_freq(2);  // layer 0 MoE, layer 1 dense
  t->set_tensor_model_parallel_size(tp);
  t->set_expert_tensor_parallel_size(1);  // expert biases need it
  t->set_sequence_parallel(sequence_parallel);
  c.set_vocab_size(1000);
  c.set_seq_length(32);
  c.set_position_embedding_type("rope");
  c.mutable_transformer_layer_spec()->set_name(spec);
  return c;
}

absl::StatusOr<ModelPlan> Plan(const gptbuilder::v1::GPTModelConfig& config, int world) {
  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized =
      config::Finalize(config, config::FinalizeOptions{world});
  if (!finalized.ok()) return finalized.status();
  PlanOptions options;
  options.world_size = world;
  return ModelPlan::Create(*finalized, options);
}

// The names of stage 0's parameters with `flag` set.
std::vector<std::string> Marked(const ModelPlan& plan, bool ParamInfo::*flag) {
  std::vector<std::string> names;
  for (const ParamInfo& p : plan.stages()[0].params) {
    if (p.*flag) names.push_back(p.name);
  }
  return names;
}

TEST(ParameterAttributesTest, SequenceParallelMarksTheReplicatedParametersOfTheSequenceShard) {
  absl::StatusOr<ModelPlan> plan = Plan(TinyMoe(2, true, "transformer_engine"), 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::vector<std::string> expected = {
      // MoE layer 0: the TE qkv's fused input norm, the row-parallel proj bias, TENorm q/k norms
      // and pre-MLP norm, the router and the shared-expert gate. Not the expert biases (TE
      // builds expert linears with a TP size of 1), nor sharded tensors.
      "decoder.layers.0.self_attention.linear_proj.bias",
      "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight",
      "decoder.layers.0.self_attention.linear_qkv.layer_norm_bias",
      "decoder.layers.0.self_attention.q_layernorm.weight",
      "decoder.layers.0.self_attention.q_layernorm.bias",
      "decoder.layers.0.self_attention.k_layernorm.weight",
      "decoder.layers.0.self_attention.k_layernorm.bias",
      "decoder.layers.0.pre_mlp_layernorm.weight",
      "decoder.layers.0.pre_mlp_layernorm.bias",
      "decoder.layers.0.mlp.router.weight",
      "decoder.layers.0.mlp.router.bias",
      "decoder.layers.0.mlp.shared_experts.gate_weight",
      // Dense layer 1: fused norms of qkv and fc1, both row-parallel biases, q/k norms.
      "decoder.layers.1.self_attention.linear_proj.bias",
      "decoder.layers.1.self_attention.linear_qkv.layer_norm_weight",
      "decoder.layers.1.self_attention.linear_qkv.layer_norm_bias",
      "decoder.layers.1.self_attention.q_layernorm.weight",
      "decoder.layers.1.self_attention.q_layernorm.bias",
      "decoder.layers.1.self_attention.k_layernorm.weight",
      "decoder.layers.1.self_attention.k_layernorm.bias",
      "decoder.layers.1.mlp.linear_fc1.layer_norm_weight",
      "decoder.layers.1.mlp.linear_fc1.layer_norm_bias",
      "decoder.layers.1.mlp.linear_fc2.bias",
      "decoder.final_layernorm.weight",
      "decoder.final_layernorm.bias",
  };
  EXPECT_THAT(Marked(*plan, &ParamInfo::sequence_parallel), UnorderedElementsAreArray(expected));
  EXPECT_THAT(Marked(*plan, &ParamInfo::sum_grad_over_tp), UnorderedElementsAreArray(expected));
}

TEST(ParameterAttributesTest,
     QkNormGradientsAreSummedOverTensorParallelRanksWithoutSequenceParallel) {
  absl::StatusOr<ModelPlan> plan = Plan(TinyMoe(2, false, "local"), 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Marked(*plan, &ParamInfo::sequence_parallel), ::testing::IsEmpty());
  EXPECT_THAT(Marked(*plan, &ParamInfo::sum_grad_over_tp),
              UnorderedElementsAreArray<std::string>({
                  "decoder.layers.0.self_attention.q_layernorm.weight",
                  "decoder.layers.0.self_attention.q_layernorm.bias",
                  "decoder.layers.0.self_attention.k_layernorm.weight",
                  "decoder.layers.0.self_attention.k_layernorm.bias",
                  "decoder.layers.1.self_attention.q_layernorm.weight",
                  "decoder.layers.1.self_attention.q_layernorm.bias",
                  "decoder.layers.1.self_attention.k_layernorm.weight",
                  "decoder.layers.1.self_attention.k_layernorm.bias",
              }));
}

// Finalize refuses the local spec's torch norms with sequence parallelism; the plan refuses any
// torch norm it meets (a custom tree, for one) the same way.
TEST(ParameterAttributesTest, TorchNormsRefuseSequenceParallelism) {
  absl::StatusOr<ModelPlan> local = Plan(TinyMoe(2, true, "local"), 2);
  ASSERT_FALSE(local.ok());
  EXPECT_THAT(std::string(local.status().message()), HasSubstr("transformer.sequence_parallel"));
  EXPECT_THAT(std::string(local.status().message()), HasSubstr("torch LayerNorm"));

  absl::StatusOr<gptbuilder::v1::GPTModelConfig> finalized =
      config::Finalize(TinyMoe(2, true, "transformer_engine"), config::FinalizeOptions{2});
  ASSERT_TRUE(finalized.ok()) << finalized.status();
  finalized->mutable_transformer_layer_spec()->set_name("local");  // past Finalize's check
  PlanOptions options;
  options.world_size = 2;
  absl::StatusOr<ModelPlan> planned = ModelPlan::Create(*finalized, options);
  ASSERT_FALSE(planned.ok());
  EXPECT_THAT(std::string(planned.status().message()), HasSubstr("WrappedTorchNorm"));
  EXPECT_THAT(std::string(planned.status().message()), HasSubstr("transformer_engine"));
}

}  // namespace
}  // namespace gptb::plan
