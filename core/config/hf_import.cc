#include "core/config/hf_import.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/accepted_values.h"
#include "core/config/hf_gemma_config.h"
#include "core/config/hf_gpt_oss_config.h"
#include "core/config/hf_reader.h"
#include "core/config/violations.h"

namespace gptb::config {
namespace {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;
using Json = nlohmann::json;

// One row per supported family: what its transformers config class defaults to when config.json
// omits a key, and which of Bridge's per-family settings apply. Families are data, not code paths.
struct Family {
  const char* model_type;
  double rms_norm_eps;
  double rope_theta;
  int64_t max_position_embeddings;
  std::optional<int64_t> head_dim;  // the class default when config.json has none (Qwen3: 128)
  bool qkv_bias;                    // Qwen2 (Bridge sets add_qkv_bias true)
  bool qk_layernorm;                // Qwen3
  // Mixtral: num_local_experts, num_experts_per_tok, experts of intermediate_size. Qwen3-MoE:
  // num_experts, moe_intermediate_size, norm_topk_prob, decoder_sparse_step, mlp_only_layers.
  enum class Moe { kNone, kMixtral, kQwen } moe;
  bool llama_extras;    // Llama: attention_bias/mlp_bias keys, fusions, llama3/linear rope scaling
  bool sliding_window;  // Mistral/Mixtral: sliding_window W -> window_size [W - 1, 0]
  bool bf16_autocast;   // Qwen2/Qwen3 bridges set autocast_dtype bfloat16
};

constexpr Family kFamilies[] = {
    // model_type  eps    theta  max_pos   head_dim      qkvb   qkln   moe    llama  window autoc
    {"llama", 1e-6, 10000.0, 2048, std::nullopt, false, false, Family::Moe::kNone, true, false,
     false},
    {"mistral", 1e-6, 10000.0, 4096 * 32, std::nullopt, false, false, Family::Moe::kNone, false,
     true, false},
    {"mixtral", 1e-5, 1e6, 4096 * 32, std::nullopt, false, false, Family::Moe::kMixtral, false,
     true, false},
    {"qwen2", 1e-6, 10000.0, 32768, std::nullopt, true, false, Family::Moe::kNone, false, false,
     true},
    {"qwen3", 1e-6, 10000.0, 32768, 128, false, true, Family::Moe::kNone, false, false, true},
    // Qwen3MoeConfig has no head_dim default (transformers uses hidden_size / heads).
    {"qwen3_moe", 1e-6, 10000.0, 32768, std::nullopt, false, true, Family::Moe::kQwen, false, false,
     true},
};

void SetActivation(HfReader& hf, const char* key, const char* fallback, TransformerConfig* t) {
  const std::string name = hf.String(key).value_or(fallback);
  // transformers' tanh approximations of GELU (NewGELUActivation, FastGELUActivation,
  // PytorchGELUTanh) are one function: Megatron-Bridge's fast_gelu. Its "gelu" is the exact GELU.
  std::optional<std::string> canonical = name == "gelu_new" || name == "gelu_fast"
                                             ? std::optional<std::string>("fast_gelu")
                                             : NormalizeActivation(name);
  if (!canonical.has_value()) {
    hf.violations()->Add(key, "UNSUPPORTED",
                         absl::StrCat("activation '", name, "' is not supported; supported: ",
                                      QuotedList(ActivationValues()), "."));
    return;
  }
  t->set_activation_func(*canonical);
}

std::string RopeType(const Json& scaling) {
  for (const char* key : {"rope_type", "type"}) {
    if (scaling.contains(key) && scaling[key].is_string()) return scaling[key].get<std::string>();
  }
  return "";
}

// rope_scaling: none/default for every family; Llama also llama3 (Llama 3.1) and linear.
void SetRopeScaling(HfReader& hf, const Family& family, GPTModelConfig* config) {
  const Json* scaling = hf.Object("rope_scaling");
  const char* key = "rope_scaling";
  if (scaling == nullptr && hf.Has("rope_parameters")) {
    scaling = hf.Object("rope_parameters");
    key = "rope_parameters";
  }
  const std::string type = scaling == nullptr ? "" : RopeType(*scaling);
  if (family.llama_extras) {
    // Bridge's builder path (LlamaBridge.hf_config_to_model_config_kwargs) sets both explicitly.
    config->set_rope_scaling(false);
    config->set_rope_scaling_factor(1.0);
  }
  if (type.empty() || type == "default") return;
  const double factor = scaling->contains("factor") && (*scaling)["factor"].is_number()
                            ? (*scaling)["factor"].get<double>()
                            : 8.0;
  if (family.llama_extras && type == "llama3") {
    config->set_rope_scaling(true);
    config->set_rope_scaling_factor(factor);
    return;
  }
  if (family.llama_extras && type == "linear") {
    config->set_seq_len_interpolation_factor(factor);
    return;
  }
  hf.violations()->Add(
      key, "UNSUPPORTED",
      absl::StrCat("rope scaling type '", type, "' is not supported for ", family.model_type,
                   family.llama_extras ? " (supported: llama3, linear)."
                                       : " (no rope scaling is supported)."));
}

// Qwen3-MoE's experts (Qwen3MoeSparseMoeBlock, as Megatron-Bridge's Qwen3MoEBridge maps them):
// layer i has experts when i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0,
// else a dense MLP of intermediate_size. transformers takes the softmax over all experts and its
// top k, renormalised when norm_topk_prob: that is Megatron's softmax of the top-k logits
// (moe_router_pre_softmax false); without norm_topk_prob it is the pre-softmax router.
void ImportQwenMoe(HfReader& hf, int64_t layers, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  if (hf.Bool("attention_bias").value_or(false)) {
    hf.violations()->Add("attention_bias", "UNSUPPORTED",
                         "Qwen3-MoE's attention_bias also puts a bias on o_proj, which "
                         "Megatron's add_qkv_bias does not; set attention_bias to false.");
  }
  // transformers 5 writes num_local_experts (its attribute_map's name), the hub num_experts.
  const int64_t experts = hf.Int("num_experts").value_or(hf.Int("num_local_experts").value_or(128));
  const int64_t step = hf.Int("decoder_sparse_step").value_or(1);
  if (experts <= 0) {
    hf.violations()->Add("num_experts", "UNSUPPORTED",
                         "a Qwen3-MoE model needs num_experts > 0 (model_type qwen3 is the dense "
                         "model).");
    return;
  }
  if (step <= 0) {
    hf.violations()->Add("decoder_sparse_step", "OUT_OF_RANGE",
                         absl::StrCat("decoder_sparse_step must be > 0, got ", step, "."));
    return;
  }
  std::vector<int32_t> pattern(static_cast<size_t>(std::max<int64_t>(layers, 0)), 0);
  for (int64_t i = 0; i < layers; ++i) pattern[i] = (i + 1) % step == 0 ? 1 : 0;
  if (hf.Has("mlp_only_layers")) {
    const Json& list = hf.json()["mlp_only_layers"];
    if (!list.is_array()) {
      hf.violations()->Add(
          "mlp_only_layers", "TYPE_MISMATCH",
          absl::StrCat("expected a list of layer indices, got ", list.dump(), "."));
      return;
    }
    for (const Json& v : list) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= layers) {
        hf.violations()->Add("mlp_only_layers", "OUT_OF_RANGE",
                             absl::StrCat("layer indices must be integers in [0, ", layers,
                                          "), got ", v.dump(), "."));
        return;
      }
      pattern[v.get<int64_t>()] = 0;
    }
  }
  t->set_num_moe_experts(static_cast<int32_t>(experts));
  t->set_moe_router_topk(static_cast<int32_t>(hf.Int("num_experts_per_tok").value_or(8)));
  t->set_moe_ffn_hidden_size(static_cast<int32_t>(hf.Int("moe_intermediate_size").value_or(768)));
  t->set_moe_router_score_function("softmax");
  t->set_moe_router_pre_softmax(!hf.Bool("norm_topk_prob").value_or(false));
  t->set_moe_aux_loss_coeff(hf.Number("router_aux_loss_coef").value_or(0.001));
  // Megatron's moe_layer_freq: 1 (every layer, its default) or the per-layer list.
  if (std::find(pattern.begin(), pattern.end(), 0) != pattern.end()) {
    for (int32_t moe : pattern) t->add_moe_layer_freq(moe);
  }
}

void ImportLlamaLike(HfReader& hf, const Family& family, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  const int64_t layers = hf.RequiredInt("num_hidden_layers");
  const int64_t hidden = hf.RequiredInt("hidden_size");
  const int64_t heads = hf.RequiredInt("num_attention_heads");
  const int64_t ffn = hf.RequiredInt("intermediate_size");
  const int64_t vocab = hf.RequiredInt("vocab_size");
  t->set_num_layers(static_cast<int32_t>(layers));
  t->set_hidden_size(static_cast<int32_t>(hidden));
  t->set_num_attention_heads(static_cast<int32_t>(heads));
  t->set_ffn_hidden_size(static_cast<int32_t>(ffn));
  t->set_num_query_groups(static_cast<int32_t>(hf.Int("num_key_value_heads").value_or(heads)));
  // Bridge maps the config's head_dim attribute, which transformers fills with h // n.
  if (std::optional<int64_t> head_dim = hf.Int("head_dim"); head_dim.has_value()) {
    t->set_kv_channels(static_cast<int32_t>(*head_dim));
  } else if (family.head_dim.has_value()) {
    t->set_kv_channels(static_cast<int32_t>(*family.head_dim));
  } else if (heads > 0 && hidden % heads == 0) {
    t->set_kv_channels(static_cast<int32_t>(hidden / heads));
  }
  config->set_vocab_size(vocab);
  config->set_make_vocab_size_divisible_by(VocabDivisor(vocab > 0 ? vocab : 128));
  config->set_should_pad_vocab(false);  // Bridge keeps the HF vocabulary as is
  config->set_seq_length(static_cast<int32_t>(
      hf.Int("max_position_embeddings").value_or(family.max_position_embeddings)));
  t->set_layernorm_epsilon(hf.Number("rms_norm_eps").value_or(family.rms_norm_eps));
  t->set_init_method_std(hf.Number("initializer_range").value_or(0.02));
  t->set_attention_dropout(hf.Number("attention_dropout").value_or(0.0));
  t->set_hidden_dropout(0.0);
  config->set_share_embeddings_and_output_weights(hf.Bool("tie_word_embeddings").value_or(false));
  t->set_normalization("RMSNorm");
  t->set_gated_linear_unit(true);
  SetActivation(hf, "hidden_act", "silu", t);
  t->set_add_bias_linear(false);
  t->set_add_qkv_bias(family.qkv_bias);
  if (family.model_type == std::string_view("qwen3") && hf.Bool("attention_bias").value_or(false)) {
    // Qwen3Attention puts the bias on q, k, v and o_proj; Megatron's add_qkv_bias covers only
    // linear_qkv, so importing it would drop o_proj's bias.
    hf.violations()->Add("attention_bias", "UNSUPPORTED",
                         "Qwen3's attention_bias also puts a bias on o_proj, which Megatron's "
                         "add_qkv_bias does not; set attention_bias to false.");
  }
  if (family.llama_extras) {
    t->set_add_qkv_bias(hf.Bool("attention_bias").value_or(false));
    t->set_add_bias_linear(hf.Bool("mlp_bias").value_or(false));
    // Megatron fuses SwiGLU without changing it; a fused gelu would become the tanh
    // approximation, and other activations do not fuse.
    t->set_bias_activation_fusion(t->activation_func() == "silu");
    t->set_masked_softmax_fusion(true);
    t->set_persist_layer_norm(true);
    t->set_bias_dropout_fusion(true);
    t->set_apply_rope_fusion(true);
  }
  if (family.qk_layernorm) t->set_qk_layernorm(true);
  if (family.bf16_autocast) t->set_autocast_dtype("bfloat16");
  config->set_position_embedding_type("rope");
  config->set_rotary_percent(hf.Number("partial_rotary_factor").value_or(1.0));
  const Json* rope_parameters = hf.Has("rope_parameters") ? hf.Object("rope_parameters") : nullptr;
  SetRotaryBase(hf, rope_parameters, family.rope_theta, config);
  SetRopeScaling(hf, family, config);
  if (family.sliding_window) {
    if (std::optional<int64_t> window = hf.Int("sliding_window"); window.has_value()) {
      t->add_window_size(static_cast<int32_t>(*window - 1));
      t->add_window_size(0);
    }
  } else if (hf.Bool("use_sliding_window").value_or(false)) {
    hf.violations()->Add("use_sliding_window", "UNSUPPORTED",
                         absl::StrCat(family.model_type,
                                      "'s per-layer sliding window "
                                      "(max_window_layers) is not supported; set "
                                      "use_sliding_window to false."));
  }
  if (family.moe == Family::Moe::kMixtral) {
    t->set_num_moe_experts(static_cast<int32_t>(hf.Int("num_local_experts").value_or(8)));
    t->set_moe_router_topk(static_cast<int32_t>(hf.Int("num_experts_per_tok").value_or(2)));
    t->set_moe_ffn_hidden_size(static_cast<int32_t>(ffn));
    t->set_moe_aux_loss_coeff(hf.Number("router_aux_loss_coef").value_or(0.001));
  } else if (family.moe == Family::Moe::kQwen) {
    ImportQwenMoe(hf, layers, config);
  }
  SetDtype(hf, t);
  SetNameOrPath(hf, config);
}

// GPT-2 has no Bridge bridge; this follows Megatron-LM's GPT-2 recipe (LayerNorm, biases,
// learned absolute positions, tied embeddings, vocabulary padded to a multiple of 128 on request).
void ImportGpt2(HfReader& hf, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  const int64_t hidden = hf.RequiredInt("n_embd");
  t->set_num_layers(static_cast<int32_t>(hf.RequiredInt("n_layer")));
  t->set_hidden_size(static_cast<int32_t>(hidden));
  t->set_num_attention_heads(static_cast<int32_t>(hf.RequiredInt("n_head")));
  t->set_ffn_hidden_size(static_cast<int32_t>(hf.Int("n_inner").value_or(4 * hidden)));
  config->set_vocab_size(hf.RequiredInt("vocab_size"));
  config->set_make_vocab_size_divisible_by(128);
  config->set_should_pad_vocab(false);
  config->set_seq_length(static_cast<int32_t>(hf.Int("n_positions").value_or(1024)));
  t->set_layernorm_epsilon(hf.Number("layer_norm_epsilon").value_or(1e-5));
  t->set_init_method_std(hf.Number("initializer_range").value_or(0.02));
  t->set_hidden_dropout(hf.Number("resid_pdrop").value_or(0.1));
  t->set_attention_dropout(hf.Number("attn_pdrop").value_or(0.1));
  config->set_share_embeddings_and_output_weights(hf.Bool("tie_word_embeddings").value_or(true));
  t->set_normalization("LayerNorm");
  t->set_gated_linear_unit(false);
  t->set_add_bias_linear(true);
  config->set_position_embedding_type("learned_absolute");
  // GPT-2's default "gelu_new" is the tanh approximation (fast_gelu).
  SetActivation(hf, "activation_function", "gelu_new", t);
  SetDtype(hf, t);
  SetNameOrPath(hf, config);
}

// ---- DeepSeek-V2 / V3 -----------------------------------------------------------------------
// Every config.json key is either mapped below or refused by name (UNKNOWN_KEY); these are the
// keys that describe the checkpoint or what transformers returns, not the computed model.
constexpr const char* kDeepseekMetadataKeys[] = {
    "architectures", "model_type", "transformers_version", "auto_map", "use_cache", "bos_token_id",
    "eos_token_id", "pad_token_id", "output_router_logits", "output_attentions",
    "output_hidden_states", "return_dict", "torch_dtype", "dtype", "_name_or_path",
    "tokenizer_class", "initializer_range",
    // Expert-parallel size of DeepSeek's own inference code.
    "ep_size",
    // a slicing of the same matmuls in transformers' older code
    "pretraining_tp",
    // fp8 block quantisation of the published DeepSeek-V3 weights: the architecture is the same;
    // fp8 tensors are refused by dtype when the weights are read.
    "quantization_config",
    // transformers fills these from others (qk_nope + qk_rope; qk_rope_head_dim).
    "qk_head_dim", "head_dim"};

void RequireBool(HfReader& hf, const char* key, bool expected, bool fallback,
                 const std::string& why) {
  const bool value = hf.Bool(key).value_or(fallback);
  if (value != expected) {
    hf.violations()->Add(
        key, "UNSUPPORTED",
        absl::StrCat(key, " ", value ? "true" : "false", " is not supported: ", why, "."));
  }
}

// rope_scaling (transformers 5: rope_parameters) of an MLA model. None / "default" is Megatron's
// rope_type "rope"; "yarn" maps factor, original_max_position_embeddings, beta_fast, beta_slow,
// mscale and mscale_all_dim as transformers' _compute_yarn_parameters and DeepSeek's attention
// read them: cos/sin scaled by get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
// when both are non-zero, else by get_mscale(factor) (Megatron: mscale 1, mscale_all_dim 0);
// the softmax scale by get_mscale(factor, mscale_all_dim)^2 (Megatron's MLA does the same).
void SetDeepseekRope(HfReader& hf, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  const Json* rope_parameters = hf.Has("rope_parameters") ? hf.Object("rope_parameters") : nullptr;
  SetRotaryBase(hf, rope_parameters, 10000.0, config);
  const Json* scaling = hf.Object("rope_scaling");
  std::string key = "rope_scaling";
  if (scaling == nullptr && rope_parameters != nullptr) {
    scaling = rope_parameters;
    key = "rope_parameters";
  }
  const std::string type = scaling == nullptr ? "" : RopeType(*scaling);
  t->set_rope_type("rope");
  if (type.empty() || type == "default") return;
  if (type != "yarn") {
    hf.violations()->Add(key, "UNSUPPORTED",
                         absl::StrCat("rope type '", type,
                                      "' is not supported for multi-latent attention (supported: "
                                      "default, yarn)."));
    return;
  }
  auto number = [&](const char* name) -> std::optional<double> {
    if (!scaling->contains(name) || (*scaling)[name].is_null()) return std::nullopt;
    if ((*scaling)[name].is_number()) return (*scaling)[name].get<double>();
    hf.violations()->Add(absl::StrCat(key, ".", name), "TYPE_MISMATCH", "expected a number.");
    return std::nullopt;
  };
  static const char* const kKnown[] = {
      "rope_type", "type",      "rope_theta", "factor",         "original_max_position_embeddings",
      "beta_fast", "beta_slow", "mscale",     "mscale_all_dim", "truncate"};
  for (const auto& item : scaling->items()) {
    const std::string name = item.key();
    if (std::find_if(std::begin(kKnown), std::end(kKnown),
                     [&](const char* k) { return name == k; }) == std::end(kKnown)) {
      hf.violations()->Add(absl::StrCat(key, ".", name), "UNSUPPORTED",
                           absl::StrCat("YaRN parameter '", name,
                                        "' is not supported for multi-latent attention (Megatron's "
                                        "YarnRotaryEmbedding has no such setting)."));
    }
  }
  t->set_rope_type("yarn");
  const std::optional<double> original = number("original_max_position_embeddings");
  if (!original.has_value() || *original <= 0) {
    hf.violations()->Add(absl::StrCat(key, ".original_max_position_embeddings"), "REQUIRED",
                         "YaRN needs the original context length (> 0).");
    return;
  }
  t->set_original_max_position_embeddings(static_cast<int32_t>(*original));
  // transformers: factor defaults to max_position_embeddings / original.
  t->set_rotary_scaling_factor(
      number("factor").value_or(static_cast<double>(config->seq_length()) / *original));
  // transformers: `or 32` / `or 1`, so 0 also means the default.
  const double beta_fast = number("beta_fast").value_or(0.0);
  const double beta_slow = number("beta_slow").value_or(0.0);
  t->set_beta_fast(beta_fast != 0.0 ? beta_fast : 32.0);
  t->set_beta_slow(beta_slow != 0.0 ? beta_slow : 1.0);
  const double mscale = number("mscale").value_or(0.0);
  const double mscale_all_dim = number("mscale_all_dim").value_or(0.0);
  if (mscale != 0.0 && mscale_all_dim != 0.0) {
    t->set_mscale(mscale);
    t->set_mscale_all_dim(mscale_all_dim);
  } else if (mscale_all_dim != 0.0) {
    hf.violations()->Add(absl::StrCat(key, ".mscale"), "UNSUPPORTED",
                         "YaRN with mscale_all_dim but no mscale scales cos/sin by "
                         "get_mscale(factor) and the softmax by mscale_all_dim, which Megatron's "
                         "MLA cannot express; give both or neither.");
  } else {
    t->set_mscale(1.0);
    t->set_mscale_all_dim(0.0);
  }
  if (scaling->contains("truncate") &&
      !((*scaling)["truncate"].is_boolean() && (*scaling)["truncate"].get<bool>())) {
    hf.violations()->Add(absl::StrCat(key, ".truncate"), "UNSUPPORTED",
                         "Megatron's YaRN rounds the correction range to whole channels "
                         "(truncate true); truncate false is not supported.");
  }
}

// DeepSeek-V2 / V3 (DeepseekV2Config / DeepseekV3Config, transformers 5; Megatron-Bridge's
// DeepSeek bridges): multi-latent attention with q/kv RMSNorms, the first first_k_dense_replace
// layers dense and the rest MoE with n_routed_experts routed and n_shared_experts shared experts
// (one shared MLP of n_shared_experts * moe_intermediate_size). V3: sigmoid scores, a
// routing-only correction bias (e_score_correction_bias: Megatron's expert_bias), groups of
// experts (n_group, topk_group: Megatron's group-limited routing), renormalised top-k weights
// times routed_scaling_factor; num_nextn_predict_layers MTP layers. V2: softmax scores, top-k
// (greedy) times routed_scaling_factor without renormalisation.
void ImportDeepseek(const Json& json, bool v3, Violations* violations, GPTModelConfig* config) {
  HfReader hf(json, violations);
  // Every other key is refused by name.
  static const char* const kMapped[] = {"num_hidden_layers",
                                        "hidden_size",
                                        "num_attention_heads",
                                        "vocab_size",
                                        "max_position_embeddings",
                                        "rms_norm_eps",
                                        "attention_dropout",
                                        "tie_word_embeddings",
                                        "hidden_act",
                                        "q_lora_rank",
                                        "kv_lora_rank",
                                        "qk_nope_head_dim",
                                        "qk_rope_head_dim",
                                        "v_head_dim",
                                        "num_key_value_heads",
                                        "attention_bias",
                                        "mlp_bias",
                                        "rope_interleave",
                                        "rope_theta",
                                        "rope_scaling",
                                        "rope_parameters",
                                        "intermediate_size",
                                        "first_k_dense_replace",
                                        "moe_layer_freq",
                                        "n_routed_experts",
                                        "num_local_experts",
                                        "num_experts",
                                        "moe_intermediate_size",
                                        "n_shared_experts",
                                        "num_experts_per_tok",
                                        "routed_scaling_factor",
                                        "aux_loss_alpha",
                                        "seq_aux",
                                        "scoring_func",
                                        "topk_method",
                                        "n_group",
                                        "topk_group",
                                        "norm_topk_prob",
                                        "num_nextn_predict_layers",
                                        "num_mtp_layers"};
  for (const auto& item : json.items()) {
    const std::string key = item.key();
    auto is = [&](const char* k) { return key == k; };
    if (std::any_of(std::begin(kMapped), std::end(kMapped), is) ||
        std::any_of(std::begin(kDeepseekMetadataKeys), std::end(kDeepseekMetadataKeys), is)) {
      continue;
    }
    hf.violations()->Add(key, "UNKNOWN_KEY",
                         absl::StrCat("config.json key '", key, "' is not one gptbuilder maps for ",
                                      v3 ? "deepseek_v3" : "deepseek_v2",
                                      "; remove it if the model does not depend on it."));
  }
  TransformerConfig* t = config->mutable_transformer();
  const int64_t layers = hf.RequiredInt("num_hidden_layers");
  const int64_t hidden = hf.RequiredInt("hidden_size");
  const int64_t heads = hf.RequiredInt("num_attention_heads");
  const int64_t vocab = hf.RequiredInt("vocab_size");
  t->set_num_layers(static_cast<int32_t>(layers));
  t->set_hidden_size(static_cast<int32_t>(hidden));
  t->set_num_attention_heads(static_cast<int32_t>(heads));
  config->set_vocab_size(vocab);
  config->set_make_vocab_size_divisible_by(VocabDivisor(vocab > 0 ? vocab : 128));
  config->set_should_pad_vocab(false);
  config->set_seq_length(
      static_cast<int32_t>(hf.Int("max_position_embeddings").value_or(v3 ? 4096 : 2048)));
  t->set_layernorm_epsilon(hf.Number("rms_norm_eps").value_or(1e-6));
  t->set_init_method_std(hf.Number("initializer_range").value_or(0.02));
  t->set_attention_dropout(hf.Number("attention_dropout").value_or(0.0));
  t->set_hidden_dropout(0.0);
  config->set_share_embeddings_and_output_weights(hf.Bool("tie_word_embeddings").value_or(false));
  t->set_normalization("RMSNorm");
  t->set_gated_linear_unit(true);
  t->set_add_bias_linear(false);
  SetActivation(hf, "hidden_act", "silu", t);
  config->set_position_embedding_type("rope");

  // Multi-latent attention.
  t->set_multi_latent_attention(true);
  t->set_qk_layernorm(true);  // q_a_layernorm and kv_a_layernorm
  // Absent: the class default 1536; null: None (no query compression, the schema's 0).
  int64_t q_lora = 1536;
  if (json.contains("q_lora_rank")) q_lora = hf.Int("q_lora_rank").value_or(0);
  t->set_q_lora_rank(static_cast<int32_t>(q_lora));
  if (q_lora == 0) {
    hf.violations()->Add(
        "q_lora_rank", "UNSUPPORTED",
        "q_lora_rank null (no query compression, e.g. DeepSeek-V2-Lite) is not supported: with "
        "the q/kv norms (qk_layernorm) Megatron Core's MLA fuses an RMSNorm into linear_q_proj "
        "(QKNormConfigResolver), a norm transformers' q_proj does not have, so the built model "
        "would compute something else.");
  }
  t->set_kv_lora_rank(static_cast<int32_t>(hf.Int("kv_lora_rank").value_or(512)));
  t->set_qk_head_dim(static_cast<int32_t>(hf.Int("qk_nope_head_dim").value_or(128)));
  t->set_qk_pos_emb_head_dim(static_cast<int32_t>(hf.Int("qk_rope_head_dim").value_or(64)));
  t->set_v_head_dim(static_cast<int32_t>(hf.Int("v_head_dim").value_or(128)));
  t->set_num_query_groups(static_cast<int32_t>(heads));
  // transformers repeats the keys num_attention_heads / num_key_value_heads times after MLA made
  // one per head; only equal counts compute attention.
  if (const std::optional<int64_t> kv = hf.Int("num_key_value_heads");
      kv.has_value() && *kv != heads) {
    hf.violations()->Add("num_key_value_heads", "UNSUPPORTED",
                         absl::StrCat("multi-latent attention has one key per head: "
                                      "num_key_value_heads must equal num_attention_heads (",
                                      heads, "), got ", *kv, "."));
  }
  RequireBool(hf, "attention_bias", false, false, "Megatron's MLA projections have no biases");
  if (!v3) RequireBool(hf, "mlp_bias", false, false, "Megatron's DeepSeek MLPs have no biases");
  // V3 without rope_interleave rotates the rope channels as halves; Megatron's MLA reads them
  // as interleaved pairs (V2 always does).
  if (v3) {
    RequireBool(hf, "rope_interleave", true, true,
                "Megatron's MLA reads the rotary channels as interleaved pairs");
  }
  SetDeepseekRope(hf, config);

  // Layers: dense below first_k_dense_replace, MoE from it.
  t->set_ffn_hidden_size(
      static_cast<int32_t>(hf.Int("intermediate_size").value_or(v3 ? 18432 : 11008)));
  const int64_t first_dense = hf.Int("first_k_dense_replace").value_or(v3 ? 3 : 0);
  if (const std::optional<int64_t> freq = hf.Int("moe_layer_freq");
      freq.has_value() && *freq != 1) {
    hf.violations()->Add("moe_layer_freq", "UNSUPPORTED",
                         "transformers makes every layer from first_k_dense_replace on an MoE "
                         "layer; moe_layer_freq must be 1.");
  }
  // transformers' attribute_map aliases: num_local_experts (V3), num_experts (V2).
  std::optional<int64_t> experts = hf.Int("n_routed_experts");
  if (!experts.has_value()) experts = hf.Int(v3 ? "num_local_experts" : "num_experts");
  const int64_t routed = experts.value_or(v3 ? 256 : 64);
  if (routed <= 0) {
    hf.violations()->Add("n_routed_experts", "OUT_OF_RANGE", "n_routed_experts must be > 0.");
    return;
  }
  if (first_dense < 0 || first_dense > layers) {
    hf.violations()->Add("first_k_dense_replace", "OUT_OF_RANGE",
                         absl::StrCat("first_k_dense_replace must be in [0, ", layers, "]."));
    return;
  }
  t->set_num_moe_experts(static_cast<int32_t>(routed));
  if (first_dense > 0) {
    for (int64_t i = 0; i < layers; ++i) t->add_moe_layer_freq(i < first_dense ? 0 : 1);
  }
  const int64_t moe_ffn = hf.Int("moe_intermediate_size").value_or(v3 ? 2048 : 1407);
  t->set_moe_ffn_hidden_size(static_cast<int32_t>(moe_ffn));
  const int64_t shared = hf.Int("n_shared_experts").value_or(v3 ? 1 : 2);
  if (shared > 0) {
    t->set_moe_shared_expert_intermediate_size(static_cast<int32_t>(moe_ffn * shared));
  }
  std::optional<int64_t> topk = hf.Int("num_experts_per_tok");
  if (!topk.has_value()) {
    hf.violations()->Add("num_experts_per_tok", "REQUIRED",
                         "config.json has no 'num_experts_per_tok'; the router needs its top k.");
    topk = 1;
  }
  t->set_moe_router_topk(static_cast<int32_t>(*topk));
  const double scaling = hf.Number("routed_scaling_factor").value_or(v3 ? 2.5 : 1.0);
  if (scaling != 1.0) t->set_moe_router_topk_scaling_factor(scaling);
  // transformers computes no load-balancing loss; DeepSeek's configs name theirs (aux_loss_alpha,
  // per sequence with seq_aux): Megatron's seq_aux_loss with that coefficient.
  const double alpha = hf.Number("aux_loss_alpha").value_or(0.0);
  const bool seq_aux = hf.Bool("seq_aux").value_or(true);
  t->set_moe_aux_loss_coeff(alpha);
  t->set_moe_router_load_balancing_type(alpha == 0.0 ? "none"
                                        : seq_aux    ? "seq_aux_loss"
                                                     : "aux_loss");
  const std::string scoring = hf.String("scoring_func").value_or(v3 ? "sigmoid" : "softmax");
  const std::string method = hf.String("topk_method").value_or(v3 ? "noaux_tc" : "greedy");
  const std::optional<int64_t> groups = hf.Int("n_group");
  const std::optional<int64_t> group_topk = hf.Int("topk_group");
  if (v3) {
    // transformers' DeepseekV3TopkRouter reads neither scoring_func nor topk_method: it is
    // always noaux_tc over sigmoid scores. A config saying otherwise is not what it computes.
    if (scoring != "sigmoid") {
      hf.violations()->Add("scoring_func", "UNSUPPORTED",
                           "transformers' DeepSeek-V3 routes with sigmoid scores.");
    }
    if (method != "noaux_tc") {
      hf.violations()->Add("topk_method", "UNSUPPORTED",
                           "transformers' DeepSeek-V3 routes with noaux_tc (sigmoid scores, "
                           "correction bias, expert groups).");
    }
    RequireBool(hf, "norm_topk_prob", true, true,
                "Megatron always renormalises the sigmoid top-k weights (top k > 1)");
    t->set_moe_router_score_function("sigmoid");
    t->set_moe_router_enable_expert_bias(true);
    const int64_t g = groups.value_or(8), gk = group_topk.value_or(4);
    // transformers scores a group by the sum of its top two experts; Megatron by its top
    // num_experts_per_tok / topk_group.
    // (One group keeps every expert: plain top-k, whatever k is.)
    if (g > 1 && (gk <= 0 || *topk % gk != 0 || *topk / gk != 2)) {
      hf.violations()->Add("topk_group", "UNSUPPORTED",
                           absl::StrCat("transformers scores an expert group by its top 2 "
                                        "experts, Megatron by its top num_experts_per_tok / "
                                        "topk_group (",
                                        *topk, " / ", gk, "); they agree only when that is 2."));
    }
    if (g > 1) {
      t->set_moe_router_num_groups(static_cast<int32_t>(g));
      t->set_moe_router_group_topk(static_cast<int32_t>(gk));
    }
  } else {
    if (scoring != "softmax") {
      hf.violations()->Add("scoring_func", "UNSUPPORTED",
                           "transformers' DeepSeek-V2 routes with softmax scores.");
    }
    // DeepseekV2TopkRouter never renormalises (norm_topk_prob is not read); true would say the
    // checkpoint expects what transformers does not compute.
    RequireBool(hf, "norm_topk_prob", false, false,
                "transformers' DeepSeek-V2 does not renormalise the top-k weights");
    t->set_moe_router_score_function("softmax");
    t->set_moe_router_pre_softmax(true);
    if (method == "group_limited_greedy") {
      // transformers scores a group by its best expert, Megatron by the sum of its top
      // num_experts_per_tok / topk_group: the same only when that is 1.
      const int64_t g = groups.value_or(0), gk = group_topk.value_or(0);
      if (gk <= 0 || *topk % gk != 0 || *topk / gk != 1) {
        hf.violations()->Add(
            "topk_method", "UNSUPPORTED",
            absl::StrCat("group_limited_greedy scores an expert group by its "
                         "best expert, Megatron's group-limited routing by the "
                         "sum of its top num_experts_per_tok / topk_group (",
                         *topk, " / ", gk, ") experts; they agree only when that is 1."));
      } else {
        t->set_moe_router_num_groups(static_cast<int32_t>(g));
        t->set_moe_router_group_topk(static_cast<int32_t>(gk));
      }
    } else if (method != "greedy") {
      hf.violations()->Add("topk_method", "UNSUPPORTED",
                           absl::StrCat("topk_method '", method,
                                        "' is not supported (greedy, group_limited_greedy)."));
    }
  }
  // Multi-token prediction: the checkpoint's layers num_hidden_layers .. + n - 1 (transformers
  // does not run them; Megatron's MTP block computes DeepSeek's).
  std::optional<int64_t> mtp = hf.Int("num_nextn_predict_layers");
  if (!mtp.has_value() && v3) mtp = hf.Int("num_mtp_layers");
  if (mtp.value_or(0) > 0) t->set_mtp_num_layers(static_cast<int32_t>(*mtp));
  SetDtype(hf, t);
  SetNameOrPath(hf, config);
}

// Families Megatron-Bridge maps that this builder does not build yet, with what is missing.
std::string UnbuiltFamilyReason(const std::string& model_type) {
  if (model_type == "gemma3") {
    return " (the multimodal Gemma 3 is not built; import its text_config as model_type "
           "gemma3_text)";
  }
  return "";
}

}  // namespace

const std::vector<std::string>& SupportedHfModelTypes() {
  static const auto* types = new std::vector<std::string>{
      "gemma2",  "gemma3_text", "gpt2",  "gpt_oss",   "llama",       "mistral",
      "mixtral", "qwen2",       "qwen3", "qwen3_moe", "deepseek_v2", "deepseek_v3"};
  return *types;
}

bool IsHfConfig(const Json& json) { return json.is_object() && json.contains("model_type"); }

absl::StatusOr<GPTModelConfig> ImportHfConfig(const Json& hf_config) {
  Violations violations;
  if (!IsHfConfig(hf_config) || !hf_config["model_type"].is_string()) {
    violations.Add("model_type", "REQUIRED",
                   absl::StrCat("a Hugging Face config.json needs a string model_type; supported: ",
                                absl::StrJoin(SupportedHfModelTypes(), ", "), "."));
    return violations.ToStatus();
  }
  const std::string model_type = hf_config["model_type"].get<std::string>();
  HfReader hf(hf_config, &violations);
  GPTModelConfig config;
  if (model_type == "gpt2") {
    ImportGpt2(hf, &config);
  } else if (model_type == "deepseek_v2" || model_type == "deepseek_v3") {
    ImportDeepseek(hf_config, model_type == "deepseek_v3", &violations, &config);
  } else if (model_type == "gpt_oss") {
    ImportGptOssConfig(hf, &config);
  } else if (model_type == "gemma2") {
    ImportGemma2Config(hf, &config);
  } else if (model_type == "gemma3_text") {
    ImportGemma3TextConfig(hf, &config);
  } else {
    const Family* family = nullptr;
    for (const Family& f : kFamilies) {
      if (model_type == f.model_type) family = &f;
    }
    if (family == nullptr) {
      violations.Add("model_type", "UNSUPPORTED_MODEL_TYPE",
                     absl::StrCat("model_type '", model_type, "' is not supported",
                                  UnbuiltFamilyReason(model_type), "; supported: ",
                                  absl::StrJoin(SupportedHfModelTypes(), ", "), "."));
      return violations.ToStatus();
    }
    ImportLlamaLike(hf, *family, &config);
  }
  if (!violations.empty()) return violations.ToStatus();
  return config;
}

absl::StatusOr<GPTModelConfig> ImportHfConfigText(std::string_view json_text) {
  Json json = Json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError("config.json is not valid JSON");
  }
  return ImportHfConfig(json);
}

}  // namespace gptb::config
