#ifndef GPTB_CORE_CONFIG_HF_GPT_OSS_CONFIG_H_
#define GPTB_CORE_CONFIG_HF_GPT_OSS_CONFIG_H_

#include "core/config/hf_reader.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// A GPT-OSS config.json (model_type gpt_oss, transformers' GptOssConfig) as Megatron-Bridge's
// GPT-OSS provider builds it, checked against transformers' GptOss modelling:
//   - attention: q/k/v/o biases (attention_bias must be true: the experts and the router always
//     have biases, and Megatron's add_bias_linear covers linear_proj, fc1/fc2 and the router
//     alike), learnable softmax offsets (the sinks), sliding_window W on the layers layer_types
//     names "sliding_attention" (window_size [W - 1, 0]: HF keeps the W most recent keys
//     including the query's own; window_attn_skip_freq 2 for the alternating pattern, the 0/1
//     list otherwise);
//   - positions: rope_parameters / rope_scaling yarn -> position_embedding_type yarn with the
//     yarn_* fields (truncate -> yarn_correction_range_round_to_int), or default rope;
//   - experts in every layer: num_local_experts of intermediate_size, top num_experts_per_tok by
//     the router logits (with its bias) and the softmax of those (moe_router_pre_softmax false),
//     the clamped SwiGLU (quick_gelu with glu_linear_offset 1 and activation_func_clamp_value
//     swiglu_limit; swiglu_alpha must be quick_gelu's 1.702).
// Every key of the config.json is mapped, listed as not changing the model (metadata, storage,
// generation settings) or refused naming the key; unknown keys are refused.
void ImportGptOssConfig(HfReader& hf, gptbuilder::v1::GPTModelConfig* config);

// The config.json of a model ImportGptOssConfig would give back (core/checkpoint's
// CheckHfRepresentable says whether transformers' GptOss computes what the model computes):
// rope_theta and rope_scaling (yarn, or default rope), layer_types from window_attn_skip_freq,
// sliding_window W from window_size [W - 1, 0].
nlohmann::json ExportGptOssConfig(const gptbuilder::v1::GPTModelConfig& config);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_HF_GPT_OSS_CONFIG_H_
