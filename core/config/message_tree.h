#ifndef GPTB_CORE_CONFIG_MESSAGE_TREE_H_
#define GPTB_CORE_CONFIG_MESSAGE_TREE_H_

#include <string>

#include "core/config/violations.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "yaml-cpp/yaml.h"

namespace gptb::config {

// The one converter from a parsed YAML/JSON tree to a schema message, by reflection. Every
// problem becomes a violation whose field is the dotted path of the value
// (`transformer.num_layers`, `transformer.moe_layer_freq[2]`), so a whole file is checked in one
// pass:
//   UNKNOWN_FIELD  a key the message does not declare (with the closest field name suggested)
//   TYPE_MISMATCH  a value of the wrong kind ("expected an integer, got 'abc'")
//   OUT_OF_RANGE   an integer outside the field's int32/int64 range
//   DUPLICATE_KEY  a key given twice in one mapping
// Value rules: `null` (or `~`, or nothing) leaves a field unset (clears it); integers accept
// integral float spellings (`1.0e6`); booleans are true/false (and YAML 1.1's yes/no/on/off);
// a quoted scalar is always a string; a repeated field takes a list or one scalar; a message
// field takes a mapping. Schema-specific forms: `transformer_layer_spec` takes a string (a named
// spec) or a mapping (a custom ModuleSpec tree; `{name: ...}` / `{custom: ...}` also work); a
// ModuleSpec submodule given as a string is `{module: <string>}`. Keys starting with `_` are
// Bridge's serialization metadata (`_target_`, `_builder_`) and are ignored.

// Merges the mapping `node` into `message`. `path` is the prefix of field paths ("" at the top).
void MergeYamlIntoMessage(const YAML::Node& node, google::protobuf::Message* message,
                          const std::string& path, Violations* violations);

// Sets (replaces) one field of `message` from `node`; `path` is that field's own path.
void SetFieldFromYaml(const YAML::Node& node, const google::protobuf::FieldDescriptor* field,
                      google::protobuf::Message* message, const std::string& path,
                      Violations* violations);

// The sentence for an unknown key of `descriptor`: "'x' is not a field of TransformerConfig."
// plus the closest field name when one is close.
std::string UnknownFieldDescription(const std::string& key,
                                    const google::protobuf::Descriptor& descriptor);

// "a.b" for a non-empty prefix, "b" otherwise.
std::string JoinPath(const std::string& prefix, const std::string& name);

}  // namespace gptb::config

#endif  // GPTB_CORE_CONFIG_MESSAGE_TREE_H_
