// Hugging Face layouts: q/k/v regrouping, GPT-2's fused Conv1D c_attn, gate/up concatenation,
// expert names, families inferred from configs, config.json export round trips.
#include "core/checkpoint/hf_mapping.h"

#include <filesystem>
#include <map>

#include "core/config/finalize.h"
#include "core/config/hf_export.h"
#include "core/config/hf_import.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gptb::checkpoint {
namespace {

namespace fs = std::filesystem;
using gptbuilder::v1::GPTModelConfig;
using Json = nlohmann::json;

std::string TempDir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("gptb_hfmap_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

GPTModelConfig Attention(int heads, int groups, int head_dim) {
  GPTModelConfig c;
  c.mutable_transformer()->set_num_attention_heads(heads);
  c.mutable_transformer()->set_num_query_groups(groups);
  c.mutable_transformer()->set_kv_channels(head_dim);
  c.mutable_transformer()->set_hidden_size(heads * head_dim);
  return c;
}

// Writes stored tensors whose element (r, c) is code * 1000 + 10 r + c.
std::unique_ptr<ShardedSafetensorsReader> WriteCoded(
    const std::string& dir, const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, shape] : shapes) specs.push_back({name, DType::kFloat32, shape});
  auto writer = SafetensorsWriter::Create(dir + "/model.safetensors", specs, {});
  EXPECT_TRUE(writer.ok()) << writer.status();
  int code = 1;
  for (const auto& [name, shape] : shapes) {
    const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
    std::vector<float> data(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) data[r * cols + c] = code * 1000.0f + 10 * r + c;
    }
    EXPECT_TRUE((*writer)->WriteTensor(name, data.data()).ok());
    ++code;
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  auto reader = ShardedSafetensorsReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return *std::move(reader);
}

float Code(int code, int64_t r, int64_t c) { return code * 1000.0f + 10 * r + c; }

TensorRoute OneRoute(HfFamily family, const GPTModelConfig& config, const CanonicalTensor& t,
                     const std::string& prefix, int64_t vocab_rows = INT64_MAX) {
  absl::StatusOr<std::vector<TensorRoute>> routes =
      HfRoutes(family, config, {t}, vocab_rows, prefix);
  EXPECT_TRUE(routes.ok()) << routes.status();
  return routes.ok() ? (*routes)[0] : TensorRoute{};
}

TEST(HfMapping, LlamaQkvIsRegroupedPerQueryGroup) {
  // 4 heads in 2 groups, head dim 2, hidden 8: canonical rows per group [q q k v] x 2 rows.
  const GPTModelConfig config = Attention(4, 2, 2);
  const std::string dir = TempDir("qkv");
  // Sorted by name: k = code 1, q = code 2, v = code 3.
  auto reader = WriteCoded(dir, {{"model.layers.3.self_attn.q_proj.weight", {8, 8}},
                                 {"model.layers.3.self_attn.k_proj.weight", {4, 8}},
                                 {"model.layers.3.self_attn.v_proj.weight", {4, 8}}});
  const TensorRoute route =
      OneRoute(HfFamily::kLlama, config,
               {"decoder.layers.3.self_attention.linear_qkv.weight", {16, 8}}, "model.");
  ASSERT_TRUE(ValidateRoute(*reader, route).ok());
  // Read as two TP ranks would: one group each.
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<float> out(8 * 8);
    ASSERT_TRUE(ReadRoute(*reader, route, 0, rank * 8, 8, out.data()).ok());
    for (int64_t i = 0; i < 8; ++i) {
      // Within the group: q rows 4g..4g+3, then k rows 2g..2g+1, then v rows 2g..2g+1.
      const int code = i < 4 ? 2 : (i < 6 ? 1 : 3);
      const int64_t row = i < 4 ? 4 * rank + i : (i < 6 ? 2 * rank + i - 4 : 2 * rank + i - 6);
      for (int64_t c = 0; c < 8; ++c) EXPECT_EQ(out[i * 8 + c], Code(code, row, c)) << i;
    }
  }
  fs::remove_all(dir);
}

TEST(HfMapping, Gpt2FusedConv1DAttentionIsSplitAndRegrouped) {
  // GPT-2: 2 heads of dim 2, hidden 4; c_attn.weight is [in 4, out 12] = [q | k | v] columns.
  const GPTModelConfig config = Attention(2, 2, 2);
  const std::string dir = TempDir("c_attn");
  auto reader = WriteCoded(dir, {{"transformer.h.0.attn.c_attn.bias", {12}},
                                 {"transformer.h.0.attn.c_attn.weight", {4, 12}}});
  const TensorRoute w =
      OneRoute(HfFamily::kGpt2, config,
               {"decoder.layers.0.self_attention.linear_qkv.weight", {12, 4}}, "transformer.");
  const TensorRoute b =
      OneRoute(HfFamily::kGpt2, config, {"decoder.layers.0.self_attention.linear_qkv.bias", {12}},
               "transformer.");
  ASSERT_TRUE(ValidateRoute(*reader, w).ok());
  ASSERT_TRUE(ValidateRoute(*reader, b).ok());
  std::vector<float> weight(12 * 4), bias(12, -1);
  ASSERT_TRUE(ReadRoute(*reader, w, 0, 0, 12, weight.data()).ok());
  ASSERT_TRUE(ReadRoute(*reader, b, 0, 0, 12, bias.data()).ok());
  for (int64_t row = 0; row < 12; ++row) {
    const int64_t head = row / 6, part = (row % 6) / 2, within = row % 2;  // part: q, k, v
    const int64_t column = part * 4 + head * 2 + within;                   // in the fused output
    for (int64_t in = 0; in < 4; ++in) EXPECT_EQ(weight[row * 4 + in], Code(2, in, column)) << row;
    EXPECT_EQ(bias[row], Code(1, column, 0)) << row;
  }
  fs::remove_all(dir);
}

TEST(HfMapping, GateAndUpAreConcatenatedAndTpPiecesReadTheirRows) {
  const GPTModelConfig config = Attention(2, 2, 2);
  const std::string dir = TempDir("gate_up");
  // Sorted: gate_proj = code 1, up_proj = code 2, experts: w1 = 3, w3 = 4.
  auto reader = WriteCoded(dir, {{"model.layers.1.mlp.gate_proj.weight", {6, 4}},
                                 {"model.layers.1.mlp.up_proj.weight", {6, 4}}});
  const TensorRoute route = OneRoute(HfFamily::kQwen2, config,
                                     {"decoder.layers.1.mlp.linear_fc1.weight", {12, 4}}, "model.");
  // TP rank 1 of 2 holds gate rows [3, 6) and up rows [3, 6): canonical [3, 6) and [9, 12).
  std::vector<float> gate(3 * 4), up(3 * 4);
  ASSERT_TRUE(ReadRoute(*reader, route, 0, 3, 3, gate.data()).ok());
  ASSERT_TRUE(ReadRoute(*reader, route, 0, 9, 3, up.data()).ok());
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t c = 0; c < 4; ++c) {
      EXPECT_EQ(gate[i * 4 + c], Code(1, 3 + i, c));
      EXPECT_EQ(up[i * 4 + c], Code(2, 3 + i, c));
    }
  }
  fs::remove_all(dir);
}

TEST(HfMapping, NamesOfExpertsNormsAndBareBaseModels) {
  const GPTModelConfig config = Attention(2, 2, 2);
  TensorRoute expert = OneRoute(
      HfFamily::kMixtral, config,
      {"decoder.layers.1.mlp.experts.local_experts.7.linear_fc1.weight", {8, 4}}, "model.");
  ASSERT_EQ(expert.segments.size(), 2u);
  EXPECT_EQ(expert.segments[0].tensor, "model.layers.1.block_sparse_moe.experts.7.w1.weight");
  EXPECT_EQ(expert.segments[1].tensor, "model.layers.1.block_sparse_moe.experts.7.w3.weight");
  EXPECT_EQ(OneRoute(HfFamily::kMixtral, config, {"decoder.layers.0.pre_mlp_layernorm.weight", {4}},
                     "model.")
                .segments[0]
                .tensor,
            "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(OneRoute(HfFamily::kQwen3, config,
                     {"decoder.layers.2.self_attention.k_layernorm.weight", {2}}, "model.")
                .segments[0]
                .tensor,
            "model.layers.2.self_attn.k_norm.weight");
  // lm_head is outside the base model; a bare base model has no prefix.
  EXPECT_EQ(OneRoute(HfFamily::kLlama, config,
                     {"output_layer.weight", {10, 4}, DType::kFloat32, true}, "")
                .segments[0]
                .tensor,
            "lm_head.weight");
  EXPECT_EQ(OneRoute(HfFamily::kGpt2, config, {"embedding.position_embeddings.weight", {10, 4}}, "")
                .segments[0]
                .tensor,
            "wpe.weight");
  // Vocabulary tensors keep the HF rows; the model's padding is not stored.
  const TensorRoute embed = OneRoute(
      HfFamily::kGpt2, config,
      {"embedding.word_embeddings.weight", {104, 4}, DType::kFloat32, true}, "transformer.", 100);
  EXPECT_EQ(embed.segments[0].rows, 100);
  const TensorRoute proj = OneRoute(
      HfFamily::kGpt2, config, {"decoder.layers.0.mlp.linear_fc2.weight", {4, 16}}, "transformer.");
  EXPECT_TRUE(proj.segments[0].transposed);
  EXPECT_EQ(proj.segments[0].tensor, "transformer.h.0.mlp.c_proj.weight");
}

TEST(HfMapping, DeepSeekMtpLayersAreStoredAfterTheDecoderLayers) {
  GPTModelConfig config = Attention(2, 2, 2);
  config.mutable_transformer()->set_num_layers(61);
  auto hf_name = [&](const std::string& canonical, std::vector<int64_t> shape) {
    TensorRoute route = OneRoute(HfFamily::kDeepseekV3, config, {canonical, shape}, "model.");
    return route.segments.empty() ? std::string() : route.segments[0].tensor;
  };
  EXPECT_EQ(hf_name("mtp.layers.0.enorm.weight", {4}), "model.layers.61.enorm.weight");
  EXPECT_EQ(hf_name("mtp.layers.0.eh_proj.weight", {4, 8}), "model.layers.61.eh_proj.weight");
  EXPECT_EQ(hf_name("mtp.layers.0.final_layernorm.weight", {4}),
            "model.layers.61.shared_head.norm.weight");
  EXPECT_EQ(hf_name("mtp.layers.0.mtp_model_layer.mlp.router.expert_bias", {8}),
            "model.layers.61.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(hf_name("mtp.layers.0.mtp_model_layer.self_attention.linear_kv_up_proj.weight", {8, 4}),
            "model.layers.61.self_attn.kv_b_proj.weight");
  EXPECT_EQ(hf_name("decoder.layers.3.mlp.experts.local_experts.7.linear_fc2.weight", {4, 8}),
            "model.layers.3.mlp.experts.7.down_proj.weight");
  EXPECT_EQ(hf_name("decoder.layers.3.self_attention.linear_q_up_proj.layer_norm_weight", {4}),
            "model.layers.3.self_attn.q_a_layernorm.weight");
}

TEST(HfMapping, TensorsWithoutCounterpartAreUnimplemented) {
  const GPTModelConfig config = Attention(2, 2, 2);
  absl::StatusOr<std::vector<TensorRoute>> routes =
      HfRoutes(HfFamily::kLlama, config, {{"mtp.layers.0.enorm.weight", {4}}}, 10, "model.");
  EXPECT_EQ(routes.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(routes.status().message()),
              ::testing::HasSubstr("mtp.layers.0.enorm.weight"));
  EXPECT_EQ(
      HfRoutes(HfFamily::kGpt2, config, {{"decoder.layers.0.mlp.router.weight", {4, 4}}}, 10, "")
          .status()
          .code(),
      absl::StatusCode::kUnimplemented);
}

TEST(HfMapping, IgnorableTensors) {
  EXPECT_TRUE(IsIgnorableHfTensor("transformer.h.0.attn.bias", false));
  EXPECT_TRUE(IsIgnorableHfTensor("h.3.attn.masked_bias", false));
  EXPECT_TRUE(IsIgnorableHfTensor("model.layers.0.self_attn.rotary_emb.inv_freq", false));
  EXPECT_TRUE(IsIgnorableHfTensor("lm_head.weight", true));
  EXPECT_FALSE(IsIgnorableHfTensor("lm_head.weight", false));
  EXPECT_FALSE(IsIgnorableHfTensor("model.layers.0.self_attn.q_proj.bias", false));
  // DeepSeek-V3's MTP layer's copies of the embedding and the head.
  EXPECT_TRUE(IsIgnorableHfTensor("model.layers.61.embed_tokens.weight", false));
  EXPECT_TRUE(IsIgnorableHfTensor("model.layers.61.shared_head.head.weight", false));
  EXPECT_FALSE(IsIgnorableHfTensor("model.embed_tokens.weight", false));
  EXPECT_FALSE(IsIgnorableHfTensor("model.layers.61.shared_head.norm.weight", false));
}

// Small config.json files of each family.
Json HfConfig(const std::string& type) {
  if (type == "gpt2") {
    return {{"model_type", "gpt2"},
            {"n_embd", 64},
            {"n_layer", 2},
            {"n_head", 4},
            {"vocab_size", 100},
            {"n_positions", 32},
            {"activation_function", "gelu_new"}};
  }
  Json j = {{"model_type", type},       {"hidden_size", 64},
            {"num_hidden_layers", 2},   {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"intermediate_size", 96},
            {"vocab_size", 100},        {"max_position_embeddings", 64},
            {"head_dim", 16},           {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0}};
  if (type == "mixtral") {
    j["num_local_experts"] = 4;
    j["num_experts_per_tok"] = 2;
    j["sliding_window"] = nullptr;
  }
  if (type == "qwen3_moe") {
    // Layer 0 with experts, layer 1 dense; routing without renormalisation.
    j["num_experts"] = 4;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 32;
    j["mlp_only_layers"] = {1};
    j["norm_topk_prob"] = false;
  }
  if (type == "deepseek_v3" || type == "deepseek_v2") {
    // MLA, a dense layer then a MoE layer with a shared expert; V3 with groups, YaRN and an MTP
    // layer, V2 with best-expert groups.
    j["num_key_value_heads"] = 4;
    j["q_lora_rank"] = 24;
    j["kv_lora_rank"] = 16;
    j["qk_nope_head_dim"] = 16;
    j["qk_rope_head_dim"] = 8;
    j["v_head_dim"] = 12;
    j["first_k_dense_replace"] = 1;
    j["n_routed_experts"] = 8;
    j["moe_intermediate_size"] = 32;
    j["n_group"] = 4;
    j["topk_group"] = 2;
    if (type == "deepseek_v3") {
      j["n_shared_experts"] = 1;
      j["num_experts_per_tok"] = 4;
      j["routed_scaling_factor"] = 2.5;
      j["num_nextn_predict_layers"] = 1;
      j["rope_scaling"] = {{"type", "yarn"},
                           {"factor", 4.0},
                           {"mscale", 1.0},
                           {"mscale_all_dim", 0.8},
                           {"beta_fast", 8.0},
                           {"beta_slow", 1.0},
                           {"original_max_position_embeddings", 16}};
    } else {
      j["n_shared_experts"] = 2;
      j["num_experts_per_tok"] = 2;
      j["topk_method"] = "group_limited_greedy";
    }
  }
  if (type == "mistral") j["sliding_window"] = 4096;
  if (type == "qwen2") j["tie_word_embeddings"] = true;
  return j;
}

GPTModelConfig ImportFinalized(const Json& j) {
  absl::StatusOr<GPTModelConfig> c = config::ImportHfConfig(j);
  EXPECT_TRUE(c.ok()) << c.status();
  absl::StatusOr<GPTModelConfig> f = config::Finalize(*c);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *f : GPTModelConfig();
}

TEST(HfFamilies, InferredFromImportedConfigsAndExportRoundTrips) {
  for (const std::string type : {"gpt2", "llama", "mistral", "qwen2", "qwen3", "mixtral",
                                 "qwen3_moe", "deepseek_v3", "deepseek_v2"}) {
    const GPTModelConfig c = ImportFinalized(HfConfig(type));
    absl::StatusOr<HfFamily> family = InferHfFamily(c);
    ASSERT_TRUE(family.ok()) << type << ": " << family.status();
    EXPECT_EQ(HfModelType(*family), type);
    EXPECT_EQ(ParseHfModelType(type), *family);
    EXPECT_TRUE(CheckHfRepresentable(*family, c).ok());
    absl::StatusOr<Json> exported = config::ExportHfConfig(c, type);
    ASSERT_TRUE(exported.ok()) << exported.status();
    EXPECT_EQ((*exported)["model_type"], type);
    const GPTModelConfig again = ImportFinalized(*exported);
    EXPECT_TRUE(CheckConfigCompatible(c, again, /*strict=*/true, type).ok())
        << type << ": " << CheckConfigCompatible(c, again, true, type) << "\n"
        << exported->dump(2);
  }
  EXPECT_EQ(config::ExportHfConfig(GPTModelConfig(), "falcon").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HfFamilies, UnrepresentableModelsAreRejectedField) {
  GPTModelConfig c = ImportFinalized(HfConfig("llama"));
  c.mutable_transformer()->set_mtp_num_layers(1);
  c.mutable_transformer()->set_normalization("LayerNorm");
  absl::Status s = CheckHfRepresentable(HfFamily::kLlama, c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.mtp_num_layers"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.normalization"));
  EXPECT_FALSE(InferHfFamily(c).ok());
  // A Llama is not a Qwen3 (no qk norms), a GPT-2 is not a Llama.
  EXPECT_FALSE(CheckHfRepresentable(HfFamily::kQwen3, ImportFinalized(HfConfig("llama"))).ok());
  EXPECT_FALSE(CheckHfRepresentable(HfFamily::kLlama, ImportFinalized(HfConfig("gpt2"))).ok());
  // Routing transformers does not compute: Mixtral always renormalises the top k, and neither
  // family has expert groups, expert bias or scaled routing weights.
  GPTModelConfig moe = ImportFinalized(HfConfig("qwen3_moe"));
  EXPECT_TRUE(CheckHfRepresentable(HfFamily::kQwen3Moe, moe).ok());
  EXPECT_FALSE(CheckHfRepresentable(HfFamily::kQwen3, moe).ok());  // dense
  moe.mutable_transformer()->set_moe_router_enable_expert_bias(true);
  moe.mutable_transformer()->set_moe_router_topk_scaling_factor(2.5);
  s = CheckHfRepresentable(HfFamily::kQwen3Moe, moe);
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("transformer.moe_router_enable_expert_bias"));
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("transformer.moe_router_topk_scaling_factor"));
  GPTModelConfig mixtral = ImportFinalized(HfConfig("mixtral"));
  mixtral.mutable_transformer()->set_moe_router_pre_softmax(true);
  mixtral.mutable_transformer()->clear_moe_layer_freq();
  mixtral.mutable_transformer()->add_moe_layer_freq(0);
  mixtral.mutable_transformer()->add_moe_layer_freq(1);
  s = CheckHfRepresentable(HfFamily::kMixtral, mixtral);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.moe_router_pre_softmax"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("transformer.moe_layer_freq"));
}

}  // namespace
}  // namespace gptb::checkpoint
