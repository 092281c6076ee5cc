#ifndef GPTB_CORE_CONFIG_HF_GEMMA_CONFIG_H_
#define GPTB_CORE_CONFIG_HF_GEMMA_CONFIG_H_

#include "core/config/hf_reader.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// A Gemma 2 config.json (model_type gemma2, transformers' Gemma2Config) as Megatron-Bridge's
// Gemma 2 provider builds it, checked against transformers' Gemma2 modelling:
//   - RMSNorm with zero-centred gamma (transformers stores w and applies 1 + w, as Megatron's
//     layernorm_zero_centered_gamma does: the weights are copied as they are), a norm after the
//     attention output and after the MLP output (post_linear_layernorm), GeGLU with the tanh
//     GELU (hidden_activation gelu_pytorch_tanh -> fast_gelu), no biases, tied embeddings
//     scaled by sqrt(hidden_size) (apply_embedding_scaling);
//   - attention scores scaled by 1/sqrt(query_pre_attn_scalar) and capped by
//     attn_logit_softcapping, output logits capped by final_logit_softcapping;
//   - sliding_window W on the layers layer_types names "sliding_attention" (window_size
//     [W - 1, 0]: HF keeps the W most recent keys including the query's own; by default layer
//     index 0, 2, ... slide: window_attn_skip_freq 2).
// Every key of the config.json is mapped, listed as not changing the model or refused naming the
// key; unknown keys are refused.
void ImportGemma2Config(HfReader& hf, gptbuilder::v1::GPTModelConfig* config);

// A Gemma 3 text config.json (model_type gemma3_text, transformers' Gemma3TextConfig) as
// Bridge's Gemma 3 provider builds it: Gemma 2's layers with zero-centred RMSNorms over each
// query and key head (qk_layernorm), no capping by default, every sliding_window_pattern-th
// layer (6) global, the sliding layers rotating with rope_local_base_freq (rotary_base_local)
// and the global ones with rope_theta and rope_scaling's linear factor (rope_scaling_factor).
void ImportGemma3TextConfig(HfReader& hf, gptbuilder::v1::GPTModelConfig* config);

// The config.json of a model ImportGemma2Config would give back (core/checkpoint's
// CheckHfRepresentable says whether transformers' Gemma2 computes what the model computes).
nlohmann::json ExportGemma2Config(const gptbuilder::v1::GPTModelConfig& config);
nlohmann::json ExportGemma3TextConfig(const gptbuilder::v1::GPTModelConfig& config);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_HF_GEMMA_CONFIG_H_
