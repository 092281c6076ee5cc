#ifndef GPTB_SERVER_COORDINATOR_RENDEZVOUS_H_
#define GPTB_SERVER_COORDINATOR_RENDEZVOUS_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace gptb::coordinator {

// The rendezvous store the ranks of every build meet on: one store for the coordinator's
// lifetime, one key prefix per build ("gptb/<model>/<build id>/"), so builds never see each
// other's keys.
class Rendezvous {
 public:
  virtual ~Rendezvous() = default;
  // The address ranks connect to.
  virtual std::string host() const = 0;
  virtual int port() const = 0;
  // Deletes every key under `prefix` (a build's, once the build ended); returns how many.
  virtual int DeletePrefix(const std::string& /*prefix*/) { return 0; }
  // Keys the store holds (-1 when unknown).
  virtual int64_t NumKeys() { return -1; }
};

// A LibTorch c10d::TCPStore server listening on bind_host:port (port 0: a free port; a wildcard
// host such as 0.0.0.0 or "::" listens on every interface, as the coordinator's own --listen
// would), advertised to ranks as `advertised_host`. c10d's store has no authentication: it must
// only be reachable by the workers (README, Deployment). Defined in tcp_store_rendezvous.cc
// (links LibTorch).
absl::StatusOr<std::unique_ptr<Rendezvous>> StartTcpStoreRendezvous(
    const std::string& bind_host, const std::string& advertised_host, int port,
    std::chrono::milliseconds timeout);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_RENDEZVOUS_H_
