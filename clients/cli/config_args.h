#ifndef GPTB_CLIENTS_CLI_CONFIG_ARGS_H_
#define GPTB_CLIENTS_CLI_CONFIG_ARGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/args.h"
#include "core/config/limits.h"
#include "core/config/loaded_config.h"

namespace gptb::cli {

// The flags of commands that read a model config: `--set K=V` (repeatable), `--world-size N`
// and the request limits (`--max-world-size`, `--max-num-layers`, `--max-plan-tensors`), which
// default to the coordinator's defaults.
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

// The --format value, checked against `accepted`; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> OutputFormat(const ParsedArgs& args, const std::string& default_format,
                                         const std::vector<std::string>& accepted);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_CONFIG_ARGS_H_
