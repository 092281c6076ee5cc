#include "core/config/hf_reader.h"

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

}  // namespace gptb::config
