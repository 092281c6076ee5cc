#ifndef GPTB_CLIENTS_CLI_SERVICE_COMMANDS_H_
#define GPTB_CLIENTS_CLI_SERVICE_COMMANDS_H_

#include "clients/cli/command.h"

namespace gptb::cli {

// The commands that talk to a coordinator (--server).
const Command& BuildCommand();
const Command& WatchCommand();
const Command& DescribeCommand();
const Command& ModelsCommand();
const Command& WorkersCommand();
const Command& ReleaseCommand();
// `gptb up`: a coordinator plus local CPU workers on loopback, building the default model.
const Command& UpCommand();

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_SERVICE_COMMANDS_H_
