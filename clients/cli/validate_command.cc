#include "clients/cli/validate_command.h"

#include "clients/cli/config_args.h"
#include "core/config/config_emitter.h"

namespace gptb::cli {
namespace {

int RunValidate(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "yaml", {"yaml", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<config::LoadedConfig> resolved = LoadResolvedConfig(args);
  if (!resolved.ok()) return ReportStatus(resolved.status(), err);
  out << (*format == "json" ? config::EmitJson(*resolved) : config::EmitYaml(*resolved));
  return kExitOk;
}

std::vector<FlagSpec> ValidateFlags() {
  std::vector<FlagSpec> flags = ConfigFlags();
  flags.push_back(FormatFlag("yaml"));
  return flags;
}

}  // namespace

const Command& ValidateCommand() {
  static const auto* command = new Command{
      "validate",
      "check a model config and print it resolved (every default explicit)",
      "CONFIG [--set K=V]... [--world-size N] [--format yaml|json]",
      "Loads CONFIG (YAML, JSON, text proto, or a Hugging Face config.json), applies the --set\n"
      "overrides, and runs every construction check of Megatron Core and Megatron-Bridge. On\n"
      "success prints the resolved config and exits 0; otherwise prints one `field: message`\n"
      "line per problem to stderr and exits 2 (1 when the file cannot be read).",
      ValidateFlags(),
      &RunValidate,
  };
  return *command;
}

}  // namespace gptb::cli
