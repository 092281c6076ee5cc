#ifndef GPTB_RPC_AUTH_H_
#define GPTB_RPC_AUTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_context.h"

namespace gptb::rpc {

// A shared bearer token for mutating RPCs (`authorization: Bearer <token>` metadata). Disabled
// (every call allowed) when no token is configured, which keeps the loopback-only local cluster
// free of setup; configure one whenever a daemon listens beyond loopback.
class BearerToken {
 public:
  BearerToken() = default;
  explicit BearerToken(std::string token) : token_(std::move(token)) {}

  // The first line of `token_file` (surrounding whitespace trimmed) when the path is non-empty,
  // else the GPTB_AUTH_TOKEN environment variable, else disabled. An unreadable or empty file is
  // an error naming the file; a GPTB_AUTH_TOKEN of only whitespace is an error too (it would
  // otherwise turn authentication off without a word).
  static absl::StatusOr<BearerToken> Load(const std::string& token_file);

  bool enabled() const { return !token_.empty(); }

  // OK when disabled or when the call carries the token; UNAUTHENTICATED otherwise (compared in
  // constant time).
  absl::Status Verify(const grpc::ServerContext& context) const;

  // Adds the token to an outgoing call when enabled.
  void Attach(grpc::ClientContext* context) const;

 private:
  std::string token_;
};

}  // namespace gptb::rpc

#endif  // GPTB_RPC_AUTH_H_
