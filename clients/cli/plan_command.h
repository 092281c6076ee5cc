#ifndef GPTB_CLIENTS_CLI_PLAN_COMMAND_H_
#define GPTB_CLIENTS_CLI_PLAN_COMMAND_H_

#include "clients/cli/command.h"

namespace gptb::cli {

// `gptb plan CONFIG [--set K=V]... [--world-size N] [--format table|json]`: the per-rank build
// plan, computed locally (no server, no LibTorch).
const Command& PlanCommand();

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_PLAN_COMMAND_H_
