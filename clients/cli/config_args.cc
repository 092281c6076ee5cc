#include "clients/cli/config_args.h"

#include <charconv>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/config_loader.h"
#include "core/config/finalize.h"
#include "core/config/overrides.h"

namespace gptb::cli {

const std::vector<FlagSpec>& ConfigFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"set", true, true, "K=V",
       "override a config field: an outer GPTModelConfig field, else a TransformerConfig field; "
       "dotted paths (transformer.num_layers, ddp.bucket_size, build.seed) also work"},
      {"world-size", true, false, "N",
       "check the config against N ranks (a multiple of tp*pp*cp and of etp*ep*pp)"},
  };
  return *flags;
}

FlagSpec FormatFlag(const std::string& default_format) {
  return {"format", true, false, absl::StrCat(default_format, "|json"),
          absl::StrCat("output format (default ", default_format, ")")};
}

absl::StatusOr<config::LoadedConfig> LoadResolvedConfig(const ParsedArgs& args) {
  if (args.positional.empty()) {
    return absl::InvalidArgumentError("missing CONFIG (a YAML, JSON or text proto file)");
  }
  if (args.positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one CONFIG, got extra arguments: ",
                     absl::StrJoin(args.positional.begin() + 1, args.positional.end(), " ")));
  }
  config::FinalizeOptions options;
  if (std::optional<std::string> text = args.Get("world-size")) {
    int64_t world = 0;
    const char* end = text->data() + text->size();
    auto [ptr, ec] = std::from_chars(text->data(), end, world);
    if (text->empty() || ec != std::errc() || ptr != end) {
      return absl::InvalidArgumentError(
          absl::StrCat("--world-size needs an integer, got '", *text, "'"));
    }
    options.world_size = world;
  }
  absl::StatusOr<config::LoadedConfig> loaded = config::LoadConfigFile(args.positional[0]);
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
