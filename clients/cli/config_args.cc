#include "clients/cli/config_args.h"

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/config/overrides.h"
#include "core/config/violations.h"

namespace gptb::cli {

const std::vector<FlagSpec>& ConfigTextFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"set", true, true, "K=V",
       "override a config field: an outer GPTModelConfig field, else a TransformerConfig field; "
       "dotted paths (transformer.num_layers, ddp.bucket_size, build.seed) also work"},
      {"world-size", true, false, "N",
       "check the config against N ranks (a multiple of tp*pp*cp and of etp*ep*pp)"},
  };
  return *flags;
}

const std::vector<FlagSpec>& ConfigFlags() {
  static const auto* flags = [] {
    auto* flags = new std::vector<FlagSpec>(ConfigTextFlags());
    flags->insert(
        flags->end(),
        {
            {"max-world-size", true, false, "N",
             absl::StrCat("most ranks a config may ask for (default ",
                          config::Limits().max_world_size, ", as the coordinator's)")},
            {"max-num-layers", true, false, "N",
             absl::StrCat("most decoder layers and pipeline chunks of a model (default ",
                          config::Limits().max_num_layers, ")")},
            {"max-plan-tensors", true, false, "N",
             absl::StrCat("most distinct stages plus parameter tensors a plan may list (default ",
                          config::Limits().max_plan_tensors, ")")},
        });
    return flags;
  }();
  return *flags;
}

namespace {

absl::StatusOr<int64_t> ParseInt(const std::string& flag, const std::string& text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " needs an integer, got '", config::Excerpt(text, 40), "'"));
  }
  return value;
}

}  // namespace

absl::StatusOr<config::Limits> LimitsFromArgs(const ParsedArgs& args) {
  config::Limits limits;
  for (auto [name, field] : std::vector<std::pair<const char*, int64_t*>>{
           {"max-world-size", &limits.max_world_size},
           {"max-num-layers", &limits.max_num_layers},
           {"max-plan-tensors", &limits.max_plan_tensors}}) {
    std::optional<std::string> text = args.Get(name);
    if (!text.has_value()) continue;
    absl::StatusOr<int64_t> value = ParseInt(name, *text);
    if (!value.ok()) return value.status();
    if (*value < 1 || *value > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " must be between 1 and 2147483647, got ", *value));
    }
    *field = *value;
  }
  return limits;
}

FlagSpec FormatFlag(const std::string& default_format) {
  return {"format", true, false, absl::StrCat(default_format, "|json"),
          absl::StrCat("output format (default ", default_format, ")")};
}

namespace {

// The one CONFIG positional argument.
absl::StatusOr<std::string> ConfigPath(const ParsedArgs& args) {
  if (args.positional.empty()) {
    return absl::InvalidArgumentError("missing CONFIG (a YAML, JSON or text proto file)");
  }
  if (args.positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one CONFIG, got extra arguments: ",
                     absl::StrJoin(args.positional.begin() + 1, args.positional.end(), " ")));
  }
  return args.positional[0];
}

}  // namespace

absl::StatusOr<int> WorldSizeFromArgs(const ParsedArgs& args) {
  std::optional<std::string> text = args.Get("world-size");
  if (!text.has_value()) return 0;
  absl::StatusOr<int64_t> world = ParseInt("world-size", *text);
  if (!world.ok()) return world.status();
  if (*world < 1 || *world > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--world-size must be between 1 and 2147483647, got ", *world));
  }
  return static_cast<int>(*world);
}

absl::StatusOr<gptbuilder::v1::ConfigText> ConfigTextFromArgs(const ParsedArgs& args) {
  absl::StatusOr<std::string> path = ConfigPath(args);
  if (!path.ok()) return path.status();
  std::ifstream in(*path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read config file '", *path, "': ", std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("cannot read config file '", *path, "'"));
  gptbuilder::v1::ConfigText text;
  text.set_text(content.str());
  switch (config::FormatFromPath(*path)) {
    case config::ConfigFormat::kYaml:
      text.set_format("yaml");
      break;
    case config::ConfigFormat::kJson:
      text.set_format("json");
      break;
    case config::ConfigFormat::kTextProto:
      text.set_format("textproto");
      break;
    case config::ConfigFormat::kAuto:
      break;  // the coordinator detects it from the text, as LoadConfigFile does
  }
  for (const std::string& set : args.GetAll("set")) text.add_overrides(set);
  text.set_source_name(*path);
  return text;
}

absl::StatusOr<config::LoadedConfig> LoadResolvedConfig(const ParsedArgs& args) {
  absl::StatusOr<std::string> path = ConfigPath(args);
  if (!path.ok()) return path.status();
  config::FinalizeOptions options;
  absl::StatusOr<config::Limits> limits = LimitsFromArgs(args);
  if (!limits.ok()) return limits.status();
  options.limits = *limits;
  if (std::optional<std::string> text = args.Get("world-size")) {
    absl::StatusOr<int64_t> world = ParseInt("world-size", *text);
    if (!world.ok()) return world.status();
    options.world_size = *world;
  }
  absl::StatusOr<config::LoadedConfig> loaded = config::LoadConfigFile(*path);
  if (!loaded.ok()) return loaded.status();
  if (absl::Status status = config::ApplyOverrides(args.GetAll("set"), &*loaded); !status.ok()) {
    return status;
  }
  return config::FinalizeLoaded(*loaded, options);
}

absl::StatusOr<std::string> OutputFormat(const ParsedArgs& args, const std::string& default_format,
                                         const std::vector<std::string>& accepted) {
  const std::string format = args.Get("format").value_or(default_format);
  for (const std::string& a : accepted) {
    if (a == format) return format;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--format must be one of ", absl::StrJoin(accepted, ", "), "; got '", format, "'"));
}

}  // namespace gptb::cli
