#include "core/config/hf_import.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/accepted_values.h"
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

// Families Megatron-Bridge maps that this builder does not build yet, with what is missing.
std::string UnbuiltFamilyReason(const std::string& model_type) {
  if (model_type == "deepseek_v2" || model_type == "deepseek_v3") {
    return " (multi-latent attention, group-limited routing with expert bias and multi-token "
           "prediction are not built yet)";
  }
  if (model_type == "gemma2" || model_type == "gemma3_text" || model_type == "gemma3") {
    return " (scaled embeddings, the extra post-norms, interleaved local/global attention and "
           "Gemma 2's logit soft-capping are not built yet)";
  }
  return "";
}

}  // namespace

const std::vector<std::string>& SupportedHfModelTypes() {
  static const auto* types = new std::vector<std::string>{
      "gpt2", "gpt_oss", "llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe"};
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
  } else if (model_type == "gpt_oss") {
    ImportGptOssConfig(hf, &config);
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
