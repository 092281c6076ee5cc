#ifndef GPTB_CLIENTS_CLI_COMMAND_H_
#define GPTB_CLIENTS_CLI_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/args.h"

namespace gptb::cli {

// Exit codes (DESIGN.md "User-facing contracts").
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // anything else: unreadable file, server down, ...
inline constexpr int kExitInvalidInput = 2;  // bad flags or an invalid config

// A `gptb` subcommand. main.cc holds the table; adding a command is one entry there.
struct Command {
  std::string name;     // "validate"
  std::string summary;  // one line for `gptb --help`
  std::string usage;    // what follows the command name, e.g. "CONFIG [--set K=V]..."
  std::string description;
  std::vector<FlagSpec> flags;  // the command's own flags (the global ones are added by main)
  // Runs with the parsed arguments; returns the exit code. Output goes to `out`, diagnostics to
  // `err`.
  int (*run)(const ParsedArgs& args, std::ostream& out, std::ostream& err);
};

// The flags every command accepts (`--server HOST:PORT`; `--help` is built into ParseArgs).
const std::vector<FlagSpec>& GlobalFlags();

// Writes a failed status to `err` and returns its exit code: INVALID_ARGUMENT is invalid input
// (2) and is written as one `field: message` line per BadRequest violation (its message when it
// carries none); every other code is 1, written as "error: message".
int ReportStatus(const absl::Status& status, std::ostream& err);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_COMMAND_H_
