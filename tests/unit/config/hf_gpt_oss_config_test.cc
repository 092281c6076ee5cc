// GPT-OSS config.json import (core/config/hf_gpt_oss_config.cc): the model cards' config.json
// maps to the schema field by field and validates; each key transformers reads is mapped or
// refused naming it.
#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/finalize.h"
#include "core/config/hf_import.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/config/test_configs.h"

namespace gptb::config {
namespace {

using ::gptb::config::testing::FieldsAndReasons;
using ::gptbuilder::v1::GPTModelConfig;
using ::gptbuilder::v1::TransformerConfig;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Pair;
using Json = nlohmann::json;

Json Card(const std::string& name) {
  std::ifstream in(std::string(GPTB_SOURCE_DIR) + "/tests/unit/config/testdata/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return Json::parse(text.str());
}

// A small GPT-OSS in transformers 5's spelling (rope_parameters).
Json Small() {
  return Json::parse(R"({
    "model_type": "gpt_oss", "num_hidden_layers": 4, "hidden_size": 32,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "intermediate_size": 24, "vocab_size": 200, "num_local_experts": 4,
    "num_experts_per_tok": 2, "sliding_window": 3, "swiglu_limit": 0.5,
    "max_position_embeddings": 256,
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention",
                    "full_attention"],
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 100.0, "factor": 4.0,
                        "beta_fast": 4.0, "beta_slow": 1.0, "truncate": false,
                        "original_max_position_embeddings": 64}})");
}

absl::StatusOr<GPTModelConfig> Import(const Json& json) { return ImportHfConfig(json); }

TEST(HfImportGptOss, TheModelCardConfigMapsFieldByField) {
  absl::StatusOr<GPTModelConfig> imported = Import(Card("gpt-oss-20b.json"));
  ASSERT_TRUE(imported.ok()) << imported.status();
  const GPTModelConfig& c = *imported;
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_layers(), 24);
  EXPECT_EQ(t.hidden_size(), 2880);
  EXPECT_EQ(t.num_attention_heads(), 64);
  EXPECT_EQ(t.num_query_groups(), 8);
  EXPECT_EQ(t.kv_channels(), 64);
  EXPECT_EQ(c.vocab_size(), 201088);
  EXPECT_FALSE(c.should_pad_vocab());
  EXPECT_EQ(c.seq_length(), 131072);
  EXPECT_FALSE(c.share_embeddings_and_output_weights());
  EXPECT_EQ(t.normalization(), "RMSNorm");
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-5);
  // Biases on q/k/v/o, the experts and the router; the sinks.
  EXPECT_TRUE(t.add_bias_linear());
  EXPECT_TRUE(t.add_qkv_bias());
  EXPECT_EQ(t.softmax_type(), "learnable");
  // The clamped SwiGLU.
  EXPECT_TRUE(t.gated_linear_unit());
  EXPECT_EQ(t.activation_func(), "quick_gelu");
  EXPECT_DOUBLE_EQ(t.glu_linear_offset(), 1.0);
  EXPECT_DOUBLE_EQ(t.activation_func_clamp_value(), 7.0);
  // Experts.
  EXPECT_EQ(t.num_moe_experts(), 32);
  EXPECT_EQ(t.moe_router_topk(), 4);
  EXPECT_EQ(t.moe_ffn_hidden_size(), 2880);
  EXPECT_EQ(t.moe_router_score_function(), "softmax");
  EXPECT_FALSE(t.moe_router_pre_softmax());
  EXPECT_EQ(t.moe_layer_freq_size(), 0);  // every layer
  // Alternating sliding (128 most recent keys) and full attention.
  EXPECT_THAT(t.window_size(), ElementsAre(127, 0));
  EXPECT_THAT(t.window_attn_skip_freq(), ElementsAre(2));
  // YaRN.
  EXPECT_EQ(c.position_embedding_type(), "yarn");
  EXPECT_EQ(c.rotary_base(), 150000);
  EXPECT_DOUBLE_EQ(t.yarn_rotary_scaling_factor(), 32.0);
  EXPECT_EQ(t.yarn_original_max_position_embeddings(), 4096);
  EXPECT_DOUBLE_EQ(t.yarn_beta_fast(), 32.0);
  EXPECT_DOUBLE_EQ(t.yarn_beta_slow(), 1.0);
  EXPECT_FALSE(t.yarn_correction_range_round_to_int());
  EXPECT_DOUBLE_EQ(t.yarn_mscale(), 1.0);
  EXPECT_DOUBLE_EQ(t.yarn_mscale_all_dim(), 0.0);
  EXPECT_EQ(t.params_dtype(), "float32");  // the card's config.json names no dtype
  absl::StatusOr<GPTModelConfig> resolved = Finalize(c);
  EXPECT_TRUE(resolved.ok()) << resolved.status();
}

TEST(HfImportGptOss, Transformers5SpellingAndOtherLayerPatterns) {
  absl::StatusOr<GPTModelConfig> c = Import(Small());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rotary_base(), 100);
  EXPECT_THAT(c->transformer().window_size(), ElementsAre(2, 0));
  EXPECT_THAT(c->transformer().window_attn_skip_freq(), ElementsAre(2));
  EXPECT_TRUE(Finalize(*c).ok());

  Json json = Small();
  json["layer_types"] = {"full_attention", "sliding_attention", "sliding_attention",
                         "full_attention"};
  c = Import(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->transformer().window_attn_skip_freq(), ElementsAre(0, 1, 1, 0));
  EXPECT_TRUE(Finalize(*c).ok());

  json["layer_types"] = std::vector<std::string>(4, "full_attention");
  c = Import(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transformer().window_size_size(), 0);

  // Without rope parameters: GptOssConfig's default YaRN; truncate defaults to true in
  // transformers when the dict omits it; mscale pairs are taken only together.
  json = Small();
  json.erase("rope_parameters");
  c = Import(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->position_embedding_type(), "yarn");
  EXPECT_EQ(c->rotary_base(), 150000);
  EXPECT_DOUBLE_EQ(c->transformer().yarn_rotary_scaling_factor(), 32.0);
  EXPECT_FALSE(c->transformer().yarn_correction_range_round_to_int());
  json = Small();
  json["rope_parameters"].erase("truncate");
  json["rope_parameters"]["mscale"] = 0.7;
  c = Import(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->transformer().yarn_correction_range_round_to_int());
  EXPECT_DOUBLE_EQ(c->transformer().yarn_mscale(), 1.0);  // transformers ignores it alone
  json["rope_parameters"]["mscale_all_dim"] = 0.5;
  c = Import(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->transformer().yarn_mscale(), 0.7);
  EXPECT_DOUBLE_EQ(c->transformer().yarn_mscale_all_dim(), 0.5);

  json = Small();
  json["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500.0}};
  c = Import(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->position_embedding_type(), "rope");
  EXPECT_EQ(c->rotary_base(), 500);
}

TEST(HfImportGptOss, WhatHasNoMegatronCounterpartIsRefusedNamingTheKey) {
  const std::vector<std::pair<std::function<void(Json&)>, std::pair<std::string, std::string>>>
      cases = {
          {[](Json& j) { j["swiglu_alpha"] = 1.5; }, {"swiglu_alpha", "UNSUPPORTED"}},
          {[](Json& j) { j["attention_bias"] = false; }, {"attention_bias", "UNSUPPORTED"}},
          {[](Json& j) { j["output_router_logits"] = true; },
           {"output_router_logits", "UNSUPPORTED"}},
          {[](Json& j) { j["experts_per_token"] = 3; }, {"experts_per_token", "INVALID_VALUE"}},
          {[](Json& j) { j["some_new_switch"] = true; }, {"some_new_switch", "UNSUPPORTED"}},
          {[](Json& j) { j["rope_parameters"]["rope_type"] = "llama3"; },
           {"rope_parameters.rope_type", "UNSUPPORTED"}},
          {[](Json& j) { j["rope_parameters"]["attention_factor"] = 2.0; },
           {"rope_parameters.attention_factor", "UNSUPPORTED"}},
          {[](Json& j) { j["rope_parameters"]["low_freq_factor"] = 1.0; },
           {"rope_parameters.low_freq_factor", "UNSUPPORTED"}},
          {[](Json& j) { j["layer_types"][1] = "chunked_attention"; },
           {"layer_types", "INVALID_VALUE"}},
          {[](Json& j) { j["layer_types"].erase(0); }, {"layer_types", "INVALID_VALUE"}},
          {[](Json& j) { j["sliding_window"] = 0; }, {"sliding_window", "OUT_OF_RANGE"}},
          {[](Json& j) { j["swiglu_limit"] = "seven"; }, {"swiglu_limit", "TYPE_MISMATCH"}},
      };
  for (const auto& [edit, violation] : cases) {
    Json json = Small();
    edit(json);
    absl::StatusOr<GPTModelConfig> r = Import(json);
    ASSERT_FALSE(r.ok()) << json.dump();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair(violation.first, violation.second)))
        << r.status();
  }
  // The attention factor YaRN's own formula gives is accepted.
  Json json = Small();
  json["rope_parameters"]["attention_factor"] = 0.1 * std::log(4.0) + 1.0;
  EXPECT_TRUE(Import(json).ok());
}

}  // namespace
}  // namespace gptb::config
