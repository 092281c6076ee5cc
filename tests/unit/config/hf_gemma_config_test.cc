// Gemma 2 config.json import and export (core/config/hf_gemma_config.cc): the model cards'
// config.json map to the schema field by field and validate; each key transformers reads is
// mapped or refused naming it; the export imports back to the same model; the Gemma fields are
// validated.
#include <fstream>
#include <sstream>
#include <string>

#include "core/config/finalize.h"
#include "core/config/hf_export.h"
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

TEST(HfImportGemma2, TheModelCardConfigMapsFieldByField) {
  absl::StatusOr<GPTModelConfig> imported = ImportHfConfig(Card("gemma-2-27b.json"));
  ASSERT_TRUE(imported.ok()) << imported.status();
  const GPTModelConfig& c = *imported;
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_layers(), 46);
  EXPECT_EQ(t.hidden_size(), 4608);
  EXPECT_EQ(t.num_attention_heads(), 32);
  EXPECT_EQ(t.num_query_groups(), 16);
  EXPECT_EQ(t.kv_channels(), 128);
  EXPECT_EQ(t.ffn_hidden_size(), 36864);
  EXPECT_EQ(c.vocab_size(), 256000);
  EXPECT_EQ(c.seq_length(), 8192);
  EXPECT_TRUE(c.share_embeddings_and_output_weights());
  EXPECT_EQ(t.normalization(), "RMSNorm");
  EXPECT_TRUE(t.layernorm_zero_centered_gamma());
  EXPECT_DOUBLE_EQ(t.layernorm_epsilon(), 1e-6);
  EXPECT_TRUE(t.gated_linear_unit());
  EXPECT_EQ(t.activation_func(), "fast_gelu");
  EXPECT_FALSE(t.add_bias_linear());
  EXPECT_TRUE(c.apply_embedding_scaling());
  EXPECT_TRUE(c.post_linear_layernorm());
  EXPECT_EQ(c.query_pre_attn_scalar(), 144);  // not head_dim: the 27B's own scale
  EXPECT_DOUBLE_EQ(c.attn_logit_softcapping(), 50.0);
  EXPECT_DOUBLE_EQ(c.final_logit_softcapping(), 30.0);
  EXPECT_EQ(c.position_embedding_type(), "rope");
  EXPECT_EQ(c.rotary_base(), 10000);
  // HF layer index 0, 2, ... slide over the 4096 most recent keys: Megatron layer numbers 1, 3,
  // ... (l % 2 != 0) with window [4095, 0].
  EXPECT_THAT(t.window_size(), ElementsAre(4095, 0));
  EXPECT_THAT(t.window_attn_skip_freq(), ElementsAre(2));
  EXPECT_EQ(t.params_dtype(), "bfloat16");
  absl::StatusOr<GPTModelConfig> finalized = Finalize(c, {1});
  EXPECT_TRUE(finalized.ok()) << finalized.status();
}

TEST(HfImportGemma2, EveryCardImportsAndValidates) {
  for (const char* card : {"gemma-2-2b.json", "gemma-2-9b.json", "gemma-2-27b.json"}) {
    absl::StatusOr<GPTModelConfig> imported = ImportHfConfig(Card(card));
    ASSERT_TRUE(imported.ok()) << card << ": " << imported.status();
    EXPECT_TRUE(Finalize(*imported, {1}).ok()) << card;
  }
}

TEST(HfImportGemma2, ExportImportsBackToTheSameModel) {
  for (const char* card : {"gemma-2-2b.json", "gemma-2-27b.json"}) {
    absl::StatusOr<GPTModelConfig> imported = ImportHfConfig(Card(card));
    ASSERT_TRUE(imported.ok());
    absl::StatusOr<Json> exported = ExportHfConfig(*imported, "gemma2");
    ASSERT_TRUE(exported.ok()) << exported.status();
    EXPECT_EQ((*exported)["query_pre_attn_scalar"], Card(card)["query_pre_attn_scalar"]);
    EXPECT_EQ((*exported)["sliding_window"], 4096);
    EXPECT_EQ((*exported)["layer_types"][0], "sliding_attention");
    EXPECT_EQ((*exported)["layer_types"][1], "full_attention");
    absl::StatusOr<GPTModelConfig> again = ImportHfConfig(*exported);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->SerializeAsString(), imported->SerializeAsString()) << card;
  }
}

TEST(HfImportGemma2, WhatNoSettingExpressesIsRefusedByKey) {
  Json j = Card("gemma-2-2b.json");
  j["attention_bias"] = true;
  j["use_bidirectional_attention"] = true;
  j["hidden_activation"] = "silu";
  j["sliding_window_size"] = 1024;
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  j["attn_logit_softcapping"] = -1.0;
  j["some_new_key"] = 1;
  absl::StatusOr<GPTModelConfig> r = ImportHfConfig(j);
  ASSERT_FALSE(r.ok());
  const auto reasons = FieldsAndReasons(r.status());
  EXPECT_THAT(reasons, Contains(Pair("attention_bias", "UNSUPPORTED")));
  EXPECT_THAT(reasons, Contains(Pair("use_bidirectional_attention", "UNSUPPORTED")));
  EXPECT_THAT(reasons, Contains(Pair("hidden_activation", "UNSUPPORTED")));
  EXPECT_THAT(reasons, Contains(Pair("sliding_window_size", "INVALID_VALUE")));
  EXPECT_THAT(reasons, Contains(Pair("rope_scaling.rope_type", "UNSUPPORTED")));
  EXPECT_THAT(reasons, Contains(Pair("rope_scaling.factor", "UNSUPPORTED")));
  EXPECT_THAT(reasons, Contains(Pair("attn_logit_softcapping", "OUT_OF_RANGE")));
  EXPECT_THAT(reasons, Contains(Pair("some_new_key", "UNSUPPORTED")));
}

TEST(HfImportGemma2, NullCapsAndExplicitLayerTypes) {
  Json j = Card("gemma-2-2b.json");
  j["attn_logit_softcapping"] = nullptr;
  j["final_logit_softcapping"] = nullptr;
  j["num_hidden_layers"] = 6;
  j["layer_types"] = {"sliding_attention", "sliding_attention", "full_attention",
                      "sliding_attention", "sliding_attention", "full_attention"};
  absl::StatusOr<GPTModelConfig> r = ImportHfConfig(j);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_attn_logit_softcapping());
  EXPECT_FALSE(r->has_final_logit_softcapping());
  EXPECT_THAT(r->transformer().window_attn_skip_freq(), ElementsAre(3));
  j["layer_types"] = {"full_attention",    "sliding_attention", "full_attention",
                      "sliding_attention", "sliding_attention", "full_attention"};
  r = ImportHfConfig(j);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->transformer().window_attn_skip_freq(), ElementsAre(0, 1, 0, 1, 1, 0));
}

TEST(HfImportGemma3, TheModelCardConfigMapsFieldByField) {
  absl::StatusOr<GPTModelConfig> imported = ImportHfConfig(Card("gemma-3-1b-it.json"));
  ASSERT_TRUE(imported.ok()) << imported.status();
  const GPTModelConfig& c = *imported;
  const TransformerConfig& t = c.transformer();
  EXPECT_EQ(t.num_layers(), 26);
  EXPECT_EQ(t.hidden_size(), 1152);
  EXPECT_EQ(t.num_query_groups(), 1);
  EXPECT_EQ(t.kv_channels(), 256);
  EXPECT_EQ(c.vocab_size(), 262144);
  EXPECT_TRUE(t.qk_layernorm());
  EXPECT_TRUE(t.layernorm_zero_centered_gamma());
  EXPECT_TRUE(c.post_linear_layernorm());
  EXPECT_TRUE(c.apply_embedding_scaling());
  EXPECT_FALSE(c.has_attn_logit_softcapping());
  EXPECT_FALSE(c.has_final_logit_softcapping());
  EXPECT_EQ(c.query_pre_attn_scalar(), 256);
  // Every 6th layer global, the others through the 512 most recent keys.
  EXPECT_THAT(t.window_size(), ElementsAre(511, 0));
  EXPECT_THAT(t.window_attn_skip_freq(), ElementsAre(6));
  EXPECT_EQ(c.rotary_base(), 1000000);
  EXPECT_EQ(c.rotary_base_local(), 10000);
  EXPECT_DOUBLE_EQ(c.rope_scaling_factor(), 1.0);
  EXPECT_FALSE(c.rope_scaling());
  EXPECT_TRUE(Finalize(c, {1}).ok()) << Finalize(c, {1}).status();
  // The larger models' linear rope scaling on the global layers, in transformers 5's spelling.
  Json j = Card("gemma-3-1b-it.json");
  j.erase("rope_theta");
  j.erase("rope_local_base_freq");
  j.erase("rope_scaling");
  j["rope_parameters"] = {
      {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1000000.0}}},
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  absl::StatusOr<GPTModelConfig> scaled = ImportHfConfig(j);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_DOUBLE_EQ(scaled->rope_scaling_factor(), 8.0);
  EXPECT_EQ(scaled->rotary_base_local(), 10000);
  absl::StatusOr<Json> exported = ExportHfConfig(*scaled, "gemma3_text");
  ASSERT_TRUE(exported.ok());
  EXPECT_EQ((*exported)["rope_scaling"]["factor"], 8.0);
  EXPECT_EQ((*exported)["rope_local_base_freq"], 10000);
  absl::StatusOr<GPTModelConfig> again = ImportHfConfig(*exported);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), scaled->SerializeAsString());
  // Scaling on the sliding layers has no Bridge counterpart.
  j["rope_parameters"]["sliding_attention"]["rope_type"] = "linear";
  absl::StatusOr<GPTModelConfig> refused = ImportHfConfig(j);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(FieldsAndReasons(refused.status()),
              Contains(Pair("rope_parameters.sliding_attention.rope_type", "UNSUPPORTED")));
}

TEST(GemmaFields, AreValidated) {
  absl::StatusOr<GPTModelConfig> imported = ImportHfConfig(Card("gemma-2-2b.json"));
  ASSERT_TRUE(imported.ok());
  GPTModelConfig c = *imported;
  c.set_query_pre_attn_scalar(0);
  c.mutable_transformer()->set_softmax_scale(0.1);
  c.set_attn_logit_softcapping(0.0);
  c.set_final_logit_softcapping(-3.0);
  c.mutable_transformer()->set_add_bias_linear(true);
  absl::StatusOr<GPTModelConfig> r = Finalize(c, {1});
  ASSERT_FALSE(r.ok());
  const auto reasons = FieldsAndReasons(r.status());
  EXPECT_THAT(reasons, Contains(Pair("query_pre_attn_scalar", "OUT_OF_RANGE")));
  EXPECT_THAT(reasons, Contains(Pair("query_pre_attn_scalar", "CONFLICT")));
  EXPECT_THAT(reasons, Contains(Pair("attn_logit_softcapping", "OUT_OF_RANGE")));
  EXPECT_THAT(reasons, Contains(Pair("final_logit_softcapping", "OUT_OF_RANGE")));
  EXPECT_THAT(reasons, Contains(Pair("post_linear_layernorm", "UNSUPPORTED")));
  GPTModelConfig moe = *imported;
  moe.mutable_transformer()->set_num_moe_experts(4);
  r = Finalize(moe, {1});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("post_linear_layernorm", "UNSUPPORTED")));
  GPTModelConfig local = *imported;
  local.set_rotary_base_local(100);
  local.set_rope_scaling(true);
  local.mutable_transformer()->clear_window_size();
  local.mutable_transformer()->clear_window_attn_skip_freq();
  r = Finalize(local, {1});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("rotary_base_local", "CONFLICT")));
  EXPECT_THAT(FieldsAndReasons(r.status()), Contains(Pair("rotary_base_local", "UNUSED")));
}

}  // namespace
}  // namespace gptb::config
