#ifndef GPTB_SERVER_GPTBD_COMMANDS_H_
#define GPTB_SERVER_GPTBD_COMMANDS_H_

#include <string>
#include <vector>

namespace gptb::gptbd {

// `gptbd coordinator ...` and `gptbd worker ...`: run until SIGTERM / SIGINT, then shut down
// gracefully. Return the process exit code (2 for bad flags, 1 when the daemon cannot start).
int RunCoordinator(const std::vector<std::string>& args);
int RunWorker(const std::vector<std::string>& args);

}  // namespace gptb::gptbd

#endif  // GPTB_SERVER_GPTBD_COMMANDS_H_
