#include "core/config/config_emitter.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "nlohmann/json.hpp"

namespace gptb::config {
namespace {

using FD = google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using Json = nlohmann::ordered_json;

constexpr char kLayerSpecType[] = "gptbuilder.v1.LayerSpec";
constexpr char kModuleSpecType[] = "gptbuilder.v1.ModuleSpec";
// Megatron's int-or-list fields: one element is written as the int.
bool IsCollapsedSingleton(const std::string& name) {
  return name == "moe_layer_freq" || name == "window_attn_skip_freq";
}

Json ScalarToJson(const Message& m, const FD* field, int index) {
  const google::protobuf::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FD::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(m, field, index) : r->GetInt32(m, field);
    case FD::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(m, field, index) : r->GetInt64(m, field);
    case FD::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(m, field, index) : r->GetUInt32(m, field);
    case FD::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(m, field, index) : r->GetUInt64(m, field);
    case FD::CPPTYPE_DOUBLE:
      return rep ? r->GetRepeatedDouble(m, field, index) : r->GetDouble(m, field);
    case FD::CPPTYPE_FLOAT:
      return static_cast<double>(rep ? r->GetRepeatedFloat(m, field, index)
                                     : r->GetFloat(m, field));
    case FD::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(m, field, index) : r->GetBool(m, field);
    case FD::CPPTYPE_STRING:
      return rep ? r->GetRepeatedString(m, field, index) : r->GetString(m, field);
    case FD::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, field, index) : r->GetEnum(m, field))->name();
    case FD::CPPTYPE_MESSAGE:
      break;
  }
  return nullptr;
}

Json MessageToTree(const Message& m);

Json ModuleSpecToTree(const Message& m) {
  // Compact form: no empty params/submodules mappings; unset module stays null.
  Json tree = MessageToTree(m);
  for (const char* key : {"params", "submodules"}) {
    if (tree.contains(key) && tree[key].empty()) tree.erase(key);
  }
  return tree;
}

Json MessageValueToTree(const Message& m) {
  const std::string& type = m.GetDescriptor()->full_name();
  if (type == kModuleSpecType) return ModuleSpecToTree(m);
  if (type == kLayerSpecType) {
    const google::protobuf::Reflection* r = m.GetReflection();
    const FD* name = m.GetDescriptor()->FindFieldByName("name");
    const FD* custom = m.GetDescriptor()->FindFieldByName("custom");
    if (r->HasField(m, name)) return r->GetString(m, name);
    if (r->HasField(m, custom)) return ModuleSpecToTree(r->GetMessage(m, custom));
    return nullptr;
  }
  return MessageToTree(m);
}

Json MapToTree(const Message& m, const FD* field) {
  const google::protobuf::Reflection* r = m.GetReflection();
  const FD* key_field = field->message_type()->map_key();
  const FD* value_field = field->message_type()->map_value();
  std::map<std::string, Json> sorted;
  for (int i = 0; i < r->FieldSize(m, field); ++i) {
    const Message& entry = r->GetRepeatedMessage(m, field, i);
    Json key = ScalarToJson(entry, key_field, -1);
    std::string key_text = key.is_string() ? key.get<std::string>() : key.dump();
    sorted[key_text] =
        value_field->cpp_type() == FD::CPPTYPE_MESSAGE
            ? MessageValueToTree(entry.GetReflection()->GetMessage(entry, value_field))
            : ScalarToJson(entry, value_field, -1);
  }
  Json tree = Json::object();
  for (auto& [key, value] : sorted) tree[key] = std::move(value);
  return tree;
}

Json MessageToTree(const Message& m) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  const google::protobuf::Reflection* r = m.GetReflection();
  Json tree = Json::object();
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* field = d->field(i);
    // Of a oneof only the member that is set is written.
    if (field->containing_oneof() != nullptr && !r->HasField(m, field)) continue;
    if (field->is_map()) {
      tree[field->name()] = MapToTree(m, field);
    } else if (field->is_repeated()) {
      const int size = r->FieldSize(m, field);
      if (size == 1 && IsCollapsedSingleton(field->name())) {
        tree[field->name()] = ScalarToJson(m, field, 0);
        continue;
      }
      Json list = Json::array();
      for (int j = 0; j < size; ++j) {
        list.push_back(field->cpp_type() == FD::CPPTYPE_MESSAGE
                           ? MessageValueToTree(r->GetRepeatedMessage(m, field, j))
                           : ScalarToJson(m, field, j));
      }
      tree[field->name()] = std::move(list);
    } else if (!r->HasField(m, field)) {
      tree[field->name()] = nullptr;
    } else if (field->cpp_type() == FD::CPPTYPE_MESSAGE) {
      tree[field->name()] = MessageValueToTree(r->GetMessage(m, field));
    } else {
      tree[field->name()] = ScalarToJson(m, field, -1);
    }
  }
  return tree;
}

Json LoadedToTree(const LoadedConfig& config) {
  Json tree = MessageToTree(config.model);
  tree["ddp"] = MessageToTree(config.ddp);
  tree["build"] = MessageToTree(config.build);
  return tree;
}

// ---- YAML text ------------------------------------------------------------------------------

// Words YAML (1.1 or 1.2) would read as something other than a string.
bool IsYamlSpecialWord(const std::string& text) {
  static const char* const kWords[] = {"true", "false", "yes", "no",   "on",
                                       "off",  "y",     "n",   "null", "~"};
  const std::string lowered = absl::AsciiStrToLower(text);
  return std::any_of(std::begin(kWords), std::end(kWords),
                     [&](const char* w) { return lowered == w; });
}

std::string YamlString(const std::string& text) {
  bool plain = !text.empty() &&
               (absl::ascii_isalpha(static_cast<unsigned char>(text[0])) || text[0] == '_') &&
               !IsYamlSpecialWord(text);
  for (char ch : text) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
          ch == '.' || ch == '/')) {
      plain = false;
    }
  }
  if (plain) return text;
  // A JSON string is a valid YAML double-quoted scalar.
  return Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Floats always carry a '.' (YAML 1.1 readers such as PyYAML read "1e-05" as a string).
std::string YamlDouble(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  std::string text = Json(value).dump();  // shortest round-trip form, e.g. "1e-05", "0.1", "8.0"
  if (text.find('.') == std::string::npos) {
    const size_t e = text.find_first_of("eE");
    if (e == std::string::npos) {
      text += ".0";
    } else {
      text.insert(e, ".0");
    }
  }
  return text;
}

std::string YamlScalar(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return value.dump();
    case Json::value_t::number_float:
      return YamlDouble(value.get<double>());
    case Json::value_t::string:
      return YamlString(value.get<std::string>());
    default:
      return value.dump();
  }
}

bool IsScalarList(const Json& value) {
  return value.is_array() && std::all_of(value.begin(), value.end(), [](const Json& v) {
           return !v.is_array() && !v.is_object();
         });
}

void AppendYaml(const Json& tree, int indent, std::string* out) {
  const std::string pad(indent, ' ');
  for (const auto& [key, value] : tree.items()) {
    const std::string name = YamlString(key);
    if (value.is_object()) {
      if (value.empty()) {
        absl::StrAppend(out, pad, name, ": {}\n");
      } else {
        absl::StrAppend(out, pad, name, ":\n");
        AppendYaml(value, indent + 2, out);
      }
    } else if (IsScalarList(value)) {
      std::string items;
      for (const Json& item : value) {
        absl::StrAppend(&items, items.empty() ? "" : ", ", YamlScalar(item));
      }
      absl::StrAppend(out, pad, name, ": [", items, "]\n");
    } else if (value.is_array()) {
      absl::StrAppend(out, pad, name, ":\n");
      for (const Json& item : value) {
        if (item.is_object()) {
          std::string nested;
          AppendYaml(item, indent + 4, &nested);
          // "- " replaces the first line's indentation.
          absl::StrAppend(out, pad, "  - ", nested.substr(indent + 4));
        } else {
          absl::StrAppend(out, pad, "  - ", YamlScalar(item), "\n");
        }
      }
    } else {
      absl::StrAppend(out, pad, name, ": ", YamlScalar(value), "\n");
    }
  }
}

std::string TreeToYaml(const Json& tree) {
  std::string out;
  AppendYaml(tree, 0, &out);
  return out;
}

std::string TreeToJson(const Json& tree) {
  // dump() writes NaN/inf as null, which is what JSON can carry.
  return tree.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string EmitYaml(const google::protobuf::Message& message) {
  return TreeToYaml(MessageToTree(message));
}
std::string EmitYaml(const LoadedConfig& config) { return TreeToYaml(LoadedToTree(config)); }
std::string EmitJson(const google::protobuf::Message& message) {
  return TreeToJson(MessageToTree(message));
}
std::string EmitJson(const LoadedConfig& config) { return TreeToJson(LoadedToTree(config)); }

}  // namespace gptb::config
