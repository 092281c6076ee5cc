#include "clients/cli/rpc_client.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "rpc/credentials.h"
#include "rpc/grpc_status.h"

namespace gptb::cli {

const std::vector<FlagSpec>& RpcFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"auth-token-file", true, false, "PATH",
       "bearer token for mutating calls (else GPTB_AUTH_TOKEN)"},
      {"tls-ca", true, false, "PEM", "verify the coordinator's TLS certificate with this CA"},
      {"tls-cert", true, false, "PEM", "client certificate for mutual TLS"},
      {"tls-key", true, false, "PEM", "the key of --tls-cert"},
      {"timeout", true, false, "DURATION", "deadline of each call (default 30s)"},
  };
  return *flags;
}

std::string DefaultServer() {
  const char* env = std::getenv("GPTB_SERVER");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
}

absl::StatusOr<CoordinatorClient> CoordinatorClient::FromArgs(const ParsedArgs& args) {
  absl::StatusOr<rpc::BearerToken> token =
      rpc::BearerToken::Load(args.Get("auth-token-file").value_or(""));
  if (!token.ok()) return token.status();
  rpc::TlsFiles tls;
  tls.cert_file = args.Get("tls-cert").value_or("");
  tls.key_file = args.Get("tls-key").value_or("");
  tls.ca_file = args.Get("tls-ca").value_or("");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      rpc::MakeChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  CoordinatorClient client;
  client.server_ = args.Get("server").value_or(DefaultServer());
  client.stub_ =
      gptbuilder::v1::Coordinator::NewStub(rpc::MakeChannel(client.server_, *credentials));
  client.token_ = *token;
  if (std::optional<std::string> timeout = args.Get("timeout")) {
    if (!absl::ParseDuration(*timeout, &client.timeout_) ||
        client.timeout_ <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--timeout needs a duration such as 30s; got '", *timeout, "'"));
    }
  }
  return client;
}

absl::StatusOr<CoordinatorClient> CoordinatorClient::Connect(const std::string& server,
                                                             const rpc::BearerToken& token) {
  CoordinatorClient client;
  client.server_ = server;
  client.stub_ = gptbuilder::v1::Coordinator::NewStub(
      rpc::MakeChannel(server, grpc::InsecureChannelCredentials()));
  client.token_ = token;
  return client;
}

std::unique_ptr<grpc::ClientContext> CoordinatorClient::Context(absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(
      absl::ToChronoTime(absl::Now() + (timeout > absl::ZeroDuration() ? timeout : timeout_)));
  token_.Attach(context.get());
  return context;
}

absl::Status RpcError(const grpc::Status& status, const std::string& server) {
  absl::Status out = rpc::FromGrpcStatus(status);
  if (out.code() == absl::StatusCode::kUnavailable ||
      out.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(out.code(),
                        absl::StrCat("coordinator ", server, ": ", out.message(),
                                     " (is `gptbd coordinator` running there? `gptb up` starts a "
                                     "local cluster; --server picks another)"));
  }
  return out;
}

}  // namespace gptb::cli
