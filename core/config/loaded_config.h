#ifndef GPTB_CORE_CONFIG_LOADED_CONFIG_H_
#define GPTB_CORE_CONFIG_LOADED_CONFIG_H_

#include <string>

#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// Everything a config file can carry: the model (GPTModelConfig fields at the top level, the
// TransformerConfig under `transformer:`), plus the optional `ddp:` and `build:` sections.
struct LoadedConfig {
  gptbuilder::v1::GPTModelConfig model;
  gptbuilder::v1::DistributedDataParallelConfig ddp;
  gptbuilder::v1::BuildOptions build;
  // "yaml", "json", "textproto" or "hf_config" (a Hugging Face config.json, imported).
  std::string source_format;
};

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_LOADED_CONFIG_H_
