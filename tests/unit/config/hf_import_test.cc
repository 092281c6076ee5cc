#include "core/config/hf_import.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/config/test_configs.h"

namespace gptb::config {
namespace {

using ::gptb::config::testing::FieldsAndReasons;
using ::gptbuilder::v1::GPTModelConfig;
using ::gptbuilder::v1::TransformerConfig;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string TestData(const std::string& name) {
  return std::string(GPTB_SOURCE_DIR) + "/tests/unit/config/testdata/" + name;
}

GPTModelConfig ImportFile(const std::string& name) {
  std::ifstream in(TestData(name));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<GPTModelConfig> config = ImportHfConfigText(text.str());
  EXPECT_TRUE(config.ok()) << name << ": " << config.status().message();
  return config.ok() ? *config : GPTModelConfig();
}

GPTModelConfig Resolved(const GPTModelConfig& config) {
  absl::StatusOr<GPTModelConfig> resolved = Finalize(config);
  EXPECT_TRUE(resolved.ok()) << resolved.status().message();
  return resolved.ok() ? *resolved : GPTModelConfig();
}

// Parameters of the whole (unsharded, unpadded) model, counted independently of core/plan from
// the resolved config (Megatron's module structure, spec §2): a check that the import is exact.
int64_t ParameterCount(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  const int64_t h = t.hidden_size(), n = t.num_attention_heads(), g = t.num_query_groups();
  const int64_t d = t.kv_channels(), f = t.ffn_hidden_size(), layers = t.num_layers();
  const int64_t v = c.vocab_size(), m = t.gated_linear_unit() ? 2 : 1;
  const bool bias = t.add_bias_linear();
  const int64_t norm = t.normalization() == "LayerNorm" ? 2 * h : h;
  int64_t layer = 2 * norm;
  layer += (n + 2 * g) * d * h + ((bias || t.add_qkv_bias()) ? (n + 2 * g) * d : 0);
  layer += t.qk_layernorm() ? 2 * (t.normalization() == "LayerNorm" ? 2 * d : d) : 0;
  layer += n * d * h + (bias ? h : 0);
  if (t.has_num_moe_experts()) {
    const int64_t e = t.num_moe_experts(), fe = t.moe_ffn_hidden_size();
    layer += e * h + e * (m * fe * h + fe * h);
  } else {
    layer += m * f * h + (bias ? m * f : 0) + f * h + (bias ? h : 0);
  }
  int64_t total = v * h + layers * layer + norm;
  if (c.position_embedding_type() == "learned_absolute") total += c.seq_length() * h;
  if (!c.share_embeddings_and_output_weights()) total += v * h;
  return total;
}

TEST(HfImport, Gpt2) {
  const GPTModelConfig c = ImportFile("gpt2.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_layers(), 12);
  EXPECT_EQ(t.hidden_size(), 768);
  EXPECT_EQ(t.num_attention_heads(), 12);
  EXPECT_EQ(t.ffn_hidden_size(), 3072);  // n_inner null: 4h
  EXPECT_EQ(t.normalization(), "LayerNorm");
  EXPECT_EQ(t.activation_func(), "fast_gelu");  // gelu_new: the tanh approximation
  EXPECT_FALSE(t.gated_linear_unit());
  EXPECT_TRUE(t.add_bias_linear());
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-5);
  EXPECT_DOUBLE_EQ(t.hidden_dropout(), 0.1);
  EXPECT_DOUBLE_EQ(t.attention_dropout(), 0.1);
  EXPECT_EQ(t.params_dtype(), "float32");
  EXPECT_EQ(c.position_embedding_type(), "learned_absolute");
  EXPECT_TRUE(c.share_embeddings_and_output_weights());  // GPT-2 ties by default
  EXPECT_EQ(c.seq_length(), 1024);
  EXPECT_EQ(c.vocab_size(), 50257);
  EXPECT_FALSE(c.should_pad_vocab());
  EXPECT_EQ(c.make_vocab_size_divisible_by(), 128);
  EXPECT_EQ(c.hf_model_id(), "openai-community/gpt2");
  EXPECT_EQ(ParameterCount(Resolved(c)), 124'439'808);
}

TEST(HfImport, Llama3) {
  const GPTModelConfig c = ImportFile("llama3-8b.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_layers(), 32);
  EXPECT_EQ(t.hidden_size(), 4096);
  EXPECT_EQ(t.num_attention_heads(), 32);
  EXPECT_EQ(t.num_query_groups(), 8);
  EXPECT_EQ(t.kv_channels(), 128);
  EXPECT_EQ(t.ffn_hidden_size(), 14336);
  EXPECT_EQ(t.normalization(), "RMSNorm");
  EXPECT_EQ(t.activation_func(), "silu");
  EXPECT_TRUE(t.gated_linear_unit());
  EXPECT_FALSE(t.add_bias_linear());
  EXPECT_FALSE(t.add_qkv_bias());
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-5);
  EXPECT_DOUBLE_EQ(t.hidden_dropout(), 0.0);
  EXPECT_DOUBLE_EQ(t.attention_dropout(), 0.0);
  EXPECT_EQ(t.params_dtype(), "bfloat16");
  EXPECT_TRUE(t.bf16());
  EXPECT_TRUE(t.bias_activation_fusion());
  EXPECT_TRUE(t.apply_rope_fusion());
  EXPECT_EQ(c.position_embedding_type(), "rope");
  EXPECT_EQ(c.rotary_base(), 500000);
  EXPECT_EQ(c.rotary_percent(), 1.0);
  EXPECT_FALSE(c.rope_scaling());
  EXPECT_EQ(c.seq_length(), 8192);
  EXPECT_EQ(c.vocab_size(), 128256);
  EXPECT_FALSE(c.should_pad_vocab());
  EXPECT_EQ(c.make_vocab_size_divisible_by(), 128);
  EXPECT_FALSE(c.share_embeddings_and_output_weights());
  EXPECT_EQ(c.hf_model_id(), "meta-llama/Meta-Llama-3-8B");
  EXPECT_EQ(ParameterCount(Resolved(c)), 8'030'261'248);
}

TEST(HfImport, Llama31RopeScaling) {
  const GPTModelConfig c = ImportFile("llama3.1-8b.json");
  EXPECT_TRUE(c.rope_scaling());
  EXPECT_DOUBLE_EQ(c.rope_scaling_factor(), 8.0);
  EXPECT_EQ(c.seq_length(), 131072);
  EXPECT_FALSE(c.transformer().add_bias_linear());  // mlp_bias false
  EXPECT_FALSE(c.has_hf_model_id());                // no _name_or_path
  EXPECT_EQ(ParameterCount(Resolved(c)), 8'030'261'248);
}

TEST(HfImport, Mistral) {
  const GPTModelConfig c = ImportFile("mistral-7b-v0.1.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_query_groups(), 8);
  EXPECT_EQ(t.kv_channels(), 128);
  EXPECT_EQ(t.normalization(), "RMSNorm");
  EXPECT_TRUE(t.gated_linear_unit());
  EXPECT_FALSE(t.add_bias_linear());
  EXPECT_THAT(t.window_size(), ElementsAre(4095, 0));  // Bridge: [sliding_window - 1, 0]
  EXPECT_EQ(c.rotary_base(), 10000);
  EXPECT_EQ(c.seq_length(), 32768);
  EXPECT_EQ(c.vocab_size(), 32000);
  EXPECT_EQ(ParameterCount(Resolved(c)), 7'241'732'096);
}

TEST(HfImport, Qwen2HasQkvBias) {
  const GPTModelConfig c = ImportFile("qwen2-7b.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_TRUE(t.add_qkv_bias());
  EXPECT_FALSE(t.add_bias_linear());
  EXPECT_FALSE(t.qk_layernorm());
  EXPECT_EQ(t.num_query_groups(), 4);
  EXPECT_EQ(t.kv_channels(), 128);
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-6);
  EXPECT_EQ(t.autocast_dtype(), "bfloat16");
  EXPECT_EQ(t.window_size_size(), 0);  // use_sliding_window false
  EXPECT_EQ(c.rotary_base(), 1000000);
  EXPECT_EQ(c.vocab_size(), 152064);
  EXPECT_EQ(ParameterCount(Resolved(c)), 7'615'616'512);
}

TEST(HfImport, Qwen3HasQkLayernormAndHeadDim) {
  const GPTModelConfig c = ImportFile("qwen3-8b.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_TRUE(t.qk_layernorm());
  EXPECT_FALSE(t.add_qkv_bias());
  EXPECT_EQ(t.kv_channels(), 128);  // head_dim
  EXPECT_EQ(t.num_layers(), 36);
  EXPECT_EQ(t.ffn_hidden_size(), 12288);
  EXPECT_EQ(c.seq_length(), 40960);
  EXPECT_EQ(c.vocab_size(), 151936);
  EXPECT_EQ(ParameterCount(Resolved(c)), 8'190'735'360);
}

TEST(HfImport, MixtralIsMoe) {
  const GPTModelConfig c = ImportFile("mixtral-8x7b.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_moe_experts(), 8);
  EXPECT_EQ(t.moe_router_topk(), 2);
  EXPECT_EQ(t.moe_ffn_hidden_size(), 14336);
  EXPECT_DOUBLE_EQ(t.moe_aux_loss_coeff(), 0.02);
  EXPECT_FALSE(t.add_bias_linear());
  EXPECT_EQ(t.window_size_size(), 0);  // sliding_window null
  EXPECT_EQ(c.rotary_base(), 1000000);
  EXPECT_EQ(ParameterCount(Resolved(c)), 46'702'792'704);
}

TEST(HfImport, Qwen3MoeIsMoeWithQkNorms) {
  const GPTModelConfig c = ImportFile("qwen3-30b-a3b.json");
  const TransformerConfig& t = c.transformer();
  EXPECT_TRUE(t.qk_layernorm());
  EXPECT_EQ(t.kv_channels(), 128);
  EXPECT_EQ(t.num_moe_experts(), 128);
  EXPECT_EQ(t.moe_router_topk(), 8);
  EXPECT_EQ(t.moe_ffn_hidden_size(), 768);
  EXPECT_FALSE(t.moe_router_pre_softmax());  // norm_topk_prob true: top-k logits, then softmax
  EXPECT_EQ(t.moe_layer_freq_size(), 0);     // experts in every layer
  EXPECT_EQ(c.rotary_base(), 1000000);
  EXPECT_EQ(c.seq_length(), 40960);
  EXPECT_EQ(ParameterCount(Resolved(c)), 30'532'122'624);
}

TEST(HfImport, Qwen3MoeDenseLayersAndUnnormalisedRouting) {
  // Layers 1 and 3 by decoder_sparse_step 2, layer 3 then kept dense by mlp_only_layers;
  // without norm_topk_prob the top-k of the softmax over all experts is Megatron's pre-softmax.
  const GPTModelConfig c = *ImportHfConfigText(
      R"({"model_type": "qwen3_moe", "num_hidden_layers": 4, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 96, "vocab_size": 256,
          "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
          "decoder_sparse_step": 2, "mlp_only_layers": [3], "norm_topk_prob": false})");
  const TransformerConfig& t = c.transformer();
  EXPECT_THAT(t.moe_layer_freq(), ElementsAre(0, 1, 0, 0));
  EXPECT_TRUE(t.moe_router_pre_softmax());
  EXPECT_EQ(t.kv_channels(), 16);  // hidden_size / heads: Qwen3MoeConfig has no head_dim default
  EXPECT_EQ(t.ffn_hidden_size(), 96);
}

TEST(HfImport, Qwen3MoeRefusesWhatMegatronDoesNotCompute) {
  absl::StatusOr<GPTModelConfig> r = ImportHfConfigText(
      R"({"model_type": "qwen3_moe", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 96, "vocab_size": 256,
          "attention_bias": true, "use_sliding_window": true, "mlp_only_layers": [5]})");
  ASSERT_FALSE(r.ok());
  const auto violations = FieldsAndReasons(r.status());
  EXPECT_THAT(violations, Contains(Pair("attention_bias", "UNSUPPORTED")));
  EXPECT_THAT(violations, Contains(Pair("use_sliding_window", "UNSUPPORTED")));
  EXPECT_THAT(violations, Contains(Pair("mlp_only_layers", "OUT_OF_RANGE")));
}

// Dense Qwen3's attention_bias puts a bias on o_proj too; it used to be imported as nothing.
TEST(HfImport, Qwen3AttentionBiasIsRefusedNotDropped) {
  absl::StatusOr<GPTModelConfig> r = ImportHfConfigText(
      R"({"model_type": "qwen3", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 96, "vocab_size": 256,
          "attention_bias": true})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("attention_bias", "UNSUPPORTED")));
  EXPECT_TRUE(ImportHfConfigText(
                  R"({"model_type": "qwen3", "num_hidden_layers": 2, "hidden_size": 64,
                      "num_attention_heads": 4, "intermediate_size": 96, "vocab_size": 256,
                      "attention_bias": false})")
                  .ok());
}

TEST(HfImport, UnbuiltFamiliesAreRefusedByName) {
  for (const char* type : {"gemma3"}) {
    absl::StatusOr<GPTModelConfig> r =
        ImportHfConfigText(absl::StrCat(R"({"model_type": ")", type, R"(", "hidden_size": 8})"));
    ASSERT_FALSE(r.ok()) << type;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(FieldsAndReasons(r.status()),
                Contains(Pair("model_type", "UNSUPPORTED_MODEL_TYPE")));
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr(absl::StrCat("'", type, "' is not supported (")));
  }
}

// DeepSeek-V3's card config.json: every key mapped (or metadata), MLA, dense then MoE layers,
// the router transformers' DeepseekV3TopkRouter computes, YaRN, one MTP layer.
TEST(HfImport, DeepSeekV3MapsEveryKeyOfItsCardConfig) {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) + "/tests/unit/config/testdata/deepseek-v3.json");
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<GPTModelConfig> r = ImportHfConfigText(text.str());
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& t = r->transformer();
  EXPECT_TRUE(t.multi_latent_attention());
  EXPECT_EQ(t.q_lora_rank(), 1536);
  EXPECT_EQ(t.kv_lora_rank(), 512);
  EXPECT_EQ(t.qk_head_dim(), 128);
  EXPECT_EQ(t.qk_pos_emb_head_dim(), 64);
  EXPECT_EQ(t.v_head_dim(), 128);
  EXPECT_TRUE(t.qk_layernorm());
  EXPECT_EQ(t.num_query_groups(), 128);
  EXPECT_EQ(t.rope_type(), "yarn");
  EXPECT_EQ(t.rotary_scaling_factor(), 40.0);
  EXPECT_EQ(t.original_max_position_embeddings(), 4096);
  EXPECT_EQ(t.mscale(), 1.0);
  EXPECT_EQ(t.mscale_all_dim(), 1.0);
  EXPECT_EQ(t.beta_fast(), 32.0);
  EXPECT_EQ(t.beta_slow(), 1.0);
  EXPECT_EQ(t.num_moe_experts(), 256);
  ASSERT_EQ(t.moe_layer_freq_size(), 61);
  EXPECT_EQ(t.moe_layer_freq(2), 0);
  EXPECT_EQ(t.moe_layer_freq(3), 1);
  EXPECT_EQ(t.moe_ffn_hidden_size(), 2048);
  EXPECT_EQ(t.moe_shared_expert_intermediate_size(), 2048);
  EXPECT_EQ(t.moe_router_topk(), 8);
  EXPECT_EQ(t.moe_router_score_function(), "sigmoid");
  EXPECT_TRUE(t.moe_router_enable_expert_bias());
  EXPECT_EQ(t.moe_router_num_groups(), 8);
  EXPECT_EQ(t.moe_router_group_topk(), 4);
  EXPECT_EQ(t.moe_router_topk_scaling_factor(), 2.5);
  EXPECT_EQ(t.moe_router_load_balancing_type(), "none");
  EXPECT_EQ(t.mtp_num_layers(), 1);
  EXPECT_EQ(r->seq_length(), 163840);
  EXPECT_EQ(r->vocab_size(), 129280);
  EXPECT_FALSE(r->share_embeddings_and_output_weights());
}

TEST(HfImport, DeepSeekRefusesWhatItCannotBuildByName) {
  const std::string base =
      R"({"model_type": "deepseek_v3", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "vocab_size": 256, "num_experts_per_tok": 4,
          "n_routed_experts": 8, "n_group": 4, "topk_group": 2, "first_k_dense_replace": 1, )";
  auto import = [&](const std::string& extra) { return ImportHfConfigText(base + extra + "}"); };
  ASSERT_TRUE(import(R"("rope_interleave": true)").ok());
  for (const auto& [extra, field] : std::vector<std::pair<std::string, std::string>>{
           {R"("made_up_key": 3)", "made_up_key"},
           {R"("rope_interleave": false)", "rope_interleave"},
           {R"("q_lora_rank": null)", "q_lora_rank"},
           {R"("topk_group": 1)", "topk_group"},
           {R"("scoring_func": "softmax")", "scoring_func"},
           {R"("norm_topk_prob": false)", "norm_topk_prob"},
           {R"("num_key_value_heads": 2)", "num_key_value_heads"},
           {R"("rope_scaling": {"type": "yarn", "factor": 4, "mscale_all_dim": 1,
                                "original_max_position_embeddings": 16})",
            "rope_scaling.mscale"},
           {R"("rope_scaling": {"type": "linear", "factor": 4})", "rope_scaling"}}) {
    absl::StatusOr<GPTModelConfig> r = import(extra);
    ASSERT_FALSE(r.ok()) << extra;
    EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair(field, ::testing::_))) << extra;
  }
  // V2: group_limited_greedy agrees with Megatron's group-limited routing only at one expert per
  // kept group.
  const std::string v2 =
      R"({"model_type": "deepseek_v2", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "vocab_size": 256, "n_routed_experts": 8,
          "n_group": 4, "topk_method": "group_limited_greedy", )";
  EXPECT_TRUE(ImportHfConfigText(v2 + R"("num_experts_per_tok": 2, "topk_group": 2})").ok());
  absl::StatusOr<GPTModelConfig> r =
      ImportHfConfigText(v2 + R"("num_experts_per_tok": 4, "topk_group": 2})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("topk_method", "UNSUPPORTED")));
}

TEST(HfImport, UnsupportedModelTypeListsTheSupportedOnes) {
  absl::StatusOr<GPTModelConfig> r =
      ImportHfConfigText(R"({"model_type": "falcon", "hidden_size": 8})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("model_type", "UNSUPPORTED_MODEL_TYPE")));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("gpt2, gpt_oss, llama, mistral, mixtral, qwen2, qwen3, qwen3_moe"));
}

TEST(HfImport, MissingSizesAndWrongTypesAreReportedPerKey) {
  absl::StatusOr<GPTModelConfig> r = ImportHfConfigText(
      R"({"model_type": "llama", "hidden_size": "big", "num_attention_heads": 8,
          "intermediate_size": 64, "vocab_size": 100})");
  ASSERT_FALSE(r.ok());
  const auto violations = FieldsAndReasons(r.status());
  EXPECT_THAT(violations, Contains(Pair("num_hidden_layers", "REQUIRED")));
  EXPECT_THAT(violations, Contains(Pair("hidden_size", "TYPE_MISMATCH")));
}

TEST(HfImport, UnsupportedRopeScalingIsAnError) {
  absl::StatusOr<GPTModelConfig> r = ImportHfConfigText(
      R"({"model_type": "qwen2", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 256,
          "rope_scaling": {"type": "yarn", "factor": 4.0}})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("rope_scaling", "UNSUPPORTED")));
}

TEST(HfImport, FamilyDefaultsFillMissingKeys) {
  const GPTModelConfig c = *ImportHfConfigText(
      R"({"model_type": "mixtral", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 256})");
  EXPECT_DOUBLE_EQ(c.transformer().layernorm_epsilon(), 1e-5);  // MixtralConfig's
  EXPECT_EQ(c.rotary_base(), 1000000);
  EXPECT_EQ(c.transformer().num_query_groups(), 4);  // num_key_value_heads defaults to heads
  EXPECT_EQ(c.transformer().num_moe_experts(), 8);
  EXPECT_EQ(c.transformer().params_dtype(), "float32");
}

TEST(HfImport, BridgeVocabDivisor) {
  const GPTModelConfig c = *ImportHfConfigText(
      R"({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 32001})");
  EXPECT_EQ(c.make_vocab_size_divisible_by(), 1);  // largest power of two <= 128 dividing it
}

TEST(HfImport, LoaderRecognisesConfigJson) {
  absl::StatusOr<LoadedConfig> loaded = LoadConfigFile(TestData("qwen3-8b.json"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->source_format, "hf_config");
  EXPECT_TRUE(loaded->model.transformer().qk_layernorm());
}

}  // namespace
}  // namespace gptb::config
