#ifndef GPTB_CLIENTS_CLI_RPC_CLIENT_H_
#define GPTB_CLIENTS_CLI_RPC_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/args.h"
#include "gptbuilder/v1/coordinator.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "rpc/auth.h"

namespace gptb::cli {

// The flags of commands that talk to a coordinator (added to the global flags).
const std::vector<FlagSpec>& RpcFlags();

// The default coordinator address: GPTB_SERVER, else 127.0.0.1:50051 (where `gptb up` puts it).
std::string DefaultServer();

// A connection to the coordinator named by --server, with --tls-* and the bearer token
// (--auth-token-file or GPTB_AUTH_TOKEN). Every call gets a deadline (--timeout, default 30s).
class CoordinatorClient {
 public:
  static absl::StatusOr<CoordinatorClient> FromArgs(const ParsedArgs& args);
  static absl::StatusOr<CoordinatorClient> Connect(const std::string& server,
                                                   const rpc::BearerToken& token);

  gptbuilder::v1::Coordinator::Stub* stub() { return stub_.get(); }
  const std::string& server() const { return server_; }
  // A context with the deadline `timeout` from now (the default timeout when zero) and the
  // token.
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::ZeroDuration()) const;

 private:
  std::string server_;
  std::shared_ptr<gptbuilder::v1::Coordinator::Stub> stub_;
  rpc::BearerToken token_;
  absl::Duration timeout_ = absl::Seconds(30);
};

// Turns an RPC failure into the CLI's status: unreachable servers get a hint.
absl::Status RpcError(const grpc::Status& status, const std::string& server);

}  // namespace gptb::cli

#endif  // GPTB_CLIENTS_CLI_RPC_CLIENT_H_
