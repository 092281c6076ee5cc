// The spec-selection behaviours Bridge's gpt_builder tests check (spec/bridge-gpt-builder.md
// §8.1 TestTransformerEngineLayerSpec ... TestMtpBlockSpec), on our data-only specs.
#include "core/layer_spec/layer_specs.h"

#include "core/config/violations.h"
#include "core/layer_spec/module_registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::layer_spec {
namespace {

using ::testing::HasSubstr;

gptbuilder::v1::GPTModelConfig Config() {
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(2);
  t->set_hidden_size(128);
  t->set_num_attention_heads(1);
  c.set_vocab_size(32000);
  return c;
}

std::string Module(const ModuleSpec& spec, const std::vector<std::string>& path) {
  const ModuleSpec* node = &spec;
  for (const std::string& slot : path) {
    node = node->Submodule(slot);
    if (node == nullptr) return "<none>";
  }
  return node->module;
}

TEST(TransformerEngineLayerSpec, MoeGroupedGemmAndQkLayernorm) {
  ModuleSpecPtr spec = GetGptLayerWithTransformerEngineSpec(4, true, true);
  EXPECT_EQ(Module(*spec, {"self_attention", "linear_qkv"}), "TELayerNormColumnParallelLinear");
  EXPECT_EQ(Module(*spec, {"self_attention", "q_layernorm"}), "TENorm");
  EXPECT_EQ(Module(*spec, {"input_layernorm"}), "IdentityOp");
  // MoE layers keep a separate pre_mlp_layernorm because the router consumes it.
  EXPECT_EQ(Module(*spec, {"pre_mlp_layernorm"}), "TENorm");
  EXPECT_EQ(Module(*spec, {"mlp"}), "MoELayer");
  EXPECT_EQ(Module(*spec, {"mlp", "experts"}), "TEGroupedMLP");
  EXPECT_EQ(Module(*spec, {"mlp", "experts", "linear_fc1"}), "TEColumnParallelGroupedLinear");
}

TEST(TransformerEngineLayerSpec, DenseFusesNormsIntoLinears) {
  ModuleSpecPtr spec = GetGptLayerWithTransformerEngineSpec(std::nullopt, false, false);
  EXPECT_EQ(Module(*spec, {"mlp", "linear_fc1"}), "TELayerNormColumnParallelLinear");
  EXPECT_EQ(Module(*spec, {"pre_mlp_layernorm"}), "IdentityOp");
  EXPECT_EQ(Module(*spec, {"self_attention", "q_layernorm"}), "IdentityOp");
}

TEST(LocalLayerSpec, ExpertsAreSequentialWithRmsNorm) {
  // Bridge: local_layer_spec passes (num_experts=8, moe_grouped_gemm=True, qk_layernorm=True,
  // normalization="RMSNorm"); the local backend has no grouped GEMM.
  ModuleSpecPtr spec = GetGptLayerLocalSpec(8, true, true, "RMSNorm");
  EXPECT_EQ(Module(*spec, {"input_layernorm"}), "RMSNorm");
  EXPECT_EQ(Module(*spec, {"self_attention", "k_layernorm"}), "RMSNorm");
  EXPECT_EQ(Module(*spec, {"mlp", "experts"}), "SequentialMLP");
  EXPECT_EQ(Module(*spec, {"mlp", "experts", "linear_fc1"}), "ColumnParallelLinear");
  EXPECT_EQ(Module(*spec, {"self_attention", "core_attention"}), "DotProductAttention");
}

TEST(ModelOptLayerSpec, ArbitraryMaskFollowsContextParallelism) {
  gptbuilder::v1::GPTModelConfig c = Config();
  auto mask = [](const LayerSpecChoice& choice) {
    return choice.block->layer_specs[0]->Submodule("self_attention")->params.at("attn_mask_type");
  };
  EXPECT_EQ(mask(ModelOptTransformerLayerSpec(c, {0, 1})), "arbitrary");  // cp 1, unset
  c.mutable_transformer()->set_context_parallel_size(4);
  EXPECT_EQ(mask(ModelOptTransformerLayerSpec(c, {0, 1})), "causal");  // cp 4, unset
  c.set_use_arbitrary_attention_mask(true);
  EXPECT_EQ(mask(ModelOptTransformerLayerSpec(c, {0, 1})), "arbitrary");  // explicit
  const LayerSpecChoice choice = ModelOptTransformerLayerSpec(c, {0});
  const ModuleSpec& layer = *choice.block->layer_specs[0];
  EXPECT_EQ(Module(layer, {"input_layernorm"}), "TENorm");
  EXPECT_EQ(Module(layer, {"mlp", "linear_fc1"}), "ColumnParallelLinear");
}

TEST(DefaultLayerSpec, SelectionOrder) {
  gptbuilder::v1::GPTModelConfig c = Config();
  absl::StatusOr<LayerSpecChoice> te = DefaultLayerSpec(c, {0, 1});
  ASSERT_TRUE(te.ok());
  ASSERT_FALSE(te->is_block());
  EXPECT_EQ(Module(*te->layer, {"self_attention", "linear_qkv"}),
            "TELayerNormColumnParallelLinear");

  c.set_use_transformer_engine_full_layer_spec(true);
  absl::StatusOr<LayerSpecChoice> full = DefaultLayerSpec(c, {0, 1});
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE(full->is_block());
  EXPECT_EQ(full->block->layer_specs.size(), 2u);
  EXPECT_EQ(full->block->layer_specs[0]->module, "TETransformerLayerAutocast");

  c.set_restore_modelopt_state(true);  // ModelOpt wins over full-TE
  absl::StatusOr<LayerSpecChoice> modelopt = DefaultLayerSpec(c, {0, 1});
  ASSERT_TRUE(modelopt.ok());
  EXPECT_EQ(Module(*modelopt->block->layer_specs[0], {"input_layernorm"}), "TENorm");
}

TEST(DecoderBlockSpec, MoeLayerFrequency) {
  gptbuilder::v1::TransformerConfig t;
  t.set_num_layers(6);
  t.set_num_moe_experts(4);
  t.add_moe_layer_freq(2);
  BlockSpec block = GetGptDecoderBlockSpec(t, "local", {2, 3, 4, 5});
  ASSERT_EQ(block.layer_specs.size(), 4u);
  EXPECT_EQ(Module(*block.layer_specs[0], {"mlp"}), "MoELayer");  // global 2
  EXPECT_EQ(Module(*block.layer_specs[1], {"mlp"}), "MLP");       // global 3
  EXPECT_EQ(Module(*block.layer_specs[2], {"mlp"}), "MoELayer");  // global 4
  t.clear_moe_layer_freq();
  for (int v : {0, 0, 1, 1, 0, 1}) t.add_moe_layer_freq(v);
  block = GetGptDecoderBlockSpec(t, "transformer_engine", {0, 1, 2});
  EXPECT_EQ(Module(*block.layer_specs[0], {"mlp"}), "MLP");
  EXPECT_EQ(Module(*block.layer_specs[2], {"mlp"}), "MoELayer");
  EXPECT_EQ(block.layer_norm, "TENorm");
}

TEST(MtpBlockSpec, NoneWhenUnset) {
  gptbuilder::v1::GPTModelConfig c = Config();
  absl::StatusOr<StageLayerSpecs> stage = ResolveStageLayerSpecs(c, {0, 1});
  ASSERT_TRUE(stage.ok());
  auto mtp = MtpBlockSpec(c, *stage, 0);
  ASSERT_TRUE(mtp.ok());
  EXPECT_FALSE(mtp->has_value());
}

TEST(MtpBlockSpec, UsesTheStagesLastLayerSpec) {
  gptbuilder::v1::GPTModelConfig c = Config();
  c.mutable_transformer()->set_mtp_num_layers(2);
  c.mutable_transformer_layer_spec()->set_name("local");
  absl::StatusOr<StageLayerSpecs> stage = ResolveStageLayerSpecs(c, {0, 1});
  ASSERT_TRUE(stage.ok());
  auto mtp = MtpBlockSpec(c, *stage, 2);
  ASSERT_TRUE(mtp.ok());
  ASSERT_TRUE(mtp->has_value());
  ASSERT_EQ((*mtp)->size(), 2u);
  const ModuleSpec& layer = *(**mtp)[0];
  EXPECT_EQ(layer.module, "MultiTokenPredictionLayer");
  EXPECT_EQ(Module(layer, {"eh_proj"}), "TEColumnParallelLinear");  // Bridge: TE backend
  EXPECT_EQ(layer.Submodule("mtp_model_layer"), stage->layers.back().get());
  c.mutable_transformer()->set_mtp_use_repeated_layer(true);
  mtp = MtpBlockSpec(c, *stage, 2);
  ASSERT_TRUE(mtp.ok());
  EXPECT_EQ((*mtp)->size(), 1u);
}

TEST(MtpBlockSpec, EmptyBlockFallsBackToDefaultSpec) {
  gptbuilder::v1::GPTModelConfig c = Config();
  c.mutable_transformer()->set_mtp_num_layers(1);
  c.mutable_transformer()->set_num_moe_experts(4);
  c.mutable_transformer_layer_spec()->set_name("local");
  absl::StatusOr<StageLayerSpecs> stage = ResolveStageLayerSpecs(c, {});  // MTP-only stage
  ASSERT_TRUE(stage.ok());
  ASSERT_TRUE(stage->choice.is_block());
  auto mtp = MtpBlockSpec(c, *stage, 1);
  ASSERT_TRUE(mtp.ok());
  ASSERT_TRUE(mtp->has_value());
  const ModuleSpec* inner = (**mtp)[0]->Submodule("mtp_model_layer");
  // default_layer_spec is the TE spec: fused qkv norm.
  EXPECT_EQ(Module(*inner, {"self_attention", "linear_qkv"}), "TELayerNormColumnParallelLinear");
}

TEST(ResolveStageLayerSpecs, UnknownNameIsAnError) {
  gptbuilder::v1::GPTModelConfig c = Config();
  c.mutable_transformer_layer_spec()->set_name("fancy");
  absl::StatusOr<StageLayerSpecs> stage = ResolveStageLayerSpecs(c, {0});
  ASSERT_FALSE(stage.ok());
  EXPECT_THAT(std::string(stage.status().message()), HasSubstr("unknown spec 'fancy'"));
}

TEST(ResolveStageLayerSpecs, CustomTree) {
  gptbuilder::v1::GPTModelConfig c = Config();
  ModuleSpecPtr local = GetGptLayerLocalSpec(std::nullopt, false, false, "LayerNorm");
  ToProto(*local, c.mutable_transformer_layer_spec()->mutable_custom());
  absl::StatusOr<StageLayerSpecs> stage = ResolveStageLayerSpecs(c, {0, 1});
  ASSERT_TRUE(stage.ok());
  EXPECT_EQ(stage->spec_name, "custom");
  ASSERT_EQ(stage->layers.size(), 2u);
  // The round trip through the proto map keeps the registry's slot order.
  EXPECT_EQ(stage->layers[0]->DebugString(), local->DebugString());
  EXPECT_EQ(stage->final_layernorm, "WrappedTorchNorm");
}

TEST(CheckCustomLayerSpec, ReportsEveryProblem) {
  gptbuilder::v1::GPTModelConfig c = Config();
  ModuleSpecPtr spec =
      Node("TransformerLayer",
           {{"input_layernorm", Leaf("RMSNorm")},
            {"self_attention", Node("SelfAttention", {{"linear_qkv", Leaf("ColumnParallelLinear")},
                                                      {"linear_proj", Leaf("ColumnParallelLinear")},
                                                      {"q_layernorm", Leaf("RMSNorm")}})},
            {"mlp", Node("FancyMLP", {})},
            {"bogus", Leaf("IdentityOp")}});
  config::Violations v;
  CheckCustomLayerSpec(*spec, c.transformer(), "transformer_layer_spec.custom", &v);
  const std::string base = "transformer_layer_spec.custom.submodules.";
  EXPECT_TRUE(v.Mentions(base + "self_attention.submodules.core_attention"));      // missing
  EXPECT_TRUE(v.Mentions(base + "self_attention.submodules.linear_proj.module"));  // wrong kind
  EXPECT_TRUE(v.Mentions(base + "self_attention.submodules.q_layernorm"));         // qk norm off
  EXPECT_TRUE(v.Mentions(base + "mlp.module"));                                    // unknown module
  EXPECT_TRUE(v.Mentions(base + "bogus"));                                         // unknown slot
  EXPECT_EQ(v.size(), 5u);
  config::Violations ok;
  CheckCustomLayerSpec(*GetGptLayerLocalSpec(std::nullopt, false, false, "RMSNorm"),
                       c.transformer(), "x", &ok);
  EXPECT_TRUE(ok.empty());
}

}  // namespace
}  // namespace gptb::layer_spec
