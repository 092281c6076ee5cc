#ifndef GPTB_CORE_CONFIG_HF_READER_H_
#define GPTB_CORE_CONFIG_HF_READER_H_

// What every Hugging Face config.json import shares (hf_import.cc and the per-family importers
// such as hf_gpt_oss_config.cc): typed reads of config.json keys whose problems become
// violations on the key, and the settings every family maps alike (dtype, vocabulary padding,
// rotary base, model id).

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/violations.h"
#include "gptbuilder/v1/model_config.pb.h"
#include "nlohmann/json.hpp"

namespace gptb::config {

// Reads config.json keys with type checks; every problem becomes a violation on that key.
class HfReader {
 public:
  using Json = nlohmann::json;

  HfReader(const Json& json, Violations* violations) : json_(json), violations_(violations) {}

  bool Has(const char* key) const { return json_.contains(key) && !json_[key].is_null(); }

  std::optional<int64_t> Int(const char* key) {
    if (!Has(key)) return std::nullopt;
    const Json& v = json_[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::isfinite(v.get<double>()) &&
        std::floor(v.get<double>()) == v.get<double>()) {
      return static_cast<int64_t>(v.get<double>());
    }
    violations_->Add(key, "TYPE_MISMATCH",
                     absl::StrCat("expected an integer, got ", v.dump(), "."));
    return std::nullopt;
  }

  int64_t RequiredInt(const char* key) {
    if (!Has(key)) {
      violations_->Add(key, "REQUIRED",
                       absl::StrCat("config.json has no '", key,
                                    "'; it is needed to size the "
                                    "model."));
      return 0;
    }
    return Int(key).value_or(0);
  }

  std::optional<double> Number(const char* key) {
    if (!Has(key)) return std::nullopt;
    const Json& v = json_[key];
    if (v.is_number()) return v.get<double>();
    violations_->Add(key, "TYPE_MISMATCH", absl::StrCat("expected a number, got ", v.dump(), "."));
    return std::nullopt;
  }

  std::optional<bool> Bool(const char* key) {
    if (!Has(key)) return std::nullopt;
    const Json& v = json_[key];
    if (v.is_boolean()) return v.get<bool>();
    violations_->Add(key, "TYPE_MISMATCH",
                     absl::StrCat("expected true or false, got ", v.dump(), "."));
    return std::nullopt;
  }

  std::optional<std::string> String(const char* key) {
    if (!Has(key)) return std::nullopt;
    const Json& v = json_[key];
    if (v.is_string()) return v.get<std::string>();
    violations_->Add(key, "TYPE_MISMATCH", absl::StrCat("expected a string, got ", v.dump(), "."));
    return std::nullopt;
  }

  // rope_scaling, or (transformers 5) rope_parameters; nullptr when absent or null.
  const Json* Object(const char* key) {
    if (!Has(key)) return nullptr;
    if (json_[key].is_object()) return &json_[key];
    violations_->Add(key, "TYPE_MISMATCH",
                     absl::StrCat("expected an object, got ", json_[key].dump(), "."));
    return nullptr;
  }

  Violations* violations() { return violations_; }
  const Json& json() const { return json_; }

 private:
  const Json& json_;
  Violations* violations_;
};

// Bridge's make_vocab_size_divisible_by: the largest power of two <= 128 dividing the vocabulary.
int32_t VocabDivisor(int64_t vocab_size);

// params_dtype (and bf16 / fp16) from torch_dtype (transformers 5: dtype); Bridge's dtype_from_hf
// falls back to float32 for anything it does not know.
void SetDtype(HfReader& hf, gptbuilder::v1::TransformerConfig* t);

// hf_model_id from _name_or_path.
void SetNameOrPath(HfReader& hf, gptbuilder::v1::GPTModelConfig* config);

// rotary_base from rope_theta (top level, or inside `rope_parameters`), else `family_default`.
// Integral values only: the schema's rotary_base is an int, as Bridge's GPTModelConfig declares.
void SetRotaryBase(HfReader& hf, const nlohmann::json* rope_parameters, double family_default,
                   gptbuilder::v1::GPTModelConfig* config);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_HF_READER_H_
