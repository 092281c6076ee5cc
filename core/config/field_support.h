#ifndef GPTB_CORE_CONFIG_FIELD_SUPPORT_H_
#define GPTB_CORE_CONFIG_FIELD_SUPPORT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/config/violations.h"
#include "gptbuilder/v1/model_config.pb.h"

namespace gptb::config {

// What gptbuilder does with a schema field. Every field of GPTModelConfig, TransformerConfig and
// the layer-spec messages is in exactly one class (the schema-walk test checks it):
//   kImplemented     the model and the trainer compute exactly what Megatron computes for every
//                    accepted value (values that are not are refused, see `refuse`);
//   kPerformanceOnly the field chooses how, not what, Megatron computes (kernel fusion, overlap,
//                    CUDA graphs, recomputation, offloading, inference-only switches): it cannot
//                    change the numbers on a CPU/Gloo build, so it is accepted and reported by
//                    `gptb validate` as having no effect here;
//   kRefused         a non-default value changes the model or its numerics in a way this build
//                    does not implement: Finalize refuses it with the reason and what is valid.
enum class FieldSupport { kImplemented, kPerformanceOnly, kRefused };

// "implemented", "performance-only", "refused".
absl::string_view FieldSupportName(FieldSupport support);

// The reason a resolved config's value of a field is refused, or nullopt when it is accepted.
using RefusalRule = std::optional<std::string> (*)(const gptbuilder::v1::GPTModelConfig& resolved);

struct FieldSupportEntry {
  // The message that declares the field ("TransformerConfig", "GPTModelConfig", "LayerSpec",
  // "ModuleSpec") and the field's name in it.
  absl::string_view message;
  absl::string_view field;
  FieldSupport support;
  // kImplemented: what honours it. kPerformanceOnly: why it cannot change the numbers here.
  // kRefused: what it would change that is not implemented, and what would be valid.
  absl::string_view why;
  // Enumerated values Megatron accepts ("a|b|c") for fields whose values no other rule of
  // Finalize checks; empty when another rule checks them or the field is not enumerated.
  absl::string_view values = {};
  // kRefused: the refusal condition (nullptr: any value other than the schema default, or any
  // value at all for a field whose default is None). kImplemented / kPerformanceOnly: the
  // values this build refuses although it honours the others (nullptr: none).
  RefusalRule refuse = nullptr;
};

// Every field's entry, in schema order. The one place where fields are classified.
const std::vector<FieldSupportEntry>& FieldSupportTable();

// The entry of `message`.`field`, or nullptr.
const FieldSupportEntry* FindFieldSupport(absl::string_view message, absl::string_view field);

// The user-facing path of a field of one of the classified messages: "transformer.fp8_recipe",
// "seq_length", "transformer_layer_spec.name", "transformer_layer_spec.custom.module".
std::string FieldSupportPath(const FieldSupportEntry& entry);

// Adds an UNSUPPORTED violation for every refused value in a resolved config (Finalize's last
// rule) and an INVALID_VALUE one for every enumerated value outside `values`. A field that
// already has a violation gets no second one.
void CheckFieldSupport(const gptbuilder::v1::GPTModelConfig& resolved, Violations* violations);

// A performance-only field that a resolved config sets to a value other than its default.
struct PerformanceOnlySetting {
  std::string path;   // "transformer.tp_comm_overlap"
  std::string value;  // "true"
  std::string why;
};

// What `gptb validate` reports as accepted with no effect on this build.
std::vector<PerformanceOnlySetting> PerformanceOnlySettings(
    const gptbuilder::v1::GPTModelConfig& resolved);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_FIELD_SUPPORT_H_
