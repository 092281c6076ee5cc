#ifndef GPTB_CORE_CONFIG_HF_EXPORT_H_
#define GPTB_CORE_CONFIG_HF_EXPORT_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "gptbuilder/v1/model_config.pb.h"
#include "nlohmann/json.hpp"

namespace gptb::config {

// A Hugging Face config.json for a (finalized) model config, the inverse of ImportHfConfig:
// ImportHfConfig(ExportHfConfig(c, type)) describes the same architecture as c. `model_type` is
// one of SupportedHfModelTypes(); whether the model fits that family's layout is checked by
// core/checkpoint (CheckHfRepresentable), this only writes the keys. vocab_size is the unpadded
// vocabulary; the activation is transformers' name for what the model computes (the tanh
// approximation of GELU is GPT-2's "gelu_new", the exact GELU "gelu"). INVALID_ARGUMENT for an
// unsupported model_type.
absl::StatusOr<nlohmann::json> ExportHfConfig(const gptbuilder::v1::GPTModelConfig& config,
                                              std::string_view model_type);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_HF_EXPORT_H_
