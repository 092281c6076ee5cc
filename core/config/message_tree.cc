#include "core/config/message_tree.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/config/suggest.h"
#include "google/protobuf/reflection.h"

namespace gptb::config {
namespace {

using FD = google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr char kLayerSpecType[] = "gptbuilder.v1.LayerSpec";
constexpr char kModuleSpecType[] = "gptbuilder.v1.ModuleSpec";

// A quoted scalar ('x', "x", or an explicit !!str) is a string whatever it looks like.
bool IsQuoted(const YAML::Node& node) {
  return node.Tag() == "!" || absl::EndsWith(node.Tag(), ":str");
}

std::string Describe(const YAML::Node& node) {
  if (node.IsScalar()) return absl::StrCat("'", node.Scalar(), "'");
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

std::optional<bool> ParseBool(const YAML::Node& node) {
  if (!node.IsScalar() || IsQuoted(node)) return std::nullopt;
  const std::string text = absl::AsciiStrToLower(node.Scalar());
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  return std::nullopt;
}

// A decimal floating-point literal (no hex, no bare inf/nan words), or YAML's .inf / .nan.
std::optional<double> ParseDoubleText(const std::string& raw) {
  std::string text = raw;
  if (!text.empty() && text[0] == '+') text = text.substr(1);
  const std::string lowered = absl::AsciiStrToLower(text);
  if (lowered == ".inf") return std::numeric_limits<double>::infinity();
  if (lowered == "-.inf") return -std::numeric_limits<double>::infinity();
  if (lowered == ".nan") return std::numeric_limits<double>::quiet_NaN();
  if (text.empty()) return std::nullopt;
  bool digit = false;
  for (char ch : text) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(ch))) {
      digit = true;
    } else if (ch != '-' && ch != '+' && ch != '.' && ch != 'e' && ch != 'E') {
      return std::nullopt;
    }
  }
  if (!digit) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

enum class IntResult { kOk, kNotInteger, kOutOfRange };

IntResult ParseInteger(const std::string& raw, int64_t min, int64_t max, int64_t* out) {
  const std::string text = (!raw.empty() && raw[0] == '+') ? raw.substr(1) : raw;
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (!text.empty() && ptr == end) {
    if (ec == std::errc::result_out_of_range) return IntResult::kOutOfRange;
    if (ec != std::errc()) return IntResult::kNotInteger;
  } else {
    // Integral float spellings (1.0e6, 500000.0) are common in configs dumped from Python.
    const std::optional<double> d = ParseDoubleText(raw);
    if (!d.has_value() || !std::isfinite(*d) || std::floor(*d) != *d) {
      return IntResult::kNotInteger;
    }
    if (*d < static_cast<double>(min) || *d > static_cast<double>(max)) {
      return IntResult::kOutOfRange;
    }
    value = static_cast<int64_t>(*d);
  }
  if (value < min || value > max) return IntResult::kOutOfRange;
  *out = value;
  return IntResult::kOk;
}

std::string ShortTypeName(const google::protobuf::Descriptor& descriptor) {
  return descriptor.name();
}

// Parses one scalar for `field` and sets it (singular) or appends it (repeated).
void ApplyScalar(const YAML::Node& node, const FD* field, Message* message, const std::string& path,
                 Violations* violations) {
  const google::protobuf::Reflection* r = message->GetReflection();
  const bool repeated = field->is_repeated();
  if (!node.IsScalar()) {
    violations->Add(path, "TYPE_MISMATCH",
                    absl::StrCat("expected a single ", field->cpp_type_name(), " value, got ",
                                 Describe(node), "."));
    return;
  }
  const std::string& text = node.Scalar();
  switch (field->cpp_type()) {
    case FD::CPPTYPE_INT32:
    case FD::CPPTYPE_INT64:
    case FD::CPPTYPE_UINT32:
    case FD::CPPTYPE_UINT64: {
      int64_t min = std::numeric_limits<int64_t>::min();
      int64_t max = std::numeric_limits<int64_t>::max();
      const char* kind = "a 64-bit integer";
      if (field->cpp_type() == FD::CPPTYPE_INT32) {
        min = std::numeric_limits<int32_t>::min();
        max = std::numeric_limits<int32_t>::max();
        kind = "a 32-bit integer";
      } else if (field->cpp_type() == FD::CPPTYPE_UINT32) {
        min = 0;
        max = std::numeric_limits<uint32_t>::max();
        kind = "a non-negative 32-bit integer";
      } else if (field->cpp_type() == FD::CPPTYPE_UINT64) {
        min = 0;
        kind = "a non-negative integer";
      }
      int64_t value = 0;
      const IntResult result =
          IsQuoted(node) ? IntResult::kNotInteger : ParseInteger(text, min, max, &value);
      if (result == IntResult::kNotInteger) {
        violations->Add(path, "TYPE_MISMATCH",
                        absl::StrCat("expected an integer, got ", Describe(node),
                                     IsQuoted(node) ? " (a quoted string)." : "."));
        return;
      }
      if (result == IntResult::kOutOfRange) {
        violations->Add(path, "OUT_OF_RANGE",
                        absl::StrCat(text, " does not fit ", kind, " (", min, " to ", max, ")."));
        return;
      }
      switch (field->cpp_type()) {
        case FD::CPPTYPE_INT32:
          repeated ? r->AddInt32(message, field, static_cast<int32_t>(value))
                   : r->SetInt32(message, field, static_cast<int32_t>(value));
          break;
        case FD::CPPTYPE_INT64:
          repeated ? r->AddInt64(message, field, value) : r->SetInt64(message, field, value);
          break;
        case FD::CPPTYPE_UINT32:
          repeated ? r->AddUInt32(message, field, static_cast<uint32_t>(value))
                   : r->SetUInt32(message, field, static_cast<uint32_t>(value));
          break;
        default:
          repeated ? r->AddUInt64(message, field, static_cast<uint64_t>(value))
                   : r->SetUInt64(message, field, static_cast<uint64_t>(value));
          break;
      }
      return;
    }
    case FD::CPPTYPE_DOUBLE:
    case FD::CPPTYPE_FLOAT: {
      std::optional<double> value = IsQuoted(node) ? std::nullopt : ParseDoubleText(text);
      if (!value.has_value()) {
        violations->Add(path, "TYPE_MISMATCH",
                        absl::StrCat("expected a number, got ", Describe(node),
                                     IsQuoted(node) ? " (a quoted string)." : "."));
        return;
      }
      if (field->cpp_type() == FD::CPPTYPE_DOUBLE) {
        repeated ? r->AddDouble(message, field, *value) : r->SetDouble(message, field, *value);
      } else {
        repeated ? r->AddFloat(message, field, static_cast<float>(*value))
                 : r->SetFloat(message, field, static_cast<float>(*value));
      }
      return;
    }
    case FD::CPPTYPE_BOOL: {
      std::optional<bool> value = ParseBool(node);
      if (!value.has_value()) {
        violations->Add(path, "TYPE_MISMATCH",
                        absl::StrCat("expected true or false, got ", Describe(node), "."));
        return;
      }
      repeated ? r->AddBool(message, field, *value) : r->SetBool(message, field, *value);
      return;
    }
    case FD::CPPTYPE_STRING:
      repeated ? r->AddString(message, field, text) : r->SetString(message, field, text);
      return;
    case FD::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* value =
          field->enum_type()->FindValueByName(text);
      if (value == nullptr) {
        violations->Add(
            path, "TYPE_MISMATCH",
            absl::StrCat("'", text, "' is not a value of ", field->enum_type()->name(), "."));
        return;
      }
      repeated ? r->AddEnum(message, field, value) : r->SetEnum(message, field, value);
      return;
    }
    case FD::CPPTYPE_MESSAGE:
      break;
  }
}

void SetMapFromYaml(const YAML::Node& node, const FD* field, Message* message,
                    const std::string& path, Violations* violations) {
  const google::protobuf::Reflection* r = message->GetReflection();
  r->ClearField(message, field);
  if (!node.IsMap()) {
    violations->Add(path, "TYPE_MISMATCH",
                    absl::StrCat("expected a mapping, got ", Describe(node), "."));
    return;
  }
  const FD* key_field = field->message_type()->map_key();
  const FD* value_field = field->message_type()->map_value();
  std::set<std::string> seen;
  for (const auto& item : node) {
    if (!item.first.IsScalar()) {
      violations->Add(path, "TYPE_MISMATCH", "mapping keys must be plain names.");
      continue;
    }
    const std::string key = item.first.Scalar();
    const std::string item_path = absl::StrCat(path, ".", key);
    if (!seen.insert(key).second) {
      violations->Add(item_path, "DUPLICATE_KEY",
                      absl::StrCat("'", key, "' is given more than once; keep one."));
      continue;
    }
    Message* entry = r->AddMessage(message, field);
    ApplyScalar(item.first, key_field, entry, item_path, violations);
    SetFieldFromYaml(item.second, value_field, entry, item_path, violations);
  }
}

void SetMessageFromYaml(const YAML::Node& node, const FD* field, Message* message,
                        const std::string& path, Violations* violations) {
  Message* sub = message->GetReflection()->MutableMessage(message, field);
  sub->Clear();
  const google::protobuf::Descriptor* type = sub->GetDescriptor();
  const google::protobuf::Reflection* r = sub->GetReflection();
  if (type->full_name() == kLayerSpecType) {
    if (node.IsScalar()) {  // a named spec
      r->SetString(sub, type->FindFieldByName("name"), node.Scalar());
      return;
    }
    if (node.IsMap()) {
      bool layer_spec_form = node.size() > 0;
      for (const auto& item : node) {
        const std::string key = item.first.IsScalar() ? item.first.Scalar() : "";
        if (key != "name" && key != "custom") layer_spec_form = false;
      }
      if (layer_spec_form) {
        if (node.size() > 1) {
          violations->Add(path, "CONFLICT",
                          "transformer_layer_spec takes either a name or a custom tree, not both.");
          return;
        }
        MergeYamlIntoMessage(node, sub, path, violations);
      } else {  // a custom ModuleSpec tree
        const FD* custom = type->FindFieldByName("custom");
        MergeYamlIntoMessage(node, r->MutableMessage(sub, custom), path, violations);
      }
      return;
    }
  }
  if (type->full_name() == kModuleSpecType && node.IsScalar()) {
    r->SetString(sub, type->FindFieldByName("module"), node.Scalar());
    return;
  }
  MergeYamlIntoMessage(node, sub, path, violations);
}

}  // namespace

std::string JoinPath(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : absl::StrCat(prefix, ".", name);
}

std::string UnknownFieldDescription(const std::string& key,
                                    const google::protobuf::Descriptor& descriptor) {
  return absl::StrCat("'", key, "' is not a field of ", ShortTypeName(descriptor), ".",
                      DidYouMean(key, FieldNames(descriptor)));
}

void MergeYamlIntoMessage(const YAML::Node& node, Message* message, const std::string& path,
                          Violations* violations) {
  const google::protobuf::Descriptor* descriptor = message->GetDescriptor();
  if (!node.IsMap()) {
    violations->Add(path, "TYPE_MISMATCH",
                    absl::StrCat("expected a mapping of ", ShortTypeName(*descriptor),
                                 " fields, got ", Describe(node), "."));
    return;
  }
  std::set<std::string> seen;
  for (const auto& item : node) {
    if (!item.first.IsScalar()) {
      violations->Add(path, "TYPE_MISMATCH", "mapping keys must be field names.");
      continue;
    }
    const std::string key = item.first.Scalar();
    const std::string item_path = JoinPath(path, key);
    if (!seen.insert(key).second) {
      violations->Add(item_path, "DUPLICATE_KEY",
                      absl::StrCat("'", key, "' is given more than once; keep one."));
      continue;
    }
    if (!key.empty() && key[0] == '_') continue;  // Bridge's _target_ / _builder_ metadata
    const FD* field = descriptor->FindFieldByName(key);
    if (field == nullptr) {
      violations->Add(item_path, "UNKNOWN_FIELD", UnknownFieldDescription(key, *descriptor));
      continue;
    }
    SetFieldFromYaml(item.second, field, message, item_path, violations);
  }
}

void SetFieldFromYaml(const YAML::Node& node, const FD* field, Message* message,
                      const std::string& path, Violations* violations) {
  const google::protobuf::Reflection* r = message->GetReflection();
  if (!node.IsDefined() || node.IsNull()) {
    r->ClearField(message, field);
    return;
  }
  if (field->is_map()) {
    SetMapFromYaml(node, field, message, path, violations);
  } else if (field->is_repeated()) {
    r->ClearField(message, field);
    if (field->cpp_type() == FD::CPPTYPE_MESSAGE) {
      violations->Add(path, "TYPE_MISMATCH", "repeated message fields are not supported here.");
    } else if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i) {
        ApplyScalar(node[i], field, message, absl::StrCat(path, "[", i, "]"), violations);
      }
    } else {
      ApplyScalar(node, field, message, path, violations);  // one value for a list
    }
  } else if (field->cpp_type() == FD::CPPTYPE_MESSAGE) {
    SetMessageFromYaml(node, field, message, path, violations);
  } else {
    ApplyScalar(node, field, message, path, violations);
  }
}

}  // namespace gptb::config
