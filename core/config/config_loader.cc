#include "core/config/config_loader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/config/hf_import.h"
#include "core/config/message_tree.h"
#include "core/config/suggest.h"
#include "core/config/violations.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace gptb::config {
namespace {

using gptbuilder::v1::BuildOptions;
using gptbuilder::v1::DistributedDataParallelConfig;
using gptbuilder::v1::GPTModelConfig;
using gptbuilder::v1::TransformerConfig;

constexpr char kDdpSection[] = "ddp";
constexpr char kBuildSection[] = "build";

std::string UnknownTopLevelDescription(const std::string& key) {
  if (TransformerConfig::descriptor()->FindFieldByName(key) != nullptr) {
    return absl::StrCat("'", key, "' is a TransformerConfig field; put it under 'transformer:'.");
  }
  std::vector<std::string> candidates = FieldNames(*GPTModelConfig::descriptor());
  candidates.push_back(kDdpSection);
  candidates.push_back(kBuildSection);
  return absl::StrCat("'", key,
                      "' is not a field of GPTModelConfig (nor a 'ddp:' or 'build:' section).",
                      DidYouMean(key, candidates));
}

void MergeTopLevel(const YAML::Node& root, LoadedConfig* out, Violations* violations) {
  std::set<std::string> seen;
  for (const auto& item : root) {
    if (!item.first.IsScalar()) {
      violations->Add("", "TYPE_MISMATCH", "top-level keys must be field names.");
      continue;
    }
    const std::string key = item.first.Scalar();
    if (!seen.insert(key).second) {
      violations->Add(key, "DUPLICATE_KEY",
                      absl::StrCat("'", key, "' is given more than once; keep one."));
      continue;
    }
    if (!key.empty() && key[0] == '_') continue;  // Bridge's _target_ / _builder_ metadata
    if (key == kDdpSection || key == kBuildSection) {
      if (item.second.IsNull()) continue;
      google::protobuf::Message* section =
          key == kDdpSection ? static_cast<google::protobuf::Message*>(&out->ddp) : &out->build;
      MergeYamlIntoMessage(item.second, section, key, violations);
      continue;
    }
    const google::protobuf::FieldDescriptor* field =
        GPTModelConfig::descriptor()->FindFieldByName(key);
    if (field == nullptr) {
      violations->Add(key, "UNKNOWN_FIELD", UnknownTopLevelDescription(key));
      continue;
    }
    SetFieldFromYaml(item.second, field, &out->model, key, violations);
  }
}

bool HasTopLevelKey(const YAML::Node& root, const std::string& key) {
  for (const auto& item : root) {
    if (item.first.IsScalar() && item.first.Scalar() == key) return true;
  }
  return false;
}

// The first bound of kMaxConfigValues / kMaxConfigDepth a document breaks, counting an aliased
// node each time it is reached (as converting it would); "" within both. Iterative, and it stops
// at the bound, so an alias bomb or a self-referencing alias costs no more than the bound.
std::string TreeBoundExceeded(const YAML::Node& root) {
  std::vector<std::pair<YAML::Node, int>> pending = {{root, 1}};
  int values = 0;
  while (!pending.empty()) {
    auto [node, depth] = std::move(pending.back());
    pending.pop_back();
    if (++values > kMaxConfigValues) {
      return absl::StrCat("the config has more than ", kMaxConfigValues,
                          " values (YAML aliases counted each time they are used)");
    }
    if (depth > kMaxConfigDepth) {
      return absl::StrCat("the config nests deeper than ", kMaxConfigDepth, " levels");
    }
    if (node.IsSequence()) {
      for (const YAML::Node& item : node) pending.emplace_back(item, depth + 1);
    } else if (node.IsMap()) {
      for (const auto& item : node) {
        pending.emplace_back(item.first, depth + 1);
        pending.emplace_back(item.second, depth + 1);
      }
    }
  }
  return "";
}

absl::StatusOr<LoadedConfig> LoadTree(std::string_view text, ConfigFormat format,
                                      const std::string& source_name) {
  Violations violations;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    violations.Add(
        source_name, "PARSE_ERROR",
        absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
    return violations.ToStatus();
  }
  if (std::string exceeded = TreeBoundExceeded(root); !exceeded.empty()) {
    violations.Add(source_name, "LIMIT_EXCEEDED",
                   absl::StrCat(exceeded, "; a model config has a few hundred values."));
    return violations.ToStatus();
  }
  if (!root.IsDefined() || root.IsNull()) {
    violations.Add(source_name, "EMPTY_CONFIG",
                   "the config is empty; it needs at least a 'transformer:' section and "
                   "vocab_size.");
    return violations.ToStatus();
  }
  if (!root.IsMap()) {
    violations.Add(source_name, "TYPE_MISMATCH",
                   "the config must be a mapping of GPTModelConfig fields at the top level.");
    return violations.ToStatus();
  }
  LoadedConfig out;
  if (HasTopLevelKey(root, "model_type")) {
    nlohmann::json json = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (json.is_discarded()) {
      violations.Add(source_name, "PARSE_ERROR",
                     "a config with a top-level model_type is read as a Hugging Face "
                     "config.json and must be JSON.");
      return violations.ToStatus();
    }
    absl::StatusOr<GPTModelConfig> model = ImportHfConfig(json);
    if (!model.ok()) return model.status();
    out.model = *std::move(model);
    out.source_format = "hf_config";
    return out;
  }
  MergeTopLevel(root, &out, &violations);
  if (!violations.empty()) return violations.ToStatus();
  out.source_format = format == ConfigFormat::kJson ? "json" : "yaml";
  return out;
}

// ---- Text proto -------------------------------------------------------------------------------

// A message type with GPTModelConfig's fields plus `ddp` and `build`, built once at run time over
// the generated pool, so the text-format parser reads the whole file shape in one go.
struct TextProtoFileType {
  std::unique_ptr<google::protobuf::DescriptorPool> pool;
  const google::protobuf::Descriptor* descriptor = nullptr;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory;
};

const TextProtoFileType& FileType() {
  static const TextProtoFileType* type = [] {
    auto* t = new TextProtoFileType;
    google::protobuf::FileDescriptorProto file;
    file.set_name("gptbuilder/v1/internal/config_file.proto");
    file.set_package("gptbuilder.v1.internal");
    file.set_syntax("proto2");
    file.add_dependency(GPTModelConfig::descriptor()->file()->name());
    google::protobuf::DescriptorProto* message = file.add_message_type();
    GPTModelConfig::descriptor()->CopyTo(message);
    message->set_name("GPTModelConfig");
    auto add_section = [&](const char* name, int number, const std::string& type_name) {
      google::protobuf::FieldDescriptorProto* field = message->add_field();
      field->set_name(name);
      field->set_number(number);
      field->set_label(google::protobuf::FieldDescriptorProto::LABEL_OPTIONAL);
      field->set_type(google::protobuf::FieldDescriptorProto::TYPE_MESSAGE);
      field->set_type_name(absl::StrCat(".", type_name));
    };
    add_section(kDdpSection, 100000, DistributedDataParallelConfig::descriptor()->full_name());
    add_section(kBuildSection, 100001, BuildOptions::descriptor()->full_name());
    t->pool = std::make_unique<google::protobuf::DescriptorPool>(
        google::protobuf::DescriptorPool::generated_pool());
    const google::protobuf::FileDescriptor* built = t->pool->BuildFile(file);
    t->descriptor = built->FindMessageTypeByName("GPTModelConfig");
    t->factory = std::make_unique<google::protobuf::DynamicMessageFactory>(t->pool.get());
    return t;
  }();
  return *type;
}

// Reads protobuf's `Message type "T" has no field named "f"` (somewhere in `text`) into its type
// and field names. (By hand: std::regex recurses per character, and the field name is the
// client's text.)
bool ParseUnknownField(std::string_view text, std::string* type_name, std::string* field) {
  constexpr std::string_view kBefore = "Message type \"";
  constexpr std::string_view kBetween = "\" has no field named \"";
  const size_t start = text.find(kBefore);
  if (start == std::string_view::npos) return false;
  text.remove_prefix(start + kBefore.size());
  const size_t type_end = text.find(kBetween);
  if (type_end == std::string_view::npos || type_end == 0) return false;
  const std::string_view type = text.substr(0, type_end);
  text.remove_prefix(type_end + kBetween.size());
  const size_t field_end = text.find('"');
  if (field_end == std::string_view::npos || field_end == 0) return false;
  const std::string_view name = text.substr(0, field_end);
  auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (char c : type) {
    if (!word(c) && c != '.') return false;
  }
  for (char c : name) {
    if (!word(c)) return false;
  }
  type_name->assign(type);
  field->assign(name);
  return true;
}

class CollectingErrors : public google::protobuf::io::ErrorCollector {
 public:
  CollectingErrors(const std::string& source, Violations* violations)
      : source_(source), violations_(violations) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    std::string text = message;
    // Name the real message types and suggest the closest field for an unknown one.
    std::string type_name, field;
    if (ParseUnknownField(text, &type_name, &field)) {
      const google::protobuf::Descriptor* type = FileType().pool->FindMessageTypeByName(type_name);
      text = type != nullptr ? UnknownFieldDescription(field, *type) : text;
      if (type_name == FileType().descriptor->full_name()) {
        text = UnknownTopLevelDescription(field);
      }
    }
    violations_->Add(source_, "PARSE_ERROR",
                     absl::StrCat("line ", line + 1, ", column ", column + 1, ": ", text));
  }

 private:
  std::string source_;
  Violations* violations_;
};

absl::StatusOr<LoadedConfig> LoadTextProto(std::string_view text, const std::string& source_name) {
  const TextProtoFileType& type = FileType();
  std::unique_ptr<google::protobuf::Message> file(
      type.factory->GetPrototype(type.descriptor)->New());
  Violations violations;
  CollectingErrors errors(source_name, &violations);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), file.get())) {
    if (violations.empty()) {
      violations.Add(source_name, "PARSE_ERROR", "the text proto could not be parsed.");
    }
    return violations.ToStatus();
  }
  // Split the sections off (through the wire format, which the generated types share).
  LoadedConfig out;
  const google::protobuf::Reflection* r = file->GetReflection();
  const google::protobuf::FieldDescriptor* ddp = type.descriptor->FindFieldByName(kDdpSection);
  const google::protobuf::FieldDescriptor* build = type.descriptor->FindFieldByName(kBuildSection);
  if (r->HasField(*file, ddp)) {
    out.ddp.ParseFromString(r->GetMessage(*file, ddp).SerializeAsString());
  }
  if (r->HasField(*file, build)) {
    out.build.ParseFromString(r->GetMessage(*file, build).SerializeAsString());
  }
  r->ClearField(file.get(), ddp);
  r->ClearField(file.get(), build);
  if (!out.model.ParseFromString(file->SerializeAsString())) {
    return absl::InternalError("text proto did not convert to GPTModelConfig");
  }
  out.source_format = "textproto";
  return out;
}

// Drops a `#` comment from a line (outside quotes; good enough for format detection).
std::string StripComment(const std::string& line) {
  bool quoted = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == quote) quoted = false;
    } else if (ch == '"' || ch == '\'') {
      quoted = true;
      quote = ch;
    } else if (ch == '#') {
      return line.substr(0, i);
    }
  }
  return line;
}

// `^\s*[A-Za-z_]\w*\s*[{<]`: the line opens a message (`name {` or `name <`). By hand for the
// reason given at ParseUnknownField.
bool OpensMessage(std::string_view line) {
  auto space = [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); };
  auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  size_t i = 0;
  while (i < line.size() && space(line[i])) ++i;
  if (i == line.size() ||
      !(absl::ascii_isalpha(static_cast<unsigned char>(line[i])) || line[i] == '_')) {
    return false;
  }
  while (i < line.size() && word(line[i])) ++i;
  while (i < line.size() && space(line[i])) ++i;
  return i < line.size() && (line[i] == '{' || line[i] == '<');
}

}  // namespace

std::optional<ConfigFormat> ConfigFormatByName(std::string_view name) {
  if (name.empty() || name == "auto") return ConfigFormat::kAuto;
  if (name == "yaml") return ConfigFormat::kYaml;
  if (name == "json") return ConfigFormat::kJson;
  if (name == "textproto") return ConfigFormat::kTextProto;
  return std::nullopt;
}

ConfigFormat FormatFromPath(const std::string& path) {
  const std::string lowered = absl::AsciiStrToLower(path);
  for (const char* ext : {".yaml", ".yml"}) {
    if (absl::EndsWith(lowered, ext)) return ConfigFormat::kYaml;
  }
  if (absl::EndsWith(lowered, ".json")) return ConfigFormat::kJson;
  for (const char* ext : {".textproto", ".txtpb", ".pbtxt"}) {
    if (absl::EndsWith(lowered, ext)) return ConfigFormat::kTextProto;
  }
  return ConfigFormat::kAuto;
}

ConfigFormat DetectFormat(std::string_view text) {
  std::istringstream lines{std::string(text)};
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    const std::string code = StripComment(line);
    const std::string stripped(absl::StripAsciiWhitespace(code));
    if (stripped.empty()) continue;
    if (first && (stripped[0] == '{' || stripped[0] == '[')) return ConfigFormat::kJson;
    first = false;
    if (OpensMessage(code)) return ConfigFormat::kTextProto;
  }
  return ConfigFormat::kYaml;
}

absl::StatusOr<LoadedConfig> LoadConfigText(std::string_view text, ConfigFormat format,
                                            const std::string& source_name) {
  if (format == ConfigFormat::kAuto) format = DetectFormat(text);
  if (format == ConfigFormat::kTextProto) return LoadTextProto(text, source_name);
  return LoadTree(text, format, source_name);
}

absl::StatusOr<LoadedConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read config file '", path, "': ", std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    return absl::NotFoundError(absl::StrCat("cannot read config file '", path, "'"));
  }
  return LoadConfigText(content.str(), FormatFromPath(path), path);
}

}  // namespace gptb::config
