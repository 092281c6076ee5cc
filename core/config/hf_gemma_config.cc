#include "core/config/hf_gemma_config.h"

#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace gptb::config {
namespace {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;
using Json = nlohmann::json;

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
    {"cache_implementation", "generation's key/value cache"},
    {"_attn_implementation", "which attention kernel transformers runs (same function)"},
    {"hidden_act",
     "the published configs' older name; transformers' Gemma2 MLP reads hidden_activation"},
    {"_sliding_window_pattern", "transformers' copy of sliding_window_pattern"},
    {"output_hidden_states", "what the forward returns"},
    {"output_attentions", "what the forward returns"},
    {"return_dict", "what the forward returns"},
};

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
    "sliding_window_size",
    "layer_types",
    "rope_parameters",
    "rope_scaling",
    "rope_theta",
    "hidden_activation",
    "query_pre_attn_scalar",
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "use_bidirectional_attention",
    "rope_local_base_freq",    // Gemma 3
    "sliding_window_pattern",  // Gemma 3
};

bool IsKnownKey(std::string_view key) {
  for (const Unused& u : kUnusedKeys) {
    if (key == u.key) return true;
  }
  for (const char* k : kMappedKeys) {
    if (key == k) return true;
  }
  return false;
}

std::string TorchDtype(const TransformerConfig& t) {
  if (t.bf16()) return "bfloat16";
  if (t.fp16()) return "float16";
  return t.params_dtype().empty() ? "float32" : t.params_dtype();
}

// transformers' ACT2FN names for what Megatron computes: the tanh approximation of GELU
// (gelu_pytorch_tanh, gelu_new; Megatron's fast_gelu) or the exact GELU.
void SetActivation(HfReader& hf, TransformerConfig* t) {
  const std::string name = hf.String("hidden_activation").value_or("gelu_pytorch_tanh");
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") {
    t->set_activation_func("fast_gelu");
  } else if (name == "gelu") {
    t->set_activation_func("gelu");
  } else {
    hf.violations()->Add("hidden_activation", "UNSUPPORTED",
                         absl::StrCat("hidden_activation '", name,
                                      "' is not supported for Gemma (supported: "
                                      "gelu_pytorch_tanh, gelu_new, gelu)."));
  }
}

// rope_parameters (transformers 5) / rope_scaling: only the default rope for Gemma 2.
void SetGemma2Positions(HfReader& hf, GPTModelConfig* config) {
  config->set_position_embedding_type("rope");
  config->set_rotary_percent(1.0);
  const Json* rope = hf.Object("rope_parameters");
  SetRotaryBase(hf, rope, 10000.0, config);
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const Json* r = key == std::string_view("rope_parameters") ? rope : hf.Object(key);
    if (r == nullptr) continue;
    for (const auto& [name, value] : r->items()) {
      if (name == "rope_theta") continue;
      if ((name == "rope_type" || name == "type") && value == "default") continue;
      hf.violations()->Add(absl::StrCat(key, ".", name), "UNSUPPORTED",
                           absl::StrCat("Gemma 2 uses the default rope (rope_type 'default' and "
                                        "rope_theta only); '",
                                        name, "' ", value.dump(), " is not supported."));
    }
  }
}

// Gemma 3's two rotary embeddings: the published spelling (rope_theta, rope_local_base_freq,
// rope_scaling linear on the global layers) or transformers 5's rope_parameters per layer type.
// The sliding layers rotate with rotary_base_local unscaled, the global ones with rotary_base
// and their frequencies divided by rope_scaling_factor.
void SetGemma3Positions(HfReader& hf, GPTModelConfig* config) {
  config->set_position_embedding_type("rope");
  config->set_rotary_percent(1.0);
  double global = 1000000.0, local = 10000.0, factor = 1.0;
  auto read = [&](const std::string& where, const Json& r, bool is_global) {
    for (const auto& [name, value] : r.items()) {
      const bool type = name == "rope_type" || name == "type";
      if (name == "rope_theta" && value.is_number()) {
        (is_global ? global : local) = value.get<double>();
      } else if (type && (value == "default" || (value == "linear" && is_global))) {
        continue;
      } else if (name == "factor" && value.is_number() && is_global) {
        factor = value.get<double>();
      } else {
        hf.violations()->Add(absl::StrCat(where, ".", name), "UNSUPPORTED",
                             absl::StrCat("Gemma 3 rotates its sliding layers with the default "
                                          "rope and its global layers with the default or "
                                          "linear rope; '",
                                          name, "' ", value.dump(), " is not supported here."));
      }
    }
  };
  if (const Json* params = hf.Object("rope_parameters")) {
    for (const auto& [type, r] : params->items()) {
      if ((type != "full_attention" && type != "sliding_attention") || !r.is_object()) {
        hf.violations()->Add(absl::StrCat("rope_parameters.", type), "UNSUPPORTED",
                             "Gemma 3's rope_parameters hold one object per layer type "
                             "(full_attention, sliding_attention).");
        continue;
      }
      read(absl::StrCat("rope_parameters.", type), r, type == "full_attention");
    }
  }
  if (std::optional<double> theta = hf.Number("rope_theta")) global = *theta;
  if (std::optional<double> theta = hf.Number("rope_local_base_freq")) local = *theta;
  if (const Json* scaling = hf.Object("rope_scaling")) read("rope_scaling", *scaling, true);
  for (const auto& [key, value] :
       {std::pair<const char*, double>{"rope_theta", global}, {"rope_local_base_freq", local}}) {
    if (!(value > 0) || std::floor(value) != value || value > 2147483647.0) {
      hf.violations()->Add(key, "UNSUPPORTED",
                           absl::StrCat(key, " ", value,
                                        " must be a positive integer value (rotary bases are "
                                        "ints)."));
      return;
    }
  }
  if (!(factor > 0)) {
    hf.violations()->Add("rope_scaling.factor", "OUT_OF_RANGE", "the factor must be > 0.");
    return;
  }
  config->set_rotary_base(static_cast<int32_t>(global));
  config->set_rope_scaling(false);
  config->set_rope_scaling_factor(factor);
  // Without sliding layers the local base rotates nothing (validation refuses it unused).
  if (config->transformer().window_size_size() > 0) {
    config->set_rotary_base_local(static_cast<int32_t>(local));
  } else if (factor != 1.0) {
    hf.violations()->Add("rope_scaling.factor", "UNSUPPORTED",
                         "a linear factor without sliding layers has no Megatron setting here "
                         "(it scales the global layers next to rotary_base_local).");
  }
}

}  // namespace

static Json ExportGemmaConfig(const GPTModelConfig& c, bool gemma3) {
  const TransformerConfig& t = c.transformer();
  Json j;
  j["architectures"] = {gemma3 ? "Gemma3ForCausalLM" : "Gemma2ForCausalLM"};
  j["model_type"] = gemma3 ? "gemma3_text" : "gemma2";
  j["vocab_size"] = c.vocab_size();
  j["hidden_size"] = t.hidden_size();
  j["intermediate_size"] = t.ffn_hidden_size();
  j["num_hidden_layers"] = t.num_layers();
  j["num_attention_heads"] = t.num_attention_heads();
  j["num_key_value_heads"] = t.num_query_groups();
  j["head_dim"] = t.kv_channels();
  j["max_position_embeddings"] = c.seq_length();
  j["rms_norm_eps"] = t.layernorm_epsilon();
  j["initializer_range"] = t.init_method_std();
  j["attention_dropout"] = t.attention_dropout();
  j["attention_bias"] = false;
  j["tie_word_embeddings"] = c.share_embeddings_and_output_weights();
  j["torch_dtype"] = TorchDtype(t);
  j["hidden_activation"] = t.activation_func() == "gelu" ? "gelu" : "gelu_pytorch_tanh";
  j["rope_theta"] = c.rotary_base();
  if (gemma3) {
    // Without rotary_base_local the sliding layers rotate with rotary_base (and no linear factor
    // applies to the global ones: CheckHfRepresentable).
    j["rope_local_base_freq"] = c.has_rotary_base_local() ? c.rotary_base_local() : c.rotary_base();
    j["rope_scaling"] = c.has_rotary_base_local() && c.rope_scaling_factor() != 1.0
                            ? Json{{"rope_type", "linear"}, {"factor", c.rope_scaling_factor()}}
                            : Json(nullptr);
  }
  // Gemma2Config's defaults are 256, 50 and 30: absent Megatron fields are written as what they
  // mean (the attention scale of kv_channels, no capping).
  j["query_pre_attn_scalar"] =
      c.has_query_pre_attn_scalar() ? c.query_pre_attn_scalar() : t.kv_channels();
  j["attn_logit_softcapping"] =
      c.has_attn_logit_softcapping() ? Json(c.attn_logit_softcapping()) : Json(nullptr);
  j["final_logit_softcapping"] =
      c.has_final_logit_softcapping() ? Json(c.final_logit_softcapping()) : Json(nullptr);
  Json types = Json::array();
  for (int n = 1; n <= t.num_layers(); ++n) {
    types.push_back(IsHfWindowLayer(t, n) ? "sliding_attention" : "full_attention");
  }
  j["layer_types"] = types;
  j["sliding_window"] =
      t.window_size_size() > 0 ? Json(int64_t{t.window_size(0)} + 1) : Json(nullptr);
  return j;
}

static void ImportGemmaConfig(HfReader& hf, bool gemma3, GPTModelConfig* config) {
  TransformerConfig* t = config->mutable_transformer();
  for (const auto& [key, value] : hf.json().items()) {
    const bool gemma3_only = key == "rope_local_base_freq" || key == "sliding_window_pattern" ||
                             key == "_sliding_window_pattern";
    if (IsKnownKey(key) && (gemma3 || !gemma3_only)) continue;
    hf.violations()->Add(
        key, "UNSUPPORTED",
        absl::StrCat("'", key, "' is not a ", gemma3 ? "Gemma3TextConfig" : "Gemma2Config",
                     " setting gptbuilder knows; it cannot tell what it would "
                     "change, so remove it."));
  }
  // Gemma2Config's defaults are those of gemma-2-2b.
  const int64_t layers = hf.Int("num_hidden_layers").value_or(26);
  const int64_t hidden = hf.Int("hidden_size").value_or(2304);
  const int64_t heads = hf.Int("num_attention_heads").value_or(8);
  const int64_t vocab = hf.Int("vocab_size").value_or(gemma3 ? 262208 : 256000);
  t->set_num_layers(static_cast<int32_t>(layers));
  t->set_hidden_size(static_cast<int32_t>(hidden));
  t->set_num_attention_heads(static_cast<int32_t>(heads));
  t->set_num_query_groups(static_cast<int32_t>(hf.Int("num_key_value_heads").value_or(4)));
  t->set_kv_channels(static_cast<int32_t>(hf.Int("head_dim").value_or(256)));
  t->set_ffn_hidden_size(static_cast<int32_t>(hf.Int("intermediate_size").value_or(9216)));
  config->set_vocab_size(vocab);
  config->set_make_vocab_size_divisible_by(VocabDivisor(vocab > 0 ? vocab : 128));
  config->set_should_pad_vocab(false);  // Bridge keeps the HF vocabulary as is
  config->set_seq_length(
      static_cast<int32_t>(hf.Int("max_position_embeddings").value_or(gemma3 ? 131072 : 8192)));
  t->set_normalization("RMSNorm");
  t->set_layernorm_zero_centered_gamma(true);  // HF stores w and applies 1 + w
  t->set_layernorm_epsilon(hf.Number("rms_norm_eps").value_or(1e-6));
  t->set_init_method_std(hf.Number("initializer_range").value_or(0.02));
  t->set_attention_dropout(hf.Number("attention_dropout").value_or(0.0));
  t->set_hidden_dropout(0.0);
  t->set_add_bias_linear(false);
  t->set_add_qkv_bias(false);
  t->set_gated_linear_unit(true);
  SetActivation(hf, t);
  config->set_share_embeddings_and_output_weights(hf.Bool("tie_word_embeddings").value_or(true));
  config->set_apply_embedding_scaling(true);
  config->set_post_linear_layernorm(true);
  t->set_qk_layernorm(gemma3);  // Gemma 3's q_norm / k_norm over each head
  if (hf.Bool("attention_bias").value_or(false)) {
    hf.violations()->Add("attention_bias", "UNSUPPORTED",
                         "biases on q/k/v/o only have no Megatron counterpart with Gemma's "
                         "post-linear norms (add_bias_linear would also bias the MLP, and the "
                         "norm after linear_proj would precede its bias); set attention_bias: "
                         "false.");
  }
  if (hf.Bool("use_bidirectional_attention").value_or(false)) {
    hf.violations()->Add("use_bidirectional_attention", "UNSUPPORTED",
                         "a GPT model attends causally; set use_bidirectional_attention: false.");
  }
  const int64_t scalar = hf.Int("query_pre_attn_scalar").value_or(256);
  if (scalar <= 0 || scalar > 2147483647) {
    hf.violations()->Add("query_pre_attn_scalar", "OUT_OF_RANGE",
                         "query_pre_attn_scalar must be a positive integer.");
  } else {
    config->set_query_pre_attn_scalar(static_cast<int32_t>(scalar));
  }
  // Absent: Gemma2Config's defaults (Gemma 3: none); null: no capping.
  for (const auto& [key, fallback] :
       {std::pair<const char*, double>{"attn_logit_softcapping", 50.0},
        {"final_logit_softcapping", 30.0}}) {
    const bool present = hf.json().contains(key);
    std::optional<double> cap = present  ? hf.Number(key)
                                : gemma3 ? std::nullopt
                                         : std::optional<double>(fallback);
    if (!cap.has_value()) continue;  // null, or the type error is reported
    if (!(*cap > 0)) {
      hf.violations()->Add(key, "OUT_OF_RANGE",
                           absl::StrCat(key, " must be > 0 or null (no capping), got ", *cap, "."));
      continue;
    }
    if (key == std::string_view("attn_logit_softcapping")) {
      config->set_attn_logit_softcapping(*cap);
    } else {
      config->set_final_logit_softcapping(*cap);
    }
  }
  if (std::optional<int64_t> older = hf.Int("sliding_window_size");
      older.has_value() && *older != hf.Int("sliding_window").value_or(4096)) {
    hf.violations()->Add("sliding_window_size", "INVALID_VALUE",
                         absl::StrCat("sliding_window_size (", *older,
                                      ", an older name) differs from sliding_window (what "
                                      "transformers reads); make them equal."));
  }
  // Gemma2Config's default: layer index 0, 2, ... slide through a 4096-token window; Gemma 3's:
  // every sliding_window_pattern-th layer (6) is global.
  int64_t period = 2;
  if (gemma3) {
    period =
        hf.Int("sliding_window_pattern").value_or(hf.Int("_sliding_window_pattern").value_or(6));
    if (period < 1 || period > 1000000) {
      hf.violations()->Add("sliding_window_pattern", "OUT_OF_RANGE",
                           "sliding_window_pattern must be >= 1.");
      period = 6;
    }
  }
  SetHfWindows(hf, layers, static_cast<int>(period), 4096, t);
  if (gemma3) {
    SetGemma3Positions(hf, config);
  } else {
    SetGemma2Positions(hf, config);
  }
  SetDtype(hf, t);
  SetNameOrPath(hf, config);
}

void ImportGemma2Config(HfReader& hf, GPTModelConfig* config) {
  ImportGemmaConfig(hf, false, config);
}

void ImportGemma3TextConfig(HfReader& hf, GPTModelConfig* config) {
  ImportGemmaConfig(hf, true, config);
}

Json ExportGemma2Config(const GPTModelConfig& config) { return ExportGemmaConfig(config, false); }

Json ExportGemma3TextConfig(const GPTModelConfig& config) {
  return ExportGemmaConfig(config, true);
}

}  // namespace gptb::config
