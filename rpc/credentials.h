#ifndef GPTB_RPC_CREDENTIALS_H_
#define GPTB_RPC_CREDENTIALS_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"

namespace gptb::rpc {

// PEM files for TLS. A daemon serves TLS when given a certificate and key; with a CA as well it
// requires and verifies client certificates (mutual TLS between coordinator and workers) unless
// client_auth is "none" (server-only TLS under a private CA: the CA then only verifies the servers
// this daemon calls). A client verifies the server against the CA and presents its own
// certificate when given one. Nothing set: plaintext, which the loopback-only local cluster uses.
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  // "require" (or empty) or "none" (--tls-client-auth).
  std::string client_auth;
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& tls);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls);

// A channel with the project's limits: receive size (describe of a large model is big) and
// keepalive, so a peer that vanishes without closing its connection is noticed.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<grpc::ChannelCredentials> credentials,
                                           int max_receive_message_bytes = 256 << 20);

// The deadline for a call made while serving `context`: `budget` from now, but no later than
// the caller's own deadline less a tenth of its remaining time, so fan-out gives up first.
std::chrono::system_clock::time_point FanOutDeadline(const grpc::ServerContext& context,
                                                     std::chrono::milliseconds budget);

}  // namespace gptb::rpc

#endif  // GPTB_RPC_CREDENTIALS_H_
