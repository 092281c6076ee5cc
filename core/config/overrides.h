#ifndef GPTB_CORE_CONFIG_OVERRIDES_H_
#define GPTB_CORE_CONFIG_OVERRIDES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/config/loaded_config.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// `--set key=value` overrides, resolved like Megatron-Bridge's strict (stage C) attribute proxy
// for writes:
//   - a plain key names a GPTModelConfig field first (`rotary_base=500000` sets the outer field),
//     then a TransformerConfig field (`hidden_size=256` sets transformer.hidden_size);
//   - a dotted key is a path: `transformer.num_layers=4`, `ddp.grad_reduce_in_fp32=true`,
//     `build.seed=7` (a leading `model.`, as in Bridge's ConfigContainer overrides, is dropped);
//   - anything else is an error naming the key ("Neither GPTModelConfig nor TransformerConfig
//     declares a field named 'x'.") with the closest field suggested.
// Values are read by the field's type with YAML scalar syntax (`true`, `1e-5`, `[1,0,1,0]` for a
// list, one scalar for a one-element list, `null` or nothing to unset, a `{...}` mapping that
// replaces a whole section); string fields take the text as written unless it is quoted or null.
// Overrides apply in order, later ones win.
//
// Every bad override is reported (INVALID_ARGUMENT, one BadRequest violation each, on the
// resolved field path or on the key when it does not resolve); the good ones are still applied.
absl::Status ApplyOverrides(const std::vector<std::string>& assignments, LoadedConfig* config);

// Model-only form: `ddp.` and `build.` keys are errors.
absl::Status ApplyOverrides(const std::vector<std::string>& assignments,
                            gptbuilder::v1::GPTModelConfig* model);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_OVERRIDES_H_
