#include "core/config/hf_export.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/hf_gemma_config.h"
#include "core/config/hf_gpt_oss_config.h"
#include "core/config/hf_import.h"

namespace gptb::config {
namespace {

using Json = nlohmann::json;

std::string TorchDtype(const gptbuilder::v1::TransformerConfig& t) {
  if (t.bf16()) return "bfloat16";
  if (t.fp16()) return "float16";
  return t.params_dtype().empty() ? "float32" : t.params_dtype();
}

// The MLP activation the model computes, by its transformers (ACT2FN) name: the tanh
// approximation of GELU (fast_gelu, or gelu run through Megatron's fused bias-GELU kernels) is
// GPT-2's "gelu_new" and the Llama family's "gelu_pytorch_tanh".
std::string HfActivation(const gptbuilder::v1::TransformerConfig& t, bool gpt2) {
  const std::string& act = t.activation_func();
  if (act == "fast_gelu" || (act == "gelu" && t.bias_activation_fusion())) {
    return gpt2 ? "gelu_new" : "gelu_pytorch_tanh";
  }
  if (act == "squared_relu") return "relu2";
  return act;
}

Json Gpt2(const gptbuilder::v1::GPTModelConfig& c) {
  const auto& t = c.transformer();
  Json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = c.vocab_size();
  j["n_embd"] = t.hidden_size();
  j["n_layer"] = t.num_layers();
  j["n_head"] = t.num_attention_heads();
  j["n_inner"] = t.ffn_hidden_size();
  j["n_positions"] = c.seq_length();
  j["n_ctx"] = c.seq_length();
  j["layer_norm_epsilon"] = t.layernorm_epsilon();
  j["activation_function"] = HfActivation(t, true);
  j["resid_pdrop"] = t.hidden_dropout();
  j["embd_pdrop"] = t.hidden_dropout();
  j["attn_pdrop"] = t.attention_dropout();
  j["initializer_range"] = t.init_method_std();
  j["tie_word_embeddings"] = c.share_embeddings_and_output_weights();
  j["scale_attn_weights"] = true;
  j["torch_dtype"] = TorchDtype(t);
  return j;
}

Json LlamaLike(const gptbuilder::v1::GPTModelConfig& c, const std::string& type) {
  const auto& t = c.transformer();
  static const std::map<std::string, std::string> kArchitecture = {
      {"llama", "LlamaForCausalLM"},     {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},     {"qwen3", "Qwen3ForCausalLM"},
      {"mixtral", "MixtralForCausalLM"}, {"qwen3_moe", "Qwen3MoeForCausalLM"}};
  Json j;
  j["architectures"] = {kArchitecture.at(type)};
  j["model_type"] = type;
  j["vocab_size"] = c.vocab_size();
  j["hidden_size"] = t.hidden_size();
  j["intermediate_size"] = type == "mixtral" && t.has_moe_ffn_hidden_size()
                               ? t.moe_ffn_hidden_size()
                               : t.ffn_hidden_size();
  j["num_hidden_layers"] = t.num_layers();
  j["num_attention_heads"] = t.num_attention_heads();
  j["num_key_value_heads"] = t.num_query_groups();
  j["head_dim"] = t.kv_channels();
  j["max_position_embeddings"] = c.seq_length();
  j["rms_norm_eps"] = t.layernorm_epsilon();
  j["rope_theta"] = c.rotary_base();
  j["hidden_act"] = HfActivation(t, false);
  j["initializer_range"] = t.init_method_std();
  j["attention_dropout"] = t.attention_dropout();
  j["tie_word_embeddings"] = c.share_embeddings_and_output_weights();
  j["torch_dtype"] = TorchDtype(t);
  if (c.rotary_percent() != 1.0) j["partial_rotary_factor"] = c.rotary_percent();
  if (type == "llama") {
    j["attention_bias"] = t.add_qkv_bias();
    j["mlp_bias"] = t.add_bias_linear();
    if (c.rope_scaling()) {
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling_factor()},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 8192}};
    } else if (c.has_seq_len_interpolation_factor()) {
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.seq_len_interpolation_factor()}};
    } else {
      j["rope_scaling"] = nullptr;
    }
  }
  if (type == "mistral" || type == "mixtral") {
    j["sliding_window"] =
        t.window_size_size() > 0 ? Json(int64_t{t.window_size(0)} + 1) : Json(nullptr);
  }
  if (type == "qwen2" || type == "qwen3") j["use_sliding_window"] = false;
  if (type == "qwen3") j["attention_bias"] = t.add_qkv_bias();
  if (type == "qwen3_moe") {
    // Qwen3MoeConfig: experts in the layers not listed in mlp_only_layers (decoder_sparse_step
    // 1); routing renormalised (norm_topk_prob) unless Megatron's router is pre-softmax.
    j["use_sliding_window"] = false;
    j["attention_bias"] = false;
    j["num_experts"] = t.num_moe_experts();
    j["num_experts_per_tok"] = t.moe_router_topk();
    j["moe_intermediate_size"] =
        t.has_moe_ffn_hidden_size() ? t.moe_ffn_hidden_size() : t.ffn_hidden_size();
    j["norm_topk_prob"] = !t.moe_router_pre_softmax();
    j["router_aux_loss_coef"] = t.moe_aux_loss_coeff();
    j["decoder_sparse_step"] = 1;
    Json dense = Json::array();
    for (int i = 0; i < t.num_layers(); ++i) {
      // moe_layer_freq as Megatron reads it: a per-layer list, or every k-th layer (default 1).
      const bool moe = t.moe_layer_freq_size() > 1
                           ? i < t.moe_layer_freq_size() && t.moe_layer_freq(i) != 0
                           : (t.moe_layer_freq_size() == 1 ? t.moe_layer_freq(0) : 1) > 0 &&
                                 i % (t.moe_layer_freq_size() == 1 ? t.moe_layer_freq(0) : 1) == 0;
      if (!moe) dense.push_back(i);
    }
    j["mlp_only_layers"] = dense;
  }
  if (type == "mixtral") {
    j["num_local_experts"] = t.num_moe_experts();
    j["num_experts_per_tok"] = t.moe_router_topk();
    j["router_aux_loss_coef"] = t.moe_aux_loss_coeff();
  }
  return j;
}

// DeepseekV2Config / DeepseekV3Config of an MLA model the HF mapping accepted
// (CheckHfRepresentable): the inverse of the importer's mapping.
Json Deepseek(const gptbuilder::v1::GPTModelConfig& c, bool v3) {
  const auto& t = c.transformer();
  Json j;
  j["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  j["model_type"] = v3 ? "deepseek_v3" : "deepseek_v2";
  j["vocab_size"] = c.vocab_size();
  j["hidden_size"] = t.hidden_size();
  j["intermediate_size"] = t.ffn_hidden_size();
  j["num_hidden_layers"] = t.num_layers();
  j["num_attention_heads"] = t.num_attention_heads();
  j["num_key_value_heads"] = t.num_attention_heads();
  j["max_position_embeddings"] = c.seq_length();
  j["rms_norm_eps"] = t.layernorm_epsilon();
  j["rope_theta"] = c.rotary_base();
  j["hidden_act"] = HfActivation(t, false);
  j["initializer_range"] = t.init_method_std();
  j["attention_dropout"] = t.attention_dropout();
  j["attention_bias"] = false;
  j["tie_word_embeddings"] = c.share_embeddings_and_output_weights();
  j["torch_dtype"] = TorchDtype(t);
  j["q_lora_rank"] = t.q_lora_rank() > 0 ? Json(t.q_lora_rank()) : Json(nullptr);
  j["kv_lora_rank"] = t.kv_lora_rank();
  j["qk_nope_head_dim"] = t.qk_head_dim();
  j["qk_rope_head_dim"] = t.qk_pos_emb_head_dim();
  j["v_head_dim"] = t.v_head_dim();
  if (v3) j["rope_interleave"] = true;
  if (t.rope_type() == "yarn") {
    Json yarn = {{"type", "yarn"},
                 {"factor", t.rotary_scaling_factor()},
                 {"original_max_position_embeddings", t.original_max_position_embeddings()},
                 {"beta_fast", t.beta_fast()},
                 {"beta_slow", t.beta_slow()}};
    // The importer's mapping: both scales, or neither (Megatron's mscale 1, mscale_all_dim 0).
    if (t.mscale_all_dim() != 0.0) {
      yarn["mscale"] = t.mscale();
      yarn["mscale_all_dim"] = t.mscale_all_dim();
    }
    j["rope_scaling"] = yarn;
  } else {
    j["rope_scaling"] = nullptr;
  }
  // Experts: dense layers first (first_k_dense_replace), then MoE in every layer.
  int first_dense = 0;
  for (int i = 0; i < t.num_layers(); ++i) {
    const bool moe = t.moe_layer_freq_size() > 1
                         ? i < t.moe_layer_freq_size() && t.moe_layer_freq(i) != 0
                         : (t.moe_layer_freq_size() == 1 ? t.moe_layer_freq(0) : 1) > 0 &&
                               i % (t.moe_layer_freq_size() == 1 ? t.moe_layer_freq(0) : 1) == 0;
    if (moe) break;
    first_dense = i + 1;
  }
  const int64_t moe_ffn =
      t.has_moe_ffn_hidden_size() ? t.moe_ffn_hidden_size() : t.ffn_hidden_size();
  j["first_k_dense_replace"] = first_dense;
  j["moe_layer_freq"] = 1;
  j["n_routed_experts"] = t.num_moe_experts();
  j["moe_intermediate_size"] = moe_ffn;
  j["n_shared_experts"] = t.has_moe_shared_expert_intermediate_size() && moe_ffn > 0
                              ? t.moe_shared_expert_intermediate_size() / moe_ffn
                              : 0;
  j["num_experts_per_tok"] = t.moe_router_topk();
  j["routed_scaling_factor"] =
      t.has_moe_router_topk_scaling_factor() ? t.moe_router_topk_scaling_factor() : 1.0;
  const bool groups = t.has_moe_router_group_topk() && t.moe_router_group_topk() > 0;
  j["n_group"] = groups ? t.moe_router_num_groups() : 1;
  j["topk_group"] = groups ? t.moe_router_group_topk() : 1;
  if (t.moe_aux_loss_coeff() != 0.0 && t.moe_router_load_balancing_type() != "none") {
    j["aux_loss_alpha"] = t.moe_aux_loss_coeff();
    j["seq_aux"] = t.moe_router_load_balancing_type() == "seq_aux_loss";
  }
  if (v3) {
    j["scoring_func"] = "sigmoid";
    j["topk_method"] = "noaux_tc";
    j["norm_topk_prob"] = true;
    j["num_nextn_predict_layers"] = t.has_mtp_num_layers() ? t.mtp_num_layers() : 0;
  } else {
    j["scoring_func"] = "softmax";
    j["topk_method"] = groups ? "group_limited_greedy" : "greedy";
    j["norm_topk_prob"] = false;
  }
  return j;
}

}  // namespace

absl::StatusOr<nlohmann::json> ExportHfConfig(const gptbuilder::v1::GPTModelConfig& config,
                                              std::string_view model_type) {
  const std::string type(model_type);
  bool supported = false;
  for (const std::string& s : SupportedHfModelTypes()) supported = supported || s == type;
  if (!supported) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_type '", type,
        "' is not supported; supported: ", absl::StrJoin(SupportedHfModelTypes(), ", "), "."));
  }
  Json j = type == "gpt2"          ? Gpt2(config)
           : type == "gpt_oss"     ? ExportGptOssConfig(config)
           : type == "gemma2"      ? ExportGemma2Config(config)
           : type == "gemma3_text" ? ExportGemma3TextConfig(config)
           : type == "deepseek_v2" || type == "deepseek_v3"
               ? Deepseek(config, type == "deepseek_v3")
               : LlamaLike(config, type);
  if (config.has_hf_model_id() && !config.hf_model_id().empty()) {
    j["_name_or_path"] = config.hf_model_id();
  }
  return j;
}

}  // namespace gptb::config
