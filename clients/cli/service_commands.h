#ifndef GPTB_CLIENTS_CLI_SERVICE_COMMANDS_H_
#define GPTB_CLIENTS_CLI_SERVICE_COMMANDS_H_

#include "absl/status/statusor.h"
#include "clients/cli/command.h"
#include "gptbuilder/v1/coordinator.pb.h"

namespace gptb::cli {

// The commands that talk to a coordinator (--server).
const Command& BuildCommand();
const Command& WatchCommand();
const Command& DescribeCommand();
const Command& ModelsCommand();
const Command& WorkersCommand();
const Command& ReleaseCommand();
// The request `gptb build` sends: the CONFIG file as text with its --set overrides (the
// coordinator loads and finalizes it), or --from-hf DIR's config.json with DIR as the weights.
absl::StatusOr<gptbuilder::v1::BuildModelRequest> BuildRequestFromArgs(const ParsedArgs& args);

// `gptb up`: a coordinator plus local CPU workers on loopback, building the default model.
const Command& UpCommand();

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_SERVICE_COMMANDS_H_
