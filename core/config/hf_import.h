#ifndef GPTB_CORE_CONFIG_HF_IMPORT_H_
#define GPTB_CORE_CONFIG_HF_IMPORT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/model_config.pb.h"
#include "nlohmann/json.hpp"

namespace gptb::config {

// Hugging Face config.json import, as Megatron-Bridge's model bridges map a PretrainedConfig
// (CONFIG_MAPPING plus each family's provider_bridge / hf_config_to_model_config_kwargs).
// Supported `model_type`s: gpt2, gpt_oss (hf_gpt_oss_config.h), llama, mistral, mixtral, qwen2,
// qwen3, qwen3_moe. Keys a config.json may
// omit take the defaults of the family's transformers config class (e.g. LlamaConfig's
// rms_norm_eps 1e-6, Mixtral's rope_theta 1e6); the architecture sizes (layers, hidden size,
// heads, intermediate size, vocab) are required.
//
// The result is an unresolved GPTModelConfig (Finalize it): the HF vocabulary is kept as is
// (should_pad_vocab false, make_vocab_size_divisible_by as Bridge computes it), params_dtype comes
// from torch_dtype, and hf_model_id from `_name_or_path`. Errors are INVALID_ARGUMENT with
// BadRequest violations naming the config.json key (an unsupported model_type lists the supported
// ones).
absl::StatusOr<gptbuilder::v1::GPTModelConfig> ImportHfConfig(const nlohmann::json& hf_config);

// The same from config.json text.
absl::StatusOr<gptbuilder::v1::GPTModelConfig> ImportHfConfigText(std::string_view json_text);

// True for a JSON object with a top-level "model_type" (how a config.json is recognised).
bool IsHfConfig(const nlohmann::json& json);

const std::vector<std::string>& SupportedHfModelTypes();

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_HF_IMPORT_H_
