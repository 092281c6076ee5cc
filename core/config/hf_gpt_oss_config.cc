#include "core/config/hf_gpt_oss_config.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace gptb::config {
namespace {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;
using Json = nlohmann::json;

// Megatron's quick_gelu: x * sigmoid(1.702 x), the gain transformers calls swiglu_alpha.
constexpr double kQuickGeluAlpha = 1.702;

// Keys that do not change what the model computes, with why. Anything not here and not mapped
// below is refused by name.
struct Unused {
  const char* key;
  const char* why;
};
constexpr Unused kUnusedKeys[] = {
    {"model_type", "read to pick this importer"},
    {"architectures", "names the transformers class"},
    {"transformers_version", "metadata"},
    {"_name_or_path", "kept as hf_model_id"},
    {"torch_dtype", "params_dtype"},
    {"dtype", "params_dtype"},
    {"bos_token_id", "tokenizer metadata"},
    {"eos_token_id", "tokenizer metadata"},
    {"pad_token_id",
     "tokenizer metadata (transformers also keeps that embedding row's gradient at zero; "
     "Megatron, like Megatron-Bridge, does not)"},
    {"use_cache", "generation's key/value cache"},
    {"initial_context_length",
     "the original gpt-oss release's name for the YaRN original context; transformers reads "
     "rope_parameters' original_max_position_embeddings"},
    {"quantization_config",
     "how the published checkpoint stores the expert weights (MXFP4); the model is the same, and "
     "the weight import reads unquantized tensors only"},
    {"hidden_act", "transformers' GptOss experts hard-code the clamped SwiGLU and never read it"},
    {"router_aux_loss_coef", "only used with output_router_logits, which must be false"},
    {"output_hidden_states", "what the forward returns"},
    {"output_attentions", "what the forward returns"},
    {"return_dict", "what the forward returns"},
};

bool IsUnusedKey(std::string_view key) {
  for (const Unused& u : kUnusedKeys) {
    if (key == u.key) return true;
  }
  return false;
}

constexpr const char* kMappedKeys[] = {
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "rms_norm_eps",
    "initializer_range",
    "attention_dropout",
    "tie_word_embeddings",
    "attention_bias",
    "sliding_window",
    "layer_types",
    "rope_scaling",
    "rope_parameters",
    "rope_theta",
    "swiglu_limit",
    "swiglu_alpha",
    "num_local_experts",
    "num_experts",
    "num_experts_per_tok",
    "experts_per_token",
    "output_router_logits",
};

bool IsMappedKey(std::string_view key) {
  for (const char* k : kMappedKeys) {
    if (key == k) return true;
  }
  return false;
}

// rope_parameters (transformers 5) or rope_scaling (the published config.json); absent means
// GptOssConfig's default, YaRN x32 over 4096 positions without truncation.
void SetPositions(HfReader& hf, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  const char* key = hf.Has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const Json* rope = hf.Object(key);
  SetRotaryBase(hf, rope, 150000.0, config);
  Json defaults = {{"rope_type", "yarn"}, {"factor", 32.0},
                   {"beta_fast", 32.0},   {"beta_slow", 1.0},
                   {"truncate", false},   {"original_max_position_embeddings", 4096}};
  if (rope == nullptr) {
    if (hf.Has(key)) return;  // the type error is reported
    rope = &defaults;
  }
  std::string type = "default";
  for (const char* name : {"rope_type", "type"}) {
    if (rope->contains(name) && (*rope)[name].is_string()) type = (*rope)[name].get<std::string>();
  }
  auto number = [&](const char* name) -> std::optional<double> {
    if (!rope->contains(name) || (*rope)[name].is_null()) return std::nullopt;
    if ((*rope)[name].is_number()) return (*rope)[name].get<double>();
    hf.violations()->Add(absl::StrCat(key, ".", name), "TYPE_MISMATCH",
                         absl::StrCat("expected a number, got ", (*rope)[name].dump(), "."));
    return std::nullopt;
  };
  // Keys of the rope dict transformers reads for these types; others are refused.
  for (const auto& [name, value] : rope->items()) {
    static const std::vector<std::string> known = {
        "rope_type", "type",           "rope_theta",       "factor",
        "beta_fast", "beta_slow",      "truncate",         "original_max_position_embeddings",
        "mscale",    "mscale_all_dim", "attention_factor", "partial_rotary_factor"};
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      hf.violations()->Add(absl::StrCat(key, ".", name), "UNSUPPORTED",
                           absl::StrCat("'", name,
                                        "' is not a YaRN / default rope parameter gptbuilder "
                                        "knows; remove it."));
    }
  }
  if (std::optional<double> partial = number("partial_rotary_factor");
      partial.has_value() && *partial != 1.0) {
    hf.violations()->Add(absl::StrCat(key, ".partial_rotary_factor"), "UNSUPPORTED",
                         "GPT-OSS rotates every head channel (Megatron's YaRN ignores a partial "
                         "rotary factor); remove it or set it to 1.0.");
  }
  if (type == "default") {
    config->set_position_embedding_type("rope");
    return;
  }
  if (type != "yarn") {
    hf.violations()->Add(absl::StrCat(key, ".rope_type"), "UNSUPPORTED",
                         absl::StrCat("rope type '", type,
                                      "' is not supported for gpt_oss (supported: yarn, "
                                      "default)."));
    return;
  }
  config->set_position_embedding_type("yarn");
  const int64_t max_positions = hf.Int("max_position_embeddings").value_or(131072);
  std::optional<double> original = number("original_max_position_embeddings");
  if (!original.has_value()) original = static_cast<double>(max_positions);  // transformers' rule
  if (*original != std::floor(*original) || *original <= 0 || *original > 2147483647.0) {
    hf.violations()->Add(absl::StrCat(key, ".original_max_position_embeddings"), "OUT_OF_RANGE",
                         "original_max_position_embeddings must be a positive integer.");
    return;
  }
  // transformers: factor None -> max_position_embeddings / original; beta 0 or None -> default.
  const double factor = number("factor").value_or(max_positions / *original);
  const double beta_fast = number("beta_fast").value_or(0.0);
  const double beta_slow = number("beta_slow").value_or(0.0);
  t->set_yarn_rotary_scaling_factor(factor);
  t->set_yarn_original_max_position_embeddings(static_cast<int32_t>(*original));
  t->set_yarn_beta_fast(beta_fast != 0.0 ? beta_fast : 32.0);
  t->set_yarn_beta_slow(beta_slow != 0.0 ? beta_slow : 1.0);
  bool truncate = true;
  if (rope->contains("truncate") && !(*rope)["truncate"].is_null()) {
    if ((*rope)["truncate"].is_boolean()) {
      truncate = (*rope)["truncate"].get<bool>();
    } else {
      hf.violations()->Add(absl::StrCat(key, ".truncate"), "TYPE_MISMATCH",
                           "expected true or false.");
    }
  }
  t->set_yarn_correction_range_round_to_int(truncate);
  // transformers' attention factor: mscale / mscale_all_dim only when both are given and
  // non-zero, else from the factor alone, which is Megatron's with yarn_mscale 1 and
  // yarn_mscale_all_dim 0 (the defaults).
  const double mscale = number("mscale").value_or(0.0);
  const double mscale_all_dim = number("mscale_all_dim").value_or(0.0);
  if (mscale != 0.0 && mscale_all_dim != 0.0) {
    t->set_yarn_mscale(mscale);
    t->set_yarn_mscale_all_dim(mscale_all_dim);
  }
  if (std::optional<double> attention = number("attention_factor"); attention.has_value()) {
    auto get_mscale = [&](double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1; };
    const double implied = get_mscale(t->yarn_mscale()) / get_mscale(t->yarn_mscale_all_dim());
    if (std::abs(*attention - implied) > 1e-12 * std::abs(implied)) {
      hf.violations()->Add(absl::StrCat(key, ".attention_factor"), "UNSUPPORTED",
                           absl::StrCat("an explicit attention_factor (", *attention,
                                        ") other than the one factor, mscale and mscale_all_dim "
                                        "imply (",
                                        implied, ") has no Megatron counterpart; remove it."));
    }
  }
}

// sliding_window and layer_types -> window_size and window_attn_skip_freq.
void SetWindows(HfReader& hf, int64_t layers, TransformerConfig* t) {
  std::vector<int32_t> sliding;  // 1 = sliding_attention
  if (hf.Has("layer_types")) {
    const Json& types = hf.json()["layer_types"];
    if (!types.is_array() || static_cast<int64_t>(types.size()) != layers) {
      hf.violations()->Add("layer_types", "INVALID_VALUE",
                           absl::StrCat("expected a list of ", layers,
                                        " layer types (one per num_hidden_layers), got ",
                                        types.dump().substr(0, 200), "."));
      return;
    }
    for (const Json& type : types) {
      if (type == "sliding_attention") {
        sliding.push_back(1);
      } else if (type == "full_attention") {
        sliding.push_back(0);
      } else {
        hf.violations()->Add("layer_types", "INVALID_VALUE",
                             absl::StrCat("layer type ", type.dump(),
                                          " is not supported; use 'sliding_attention' or "
                                          "'full_attention'."));
        return;
      }
    }
  } else {
    // GptOssConfig's default: even layers (0-based) slide, odd ones attend fully.
    for (int64_t i = 0; i < layers; ++i) sliding.push_back((i + 1) % 2 != 0 ? 1 : 0);
  }
  if (std::find(sliding.begin(), sliding.end(), 1) == sliding.end()) return;
  std::optional<int64_t> window = hf.Has("sliding_window") ? hf.Int("sliding_window") : 128;
  if (!window.has_value()) return;  // the type error is reported
  if (*window < 1) {
    hf.violations()->Add("sliding_window", "OUT_OF_RANGE",
                         absl::StrCat("sliding_window must be >= 1 where layer_types has "
                                      "sliding_attention layers, got ",
                                      *window, "."));
    return;
  }
  // HF keeps keys j with i - j < W; Megatron's window [left, 0] keeps i - j <= left.
  t->add_window_size(static_cast<int32_t>(*window - 1));
  t->add_window_size(0);
  // Megatron's int form N windows layer numbers (1-based) that are not multiples of N.
  bool alternating = true;
  for (size_t i = 0; i < sliding.size(); ++i) alternating &= sliding[i] == ((i + 1) % 2 != 0);
  if (alternating) {
    t->add_window_attn_skip_freq(2);
  } else if (std::find(sliding.begin(), sliding.end(), 0) != sliding.end()) {
    for (int32_t s : sliding) t->add_window_attn_skip_freq(s);
  }
}

// Megatron's is_layer_window_attention for layer number `n` (1-based).
bool IsWindowLayer(const TransformerConfig& t, int n) {
  if (t.window_size_size() == 0) return false;
  const auto& freq = t.window_attn_skip_freq();
  if (freq.empty()) return true;
  if (freq.size() == 1) return freq[0] != 0 && n % freq[0] != 0;
  return n <= freq.size() && freq[n - 1] != 0;
}

std::string TorchDtype(const TransformerConfig& t) {
  if (t.bf16()) return "bfloat16";
  if (t.fp16()) return "float16";
  return t.params_dtype().empty() ? "float32" : t.params_dtype();
}

}  // namespace

Json ExportGptOssConfig(const GPTModelConfig& c) {
  const TransformerConfig& t = c.transformer();
  Json j;
  j["architectures"] = {"GptOssForCausalLM"};
  j["model_type"] = "gpt_oss";
  j["vocab_size"] = c.vocab_size();
  j["hidden_size"] = t.hidden_size();
  j["intermediate_size"] =
      t.has_moe_ffn_hidden_size() ? t.moe_ffn_hidden_size() : t.ffn_hidden_size();
  j["num_hidden_layers"] = t.num_layers();
  j["num_attention_heads"] = t.num_attention_heads();
  j["num_key_value_heads"] = t.num_query_groups();
  j["head_dim"] = t.kv_channels();
  j["max_position_embeddings"] = c.seq_length();
  j["rms_norm_eps"] = t.layernorm_epsilon();
  j["initializer_range"] = t.init_method_std();
  j["attention_dropout"] = t.attention_dropout();
  j["attention_bias"] = true;
  j["tie_word_embeddings"] = c.share_embeddings_and_output_weights();
  j["torch_dtype"] = TorchDtype(t);
  j["hidden_act"] = "silu";  // not read: the experts hard-code the clamped SwiGLU
  j["swiglu_limit"] = t.activation_func_clamp_value();
  j["swiglu_alpha"] = kQuickGeluAlpha;
  j["num_local_experts"] = t.num_moe_experts();
  j["num_experts_per_tok"] = t.moe_router_topk();
  j["output_router_logits"] = false;
  j["rope_theta"] = c.rotary_base();
  if (c.position_embedding_type() == "yarn") {
    Json rope = {{"rope_type", "yarn"},
                 {"factor", t.yarn_rotary_scaling_factor()},
                 {"original_max_position_embeddings", t.yarn_original_max_position_embeddings()},
                 {"beta_fast", t.yarn_beta_fast()},
                 {"beta_slow", t.yarn_beta_slow()},
                 {"truncate", t.yarn_correction_range_round_to_int()}};
    if (t.yarn_mscale() != 1.0 || t.yarn_mscale_all_dim() != 0.0) {
      rope["mscale"] = t.yarn_mscale();
      rope["mscale_all_dim"] = t.yarn_mscale_all_dim();
    }
    j["rope_scaling"] = rope;
  } else {
    j["rope_scaling"] = {{"rope_type", "default"}};  // absent would mean GptOssConfig's YaRN
  }
  Json types = Json::array();
  for (int n = 1; n <= t.num_layers(); ++n) {
    types.push_back(IsWindowLayer(t, n) ? "sliding_attention" : "full_attention");
  }
  j["layer_types"] = types;
  j["sliding_window"] =
      t.window_size_size() > 0 ? Json(int64_t{t.window_size(0)} + 1) : Json(nullptr);
  return j;
}

void ImportGptOssConfig(HfReader& hf, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  for (const auto& [key, value] : hf.json().items()) {
    if (IsMappedKey(key) || IsUnusedKey(key)) continue;
    hf.violations()->Add(key, "UNSUPPORTED",
                         absl::StrCat("'", key,
                                      "' is not a GptOssConfig setting gptbuilder knows; it "
                                      "cannot tell what it would change, so remove it."));
  }
  const int64_t layers = hf.RequiredInt("num_hidden_layers");
  const int64_t hidden = hf.RequiredInt("hidden_size");
  const int64_t heads = hf.RequiredInt("num_attention_heads");
  const int64_t ffn = hf.RequiredInt("intermediate_size");
  const int64_t vocab = hf.RequiredInt("vocab_size");
  t->set_num_layers(static_cast<int32_t>(layers));
  t->set_hidden_size(static_cast<int32_t>(hidden));
  t->set_num_attention_heads(static_cast<int32_t>(heads));
  t->set_num_query_groups(static_cast<int32_t>(hf.Int("num_key_value_heads").value_or(heads)));
  t->set_kv_channels(static_cast<int32_t>(hf.Int("head_dim").value_or(64)));
  t->set_ffn_hidden_size(static_cast<int32_t>(ffn));
  config->set_vocab_size(vocab);
  config->set_make_vocab_size_divisible_by(VocabDivisor(vocab > 0 ? vocab : 128));
  config->set_should_pad_vocab(false);  // Bridge keeps the HF vocabulary as is
  config->set_seq_length(static_cast<int32_t>(hf.Int("max_position_embeddings").value_or(131072)));
  t->set_normalization("RMSNorm");
  t->set_layernorm_epsilon(hf.Number("rms_norm_eps").value_or(1e-5));
  t->set_init_method_std(hf.Number("initializer_range").value_or(0.02));
  t->set_attention_dropout(hf.Number("attention_dropout").value_or(0.0));
  t->set_hidden_dropout(0.0);
  config->set_share_embeddings_and_output_weights(hf.Bool("tie_word_embeddings").value_or(false));
  if (!hf.Bool("attention_bias").value_or(true)) {
    hf.violations()->Add("attention_bias", "UNSUPPORTED",
                         "GPT-OSS's experts and router always have biases; without attention "
                         "biases no Megatron setting matches (add_bias_linear puts a bias on "
                         "linear_proj, the experts and the router alike). Set attention_bias: "
                         "true.");
  }
  t->set_add_bias_linear(true);
  t->set_add_qkv_bias(true);
  t->set_softmax_type("learnable");  // the attention sinks

  // The clamped SwiGLU: (clamp(up, -l, l) + 1) * quick_gelu(clamp(gate, max=l)).
  t->set_gated_linear_unit(true);
  t->set_activation_func("quick_gelu");
  t->set_glu_linear_offset(1.0);
  const double limit = hf.Number("swiglu_limit").value_or(7.0);
  t->set_activation_func_clamp_value(limit);
  if (std::optional<double> alpha = hf.Number("swiglu_alpha");
      alpha.has_value() && *alpha != kQuickGeluAlpha) {
    hf.violations()->Add("swiglu_alpha", "UNSUPPORTED",
                         absl::StrCat("Megatron's quick_gelu fixes the sigmoid gain at 1.702; "
                                      "swiglu_alpha ",
                                      *alpha, " has no counterpart. Set it to 1.702."));
  }
  if (!(limit > 0)) {
    hf.violations()->Add("swiglu_limit", "OUT_OF_RANGE", "swiglu_limit must be > 0.");
  }

  // Experts in every layer (transformers' num_experts is an alias of num_local_experts).
  const char* experts_key = hf.Has("num_local_experts") ? "num_local_experts" : "num_experts";
  const int64_t experts = hf.Int(experts_key).value_or(128);
  const int64_t topk = hf.Int("num_experts_per_tok").value_or(4);
  if (std::optional<int64_t> original = hf.Int("experts_per_token");
      original.has_value() && *original != topk) {
    hf.violations()->Add("experts_per_token", "INVALID_VALUE",
                         absl::StrCat("experts_per_token (", *original,
                                      ", the original release's name) differs from "
                                      "num_experts_per_tok (",
                                      topk, ", what transformers reads); make them equal."));
  }
  t->set_num_moe_experts(static_cast<int32_t>(experts));
  t->set_moe_router_topk(static_cast<int32_t>(topk));
  t->set_moe_ffn_hidden_size(static_cast<int32_t>(ffn));
  t->set_moe_router_score_function("softmax");
  t->set_moe_router_pre_softmax(false);  // softmax of the top-k logits
  t->set_moe_router_load_balancing_type("none");
  if (hf.Bool("output_router_logits").value_or(false)) {
    hf.violations()->Add("output_router_logits", "UNSUPPORTED",
                         "transformers then adds its load-balancing loss (router_aux_loss_coef) "
                         "to the training loss, which is not Megatron's aux loss; set "
                         "output_router_logits: false.");
  }
  SetWindows(hf, layers, t);
  SetPositions(hf, config);
  SetDtype(hf, t);
  SetNameOrPath(hf, config);
}

}  // namespace gptb::config
