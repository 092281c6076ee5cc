#include "core/config/overrides.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/config/message_tree.h"
#include "core/config/suggest.h"
#include "core/config/violations.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "yaml-cpp/yaml.h"

namespace gptb::config {
namespace {

using FD = google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using gptbuilder::v1::BuildOptions;
using gptbuilder::v1::DistributedDataParallelConfig;
using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;

struct Targets {
  GPTModelConfig* model;
  DistributedDataParallelConfig* ddp;  // null: `ddp.` keys are rejected
  BuildOptions* build;                 // null: `build.` keys are rejected
};

struct Resolved {
  Message* message = nullptr;
  const FD* field = nullptr;
  std::string path;
};

std::vector<std::string> PlainKeyCandidates(const Targets& targets) {
  std::vector<std::string> names = FieldNames(*GPTModelConfig::descriptor());
  for (const std::string& name : FieldNames(*TransformerConfig::descriptor())) {
    names.push_back(name);
  }
  return names;
}

// Bridge's strict proxy: the outer config's own fields first, then the transformer's.
bool ResolvePlainKey(const std::string& key, const Targets& targets, Resolved* out,
                     Violations* violations) {
  if (const FD* field = GPTModelConfig::descriptor()->FindFieldByName(key)) {
    *out = {targets.model, field, key};
    return true;
  }
  if (const FD* field = TransformerConfig::descriptor()->FindFieldByName(key)) {
    *out = {targets.model->mutable_transformer(), field, absl::StrCat("transformer.", key)};
    return true;
  }
  std::string hint;
  if (targets.ddp != nullptr && DistributedDataParallelConfig::descriptor()->FindFieldByName(key)) {
    hint = absl::StrCat(" Did you mean 'ddp.", key, "'?");
  } else if (targets.build != nullptr && BuildOptions::descriptor()->FindFieldByName(key)) {
    hint = absl::StrCat(" Did you mean 'build.", key, "'?");
  } else {
    hint = DidYouMean(key, PlainKeyCandidates(targets));
  }
  violations->Add(key, "UNKNOWN_FIELD",
                  absl::StrCat("Neither GPTModelConfig nor TransformerConfig declares a field "
                               "named '",
                               key, "'.", hint));
  return false;
}

bool ResolveDottedKey(const std::string& key, const Targets& targets, Resolved* out,
                      Violations* violations) {
  std::vector<std::string> parts = absl::StrSplit(key, '.');
  Message* message = targets.model;
  size_t first = 0;
  if (parts[0] == "ddp" || parts[0] == "build") {
    message = parts[0] == "ddp" ? static_cast<Message*>(targets.ddp) : targets.build;
    if (message == nullptr) {
      violations->Add(key, "UNKNOWN_FIELD",
                      absl::StrCat("'", parts[0], ".' overrides need the whole loaded config (",
                                   "model, ddp and build); only model fields can be set here."));
      return false;
    }
    first = 1;
  }
  std::string path = first == 1 ? parts[0] : "";
  for (size_t i = first; i < parts.size(); ++i) {
    const google::protobuf::Descriptor* type = message->GetDescriptor();
    const FD* field = type->FindFieldByName(parts[i]);
    const std::string field_path = JoinPath(path, parts[i]);
    if (field == nullptr) {
      violations->Add(
          key, "UNKNOWN_FIELD",
          absl::StrCat("cannot set '", key, "': ", UnknownFieldDescription(parts[i], *type)));
      return false;
    }
    if (i + 1 == parts.size()) {
      *out = {message, field, field_path};
      return true;
    }
    if (field->cpp_type() != FD::CPPTYPE_MESSAGE || field->is_repeated()) {
      violations->Add(key, "UNKNOWN_FIELD",
                      absl::StrCat("cannot set '", key, "': '", field_path,
                                   "' is a value, not a section with fields."));
      return false;
    }
    message = message->GetReflection()->MutableMessage(message, field);
    path = field_path;
  }
  return false;
}

bool IsNullText(const std::string& text) {
  return text.empty() || text == "null" || text == "Null" || text == "NULL" || text == "~";
}

void ApplyValue(const std::string& value_text, const Resolved& target, Violations* violations) {
  const FD* field = target.field;
  const google::protobuf::Reflection* r = target.message->GetReflection();
  const std::string trimmed(absl::StripAsciiWhitespace(value_text));
  // Strings are taken as written (layouts like "E|(tt|)*2,L" and patterns like "*.bias" are
  // not YAML-friendly); a repeated string field takes a `[...]` list in YAML syntax.
  const bool yaml_list = field->is_repeated() && !trimmed.empty() && trimmed.front() == '[';
  if (field->cpp_type() == FD::CPPTYPE_STRING && !yaml_list) {
    const bool quoted = trimmed.size() >= 2 &&
                        (trimmed.front() == '"' || trimmed.front() == '\'') &&
                        trimmed.back() == trimmed.front();
    if (IsNullText(trimmed)) {
      r->ClearField(target.message, field);
      return;
    }
    std::string text = value_text;
    if (quoted) {
      try {
        text = YAML::Load(trimmed).Scalar();
      } catch (const YAML::Exception& e) {
        violations->Add(target.path, "TYPE_MISMATCH",
                        absl::StrCat("cannot read the quoted string: ", e.msg));
        return;
      }
    }
    if (field->is_repeated()) {
      r->ClearField(target.message, field);
      r->AddString(target.message, field, text);
    } else {
      r->SetString(target.message, field, text);
    }
    return;
  }
  YAML::Node node;
  try {
    node = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    violations->Add(target.path, "TYPE_MISMATCH",
                    absl::StrCat("cannot read the value '", value_text, "': ", e.msg));
    return;
  }
  SetFieldFromYaml(node, field, target.message, target.path, violations);
}

void ApplyOne(const std::string& assignment, const Targets& targets, Violations* violations) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos) {
    violations->Add(assignment, "INVALID_OVERRIDE",
                    absl::StrCat("'", assignment,
                                 "' is not key=value (e.g. "
                                 "transformer.num_layers=4)."));
    return;
  }
  std::string key(absl::StripAsciiWhitespace(assignment.substr(0, eq)));
  const std::string value = assignment.substr(eq + 1);
  if (absl::StartsWith(key, "model.")) key = key.substr(6);
  if (key.empty()) {
    violations->Add(assignment, "INVALID_OVERRIDE",
                    absl::StrCat("'", assignment, "' has no key before '='."));
    return;
  }
  Resolved target;
  const bool resolved = key.find('.') == std::string::npos
                            ? ResolvePlainKey(key, targets, &target, violations)
                            : ResolveDottedKey(key, targets, &target, violations);
  if (!resolved) return;
  Violations value_problems;
  ApplyValue(value, target, &value_problems);
  for (const FieldViolation& v : value_problems.list()) {
    violations->Add(v.field, v.reason, absl::StrCat("--set ", assignment, ": ", v.description));
  }
}

absl::Status ApplyAll(const std::vector<std::string>& assignments, const Targets& targets) {
  Violations violations;
  for (const std::string& assignment : assignments) ApplyOne(assignment, targets, &violations);
  return violations.ToStatus();
}

}  // namespace

absl::Status ApplyOverrides(const std::vector<std::string>& assignments, LoadedConfig* config) {
  return ApplyAll(assignments, {&config->model, &config->ddp, &config->build});
}

absl::Status ApplyOverrides(const std::vector<std::string>& assignments, GPTModelConfig* model) {
  return ApplyAll(assignments, {model, nullptr, nullptr});
}

}  // namespace gptb::config
