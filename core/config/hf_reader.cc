#include "core/config/hf_reader.h"

#include <algorithm>

#include "core/config/accepted_values.h"

namespace gptb::config {

using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;
using Json = nlohmann::json;

int32_t VocabDivisor(int64_t vocab_size) {
  int32_t base = 128;
  while (base > 1 && vocab_size % base != 0) base /= 2;
  return base;
}

void SetDtype(HfReader& hf, TransformerConfig* t) {
  std::optional<std::string> name =
      hf.Has("torch_dtype") ? hf.String("torch_dtype") : hf.String("dtype");
  std::string dtype = "float32";
  if (name.has_value()) dtype = NormalizeDtype(*name).value_or("float32");
  t->set_params_dtype(dtype);
  t->set_bf16(dtype == "bfloat16");
  t->set_fp16(dtype == "float16");
}

void SetNameOrPath(HfReader& hf, GPTModelConfig* config) {
  std::optional<std::string> name = hf.String("_name_or_path");
  if (name.has_value() && !name->empty()) config->set_hf_model_id(*name);
}

void SetRotaryBase(HfReader& hf, const Json* rope_parameters, double family_default,
                   GPTModelConfig* config) {
  std::optional<double> theta = hf.Number("rope_theta");
  if (!theta.has_value() && rope_parameters != nullptr && rope_parameters->contains("rope_theta") &&
      (*rope_parameters)["rope_theta"].is_number()) {
    theta = (*rope_parameters)["rope_theta"].get<double>();
  }
  const double value = theta.value_or(family_default);
  if (!(value > 0) || std::floor(value) != value || value > 2147483647.0) {
    hf.violations()->Add("rope_theta", "UNSUPPORTED",
                         absl::StrCat("rope_theta ", value,
                                      " must be a positive integer value "
                                      "(rotary_base is an int)."));
    return;
  }
  config->set_rotary_base(static_cast<int32_t>(value));
}

void SetHfWindows(HfReader& hf, int64_t layers, int default_period, int64_t default_window,
                  TransformerConfig* t) {
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
    for (int64_t i = 0; i < layers; ++i) sliding.push_back((i + 1) % default_period != 0 ? 1 : 0);
  }
  if (std::find(sliding.begin(), sliding.end(), 1) == sliding.end()) return;
  std::optional<int64_t> window =
      hf.Has("sliding_window") ? hf.Int("sliding_window") : default_window;
  if (!window.has_value()) return;  // the type error is reported
  if (*window < 1 || *window > 2147483647) {
    hf.violations()->Add("sliding_window", "OUT_OF_RANGE",
                         absl::StrCat("sliding_window must be >= 1 where layer_types has "
                                      "sliding_attention layers, got ",
                                      *window, "."));
    return;
  }
  t->add_window_size(static_cast<int32_t>(*window - 1));
  t->add_window_size(0);
  const auto first_full = std::find(sliding.begin(), sliding.end(), 0);
  if (first_full == sliding.end()) return;  // every layer slides
  // Megatron's int form N windows layer numbers (1-based) that are not multiples of N.
  const int64_t period = (first_full - sliding.begin()) + 1;
  bool periodic = period > 1;
  for (size_t i = 0; periodic && i < sliding.size(); ++i) {
    periodic = sliding[i] == ((static_cast<int64_t>(i) + 1) % period != 0 ? 1 : 0);
  }
  if (periodic) {
    t->add_window_attn_skip_freq(static_cast<int32_t>(period));
  } else {
    for (int32_t s : sliding) t->add_window_attn_skip_freq(s);
  }
}

bool IsHfWindowLayer(const TransformerConfig& t, int n) {
  if (t.window_size_size() == 0) return false;
  const auto& freq = t.window_attn_skip_freq();
  if (freq.empty()) return true;
  if (freq.size() == 1) return freq[0] != 0 && n % freq[0] != 0;
  return n <= freq.size() && freq[n - 1] != 0;
}

}  // namespace gptb::config
