#ifndef GPTB_SERVER_COORDINATOR_RENDEZVOUS_H_
#define GPTB_SERVER_COORDINATOR_RENDEZVOUS_H_

#include <chrono>
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
};

// A LibTorch c10d::TCPStore server listening on `port` (0: a free port), advertised to ranks as
// `advertised_host`. Defined in tcp_store_rendezvous.cc (links LibTorch).
absl::StatusOr<std::unique_ptr<Rendezvous>> StartTcpStoreRendezvous(
    const std::string& advertised_host, int port, std::chrono::milliseconds timeout);

}  // namespace gptb::coordinator

#endif  // GPTB_SERVER_COORDINATOR_RENDEZVOUS_H_
