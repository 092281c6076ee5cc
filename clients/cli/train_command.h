#ifndef GPTB_CLIENTS_CLI_TRAIN_COMMAND_H_
#define GPTB_CLIENTS_CLI_TRAIN_COMMAND_H_

#include "absl/status/statusor.h"
#include "base/args.h"
#include "clients/cli/command.h"
#include "gptbuilder/v1/coordinator.pb.h"

namespace gptb::cli {

// `gptb train MODEL --steps N [--data PREFIX | --synthetic SEED] ...`.
const Command& TrainCommand();

// The TrainStep request the flags describe. Every bad flag at once as INVALID_ARGUMENT with a
// google.rpc.BadRequest naming the flag (`--steps`, `--lr`, ...).
absl::StatusOr<gptbuilder::v1::TrainStepRequest> TrainRequestFromArgs(const ParsedArgs& args);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_TRAIN_COMMAND_H_
