#ifndef GPTB_CLIENTS_CLI_CHECKPOINT_COMMANDS_H_
#define GPTB_CLIENTS_CLI_CHECKPOINT_COMMANDS_H_

#include "clients/cli/command.h"

namespace gptb::cli {

// `gptb save MODEL PATH [--overwrite]`: a canonical, layout-independent checkpoint.
const Command& SaveCommand();
// `gptb export MODEL --hf DIR [--model-type T] [--overwrite]`: a Hugging Face model directory.
const Command& ExportCommand();

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_CHECKPOINT_COMMANDS_H_
