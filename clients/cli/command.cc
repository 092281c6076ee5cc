#include "clients/cli/command.h"

#include "clients/cli/rpc_client.h"
#include "core/config/violations.h"

namespace gptb::cli {

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = [] {
    auto* flags = new std::vector<FlagSpec>{
        {"server", true, false, "HOST:PORT",
         "coordinator address (else GPTB_SERVER, else 127.0.0.1:50051); commands that only "
         "read a config run locally and ignore it"},
    };
    flags->insert(flags->end(), RpcFlags().begin(), RpcFlags().end());
    return flags;
  }();
  return *flags;
}

int ReportStatus(const absl::Status& status, std::ostream& err) {
  if (status.ok()) return kExitOk;
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    err << "error: " << status.message() << "\n";
    return kExitFailure;
  }
  const std::vector<config::FieldViolation> violations = config::ViolationsFromStatus(status);
  if (violations.empty()) {
    err << status.message() << "\n";
  }
  for (const config::FieldViolation& v : violations) {
    if (v.field.empty()) {
      err << v.description << "\n";
    } else {
      err << v.field << ": " << v.description << "\n";
    }
  }
  return kExitInvalidInput;
}

}  // namespace gptb::cli
