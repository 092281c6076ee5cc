#ifndef GPTB_CORE_CONFIG_CONFIG_EMITTER_H_
#define GPTB_CORE_CONFIG_CONFIG_EMITTER_H_

#include <string>

#include "core/config/loaded_config.h"
#include "google/protobuf/message.h"

namespace gptb::config {

// Config files back out, in the shape config_loader reads: fields in schema order, every set
// field written, unset optional fields written as null (so a resolved config shows what Megatron
// leaves as None), `transformer_layer_spec` as its name (or the custom tree), map keys sorted, and
// moe_layer_freq and window_attn_skip_freq with one element written as the plain integer
// (Megatron's int form). Loading the output gives the same message back (numbers are written
// with round-trip precision).

// YAML (block style, 2-space indent, lists of scalars in flow style).
std::string EmitYaml(const google::protobuf::Message& message);
// The model's fields, then `ddp:` and `build:`.
std::string EmitYaml(const LoadedConfig& config);

// JSON (2-space indent). NaN and infinities, which JSON cannot carry, are written as null.
std::string EmitJson(const google::protobuf::Message& message);
std::string EmitJson(const LoadedConfig& config);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_CONFIG_EMITTER_H_
