#ifndef GPTB_SERVER_GPTBD_DAEMON_FLAGS_H_
#define GPTB_SERVER_GPTBD_DAEMON_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/args.h"
#include "rpc/credentials.h"

namespace gptb::gptbd {

// A daemon flag: its spelling, the environment variable that supplies it when the flag is
// absent (Kubernetes manifests set env), and its default.
struct DaemonFlag {
  gptb::FlagSpec spec;
  std::string env;  // "" when none
  std::string default_value;
};

// The flag specs, with "(env X, default Y)" appended to each help text.
std::vector<gptb::FlagSpec> Specs(const std::vector<DaemonFlag>& flags);

// flag > environment > default.
class DaemonArgs {
 public:
  DaemonArgs(gptb::ParsedArgs parsed, std::vector<DaemonFlag> flags)
      : parsed_(std::move(parsed)), flags_(std::move(flags)) {}

  std::string Get(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  // "500ms", "5s", "2m" (absl::ParseDuration).
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name) const;
  const gptb::ParsedArgs& parsed() const { return parsed_; }

 private:
  gptb::ParsedArgs parsed_;
  std::vector<DaemonFlag> flags_;
};

// --tls-cert / --tls-key / --tls-ca / --auth-token-file, shared by both daemons.
std::vector<DaemonFlag> SecurityFlags();
rpc::TlsFiles TlsFromArgs(const DaemonArgs& args);

// The host part of HOST:PORT ("[::1]:5" -> "::1").
std::string HostOf(const std::string& address);
// An address other machines can use for a listen address: a wildcard host becomes this
// machine's hostname; the port is the one actually bound.
std::string AdvertisedAddress(const std::string& listen, int bound_port);

// Writes {"grpc": ..., "metrics": ..., "pid": ...} (plus `extra` keys) to `path` atomically, so
// scripts and `gptb up` learn the ports a daemon bound (port 0 picks free ones).
absl::Status WriteReadyFile(const std::string& path, const std::string& grpc_address,
                            const std::string& metrics_url,
                            const std::vector<std::pair<std::string, std::string>>& extra = {});

}  // namespace gptb::gptbd

#endif  // GPTB_SERVER_GPTBD_DAEMON_FLAGS_H_
