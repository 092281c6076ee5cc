#ifndef GPTB_CLIENTS_CLI_BUILD_PROGRESS_H_
#define GPTB_CLIENTS_CLI_BUILD_PROGRESS_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "clients/cli/rpc_client.h"
#include "gptbuilder/v1/coordinator.pb.h"

namespace gptb::cli {

// Draws a build's progress as one bar per phase: process groups (ranks), layers, bytes
// initialised, wrapping (ranks). On a terminal the bars redraw in place; otherwise a line is
// written whenever a bar moves by a tenth, so logs stay short.
class BuildProgressDisplay {
 public:
  BuildProgressDisplay(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}
  void Update(const gptbuilder::v1::BuildEvent& event);

 private:
  std::ostream& out_;
  bool terminal_;
  bool drawn_ = false;
  std::string last_line_;
};

// Follows a model with WatchBuild until READY or FAILED, drawing the bars on `progress` (none
// when null). Returns the model as it ended.
absl::StatusOr<gptbuilder::v1::Model> WatchUntilDone(CoordinatorClient& client,
                                                     const std::string& name,
                                                     std::ostream* progress, bool terminal);

// One bar: "name  [#####.....]  text".
std::string Bar(const std::string& name, double fraction, const std::string& text);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_BUILD_PROGRESS_H_
