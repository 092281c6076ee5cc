#ifndef GPTB_TESTS_UNIT_PLAN_GOLDEN_CONFIG_H_
#define GPTB_TESTS_UNIT_PLAN_GOLDEN_CONFIG_H_

#include <fstream>
#include <string>
#include <vector>

#include "gptbuilder/v1/model_config.pb.h"
#include "nlohmann/json.hpp"

namespace gptb::testing {

// The golden files recorded by running Megatron Core (tests/golden/README.md).
inline std::vector<std::string> GoldenFiles() {
  return {"A_tp1_pp1",         "A_tp1_pp2",         "A_tp1_pp2_vp2",     "A_tp2_pp1",
          "A_tp2_pp2",         "A_tp2_pp2_vp2",     "B_tp1_pp1",         "B_tp1_pp2",
          "B_tp1_pp2_vp2",     "B_tp2_pp1",         "B_tp2_pp2",         "B_tp2_pp2_vp2",
          "D_tp1_pp1_ep1",     "D_tp1_pp1_ep2",     "D_tp1_pp2_ep1",     "D_tp1_pp2_ep2",
          "D_tp1_pp2_vp2_ep1", "D_tp1_pp2_vp2_ep2", "D_tp2_pp1_ep1",     "D_tp2_pp1_ep2",
          "D_tp2_pp2_ep1",     "D_tp2_pp2_ep2",     "D_tp2_pp2_vp2_ep1", "D_tp2_pp2_vp2_ep2",
          "E_tp1_pp2",         "E_tp2_pp2",         "F_tp1_pp1_ep1",     "F_tp2_pp1_ep1",
          "F_tp2_pp2_ep2",     "G_tp1_pp1",         "G_tp2_pp2"};
}

inline nlohmann::json LoadGolden(const std::string& name) {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) + "/tests/golden/" + name + ".json");
  return nlohmann::json::parse(in);
}

// The GPTModelConfig the golden run used, as a user would write it (unfinalized): the kwargs
// passed to Megatron plus the layout, with the local layer spec.
inline gptbuilder::v1::GPTModelConfig GoldenUserConfig(const nlohmann::json& golden) {
  const nlohmann::json& cfg = golden["config"];
  const nlohmann::json& kw = cfg["transformer_config_kwargs"];
  const nlohmann::json& model = cfg["gpt_model_kwargs"];
  const nlohmann::json& layout = golden["layout"];
  gptbuilder::v1::GPTModelConfig c;
  auto* t = c.mutable_transformer();
  t->set_num_layers(kw["num_layers"]);
  t->set_hidden_size(kw["hidden_size"]);
  t->set_num_attention_heads(kw["num_attention_heads"]);
  if (kw.contains("num_query_groups")) t->set_num_query_groups(kw["num_query_groups"]);
  t->set_ffn_hidden_size(kw["ffn_hidden_size"]);
  t->set_normalization(kw["normalization"].get<std::string>());
  t->set_activation_func(kw["activation"].get<std::string>());
  t->set_gated_linear_unit(kw["gated_linear_unit"]);
  t->set_add_bias_linear(kw["add_bias_linear"]);
  if (kw.contains("num_moe_experts")) {
    t->set_num_moe_experts(kw["num_moe_experts"]);
    t->set_moe_router_topk(kw["moe_router_topk"]);
    t->set_moe_grouped_gemm(kw["moe_grouped_gemm"]);
  }
  if (kw.contains("moe_ffn_hidden_size")) t->set_moe_ffn_hidden_size(kw["moe_ffn_hidden_size"]);
  if (kw.contains("moe_shared_expert_intermediate_size")) {
    t->set_moe_shared_expert_intermediate_size(kw["moe_shared_expert_intermediate_size"]);
  }
  if (kw.contains("moe_layer_freq")) {
    for (int v : kw["moe_layer_freq"]) t->add_moe_layer_freq(v);
  }
  if (kw.value("multi_latent_attention", false)) {
    // MLATransformerConfig (F_*, G_*): q_lora_rank None is the schema's 0.
    t->set_multi_latent_attention(true);
    t->set_q_lora_rank(kw["q_lora_rank"].is_null() ? 0 : kw["q_lora_rank"].get<int>());
    t->set_kv_lora_rank(kw["kv_lora_rank"]);
    t->set_qk_head_dim(kw["qk_head_dim"]);
    t->set_qk_pos_emb_head_dim(kw["qk_pos_emb_head_dim"]);
    t->set_v_head_dim(kw["v_head_dim"]);
    t->set_rope_type(kw["rope_type"].get<std::string>());
    t->set_qk_layernorm(kw["qk_layernorm"]);
  }
  if (kw.contains("num_layers_in_first_pipeline_stage")) {
    t->set_num_layers_in_first_pipeline_stage(kw["num_layers_in_first_pipeline_stage"]);
  }
  t->set_tensor_model_parallel_size(layout["tp"]);
  t->set_pipeline_model_parallel_size(layout["pp"]);
  if (!layout["vp"].is_null()) t->set_virtual_pipeline_model_parallel_size(layout["vp"]);
  t->set_expert_model_parallel_size(layout["ep"]);
  c.set_position_embedding_type(model["position_embedding_type"].get<std::string>());
  c.set_seq_length(model["max_sequence_length"]);
  c.set_share_embeddings_and_output_weights(model["share_embeddings_and_output_weights"]);
  if (model.contains("rotary_percent")) c.set_rotary_percent(model["rotary_percent"]);
  if (model.contains("rotary_base")) c.set_rotary_base(model["rotary_base"]);
  c.set_parallel_output(model["parallel_output"]);
  c.set_vocab_size(cfg["orig_vocab_size"]);
  c.set_make_vocab_size_divisible_by(cfg["make_vocab_size_divisible_by"]);
  c.set_should_pad_vocab(true);
  c.mutable_transformer_layer_spec()->set_name("local");
  return c;
}

// The same config with Megatron's resolved (derived) values filled in from the golden file's
// transformer_config_resolved, for tests of the planner on its own.
inline gptbuilder::v1::GPTModelConfig GoldenResolvedConfig(const nlohmann::json& golden) {
  gptbuilder::v1::GPTModelConfig c = GoldenUserConfig(golden);
  const nlohmann::json& r = golden["config"]["transformer_config_resolved"];
  auto* t = c.mutable_transformer();
  t->set_num_query_groups(r["num_query_groups"]);
  t->set_kv_channels(r["kv_channels"]);
  t->set_expert_tensor_parallel_size(r["expert_tensor_parallel_size"]);
  if (!r["moe_ffn_hidden_size"].is_null()) t->set_moe_ffn_hidden_size(r["moe_ffn_hidden_size"]);
  t->set_init_method_std(r["init_method_std"]);
  t->set_embedding_init_method_std(r["embedding_init_method_std"]);
  if (t->pipeline_model_parallel_size() > 1) t->set_pipeline_dtype("float32");
  return c;
}

}  // namespace gptb::testing

#endif  // GPTB_TESTS_UNIT_PLAN_GOLDEN_CONFIG_H_
