#ifndef GPTB_CLIENTS_CLI_CONFIG_ARGS_H_
#define GPTB_CLIENTS_CLI_CONFIG_ARGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/args.h"
#include "core/config/limits.h"
#include "core/config/loaded_config.h"
#include "gptbuilder/v1/coordinator.pb.h"

namespace gptb::cli {

// The flags of commands that send a model config to the coordinator as text: `--set K=V`
// (repeatable) and `--world-size N`.
const std::vector<FlagSpec>& ConfigTextFlags();

// The flags of commands that read a model config here: ConfigTextFlags and the request limits
// (`--max-world-size`, `--max-num-layers`, `--max-plan-tensors`), which default to the
// coordinator's defaults.
const std::vector<FlagSpec>& ConfigFlags();

// The request limits the flags set (core/config/limits.h); INVALID_ARGUMENT for a value that is
// not an integer in [1, 2^31 - 1].
absl::StatusOr<config::Limits> LimitsFromArgs(const ParsedArgs& args);

// `--format yaml|json` for commands that print a config or a plan.
FlagSpec FormatFlag(const std::string& default_format);

// The one CONFIG positional argument, loaded (core/config/config_loader.h), with every --set
// applied (core/config/overrides.h) and finalized for --world-size (core/config/finalize.h).
// Usage problems (no CONFIG, extra arguments, a non-integer --world-size) and invalid configs are
// INVALID_ARGUMENT; an unreadable file keeps its own code.
absl::StatusOr<config::LoadedConfig> LoadResolvedConfig(const ParsedArgs& args);

// The one CONFIG positional argument as the coordinator's loader takes it: the file's text
// unchanged, its format from the extension (else detected there), every --set in order, the path
// as the name errors use. Nothing is parsed here. Usage problems are INVALID_ARGUMENT; an
// unreadable file is NOT_FOUND.
absl::StatusOr<gptbuilder::v1::ConfigText> ConfigTextFromArgs(const ParsedArgs& args);

// --world-size as an int (0 when absent); INVALID_ARGUMENT outside [1, 2^31 - 1].
absl::StatusOr<int> WorldSizeFromArgs(const ParsedArgs& args);

// The --format value, checked against `accepted`; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> OutputFormat(const ParsedArgs& args, const std::string& default_format,
                                         const std::vector<std::string>& accepted);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_CONFIG_ARGS_H_
