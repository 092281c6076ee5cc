#ifndef GPTB_CLIENTS_CLI_VALIDATE_COMMAND_H_
#define GPTB_CLIENTS_CLI_VALIDATE_COMMAND_H_

#include "clients/cli/command.h"

namespace gptb::cli {

// `gptb validate CONFIG [--set K=V]... [--world-size N] [--format yaml|json]`: prints the resolved
// config (every default explicit, the ddp: and build: sections included) and exits 0, or writes
// one `field: message` line per violation to stderr and exits 2.
const Command& ValidateCommand();

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_VALIDATE_COMMAND_H_
