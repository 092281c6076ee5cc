#include "clients/cli/validate_command.h"

#include "clients/cli/config_args.h"
#include "core/config/config_emitter.h"
#include "core/config/field_support.h"

namespace gptb::cli {
namespace {

int RunValidate(const ParsedArgs& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> format = OutputFormat(args, "yaml", {"yaml", "json"});
  if (!format.ok()) return ReportStatus(format.status(), err);
  absl::StatusOr<config::LoadedConfig> resolved = LoadResolvedConfig(args);
  if (!resolved.ok()) return ReportStatus(resolved.status(), err);
  out << (*format == "json" ? config::EmitJson(*resolved) : config::EmitYaml(*resolved));
  // Accepted, but with no effect on what this build computes: said on stderr so that stdout
  // stays the resolved config.
  for (const config::PerformanceOnlySetting& s : config::PerformanceOnlySettings(resolved->model)) {
    err << "note: " << s.path << ": " << s.value
        << " is performance-only, no effect here: " << s.why << "\n";
  }
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
      "success prints the resolved config and exits 0, with a `note:` line on stderr for every\n"
      "performance-only field set to a non-default value (accepted, no effect on this build);\n"
      "otherwise prints one `field: message` line per problem to stderr and exits 2 (1 when the\n"
      "file cannot be read). Values this build does not compute as Megatron does are refused\n"
      "with the reason (see the README's field lists).",
      ValidateFlags(),
      &RunValidate,
  };
  return *command;
}

}  // namespace gptb::cli
